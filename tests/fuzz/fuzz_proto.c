/*
 * libFuzzer target for everything the relay does with bytes from outside
 * before they reach the broker: JSON parsing, every legacy and API v1
 * message parser, and the two JSON string escapers (replies and logs).
 * Properties checked beyond "no crash, no sanitizer report": escaped
 * output is always valid JSON that decodes to a string, and a successful
 * parse never returns fields pointing outside the parsed document.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/log.h"
#include "tokenplace/proto.h"
#include "tokenplace/proto_v1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_is_json_string(const char *text, size_t len)
{
	cJSON *v = cJSON_ParseWithLength(text, len);

	if (v == NULL || !cJSON_IsString(v))
		abort();
	cJSON_Delete(v);
}

static void
escapers(const char *s, size_t n)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (tp_json_put_string(&buf, &len, &cap, s, n) == 0)
		check_is_json_string(buf, len);
	free(buf);
	buf = NULL;
	len = cap = 0;
	if (tp_json_append_string(&buf, &len, &cap, s, n) == 0)
		check_is_json_string(buf, len);
	free(buf);
}

static void
parsers(const cJSON *body)
{
	struct tp_proto_limits lim = { .max_key_bytes = 256 };
	struct tp_v1_limits vlim = { .max_key_bytes = 256 };
	struct tp_error err;
	struct tp_v1_error verr;
	struct tp_faucet_request f;
	struct tp_sink_request sk;
	struct tp_source_request so;
	struct tp_client_request cl;
	struct tp_stream_source_request ss;
	struct tp_unregister_request un;
	struct tp_v1_node_request nr;
	struct tp_v1_envelope env;
	struct tp_v1_progress pr;
	struct tp_v1_control ctl;
	struct tp_v1_unregister vun;
	struct tp_v1_cancel can;
	struct tp_v1_retrieve ret;
	int64_t n;

	(void)tp_faucet_parse(body, &lim, &f, &err);
	(void)tp_sink_parse(body, &lim, &sk, &err);
	(void)tp_source_parse(body, &lim, &so, &err);
	(void)tp_retrieve_parse(body, &lim, &cl, &err);
	(void)tp_stream_source_parse(body, &lim, &ss, &err);
	(void)tp_stream_retrieve_parse(body, &lim, &cl, &err);
	(void)tp_unregister_parse(body, &lim, &un, &err);
	(void)tp_py_int(body, &n);
	(void)tp_v1_register_parse(body, &vlim, &nr, &verr);
	(void)tp_v1_poll_parse(body, &vlim, &nr, &verr);
	(void)tp_v1_request_parse(body, &vlim, &env, &verr);
	(void)tp_v1_response_parse(body, &vlim, &env, &verr);
	(void)tp_v1_progress_parse(body, &vlim, &pr, &verr);
	(void)tp_v1_control_parse(body, &vlim, &ctl, &verr);
	(void)tp_v1_unregister_parse(body, &vlim, &vun, &verr);
	(void)tp_v1_cancel_parse(body, &vlim, &can, &verr);
	(void)tp_v1_retrieve_parse(body, &vlim, &ret, &verr);

	/* Reading what a successful parse points at must stay in bounds. */
	if (tp_faucet_parse(body, &lim, &f, &err) == 0) {
		char *reply;
		size_t len = 0;

		reply = tp_next_server_reply(f.server_public_key.ptr,
		    f.server_public_key.len, &len);
		if (reply != NULL)
			check_is_json_string(strchr(reply, ':') + 1,
			    len - (size_t)(strchr(reply, ':') + 1 - reply) - 2);
		free(reply);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	cJSON *body;

	escapers(s, size);
	body = cJSON_ParseWithLength(s, size);
	if (body != NULL) {
		parsers(body);
		cJSON_Delete(body);
	}
	return 0;
}
