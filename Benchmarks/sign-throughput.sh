#!/usr/bin/env bash
# Throughput of `fleet-images sign` against `openssl dgst -sha256 -sign` on the same file.
#
#   Benchmarks/sign-throughput.sh PATH/TO/release/fleet-images [SIZE_MiB]
#
# Makes a SIZE_MiB (default 2048) file of random (non-zero, incompressible) data and an RSA-3072 key
# in a temporary folder (removed afterwards), warms the page cache, then times the two commands
# alternately three times each and prints the best throughput of each in GB/s and the ratio
# ours/openssl. Both signatures are checked with `openssl dgst -verify`; RSA PKCS#1 v1.5 is
# deterministic, so the two .sig files must also be byte-identical. Timings are wall clock and
# include process start (a few ms); run on a quiet machine.
set -euo pipefail

binary=${1:?usage: $0 PATH/TO/fleet-images [SIZE_MiB]}
size_mib=${2:-2048}
[[ -x $binary ]] || { echo "$binary: not an executable" >&2; exit 2; }
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

work=$(mktemp -d "${TMPDIR:-/tmp}/sign-throughput.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out key.pem 2>/dev/null
openssl pkey -in key.pem -pubout -out pub.pem
echo "making a ${size_mib} MiB random image in $work …"
head -c "$((size_mib << 20))" /dev/urandom > image.img
bytes=$(stat -c %s image.img)
cat image.img > /dev/null   # page cache warm: both contenders read from memory

now() { date +%s%N; }
best_ours=0
best_openssl=0
for round in 1 2 3; do
    start=$(now)
    "$binary" sign image.img --key key.pem > /dev/null
    end=$(now)
    ours=$((end - start))
    start=$(now)
    openssl dgst -sha256 -sign key.pem -out openssl.sig image.img
    end=$(now)
    theirs=$((end - start))
    awk -v r="$round" -v a="$ours" -v b="$theirs" 'BEGIN { printf "round %d: fleet-images %.3f s, openssl %.3f s\n", r, a / 1e9, b / 1e9 }'
    if (( best_ours == 0 || ours < best_ours )); then best_ours=$ours; fi
    if (( best_openssl == 0 || theirs < best_openssl )); then best_openssl=$theirs; fi
done

openssl dgst -sha256 -verify pub.pem -signature image.img.sig image.img > /dev/null \
    || { echo "FAIL: openssl does not verify fleet-images' signature" >&2; exit 1; }
cmp -s image.img.sig openssl.sig \
    || { echo "FAIL: RSA PKCS#1 v1.5 signatures differ between fleet-images and openssl" >&2; exit 1; }
[[ $(cut -d' ' -f1 image.img.sha256) == $(openssl dgst -sha256 -r image.img | cut -d' ' -f1) ]] \
    || { echo "FAIL: image.img.sha256 does not hold the image's SHA-256" >&2; exit 1; }

# bytes per nanosecond = GB/s
awk -v n="$bytes" -v a="$best_ours" -v b="$best_openssl" 'BEGIN {
    printf "fleet-images sign:          %.3f GB/s (best of 3)\n", n / a
    printf "openssl dgst -sha256 -sign: %.3f GB/s (best of 3)\n", n / b
    printf "ratio fleet-images/openssl: %.2f\n", b / a
}'
