/*
 * test_tp_proto.c -- legacy relay message validation (check order, literal
 * texts, error shapes) and reply bytes compared with what the Python
 * relay's jsonify() produced (PROTOCOL.md 1.4 observed examples).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "tokenplace/json.h"
#include "tokenplace/proto.h"

static const struct tp_proto_limits lim = { .max_key_bytes = 64 };

/* Parses text, runs the faucet parser; returns its rc and the error. */
static int
faucet(const char *text, struct tp_faucet_request *out, struct tp_error *err)
{
	cJSON *j = cJSON_Parse(text);
	int rc;

	assert_non_null(j);
	rc = tp_faucet_parse(j, &lim, out, err);
	cJSON_Delete(j);
	return rc;
}

static void
expect_err(int rc, const struct tp_error *err, int status,
    enum tp_err_shape shape, const char *msg)
{
	assert_int_equal(rc, -1);
	assert_int_equal(err->status, status);
	assert_int_equal(err->shape, shape);
	assert_string_equal(err->message, msg);
}

static void
test_faucet_valid_fields_borrowed(void **state)
{
	cJSON *j = cJSON_Parse("{\"server_public_key\":\"S\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\",\"client_public_key\":\"C\",\"tag\":\"t\"}");
	struct tp_faucet_request r;
	struct tp_error e;

	(void)state;
	assert_int_equal(tp_faucet_parse(j, &lim, &r, &e), 0);
	assert_memory_equal(r.server_public_key.ptr, "S", 1);
	assert_int_equal(r.server_public_key.len, 1);
	assert_memory_equal(r.chat_history.ptr, "c", 1);
	assert_memory_equal(r.cipherkey.ptr, "k", 1);
	assert_memory_equal(r.iv.ptr, "i", 1);
	assert_memory_equal(r.client_public_key.ptr, "C", 1);
	assert_false(r.stream);
	cJSON_Delete(j);
}

static void
test_faucet_non_object_bodies_are_object_400(void **state)
{
	static const char *const bodies[] = { "null", "[]", "[\"server_public_key\"]",
	    "\"server_public_key chat_history cipherkey iv\"", "3", "true", "{}" };
	struct tp_faucet_request r;
	struct tp_error e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_err(faucet(bodies[i], &r, &e), &e, 400, TP_ERR_OBJECT,
		    "Invalid request data");
}

static void
test_faucet_missing_or_mistyped_required_field(void **state)
{
	static const char *const bodies[] = {
		"{\"chat_history\":\"c\",\"cipherkey\":\"k\",\"iv\":\"i\"}",
		"{\"server_public_key\":\"S\",\"cipherkey\":\"k\",\"iv\":\"i\"}",
		"{\"server_public_key\":\"S\",\"chat_history\":\"c\",\"iv\":\"i\"}",
		"{\"server_public_key\":\"S\",\"chat_history\":\"c\",\"cipherkey\":\"k\"}",
		"{\"server_public_key\":\"S\",\"chat_history\":5,\"cipherkey\":\"k\",\"iv\":\"i\"}",
		"{\"server_public_key\":\"S\",\"chat_history\":\"c\",\"cipherkey\":\"k\",\"iv\":null}",
		"{\"server_public_key\":[\"S\"],\"chat_history\":\"c\",\"cipherkey\":\"k\",\"iv\":\"i\"}",
		"{\"server_public_key\":\"S\",\"chat_history\":{},\"cipherkey\":\"k\",\"iv\":\"i\"}",
		/* optional, but a non-string, non-null key is refused, not stored */
		"{\"server_public_key\":\"S\",\"chat_history\":\"c\",\"cipherkey\":\"k\",\"iv\":\"i\",\"client_public_key\":7}",
		/* invalid UTF-8 inside a string */
		"{\"server_public_key\":\"S\",\"chat_history\":\"\xff\xfe\",\"cipherkey\":\"k\",\"iv\":\"i\"}",
	};
	struct tp_faucet_request r;
	struct tp_error e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_err(faucet(bodies[i], &r, &e), &e, 400, TP_ERR_OBJECT,
		    "Invalid request data");
}

