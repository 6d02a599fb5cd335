/*
 * proto_v1.c -- API v1 relay messages: allow-lists, the plaintext
 * guardrail, capabilities, and the stored envelope forms.
 *
 * Check order follows the HEAD relay where peers can observe it (which
 * 400 wins when a body is wrong in several ways); where HEAD accepted any
 * JSON type for a field it then echoed, we require a non-empty string and
 * say so in docs/protocol-v1.md.
 */
#include "tokenplace/proto_v1.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/buf.h"
#include "json.h"

static const char *const plaintext_keys[] = {
	"messages", "prompt", "input", "content", "response", "text",
};

static const char *const request_keys[] = {
	"server_public_key", "client_public_key", "ciphertext", "chat_history",
	"cipherkey", "iv", "request_id", "protocol", "version", "cancel_token",
};

/* /responses: the /requests list plus the node's proof. */
static const char *const response_keys[] = {
	"server_public_key", "client_public_key", "ciphertext", "chat_history",
	"cipherkey", "iv", "request_id", "protocol", "version", "cancel_token",
	"control_credential",
};

static const char *const progress_keys[] = {
	"server_public_key", "client_public_key", "request_id",
	"control_credential", "protocol", "version", "ciphertext", "cipherkey",
	"iv",
};

const char *const tp_v1_node_key_fields[] = { "server_public_key", NULL };
const char *const tp_v1_control_key_fields[] = {
	"server_public_key", "request_id", "control_credential", NULL,
};
const char *const tp_v1_unregister_key_fields[] = {
	"server_public_key", "control_credential", NULL,
};
const char *const tp_v1_request_key_fields[] = {
	"server_public_key", "client_public_key", "request_id", "cancel_token",
	NULL,
};
const char *const tp_v1_response_key_fields[] = {
	"server_public_key", "client_public_key", "request_id", "cancel_token",
	"control_credential", NULL,
};
const char *const tp_v1_progress_key_fields[] = {
	"server_public_key", "client_public_key", "request_id",
	"control_credential", NULL,
};
const char *const tp_v1_cancel_key_fields[] = {
	"client_public_key", "request_id", "cancel_token", NULL,
};
const char *const tp_v1_retrieve_key_fields[] = {
	"client_public_key", "request_id", NULL,
};

static const char *const reasons[] = {
	"cancelled", "client_timeout", "expired", "requester_cancelled",
	"requester_gave_up", "provider_timeout", "pending_request_ttl_exceeded",
	"server_unregistered",
};

static const char *const backends[] = {
	"cpu", "cuda", "metal", "vulkan", "gpu",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- tiers and models --------------------------------------------------- */

const char *
tp_v1_tier_name(enum tp_v1_tier t)
{
	return t == TP_V1_TIER_64K ? "64k-full" : "8k-fast";
}

int64_t
tp_v1_tier_tokens(enum tp_v1_tier t)
{
	return t == TP_V1_TIER_64K ? 65536 : 8192;
}

int
tp_v1_tier_parse(const char *s, enum tp_v1_tier *out)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "8k-fast") == 0) {
		*out = TP_V1_TIER_8K;
		return 0;
	}
	if (strcmp(s, "64k-full") == 0) {
		*out = TP_V1_TIER_64K;
		return 0;
	}
	return -1;
}

