#!/usr/bin/env bash
# What each libcrypto call the manifest check makes costs here, per certificate or key (CPU µs):
# the floor under `manifest`'s numbers, and the evidence for the fixes Benchmarks/README.md lists.
#
#   Benchmarks/openssl-costs.sh [COUNT]   (default 2000; needs the certificate cache that
#                                          Benchmarks/manifest.sh makes, and cc + libssl-dev)
set -euo pipefail
count=${1:-2000}
cache=${FLEET_IMAGES_BENCH_CACHE:-$HOME/.cache/fleet-images-bench}
certs=$(ls -d "$cache"/certs-* 2>/dev/null | head -1 || true)
[[ -n $certs && -f $certs/COMPLETE ]] || { echo "no certificate cache in $cache; run Benchmarks/manifest.sh first" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/openssl-costs.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat > "$work/costs.c" <<'C'
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static char *slurp(const char *path, int *length) {
    FILE *f = fopen(path, "rb"); if (!f) { perror(path); exit(1); }
    char *buffer = malloc(8192); *length = (int)fread(buffer, 1, 8192, f); fclose(f); return buffer;
}
#define TIME(label, body) do { double t0 = cpu(); for (int i = 0; i < n; i++) { body; } \
    printf("  %-66s %7.1f µs\n", label, (cpu() - t0) / n * 1e6); } while (0)

int main(int argc, char **argv) {
    const char *root = argv[1]; int n = atoi(argv[2]);
    char **certs = calloc(n, sizeof *certs), **keys = calloc(n, sizeof *keys);
    int *certLength = calloc(n, sizeof(int)), *keyLength = calloc(n, sizeof(int));
    X509 **x = calloc(n, sizeof *x); EVP_PKEY **k = calloc(n, sizeof *k);
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%05d/claim.pem.crt", root, i + 1); certs[i] = slurp(path, &certLength[i]);
        snprintf(path, sizeof path, "%s/%05d/claim.private.pem.key", root, i + 1); keys[i] = slurp(path, &keyLength[i]);
    }
    printf("%s, %d EC P-256 claim certificates and keys\n", OpenSSL_version(OPENSSL_VERSION), n);
    TIME("PEM_read_bio_X509 (CertificateInfo.load)", { BIO *b = BIO_new_mem_buf(certs[i], certLength[i]); x[i] = PEM_read_bio_X509(b, NULL, NULL, NULL); BIO_free(b); });
    TIME("X509_digest SHA-256", { unsigned char d[64]; unsigned l; X509_digest(x[i], EVP_sha256(), d, &l); });
    TIME("X509_NAME_print_ex RFC 2253 (subject)", { BIO *b = BIO_new(BIO_s_mem()); X509_NAME_print_ex(b, X509_get_subject_name(x[i]), 0, XN_FLAG_RFC2253); BIO_free(b); });
    TIME("i2d_PUBKEY(X509_get0_pubkey) (encoder; CertificateInfo.load now)", { unsigned char *der = NULL; i2d_PUBKEY(X509_get0_pubkey(x[i]), &der); OPENSSL_free(der); });
    TIME("i2d_X509_PUBKEY(X509_get_X509_PUBKEY) (same DER, no encoder)", { unsigned char *der = NULL; i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x[i]), &der); OPENSSL_free(der); });
    int same = 0;
    for (int i = 0; i < n; i++) {
        unsigned char *a = NULL, *b = NULL; int la = i2d_PUBKEY(X509_get0_pubkey(x[i]), &a), lb = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x[i]), &b);
        same += la == lb && memcmp(a, b, la) == 0; OPENSSL_free(a); OPENSSL_free(b);
    }
    printf("  (the two DER encodings are byte-identical for %d of %d certificates)\n", same, n);
    TIME("PEM_read_bio_PrivateKey (matches(privateKeyAt:) now)", { BIO *b = BIO_new_mem_buf(keys[i], keyLength[i]); k[i] = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL); BIO_free(b); });
    TIME("d2i_PUBKEY of the certificate's key (matches now)", { unsigned char *der = NULL; int l = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x[i]), &der); const unsigned char *p = der; EVP_PKEY_free(d2i_PUBKEY(NULL, &p, l)); OPENSSL_free(der); });
    TIME("EVP_PKEY_eq", { if (EVP_PKEY_eq(X509_get0_pubkey(x[i]), k[i]) != 1) { fprintf(stderr, "mismatch\n"); return 1; } });
    TIME("X509_check_private_key (with the X509 still held)", { X509_check_private_key(x[i], k[i]); });
    TIME("OSSL_DECODER PEM/PrivateKeyInfo/EC hinted, new context", {
        EVP_PKEY *key = NULL; OSSL_DECODER_CTX *c = OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", "PrivateKeyInfo", "EC", EVP_PKEY_KEYPAIR, NULL, NULL);
        const unsigned char *p = (const unsigned char *)keys[i]; size_t l = keyLength[i]; OSSL_DECODER_from_data(c, &p, &l); OSSL_DECODER_CTX_free(c); EVP_PKEY_free(key); });
    return 0;
}
C
cc -O2 -o "$work/costs" "$work/costs.c" -lcrypto
"$work/costs" "$certs" "$count"