static void
test_faucet_stream_requires_client_key_after_presence(void **state)
{
	struct tp_faucet_request r;
	struct tp_error e;

	(void)state;
	expect_err(faucet("{\"server_public_key\":\"S\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\",\"stream\":true}", &r, &e), &e, 400,
	    TP_ERR_OBJECT, "Streaming requests require a client public key");
	expect_err(faucet("{\"server_public_key\":\"S\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\",\"stream\":1,\"client_public_key\":\"\"}",
	    &r, &e), &e, 400, TP_ERR_OBJECT,
	    "Streaming requests require a client public key");
	expect_err(faucet("{\"server_public_key\":\"S\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"stream\":true,\"client_public_key\":null}",
	    &r, &e), &e, 400, TP_ERR_OBJECT, "Invalid request data");
	/* falsy stream values: no stream, no key needed; null key kept as absent */
	assert_int_equal(faucet("{\"server_public_key\":\"S\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\",\"stream\":\"\",\"client_public_key\":null}",
	    &r, &e), 0);
	assert_false(r.stream);
	assert_null(r.client_public_key.ptr);
	assert_int_equal(faucet("{\"server_public_key\":\"S\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\",\"stream\":\"no\",\"client_public_key\":\"C\"}",
	    &r, &e), 0);
	assert_true(r.stream);	/* Python: any non-empty string is true */
}

static void
test_faucet_plaintext_and_length_limits(void **state)
{
	char body[512];
	struct tp_faucet_request r;
	struct tp_error e;
	char longkey[80];

	(void)state;
	expect_err(faucet("{\"server_public_key\":\"S\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\",\"messages\":[]}", &r, &e), &e, 400,
	    TP_ERR_OBJECT, TP_MSG_PLAINTEXT);
	expect_err(faucet("{\"prompt\":\"hi\"}", &r, &e), &e, 400, TP_ERR_OBJECT,
	    TP_MSG_PLAINTEXT);
	memset(longkey, 'A', 65);
	longkey[65] = '\0';
	snprintf(body, sizeof(body), "{\"server_public_key\":\"S\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\",\"client_public_key\":\"%s\"}", longkey);
	expect_err(faucet(body, &r, &e), &e, 400, TP_ERR_OBJECT,
	    "Public key too long");
	longkey[64] = '\0';	/* exactly the limit is fine */
	snprintf(body, sizeof(body), "{\"server_public_key\":\"%s\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\"}", longkey);
	assert_int_equal(faucet(body, &r, &e), 0);
	assert_int_equal(r.server_public_key.len, 64);
}

/*
 * Request bodies with duplicate members never reach a parser (the strict
 * reader refuses them, tests/unit/test_tp_json.c); a tree built another
 * way still reads the last one, as a Python dict would.
 */
static void
test_faucet_duplicate_key_last_wins(void **state)
{
	struct tp_faucet_request r;
	struct tp_error e;

	cJSON *j = cJSON_Parse("{\"server_public_key\":\"A\",\"server_public_key\":\"B\","
	    "\"chat_history\":\"c\",\"cipherkey\":\"k\",\"iv\":\"i\"}");

	(void)state;
	assert_int_equal(tp_faucet_parse(j, &lim, &r, &e), 0);
	assert_memory_equal(r.server_public_key.ptr, "B", 1);
	cJSON_Delete(j);
}

static int
sink(const char *text, struct tp_sink_request *out, struct tp_error *err)
{
	cJSON *j = cJSON_Parse(text);
	int rc;

	assert_non_null(j);
	rc = tp_sink_parse(j, &lim, out, err);
	cJSON_Delete(j);
	return rc;
}

