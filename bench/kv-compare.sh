#!/usr/bin/env bash
# Side-by-side KV benchmark: `lsmfs bench kv` (LSMStore on an IMR image through KVIMR) against
# RocksDB's db_bench (Debian rocksdb-tools, --compression_type=none) and LevelDB 1.23 (a small
# C++ harness, bench/leveldb_bench.cc, built here with g++), with the same flags, alternating
# runs. Prints each run's result lines, then the median ops/sec per benchmark and our ratios.
# Shared helpers: bench/compare-lib.sh (also used by bench/vlog-compare.sh).
#
# usage: bench/kv-compare.sh [ROUNDS] [extra db_bench flags...]
#   env: LSMFS_BIN (default .build/release/lsmfs), WORKDIR (default /tmp/kv-compare),
#        BENCHMARKS (default fillseq,fillrandom,overwrite,readrandom,seekrandom),
#        NUM (default 1000000), MARKDOWN=FILE (also write a markdown table there)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/compare-lib.sh
ROUNDS=${1:-3}; shift || true
LSMFS_BIN=${LSMFS_BIN:-$PWD/.build/release/lsmfs}
WORKDIR=${WORKDIR:-/tmp/kv-compare}
BENCHMARKS=${BENCHMARKS:-fillseq,fillrandom,overwrite,readrandom,seekrandom}
NUM=${NUM:-1000000}
mkdir -p "$WORKDIR"
ensure_peers leveldb

# The level shape is db_bench's default (L1 256 MiB, 64 MiB files), passed explicitly so that
# LSMStore (whose own defaults are LevelDB's 10 MiB and 2 MiB) shapes its tree as RocksDB does;
# LevelDB's are compiled in and its harness ignores the two flags.
COMMON=(--benchmarks=$BENCHMARKS --num=$NUM --key_size=16 --value_size=100 --sync=0
        --bloom_bits=10 --cache_size=8388608 --threads=1 --seek_nexts=0 --write_buffer_size=67108864
        --max_bytes_for_level_base=268435456 --target_file_size_base=67108864 "$@")
# LevelDB runs the workloads it has in common with ours (fill*, overwrite, read*, seekrandom).

run_ours()    { "$LSMFS_BIN" bench kv "${COMMON[@]}" --db="$WORKDIR/lsmfs.img"; rm -f "$WORKDIR/lsmfs.img"; }
run_rocksdb() { db_bench "${COMMON[@]}" --compression_type=none --db="$WORKDIR/rocksdb"; rm -rf "$WORKDIR/rocksdb"; }
run_leveldb() { "$WORKDIR/leveldb_bench" "${COMMON[@]}" --db="$WORKDIR/leveldb"; rm -rf "$WORKDIR/leveldb"; }

RESULTS="$WORKDIR/results.txt"
run_rounds "$ROUNDS" ours rocksdb leveldb
echo
machine_line "$ROUNDS"
ratio_table "$BENCHMARKS" LSMStore=ours RocksDB-7.8.3=rocksdb LevelDB-1.23=leveldb
if [ -n "${MARKDOWN:-}" ]; then echo "$TABLE" > "$MARKDOWN"; echo "table written to $MARKDOWN" >&2; fi
