/*
 * proto.c -- legacy relay messages: validation in each route's check order
 * and reply bodies rendered as Flask's jsonify() did (sorted keys, compact,
 * ASCII only, trailing newline), so golden tests can compare bytes.
 *
 * Replies are written by hand rather than through cJSON_Print: cJSON keeps
 * insertion order and writes UTF-8 raw, while the Python relay sorted keys
 * and escaped everything outside printable ASCII.
 */
#include "tokenplace/proto.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/buf.h"
#include "json.h"
#include "tokenplace/json.h"
#include "utf8.h"

/* Fields whose presence means a client sent plaintext (HEAD's guard list). */
static const char *const plaintext_fields[] = {
	"messages", "prompt", "input", "content", "response", "text",
};

const char *const tp_faucet_key_fields[] = {
	"server_public_key", "client_public_key", NULL,
};
const char *const tp_sink_key_fields[] = { "server_public_key", NULL };
const char *const tp_source_key_fields[] = { "client_public_key", NULL };
const char *const tp_retrieve_key_fields[] = { "client_public_key", NULL };
const char *const tp_stream_source_key_fields[] = { "session_id", NULL };
const char *const tp_unregister_key_fields[] = { "server_public_key", NULL };

/* ---- growing output buffer ------------------------------------------- */

static void
jb_str(struct tp_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (tp_json_put_string(&b->p, &b->len, &b->cap, s, n) != 0)
		b->oom = true;
}

static void
jb_int(struct tp_buf *b, long long v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%lld", v);

	tp_buf_add(b, tmp, (size_t)n);
}

/* ---- strings ---------------------------------------------------------- */

bool
tp_utf8_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < len) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if ((k = tp_utf8_decode(u + i, len - i, NULL)) == 0)
			return false;
		i += k;
	}
	return true;
}

static void
put_u16(struct tp_buf *b, uint32_t u)
{
	static const char hex[] = "0123456789abcdef";
	char *e = b->p + b->len;

	/* The caller reserved room. */
	e[0] = '\\';
	e[1] = 'u';
	e[2] = hex[(u >> 12) & 0xf];
	e[3] = hex[(u >> 8) & 0xf];
	e[4] = hex[(u >> 4) & 0xf];
	e[5] = hex[u & 0xf];
	b->len += 6;
}

static void
put_short(struct tp_buf *b, char c)
{
	b->p[b->len++] = '\\';
	b->p[b->len++] = c;
}

int
tp_json_put_string(char **buf, size_t *len, size_t *cap, const char *s,
    size_t slen)
{
	struct tp_buf b = { *buf, *len, *cap, false };
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run, k;
	uint32_t cp;
	int rc = -1;

	if (slen > SIZE_MAX - 3 || tp_buf_reserve(&b, slen + 2) != 0)
		goto out;
	b.p[b.len++] = '"';
	while (i < slen) {
		/* Copy runs of bytes that need no escaping in one go. */
		run = i;
		while (run < slen && u[run] >= 0x20 && u[run] < 0x7f &&
		    u[run] != '"' && u[run] != '\\')
			run++;
		if (run > i) {
			if (tp_buf_reserve(&b, run - i + 1) != 0)
				goto out;
			memcpy(b.p + b.len, s + i, run - i);
			b.len += run - i;
			i = run;
			continue;
		}
		if (tp_buf_reserve(&b, 16) != 0)
			goto out;
		switch (u[i]) {
		case '"': put_short(&b, '"'); i++; continue;
		case '\\': put_short(&b, '\\'); i++; continue;
		case '\n': put_short(&b, 'n'); i++; continue;
		case '\r': put_short(&b, 'r'); i++; continue;
		case '\t': put_short(&b, 't'); i++; continue;
		case '\b': put_short(&b, 'b'); i++; continue;
		case '\f': put_short(&b, 'f'); i++; continue;
		default: break;
		}
		if (u[i] < 0x80) {
			put_u16(&b, u[i]);
			i++;
			continue;
		}
		k = tp_utf8_decode(u + i, slen - i, &cp);
		if (k == 0) {
			put_u16(&b, 0xfffd);
			i++;
			continue;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			put_u16(&b, 0xd800 | (cp >> 10));
			put_u16(&b, 0xdc00 | (cp & 0x3ff));
		} else
			put_u16(&b, cp);
		i += k;
	}
	if (tp_buf_reserve(&b, 1) != 0)
		goto out;
	b.p[b.len++] = '"';
	b.p[b.len] = '\0';
	rc = 0;
out:
	*buf = b.p;
	*len = b.len;
	*cap = b.cap;
	return rc;
}

