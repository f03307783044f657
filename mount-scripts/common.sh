# Shared by start.sh and test.sh: install what is missing, find the repository root.
# shellcheck shell=bash
LSMFS_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "lsmfs: need root to run: $*" >&2; return 1; fi
}

# fuse3 (fusermount3, mount.fuse3), libfuse3-dev and pkg-config, installed only if missing.
install_deps() {
    local missing=()
    command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    if ! pkg-config --exists fuse3 2>/dev/null; then missing+=(libfuse3-dev); fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "lsmfs: installing ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [ ! -e /dev/fuse ]; then
        as_root modprobe fuse 2>/dev/null || true
    fi
    if ! command -v swift >/dev/null 2>&1; then
        echo "lsmfs: the Swift toolchain (swift 6.x) is required but not on PATH" >&2
        return 1
    fi
}

# Lets `mount -t fuse.lsmfs IMAGE DIR` and fstab lines find our helper (root only).
install_mount_helper() {
    [ "$(id -u)" -eq 0 ] || return 0
    ln -sf "$LSMFS_ROOT/mount-scripts/mount.lsmfs" /sbin/mount.fuse.lsmfs 2>/dev/null || true
}

# FUSE over io_uring (Linux >= 6.14): the kernel lets FUSE servers use it only with the fuse
# module's enable_uring=Y. lsmfs then serves each CPU's requests on that CPU (docs/fuse-io-uring.md);
# without it lsmfs serves /dev/fuse. LSMFS_NO_IO_URING=1 leaves the setting alone.
enable_fuse_uring() {
    local p=/sys/module/fuse/parameters/enable_uring
    [ -z "${LSMFS_NO_IO_URING:-}" ] && [ -e "$p" ] || return 0
    [ "$(cat "$p" 2>/dev/null)" = Y ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo Y > "$p" 2>/dev/null || echo "lsmfs: could not enable FUSE over io_uring ($p); using /dev/fuse" >&2
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        echo Y | sudo -n tee "$p" >/dev/null 2>&1 || true
    fi
    return 0
}