static void
test_sink_max_batch_size_python_int(void **state)
{
	static const struct {
		const char *v;
		int64_t want;	/* 0 = 400 Invalid max_batch_size */
	} cases[] = {
		{ "1", 1 }, { "2", 2 }, { "2.7", 2 }, { "\"2\"", 2 },
		{ "\" 3 \"", 3 }, { "\"+4\"", 4 }, { "\"1_0\"", 10 },
		{ "\"007\"", 7 }, { "true", 1 }, { "1e2", 100 },
		{ "1e30", INT64_MAX }, { "\"99999999999999999999999\"", INT64_MAX },
		{ "false", 0 }, { "0", 0 }, { "-1", 0 }, { "0.9", 0 },
		{ "\"1.5\"", 0 }, { "\"\"", 0 }, { "\"abc\"", 0 }, { "\"_1\"", 0 },
		{ "\"1_\"", 0 }, { "\"1__0\"", 0 }, { "\"0x10\"", 0 }, { "\"-2\"", 0 },
		{ "[]", 0 }, { "{}", 0 }, { "[2]", 0 },
	};
	char body[160];
	struct tp_sink_request r;
	struct tp_error e;
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body),
		    "{\"server_public_key\":\"S\",\"max_batch_size\":%s}", cases[i].v);
		rc = sink(body, &r, &e);
		if (cases[i].want == 0) {
			expect_err(rc, &e, 400, TP_ERR_STRING, "Invalid max_batch_size");
		} else {
			assert_int_equal(rc, 0);
			assert_true(r.max_batch_size == cases[i].want);
			assert_int_equal(r.batch, cases[i].want > 1);
		}
	}
	/* null and absent mean 1 */
	assert_int_equal(sink("{\"server_public_key\":\"S\",\"max_batch_size\":null}",
	    &r, &e), 0);
	assert_true(r.max_batch_size == 1);
	assert_false(r.batch);
}

static void
test_sink_key_checks_in_order(void **state)
{
	struct tp_sink_request r;
	struct tp_error e;
	char body[200];

	(void)state;
	/* a bad batch size is reported before a missing key */
	expect_err(sink("{\"max_batch_size\":0}", &r, &e), &e, 400, TP_ERR_STRING,
	    "Invalid max_batch_size");
	expect_err(sink("{}", &r, &e), &e, 400, TP_ERR_STRING, "Invalid public key");
	expect_err(sink("{\"server_public_key\":null}", &r, &e), &e, 400,
	    TP_ERR_STRING, "Invalid public key");
	expect_err(sink("{\"server_public_key\":42}", &r, &e), &e, 400,
	    TP_ERR_STRING, "Invalid public key");
	expect_err(sink("{\"server_public_key\":\"\"}", &r, &e), &e, 400,
	    TP_ERR_STRING, "Invalid public key");
	expect_err(sink("null", &r, &e), &e, 400, TP_ERR_STRING,
	    "Invalid request data");
	expect_err(sink("[1]", &r, &e), &e, 400, TP_ERR_STRING,
	    "Invalid request data");
	snprintf(body, sizeof(body), "{\"server_public_key\":\"%065d\"}", 0);
	expect_err(sink(body, &r, &e), &e, 400, TP_ERR_STRING, "Public key too long");
}