/* ---- Python semantics -------------------------------------------------- */

bool
tp_py_truthy(const struct cJSON *v)
{
	if (v == NULL || cJSON_IsNull(v) || cJSON_IsFalse(v))
		return false;
	if (cJSON_IsTrue(v))
		return true;
	if (cJSON_IsNumber(v))
		return v->valuedouble != 0.0;
	if (cJSON_IsString(v))
		return v->valuestring != NULL && v->valuestring[0] != '\0';
	if (cJSON_IsArray(v) || cJSON_IsObject(v))
		return v->child != NULL;
	return true;
}

static bool
py_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static int
py_int_string(const char *s, int64_t *out)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end;
	bool neg = false, digit = false;
	uint64_t acc = 0;
	const uint64_t lim = (uint64_t)INT64_MAX;

	while (*p != '\0' && py_space(*p))
		p++;
	end = p + strlen((const char *)p);
	while (end > p && py_space(end[-1]))
		end--;
	if (p < end && (*p == '+' || *p == '-'))
		neg = *p++ == '-';
	if (p == end)
		return -1;
	for (; p < end; p++) {
		if (*p == '_') {
			/* Only single underscores between two digits. */
			if (!digit || p + 1 == end || p[1] < '0' || p[1] > '9')
				return -1;
			continue;
		}
		if (*p < '0' || *p > '9')
			return -1;
		digit = true;
		if (acc <= lim)
			acc = acc * 10 + (uint64_t)(*p - '0');
		if (acc > lim + 1)
			acc = lim + 1;	/* saturate, keep scanning for syntax */
	}
	if (neg)
		*out = acc > lim ? INT64_MIN : -(int64_t)acc;
	else
		*out = acc > lim ? INT64_MAX : (int64_t)acc;
	return 0;
}

int
tp_py_int(const struct cJSON *v, int64_t *out)
{
	double d;

	if (v == NULL)
		return -1;
	if (cJSON_IsTrue(v)) {
		*out = 1;
		return 0;
	}
	if (cJSON_IsFalse(v)) {
		*out = 0;
		return 0;
	}
	if (cJSON_IsNumber(v)) {
		d = trunc(v->valuedouble);
		if (!isfinite(d))
			return -1;
		if (d >= 9223372036854775807.0)
			*out = INT64_MAX;
		else if (d <= -9223372036854775808.0)
			*out = INT64_MIN;
		else
			*out = (int64_t)d;
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring != NULL)
		return py_int_string(v->valuestring, out);
	return -1;
}

/* ---- field access ------------------------------------------------------ */

enum field_rc {
	F_OK = 0,
	F_ABSENT,	/* missing */
	F_NULL,		/* present, JSON null */
	F_BAD,		/* present, not a valid UTF-8 string */
};

static enum field_rc
str_field(const cJSON *obj, const char *name, struct tp_str *out)
{
	const cJSON *v = tp_json_member(obj, name);

	out->ptr = NULL;
	out->len = 0;
	if (v == NULL)
		return F_ABSENT;
	if (cJSON_IsNull(v))
		return F_NULL;
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return F_BAD;
	out->len = strlen(v->valuestring);
	if (!tp_utf8_valid(v->valuestring, out->len))
		return F_BAD;
	out->ptr = v->valuestring;
	return F_OK;
}

static int
fail(struct tp_error *err, int status, enum tp_err_shape shape,
    const char *message)
{
	err->status = status;
	err->shape = shape;
	err->message = message;
	return -1;
}

static bool
has_plaintext(const cJSON *obj)
{
	size_t i;

	for (i = 0; i < sizeof(plaintext_fields) / sizeof(plaintext_fields[0]); i++)
		if (tp_json_member(obj, plaintext_fields[i]) != NULL)
			return true;
	return false;
}

/*
 * Checks that every string (and key) inside v is valid UTF-8. Recursive,
 * so bounded: a tree from tp_json_read() is never deeper than
 * TP_JSON_MAX_DEPTH levels, and a deeper one is refused here too.
 */
static bool
json_utf8_valid(const cJSON *v, int depth)
{
	const cJSON *c;

	if (depth > TP_JSON_MAX_DEPTH)
		return false;
	if (v->string != NULL && !tp_utf8_valid(v->string, strlen(v->string)))
		return false;
	if (cJSON_IsString(v))
		return v->valuestring != NULL &&
		    tp_utf8_valid(v->valuestring, strlen(v->valuestring));
	if (cJSON_IsArray(v) || cJSON_IsObject(v))
		for (c = v->child; c != NULL; c = c->next)
			if (!json_utf8_valid(c, depth + 1))
				return false;
	return true;
}

