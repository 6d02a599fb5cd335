/*
 * tp_proto: the legacy token.place relay messages (PROTOCOL.md section 1.4)
 * as C structs, parsed and validated from cJSON, and the reply bodies
 * rendered byte for byte as the Python relay's Flask jsonify() wrote them
 * (compact, keys sorted, non-ASCII as \uXXXX, trailing newline).
 *
 * No I/O and no state. Parsed requests borrow their strings from the cJSON
 * tree they were parsed from: they are valid while that tree lives. Every
 * rendered body is a malloc'd NUL-terminated string the caller frees.
 *
 * Check order and error text follow the Python relay at c42e76c0 where it
 * answered at all; where it crashed (500) or stored a value of the wrong
 * JSON type, tp_proto answers 400 in the route's error shape instead.
 * docs/protocol.md lists every such difference.
 */
#ifndef TOKENPLACE_PROTO_H
#define TOKENPLACE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/* Literal texts peers see (and some match on). */
#define TP_MSG_INVALID_REQUEST	"Invalid request data"
#define TP_MSG_STREAM_NEEDS_KEY	"Streaming requests require a client public key"
#define TP_MSG_UNKNOWN_SERVER	"Server with the specified public key not found"
#define TP_MSG_INVALID_BATCH	"Invalid max_batch_size"
#define TP_MSG_INVALID_KEY	"Invalid public key"
#define TP_MSG_NO_RESPONSE	"No response available for the given public key"
#define TP_MSG_UNKNOWN_SESSION	"Unknown stream session"
#define TP_MSG_NO_STREAM	"No active stream for the given public key"
#define TP_MSG_NO_SERVERS	"No servers available"
#define TP_MSG_BAD_TOKEN	"Missing or invalid relay server token"
#define TP_MSG_PLAINTEXT \
	"Plaintext relay payload fields are forbidden; send ciphertext envelope only"
#define TP_MSG_KEY_TOO_LONG	"Public key too long"
#define TP_MSG_SESSION_TOO_LONG	"Session id too long"

#define TP_MSG_REQUEST_RECEIVED	"Request received"
#define TP_MSG_RESPONSE_QUEUED	"Response received and queued for client"
#define TP_MSG_CHUNK_STORED	"Chunk stored"
#define TP_MSG_UNREGISTERED	"Server unregistered"

/* Our own limits (the Python relay had none); HTTP 429. */
#define TP_MSG_QUEUE_FULL	"Server queue is full"
#define TP_MSG_QUEUE_TOTAL_FULL	"Relay queue is full"
#define TP_MSG_RESPONSES_FULL	"Too many pending responses"
#define TP_MSG_SERVERS_FULL	"Too many registered servers"
#define TP_MSG_CHUNKS_FULL	"Stream buffer is full"
#define TP_MSG_RATE_LIMITED	"Rate limit exceeded"

/* The constant heartbeat interval the Python relay told nodes. */
#define TP_PROTO_NEXT_PING_SECONDS 10

/* Length of a stream session id: 16 random bytes, base64url, no padding. */
#define TP_SESSION_ID_LEN 22

/* The two legacy error envelopes (PROTOCOL.md 1.2.3). */
enum tp_err_shape {
	TP_ERR_OBJECT = 0,	/* {"error":{"code":<int>,"message":"..."}} */
	TP_ERR_STRING,		/* {"error":"..."} */
};

/* Why a request was refused: HTTP status, envelope and static text. */
struct tp_error {
	int status;
	enum tp_err_shape shape;
	const char *message;	/* static string */
};

/* A string borrowed from a cJSON tree. ptr NULL = absent (or JSON null). */
struct tp_str {
	const char *ptr;
	size_t len;
};

struct tp_proto_limits {
	size_t max_key_bytes;	/* public keys and session ids */
};

/* POST /faucet */
struct tp_faucet_request {
	struct tp_str server_public_key;
	struct tp_str chat_history;
	struct tp_str cipherkey;
	struct tp_str iv;
	struct tp_str client_public_key;	/* ptr NULL: absent or null */
	bool stream;
};

/* POST /sink */
struct tp_sink_request {
	struct tp_str server_public_key;
	int64_t max_batch_size;		/* >= 1, saturated at INT64_MAX */
	bool batch;			/* max_batch_size > 1: reply carries "batch" */
};

/* POST /source */
struct tp_source_request {
	struct tp_str client_public_key;
	struct tp_str chat_history;
	struct tp_str cipherkey;
	struct tp_str iv;
};

/* POST /retrieve and POST /stream/retrieve */
struct tp_client_request {
	struct tp_str client_public_key;
};

/* POST /stream/source */
struct tp_stream_source_request {
	struct tp_str session_id;
	const struct cJSON *chunk;	/* any JSON value, rendered by tp_chunk_encode() */
	bool final;
};

/* POST /unregister (the HEAD relay's legacy alias) */
struct tp_unregister_request {
	struct tp_str server_public_key;
};

/*
 * The members each route uses as keys or credentials, NULL-terminated:
 * the string_fields its body is read with (tp_json_read(), tokenplace/
 * json.h), so a wrong JSON type there is a 400 that names the member.
 */
extern const char *const tp_faucet_key_fields[];
extern const char *const tp_sink_key_fields[];
extern const char *const tp_source_key_fields[];
extern const char *const tp_retrieve_key_fields[];	/* also /stream/retrieve */
extern const char *const tp_stream_source_key_fields[];
extern const char *const tp_unregister_key_fields[];