static void
test_source_retrieve_stream_unregister_parsers(void **state)
{
	struct tp_source_request s;
	struct tp_client_request c;
	struct tp_stream_source_request ss;
	struct tp_unregister_request u;
	struct tp_error e;
	cJSON *j;

	(void)state;
	j = cJSON_Parse("{\"client_public_key\":\"C\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\"}");
	assert_int_equal(tp_source_parse(j, &lim, &s, &e), 0);
	assert_memory_equal(s.client_public_key.ptr, "C", 1);
	cJSON_Delete(j);
	j = cJSON_Parse("{\"client_public_key\":\"C\",\"chat_history\":\"c\",\"iv\":\"i\"}");
	expect_err(tp_source_parse(j, &lim, &s, &e), &e, 400, TP_ERR_STRING,
	    "Invalid request data");
	cJSON_Delete(j);
	j = cJSON_Parse("{\"client_public_key\":\"C\",\"chat_history\":\"c\","
	    "\"cipherkey\":\"k\",\"iv\":\"i\",\"text\":\"hello\"}");
	expect_err(tp_source_parse(j, &lim, &s, &e), &e, 400, TP_ERR_STRING,
	    TP_MSG_PLAINTEXT);
	cJSON_Delete(j);

	j = cJSON_Parse("{\"client_public_key\":\"C\"}");
	assert_int_equal(tp_retrieve_parse(j, &lim, &c, &e), 0);
	assert_int_equal(tp_stream_retrieve_parse(j, &lim, &c, &e), 0);
	cJSON_Delete(j);
	j = cJSON_Parse("{\"client_public_key\":null}");
	expect_err(tp_retrieve_parse(j, &lim, &c, &e), &e, 400, TP_ERR_STRING,
	    "Invalid request data");
	cJSON_Delete(j);
	j = cJSON_Parse("[]");
	expect_err(tp_stream_retrieve_parse(j, &lim, &c, &e), &e, 400,
	    TP_ERR_STRING, "Invalid request data");
	cJSON_Delete(j);

	j = cJSON_Parse("{\"session_id\":\"abc\",\"chunk\":{\"b\":1,\"a\":null},\"final\":1}");
	assert_int_equal(tp_stream_source_parse(j, &lim, &ss, &e), 0);
	assert_true(ss.final);
	assert_non_null(ss.chunk);
	cJSON_Delete(j);
	j = cJSON_Parse("{\"session_id\":\"abc\",\"chunk\":null}");
	assert_int_equal(tp_stream_source_parse(j, &lim, &ss, &e), 0);
	assert_false(ss.final);
	cJSON_Delete(j);
	j = cJSON_Parse("{\"session_id\":\"abc\"}");
	expect_err(tp_stream_source_parse(j, &lim, &ss, &e), &e, 400,
	    TP_ERR_STRING, "Invalid request data");
	cJSON_Delete(j);
	j = cJSON_Parse("{\"session_id\":3,\"chunk\":\"x\"}");
	expect_err(tp_stream_source_parse(j, &lim, &ss, &e), &e, 400,
	    TP_ERR_STRING, "Invalid request data");
	cJSON_Delete(j);

	j = cJSON_Parse("{\"server_public_key\":\"S\",\"control_credential\":\"x\"}");
	assert_int_equal(tp_unregister_parse(j, &lim, &u, &e), 0);
	cJSON_Delete(j);
	j = cJSON_Parse("{}");
	expect_err(tp_unregister_parse(j, &lim, &u, &e), &e, 400, TP_ERR_STRING,
	    "Invalid public key");
	cJSON_Delete(j);
	j = cJSON_Parse("\"S\"");
	expect_err(tp_unregister_parse(j, &lim, &u, &e), &e, 400, TP_ERR_STRING,
	    "Invalid request data");
	cJSON_Delete(j);
}

static void
test_py_truthy(void **state)
{
	static const struct {
		const char *v;
		bool want;
	} cases[] = {
		{ "null", false }, { "false", false }, { "0", false }, { "0.0", false },
		{ "\"\"", false }, { "[]", false }, { "{}", false }, { "true", true },
		{ "-1", true }, { "0.5", true }, { "\"0\"", true }, { "[0]", true },
		{ "{\"a\":0}", true },
	};
	size_t i;
	cJSON *j;

	(void)state;
	assert_false(tp_py_truthy(NULL));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		j = cJSON_Parse(cases[i].v);
		assert_non_null(j);
		assert_int_equal(tp_py_truthy(j), cases[i].want);
		cJSON_Delete(j);
	}
}

/* Compares a rendered body with the expected bytes and frees it. */
static void
expect_body(char *got, const size_t *len, const char *want)
{
	assert_non_null(got);
	assert_string_equal(got, want);
	assert_int_equal(*len, strlen(want));
	free(got);
}

