#!/bin/bash
# set_os.sh: build-time changes that must run inside the image's chroot, by
# Packer's shell provisioner (builder type "packer-docker" only).
#
# The first-boot contract (login user, SSH, Wi-Fi radio, hostname, the
# root-owned enrolment unit) is written by fleet-images itself, the same way
# for both builders, from the manifest: nothing here touches /home/pi,
# /etc/rc.local (Trixie images have none, and systemd 260 no longer runs it)
# or the pi account.
#
# Differences from the seed project, on purpose:
#  - No fixed password for "pi" and no `ssh` flag: set "user" and "ssh" in
#    fleet.json instead (a password hash from a file or the environment,
#    public keys from files).
#  - No download of a resize2fs_once script at build time: Raspberry Pi OS
#    grows the root file system on first boot by itself, and an unpinned
#    download would make the image depend on whatever that URL served on the
#    day of the build.
# Every step can run twice without doing its work twice.
set -euo pipefail

readonly cmdline=/boot/firmware/cmdline.txt

# Compressed swap cache in RAM, as the seed had it. cmdline.txt is one line.
if ! grep -q 'zswap.enabled=' "$cmdline"; then
    sed -i '1 s/$/ zswap.enabled=1/' "$cmdline"
fi
