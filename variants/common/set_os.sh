#!/bin/bash
# set_os.sh: build-time changes to the image, run by Packer's shell
# provisioner inside the image's chroot (packer-builder-arm + qemu).
# Only for builder type "packer-docker"; the inject builder writes the same
# result (ssh flag, rc.local) from the manifest's files list.
#
# Differences from the seed project, on purpose:
#  - No fixed password for "pi": a password baked into every image of a fleet
#    is the same secret on every device. The account is locked unless
#    PI_PASSWORD_HASH holds a crypt(3) hash (make one with
#    `openssl passwd -6`; pass it with `-var pi_password_hash=...`, the
#    template lists it as a sensitive variable). With the account locked, log
#    in with an SSH key: add /home/pi/.ssh/authorized_keys through `files`.
#  - No download of a resize2fs_once script at build time: Raspberry Pi OS
#    bookworm grows the root file system on first boot by itself
#    (init=/usr/lib/raspberrypi-sys-mods/firstboot in cmdline.txt), and an
#    unpinned download would make the image depend on whatever that URL
#    served on the day of the build.
# Every step can run twice without doing its work twice.
set -euo pipefail

readonly boot=/boot/firmware
readonly home_dir=/home/pi
readonly cmdline=$boot/cmdline.txt
readonly rc_local=/etc/rc.local
readonly hook='if [ -x /home/pi/provision.sh ]; then /home/pi/provision.sh >> /home/pi/provision.log 2>&1 & fi'

# SSH on first boot (Raspberry Pi OS enables sshd when this file exists).
touch "$boot/ssh"

# The pi account: a given hash, or locked.
if [ -n "${PI_PASSWORD_HASH:-}" ]; then
    usermod -p "$PI_PASSWORD_HASH" pi
    # Bookworm asks for a user name on first boot unless userconf.txt exists;
    # with it, pi stays pi and /home/pi/provision.sh stays where rc.local
    # looks for it.
    printf 'pi:%s\n' "$PI_PASSWORD_HASH" > "$boot/userconf.txt"
else
    usermod -L pi
fi

# Compressed swap cache in RAM, as the seed had it. cmdline.txt is one line.
if ! grep -q 'zswap.enabled=' "$cmdline"; then
    sed -i '1 s/$/ zswap.enabled=1/' "$cmdline"
fi

# Start provision.sh at boot, in the background, before rc.local's exit 0.
if ! grep -qF '/home/pi/provision.sh' "$rc_local"; then
    sed -i "/^exit 0/i # fleet-images: enrol in AWS IoT Greengrass once; /home/pi/provision.sh deletes these two lines when it succeeds.\\
$hook" "$rc_local"
fi
chmod 0755 "$rc_local"

# What Packer's file provisioner copied in is root-owned; give it to pi.
for f in provision.sh config.yaml config_parameters.txt claim.pem.crt claim.private.pem.key; do
    if [ -e "$home_dir/$f" ]; then
        chown 1000:1000 "$home_dir/$f"
    fi
done
if [ -e "$home_dir/provision.sh" ]; then
    chmod 0755 "$home_dir/provision.sh"
fi
if [ -e "$home_dir/claim.private.pem.key" ]; then
    chmod 0600 "$home_dir/claim.private.pem.key"
fi