/* Reads four required string members; any missing or bad one fails. */
static bool
required_strings(const cJSON *obj, const char *const *names,
    struct tp_str *const *outs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (str_field(obj, names[i], outs[i]) != F_OK)
			return false;
	return true;
}

/* ---- parsers ----------------------------------------------------------- */

int
tp_faucet_parse(const struct cJSON *body, const struct tp_proto_limits *lim,
    struct tp_faucet_request *out, struct tp_error *err)
{
	static const char *const names[] = {
		"server_public_key", "chat_history", "cipherkey", "iv",
	};
	struct tp_str *const outs[] = {
		&out->server_public_key, &out->chat_history, &out->cipherkey,
		&out->iv,
	};
	enum field_rc rc;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body) || body->child == NULL)
		return fail(err, 400, TP_ERR_OBJECT, TP_MSG_INVALID_REQUEST);
	if (has_plaintext(body))
		return fail(err, 400, TP_ERR_OBJECT, TP_MSG_PLAINTEXT);
	if (!required_strings(body, names, outs, 4))
		return fail(err, 400, TP_ERR_OBJECT, TP_MSG_INVALID_REQUEST);
	rc = str_field(body, "client_public_key", &out->client_public_key);
	if (rc == F_BAD)
		return fail(err, 400, TP_ERR_OBJECT, TP_MSG_INVALID_REQUEST);
	if (out->server_public_key.len > lim->max_key_bytes ||
	    out->client_public_key.len > lim->max_key_bytes)
		return fail(err, 400, TP_ERR_OBJECT, TP_MSG_KEY_TOO_LONG);
	out->stream = tp_py_truthy(tp_json_member(body, "stream"));
	if (out->stream && out->client_public_key.len == 0)
		return fail(err, 400, TP_ERR_OBJECT, TP_MSG_STREAM_NEEDS_KEY);
	return 0;
}

int
tp_sink_parse(const struct cJSON *body, const struct tp_proto_limits *lim,
    struct tp_sink_request *out, struct tp_error *err)
{
	const cJSON *mbs;

	memset(out, 0, sizeof(*out));
	out->max_batch_size = 1;
	if (!cJSON_IsObject(body))
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_REQUEST);
	mbs = tp_json_member(body, "max_batch_size");
	if (mbs != NULL && !cJSON_IsNull(mbs)) {
		if (tp_py_int(mbs, &out->max_batch_size) != 0 ||
		    out->max_batch_size < 1)
			return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_BATCH);
	}
	out->batch = out->max_batch_size > 1;
	if (str_field(body, "server_public_key", &out->server_public_key) != F_OK ||
	    out->server_public_key.len == 0)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_KEY);
	if (out->server_public_key.len > lim->max_key_bytes)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_KEY_TOO_LONG);
	return 0;
}

int
tp_source_parse(const struct cJSON *body, const struct tp_proto_limits *lim,
    struct tp_source_request *out, struct tp_error *err)
{
	static const char *const names[] = {
		"client_public_key", "chat_history", "cipherkey", "iv",
	};
	struct tp_str *const outs[] = {
		&out->client_public_key, &out->chat_history, &out->cipherkey,
		&out->iv,
	};

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body) || body->child == NULL)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_REQUEST);
	if (has_plaintext(body))
		return fail(err, 400, TP_ERR_STRING, TP_MSG_PLAINTEXT);
	if (!required_strings(body, names, outs, 4))
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_REQUEST);
	if (out->client_public_key.len > lim->max_key_bytes)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_KEY_TOO_LONG);
	return 0;
}

static int
client_parse(const struct cJSON *body, const struct tp_proto_limits *lim,
    struct tp_client_request *out, struct tp_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body) || body->child == NULL ||
	    str_field(body, "client_public_key", &out->client_public_key) != F_OK)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_REQUEST);
	if (out->client_public_key.len > lim->max_key_bytes)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_KEY_TOO_LONG);
	return 0;
}

int
tp_retrieve_parse(const struct cJSON *body, const struct tp_proto_limits *lim,
    struct tp_client_request *out, struct tp_error *err)
{
	return client_parse(body, lim, out, err);
}

