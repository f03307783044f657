#!/usr/bin/env bash
# Side-by-side KV benchmark: `lsmfs bench kv` (LSMStore on an IMR image through KVIMR) against
# RocksDB's db_bench (Debian rocksdb-tools, --compression_type=none) and LevelDB 1.23 (a small
# C++ harness, bench/leveldb_bench.cc, built here with g++), with the same flags, alternating
# runs. Prints each run's result lines, then the median ops/sec per benchmark and our ratios.
#
# usage: bench/kv-compare.sh [ROUNDS] [extra db_bench flags...]
#   env: LSMFS_BIN (default .build/release/lsmfs), WORKDIR (default /tmp/kv-compare),
#        BENCHMARKS (default fillseq,fillrandom,overwrite,readrandom,seekrandom),
#        NUM (default 1000000), MARKDOWN=FILE (also write a markdown table there)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; shift || true
LSMFS_BIN=${LSMFS_BIN:-$PWD/.build/release/lsmfs}
WORKDIR=${WORKDIR:-/tmp/kv-compare}
BENCHMARKS=${BENCHMARKS:-fillseq,fillrandom,overwrite,readrandom,seekrandom}
NUM=${NUM:-1000000}
mkdir -p "$WORKDIR"

if ! command -v db_bench >/dev/null; then
  echo "installing rocksdb-tools (db_bench) and libleveldb-dev" >&2
  apt-get install -y rocksdb-tools libleveldb-dev g++ >/dev/null
fi
[ -f /usr/include/leveldb/db.h ] || apt-get install -y libleveldb-dev g++ >/dev/null
g++ -O2 -std=c++17 bench/leveldb_bench.cc -o "$WORKDIR/leveldb_bench" -lleveldb -lpthread
[ -x "$LSMFS_BIN" ] || { echo "build first: swift build -c release (or set LSMFS_BIN)" >&2; exit 1; }

COMMON=(--benchmarks=$BENCHMARKS --num=$NUM --key_size=16 --value_size=100 --sync=0
        --bloom_bits=10 --cache_size=8388608 --threads=1 --seek_nexts=0 --write_buffer_size=67108864 "$@")
# LevelDB runs the workloads it has in common with ours (fill*, overwrite, read*, seekrandom).

run_ours()    { "$LSMFS_BIN" bench kv "${COMMON[@]}" --db="$WORKDIR/lsmfs.img"; rm -f "$WORKDIR/lsmfs.img"; }
run_rocksdb() { db_bench "${COMMON[@]}" --compression_type=none --db="$WORKDIR/rocksdb"; rm -rf "$WORKDIR/rocksdb"; }
run_leveldb() { "$WORKDIR/leveldb_bench" "${COMMON[@]}" --db="$WORKDIR/leveldb"; rm -rf "$WORKDIR/leveldb"; }

RESULTS="$WORKDIR/results.txt"; : > "$RESULTS"
for r in $(seq 1 "$ROUNDS"); do
  for engine in ours rocksdb leveldb; do
    echo "=== round $r: $engine" >&2
    "run_$engine" 2>/dev/null | tee -a /dev/stderr | \
      awk -v e="$engine" '$2 == ":" && $4 == "micros/op" { print e, $1, $5 }' >> "$RESULTS"
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print 0 }'; }
echo
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); rounds: $ROUNDS (median ops/sec)"
printf '%-12s %12s %12s %12s %10s %10s\n' benchmark lsmfs rocksdb leveldb vs-rocksdb vs-leveldb
TABLE="| benchmark | LSMStore ops/s | RocksDB 7.8.3 ops/s | LevelDB 1.23 ops/s | LSMStore / RocksDB | LSMStore / LevelDB |
| --- | ---: | ---: | ---: | ---: | ---: |"
for b in ${BENCHMARKS//,/ }; do
  o=$(awk -v b="$b" '$1 == "ours" && $2 == b { print $3 }' "$RESULTS" | median)
  k=$(awk -v b="$b" '$1 == "rocksdb" && $2 == b { print $3 }' "$RESULTS" | median)
  l=$(awk -v b="$b" '$1 == "leveldb" && $2 == b { print $3 }' "$RESULTS" | median)
  rk=$(awk -v o="$o" -v k="$k" 'BEGIN { if (k > 0) printf "%.2f", o / k; else print "-" }')
  rl=$(awk -v o="$o" -v l="$l" 'BEGIN { if (l > 0) printf "%.2f", o / l; else print "-" }')
  printf '%-12s %12s %12s %12s %10s %10s\n' "$b" "$o" "$k" "$l" "$rk" "$rl"
  TABLE+=$'\n'"| $b | $o | $k | $l | $rk | $rl |"
done
if [ -n "${MARKDOWN:-}" ]; then echo "$TABLE" > "$MARKDOWN"; echo "table written to $MARKDOWN" >&2; fi