/*
 * Parsers. Each takes the parsed body (any JSON value), fills *out and
 * returns 0, or returns -1 and fills *err with the status, envelope and
 * text the route answers with. Nothing is allocated.
 */
int tp_faucet_parse(const struct cJSON *body, const struct tp_proto_limits *lim,
    struct tp_faucet_request *out, struct tp_error *err);
int tp_sink_parse(const struct cJSON *body, const struct tp_proto_limits *lim,
    struct tp_sink_request *out, struct tp_error *err);
int tp_source_parse(const struct cJSON *body, const struct tp_proto_limits *lim,
    struct tp_source_request *out, struct tp_error *err);
int tp_retrieve_parse(const struct cJSON *body,
    const struct tp_proto_limits *lim, struct tp_client_request *out,
    struct tp_error *err);
int tp_stream_source_parse(const struct cJSON *body,
    const struct tp_proto_limits *lim, struct tp_stream_source_request *out,
    struct tp_error *err);
int tp_stream_retrieve_parse(const struct cJSON *body,
    const struct tp_proto_limits *lim, struct tp_client_request *out,
    struct tp_error *err);
int tp_unregister_parse(const struct cJSON *body,
    const struct tp_proto_limits *lim, struct tp_unregister_request *out,
    struct tp_error *err);

/*
 * Python int() as the relay applied it to max_batch_size: integers,
 * numbers (truncated toward zero), booleans (true = 1) and strings of
 * decimal digits (blanks around, one sign, single '_' between digits).
 * Returns 0 and sets *out (saturated to the int64 range), or -1 when
 * Python would have raised.
 */
int tp_py_int(const struct cJSON *v, int64_t *out);

/* Python truthiness of a JSON value (null, false, 0, "", [], {} are false). */
bool tp_py_truthy(const struct cJSON *v);

/*
 * Stored forms. A queued /faucet request is kept as the JSON text of its
 * members in reply order, without braces:
 *   "chat_history":"..","cipherkey":"..","client_public_key":..,"iv":".."
 * a /source response as
 *   "chat_history":"..","cipherkey":"..","iv":".."
 * and a stream chunk as the canonical JSON text of its value (keys sorted,
 * last duplicate wins). Each returns a malloc'd string and sets *len, or
 * NULL when out of memory (tp_chunk_encode() also for a value nested
 * more than TP_JSON_MAX_DEPTH levels: it recurses once per level).
 */
char *tp_faucet_encode(const struct tp_faucet_request *req, size_t *len);
char *tp_source_encode(const struct tp_source_request *req, size_t *len);
char *tp_chunk_encode(const struct cJSON *chunk, size_t *len);

/* One dequeued job for tp_sink_reply(). */
struct tp_sink_item {
	const char *fields;	/* tp_faucet_encode() text */
	size_t fields_len;
	bool stream;
	const char *session_id;	/* stream jobs with a session, else NULL */
};

/* A stored stream chunk for tp_stream_retrieve_reply(). */
struct tp_chunk {
	const char *json;	/* tp_chunk_encode() text */
	size_t len;
};

/*
 * Reply renderers: malloc'd body (with the trailing newline jsonify
 * writes) and its length in *len, or NULL when out of memory.
 */

/* {"server_public_key":"..."} */
char *tp_next_server_reply(const char *key, size_t key_len, size_t *len);

/* {"message":"..."} */
char *tp_message_reply(const char *message, size_t *len);

/*
 * /sink: next_ping_in_x_seconds always; the first item's members at top
 * level (with "stream":true and its session id when it is a stream with a
 * session); "batch" with every item when `batch` is set and n > 0. Never
 * an "error" member.
 */
char *tp_sink_reply(const struct tp_sink_item *items, size_t n, bool batch,
    int next_ping, size_t *len);

/* /retrieve: {<tp_source_encode() text>} */
char *tp_retrieve_reply(const char *fields, size_t fields_len, size_t *len);

/* /stream/source: {"final":<bool>,"message":"Chunk stored"} */
char *tp_stream_source_reply(bool final, size_t *len);

/* /stream/retrieve: {"chunks":[...],["final":true,]"session_id":"..","stream":true} */
char *tp_stream_retrieve_reply(const struct tp_chunk *chunks, size_t n,
    const char *session_id, size_t session_id_len, bool final, size_t *len);

/* /unregister: {"message":"Server unregistered","removed":<bool>} */
char *tp_unregister_reply(bool removed, size_t *len);

/* An error in either envelope; `code` is used by TP_ERR_OBJECT. */
char *tp_error_reply(enum tp_err_shape shape, int code, const char *message,
    size_t *len);

/*
 * The HEAD relay's 410 for a disabled legacy route, e.g. for "/sink":
 * {"error":{"code":"legacy_relay_endpoint_deprecated","deprecated":true,
 *  "message":"Legacy relay endpoint '/sink' is deprecated. Use API v1 relay E2EE routes."}}
 */
char *tp_legacy_gone_reply(const char *path, size_t *len);

/*
 * Appends `s` (UTF-8, slen bytes) as a JSON string literal the way
 * Python's json.dumps(ensure_ascii=True) writes it to the growing buffer
 * *buf (*len used, *cap allocated). Invalid UTF-8 bytes are written as
 * \ufffd. Returns 0, or -1 when out of memory (the buffer stays valid).
 */
int tp_json_put_string(char **buf, size_t *len, size_t *cap, const char *s,
    size_t slen);

/* Returns true when s[0..len) is well-formed UTF-8 (no surrogates, <= U+10FFFF). */
bool tp_utf8_valid(const char *s, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_PROTO_H */
