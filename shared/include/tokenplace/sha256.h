/*
 * tp_sha256: SHA-256 (FIPS 180-4), for digests of secrets the relay must
 * recognise but never keep (control credentials, cancel tokens). Written
 * from the standard's description; no crypto library is linked for it.
 *
 * No allocation, no global state: a context lives wherever the caller
 * puts it, and separate contexts may be used from separate threads.
 */
#ifndef TOKENPLACE_SHA256_H
#define TOKENPLACE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_SHA256_LEN 32
#define TP_SHA256_HEX_LEN 64

struct tp_sha256 {
	uint32_t h[8];
	uint64_t bytes;		/* message length so far */
	unsigned char buf[64];
	size_t used;		/* bytes waiting in buf */
};

/* Starts a new digest. */
void tp_sha256_init(struct tp_sha256 *c);

/* Adds len bytes of message. */
void tp_sha256_update(struct tp_sha256 *c, const void *data, size_t len);

/* Writes the 32-byte digest; the context must be initialised again to reuse it. */
void tp_sha256_final(struct tp_sha256 *c, unsigned char out[TP_SHA256_LEN]);

/* One-shot digest of data. */
void tp_sha256(const void *data, size_t len, unsigned char out[TP_SHA256_LEN]);

/* Lower-case hex of a digest into out (65 bytes, NUL-terminated). */
void tp_sha256_hex(const unsigned char digest[TP_SHA256_LEN],
    char out[TP_SHA256_HEX_LEN + 1]);

/*
 * Compares two digests in time independent of where they differ.
 * Returns 1 when equal, 0 otherwise.
 */
int tp_sha256_equal(const unsigned char a[TP_SHA256_LEN],
    const unsigned char b[TP_SHA256_LEN]);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_SHA256_H */
