#!/usr/bin/env bash
# Filesystem benchmark: the same workloads on an lsmfs mount, on libfuse's passthrough_ll
# example (over a directory on the same disk) and natively, in alternating rounds.
#
#   bench/fs-compare.sh [--rounds 3] [--files 15000] [--small 5000] [--big-mib 1024]
#                       [--rand-ops 20000] [--dir /var/tmp/lsmfs-fsbench] [--lsmfs-opts OPTS]
#                       [--only create,stat,lsR,unlink] [--targets passthrough_ll,lsmfs]
#
# --only runs a subset of the workloads (later ones use what earlier ones left: stat, lsR and
# unlink need create; read4k needs write4k; retar needs untar; seqread and randrw need seqwrite).
# --targets skips targets (default: native,passthrough_ll,lsmfs).
# Prints a markdown table (median seconds per workload and target, and lsmfs/passthrough
# ratios) and the lsmfs daemon's peak RSS. Needs: root (dropping the page cache, allow_other not needed),
# gcc + libfuse3-dev (for passthrough_ll), python3, tar; fio is used when installed.
# The lsmfs binary: $LSMFS_BIN or .build/release/lsmfs.
set -euo pipefail

# FILES stays below the open-file limit: passthrough_ll holds an O_PATH descriptor per inode the
# kernel knows, and fails (EBADF at close) past RLIMIT_NOFILE (20000 here, not raisable).
ROUNDS=3 FILES=15000 SMALL=5000 BIG_MIB=1024 RAND_OPS=20000
DIR=/var/tmp/lsmfs-fsbench LSMFS_OPTS="" ONLY="" TARGETS="native,passthrough_ll,lsmfs"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
        --small) SMALL=$2; shift 2 ;;
        --big-mib) BIG_MIB=$2; shift 2 ;;
        --rand-ops) RAND_OPS=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --lsmfs-opts) LSMFS_OPTS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --targets) TARGETS=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/compare-lib.sh"   # settle (sync + drop the page cache), round_order
LSMFS=${LSMFS_BIN:-$ROOT/.build/release/lsmfs}
[ -x "$LSMFS" ] || { echo "lsmfs binary not found: $LSMFS (swift build -c release)" >&2; exit 1; }
EXAMPLES=/usr/share/doc/libfuse3-dev/examples
PY=/usr/bin/python3

mkdir -p "$DIR"
cleanup() {
    for m in "$DIR/mnt-lsmfs" "$DIR/mnt-pt"; do mountpoint -q "$m" 2>/dev/null && fusermount3 -uz "$m" || true; done
}
trap cleanup EXIT

# --- passthrough_ll, compiled from libfuse's examples -------------------------------------
if (( FILES + 1000 > $(ulimit -n) )); then
    echo "warning: --files $FILES is close to the open-file limit ($(ulimit -n)); passthrough_ll keeps one fd per inode and will fail" >&2
fi
PT=$DIR/passthrough_ll
if [ ! -x "$PT" ]; then
    src=$EXAMPLES/passthrough_ll.c
    [ -f "$src" ] || src=$EXAMPLES/passthrough_ll.c.gz
    case "$src" in
        *.gz) gunzip -c "$src" > "$DIR/passthrough_ll.c" ;;
        *) cp "$src" "$DIR/passthrough_ll.c" ;;
    esac
    cp "$EXAMPLES"/passthrough_helpers.h "$DIR/" 2>/dev/null || true
    gcc -O2 -Wall -o "$PT" "$DIR/passthrough_ll.c" $(pkg-config fuse3 --cflags --libs)
fi

# --- targets ------------------------------------------------------------------------------
mkdir -p "$DIR/native" "$DIR/pt-src" "$DIR/mnt-pt" "$DIR/mnt-lsmfs"
cleanup
"$PT" -o source="$DIR/pt-src" "$DIR/mnt-pt"
rm -f "$DIR/lsmfs.img" "$DIR/lsmfs.img.log"
"$LSMFS" mkfs "$DIR/lsmfs.img" --size $(( BIG_MIB * 3 / 1024 + 4 ))G >/dev/null
"$LSMFS" mount "$DIR/lsmfs.img" "$DIR/mnt-lsmfs" ${LSMFS_OPTS:+-o "$LSMFS_OPTS"}
LSMFS_PID=$(pgrep -f -- "[m]ount $DIR/lsmfs.img $DIR/mnt-lsmfs" | head -n1)
declare -A TARGET=([native]="$DIR/native" [passthrough_ll]="$DIR/mnt-pt" [lsmfs]="$DIR/mnt-lsmfs")

# A source tree to untar: /usr/include (tens of thousands of small files), tarred once.
TARBALL=$DIR/tree.tar
[ -f "$TARBALL" ] || tar -C /usr -cf "$TARBALL" include

now() { date +%s.%N; }