static void
test_sink_reply_matches_observed_python_bytes(void **state)
{
	struct tp_faucet_request f = { 0 };
	struct tp_sink_item it[2];
	char *enc, *enc2;
	size_t len, len2, n;

	(void)state;
	expect_body(tp_sink_reply(NULL, 0, false, 10, &n), &n,
	    "{\"next_ping_in_x_seconds\":10}\n");
	expect_body(tp_sink_reply(NULL, 0, true, 10, &n), &n,
	    "{\"next_ping_in_x_seconds\":10}\n");

	f.chat_history = (struct tp_str){ "c", 1 };
	f.cipherkey = (struct tp_str){ "k", 1 };
	f.client_public_key = (struct tp_str){ "C", 1 };
	f.iv = (struct tp_str){ "i", 1 };
	enc = tp_faucet_encode(&f, &len);
	assert_non_null(enc);
	it[0] = (struct tp_sink_item){ enc, len, false, NULL };
	expect_body(tp_sink_reply(it, 1, false, 10, &n), &n,
	    "{\"chat_history\":\"c\",\"cipherkey\":\"k\",\"client_public_key\":\"C\","
	    "\"iv\":\"i\",\"next_ping_in_x_seconds\":10}\n");

	f.chat_history = (struct tp_str){ "c2", 2 };
	f.cipherkey = (struct tp_str){ "k2", 2 };
	f.client_public_key = (struct tp_str){ "C2", 2 };
	f.iv = (struct tp_str){ "i2", 2 };
	enc2 = tp_faucet_encode(&f, &len2);
	assert_non_null(enc2);
	it[0] = (struct tp_sink_item){ enc2, len2, true, "vE5phhtx_51gbnD2jJQgaQ" };
	expect_body(tp_sink_reply(it, 1, true, 10, &n), &n,
	    "{\"batch\":[{\"chat_history\":\"c2\",\"cipherkey\":\"k2\",\"client_public_key\":\"C2\","
	    "\"iv\":\"i2\",\"stream\":true,\"stream_session_id\":\"vE5phhtx_51gbnD2jJQgaQ\"}],"
	    "\"chat_history\":\"c2\",\"cipherkey\":\"k2\",\"client_public_key\":\"C2\",\"iv\":\"i2\","
	    "\"next_ping_in_x_seconds\":10,\"stream\":true,"
	    "\"stream_session_id\":\"vE5phhtx_51gbnD2jJQgaQ\"}\n");

	/* two items: batch repeats the first; non-stream items carry "stream":false */
	it[0] = (struct tp_sink_item){ enc, len, false, NULL };
	it[1] = (struct tp_sink_item){ enc2, len2, true, "sid" };
	expect_body(tp_sink_reply(it, 2, true, 10, &n), &n,
	    "{\"batch\":[{\"chat_history\":\"c\",\"cipherkey\":\"k\",\"client_public_key\":\"C\","
	    "\"iv\":\"i\",\"stream\":false},{\"chat_history\":\"c2\",\"cipherkey\":\"k2\","
	    "\"client_public_key\":\"C2\",\"iv\":\"i2\",\"stream\":true,\"stream_session_id\":\"sid\"}],"
	    "\"chat_history\":\"c\",\"cipherkey\":\"k\",\"client_public_key\":\"C\",\"iv\":\"i\","
	    "\"next_ping_in_x_seconds\":10}\n");
	assert_null(strstr(enc, "error"));
	free(enc);
	free(enc2);

	/* absent client key is stored and sent as null (quirk 1.8.4) */
	f.client_public_key = (struct tp_str){ NULL, 0 };
	enc = tp_faucet_encode(&f, &len);
	assert_string_equal(enc, "\"chat_history\":\"c2\",\"cipherkey\":\"k2\","
	    "\"client_public_key\":null,\"iv\":\"i2\"");
	free(enc);
}