int
tp_stream_retrieve_parse(const struct cJSON *body,
    const struct tp_proto_limits *lim, struct tp_client_request *out,
    struct tp_error *err)
{
	return client_parse(body, lim, out, err);
}

int
tp_stream_source_parse(const struct cJSON *body,
    const struct tp_proto_limits *lim, struct tp_stream_source_request *out,
    struct tp_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body) || body->child == NULL)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_REQUEST);
	out->chunk = tp_json_member(body, "chunk");
	if (str_field(body, "session_id", &out->session_id) != F_OK ||
	    out->chunk == NULL || !json_utf8_valid(out->chunk, 0))
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_REQUEST);
	if (out->session_id.len > lim->max_key_bytes)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_SESSION_TOO_LONG);
	out->final = tp_py_truthy(tp_json_member(body, "final"));
	return 0;
}

int
tp_unregister_parse(const struct cJSON *body,
    const struct tp_proto_limits *lim, struct tp_unregister_request *out,
    struct tp_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(body))
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_REQUEST);
	if (str_field(body, "server_public_key", &out->server_public_key) != F_OK ||
	    out->server_public_key.len == 0)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_INVALID_KEY);
	if (out->server_public_key.len > lim->max_key_bytes)
		return fail(err, 400, TP_ERR_STRING, TP_MSG_KEY_TOO_LONG);
	return 0;
}

/* ---- stored forms ------------------------------------------------------ */

char *
tp_faucet_encode(const struct tp_faucet_request *req, size_t *len)
{
	struct tp_buf b = { 0 };

	tp_buf_puts(&b, "\"chat_history\":");
	jb_str(&b, req->chat_history.ptr, req->chat_history.len);
	tp_buf_puts(&b, ",\"cipherkey\":");
	jb_str(&b, req->cipherkey.ptr, req->cipherkey.len);
	tp_buf_puts(&b, ",\"client_public_key\":");
	if (req->client_public_key.ptr != NULL)
		jb_str(&b, req->client_public_key.ptr, req->client_public_key.len);
	else
		tp_buf_puts(&b, "null");
	tp_buf_puts(&b, ",\"iv\":");
	jb_str(&b, req->iv.ptr, req->iv.len);
	return tp_buf_finish(&b, len);
}

char *
tp_source_encode(const struct tp_source_request *req, size_t *len)
{
	struct tp_buf b = { 0 };

	tp_buf_puts(&b, "\"chat_history\":");
	jb_str(&b, req->chat_history.ptr, req->chat_history.len);
	tp_buf_puts(&b, ",\"cipherkey\":");
	jb_str(&b, req->cipherkey.ptr, req->cipherkey.len);
	tp_buf_puts(&b, ",\"iv\":");
	jb_str(&b, req->iv.ptr, req->iv.len);
	return tp_buf_finish(&b, len);
}

/*
 * Python's repr() of a float: the shortest digits that read back to the
 * same double, positional for exponents -4..15, else d.ddde+XX.
 */
static void
jb_float(struct tp_buf *b, double d)
{
	char tmp[40], digits[24], out[64];
	int prec, exp10, nd, i, o = 0;
	char *e;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	/* tmp = [-]d[.ddd]e[+-]XX */
	e = strchr(tmp, 'e');
	if (e == NULL) {
		tp_buf_puts(b, tmp);
		return;
	}
	exp10 = atoi(e + 1);
	nd = 0;
	for (i = 0; tmp + i < e; i++)
		if (tmp[i] >= '0' && tmp[i] <= '9')
			digits[nd++] = tmp[i];
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (d < 0)
		out[o++] = '-';
	if (exp10 >= -4 && exp10 < 16) {
		if (exp10 < 0) {
			out[o++] = '0';
			out[o++] = '.';
			for (i = -1; i > exp10; i--)
				out[o++] = '0';
			for (i = 0; i < nd; i++)
				out[o++] = digits[i];
		} else {
			for (i = 0; i <= exp10; i++)
				out[o++] = i < nd ? digits[i] : '0';
			out[o++] = '.';
			if (nd > exp10 + 1)
				for (i = exp10 + 1; i < nd; i++)
					out[o++] = digits[i];
			else
				out[o++] = '0';
		}
		out[o] = '\0';
	} else {
		out[o++] = digits[0];
		if (nd > 1) {
			out[o++] = '.';
			for (i = 1; i < nd; i++)
				out[o++] = digits[i];
		}
		snprintf(out + o, sizeof(out) - (size_t)o, "e%c%02d",
		    exp10 < 0 ? '-' : '+', abs(exp10));
	}
	tp_buf_puts(b, out);
}

