/*
 * relay_web: the browser page (token.place's static/ directory) held in
 * memory. Plain C with no HTTP server in it, so unit tests call it
 * directly; handlers_web.c turns its answers into responses.
 *
 * Life cycle: relay_web_load() walks RELAY_WEB_DIR once at start-up,
 * reads every file into memory (under a total byte cap and a file count
 * cap), renders index.html's placeholders once, and computes each file's
 * ETag and Last-Modified. After that nothing here touches the disk and
 * nothing changes: every function below is a read of immutable data, safe
 * from any thread without locks. A changed directory is picked up by a
 * restart.
 *
 * What is loaded: regular files under the directory, at any depth up to
 * RELAY_WEB_MAX_DEPTH, whose every path component is a "plain" name (no
 * leading '.', no '\\', no '%', no control byte). A symbolic link is followed
 * only when its target's real path is inside the directory's real path;
 * one that leads out, a directory link back to a directory being walked
 * (a loop), hidden entries and special files are skipped (and counted in
 * relay_web_stats.skipped).
 *
 * What is answered: a request path is percent-decoded strictly and then
 * compared byte for byte with the loaded names. (civetweb hands handlers
 * a path it has already decoded once, so this is a second decoding: a
 * name with '%' could never be asked for unambiguously, which is why such
 * names are not loaded, and whatever the first decoding produced is
 * checked again here.) Dot segments ("." and
 * "..", also as %2e), encoded slashes (%2f), backslashes (also %5c), NUL
 * and other control bytes, empty segments, hidden names and malformed
 * escapes are refused before any lookup (RELAY_WEB_BAD_PATH), so no
 * spelling of a traversal can name something the walk did not load.
 */
#ifndef RELAY_WEB_H
#define RELAY_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Deepest directory nesting walked below RELAY_WEB_DIR. */
#define RELAY_WEB_MAX_DEPTH 16

/* Longest relative file name kept ("js/chat.js"). */
#define RELAY_WEB_MAX_NAME 255

/* The Vue 2.6.14 builds token.place's page loads, by frontend mode. */
#define RELAY_WEB_VUE_PROD "https://cdn.jsdelivr.net/npm/vue@2.6.14/dist/vue.min.js"
#define RELAY_WEB_VUE_DEV "https://cdn.jsdelivr.net/npm/vue@2.6.14/dist/vue.js"

/*
 * Placeholders in index.html, replaced in this order (the order
 * token.place's relay uses): the Vue script URL, the release-metadata
 * JSON block, the badge text, the asset version. A page without them
 * (the October 2025 one) is served byte for byte.
 */
#define RELAY_WEB_PH_VUE "__TOKENPLACE_VUE_SCRIPT_SRC__"
#define RELAY_WEB_PH_RELEASE "{\"environment\":\"dev\",\"label\":\"dev dev\",\"version\":\"dev\"}"
#define RELAY_WEB_PH_BADGE "dev dev"
#define RELAY_WEB_PH_ASSET "__TOKENPLACE_ASSET_VERSION__"

/* Cache-Control values. */
#define RELAY_WEB_CC_INDEX "no-store"
#define RELAY_WEB_CC_DEFAULT "no-cache"
#define RELAY_WEB_CC_IMMUTABLE "public, max-age=31536000, immutable"

struct relay_web_config {
	const char *dir;		/* RELAY_WEB_DIR (must be set) */
	uint64_t max_bytes;		/* RELAY_WEB_MAX_BYTES: all files together */
	uint64_t max_files;		/* RELAY_WEB_MAX_FILES */
	bool development;		/* TOKENPLACE_FRONTEND_MODE=development */
	const char *release_json;	/* /api/v1/meta's body, compact JSON */
	const char *release_label;	/* its "label" */
};

struct relay_web_file {
	const char *name;		/* relative to the directory, '/'-separated */
	const char *body;
	size_t len;
	const char *content_type;	/* static, by extension */
	char etag[40];			/* "\"<32 hex of SHA-256(body)>\"" */
	char last_modified[32];		/* IMF-fixdate of mtime */
	time_t mtime;
	bool versioned;			/* chat.js / chat_typing.js: immutable with ?v= */
};

struct relay_web_stats {
	size_t files;
	uint64_t bytes;			/* loaded file bytes (index.html unrendered) */
	size_t skipped;			/* hidden, special, or links leading out */
};

struct relay_web;

/*
 * Loads cfg->dir. Returns the page, or NULL with a one-line reason in err
 * (directory missing or unreadable, no index.html at its top, over
 * max_bytes or max_files, a file that cannot be read, out of memory).
 * The caller refuses to start on NULL.
 */
struct relay_web *relay_web_load(const struct relay_web_config *cfg,
    char *err, size_t errlen);

/* Frees everything; NULL is accepted. */
void relay_web_free(struct relay_web *w);

/* index.html with its placeholders rendered (what GET / answers). */
const struct relay_web_file *relay_web_index(const struct relay_web *w);

/* The asset version: 16 hex of SHA-256 over every file's name and bytes. */
const char *relay_web_asset_version(const struct relay_web *w);

void relay_web_get_stats(const struct relay_web *w, struct relay_web_stats *out);

enum relay_web_lookup {
	RELAY_WEB_FOUND = 0,
	RELAY_WEB_NOT_FOUND,		/* a plain name that was not loaded */
	RELAY_WEB_BAD_PATH,		/* refused spelling, see the top comment */
};

/*
 * Looks up the raw (still percent-encoded) path below /static/, e.g.
 * "chat.js" or "img/icon%20x.svg". *out is set on FOUND.
 */
enum relay_web_lookup relay_web_lookup(const struct relay_web *w,
    const char *raw, const struct relay_web_file **out);

/*
 * Strict percent-decoding of one request path into out (outlen bytes,
 * NUL-terminated). Returns 0, or -1 when the path is refused: malformed
 * escape, a decoded NUL, control byte, '\\' or '/' from %2f, an empty,
 * "." or ".." segment, a segment starting with '.', or too long.
 */
int relay_web_normalize(const char *raw, char *out, size_t outlen);

/*
 * The conditional-request verdict for GET/HEAD: true when the answer is
 * 304. If-None-Match (a list of entity tags, weak comparison, or "*")
 * decides when present; otherwise If-Modified-Since (IMF-fixdate) is
 * compared with the file's mtime. Headers may be NULL; an unparsable
 * date counts as absent.
 */
bool relay_web_not_modified(const struct relay_web_file *f,
    const char *if_none_match, const char *if_modified_since);

/*
 * Cache-Control for a /static/ file requested with query `query` (may be
 * NULL): RELAY_WEB_CC_IMMUTABLE for a versioned file whose v= parameter
 * equals the asset version, RELAY_WEB_CC_DEFAULT otherwise.
 */
const char *relay_web_cache_control(const struct relay_web *w,
    const struct relay_web_file *f, const char *query);

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); -1 if not one. */
int relay_web_parse_http_date(const char *s, time_t *out);

#endif /* RELAY_WEB_H */