const char *
tp_v1_resolve_model(const char *requested, char *lowered, size_t lowered_len)
{
	static const char *const aliases[] = {
		"llama-3.1-8b-instruct", "llama-3-8b-instruct", "gpt-3.5-turbo",
		"gpt-5-chat-latest",
	};
	size_t i, n;

	if (requested == NULL || requested[0] == '\0')
		return TP_V1_DEFAULT_MODEL;
	n = strlen(requested);
	if (n > TP_V1_MAX_MODEL_ID || n >= lowered_len)
		return NULL;
	for (i = 0; i <= n; i++) {
		char c = requested[i];

		lowered[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	for (i = 0; i < NELEM(aliases); i++)
		if (strcmp(lowered, aliases[i]) == 0)
			return TP_V1_DEFAULT_MODEL;
	return lowered;
}

/* ---- field access ------------------------------------------------------ */

enum field_rc {
	F_OK = 0,
	F_ABSENT,	/* missing or JSON null */
	F_EMPTY,	/* "" */
	F_BAD,		/* not a string, or not UTF-8 */
	F_LONG,		/* longer than the limit */
};

static enum field_rc
str_field(const cJSON *obj, const char *name, size_t max,
    struct tp_str *out)
{
	const cJSON *v = tp_json_member(obj, name);
	size_t n;

	out->ptr = NULL;
	out->len = 0;
	if (v == NULL || cJSON_IsNull(v))
		return F_ABSENT;
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return F_BAD;
	n = strlen(v->valuestring);
	if (n == 0)
		return F_EMPTY;
	if (!tp_utf8_valid(v->valuestring, n))
		return F_BAD;
	if (max > 0 && n > max)
		return F_LONG;
	out->ptr = v->valuestring;
	out->len = n;
	return F_OK;
}

static int
fail(struct tp_v1_error *err, int status, const char *code,
    const char *message)
{
	err->status = status;
	err->code = code;
	err->message = message;
	return -1;
}

static bool
in_list(const char *s, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/*
 * HEAD's guardrail, in its order: any plaintext-looking key is refused
 * before any other unknown key.
 */
static int
guard_keys(const cJSON *obj, const char *const *allowed, size_t nallowed,
    struct tp_v1_error *err)
{
	const cJSON *c;

	for (c = obj->child; c != NULL; c = c->next)
		if (c->string != NULL &&
		    in_list(c->string, plaintext_keys, NELEM(plaintext_keys)))
			return fail(err, 400, NULL, TP_V1_MSG_PLAINTEXT);
	for (c = obj->child; c != NULL; c = c->next)
		if (c->string == NULL || !in_list(c->string, allowed, nallowed))
			return fail(err, 400, NULL, TP_V1_MSG_UNEXPECTED);
	return 0;
}

/* Integral JSON number (never a boolean) in [min, max]. */
static bool
int_value(const cJSON *v, int64_t min, int64_t max, int64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return false;
	d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
		return false;
	*out = (int64_t)d;
	return true;
}

/* protocol/version are echoed as given: only scalars make sense there. */
static bool
scalar_or_absent(const cJSON *v)
{
	return v == NULL || cJSON_IsNull(v) || cJSON_IsString(v) ||
	    cJSON_IsNumber(v);
}

/* ---- capabilities ------------------------------------------------------ */

void
tp_v1_caps_default(struct tp_v1_caps *c)
{
	c->tier = TP_V1_TIER_8K;
	c->max_context_tokens = tp_v1_tier_tokens(TP_V1_TIER_8K);
	c->default_output_reservation = 0;
	c->max_output_tokens = 0;
	c->max_concurrency = 1;
	c->backend_class = "unknown";
	c->nmodels = 0;
	c->models_len = 0;
	c->models[0] = '\0';
}

bool
tp_v1_models_has(const char *models, size_t n, const char *model)
{
	size_t off = 0, i;

	for (i = 0; i < n; i++) {
		const char *m = models + off;

		if (strcmp(m, model) == 0)
			return true;
		off += strlen(m) + 1;
	}
	return false;
}

bool
tp_v1_caps_has_model(const struct tp_v1_caps *c, const char *model)
{
	return tp_v1_models_has(c->models, c->nmodels, model);
}

static int
caps_models(const cJSON *list, struct tp_v1_caps *out, const char **message)
{
	static const char bad[] =
	    "capabilities.supported_model_ids must be a non-empty string list";
	const cJSON *m;
	char id[TP_V1_MAX_MODEL_ID + 1];

	if (!cJSON_IsArray(list) || list->child == NULL) {
		*message = bad;
		return -1;
	}
	for (m = list->child; m != NULL; m = m->next) {
		size_t n, i;

		if (!cJSON_IsString(m) || m->valuestring == NULL ||
		    m->valuestring[0] == '\0') {
			*message = bad;
			return -1;
		}
		n = strlen(m->valuestring);
		if (n > TP_V1_MAX_MODEL_ID || !tp_utf8_valid(m->valuestring, n)) {
			*message = "capabilities.supported_model_ids entries must "
			    "be at most 128 characters";
			return -1;
		}
		for (i = 0; i <= n; i++) {
			char c = m->valuestring[i];

			id[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		if (tp_v1_caps_has_model(out, id))
			continue;
		if (out->nmodels >= TP_V1_MAX_MODELS) {
			*message = "capabilities.supported_model_ids lists more "
			    "than 64 models";
			return -1;
		}
		memcpy(out->models + out->models_len, id, n + 1);
		out->models_len += n + 1;
		out->nmodels++;
	}
	return 0;
}

int
tp_v1_caps_parse(const struct cJSON *v, struct tp_v1_caps *out,
    const char **message)
{
	const cJSON *x;
	int64_t n;

	tp_v1_caps_default(out);
	*message = NULL;
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsObject(v)) {
		*message = "capabilities must be an object";
		return -1;
	}
	x = tp_json_member(v, "api_version");
	if (x != NULL && !cJSON_IsNull(x) &&
	    !(cJSON_IsString(x) && strcmp(x->valuestring, "v1") == 0) &&
	    !(int_value(x, 1, 1, &n))) {
		*message = "capabilities.api_version must be v1";
		return -1;
	}
	x = tp_json_member(v, "active_context_tier");
	if (x == NULL || cJSON_IsNull(x))
		x = tp_json_member(v, "context_tier");
	if (x != NULL && !cJSON_IsNull(x) &&
	    (!cJSON_IsString(x) || tp_v1_tier_parse(x->valuestring, &out->tier))) {
		*message = "capabilities.active_context_tier must be 8k-fast or 64k-full";
		return -1;
	}
	out->max_context_tokens = tp_v1_tier_tokens(out->tier);
	x = tp_json_member(v, "supported_model_ids");
	if (x == NULL || cJSON_IsNull(x))
		x = tp_json_member(v, "model_ids");
	if (x != NULL && !cJSON_IsNull(x) && caps_models(x, out, message) != 0)
		return -1;
	x = tp_json_member(v, "maximum_total_context_tokens");
	if (x != NULL && !cJSON_IsNull(x)) {
		if (!int_value(x, tp_v1_tier_tokens(out->tier), TP_V1_MAX_CAP_INT,
		    &out->max_context_tokens)) {
			*message = "capabilities.maximum_total_context_tokens must be "
			    "an integer from the tier size to 1000000";
			return -1;
		}
	}
	x = tp_json_member(v, "maximum_output_tokens");
	if (x != NULL && !cJSON_IsNull(x) &&
	    !int_value(x, 1, TP_V1_MAX_CAP_INT, &out->max_output_tokens)) {
		*message = "capabilities.maximum_output_tokens must be an integer "
		    "from 1 to 1000000";
		return -1;
	}
	x = tp_json_member(v, "default_output_token_reservation");
	if (x != NULL && !cJSON_IsNull(x) &&
	    !int_value(x, 1, TP_V1_MAX_CAP_INT, &out->default_output_reservation)) {
		*message = "capabilities.default_output_token_reservation must be "
		    "an integer from 1 to 1000000";
		return -1;
	}
	if (out->default_output_reservation > 0 && out->max_output_tokens > 0 &&
	    out->default_output_reservation > out->max_output_tokens) {
		*message = "capabilities.default_output_token_reservation must not "
		    "exceed maximum_output_tokens";
		return -1;
	}
	x = tp_json_member(v, "max_concurrency");
	if (x != NULL && !cJSON_IsNull(x) &&
	    !int_value(x, 1, TP_V1_MAX_CONCURRENCY, &out->max_concurrency)) {
		*message = "capabilities.max_concurrency must be an integer from 1 "
		    "to 128";
		return -1;
	}
	x = tp_json_member(v, "backend_class");
	if (cJSON_IsString(x)) {
		size_t i;

		for (i = 0; i < NELEM(backends); i++)
			if (strcmp(x->valuestring, backends[i]) == 0)
				out->backend_class = backends[i];
	}
	return 0;
}

/* ---- node routes ------------------------------------------------------- */

static int
node_key(const cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_node_request *out, struct tp_v1_error *err)
{
	memset(out, 0, offsetof(struct tp_v1_node_request, caps));
	if (!cJSON_IsObject(body))
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	switch (str_field(body, "server_public_key", lim->max_key_bytes,
	    &out->server_public_key)) {
	case F_OK:
		return 0;
	case F_LONG:
		return fail(err, 400, NULL, TP_MSG_KEY_TOO_LONG);
	case F_BAD:
		return fail(err, 400, NULL, TP_V1_MSG_INVALID_KEY);
	default:
		return fail(err, 400, NULL, TP_V1_MSG_NO_SERVER_KEY);
	}
}

int
tp_v1_register_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_node_request *out, struct tp_v1_error *err)
{
	const cJSON *caps;

	if (node_key(body, lim, out, err) != 0)
		return -1;
	caps = tp_json_member(body, "capabilities");
	out->has_caps = caps != NULL && !cJSON_IsNull(caps);
	if (tp_v1_caps_parse(caps, &out->caps, &out->caps_error) != 0)
		return fail(err, 400, "invalid_capabilities", out->caps_error);
	out->caps_valid = true;
	return 0;
}

int
tp_v1_poll_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_node_request *out, struct tp_v1_error *err)
{
	const cJSON *caps;

	if (node_key(body, lim, out, err) != 0)
		return -1;
	caps = tp_json_member(body, "capabilities");
	out->has_caps = caps != NULL && !cJSON_IsNull(caps);
	if (out->has_caps)
		out->caps_valid = tp_v1_caps_parse(caps, &out->caps,
		    &out->caps_error) == 0;
	return 0;
}

/* ---- envelopes --------------------------------------------------------- */

/* Ciphertext under either name; both present must agree. */
static enum field_rc
ciphertext_field(const cJSON *body, struct tp_str *out)
{
	struct tp_str a, b;
	enum field_rc ra = str_field(body, "ciphertext", 0, &a);
	enum field_rc rb = str_field(body, "chat_history", 0, &b);

	*out = ra == F_OK ? a : b;
	if (ra == F_OK && rb == F_OK)
		return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0 ?
		    F_OK : F_BAD;
	if (ra == F_OK || rb == F_OK)
		return (ra == F_OK ? rb : ra) == F_ABSENT ? F_OK : F_BAD;
	return ra == F_ABSENT ? rb : ra;
}

static int
envelope_parse(const cJSON *body, const struct tp_v1_limits *lim,
    bool response, struct tp_v1_envelope *out, struct tp_v1_error *err)
{
	enum field_rc rc;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body))
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	if (guard_keys(body, response ? response_keys : request_keys,
	    response ? NELEM(response_keys) : NELEM(request_keys), err) != 0)
		return -1;
	if (ciphertext_field(body, &out->ciphertext) != F_OK ||
	    str_field(body, "cipherkey", 0, &out->cipherkey) != F_OK ||
	    str_field(body, "iv", 0, &out->iv) != F_OK)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	rc = str_field(body, "server_public_key", lim->max_key_bytes,
	    &out->server_public_key);
	if (rc == F_LONG)
		return fail(err, 400, NULL, TP_MSG_KEY_TOO_LONG);
	if (rc != F_OK && (!response || rc != F_ABSENT))
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	rc = str_field(body, "client_public_key", lim->max_key_bytes,
	    &out->client_public_key);
	if (rc == F_LONG)
		return fail(err, 400, NULL, TP_MSG_KEY_TOO_LONG);
	if (rc != F_OK)
		return fail(err, 400, NULL, TP_V1_MSG_NO_CLIENT_KEY);
	rc = str_field(body, "request_id", lim->max_key_bytes, &out->request_id);
	if (rc == F_ABSENT)
		return fail(err, 400, NULL, TP_V1_MSG_NO_REQUEST_ID);
	if (rc != F_OK)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	rc = str_field(body, "cancel_token", lim->max_key_bytes,
	    &out->cancel_token);
	if (rc != F_OK && rc != F_ABSENT)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	if (response) {
		/* A node's proof is both fields or none. */
		rc = str_field(body, "control_credential", lim->max_key_bytes,
		    &out->control_credential);
		if (rc != F_OK && rc != F_ABSENT)
			return fail(err, 403, NULL, TP_V1_MSG_BAD_CREDENTIAL);
		if ((out->control_credential.ptr == NULL) !=
		    (out->server_public_key.ptr == NULL))
			return fail(err, 403, NULL, TP_V1_MSG_BAD_CREDENTIAL);
		out->cancel_token.ptr = NULL;	/* never stored with a response */
		out->cancel_token.len = 0;
	}
	out->protocol = tp_json_member(body, "protocol");
	out->version = tp_json_member(body, "version");
	if (!scalar_or_absent(out->protocol) || !scalar_or_absent(out->version))
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	if (cJSON_IsNull(out->protocol))
		out->protocol = NULL;
	if (cJSON_IsNull(out->version))
		out->version = NULL;
	return 0;
}

