/*
 * tp_json: the one way a request body becomes a JSON tree.
 *
 * Every route of both protocol generations reads its body through
 * tp_json_read(). It exists so that a body means one thing to the relay,
 * to a front proxy and to a Python peer, and so that no body can exhaust
 * the small stack of an HTTP worker thread (civetweb's workers get
 * RELAY_WORKER_STACK_BYTES; cJSON parses, prints and deletes by
 * recursion).
 *
 * The rules, in the order they are checked (docs/configuration.md, "JSON
 * request bodies", lists them for operators):
 *   1. syntax: strict RFC 8259 over UTF-8 -- no NaN/Infinity, no raw
 *      control characters or invalid UTF-8 in strings, no lone UTF-16
 *      surrogate escapes, whitespace only space/tab/CR/LF, numbers at most
 *      TP_JSON_MAX_NUMBER_CHARS characters (cJSON cannot read longer ones);
 *   2. depth: arrays and objects nested at most max_depth levels ("[]" is
 *      1 level), found by a linear scan that uses no recursion and runs
 *      before any recursive code sees the bytes;
 *   3. trailing: nothing but whitespace after the value;
 *   4. nul: no \u0000 anywhere in a string or member name (C strings end
 *      there, so the relay would store and compare less than was sent);
 *   5. duplicate: no object names a member twice, at any depth (names
 *      compared after unescaping);
 *   6. type: each top-level member named in string_fields (the route's
 *      keys and credentials) is a string when present and not null.
 * Rules 1-4 are decided before cJSON sees the body, 5-6 on the tree.
 *
 * Thread safe, no global state. Stack use is bounded by max_depth (cJSON's
 * recursion) plus a few hundred bytes; tests/unit/test_tp_json.c runs the
 * worst accepted body on a RELAY_WORKER_STACK_BYTES thread.
 */
#ifndef TOKENPLACE_JSON_H
#define TOKENPLACE_JSON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/*
 * The deepest nesting any body may have. Protocol bodies nest three levels
 * at most (v1 capabilities); legacy stream chunks are opaque JSON values a
 * node chooses. RELAY_JSON_MAX_DEPTH may lower the limit, never raise it:
 * this is the depth the worker-stack test proves safe.
 */
#define TP_JSON_MAX_DEPTH 64

/* Longest number literal accepted (cJSON copies numbers into 64 bytes). */
#define TP_JSON_MAX_NUMBER_CHARS 63

/* Why a body was refused. */
enum tp_json_kind {
	TP_JSON_OK = 0,
	TP_JSON_SYNTAX,		/* not strict RFC 8259 JSON in UTF-8 */
	TP_JSON_DEPTH,		/* nested deeper than the limit */
	TP_JSON_TRAILING,	/* something other than whitespace after the value */
	TP_JSON_NUL,		/* \u0000 in a string or member name */
	TP_JSON_DUPLICATE,	/* an object names a member twice */
	TP_JSON_TYPE,		/* a key or credential member is not a string */
	TP_JSON_NOMEM,		/* out of memory while parsing */
	TP_JSON_KIND_COUNT,
};

struct tp_json_error {
	enum tp_json_kind kind;
	int status;		/* HTTP status: 400, or 503 for TP_JSON_NOMEM */
	const char *code;	/* stable string code, e.g. "json_too_deep" */
	const char *field;	/* static: the string_fields entry for TYPE, else NULL */
	size_t offset;		/* byte offset in the body where it was found */
	char message[160];	/* text for the client; names the member where known */
};

/*
 * Reads body[0..len) (no NUL terminator needed) under the rules above.
 * max_depth is clamped to 1..TP_JSON_MAX_DEPTH (0 means the maximum).
 * string_fields is a NULL-terminated list of top-level member names, or
 * NULL. Returns the tree (the caller cJSON_Delete()s it), or NULL with
 * *err filled; nothing is allocated then.
 */
struct cJSON *tp_json_read(const char *body, size_t len, unsigned max_depth,
    const char *const *string_fields, struct tp_json_error *err);

/*
 * Only the linear pre-scan (rules 1-4): returns 0, or -1 with *err
 * filled. Uses no heap and a fixed, small amount of stack.
 */
int tp_json_scan(const char *body, size_t len, unsigned max_depth,
    struct tp_json_error *err);

/* "syntax", "depth", "trailing", "nul", "duplicate", "type", "nomem"; "ok". */
const char *tp_json_kind_name(enum tp_json_kind kind);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_JSON_H */
