/*
 * tp_proto_v1: the API v1 relay-blind E2EE messages (PROTOCOL.md section
 * 4.3) as C structs, parsed and validated from cJSON, and the stored and
 * rendered forms of the opaque envelopes.
 *
 * No I/O and no state. Parsed messages borrow their strings from the cJSON
 * tree they came from and are valid while it lives, except capabilities,
 * which are copied (normalised) into the caller's struct. Every encoder
 * returns a malloc'd NUL-terminated string the caller frees, or NULL when
 * out of memory.
 *
 * The relay never decrypts: ciphertext, cipherkey, iv and the keys are
 * opaque strings compared and echoed byte for byte. What the relay does
 * check is the shape of an envelope: an allow-list of top-level keys,
 * refusing plaintext-looking keys first (PROTOCOL.md section 5, item 1).
 */
#ifndef TOKENPLACE_PROTO_V1_H
#define TOKENPLACE_PROTO_V1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenplace/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

#define TP_V1_PROTOCOL		"tokenplace_api_v1_relay_e2ee"
#define TP_V1_DEFAULT_MODEL	"qwen3-8b-instruct"
#define TP_V1_SELECTION_POLICY	"best_fit_smallest_capable_least_loaded_v1"

/* Literal texts real peers see (PROTOCOL.md 4.3). */
#define TP_V1_MSG_INVALID	"Invalid request data"
#define TP_V1_MSG_INVALID_KEY	"Invalid public key"
#define TP_V1_MSG_PLAINTEXT	TP_MSG_PLAINTEXT
#define TP_V1_MSG_UNEXPECTED \
	"Unexpected relay payload fields are forbidden; send ciphertext envelope only"
#define TP_V1_MSG_NO_SERVER_KEY	"Missing server public key"
#define TP_V1_MSG_NO_CLIENT_KEY	"Missing client public key"
#define TP_V1_MSG_NO_REQUEST_ID	"Missing request_id"
#define TP_V1_MSG_UNKNOWN_SERVER TP_MSG_UNKNOWN_SERVER
#define TP_V1_MSG_BAD_CREDENTIAL \
	"Missing or invalid relay server control credential"
#define TP_V1_MSG_BAD_CANCEL	"Missing or invalid cancel proof"
#define TP_V1_MSG_PROGRESS_SCHEMA	"Invalid encrypted progress schema"
#define TP_V1_MSG_PROGRESS_PROTOCOL	"Invalid encrypted progress protocol"
#define TP_V1_MSG_PROGRESS_ENVELOPE	"Invalid encrypted progress envelope"
#define TP_V1_MSG_PROGRESS_INACTIVE \
	"Progress request is not active for this owner"
#define TP_V1_MSG_PROGRESS_EXPIRED	"Progress request has expired"
#define TP_V1_MSG_PROGRESS_TOO_LARGE	"Progress envelope too large"
#define TP_V1_MSG_NOT_WAITING	"Request is no longer waiting for a response"
#define TP_V1_MSG_NO_RESPONSE	TP_MSG_NO_RESPONSE
#define TP_V1_MSG_BAD_TIER	"Unsupported context_tier"

#define TP_V1_MSG_REQUEST_RECEIVED	"Request received"
#define TP_V1_MSG_RESPONSE_QUEUED	"Response received and queued for client"
#define TP_V1_MSG_RESPONSE_DUPLICATE	"Response already queued for client"
#define TP_V1_MSG_PROGRESS_ACCEPTED	"Encrypted progress accepted"
#define TP_V1_MSG_NO_REQUESTS		"No requests available"
#define TP_V1_MSG_UNREGISTERED		"Server unregistered"

/* The progress body limit (HEAD checks it before parsing, 413). */
#define TP_V1_PROGRESS_MAX_BYTES	16384

/* Capability bounds (PROTOCOL.md 4.2). */
#define TP_V1_MAX_MODELS		64
#define TP_V1_MAX_MODEL_ID		128
#define TP_V1_MAX_CONCURRENCY		128
#define TP_V1_MAX_CAP_INT		1000000
#define TP_V1_MODELS_BYTES	(TP_V1_MAX_MODELS * (TP_V1_MAX_MODEL_ID + 1))

/* Context tiers, smallest first. */
enum tp_v1_tier {
	TP_V1_TIER_8K = 0,	/* "8k-fast", 8192 tokens */
	TP_V1_TIER_64K,		/* "64k-full", 65536 tokens */
	TP_V1_TIER_COUNT,
};

