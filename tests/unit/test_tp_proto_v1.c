/*
 * test_tp_proto_v1.c -- API v1 message validation: the plaintext
 * guardrail and its check order, allow-lists, the exact progress key set,
 * capabilities normalisation, proof completeness on /responses, and the
 * stored envelope forms (no cancel_token towards nodes).
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

#include "tokenplace/proto_v1.h"

static const struct tp_v1_limits lim = { .max_key_bytes = 64 };

#define ENV_OK "\"server_public_key\":\"S\",\"client_public_key\":\"C\"," \
	"\"ciphertext\":\"X\",\"cipherkey\":\"K\",\"iv\":\"I\",\"request_id\":\"r1\""

static int
parse_request(const char *text, struct tp_v1_envelope *e, struct tp_v1_error *err,
    cJSON **tree)
{
	*tree = cJSON_Parse(text);
	assert_non_null(*tree);
	return tp_v1_request_parse(*tree, &lim, e, err);
}

static void
expect_request_error(const char *text, int status, const char *msg)
{
	struct tp_v1_envelope e;
	struct tp_v1_error err;
	cJSON *t;

	assert_int_equal(parse_request(text, &e, &err, &t), -1);
	assert_int_equal(err.status, status);
	assert_string_equal(err.message, msg);
	cJSON_Delete(t);
}

static void
test_request_valid(void **state)
{
	struct tp_v1_envelope e;
	struct tp_v1_error err;
	cJSON *t;

	(void)state;
	assert_int_equal(parse_request("{" ENV_OK ",\"protocol\":\""
	    TP_V1_PROTOCOL "\",\"version\":1,\"cancel_token\":\"tok\"}",
	    &e, &err, &t), 0);
	assert_memory_equal(e.server_public_key.ptr, "S", 1);
	assert_memory_equal(e.ciphertext.ptr, "X", 1);
	assert_memory_equal(e.cancel_token.ptr, "tok", 3);
	assert_non_null(e.protocol);
	assert_non_null(e.version);
	cJSON_Delete(t);

	/* chat_history is the legacy spelling of ciphertext */
	assert_int_equal(parse_request("{\"server_public_key\":\"S\","
	    "\"client_public_key\":\"C\",\"chat_history\":\"X\",\"cipherkey\":\"K\","
	    "\"iv\":\"I\",\"request_id\":\"r\"}", &e, &err, &t), 0);
	assert_memory_equal(e.ciphertext.ptr, "X", 1);
	assert_null(e.cancel_token.ptr);
	assert_null(e.protocol);
	cJSON_Delete(t);
}

static void
test_request_guardrail_order(void **state)
{
	(void)state;
	/* plaintext beats unknown, unknown beats missing fields */
	expect_request_error("{\"zzz\":1,\"messages\":[]}", 400, TP_V1_MSG_PLAINTEXT);
	expect_request_error("{" ENV_OK ",\"prompt\":\"hi\"}", 400, TP_V1_MSG_PLAINTEXT);
	expect_request_error("{" ENV_OK ",\"text\":null}", 400, TP_V1_MSG_PLAINTEXT);
	expect_request_error("{\"content\":\"x\"}", 400, TP_V1_MSG_PLAINTEXT);
	expect_request_error("{\"input\":\"x\"}", 400, TP_V1_MSG_PLAINTEXT);
	expect_request_error("{\"response\":\"x\"}", 400, TP_V1_MSG_PLAINTEXT);
	expect_request_error("{\"model\":\"m\"}", 400, TP_V1_MSG_UNEXPECTED);
	expect_request_error("{" ENV_OK ",\"control_credential\":\"c\"}", 400,
	    TP_V1_MSG_UNEXPECTED);
	expect_request_error("[]", 400, TP_V1_MSG_INVALID);
	expect_request_error("{}", 400, TP_V1_MSG_INVALID);
	expect_request_error("{\"server_public_key\":\"S\",\"client_public_key\":\"C\","
	    "\"ciphertext\":\"X\",\"iv\":\"I\",\"request_id\":\"r\"}", 400,
	    TP_V1_MSG_INVALID);
	expect_request_error("{\"client_public_key\":\"C\",\"ciphertext\":\"X\","
	    "\"cipherkey\":\"K\",\"iv\":\"I\",\"request_id\":\"r\"}", 400,
	    TP_V1_MSG_INVALID);
	expect_request_error("{\"server_public_key\":\"S\",\"client_public_key\":\"\","
	    "\"ciphertext\":\"X\",\"cipherkey\":\"K\",\"iv\":\"I\"}", 400,
	    TP_V1_MSG_NO_CLIENT_KEY);
	expect_request_error("{\"server_public_key\":\"S\",\"client_public_key\":\"C\","
	    "\"ciphertext\":\"X\",\"cipherkey\":\"K\",\"iv\":\"I\"}", 400,
	    TP_V1_MSG_NO_REQUEST_ID);
	/* values must be strings; ciphertext and chat_history must agree */
	expect_request_error("{\"server_public_key\":\"S\",\"client_public_key\":\"C\","
	    "\"ciphertext\":5,\"cipherkey\":\"K\",\"iv\":\"I\",\"request_id\":\"r\"}",
	    400, TP_V1_MSG_INVALID);
	expect_request_error("{" ENV_OK ",\"chat_history\":\"Y\"}", 400,
	    TP_V1_MSG_INVALID);
	expect_request_error("{" ENV_OK ",\"protocol\":{\"a\":1}}", 400,
	    TP_V1_MSG_INVALID);
	/* a 65-byte key is over the 64-byte test limit */
	expect_request_error("{\"server_public_key\":\"S\",\"client_public_key\":"
	    "\"CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC\","
	    "\"ciphertext\":\"X\",\"cipherkey\":\"K\",\"iv\":\"I\",\"request_id\":\"r\"}",
	    400, TP_MSG_KEY_TOO_LONG);
}