static void
jb_number(struct tp_buf *b, double d)
{
	/* Integral values within the exact range were (almost surely) ints. */
	if (d == trunc(d) && fabs(d) < 1e16) {
		jb_int(b, (long long)d);
		return;
	}
	jb_float(b, d);
}

static int
cmp_members(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a;
	const cJSON *y = *(const cJSON *const *)b;

	return strcmp(x->string, y->string);
}

/*
 * Recursive, so bounded like json_utf8_valid(): a value with more than
 * TP_JSON_MAX_DEPTH levels of arrays and objects fails the whole encoding
 * (b->oom).
 */
static void
jb_value(struct tp_buf *b, const cJSON *v, int depth)
{
	const cJSON *c;
	const cJSON **kids;
	size_t n, i, w;
	bool first = true;

	if (depth >= TP_JSON_MAX_DEPTH && (cJSON_IsArray(v) || cJSON_IsObject(v))) {
		b->oom = true;
		return;
	}
	if (cJSON_IsNull(v) || cJSON_IsInvalid(v)) {
		tp_buf_puts(b, "null");
	} else if (cJSON_IsTrue(v)) {
		tp_buf_puts(b, "true");
	} else if (cJSON_IsFalse(v)) {
		tp_buf_puts(b, "false");
	} else if (cJSON_IsNumber(v)) {
		jb_number(b, v->valuedouble);
	} else if (cJSON_IsString(v)) {
		jb_str(b, v->valuestring, strlen(v->valuestring));
	} else if (cJSON_IsArray(v)) {
		tp_buf_puts(b, "[");
		for (c = v->child; c != NULL; c = c->next) {
			if (!first)
				tp_buf_puts(b, ",");
			first = false;
			jb_value(b, c, depth + 1);
		}
		tp_buf_puts(b, "]");
	} else if (cJSON_IsObject(v)) {
		n = 0;
		for (c = v->child; c != NULL; c = c->next)
			n++;
		tp_buf_puts(b, "{");
		if (n == 0) {
			tp_buf_puts(b, "}");
			return;
		}
		kids = malloc(n * sizeof(*kids));
		if (kids == NULL) {
			b->oom = true;
			return;
		}
		i = 0;
		for (c = v->child; c != NULL; c = c->next)
			kids[i++] = c;
		/*
		 * Stable by position is not needed: for duplicates only the
		 * last one is kept, found by scanning the original order.
		 */
		qsort(kids, n, sizeof(*kids), cmp_members);
		for (i = 0; i < n; i = w) {
			for (w = i + 1; w < n &&
			    strcmp(kids[w]->string, kids[i]->string) == 0; w++)
				;
			if (!first)
				tp_buf_puts(b, ",");
			first = false;
			jb_str(b, kids[i]->string, strlen(kids[i]->string));
			tp_buf_puts(b, ":");
			jb_value(b, tp_json_member(v, kids[i]->string),
			    depth + 1);
		}
		free(kids);
		tp_buf_puts(b, "}");
	} else {
		tp_buf_puts(b, "null");
	}
}

char *
tp_chunk_encode(const struct cJSON *chunk, size_t *len)
{
	struct tp_buf b = { 0 };

	jb_value(&b, chunk, 0);
	return tp_buf_finish(&b, len);
}

/* ---- replies ----------------------------------------------------------- */

char *
tp_next_server_reply(const char *key, size_t key_len, size_t *len)
{
	struct tp_buf b = { 0 };

	tp_buf_puts(&b, "{\"server_public_key\":");
	jb_str(&b, key, key_len);
	tp_buf_puts(&b, "}\n");
	return tp_buf_finish(&b, len);
}

char *
tp_message_reply(const char *message, size_t *len)
{
	struct tp_buf b = { 0 };

	tp_buf_puts(&b, "{\"message\":");
	jb_str(&b, message, strlen(message));
	tp_buf_puts(&b, "}\n");
	return tp_buf_finish(&b, len);
}

static void
sink_item(struct tp_buf *b, const struct tp_sink_item *it, bool with_stream)
{
	tp_buf_add(b, it->fields, it->fields_len);
	if (with_stream) {
		tp_buf_puts(b, it->stream ? ",\"stream\":true" : ",\"stream\":false");
		if (it->stream && it->session_id != NULL) {
			tp_buf_puts(b, ",\"stream_session_id\":");
			jb_str(b, it->session_id, strlen(it->session_id));
		}
	}
}

