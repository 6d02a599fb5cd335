/*
 * redis_url: RELAY_STATE_URL into the adapter's settings, and the glob
 * escaping of the wake-up subscription pattern. No hiredis here, so the
 * settings table validates a URL without the adapter.
 */
#ifndef RELAY_REDIS_URL_H
#define RELAY_REDIS_URL_H

#include <stddef.h>
#include <stdint.h>

/* Parsed RELAY_STATE_URL (plus RELAY_STATE_PASSWORD when the URL has none). */
struct relay_redis_config {
	char host[256];			/* "" with a unix socket */
	int port;			/* default 6379 */
	char unix_path[108];		/* "" unless unix:// */
	int db;				/* default 0 */
	char user[128];			/* "" = default user */
	char password[512];		/* "" = no AUTH; never logged */
	char prefix[128];		/* RELAY_STATE_PREFIX, e.g. "tokenplace:" */
	int64_t connect_timeout_ms;
	int64_t command_timeout_ms;
	unsigned pool_size;		/* command connections kept open */
};

/*
 * Parses redis://[[user]:password@]host[:port][/db] or
 * unix:///path/to/redis.sock[?db=N] into *out (other fields untouched).
 * Returns 0, or -1 with a reason in err that never contains the password;
 * rediss:// is refused (this hiredis has no TLS).
 */
int relay_redis_url_parse(const char *url, struct relay_redis_config *out,
    char *err, size_t errlen);

/*
 * Writes s into out with Redis glob characters (* ? [ ] \) escaped by a
 * backslash, so that a PSUBSCRIBE pattern or an ACL channel rule matches
 * s literally. Returns the length of the escaped string; out holds all of
 * it (NUL-terminated) only when that is below outlen, else as much as fit.
 */
size_t relay_redis_glob_escape(const char *s, char *out, size_t outlen);

#endif /* RELAY_REDIS_URL_H */
