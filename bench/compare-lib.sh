# Helpers shared by bench/kv-compare.sh and bench/vlog-compare.sh (sourced, not run; it only
# defines functions, and bench/fs-compare.sh takes `settle` and `round_order` from it): peer
# tools, alternating rounds, db_bench result-line parsing, medians and ratio tables.
#
# The caller sets RESULTS (a file) and defines one `run_ENGINE` function per engine; each
# prints db_bench-style result lines (`name : X micros/op Y ops/sec; ...`).

# db_bench (Debian rocksdb-tools); with `leveldb`, also the LevelDB harness built into $WORKDIR.
ensure_peers() {
  if ! command -v db_bench >/dev/null; then
    echo "installing rocksdb-tools (db_bench)" >&2
    apt-get install -y rocksdb-tools >/dev/null
  fi
  if [ "${1:-}" = leveldb ]; then
    [ -f /usr/include/leveldb/db.h ] || apt-get install -y libleveldb-dev g++ >/dev/null
    g++ -O2 -std=c++17 bench/leveldb_bench.cc -o "$WORKDIR/leveldb_bench" -lleveldb -lpthread
  fi
  [ -x "$LSMFS_BIN" ] || { echo "build first: swift build -c release (or set LSMFS_BIN)" >&2; exit 1; }
}

# settle: every run starts from the same host state: dirty pages written back and the page
# cache dropped (as root; otherwise only the sync). Without it a run's first writes pay for
# reclaiming what the previous run (or anything before the benchmark) left cached, and the
# run after one that deleted gigabytes of files gets that memory free.
settle() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# round_order ROUND ITEM...: the items one per line, as given on odd rounds and reversed on
# even ones, so no engine or target always runs first.
round_order() {
  local r=$1; shift
  local items=("$@") i
  if (( r % 2 == 0 )); then for (( i=${#items[@]}-1; i>=0; i-- )); do echo "${items[$i]}"; done
  else printf '%s\n' "${items[@]}"; fi
}

# run_rounds ROUNDS ENGINE...: runs every engine once per round (`round_order`), each after
# `settle`; every run's output goes to stderr and to $WORKDIR/ENGINE.rR.log, its ops/sec lines
# to $RESULTS as "engine bench ops".
run_rounds() {
  local rounds=$1; shift
  local order
  : > "$RESULTS"
  for r in $(seq 1 "$rounds"); do
    mapfile -t order < <(round_order "$r" "$@")
    for engine in "${order[@]}"; do
      settle
      echo "=== round $r: $engine" >&2
      "run_$engine" 2>/dev/null | tee "$WORKDIR/$engine.r$r.log" | tee -a /dev/stderr | \
        awk -v e="$engine" '$2 == ":" && $4 == "micros/op" { print e, $1, $5 }' >> "$RESULTS"
    done
  done
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print 0 }'; }

# median_of ENGINE BENCH: the median ops/sec of that engine's runs of that benchmark.
median_of() { awk -v e="$1" -v b="$2" '$1 == e && $2 == b { print $3 }' "$RESULTS" | median; }

ratio() { awk -v o="$1" -v k="$2" 'BEGIN { if (k > 0) printf "%.2f", o / k; else print "-" }'; }

machine_line() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg); rounds: $1 (median ops/sec)"
}

# ratio_table BENCHMARKS "LABEL=ENGINE"...: median ops/sec of each engine per benchmark and
# the first engine's ratio to each of the others, as text on stdout; TABLE holds the same as
# markdown. Labels have no spaces.
ratio_table() {
  local benchmarks=$1 first=$2; shift 2
  local ours=${first%%=*} ours_engine=${first#*=}
  local head="benchmark $ours" md_head="| benchmark | $ours ops/s" md_rule="| --- | ---:"
  local p
  for p in "$@"; do head+=" ${p%%=*}"; md_head+=" | ${p%%=*} ops/s"; md_rule+=" | ---:"; done
  for p in "$@"; do head+=" vs-${p%%=*}"; md_head+=" | $ours / ${p%%=*}"; md_rule+=" | ---:"; done
  echo "$head" | awk '{ printf "%-12s", $1; for (i = 2; i <= NF; i++) printf " %14s", $i; print "" }'
  TABLE="$md_head |"$'\n'"$md_rule |"
  local b o line md k
  for b in ${benchmarks//,/ }; do
    o=$(median_of "$ours_engine" "$b")
    line="$b $o"; md="| $b | $o"
    for p in "$@"; do k=$(median_of "${p#*=}" "$b"); line+=" $k"; md+=" | $k"; done
    for p in "$@"; do k=$(median_of "${p#*=}" "$b"); line+=" $(ratio "$o" "$k")"; md+=" | $(ratio "$o" "$k")"; done
    echo "$line" | awk '{ printf "%-12s", $1; for (i = 2; i <= NF; i++) printf " %14s", $i; print "" }'
    TABLE+=$'\n'"$md |"
  done
}