char *
tp_sink_reply(const struct tp_sink_item *items, size_t n, bool batch,
    int next_ping, size_t *len)
{
	struct tp_buf b = { 0 };
	size_t i;

	tp_buf_puts(&b, "{");
	if (n > 0) {
		if (batch) {
			tp_buf_puts(&b, "\"batch\":[");
			for (i = 0; i < n; i++) {
				tp_buf_puts(&b, i ? ",{" : "{");
				sink_item(&b, &items[i], true);
				tp_buf_puts(&b, "}");
			}
			tp_buf_puts(&b, "],");
		}
		tp_buf_add(&b, items[0].fields, items[0].fields_len);
		tp_buf_puts(&b, ",");
	}
	tp_buf_puts(&b, "\"next_ping_in_x_seconds\":");
	jb_int(&b, next_ping);
	if (n > 0 && items[0].stream && items[0].session_id != NULL) {
		tp_buf_puts(&b, ",\"stream\":true,\"stream_session_id\":");
		jb_str(&b, items[0].session_id, strlen(items[0].session_id));
	}
	tp_buf_puts(&b, "}\n");
	return tp_buf_finish(&b, len);
}

char *
tp_retrieve_reply(const char *fields, size_t fields_len, size_t *len)
{
	struct tp_buf b = { 0 };

	tp_buf_puts(&b, "{");
	tp_buf_add(&b, fields, fields_len);
	tp_buf_puts(&b, "}\n");
	return tp_buf_finish(&b, len);
}

char *
tp_stream_source_reply(bool final, size_t *len)
{
	struct tp_buf b = { 0 };

	tp_buf_puts(&b, final ? "{\"final\":true," : "{\"final\":false,");
	tp_buf_puts(&b, "\"message\":\"" TP_MSG_CHUNK_STORED "\"}\n");
	return tp_buf_finish(&b, len);
}

char *
tp_stream_retrieve_reply(const struct tp_chunk *chunks, size_t n,
    const char *session_id, size_t session_id_len, bool final, size_t *len)
{
	struct tp_buf b = { 0 };
	size_t i;

	tp_buf_puts(&b, "{\"chunks\":[");
	for (i = 0; i < n; i++) {
		if (i > 0)
			tp_buf_puts(&b, ",");
		tp_buf_add(&b, chunks[i].json, chunks[i].len);
	}
	tp_buf_puts(&b, final ? "],\"final\":true," : "],");
	tp_buf_puts(&b, "\"session_id\":");
	jb_str(&b, session_id, session_id_len);
	tp_buf_puts(&b, ",\"stream\":true}\n");
	return tp_buf_finish(&b, len);
}

char *
tp_unregister_reply(bool removed, size_t *len)
{
	struct tp_buf b = { 0 };

	tp_buf_puts(&b, "{\"message\":\"" TP_MSG_UNREGISTERED "\",\"removed\":");
	tp_buf_puts(&b, removed ? "true}\n" : "false}\n");
	return tp_buf_finish(&b, len);
}

char *
tp_error_reply(enum tp_err_shape shape, int code, const char *message,
    size_t *len)
{
	struct tp_buf b = { 0 };

	if (shape == TP_ERR_OBJECT) {
		tp_buf_puts(&b, "{\"error\":{\"code\":");
		jb_int(&b, code);
		tp_buf_puts(&b, ",\"message\":");
		jb_str(&b, message, strlen(message));
		tp_buf_puts(&b, "}}\n");
	} else {
		tp_buf_puts(&b, "{\"error\":");
		jb_str(&b, message, strlen(message));
		tp_buf_puts(&b, "}\n");
	}
	return tp_buf_finish(&b, len);
}

char *
tp_legacy_gone_reply(const char *path, size_t *len)
{
	struct tp_buf b = { 0 };
	struct tp_buf msg = { 0 };

	tp_buf_puts(&msg, "Legacy relay endpoint '");
	tp_buf_puts(&msg, path);
	tp_buf_puts(&msg, "' is deprecated. Use API v1 relay E2EE routes.");
	if (msg.oom) {
		free(msg.p);
		return NULL;
	}
	tp_buf_puts(&b, "{\"error\":{\"code\":\"legacy_relay_endpoint_deprecated\","
	    "\"deprecated\":true,\"message\":");
	jb_str(&b, msg.p, msg.len);
	tp_buf_puts(&b, "}}\n");
	free(msg.p);
	return tp_buf_finish(&b, len);
}
