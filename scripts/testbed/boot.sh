#!/usr/bin/env bash
# boot.sh: boot a Raspberry Pi OS-like arm64 image (one made by fleet-images from a test base of
# make-test-base.sh) under qemu-system-aarch64 with NO network device, and print the report that the
# base's test probe writes on the serial console.
#
#   scripts/testbed/boot.sh IMAGE --serial HEX [--timeout S] [--suite bookworm|trixie] [--console-log FILE]
#
# IMAGE is booted in place and changed by the boot (pass a copy). What the Pi's firmware would do is
# done here: the kernel command line is the image's own cmdline.txt (read from its FAT partition
# with mtools), with root= pointed at /dev/vda2 and console=ttyAMA0 added; the kernel and initramfs
# are the test base's own (from make-test-base.sh's cache, by the image's /etc/os-release unless
# --suite says); the device serial number is put into the device tree (`serial-number` at the root,
# where a Pi's firmware puts it) of qemu's own virt machine.
#
# Prints only the lines between =====FLEET-IMAGES-PROBE-BEGIN===== and =====FLEET-IMAGES-PROBE-END=====
# and exits 0 once the guest has powered off after them. Exits 1 with the console's tail on stderr
# when the report never comes within the timeout (default 900 s), 2 on bad arguments.
# The guest gets `-nic none`: no network at all, so nothing it does reaches outside this machine.
set -euo pipefail

usage() { echo "usage: $0 IMAGE --serial HEX [--timeout S] [--suite bookworm|trixie] [--console-log FILE]" >&2; exit 2; }

image=""
serial=""
timeout_s=900
suite=""
console_log=""
while [ $# -gt 0 ]; do
    case $1 in
        --serial) serial=${2:-}; shift 2 || usage ;;
        --timeout) timeout_s=${2:-}; shift 2 || usage ;;
        --suite) suite=${2:-}; shift 2 || usage ;;
        --console-log) console_log=${2:-}; shift 2 || usage ;;
        -*) usage ;;
        *) [ -z "$image" ] || usage; image=$1; shift ;;
    esac
done
[ -n "$image" ] && [ -f "$image" ] || { echo "boot.sh: no image file '$image'" >&2; usage; }
[[ $serial =~ ^[0-9a-fA-F]{1,16}$ ]] || { echo "boot.sh: --serial takes 1 to 16 hex digits (a Pi's serial), not '$serial'" >&2; exit 2; }
[[ $timeout_s =~ ^[0-9]+$ ]] || usage

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MTOOLS_SKIP_CHECK=1
for tool in qemu-system-aarch64 fdtput mtype sfdisk debugfs; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "boot.sh: '$tool' not found; run FLEET_IMAGES_WITH_TESTBED=1 scripts/install-deps.sh" >&2
        exit 69
    }
done

# Partition offsets from the MBR.
starts=$(sfdisk --dump "$image" 2>/dev/null | sed -n 's/.*start= *\([0-9]*\),.*/\1/p')
boot_offset=$(( $(echo "$starts" | sed -n 1p) * 512 ))
root_offset=$(( $(echo "$starts" | sed -n 2p) * 512 ))
[ "$boot_offset" -gt 0 ] && [ "$root_offset" -gt 0 ] || { echo "boot.sh: $image has no two-partition MBR" >&2; exit 1; }

if [ -z "$suite" ]; then
    # /etc/os-release is a link to /usr/lib/os-release, which debugfs does not follow.
    suite=$(debugfs -R 'cat /usr/lib/os-release' "$image?offset=$root_offset" 2>/dev/null | sed -n 's/^VERSION_CODENAME=//p')
fi
case $suite in
    bookworm|trixie) ;;
    *) echo "boot.sh: cannot tell the image's release (VERSION_CODENAME '$suite'); pass --suite" >&2; exit 1 ;;
esac
base=$("$script_dir/make-test-base.sh" "$suite")
base_dir=$(dirname "$base")

cmdline=$(mtype -i "$image@@$boot_offset" ::cmdline.txt | tr -d '\r' | head -n 1)
[ -n "$cmdline" ] || { echo "boot.sh: the boot partition has no cmdline.txt" >&2; exit 1; }
append=""
for word in $cmdline; do
    case $word in
        root=*) append+=" root=/dev/vda2" ;;
        *) append+=" $word" ;;
    esac
done
append="${append# } console=ttyAMA0"

work=$(mktemp -d "${TMPDIR:-/tmp}/fleet-images-boot.XXXXXX")
qemu_pid=""
cleanup() {
    [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

smp=${FLEET_IMAGES_TESTBED_SMP:-2}
machine=(-M virt -cpu cortex-a72 -m 1024 -smp "$smp" -nic none)
# qemu's own device tree for exactly this machine, plus the serial number a Pi's firmware would add.
qemu-system-aarch64 "${machine[@]}" -machine dumpdtb="$work/virt.dtb" -display none >/dev/null 2>&1
fdtput -t s "$work/virt.dtb" / serial-number "$serial"

console=${console_log:-$work/console.log}
: >"$console"
started=$(date +%s)
qemu-system-aarch64 "${machine[@]}" -nographic \
    -kernel "$base_dir/vmlinuz" -initrd "$base_dir/initrd.img" -dtb "$work/virt.dtb" \
    -append "$append" \
    -drive "file=$image,if=virtio,format=raw,cache=unsafe" \
    </dev/null >"$console" 2>&1 &
qemu_pid=$!

begin='=====FLEET-IMAGES-PROBE-BEGIN====='
end='=====FLEET-IMAGES-PROBE-END====='
deadline=$((started + timeout_s))
reported=""
while [ "$(date +%s)" -lt "$deadline" ]; do
    if grep -qa -- "$end" "$console"; then
        reported=$(date +%s)
        break
    fi
    kill -0 "$qemu_pid" 2>/dev/null || break
    sleep 2
done

if [ -z "$reported" ]; then
    echo "boot.sh: no probe report from $image within $(( $(date +%s) - started )) s (timeout ${timeout_s} s); console tail:" >&2
    tail -n 80 "$console" | tr -d '\r' >&2
    exit 1
fi
# The guest powers off after the report; give it a minute to finish.
for _ in $(seq 1 60); do
    kill -0 "$qemu_pid" 2>/dev/null || break
    sleep 1
done
if kill -0 "$qemu_pid" 2>/dev/null; then
    echo "boot.sh: the guest did not power off within 60 s of its report; stopped" >&2
else
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
fi
echo "boot.sh: $suite, serial $serial: report after $((reported - started)) s, powered off after $(( $(date +%s) - started )) s" >&2
tr -d '\r' <"$console" | sed -n "/$begin/,/$end/p" | sed '1d;$d'
