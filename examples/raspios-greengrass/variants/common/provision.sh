#!/bin/bash
# provision.sh: first-boot enrolment of this device in AWS IoT Greengrass v2
# by fleet provisioning by claim.
#
# Run as root by fleet-images-first-boot.service (the manifest's
# "first_boot": {"command": [...]}) once the network is online; its output goes
# to the journal (journalctl -u fleet-images-first-boot). fleet-images wrote,
# per site, into the root-only folder /etc/fleet-images (0700 root):
#   config_parameters.txt   five lines: AWS region, IoT data endpoint,
#                           IoT credential endpoint, token-exchange role alias,
#                           fleet provisioning template
#   claim.pem.crt           the site's claim certificate
#   claim.private.pem.key   and its private key (0600 root)
#   config.yaml             the Greengrass init config with __TOKENS__
# Exit 0: enrolled; the claim material is deleted and the unit never runs again.
# Exit 75: not yet (no network, or a clock still in the past): the unit's timer
# tries again later. Any other exit: a real failure, retried by the timer too.
set -euo pipefail

readonly conf_dir=/etc/fleet-images
readonly params_file=$conf_dir/config_parameters.txt
readonly config_file=$conf_dir/config.yaml
readonly claim_cert=$conf_dir/claim.pem.crt
readonly claim_key=$conf_dir/claim.private.pem.key
readonly gg_root=/greengrass/v2
readonly root_ca_url=https://www.amazontrust.com/repository/AmazonRootCA1.pem
readonly nucleus_url=https://d2s8p88vqu9w66.cloudfront.net/releases/greengrass-nucleus-latest.zip
readonly plugin_url=https://d2s8p88vqu9w66.cloudfront.net/releases/aws-greengrass-FleetProvisioningByClaim/fleetprovisioningbyclaim-latest.jar
readonly not_yet=75

log() { printf '%s provision: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
fail() { log "ERROR: $*"; exit 1; }
later() { log "not yet: $*"; exit "$not_yet"; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (fleet-images-first-boot.service starts it)"
for f in "$params_file" "$config_file" "$claim_cert" "$claim_key"; do
    [ -f "$f" ] || fail "$f is missing; was this image built by fleet-images?"
done

# --- parameters, in the seed project's order ---------------------------------
mapfile -t params < <(sed 's/\r$//' "$params_file")
[ "${#params[@]}" -ge 5 ] || fail "$params_file has ${#params[@]} lines, expected 5"
aws_region=${params[0]}
iot_data_endpoint=${params[1]}
iot_credential_endpoint=${params[2]}
iot_role_alias=${params[3]}
provisioning_template=${params[4]}
for value in "$aws_region" "$iot_data_endpoint" "$iot_credential_endpoint" "$iot_role_alias" "$provisioning_template"; do
    # Each value lands inside a double-quoted YAML string.
    [[ -n $value && $value != *[\"\\]* ]] || fail "$params_file has an empty or unusable line"
done

# --- device serial: the Greengrass thing is named after it --------------------
serial=$(awk -F': *' '/^Serial/ { print $2 }' /proc/cpuinfo | tr -d '[:space:]')
if [ -z "$serial" ] && [ -r /sys/firmware/devicetree/base/serial-number ]; then
    serial=$(tr -d '\0[:space:]' < /sys/firmware/devicetree/base/serial-number)
fi
[[ $serial =~ ^[0-9A-Za-z]+$ ]] || fail "no usable serial number in /proc/cpuinfo or the device tree"
log "serial $serial, region $aws_region, template $provisioning_template"

# --- clock and network: a Pi has no real-time clock ---------------------------
# TLS fails with a clock in 1970; wait for time sync rather than fail for good.
[ "$(date -u +%Y)" -ge 2024 ] || later "the clock says $(date -u +%Y-%m-%d); waiting for time synchronisation"
curl --silent --head --max-time 15 --output /dev/null "$root_ca_url" \
    || later "cannot reach $root_ca_url (no network yet?)"

# --- Java (the Greengrass nucleus runs on a JRE) ------------------------------
# The seed also installed Docker; the nucleus does not need it, so it is left
# to the components that do.
log "installing Java"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends default-jre-headless unzip curl ca-certificates

# --- claim material and downloads ---------------------------------------------
install -d -m 0755 "$gg_root"
install -m 0644 "$claim_cert" "$gg_root/claim.pem.crt"
install -m 0600 "$claim_key" "$gg_root/claim.private.pem.key"

work=$(mktemp -d /tmp/greengrass-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
log "downloading the Amazon root CA, the nucleus and the fleet provisioning plugin"
curl --fail --silent --show-error --location --retry 5 --output "$gg_root/AmazonRootCA1.pem" "$root_ca_url"
curl --fail --silent --show-error --location --retry 5 --output "$work/greengrass-nucleus.zip" "$nucleus_url"
curl --fail --silent --show-error --location --retry 5 --output "$work/fleetprovisioningbyclaim.jar" "$plugin_url"
unzip -q "$work/greengrass-nucleus.zip" -d "$work/GreengrassInstaller"

nucleus_version=$(java -jar "$work/GreengrassInstaller/lib/Greengrass.jar" --version | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n 1)
[ -n "$nucleus_version" ] || fail "could not read the nucleus version from the installer"

# --- fill config.yaml ---------------------------------------------------------
fill() {
    local token=$1 value=$2 escaped
    escaped=$(printf '%s' "$value" | sed -e 's/[|&\\]/\\&/g')
    sed -i "s|__${token}__|${escaped}|g" "$config_file"
}
fill NUCLEUS_VERSION "$nucleus_version"
fill ROOT_PATH "$gg_root"
fill AWS_REGION "$aws_region"
fill IOT_DATA_ENDPOINT "$iot_data_endpoint"
fill IOT_CREDENTIAL_ENDPOINT "$iot_credential_endpoint"
fill IOT_ROLE_ALIAS "$iot_role_alias"
fill PROVISIONING_TEMPLATE "$provisioning_template"
fill CLAIM_CERTIFICATE_PATH "$gg_root/claim.pem.crt"
fill CLAIM_PRIVATE_KEY_PATH "$gg_root/claim.private.pem.key"
fill ROOT_CA_PATH "$gg_root/AmazonRootCA1.pem"
fill SERIAL_NUMBER "$serial"
if grep -q '__[A-Z_]*__' "$config_file"; then
    fail "$config_file still has unfilled tokens: $(grep -o '__[A-Z_]*__' "$config_file" | sort -u | tr '\n' ' ')"
fi

# --- install and provision ----------------------------------------------------
log "running the Greengrass installer (nucleus $nucleus_version)"
java -Droot="$gg_root" -Dlog.store=FILE \
    -jar "$work/GreengrassInstaller/lib/Greengrass.jar" \
    --trusted-plugin "$work/fleetprovisioningbyclaim.jar" \
    --init-config "$config_file" \
    --component-default-user ggc_user:ggc_group \
    --setup-system-service true

# --- clean up: the claim key is shared by the whole site ----------------------
log "provisioned; removing the claim material and the parameters"
rm -f "$claim_key" "$claim_cert" "$params_file" \
    "$gg_root/claim.private.pem.key" "$gg_root/claim.pem.crt"
log "done"
