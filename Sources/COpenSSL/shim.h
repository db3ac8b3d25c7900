#ifndef FLEET_IMAGES_COPENSSL_SHIM_H
#define FLEET_IMAGES_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/asn1.h>

/* Macros and composite constants Swift cannot import (see SWIFT-NOTES.md). */

/* XN_FLAG_RFC2253 is an OR of casts of other macros: Swift does not see it. */
static inline unsigned long fleet_XN_FLAG_RFC2253(void) {
    return XN_FLAG_RFC2253;
}

/* BIO_get_mem_data is a macro over BIO_ctrl. */
static inline long fleet_BIO_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

/* OPENSSL_free is a macro that passes __FILE__/__LINE__. */
static inline void fleet_OPENSSL_free(void *pointer) {
    OPENSSL_free(pointer);
}

#endif