static void
test_string_escaping_like_python_ensure_ascii(void **state)
{
	const char in[] = "\xc3\xa9\xf0\x9f\x98\x80\x01\x7f\"\\/\n\t";
	char *buf = NULL;
	size_t len = 0, cap = 0;

	(void)state;
	assert_int_equal(tp_json_put_string(&buf, &len, &cap, in, sizeof(in) - 1), 0);
	assert_string_equal(buf,
	    "\"\\u00e9\\ud83d\\ude00\\u0001\\u007f\\\"\\\\/\\n\\t\"");
	assert_int_equal(len, strlen(buf));
	/* appends to what is there; a stray byte becomes U+FFFD */
	assert_int_equal(tp_json_put_string(&buf, &len, &cap, "a\xff", 2), 0);
	assert_string_equal(buf + len - 9, "\"a\\ufffd\"");
	free(buf);
	assert_true(tp_utf8_valid("\xc3\xa9", 2));
	assert_false(tp_utf8_valid("\xc0\xaf", 2));		/* overlong */
	assert_false(tp_utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	assert_false(tp_utf8_valid("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	assert_false(tp_utf8_valid("\xe2\x82", 2));		/* truncated */
}

static void
test_chunk_encode_canonical(void **state)
{
	cJSON *j = cJSON_Parse("{\"b\":1,\"a\":[1.5,1e300,0.0001,1e-05,-2,true,null,\"x\"],"
	    "\"c\":{\"z\":1,\"y\":{\"k\":\"\xc3\xbc\"}},\"d\":1,\"d\":2}");
	char *s;
	size_t n;

	(void)state;
	assert_non_null(j);
	s = tp_chunk_encode(j, &n);
	expect_body(s, &n, "{\"a\":[1.5,1e+300,0.0001,1e-05,-2,true,null,\"x\"],\"b\":1,"
	    "\"c\":{\"y\":{\"k\":\"\\u00fc\"},\"z\":1},\"d\":2}");
	cJSON_Delete(j);
	j = cJSON_Parse("[123456789012.5,1e16,1000000000000000.5,0.1,2.5e-7,{}]");
	s = tp_chunk_encode(j, &n);
	expect_body(s, &n, "[123456789012.5,1e+16,1000000000000000.5,0.1,2.5e-07,{}]");
	cJSON_Delete(j);
	j = cJSON_Parse("\"enc\"");
	s = tp_chunk_encode(j, &n);
	expect_body(s, &n, "\"enc\"");
	cJSON_Delete(j);
}

static void
test_other_replies(void **state)
{
	struct tp_source_request src = { { "C", 1 }, { "rc", 2 }, { "rk", 2 }, { "ri", 2 } };
	struct tp_chunk ch[2] = { { "\"a\"", 3 }, { "{\"x\":1}", 7 } };
	char *f;
	size_t n, flen;

	(void)state;
	expect_body(tp_next_server_reply("S\xc3\xa9", 3, &n), &n,
	    "{\"server_public_key\":\"S\\u00e9\"}\n");
	expect_body(tp_message_reply("Request received", &n), &n,
	    "{\"message\":\"Request received\"}\n");
	f = tp_source_encode(&src, &flen);
	expect_body(tp_retrieve_reply(f, flen, &n), &n,
	    "{\"chat_history\":\"rc\",\"cipherkey\":\"rk\",\"iv\":\"ri\"}\n");
	free(f);
	expect_body(tp_stream_source_reply(true, &n), &n,
	    "{\"final\":true,\"message\":\"Chunk stored\"}\n");
	expect_body(tp_stream_source_reply(false, &n), &n,
	    "{\"final\":false,\"message\":\"Chunk stored\"}\n");
	expect_body(tp_stream_retrieve_reply(ch, 2, "sid", 3, false, &n), &n,
	    "{\"chunks\":[\"a\",{\"x\":1}],\"session_id\":\"sid\",\"stream\":true}\n");
	expect_body(tp_stream_retrieve_reply(NULL, 0, "sid", 3, true, &n), &n,
	    "{\"chunks\":[],\"final\":true,\"session_id\":\"sid\",\"stream\":true}\n");
	expect_body(tp_unregister_reply(true, &n), &n,
	    "{\"message\":\"Server unregistered\",\"removed\":true}\n");
	expect_body(tp_unregister_reply(false, &n), &n,
	    "{\"message\":\"Server unregistered\",\"removed\":false}\n");
	expect_body(tp_error_reply(TP_ERR_OBJECT, 503, "No servers available", &n), &n,
	    "{\"error\":{\"code\":503,\"message\":\"No servers available\"}}\n");
	expect_body(tp_error_reply(TP_ERR_STRING, 200, TP_MSG_NO_RESPONSE, &n), &n,
	    "{\"error\":\"No response available for the given public key\"}\n");
	expect_body(tp_legacy_gone_reply("/sink", &n), &n,
	    "{\"error\":{\"code\":\"legacy_relay_endpoint_deprecated\",\"deprecated\":true,"
	    "\"message\":\"Legacy relay endpoint '/sink' is deprecated. Use API v1 relay "
	    "E2EE routes.\"}}\n");
}

/* A chain of n nested arrays around "x", built without the parser. */
static cJSON *
nested_arrays(int n)
{
	cJSON *v = cJSON_CreateString("x");

	for (int i = 0; i < n; i++) {
		cJSON *a = cJSON_CreateArray();

		assert_non_null(a);
		assert_true(cJSON_AddItemToArray(a, v));
		v = a;
	}
	return v;
}

/*
 * The recursive walks of proto.c bound themselves, also for a tree that
 * did not come through tp_json_read(): a chunk of TP_JSON_MAX_DEPTH
 * levels works (a body can carry 63), one level more fails.
 */
static void
test_chunk_walks_are_bounded(void **state)
{
	struct tp_stream_source_request r;
	struct tp_error e;
	cJSON *ok = nested_arrays(TP_JSON_MAX_DEPTH);
	cJSON *deep = nested_arrays(TP_JSON_MAX_DEPTH + 1);
	cJSON *body = cJSON_CreateObject();
	size_t len = 0;
	char *text;

	(void)state;
	text = tp_chunk_encode(ok, &len);
	assert_non_null(text);
	assert_int_equal(len, 2 * TP_JSON_MAX_DEPTH + 3);
	free(text);
	assert_null(tp_chunk_encode(deep, &len));

	cJSON_AddStringToObject(body, "session_id", "s");
	cJSON_AddItemToObject(body, "chunk", deep);
	assert_int_equal(tp_stream_source_parse(body, &lim, &r, &e), -1);
	assert_string_equal(e.message, TP_MSG_INVALID_REQUEST);
	cJSON_DetachItemFromObject(body, "chunk");
	cJSON_AddItemToObject(body, "chunk", ok);
	assert_int_equal(tp_stream_source_parse(body, &lim, &r, &e), 0);
	cJSON_Delete(body);
	cJSON_Delete(deep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_faucet_valid_fields_borrowed),
		cmocka_unit_test(test_faucet_non_object_bodies_are_object_400),
		cmocka_unit_test(test_faucet_missing_or_mistyped_required_field),
		cmocka_unit_test(test_faucet_stream_requires_client_key_after_presence),
		cmocka_unit_test(test_faucet_plaintext_and_length_limits),
		cmocka_unit_test(test_faucet_duplicate_key_last_wins),
		cmocka_unit_test(test_sink_max_batch_size_python_int),
		cmocka_unit_test(test_sink_key_checks_in_order),
		cmocka_unit_test(test_source_retrieve_stream_unregister_parsers),
		cmocka_unit_test(test_py_truthy),
		cmocka_unit_test(test_sink_reply_matches_observed_python_bytes),
		cmocka_unit_test(test_string_escaping_like_python_ensure_ascii),
		cmocka_unit_test(test_chunk_encode_canonical),
		cmocka_unit_test(test_chunk_walks_are_bounded),
		cmocka_unit_test(test_other_replies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