# Each workload: wl_NAME DIR; prints nothing; timed by run().
wl_create()   { $PY - "$1/meta" "$FILES" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
for i in range(n):
    sub = os.path.join(d, "d%03d" % (i % 100))
    if i < 100: os.mkdir(sub)
    os.close(os.open(os.path.join(sub, "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
EOF
}
wl_stat()     { $PY - "$1/meta" <<'EOF'
import os, sys
for root, dirs, files in os.walk(sys.argv[1]):
    for f in files: os.stat(os.path.join(root, f))
EOF
}
wl_lsR()      { ls -lR "$1/meta" > /dev/null; }
wl_unlink()   { rm -rf "$1/meta"; }
wl_write4k()  { $PY - "$1/small" "$SMALL" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
buf = os.urandom(4096)
for i in range(n):
    with open(os.path.join(d, "s%05d" % i), "wb") as f: f.write(buf)
EOF
}
wl_read4k()   { cat "$1"/small/* > /dev/null; rm -rf "$1/small"; }
wl_untar()    { mkdir -p "$1/tree" && tar -C "$1/tree" -xf "$TARBALL"; }
wl_retar()    { tar -C "$1/tree" -cf - include | cat > /dev/null; rm -rf "$1/tree"; }
wl_seqwrite() { dd if=/dev/zero of="$1/big" bs=1M count="$BIG_MIB" conv=fsync status=none; }
wl_seqread()  { dd if="$1/big" of=/dev/null bs=1M status=none; }
# The cold workloads start from an empty page cache; the sync and cache drop before them are
# set-up, outside the timed region (they once were inside: the sync then timed whatever the
# previous workload left dirty, and the drop the pages it had cached).
pre_read4k()  { settle; }
pre_retar()   { settle; }
pre_seqread() { settle; }
wl_randrw()   {
    if command -v fio >/dev/null; then
        fio --name=r --filename="$1/big" --rw=randrw --bs=4k --size=256M --io_size=$(( RAND_OPS * 4 ))k \
            --ioengine=psync --direct=0 --fsync_on_close=1 --output=/dev/null
    else
        $PY - "$1/big" "$RAND_OPS" <<'EOF'
import os, random, sys
path, n = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR)
span = min(os.fstat(fd).st_size, 256 << 20) // 4096
rnd = random.Random(42); buf = os.urandom(4096)
for i in range(n):
    off = rnd.randrange(span) * 4096
    if i & 1: os.pwrite(fd, buf, off)
    else: os.pread(fd, 4096, off)
os.fsync(fd); os.close(fd)
EOF
    fi
    rm -f "$1/big"
}
WORKLOADS=(create stat lsR unlink write4k read4k untar retar seqwrite seqread randrw)
if [ -n "$ONLY" ]; then IFS=, read -r -a WORKLOADS <<< "$ONLY"; fi
IFS=, read -r -a ORDER <<< "$TARGETS"
declare -A LABEL=([create]="create $FILES files" [stat]="stat $FILES files" [lsR]="ls -lR $FILES files"
    [unlink]="unlink $FILES files" [write4k]="write $SMALL x 4 KiB" [read4k]="read $SMALL x 4 KiB (cold)"
    [untar]="untar /usr/include" [retar]="re-tar it (cold)" [seqwrite]="write $BIG_MIB MiB + fsync"
    [seqread]="read $BIG_MIB MiB (cold)" [randrw]="random 4 KiB r/w x $RAND_OPS")

declare -A TIMES
PEAK_RSS=0
for round in $(seq 1 "$ROUNDS"); do
    # Alternate the order each round so no target always runs first (warm host caches).
    mapfile -t order < <(round_order "$round" "${ORDER[@]}")
    for t in "${order[@]}"; do
        for w in "${WORKLOADS[@]}"; do
            if declare -F "pre_$w" > /dev/null; then "pre_$w" "${TARGET[$t]}"; fi
            t0=$(now); "wl_$w" "${TARGET[$t]}"; t1=$(now)
            TIMES[$t.$w]+="$(echo "$t1 - $t0" | bc) "
        done
        [ -n "$LSMFS_PID" ] || LSMFS_PID=$(pgrep -f -- "lsmfs.img $DIR/mnt-lsmfs" | head -n1)
        if [ -n "$LSMFS_PID" ] && [ -r /proc/$LSMFS_PID/status ]; then
            rss=$(awk '/VmHWM/ {print $2}' /proc/$LSMFS_PID/status)
            (( rss > PEAK_RSS )) && PEAK_RSS=$rss
        fi
    done
    echo "round $round done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| workload | native s | passthrough_ll s | lsmfs s | lsmfs / passthrough_ll |"
echo "| --- | ---: | ---: | ---: | ---: |"
for w in "${WORKLOADS[@]}"; do
    n=$(echo "${TIMES[native.$w]:-0}" | median); p=$(echo "${TIMES[passthrough_ll.$w]:-0}" | median)
    l=$(echo "${TIMES[lsmfs.$w]:-0}" | median)
    ratio=$(echo "scale=2; $l / $p" | bc 2>/dev/null || echo "-")
    printf '| %s | %.3f | %.3f | %.3f | %s |\n' "${LABEL[$w]}" "$n" "$p" "$l" "$ratio"
done
echo
echo "every round (seconds, in round order):"
for w in "${WORKLOADS[@]}"; do
    echo "  ${LABEL[$w]}: passthrough_ll ${TIMES[passthrough_ll.$w]:-} / lsmfs ${TIMES[lsmfs.$w]:-}"
done
echo
echo "lsmfs daemon peak RSS: $(( PEAK_RSS / 1024 )) MiB; rounds: $ROUNDS (median); lsmfs -o ${LSMFS_OPTS:-(none)}; passthrough_ll defaults; $(uname -r), $(nproc) cores"
