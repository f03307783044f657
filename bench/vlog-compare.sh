#!/usr/bin/env bash
# The value-log benchmark of issue 5: large values (16 KiB) through `lsmfs bench kv` (LSMStore
# with its WiscKey value log, on an IMR image through KVIMR) against RocksDB's db_bench leveled
# (--compression_type=none) and RocksDB's BlobDB (--enable_blob_files=true), same flags,
# alternating rounds; then one long-overwrite run for the space measurement.
# Shared helpers: bench/compare-lib.sh.
#
# usage: bench/vlog-compare.sh [ROUNDS]
#   env: NUM (default 200000), LSMFS_BIN (default .build/release/lsmfs), WORKDIR (default
#        /tmp/vlog-compare), IMAGE_SIZE (default 16G), SPACE_NUM (default 50000),
#        SPACE_OVERWRITES (default 4; 0 skips the space run), MARKDOWN=FILE
#
# Prints: median ops/sec per benchmark and engine and our ratios; our device write
# amplification per benchmark (drive bytes written, RMW and meta included, / user bytes) and
# the space after a GC (KVIMR file bytes / live data); RocksDB's space (du of its directory /
# the expected live data).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/compare-lib.sh
ROUNDS=${1:-3}
LSMFS_BIN=${LSMFS_BIN:-$PWD/.build/release/lsmfs}
WORKDIR=${WORKDIR:-/tmp/vlog-compare}
NUM=${NUM:-200000}
IMAGE_SIZE=${IMAGE_SIZE:-16G}
SPACE_NUM=${SPACE_NUM:-50000}
SPACE_OVERWRITES=${SPACE_OVERWRITES:-4}
BENCHMARKS=fillrandom,overwrite,readrandom
mkdir -p "$WORKDIR"
ensure_peers

COMMON=(--num=$NUM --key_size=16 --value_size=16384 --sync=false)
ENTRY=$((16 + 16384))
# Ours also runs the `gc` pseudo-benchmark last (after the timed ones): the space line.
run_ours()  { "$LSMFS_BIN" bench kv --benchmarks=$BENCHMARKS,gc "${COMMON[@]}" --image_size=$IMAGE_SIZE --db="$WORKDIR/lsmfs.img"; rm -f "$WORKDIR/lsmfs.img"; }
run_rocksdb() { db_bench --benchmarks=$BENCHMARKS "${COMMON[@]}" --compression_type=none --db="$WORKDIR/rocksdb"; rocks_space rocksdb 2; }
run_blob()  { db_bench --benchmarks=$BENCHMARKS "${COMMON[@]}" --compression_type=none --enable_blob_files=true --db="$WORKDIR/rocksdb"; rocks_space blob 2; }

# rocks_space ENGINE DRAWS_PER_KEY: the database directory's size over the expected live data
# (db_bench's random keys: after d*num uniform draws, num*(1-e^-d) distinct keys), then rm.
rocks_space() {
  local bytes; bytes=$(du -sb "$WORKDIR/rocksdb" | cut -f1)
  awk -v b="$bytes" -v n="$NUM" -v d="$2" -v e="$ENTRY" 'BEGIN {
    live = n * (1 - exp(-d)) * e
    printf "space        : %.1f MiB on disk (du), %.1f MiB expected live data, space-amp %.2f\n", b / 1048576, live / 1048576, b / live }'
  rm -rf "$WORKDIR/rocksdb"
}

RESULTS="$WORKDIR/results.txt"
run_rounds "$ROUNDS" ours rocksdb blob

# Our per-benchmark device write-amp and the space-amp lines, from every round's log.
figures() {   # figures ENGINE: "bench devwa" lines and "space X" lines
  cat "$WORKDIR/$1".r*.log 2>/dev/null | awk '
    $2 == ":" && $4 == "micros/op" { bench = $1 }
    /device write-amp/ { for (i = 1; i <= NF; i++) if ($i == "write-amp" && $(i-1) == "device") print bench, $(i+1) }
    /^space / { for (i = 1; i <= NF; i++) if ($i == "space-amp") { v = $(i+1); sub(/[;,]$/, "", v); print "space", v } }'
}
med_fig() { figures "$1" | awk -v k="$2" '$1 == k { print $2 }' | median; }

echo
machine_line "$ROUNDS"
echo "flags: --benchmarks=$BENCHMARKS ${COMMON[*]} (RocksDB: --compression_type=none; blob: --enable_blob_files=true)"
ratio_table "$BENCHMARKS" LSMStore=ours RocksDB=rocksdb RocksDB-blob=blob
SUMMARY="our device write-amp (median): fillrandom $(med_fig ours fillrandom), overwrite $(med_fig ours overwrite)"
SUMMARY+=$'\n'"space-amp after the run (median): ours $(med_fig ours space) (after gc), RocksDB $(med_fig rocksdb space), RocksDB-blob $(med_fig blob space)"
echo "$SUMMARY"

# --- long overwrite workload: space once GC has run -------------------------------------
if [ "$SPACE_OVERWRITES" -gt 0 ]; then
  OW=$(printf ',overwrite%.0s' $(seq 1 "$SPACE_OVERWRITES"))
  SPACE_FLAGS=(--num=$SPACE_NUM --key_size=16 --value_size=16384 --sync=false)
  echo "=== space: fillrandom$OW, num $SPACE_NUM" >&2
  "$LSMFS_BIN" bench kv --benchmarks=fillrandom$OW,gc "${SPACE_FLAGS[@]}" --image_size=$IMAGE_SIZE \
    --db="$WORKDIR/lsmfs.img" 2>/dev/null | tee "$WORKDIR/space.ours.log" >&2
  rm -f "$WORKDIR/lsmfs.img"
  db_bench --benchmarks=fillrandom$OW "${SPACE_FLAGS[@]}" --compression_type=none --enable_blob_files=true \
    --enable_blob_garbage_collection=true --db="$WORKDIR/rocksdb" 2>/dev/null > "$WORKDIR/space.blob.log"
  NUM=$SPACE_NUM rocks_space blob $((SPACE_OVERWRITES + 1)) >> "$WORKDIR/space.blob.log"
  cat "$WORKDIR/space.blob.log" >&2
  LONG="long overwrite (num $SPACE_NUM, fillrandom + $SPACE_OVERWRITES x overwrite): ours $(grep '^space' "$WORKDIR/space.ours.log" | tail -1 | sed 's/^space *: //')"
  LONG+=$'\n'"  RocksDB-blob with GC: $(grep '^space' "$WORKDIR/space.blob.log" | tail -1 | sed 's/^space *: //')"
  echo "$LONG"
  SUMMARY+=$'\n'"$LONG"
fi
if [ -n "${MARKDOWN:-}" ]; then printf '%s\n\n%s\n' "$TABLE" "$SUMMARY" > "$MARKDOWN"; echo "table written to $MARKDOWN" >&2; fi
