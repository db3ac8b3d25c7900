#!/bin/bash
# make-packer-realflow.sh: build the local Docker image the real-flow packer-docker tests run in
# place of mkaczanowski/packer-builder-arm.
#
#   scripts/make-packer-realflow.sh [IMAGE]     (default fleet-images-packer-realflow:test)
#
# It is a STAND-IN, not packer-builder-arm: a Debian root (mmdebstrap, Debian's own packages:
# util-linux, mount, xz-utils, gzip, libarchive-tools, psmisc, python3, fusefat) with
# Tests/Fixtures/packer-realflow/packer as its entrypoint, imported with `docker import` (no
# registry, no Dockerfile). Unlike the simple stand-in it does packer-builder-arm's real work for
# the `reuse` build method: checksum, unarchive command, losetup --partscan, mounts, chroot
# provisioners under the host's qemu (binfmt_misc, F flag), unmount and detach; see that script.
#
# Needs root (mmdebstrap --mode=root), a running Docker daemon and mmdebstrap (installed by
# FLEET_IMAGES_WITH_TESTBED=1 scripts/install-deps.sh). Rebuilds only when its inputs changed (the
# image carries their SHA-256 as a label; the Debian root is cached as a tar beside the test bases).
# Prints the image id.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
image=${1:-fleet-images-packer-realflow:test}
entry="$repo_dir/Tests/Fixtures/packer-realflow/packer"
cache_root=${FLEET_IMAGES_TESTBED_CACHE:-/var/cache/fleet-images-testbed}
mirror=${FLEET_IMAGES_TESTBED_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=(util-linux mount xz-utils gzip libarchive-tools psmisc python3 coreutils fusefat)

if ! docker info >/dev/null 2>&1; then
    echo "make-packer-realflow.sh: the Docker daemon does not answer; start dockerd" >&2
    exit 69
fi
root_key=$(printf '%s\n' "$suite" "$mirror" "${packages[@]}" | sha256sum | cut -c1-16)
want=$( { echo "$root_key"; sha256sum "$entry" "$0"; } | sha256sum | cut -d ' ' -f 1)
have=$(docker image inspect --format '{{index .Config.Labels "fleet-images.standin-sha256"}}' "$image" 2>/dev/null || true)
if [ "$have" = "$want" ]; then
    docker image inspect --format '{{.Id}}' "$image"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "make-packer-realflow.sh: building the image needs root (mmdebstrap --mode=root)" >&2
    exit 77
fi
command -v mmdebstrap >/dev/null || { echo "make-packer-realflow.sh: mmdebstrap not found; run FLEET_IMAGES_WITH_TESTBED=1 scripts/install-deps.sh" >&2; exit 69; }
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock-realflow"
flock 9
rootfs=$cache_root/realflow-$root_key.tar
if ! [ -f "$rootfs" ]; then
    partial=$cache_root/.realflow-$root_key.$$.tar
    if ! mmdebstrap --variant=essential --mode=root --format=tar \
            --aptopt='Acquire::Retries "3"' \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --include="$(IFS=,; echo "${packages[*]}")" "$suite" "$partial" "deb $mirror $suite main" >"$partial.log" 2>&1; then
        tail -n 30 "$partial.log" >&2
        rm -f "$partial" "$partial.log"
        echo "make-packer-realflow.sh: mmdebstrap failed (log above)" >&2
        exit 1
    fi
    rm -f "$partial.log"
    mv "$partial" "$rootfs"
    for old in "$cache_root"/realflow-*.tar; do [ "$old" = "$rootfs" ] || rm -f "$old"; done
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/usr/local/bin" "$work/build"
install -m 0755 "$entry" "$work/usr/local/bin/packer"
# The Debian root, then the entrypoint on top (one stream for docker import).
{ tar -C "$work" --numeric-owner --owner=0 --group=0 -cf - ./usr/local/bin/packer ./build; } >"$work/overlay.tar"
cp "$rootfs" "$work/image.tar"
tar --concatenate -f "$work/image.tar" "$work/overlay.tar"
docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/packer"]' \
    --change 'WORKDIR /build' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL fleet-images.standin=packer-realflow fleet-images.standin-sha256=$want" \
    "$work/image.tar" "$image" >/dev/null
docker image inspect --format '{{.Id}}' "$image"
