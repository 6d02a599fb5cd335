/*
 * redact.h -- keeps a secret (relay.token) out of log lines.
 *
 * gpuhost never writes the token itself; this is for what server.py
 * prints, which goes to server.log and the console: a script that echoes
 * its environment or a request header must not leak the token there.
 */
#ifndef GPUHOST_REDACT_H
#define GPUHOST_REDACT_H

#include <stddef.h>

#define GPUHOST_REDACTED "<relay.token>"

/*
 * Returns a malloc'd copy of line[0..len) with every occurrence of secret
 * replaced by GPUHOST_REDACTED (*outlen set, not NUL-counted; the copy is
 * NUL-terminated), or NULL when memory ran out. An empty secret copies.
 */
char *gpuhost_redact(const char *line, size_t len, const char *secret,
    size_t *outlen);

#endif
