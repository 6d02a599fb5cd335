/*
 * Private to libtokenplace: the one UTF-8 decoder the logger, the metrics
 * renderer and the protocol layer share.
 */
#ifndef TOKENPLACE_UTF8_H
#define TOKENPLACE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes the UTF-8 sequence at s (avail > 0 bytes readable). Returns its
 * length (1..4) and sets *cp, or returns 0 when the bytes there are not a
 * well-formed sequence (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). cp may be NULL.
 */
size_t tp_utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp);

#endif
