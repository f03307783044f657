#!/usr/bin/env bash
# Runs the whole test suite (unit, engine, filesystem and real-mount integration tests).
# Installs what is missing first. Release build: the same binary users run.
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/common.sh"
cd "$LSMFS_ROOT"

install_deps
enable_fuse_uring
# One release build of everything (products and tests), then the tests without rebuilding.
swift build -c release --build-tests 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' || true
BIN_DIR="$(swift build -c release --show-bin-path)"
[ -x "$BIN_DIR/lsmfs" ] || { echo "lsmfs: build failed" >&2; exit 1; }
install_mount_helper
export LSMFS_BIN="$BIN_DIR/lsmfs"
swift test -c release --skip-build "$@"