/* "8k-fast"/"64k-full", and the tier's context size in tokens. */
const char *tp_v1_tier_name(enum tp_v1_tier t);
int64_t tp_v1_tier_tokens(enum tp_v1_tier t);

/* Parses a tier name (exact). Returns 0 and sets *out, or -1. */
int tp_v1_tier_parse(const char *s, enum tp_v1_tier *out);

/* A node's normalised capabilities (PROTOCOL.md 4.3.1). */
struct tp_v1_caps {
	enum tp_v1_tier tier;
	int64_t max_context_tokens;
	int64_t default_output_reservation;	/* 0 = not given */
	int64_t max_output_tokens;		/* 0 = not given */
	int64_t max_concurrency;
	const char *backend_class;		/* static: cpu, cuda, ..., unknown */
	size_t nmodels;
	size_t models_len;			/* bytes used in models */
	char models[TP_V1_MODELS_BYTES];	/* lower-cased ids, each NUL-ended */
};

/* Defaults: no models (registered, never selected), 8k-fast, concurrency 1. */
void tp_v1_caps_default(struct tp_v1_caps *c);

/*
 * Validates and normalises a capabilities value (NULL or JSON null gives
 * the defaults). Model ids are lower-cased and de-duplicated in order.
 * Unknown members are ignored. Returns 0, or -1 with *message set to the
 * reason (static), answered as 400 invalid_capabilities.
 */
int tp_v1_caps_parse(const struct cJSON *v, struct tp_v1_caps *out,
    const char **message);

/* True when the node lists this (lower-case) model id. */
bool tp_v1_caps_has_model(const struct tp_v1_caps *c, const char *model);

/*
 * The same test on a model list kept elsewhere in the tp_v1_caps layout
 * (n ids, each NUL-ended, one after the other), as the relay's store
 * keeps it.
 */
bool tp_v1_models_has(const char *models, size_t n, const char *model);

/*
 * Resolves a requested model (NULL or empty = the default): lower-cases
 * it into buf and maps the HEAD aliases (llama-3.1-8b-instruct, ...) to
 * their model. Returns the resolved id (static or buf), or NULL when the
 * name is longer than TP_V1_MAX_MODEL_ID.
 */
const char *tp_v1_resolve_model(const char *requested, char *lowered,
    size_t lowered_len);

/* Field limits the relay applies (from its settings). */
struct tp_v1_limits {
	size_t max_key_bytes;	/* public keys, request ids, tokens, credentials */
};

/*
 * The members each route uses as keys or credentials, NULL-terminated:
 * the string_fields its body is read with (tp_json_read()).
 */
extern const char *const tp_v1_node_key_fields[];	/* register, poll */
extern const char *const tp_v1_control_key_fields[];
extern const char *const tp_v1_unregister_key_fields[];
extern const char *const tp_v1_request_key_fields[];
extern const char *const tp_v1_response_key_fields[];
extern const char *const tp_v1_progress_key_fields[];
extern const char *const tp_v1_cancel_key_fields[];
extern const char *const tp_v1_retrieve_key_fields[];

/* A parse failure: status, string-or-int code and static text. */
struct tp_v1_error {
	int status;
	const char *code;	/* NULL: the integer status is the code */
	const char *message;
};

/* POST /servers/register and /servers/poll */
struct tp_v1_node_request {
	struct tp_str server_public_key;
	bool has_caps;			/* "capabilities" present and not null */
	bool caps_valid;		/* ... and valid: caps holds them */
	const char *caps_error;		/* why not, when has_caps && !caps_valid */
	struct tp_v1_caps caps;
};

/*
 * Register: the body must be an object with a non-empty string
 * server_public_key (400 Missing server public key); invalid capabilities
 * are a 400 invalid_capabilities. Poll: same key rule; capabilities are
 * optional and only used when valid (out->caps_valid).
 */
int tp_v1_register_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_node_request *out,
    struct tp_v1_error *err);
int tp_v1_poll_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_node_request *out, struct tp_v1_error *err);