int
tp_v1_request_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_envelope *out, struct tp_v1_error *err)
{
	return envelope_parse(body, lim, false, out, err);
}

int
tp_v1_response_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_envelope *out, struct tp_v1_error *err)
{
	return envelope_parse(body, lim, true, out, err);
}

int
tp_v1_progress_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_progress *out, struct tp_v1_error *err)
{
	const cJSON *c, *proto, *ver;
	size_t count = 0;
	int64_t v;
	struct {
		const char *name;
		struct tp_str *dst;
		size_t max;
	} f[] = {
		{ "server_public_key", &out->server_public_key, lim->max_key_bytes },
		{ "client_public_key", &out->client_public_key, lim->max_key_bytes },
		{ "request_id", &out->request_id, lim->max_key_bytes },
		{ "control_credential", &out->control_credential, lim->max_key_bytes },
		{ "ciphertext", &out->ciphertext, 0 },
		{ "cipherkey", &out->cipherkey, 0 },
		{ "iv", &out->iv, 0 },
	};
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body))
		return fail(err, 400, NULL, TP_V1_MSG_PROGRESS_SCHEMA);
	/* Exactly the nine keys, each once. */
	for (c = body->child; c != NULL; c = c->next) {
		if (c->string == NULL ||
		    !in_list(c->string, progress_keys, NELEM(progress_keys)))
			return fail(err, 400, NULL, TP_V1_MSG_PROGRESS_SCHEMA);
		count++;
	}
	if (count != NELEM(progress_keys))
		return fail(err, 400, NULL, TP_V1_MSG_PROGRESS_SCHEMA);
	for (i = 0; i < NELEM(progress_keys); i++)
		if (tp_json_member(body, progress_keys[i]) == NULL)
			return fail(err, 400, NULL, TP_V1_MSG_PROGRESS_SCHEMA);
	proto = tp_json_member(body, "protocol");
	ver = tp_json_member(body, "version");
	if (!cJSON_IsString(proto) || strcmp(proto->valuestring, TP_V1_PROTOCOL) != 0 ||
	    !int_value(ver, 1, 1, &v))
		return fail(err, 400, NULL, TP_V1_MSG_PROGRESS_PROTOCOL);
	for (i = 0; i < NELEM(f); i++)
		if (str_field(body, f[i].name, f[i].max, f[i].dst) != F_OK)
			return fail(err, 400, NULL, TP_V1_MSG_PROGRESS_ENVELOPE);
	return 0;
}

