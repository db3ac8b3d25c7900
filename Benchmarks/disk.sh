#!/usr/bin/env bash
# Issue 13.5: disk used per variant of the demo base, on an XFS with reflinks and on an ext4, both
# made here on loop-mounted files (root), against the variant's changed bytes and a full copy;
# then a second night and prune --keep 1. Four runs: the demo base (320 MiB, little data) for
# XFS_SITES sites on XFS (default 1000) and EXT4_SITES on ext4 (default 100), and the Raspberry Pi
# OS-sized image (2.6 GiB, 1.6 GB of data; made once and cached, see Benchmarks/README.md) for
# PI_SITES sites on each (default 5).
#
#   sudo Benchmarks/disk.sh [XFS_SITES [EXT4_SITES [PI_SITES]]]   (FLEET_IMAGES_BENCH_NO_BUILD=1 skips the release build)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ "$(id -u)" -eq 0 ] || { echo "disk.sh mounts loop file systems: run it as root" >&2; exit 2; }
command -v mkfs.xfs >/dev/null || { echo "disk.sh needs mkfs.xfs (Debian's xfsprogs)" >&2; exit 69; }
build_release fleet-images-bench
xfs_sites=${1:-1000}
ext4_sites=${2:-100}
pi_sites=${3:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/fleet-images-bench-disk.XXXXXX")
cleanup() {
    for fs in xfs ext4; do mountpoint -q "$work/$fs" && umount "$work/$fs"; done
    rm -rf "$work"
}
trap cleanup EXIT
# Sparse loop files: they take only what is written. 40 GiB leaves room for both nights on XFS;
# ext4 is sized for its fewer sites (each a full copy of the image's data).
truncate -s 40G "$work/xfs.img"
mkfs.xfs -q -m reflink=1 "$work/xfs.img"
truncate -s 40G "$work/ext4.img"
mkfs.ext4 -q -F "$work/ext4.img"
for fs in xfs ext4; do
    mkdir "$work/$fs"
    mount -o loop "$work/$fs.img" "$work/$fs"
done
status=0
bench disk --on "$work/xfs" --sites "$xfs_sites" || status=1
echo
bench disk --on "$work/ext4" --sites "$ext4_sites" || status=1
echo
bench disk --on "$work/xfs" --sites "$pi_sites" --base pi || status=1
echo
bench disk --on "$work/ext4" --sites "$pi_sites" --base pi || status=1
exit $status