/* POST /requests and /responses: the ciphertext envelope. */
struct tp_v1_envelope {
	struct tp_str server_public_key;	/* /responses: part of the proof */
	struct tp_str client_public_key;
	struct tp_str ciphertext;		/* "ciphertext" or "chat_history" */
	struct tp_str cipherkey;
	struct tp_str iv;
	struct tp_str request_id;
	struct tp_str cancel_token;		/* /requests only; ptr NULL = none */
	struct tp_str control_credential;	/* /responses: the proof */
	const struct cJSON *protocol;		/* echoed as given; NULL = absent */
	const struct cJSON *version;
};

/*
 * /requests: allow-list server_public_key, client_public_key, ciphertext,
 * chat_history, cipherkey, iv, request_id, protocol, version,
 * cancel_token. Checks in HEAD's order (plaintext keys, unknown keys,
 * required fields, client key), then ours (request_id required, lengths,
 * types). /responses: the same minus the need for server_public_key, plus
 * control_credential; a proof must be complete (both fields or neither),
 * else 403 with the credential message.
 */
int tp_v1_request_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_envelope *out,
    struct tp_v1_error *err);
int tp_v1_response_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_envelope *out,
    struct tp_v1_error *err);

/* POST /progress: exactly the nine keys, protocol and version fixed. */
struct tp_v1_progress {
	struct tp_str server_public_key;
	struct tp_str client_public_key;
	struct tp_str request_id;
	struct tp_str control_credential;
	struct tp_str ciphertext;
	struct tp_str cipherkey;
	struct tp_str iv;
};

int tp_v1_progress_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_progress *out,
    struct tp_v1_error *err);

/* POST /servers/control */
struct tp_v1_control {
	struct tp_str server_public_key;
	struct tp_str request_id;
	struct tp_str control_credential;	/* ptr NULL = absent (403 later) */
	bool acknowledge;			/* "acknowledge" or "ack" truthy */
};

int tp_v1_control_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_control *out,
    struct tp_v1_error *err);

/* POST /servers/unregister */
struct tp_v1_unregister {
	struct tp_str server_public_key;
	struct tp_str control_credential;	/* ptr NULL = absent */
};

int tp_v1_unregister_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_unregister *out,
    struct tp_v1_error *err);

/* Terminal statuses and reasons a client may name in /requests/cancel. */
enum tp_v1_status {
	TP_V1_CANCELLED = 0,
	TP_V1_EXPIRED,
};

/* POST /requests/cancel */
struct tp_v1_cancel {
	struct tp_str client_public_key;
	struct tp_str request_id;
	struct tp_str cancel_token;		/* ptr NULL = absent (403 later) */
	enum tp_v1_status status;		/* sanitised, default cancelled */
	const char *reason;			/* sanitised (static) */
};

int tp_v1_cancel_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_cancel *out,
    struct tp_v1_error *err);

/* "cancelled" / "expired" */
const char *tp_v1_status_name(enum tp_v1_status s);

/*
 * The reason as HEAD sanitises it: one of cancelled, client_timeout,
 * expired, requester_cancelled, requester_gave_up, provider_timeout,
 * pending_request_ttl_exceeded, server_unregistered; anything else (or
 * absent) is the status name. Returns a static string.
 */
const char *tp_v1_reason_sanitise(const char *reason, enum tp_v1_status st);

/* POST /responses/retrieve */
struct tp_v1_retrieve {
	struct tp_str client_public_key;
	struct tp_str request_id;	/* ptr NULL = absent */
};

int tp_v1_retrieve_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_retrieve *out,
    struct tp_v1_error *err);

/*
 * Stored forms: the members of an object, without braces, ready to be
 * wrapped. Work for a node (no cancel_token: nodes get only what they
 * need):
 *   "client_public_key":..,"chat_history":C,"ciphertext":C,"cipherkey":..,
 *   "iv":..,"request_id":..[,"protocol":..][,"version":..]
 * A response as the client gets it (keys sorted as Flask's jsonify did):
 *   "chat_history":C,"cipherkey":..,"ciphertext":C,"client_public_key":..,
 *   "iv":..[,"protocol":..],"request_id":..[,"version":..]
 * A progress update:
 *   "client_public_key":..,"request_id":..,"protocol":..,"version":1,
 *   "ciphertext":..,"cipherkey":..,"iv":..
 */
char *tp_v1_work_encode(const struct tp_v1_envelope *e, size_t *len);
char *tp_v1_response_encode(const struct tp_v1_envelope *e, size_t *len);
char *tp_v1_progress_encode(const struct tp_v1_progress *p, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_PROTO_V1_H */