/* ---- control, unregister, cancel, retrieve ------------------------------ */

int
tp_v1_control_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_control *out, struct tp_v1_error *err)
{
	const cJSON *ack;
	enum field_rc rc;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body) ||
	    str_field(body, "server_public_key", lim->max_key_bytes,
	    &out->server_public_key) != F_OK ||
	    str_field(body, "request_id", lim->max_key_bytes,
	    &out->request_id) != F_OK)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	rc = str_field(body, "control_credential", lim->max_key_bytes,
	    &out->control_credential);
	if (rc != F_OK && rc != F_ABSENT)
		return fail(err, 403, NULL, TP_V1_MSG_BAD_CREDENTIAL);
	ack = tp_json_member(body, "acknowledge");
	if (ack == NULL)
		ack = tp_json_member(body, "ack");
	out->acknowledge = ack != NULL && tp_py_truthy(ack);
	return 0;
}

int
tp_v1_unregister_parse(const struct cJSON *body,
    const struct tp_v1_limits *lim, struct tp_v1_unregister *out,
    struct tp_v1_error *err)
{
	enum field_rc rc;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body))
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	rc = str_field(body, "server_public_key", lim->max_key_bytes,
	    &out->server_public_key);
	if (rc == F_ABSENT)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	if (rc != F_OK)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID_KEY);
	rc = str_field(body, "control_credential", lim->max_key_bytes,
	    &out->control_credential);
	if (rc != F_OK && rc != F_ABSENT)
		out->control_credential.ptr = NULL;	/* refused by the owner check */
	return 0;
}

