#!/usr/bin/env bash
# One-command start: installs what is missing, builds lsmfs (release), creates a default image
# under ./lsmfs-data if there is none, and mounts it at ./mnt.
#   LSMFS_DATA (default ./lsmfs-data), LSMFS_MNT (default ./mnt), LSMFS_SIZE (default 8G),
#   LSMFS_BIN (use this binary instead of building)
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/common.sh"
cd "$LSMFS_ROOT"

DATA="${LSMFS_DATA:-$LSMFS_ROOT/lsmfs-data}"
MNT="${LSMFS_MNT:-$LSMFS_ROOT/mnt}"
SIZE="${LSMFS_SIZE:-8G}"
IMAGE="$DATA/lsmfs.img"

install_deps
enable_fuse_uring
if [ -n "${LSMFS_BIN:-}" ] && [ -x "$LSMFS_BIN" ]; then
    BIN="$LSMFS_BIN"          # already built (the test suite runs this script with its binary)
else
    echo "lsmfs: building (release)..."
    swift build -c release --product lsmfs 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' | tail -n 5
    BIN="$(swift build -c release --show-bin-path)/lsmfs"
    [ -x "$BIN" ] || { echo "lsmfs: build failed" >&2; exit 1; }
fi
install_mount_helper

mkdir -p "$DATA" "$MNT"
if [ ! -f "$IMAGE" ]; then
    "$BIN" mkfs "$IMAGE" --size "$SIZE"
fi
if mountpoint -q "$MNT"; then
    echo "lsmfs: $MNT is already mounted"
else
    "$BIN" mount "$IMAGE" "$MNT"
fi
cat <<MSG

lsmfs is mounted at $MNT (image $IMAGE, log $IMAGE.log).
  work there with any shell tool:   cd $MNT && echo hello > f && ls -l
  watch the storage stack:          cat $MNT/.lsmfs-stats     ($BIN stats $MNT --json)
  unmount:                          fusermount3 -u $MNT
  mount again later:                $BIN mount $IMAGE $MNT
MSG