static void
test_response_proof(void **state)
{
	struct tp_v1_envelope e;
	struct tp_v1_error err;
	cJSON *t;

	(void)state;
	t = cJSON_Parse("{\"client_public_key\":\"C\",\"ciphertext\":\"X\","
	    "\"cipherkey\":\"K\",\"iv\":\"I\",\"request_id\":\"r\"}");
	assert_int_equal(tp_v1_response_parse(t, &lim, &e, &err), 0);
	assert_null(e.server_public_key.ptr);
	assert_null(e.control_credential.ptr);
	cJSON_Delete(t);

	t = cJSON_Parse("{" ENV_OK ",\"control_credential\":\"cred\","
	    "\"cancel_token\":\"tok\"}");
	assert_int_equal(tp_v1_response_parse(t, &lim, &e, &err), 0);
	assert_memory_equal(e.control_credential.ptr, "cred", 4);
	assert_null(e.cancel_token.ptr);
	cJSON_Delete(t);

	/* half a proof is no proof */
	t = cJSON_Parse("{" ENV_OK "}");
	assert_int_equal(tp_v1_response_parse(t, &lim, &e, &err), -1);
	assert_int_equal(err.status, 403);
	assert_string_equal(err.message, TP_V1_MSG_BAD_CREDENTIAL);
	cJSON_Delete(t);
	t = cJSON_Parse("{\"client_public_key\":\"C\",\"ciphertext\":\"X\","
	    "\"cipherkey\":\"K\",\"iv\":\"I\",\"request_id\":\"r\","
	    "\"control_credential\":\"c\"}");
	assert_int_equal(tp_v1_response_parse(t, &lim, &e, &err), -1);
	assert_int_equal(err.status, 403);
	cJSON_Delete(t);

	t = cJSON_Parse("{\"client_public_key\":\"C\",\"ciphertext\":\"X\","
	    "\"cipherkey\":\"K\",\"iv\":\"I\",\"request_id\":\"r\",\"content\":\"x\"}");
	assert_int_equal(tp_v1_response_parse(t, &lim, &e, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.message, TP_V1_MSG_PLAINTEXT);
	cJSON_Delete(t);
}

#define PROG_OK "\"server_public_key\":\"S\",\"client_public_key\":\"C\"," \
	"\"request_id\":\"r\",\"control_credential\":\"cc\",\"protocol\":\"" \
	TP_V1_PROTOCOL "\",\"version\":1,\"ciphertext\":\"X\",\"cipherkey\":\"K\"," \
	"\"iv\":\"I\""

static void
expect_progress(const char *text, int rc, const char *msg)
{
	struct tp_v1_progress p;
	struct tp_v1_error err;
	cJSON *t = cJSON_Parse(text);

	assert_non_null(t);
	assert_int_equal(tp_v1_progress_parse(t, &lim, &p, &err), rc);
	if (rc != 0) {
		assert_int_equal(err.status, 400);
		assert_string_equal(err.message, msg);
	} else {
		assert_memory_equal(p.control_credential.ptr, "cc", 2);
	}
	cJSON_Delete(t);
}

static void
test_progress_exact_keys(void **state)
{
	(void)state;
	expect_progress("{" PROG_OK "}", 0, NULL);
	expect_progress("{" PROG_OK ",\"extra\":1}", -1, TP_V1_MSG_PROGRESS_SCHEMA);
	expect_progress("{\"server_public_key\":\"S\"}", -1, TP_V1_MSG_PROGRESS_SCHEMA);
	expect_progress("[]", -1, TP_V1_MSG_PROGRESS_SCHEMA);
	/* duplicate key makes the count wrong */
	expect_progress("{" PROG_OK ",\"iv\":\"J\"}", -1, TP_V1_MSG_PROGRESS_SCHEMA);
	expect_progress("{\"server_public_key\":\"S\",\"client_public_key\":\"C\","
	    "\"request_id\":\"r\",\"control_credential\":\"cc\",\"protocol\":\"x\","
	    "\"version\":1,\"ciphertext\":\"X\",\"cipherkey\":\"K\",\"iv\":\"I\"}",
	    -1, TP_V1_MSG_PROGRESS_PROTOCOL);
	expect_progress("{\"server_public_key\":\"S\",\"client_public_key\":\"C\","
	    "\"request_id\":\"r\",\"control_credential\":\"cc\",\"protocol\":\""
	    TP_V1_PROTOCOL "\",\"version\":true,\"ciphertext\":\"X\","
	    "\"cipherkey\":\"K\",\"iv\":\"I\"}", -1, TP_V1_MSG_PROGRESS_PROTOCOL);
	expect_progress("{\"server_public_key\":\"S\",\"client_public_key\":\"C\","
	    "\"request_id\":\"r\",\"control_credential\":\"cc\",\"protocol\":\""
	    TP_V1_PROTOCOL "\",\"version\":\"1\",\"ciphertext\":\"X\","
	    "\"cipherkey\":\"K\",\"iv\":\"I\"}", -1, TP_V1_MSG_PROGRESS_PROTOCOL);
	expect_progress("{\"server_public_key\":\"S\",\"client_public_key\":\"C\","
	    "\"request_id\":\"r\",\"control_credential\":\"cc\",\"protocol\":\""
	    TP_V1_PROTOCOL "\",\"version\":1,\"ciphertext\":\"\","
	    "\"cipherkey\":\"K\",\"iv\":\"I\"}", -1, TP_V1_MSG_PROGRESS_ENVELOPE);
}

static int
caps(const char *text, struct tp_v1_caps *c, const char **msg)
{
	cJSON *t = cJSON_Parse(text);
	int rc;

	assert_non_null(t);
	rc = tp_v1_caps_parse(t, c, msg);
	cJSON_Delete(t);
	return rc;
}

static void
test_capabilities(void **state)
{
	struct tp_v1_caps *c = malloc(sizeof(*c));
	const char *msg;
	char many[64 * 8 + 64] = "{\"model_ids\":[";
	int i;

	(void)state;
	assert_non_null(c);
	assert_int_equal(tp_v1_caps_parse(NULL, c, &msg), 0);
	assert_int_equal(c->nmodels, 0);
	assert_int_equal(c->max_concurrency, 1);
	assert_int_equal(caps("{\"api_version\":\"v1\",\"active_context_tier\":"
	    "\"64k-full\",\"supported_model_ids\":[\"Qwen3-8B-Instruct\","
	    "\"qwen3-8b-instruct\",\"other\"],\"max_concurrency\":4,"
	    "\"backend_class\":\"cuda\",\"unknown\":{}}", c, &msg), 0);
	assert_int_equal(c->tier, TP_V1_TIER_64K);
	assert_int_equal(c->max_context_tokens, 65536);
	assert_int_equal(c->nmodels, 2);
	assert_true(tp_v1_caps_has_model(c, "qwen3-8b-instruct"));
	assert_true(tp_v1_caps_has_model(c, "other"));
	assert_false(tp_v1_caps_has_model(c, "Other"));
	assert_int_equal(c->max_concurrency, 4);
	assert_string_equal(c->backend_class, "cuda");
	assert_int_equal(caps("{\"backend_class\":\"tpu\",\"api_version\":1,"
	    "\"context_tier\":\"8k-fast\"}", c, &msg), 0);
	assert_string_equal(c->backend_class, "unknown");

	assert_int_equal(caps("{\"max_concurrency\":true}", c, &msg), -1);
	assert_non_null(strstr(msg, "max_concurrency"));
	assert_int_equal(caps("{\"max_concurrency\":129}", c, &msg), -1);
	assert_int_equal(caps("{\"max_concurrency\":1.5}", c, &msg), -1);
	assert_int_equal(caps("{\"supported_model_ids\":[]}", c, &msg), -1);
	assert_string_equal(msg,
	    "capabilities.supported_model_ids must be a non-empty string list");
	assert_int_equal(caps("{\"supported_model_ids\":[\"a\",3]}", c, &msg), -1);
	assert_int_equal(caps("{\"api_version\":\"v2\"}", c, &msg), -1);
	assert_int_equal(caps("{\"active_context_tier\":\"1m\"}", c, &msg), -1);
	assert_int_equal(caps("{\"active_context_tier\":\"64k-full\","
	    "\"maximum_total_context_tokens\":8192}", c, &msg), -1);
	assert_int_equal(caps("{\"maximum_output_tokens\":10,"
	    "\"default_output_token_reservation\":11}", c, &msg), -1);
	assert_int_equal(caps("[1]", c, &msg), -1);

	/* 65 distinct models is one too many; duplicates do not count */
	for (i = 0; i < 65; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
		    "%s\"m%d\"", i ? "," : "", i);
	strcat(many, "]}");
	assert_int_equal(caps(many, c, &msg), -1);
	free(c);
}

static void
test_models_and_tiers(void **state)
{
	char buf[TP_V1_MAX_MODEL_ID + 1];
	enum tp_v1_tier t;

	(void)state;
	assert_string_equal(tp_v1_resolve_model(NULL, buf, sizeof(buf)),
	    TP_V1_DEFAULT_MODEL);
	assert_string_equal(tp_v1_resolve_model("GPT-3.5-Turbo", buf, sizeof(buf)),
	    TP_V1_DEFAULT_MODEL);
	assert_string_equal(tp_v1_resolve_model("Mistral", buf, sizeof(buf)),
	    "mistral");
	assert_int_equal(tp_v1_tier_parse("64k-full", &t), 0);
	assert_int_equal(t, TP_V1_TIER_64K);
	assert_int_equal(tp_v1_tier_parse("64K-FULL", &t), -1);
	assert_int_equal(tp_v1_tier_tokens(TP_V1_TIER_8K), 8192);
}

static void
test_node_routes(void **state)
{
	struct tp_v1_node_request *n = malloc(sizeof(*n));
	struct tp_v1_control c;
	struct tp_v1_unregister u;
	struct tp_v1_cancel k;
	struct tp_v1_retrieve r;
	struct tp_v1_error err;
	cJSON *t;

	(void)state;
	assert_non_null(n);
	t = cJSON_Parse("{\"capabilities\":{}}");
	assert_int_equal(tp_v1_register_parse(t, &lim, n, &err), -1);
	assert_string_equal(err.message, TP_V1_MSG_NO_SERVER_KEY);
	cJSON_Delete(t);
	t = cJSON_Parse("{\"server_public_key\":\"S\",\"capabilities\":"
	    "{\"max_concurrency\":0}}");
	assert_int_equal(tp_v1_register_parse(t, &lim, n, &err), -1);
	assert_string_equal(err.code, "invalid_capabilities");
	/* the same on a poll is ignored, not refused */
	assert_int_equal(tp_v1_poll_parse(t, &lim, n, &err), 0);
	assert_true(n->has_caps);
	assert_false(n->caps_valid);
	cJSON_Delete(t);

	t = cJSON_Parse("{\"server_public_key\":\"S\",\"request_id\":\"r\","
	    "\"control_credential\":\"c\",\"ack\":true}");
	assert_int_equal(tp_v1_control_parse(t, &lim, &c, &err), 0);
	assert_true(c.acknowledge);
	cJSON_Delete(t);
	t = cJSON_Parse("{\"server_public_key\":\"S\"}");
	assert_int_equal(tp_v1_control_parse(t, &lim, &c, &err), -1);
	assert_int_equal(err.status, 400);
	assert_int_equal(tp_v1_unregister_parse(t, &lim, &u, &err), 0);
	assert_null(u.control_credential.ptr);
	cJSON_Delete(t);
	t = cJSON_Parse("{\"server_public_key\":7}");
	assert_int_equal(tp_v1_unregister_parse(t, &lim, &u, &err), -1);
	assert_string_equal(err.message, TP_V1_MSG_INVALID_KEY);
	cJSON_Delete(t);

	t = cJSON_Parse("{\"client_public_key\":\"C\",\"request_id\":\"r\","
	    "\"cancel_token\":\"x\",\"status\":\"expired\",\"reason\":\"bogus\"}");
	assert_int_equal(tp_v1_cancel_parse(t, &lim, &k, &err), 0);
	assert_int_equal(k.status, TP_V1_EXPIRED);
	assert_string_equal(k.reason, "expired");
	cJSON_Delete(t);
	t = cJSON_Parse("{\"client_public_key\":\"C\",\"request_id\":\"r\","
	    "\"reason\":\"client_timeout\"}");
	assert_int_equal(tp_v1_cancel_parse(t, &lim, &k, &err), 0);
	assert_int_equal(k.status, TP_V1_CANCELLED);
	assert_string_equal(k.reason, "client_timeout");
	assert_null(k.cancel_token.ptr);
	cJSON_Delete(t);

	t = cJSON_Parse("{\"client_public_key\":\"C\"}");
	assert_int_equal(tp_v1_retrieve_parse(t, &lim, &r, &err), 0);
	assert_null(r.request_id.ptr);
	cJSON_Delete(t);
	t = cJSON_Parse("{\"request_id\":\"r\"}");
	assert_int_equal(tp_v1_retrieve_parse(t, &lim, &r, &err), -1);
	cJSON_Delete(t);
	free(n);
}

static void
test_encodings(void **state)
{
	struct tp_v1_envelope e;
	struct tp_v1_progress p;
	struct tp_v1_error err;
	cJSON *t, *back;
	size_t len;
	char *s, *wrapped;

	(void)state;
	assert_int_equal(parse_request("{" ENV_OK ",\"protocol\":\"" TP_V1_PROTOCOL
	    "\",\"version\":1,\"cancel_token\":\"secret\"}", &e, &err, &t), 0);
	s = tp_v1_work_encode(&e, &len);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	assert_null(strstr(s, "secret"));
	assert_null(strstr(s, "cancel_token"));
	assert_string_equal(s, "\"client_public_key\":\"C\",\"chat_history\":\"X\","
	    "\"ciphertext\":\"X\",\"cipherkey\":\"K\",\"iv\":\"I\","
	    "\"request_id\":\"r1\",\"protocol\":\"" TP_V1_PROTOCOL "\",\"version\":1");
	free(s);
	s = tp_v1_response_encode(&e, &len);
	assert_non_null(s);
	wrapped = malloc(len + 3);
	assert_non_null(wrapped);
	snprintf(wrapped, len + 3, "{%s}", s);
	back = cJSON_Parse(wrapped);
	assert_non_null(back);
	assert_string_equal(cJSON_GetObjectItem(back, "chat_history")->valuestring, "X");
	assert_string_equal(cJSON_GetObjectItem(back, "ciphertext")->valuestring, "X");
	assert_int_equal(cJSON_GetObjectItem(back, "version")->valueint, 1);
	assert_null(cJSON_GetObjectItem(back, "server_public_key"));
	cJSON_Delete(back);
	free(wrapped);
	free(s);
	cJSON_Delete(t);

	t = cJSON_Parse("{" PROG_OK "}");
	assert_int_equal(tp_v1_progress_parse(t, &lim, &p, &err), 0);
	s = tp_v1_progress_encode(&p, &len);
	assert_string_equal(s, "\"client_public_key\":\"C\",\"request_id\":\"r\","
	    "\"protocol\":\"" TP_V1_PROTOCOL "\",\"version\":1,\"ciphertext\":\"X\","
	    "\"cipherkey\":\"K\",\"iv\":\"I\"");
	free(s);
	cJSON_Delete(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_valid),
		cmocka_unit_test(test_request_guardrail_order),
		cmocka_unit_test(test_response_proof),
		cmocka_unit_test(test_progress_exact_keys),
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_models_and_tiers),
		cmocka_unit_test(test_node_routes),
		cmocka_unit_test(test_encodings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