const char *
tp_v1_status_name(enum tp_v1_status s)
{
	return s == TP_V1_EXPIRED ? "expired" : "cancelled";
}

const char *
tp_v1_reason_sanitise(const char *reason, enum tp_v1_status st)
{
	size_t i;

	if (reason != NULL)
		for (i = 0; i < NELEM(reasons); i++)
			if (strcmp(reason, reasons[i]) == 0)
				return reasons[i];
	return tp_v1_status_name(st);
}

int
tp_v1_cancel_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_cancel *out, struct tp_v1_error *err)
{
	const cJSON *status, *reason;
	enum field_rc rc;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body) ||
	    str_field(body, "client_public_key", lim->max_key_bytes,
	    &out->client_public_key) != F_OK ||
	    str_field(body, "request_id", lim->max_key_bytes,
	    &out->request_id) != F_OK)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	rc = str_field(body, "cancel_token", lim->max_key_bytes,
	    &out->cancel_token);
	if (rc != F_OK)
		out->cancel_token.ptr = NULL;	/* refused by the token check */
	status = tp_json_member(body, "status");
	out->status = cJSON_IsString(status) &&
	    strcmp(status->valuestring, "expired") == 0 ?
	    TP_V1_EXPIRED : TP_V1_CANCELLED;
	reason = tp_json_member(body, "reason");
	out->reason = tp_v1_reason_sanitise(cJSON_IsString(reason) ?
	    reason->valuestring : NULL, out->status);
	return 0;
}

