#!/usr/bin/env bash
# make-test-base.sh: build (once) a Raspberry Pi OS-like arm64 base image from Debian's own packages,
# for the boot tests, and print the path of its raw image.
#
#   scripts/testbed/make-test-base.sh bookworm|trixie
#
# Beside the printed <dir>/base.img are: base.img.sha256 (sha256sum format), vmlinuz and initrd.img
# (the image's own kernel and initramfs, for qemu's direct kernel boot), packages.txt (what is
# installed) and build.log. The folder is
#   ${FLEET_IMAGES_TESTBED_CACHE:-/var/cache/fleet-images-testbed}/<suite>-<key>
# where key is the SHA-256 of this script and of everything under guest/ (the package lists are in
# this script): a second call with the same inputs only prints the path. A build happens in a
# temporary folder beside it and is renamed into place when complete, so a killed build leaves no
# half cache.
#
# The image (a 2 GiB sparse file) has Raspberry Pi OS's shape: an MBR with partition 1 FAT32
# "bootfs" (mounted at /boot/firmware: cmdline.txt with one line, config.txt) and partition 2 ext4
# "rootfs". Its Raspberry Pi OS behaviours are reproduced, named as stand-ins (see guest/):
#  - UID-1000 user `pi`, password locked;
#  - Wi-Fi off as pi-gen leaves it: NetworkManager.state WirelessEnabled=false, rfkill state files 1;
#  - sshd installed but disabled until an `ssh` file on the boot partition (sshswitch-standin);
#  - bookworm: the first-boot user wizard holds multi-user.target unless userconf.txt is on the boot
#    partition, which it applies (userconfig-standin);
#  - trixie: cloud-init reading its NoCloud seed from the boot partition (the seed files Raspberry Pi
#    OS ships there), netplan rendering to NetworkManager; no wizard.
# Plus a TEST-ONLY unit, fleet-images-test-probe.service, that reports the device's state on the
# serial console late on every boot and powers off (scripts/testbed/boot.sh reads it).
#
# Needs root (the file systems keep real owners), network access to the Debian archive, mmdebstrap,
# qemu-user-static with binfmt_misc mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc),
# e2fsprogs, dosfstools, mtools, fdisk. scripts/install-deps.sh installs them with FLEET_IMAGES_WITH_TESTBED=1.
set -euo pipefail

suite=${1:-}
case $suite in
    bookworm|trixie) ;;
    *) echo "usage: $0 bookworm|trixie" >&2; exit 2 ;;
