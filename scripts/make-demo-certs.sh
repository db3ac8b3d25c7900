#!/bin/bash
# make-demo-certs.sh: (re)make the THROW-AWAY demo secrets the repository ships.
#
#   scripts/make-demo-certs.sh [--force]
#
# Writes, relative to the repository root:
#   certs/demo-ca.pem.crt                       a throw-away CA (its key is discarded)
#   certs/<site>/claim.pem.crt                  per-site claim certificate (RSA-2048,
#   certs/<site>/claim.private.pem.key          unencrypted PKCS#8 key), valid until 2045
#   certs/<site>/wifi.psk                       per-site demo Wi-Fi passphrase
#   keys/demo-signing.key.pem, .pub.pem         demo image-signing key (EC P-256, PKCS#8)
#   examples/matrix/certs/..., keys/...         the same for the matrix example
#   examples/raspios-greengrass/certs/..., keys/...   placeholders marked REPLACE
#
# None of this is secret or fit for production. Real claim certificates come
# from AWS IoT (see certs/README.md); a real signing key from
# `fleet-images keygen` (see keys/README.md). Refuses to overwrite existing
# files unless --force is given.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
force=false
case ${1:-} in
    --force) force=true ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

if ! command -v openssl >/dev/null 2>&1; then
    echo "make-demo-certs: openssl not found" >&2
    exit 69
fi

# The certificates stay valid until the end of 2045 (the CA a day longer), so that `validate`
# stays clean for years.
not_after_epoch=$(date -u -d '2045-12-31 23:59:59' +%s)
days=$(( (not_after_epoch - $(date -u +%s)) / 86400 ))

work=$(mktemp -d "${TMPDIR:-/tmp}/make-demo-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 077

# site id | AWS region (for the subject) | directory (relative to repo) | passphrase | kind
sites=(
    "zrh-lab|eu-central-1|certs|demo-zrh-lab-wifi-2026|demo"
    "gva-plant|eu-central-1|certs|demo-gva-plant-wifi-2026|demo"
    "dub-depot|eu-west-1|certs|demo-dub-depot-wifi-2026|demo"
    "iad-warehouse|us-east-1|certs|demo-iad-warehouse-wifi-2026|demo"
    "pdx-field|us-west-2|certs|demo-pdx-field-wifi-2026|demo"
    "syd-office|ap-southeast-2|certs|demo-syd-office-wifi-2026|demo"
    "zrh-lab|eu-central-1|examples/matrix/certs|demo-matrix-zrh-lab-wifi-2026|demo"
    "iad-warehouse|us-east-1|examples/matrix/certs|demo-matrix-iad-warehouse-wifi-2026|demo"
    "zrh-lab|eu-central-1|examples/raspios-greengrass/certs|REPLACE-with-the-zrh-lab-wifi-passphrase|placeholder"
    "iad-warehouse|us-east-1|examples/raspios-greengrass/certs|REPLACE-with-the-iad-warehouse-wifi-passphrase|placeholder"
)
signing_keys=(
    "keys/demo-signing"
    "examples/matrix/keys/demo-signing"
    "examples/raspios-greengrass/keys/fleet-signing"
)

if [ "$force" = false ]; then
    existing=()
    for entry in "${sites[@]}"; do
        IFS='|' read -r site _ dir _ _ <<<"$entry"
        for f in claim.pem.crt claim.private.pem.key wifi.psk; do
            [ -e "$repo_dir/$dir/$site/$f" ] && existing+=("$dir/$site/$f")
        done
    done
    for key in "${signing_keys[@]}"; do
        [ -e "$repo_dir/$key.key.pem" ] && existing+=("$key.key.pem")
    done
    if [ "${#existing[@]}" -gt 0 ]; then
        echo "make-demo-certs: ${#existing[@]} files exist already (first: ${existing[0]}); run with --force to replace them all" >&2
        exit 1
    fi
fi

# ------------------------------------------------------------ throw-away CA
cat > "$work/ext.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no

[dn]

[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[claim]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key" 2>/dev/null
openssl req -new -x509 -key "$work/ca.key" -days "$((days + 1))" -sha256 \
    -subj "/O=fleet-images DEMO/CN=fleet-images DEMO claim CA - NOT FOR PRODUCTION" \
    -set_serial "0x$(openssl rand -hex 15)" \
    -config "$work/ext.cnf" -extensions ca \
    -out "$work/ca.crt"
mkdir -p "$repo_dir/certs"
install -m 0644 "$work/ca.crt" "$repo_dir/certs/demo-ca.pem.crt"

# -------------------------------------------------------------- claim certs
for entry in "${sites[@]}"; do
    IFS='|' read -r site region dir psk kind <<<"$entry"
    out=$repo_dir/$dir/$site
    mkdir -p "$out"
    if [ "$kind" = placeholder ]; then
        subject="/O=REPLACE ME - placeholder/OU=$region/CN=REPLACE $site claim placeholder - not from AWS IoT"
    else
        subject="/O=fleet-images DEMO/OU=$region/CN=$site DEMO claim - NOT FOR PRODUCTION"
    fi
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/$site.key" 2>/dev/null
    openssl req -new -key "$work/$site.key" -subj "$subject" -config "$work/ext.cnf" -out "$work/$site.csr"
    openssl x509 -req -in "$work/$site.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
        -days "$days" -sha256 -set_serial "0x$(openssl rand -hex 15)" \
        -extfile "$work/ext.cnf" -extensions claim -out "$work/$site.crt" 2>/dev/null
    openssl verify -CAfile "$work/ca.crt" "$work/$site.crt" > /dev/null
    install -m 0644 "$work/$site.crt" "$out/claim.pem.crt"
    install -m 0600 "$work/$site.key" "$out/claim.private.pem.key"
    printf '%s\n' "$psk" > "$work/$site.psk"
    install -m 0600 "$work/$site.psk" "$out/wifi.psk"
    echo "make-demo-certs: $dir/$site ($kind, $region)"
done

# -------------------------------------------------------------- signing keys
demo_key=""
for key in "${signing_keys[@]}"; do
    mkdir -p "$(dirname "$repo_dir/$key")"
    if [ -n "$demo_key" ] && [ "${key##*/}" = demo-signing ]; then
        # Every demo-signing key is the one demo key, so a demo image
        # verifies with keys/demo-signing.pub.pem wherever it was built.
        install -m 0600 "$demo_key.key.pem" "$repo_dir/$key.key.pem"
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/signing.key" 2>/dev/null
        install -m 0600 "$work/signing.key" "$repo_dir/$key.key.pem"
        [ "${key##*/}" = demo-signing ] && demo_key=$repo_dir/$key
    fi
    openssl pkey -in "$repo_dir/$key.key.pem" -pubout -out "$work/signing.pub"
    install -m 0644 "$work/signing.pub" "$repo_dir/$key.pub.pem"
    echo "make-demo-certs: $key.key.pem / .pub.pem"
done
echo "make-demo-certs: certificates valid until $(openssl x509 -in "$repo_dir/certs/demo-ca.pem.crt" -noout -enddate | cut -d= -f2)"
