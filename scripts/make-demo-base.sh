#!/bin/bash
# make-demo-base.sh: build the small Raspberry Pi OS-shaped demo base image
# that the demo fleet (fleet.json) and the tests inject into.
#
#   scripts/make-demo-base.sh [OUTPUT.img.xz]
#
# Default output: base/demo-raspios-bookworm-arm64.img.xz (beside this folder),
# with its checksum in sha256sum format beside it (<output>.sha256).
# Needs no root, no loop devices and no Docker: each file system is made in a
# file of its own (mkfs.ext4 -d, mkfs.vfat + mcopy), ownership is fixed with
# debugfs, and both are placed into the partitioned disk file with dd.
# Tools: sfdisk (fdisk), mkfs.ext4/debugfs/e2fsck (e2fsprogs),
# mkfs.vfat/fsck.fat (dosfstools), mcopy (mtools), xz, sha256sum.
#
# The result is reproducible: fixed disk identifier, FAT volume id, ext4 UUID
# and hash seed, and every timestamp pinned to SOURCE_DATE_EPOCH.
# The image boots nothing: it has the layout and a few files of Raspberry Pi OS
# Lite (bookworm, arm64), not its kernel, firmware or programs.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
output=${1:-"$repo_dir/base/demo-raspios-bookworm-arm64.img.xz"}

# 2023-12-11 00:00:00 UTC, the date of the Raspberry Pi OS release it imitates.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1702252800}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
export TZ=UTC LC_ALL=C
export MTOOLS_SKIP_CHECK=1

# Layout, in 512-byte sectors. Raspberry Pi OS puts a FAT32 "bootfs" at sector
# 8192 and the ext4 "rootfs" right after it; the demo keeps that shape with a
# 128 MiB boot and a 188 MiB root partition (320 MiB in all).
readonly sector=512
readonly disk_sectors=655360                 # 320 MiB
readonly boot_start=8192                     # 4 MiB
readonly boot_sectors=262144                 # 128 MiB
readonly root_start=$((boot_start + boot_sectors))
readonly root_sectors=$((disk_sectors - root_start))
readonly disk_id=0x5f1ee7a5
readonly partuuid_prefix=5f1ee7a5
readonly fat_volume_id=5F1EB007
readonly root_uuid=8a3d1c4e-5b2f-4e7a-9c61-0d2f3e4a5b6c
readonly root_hash_seed=1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0
fs_time=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S)
readonly fs_time

for tool in sfdisk mkfs.ext4 debugfs e2fsck mkfs.vfat fsck.fat mcopy minfo xz sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "make-demo-base: '$tool' not found; install fdisk, e2fsprogs, dosfstools, mtools and xz-utils" >&2
        exit 69
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/make-demo-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootdir=$work/root
bootdir=$work/boot
mkdir -p "$rootdir" "$bootdir"

# ---------------------------------------------------------------- root content
(
    cd "$rootdir"
    mkdir -p etc/NetworkManager/system-connections home/pi boot/firmware \
        usr/bin usr/sbin usr/lib var/log root tmp proc sys dev run
    ln -s usr/bin bin
    ln -s usr/sbin sbin
    ln -s usr/lib lib

    printf 'raspberrypi\n' > etc/hostname

    printf '%s\n' \
        '127.0.0.1	localhost' \
        '::1		localhost ip6-localhost ip6-loopback' \
        'ff02::1		ip6-allnodes' \
        'ff02::2		ip6-allrouters' \
        '' \
        '127.0.1.1		raspberrypi' > etc/hosts

    cat > etc/rc.local <<'RCLOCAL'
#!/bin/sh -e
#
# rc.local
#
# This script is executed at the end of each multiuser runlevel.
# Make sure that the script will "exit 0" on success or any other
# value on error.
#
# In order to enable or disable this script just change the execution
# bits.
#
# By default this script does nothing.

# Print the IP address
_IP=$(hostname -I) || true
if [ "$_IP" ]; then
  printf "My IP address is %s\n" "$_IP"
fi

exit 0
RCLOCAL

    cat > etc/os-release <<'OSRELEASE'
# fleet-images demo base image: the shape of Raspberry Pi OS Lite (bookworm,
# arm64) with a handful of files. It boots nothing; it exists so that the demo
# fleet and the tests have a small real disk image to write into.
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
VARIANT="fleet-images demo base (boots nothing)"
VARIANT_ID=fleet-images-demo
OSRELEASE

    printf '%s\n' \
        'proc            /proc           proc    defaults          0       0' \
        "PARTUUID=$partuuid_prefix-01  /boot/firmware  vfat    defaults          0       2" \
        "PARTUUID=$partuuid_prefix-02  /               ext4    defaults,noatime  0       1" > etc/fstab

    printf '%s\n' \
        'root:x:0:0:root:/root:/bin/bash' \
        'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin' \
        'bin:x:2:2:bin:/bin:/usr/sbin/nologin' \
        'sys:x:3:3:sys:/dev:/usr/sbin/nologin' \
        'sync:x:4:65534:sync:/bin:/bin/sync' \
        'man:x:6:12:man:/var/cache/man:/usr/sbin/nologin' \
        'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' \
        'systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin' \
        'messagebus:x:100:107::/nonexistent:/usr/sbin/nologin' \
        'sshd:x:104:65534::/run/sshd:/usr/sbin/nologin' \
        'pi:x:1000:1000:,,,:/home/pi:/bin/bash' > etc/passwd

    printf '%s\n' \
        'root:x:0:' \
        'daemon:x:1:' \
        'bin:x:2:' \
        'sys:x:3:' \
        'adm:x:4:pi' \
        'tty:x:5:' \
        'disk:x:6:' \
        'dialout:x:20:pi' \
        'sudo:x:27:pi' \
        'audio:x:29:pi' \
        'video:x:44:pi' \
        'plugdev:x:46:pi' \
        'staff:x:50:' \
        'users:x:100:pi' \
        'nogroup:x:65534:' \
        'systemd-network:x:998:' \
        'messagebus:x:107:' \
        'netdev:x:108:pi' \
        'gpio:x:997:pi' \
        'i2c:x:994:pi' \
        'spi:x:999:pi' \
        'pi:x:1000:' > etc/group

    chmod 0755 etc/rc.local
    chmod 0644 etc/hostname etc/hosts etc/os-release etc/fstab etc/passwd etc/group
    chmod 0700 etc/NetworkManager/system-connections root
    chmod 0755 etc/NetworkManager home home/pi boot boot/firmware usr usr/bin \
        usr/sbin usr/lib var var/log proc sys dev run
    chmod 1777 tmp
)