esac

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
guest=$script_dir/guest
cache_root=${FLEET_IMAGES_TESTBED_CACHE:-/var/cache/fleet-images-testbed}
mirror=${FLEET_IMAGES_TESTBED_MIRROR:-http://deb.debian.org/debian}

# What Raspberry Pi OS Lite has that the tests look at, from Debian.
packages=(
    systemd systemd-sysv systemd-timesyncd udev dbus kmod iproute2 procps
    network-manager openssh-server iw rfkill wpasupplicant
    locales tzdata keyboard-configuration console-setup sudo
    linux-image-arm64 initramfs-tools e2fsprogs dosfstools
    curl ca-certificates openssl less
)
if [ "$suite" = trixie ]; then
    packages+=(cloud-init netplan.io)
fi

# How the packages are installed (hashed into the cache keys).
mmdebstrap_options=(
    --arch=arm64 --variant=apt --mode=root --format=tar
    --aptopt='Acquire::Retries "3"'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    # Under qemu-user every maintainer script is emulated: skip debconf's preconfiguration pass,
    # and give the initramfs only what qemu's virt machine needs to mount the root file system
    # (MODULES=most would copy thousands of modules, one emulated modinfo each: over an hour).
    --aptopt='#clear DPkg::Pre-Install-Pkgs;'
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"'
    --essential-hook='echo MODULES=list >"$1/etc/initramfs-tools/conf.d/fleet-images-testbed"'
    --essential-hook='printf "%s\n" virtio_pci virtio_mmio virtio_blk ext4 crc32c_generic >"$1/usr/share/initramfs-tools/modules.d/fleet-images-testbed"'
)
# Two layers, each cached by its inputs: the installed packages (a tar of mmdebstrap's root, the
# slow part: everything runs under qemu-user) and the image made from it with the test bed's own
# files (a minute). Changing a stand-in or the probe rebuilds only the second.
packages_key=$(printf '%s\n' "$suite" "$mirror" "${mmdebstrap_options[@]}" "${packages[@]}" | sha256sum | cut -c1-16)
key=$(
    cd "$script_dir"
    {
        echo "$packages_key"
        sha256sum make-test-base.sh
        find guest -type f -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
)
dir=$cache_root/$suite-$key
rootfs_tar=$cache_root/packages-$suite-$packages_key.tar

if [ -f "$dir/complete" ]; then
    echo "$dir/base.img"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "make-test-base: building the $suite test base needs root (real file owners); none cached at $dir" >&2
    exit 77
fi
for tool in mmdebstrap sfdisk mkfs.ext4 mkfs.vfat mcopy sha256sum systemctl flock; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "make-test-base: '$tool' not found; run FLEET_IMAGES_WITH_TESTBED=1 scripts/install-deps.sh" >&2
        exit 69
    }
done
if ! [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    echo "make-test-base: no binfmt_misc handler for arm64 programs (qemu-aarch64); as root:" >&2
    echo "  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable qemu-aarch64" >&2
    exit 69
fi

mkdir -p "$cache_root"
# One build per suite at a time; a second caller waits, then finds the cache.
exec 9>"$cache_root/.lock-$suite"
flock 9
if [ -f "$dir/complete" ]; then
    echo "$dir/base.img"
    exit 0
fi

# Removes a build folder; a build killed while mmdebstrap had /dev, /proc or /sys mounted in its
# root leaves those mounts, which are unmounted first and never descended into.
remove_tree() {
    local path=$1 mount_point
    [ -e "$path" ] || return 0
    while read -r mount_point; do
        umount -R -l "$mount_point" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | grep -F "$(realpath "$path")/" | sort -r)
    rm -rf --one-file-system "$path"
}
# Stale folders of killed builds, and superseded caches of this suite, go.
for old in "$cache_root/.build-$suite-"* "$cache_root/$suite-"*; do
    [ -d "$old" ] && [ "$old" != "$dir" ] && remove_tree "$old"
done
for old in "$cache_root/packages-$suite-"*.tar "$cache_root/.packages-$suite-"*; do
    [ -f "$old" ] && [ "$old" != "$rootfs_tar" ] && rm -f "$old"
done

work=$(mktemp -d "$cache_root/.build-$suite-XXXXXX")
trap 'remove_tree "$work"' EXIT
root=$work/root
log=$work/build.log
started=$(date +%s)
echo "make-test-base: building the $suite test base (log: $log; takes minutes)" >&2

# Layout, in 512-byte sectors: Raspberry Pi OS's (FAT at 4 MiB, ext4 right after it).
readonly disk_mib=2048
readonly boot_start=8192 boot_sectors=524288          # 4 MiB, 256 MiB
readonly root_start=$((boot_start + boot_sectors))
readonly root_mib=$((disk_mib - root_start / 2048))
readonly disk_id=7e57ba5e
readonly fat_id=7E57B007
readonly root_uuid=7e57ba5e-0000-4000-8000-00000000f1ee

if ! [ -f "$rootfs_tar" ]; then
    echo "make-test-base: installing the $suite packages for arm64 (under qemu-user: tens of minutes)" >&2
    partial=$cache_root/.packages-$suite-$packages_key.$$.tar
    if ! mmdebstrap "${mmdebstrap_options[@]}" --include="$(IFS=,; echo "${packages[*]}")" \
            "$suite" "$partial" "deb $mirror $suite main" >"$log" 2>&1; then
        rm -f "$partial"
        tail -n 40 "$log" >&2
        echo "make-test-base: mmdebstrap failed (log above)" >&2
        exit 1
    fi
    mv "$partial" "$rootfs_tar"
    echo "make-test-base: packages installed after $(( $(date +%s) - started )) s" >&2
fi
mkdir "$root"
tar -C "$root" --extract --numeric-owner --preserve-permissions --xattrs --xattrs-include='*' -f "$rootfs_tar"

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@" >>"$log" 2>&1; }

# --- identity, mounts --------------------------------------------------------------------------
echo raspberrypi >"$root/etc/hostname"
cat >"$root/etc/hosts" <<EOF
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

127.0.1.1	raspberrypi
EOF
cat >"$root/etc/fstab" <<EOF
proc            /proc           proc    defaults          0       0
PARTUUID=$disk_id-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=$disk_id-02  /               ext4    defaults,noatime  0       1
EOF
mkdir -p "$root/boot/firmware"
# As Raspberry Pi OS: no machine-id in the image, each device makes its own.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# --- locale, time zone, keyboard: Raspberry Pi OS's defaults --------------------------------------
sed -i 's/^# *\(en_GB.UTF-8 UTF-8\)/\1/' "$root/etc/locale.gen"
in_root locale-gen
echo 'LANG=en_GB.UTF-8' >"$root/etc/default/locale"
echo Europe/London >"$root/etc/timezone"
ln -sf /usr/share/zoneinfo/Europe/London "$root/etc/localtime"
cat >"$root/etc/default/keyboard" <<'EOF'
XKBMODEL="pc105"
XKBLAYOUT="gb"
XKBVARIANT=""
XKBOPTIONS=""
BACKSPACE="guess"
EOF

# --- the UID-1000 user, password locked ------------------------------------------------------------
groups=()
for group in adm dialout cdrom sudo audio video plugdev games users input render netdev; do
    grep -q "^$group:" "$root/etc/group" && groups+=("$group")
done
in_root useradd --create-home --uid 1000 --user-group --shell /bin/bash --groups "$(IFS=,; echo "${groups[*]}")" pi
in_root passwd --lock pi
echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/010_pi-nopasswd"
chmod 0440 "$root/etc/sudoers.d/010_pi-nopasswd"

# --- Wi-Fi off, as pi-gen leaves it --------------------------------------------------------------
mkdir -p "$root/var/lib/NetworkManager" "$root/var/lib/systemd/rfkill"
printf '[main]\nWirelessEnabled=false\n' >"$root/var/lib/NetworkManager/NetworkManager.state"
for device in platform-3f300000.mmcnr platform-fe300000.mmcnr; do
    echo 1 >"$root/var/lib/systemd/rfkill/$device:wlan"
done

# --- sshd installed, off until the ssh file ------------------------------------------------------------
systemctl --root="$root" disable ssh.service >>"$log" 2>&1
# A device's first boot (empty machine-id) applies presets; keep sshd off there too.
mkdir -p "$root/etc/systemd/system-preset"
echo 'disable ssh.service' >"$root/etc/systemd/system-preset/20-fleet-images-testbed.preset"
install -m 0644 "$guest/sshswitch-standin.service" "$root/etc/systemd/system/"
systemctl --root="$root" enable sshswitch-standin.service >>"$log" 2>&1

# --- first-boot user configuration -------------------------------------------------------------------
if [ "$suite" = bookworm ]; then
    install -d -m 0755 "$root/usr/lib/userconf-standin"
    install -m 0755 "$guest/userconf-standin/userconf-service" "$guest/userconf-standin/userconf" "$root/usr/lib/userconf-standin/"
    install -m 0644 "$guest/userconfig-standin.service" "$root/etc/systemd/system/"
    systemctl --root="$root" enable userconfig-standin.service >>"$log" 2>&1
else
    install -m 0644 "$guest/cloud-init/99-fleet-images-testbed.cfg" "$root/etc/cloud/cloud.cfg.d/"
    install -m 0600 "$guest/cloud-init/01-network-manager.yaml" "$root/etc/netplan/"
fi

# --- the test-only probe -------------------------------------------------------------------------------
install -d -m 0755 "$root/usr/local/lib/fleet-images-testbed"
install -m 0755 "$guest/probe" "$root/usr/local/lib/fleet-images-testbed/probe"
install -m 0644 "$guest/fleet-images-test-probe.service" "$root/etc/systemd/system/"
systemctl --root="$root" enable fleet-images-test-probe.service >>"$log" 2>&1

# --- kernel and initramfs for qemu's direct boot ---------------------------------------------------------
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n 1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' >"$work/packages.txt"
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/tmp/* "$root"/var/tmp/*

# --- boot partition ------------------------------------------------------------------------------------------
boot_files=$work/bootfs
mkdir -p "$boot_files"
echo "console=serial0,115200 console=tty1 root=PARTUUID=$disk_id-02 rootfstype=ext4 fsck.repair=yes rootwait" >"$boot_files/cmdline.txt"
cat >"$boot_files/config.txt" <<'EOF'
# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[all]
EOF
if [ "$suite" = trixie ]; then
    cp "$guest/cloud-init/meta-data" "$guest/cloud-init/user-data" "$guest/cloud-init/network-config" "$boot_files/"
fi
export MTOOLS_SKIP_CHECK=1
mkfs.vfat -F 32 -n bootfs -i "$fat_id" -C "$work/bootfs.img" $((boot_sectors / 2)) >>"$log" 2>&1
mcopy -i "$work/bootfs.img" "$boot_files"/* ::/

# --- root partition --------------------------------------------------------------------------------------
used_mib=$(du -sm "$root" | cut -f1)
if [ $((used_mib * 5 / 4)) -gt "$root_mib" ]; then
    echo "make-test-base: the root file system ($used_mib MiB) does not fit $root_mib MiB with room to spare" >&2
    exit 1
fi
mkfs.ext4 -q -F -L rootfs -U "$root_uuid" -d "$root" "$work/rootfs.img" "${root_mib}M" >>"$log" 2>&1

# --- the disk -----------------------------------------------------------------------------------------------
truncate -s "${disk_mib}M" "$work/base.img"
sfdisk --quiet "$work/base.img" >>"$log" 2>&1 <<EOF
label: dos
label-id: 0x$disk_id
unit: sectors

start=$boot_start, size=$boot_sectors, type=c
start=$root_start, type=83
EOF
dd if="$work/bootfs.img" of="$work/base.img" bs=1M seek=$((boot_start / 2048)) conv=notrunc,sparse status=none
dd if="$work/rootfs.img" of="$work/base.img" bs=1M seek=$((root_start / 2048)) conv=notrunc,sparse status=none
remove_tree "$root"
rm -f "$work/rootfs.img" "$work/bootfs.img"
rm -rf "$boot_files"
(cd "$work" && sha256sum base.img >base.img.sha256)
echo "$(( $(date +%s) - started )) s to build; $used_mib MiB of files" >>"$log"
touch "$work/complete"

trap - EXIT
mv -T "$work" "$dir"
echo "make-test-base: $suite test base built in $(( $(date +%s) - started )) s" >&2
echo "$dir/base.img"