int
tp_v1_retrieve_parse(const struct cJSON *body, const struct tp_v1_limits *lim,
    struct tp_v1_retrieve *out, struct tp_v1_error *err)
{
	enum field_rc rc;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body) ||
	    str_field(body, "client_public_key", lim->max_key_bytes,
	    &out->client_public_key) != F_OK)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	rc = str_field(body, "request_id", lim->max_key_bytes, &out->request_id);
	if (rc != F_OK && rc != F_ABSENT)
		return fail(err, 400, NULL, TP_V1_MSG_INVALID);
	return 0;
}

/* ---- stored forms ------------------------------------------------------- */

/* ,"name":<string> (no comma for the first member) */
static void
sb_member(struct tp_buf *b, const char *name, const struct tp_str *v)
{
	if (b->len > 0)
		tp_buf_add(b, ",", 1);
	tp_buf_add(b, "\"", 1);
	tp_buf_add(b, name, strlen(name));
	tp_buf_add(b, "\":", 2);
	if (!b->oom && tp_json_put_string(&b->p, &b->len, &b->cap, v->ptr,
	    v->len) != 0)
		b->oom = true;
	if (!b->oom)
		tp_buf_add(b, "", 0);	/* keeps the buffer NUL-terminated */
}

/* ,"name":<the JSON value as given>; nothing when v is NULL. */
static void
sb_value(struct tp_buf *b, const char *name, const cJSON *v)
{
	char *text;

	if (v == NULL)
		return;
	text = cJSON_PrintUnformatted(v);
	if (text == NULL) {
		b->oom = true;
		return;
	}
	tp_buf_add(b, ",\"", 2);
	tp_buf_add(b, name, strlen(name));
	tp_buf_add(b, "\":", 2);
	tp_buf_add(b, text, strlen(text));
	cJSON_free(text);
}

char *
tp_v1_work_encode(const struct tp_v1_envelope *e, size_t *len)
{
	struct tp_buf b = TP_BUF_INIT;

	sb_member(&b, "client_public_key", &e->client_public_key);
	sb_member(&b, "chat_history", &e->ciphertext);
	sb_member(&b, "ciphertext", &e->ciphertext);
	sb_member(&b, "cipherkey", &e->cipherkey);
	sb_member(&b, "iv", &e->iv);
	sb_member(&b, "request_id", &e->request_id);
	sb_value(&b, "protocol", e->protocol);
	sb_value(&b, "version", e->version);
	return tp_buf_finish(&b, len);
}

char *
tp_v1_response_encode(const struct tp_v1_envelope *e, size_t *len)
{
	struct tp_buf b = TP_BUF_INIT;

	sb_member(&b, "chat_history", &e->ciphertext);
	sb_member(&b, "cipherkey", &e->cipherkey);
	sb_member(&b, "ciphertext", &e->ciphertext);
	sb_member(&b, "client_public_key", &e->client_public_key);
	sb_member(&b, "iv", &e->iv);
	sb_value(&b, "protocol", e->protocol);
	sb_member(&b, "request_id", &e->request_id);
	sb_value(&b, "version", e->version);
	return tp_buf_finish(&b, len);
}

char *
tp_v1_progress_encode(const struct tp_v1_progress *p, size_t *len)
{
	struct tp_buf b = TP_BUF_INIT;
	static const char fixed[] =
	    ",\"protocol\":\"" TP_V1_PROTOCOL "\",\"version\":1";

	sb_member(&b, "client_public_key", &p->client_public_key);
	sb_member(&b, "request_id", &p->request_id);
	tp_buf_add(&b, fixed, sizeof(fixed) - 1);
	sb_member(&b, "ciphertext", &p->ciphertext);
	sb_member(&b, "cipherkey", &p->cipherkey);
	sb_member(&b, "iv", &p->iv);
	return tp_buf_finish(&b, len);
}