# ---------------------------------------------------------------- boot content
printf 'console=serial0,115200 console=tty1 root=PARTUUID=%s-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n' \
    "$partuuid_prefix" > "$bootdir/cmdline.txt"

cat > "$bootdir/config.txt" <<'CONFIG'
# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Run in 64-bit mode
arm_64bit=1

# Disable compensation for displays with overscan
disable_overscan=1

[all]
CONFIG

cat > "$bootdir/README-DEMO.txt" <<'README'
fleet-images demo base image
============================

This is NOT Raspberry Pi OS. It is a small disk image with the partition
layout of Raspberry Pi OS Lite (bookworm, arm64) - a FAT32 "bootfs" at
sector 8192 and an ext4 "rootfs" after it - and a handful of files, made by
scripts/make-demo-base.sh without root. It has no kernel, no firmware and no
programs: it boots nothing. It exists so that the demo fleet and the tests
of fleet-images have a small, real disk image to write claim certificates,
Wi-Fi settings and first-boot scripts into.

For real devices use a Raspberry Pi OS image from
https://downloads.raspberrypi.org/ (see examples/raspios-greengrass).
README

# Pin every timestamp (mkfs.ext4 -d and mcopy -m copy the mtime).
find "$rootdir" "$bootdir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# ------------------------------------------------------------- ext4 (rootfs)
root_img=$work/rootfs.ext4
truncate -s $((root_sectors * sector)) "$root_img"
# Features as Raspberry Pi OS (pi-gen: mkfs.ext4 -O ^64bit,^huge_file over
# Debian's defaults, which include metadata_csum); orphan_file and
# metadata_csum_seed are left off as in Debian bookworm's e2fsprogs.
mkfs.ext4 -q -F -b 4096 -I 256 -i 16384 -L rootfs -U "$root_uuid" \
    -O ^64bit,^huge_file,^orphan_file,^metadata_csum_seed,metadata_csum,has_journal,extent,flex_bg,dir_nlink,extra_isize \
    -E "hash_seed=$root_hash_seed,lazy_itable_init=0,lazy_journal_init=0,nodiscard" \
    -d "$rootdir" "$root_img"

