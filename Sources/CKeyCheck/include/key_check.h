#ifndef FLEET_IMAGES_KEY_CHECK_H
#define FLEET_IMAGES_KEY_CHECK_H
#include <stddef.h>

/*
 * Whether the private key in `pem` is the one whose public half a certificate carries as the DER
 * SubjectPublicKeyInfo `spki`, decoded with OpenSSL's typed decoders (PKCS#8 "PRIVATE KEY",
 * SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY", unencrypted; RSA and named-curve EC keys).
 *
 * For an EC key the public point is computed from the private scalar (d·G), not taken from the
 * copy a key file may carry; for RSA the modulus and exponent are compared.
 *
 * Returns 1 (they match), 0 (they do not) or -1: not a key this reads (encrypted, another
 * algorithm, explicit curve parameters, malformed); the caller then decodes it the general way,
 * which also says what is wrong with it.
 */
int fleet_private_key_matches_spki(const unsigned char *pem, size_t pem_length,
                                   const unsigned char *spki, size_t spki_length);

#endif
