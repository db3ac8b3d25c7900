#!/bin/bash
# make-packer-standin.sh: build the local Docker image the packer-docker tests
# run in place of mkaczanowski/packer-builder-arm.
#
#   scripts/make-packer-standin.sh [IMAGE]     (default fleet-images-packer-standin:test)
#
# It is a STAND-IN, not packer-builder-arm: a static busybox root file system
# with Tests/Fixtures/packer-standin/packer as its entrypoint, imported with
# `docker import` (no Dockerfile, no registry, no network). See the comment at
# the top of that script for what it does.
#
# Needs: a running Docker daemon and busybox-static (apt-get install
# busybox-static). Rebuilds only when the script changed (the image carries the
# script's SHA-256 as a label). Prints the image id.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
image=${1:-fleet-images-packer-standin:test}
entry="$repo_dir/Tests/Fixtures/packer-standin/packer"
busybox=$(command -v busybox || true)

if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    busybox=/bin/busybox
fi
if [ ! -x "$busybox" ]; then
    echo "make-packer-standin.sh: a static busybox is needed: apt-get install busybox-static" >&2
    exit 69
fi
if ! docker info >/dev/null 2>&1; then
    echo "make-packer-standin.sh: the Docker daemon does not answer; start dockerd (or add your user to the docker group)" >&2
    exit 69
fi

want=$(sha256sum "$entry" | cut -d ' ' -f 1)
have=$(docker image inspect --format '{{index .Config.Labels "fleet-images.standin-sha256"}}' "$image" 2>/dev/null || true)
if [ "$have" = "$want" ]; then
    docker image inspect --format '{{.Id}}' "$image"
    exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/usr/local/bin" "$root/tmp" "$root/build" "$root/etc"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
install -m 0755 "$entry" "$root/usr/local/bin/packer"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"

tar --numeric-owner --owner=0 --group=0 -C "$root" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/packer"]' \
    --change 'WORKDIR /build' \
    --change 'ENV PATH=/usr/local/bin:/bin' \
    --change "LABEL fleet-images.standin=packer fleet-images.standin-sha256=$want" \
    - "$image" >/dev/null
docker image inspect --format '{{.Id}}' "$image"