# mkfs.ext4 -d copies the owner of the files it read (whoever runs this
# script); make everything root-owned except /home/pi, and pin the times
# (ctime and crtime cannot be set through the source files).
debugfs_cmds=$work/debugfs.cmds
{
    printf '%s\n' / /lost+found
    (cd "$rootdir" && find . -mindepth 1 | sed 's|^\.||' | sort)
} | while IFS= read -r path; do
    case $path in
        /home/pi | /home/pi/*) owner=1000 ;;
        *) owner=0 ;;
    esac
    printf 'sif "%s" uid %s\n' "$path" "$owner"
    printf 'sif "%s" gid %s\n' "$path" "$owner"
    for field in atime mtime ctime crtime; do
        printf 'sif "%s" %s %s\n' "$path" "$field" "$fs_time"
    done
done > "$debugfs_cmds"
debugfs_log=$work/debugfs.log
debugfs -w -f "$debugfs_cmds" "$root_img" > "$debugfs_log" 2>&1
# debugfs echoes its version and each command; anything else is a complaint.
if grep -v -E -e '^debugfs [0-9.]+ \(' -e '^debugfs: sif ' "$debugfs_log" | grep -q .; then
    echo "make-demo-base: debugfs reported problems:" >&2
    cat "$debugfs_log" >&2
    exit 1
fi

# ------------------------------------------------------------ FAT32 (bootfs)
boot_img=$work/bootfs.vfat
truncate -s $((boot_sectors * sector)) "$boot_img"
# --invariant pins the time-based fields; it must come before -i, or it
# replaces the volume id with its own constant. mkfs.fat warns that the
# lowercase label "bootfs" (Raspberry Pi OS's own) may not work everywhere.
# -h: hidden sectors = the partition's start, as when made on the partition.
mkfs.vfat -F 32 -n bootfs --invariant -i "$fat_volume_id" -h "$boot_start" "$boot_img" > "$work/mkfs.vfat.log" 2>&1 ||
    { cat "$work/mkfs.vfat.log" >&2; exit 1; }
mcopy -i "$boot_img" -m -o "$bootdir/cmdline.txt" "$bootdir/config.txt" "$bootdir/README-DEMO.txt" ::/

# ----------------------------------------------------------------- the disk
disk=$work/disk.img
truncate -s $((disk_sectors * sector)) "$disk"
sfdisk --quiet --no-reread --no-tell-kernel "$disk" <<SFDISK
label: dos
label-id: $disk_id
unit: sectors

start=$boot_start, size=$boot_sectors, type=c
start=$root_start, size=$root_sectors, type=83
SFDISK
dd if="$boot_img" of="$disk" bs=1M seek=$((boot_start * sector)) oflag=seek_bytes conv=notrunc,sparse status=none
dd if="$root_img" of="$disk" bs=1M seek=$((root_start * sector)) oflag=seek_bytes conv=notrunc,sparse status=none

# ------------------------------------------------------------------- verify
# Read the partitions back out of the disk and check them with the fsck tools.
check_boot=$work/check-boot.vfat
check_root=$work/check-root.ext4
dd if="$disk" of="$check_boot" bs=1M skip=$((boot_start * sector)) count=$((boot_sectors * sector)) \
    iflag=skip_bytes,count_bytes status=none
dd if="$disk" of="$check_root" bs=1M skip=$((root_start * sector)) count=$((root_sectors * sector)) \
    iflag=skip_bytes,count_bytes status=none
cmp -s "$check_boot" "$boot_img" || { echo "make-demo-base: boot partition not where expected" >&2; exit 1; }
cmp -s "$check_root" "$root_img" || { echo "make-demo-base: root partition not where expected" >&2; exit 1; }
e2fsck -fn "$check_root" > "$work/e2fsck.log" 2>&1 || { cat "$work/e2fsck.log" >&2; exit 1; }
fsck.fat -n "$check_boot" > "$work/fsck.fat.log" 2>&1 || { cat "$work/fsck.fat.log" >&2; exit 1; }
if [ "$(debugfs -R 'stat /home/pi' "$check_root" 2>/dev/null | sed -n 's/.*User: *\([0-9]*\) *Group: *\([0-9]*\).*/\1:\2/p')" != "1000:1000" ]; then
    echo "make-demo-base: /home/pi is not owned by 1000:1000" >&2
    exit 1
fi
if ! minfo -i "$check_boot" :: 2>/dev/null | grep -q "serial number: $fat_volume_id"; then
    echo "make-demo-base: FAT volume id is not $fat_volume_id" >&2
    exit 1
fi
table=$(sfdisk --dump "$disk")
grep -q "label-id: $disk_id" <<<"$table" || { echo "make-demo-base: wrong disk identifier" >&2; exit 1; }

# ----------------------------------------------------------------- compress
mkdir -p "$(dirname "$output")"
xz -9e -T1 -c "$disk" > "$work/out.img.xz"
mv "$work/out.img.xz" "$output"
(cd "$(dirname "$output")" && sha256sum "$(basename "$output")" > "$(basename "$output").sha256")

raw_size=$(stat -c %s "$disk")
xz_size=$(stat -c %s "$output")
digest=$(sha256sum "$output" | cut -d' ' -f1)
echo "make-demo-base: wrote $output"
echo "  raw image:  $raw_size bytes ($((raw_size / 1048576)) MiB), disk identifier $disk_id"
echo "  partitions: 1 FAT32 'bootfs' at sector $boot_start ($boot_sectors sectors), 2 ext4 'rootfs' at sector $root_start ($root_sectors sectors)"
echo "  compressed: $xz_size bytes"
echo "  sha256:     $digest"
