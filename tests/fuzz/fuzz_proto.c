/*
 * libFuzzer target for everything the relay does with bytes from outside
 * before they reach the broker: the strict JSON entry point
 * (tp_json_read), every legacy and API v1 message parser, the stream
 * chunk encoder, and the two JSON string escapers (replies and logs).
 *
 * Each input runs on a thread with the stack a relay worker has
 * (RELAY_WORKER_STACK_BYTES, half of it taken by a stand-in for the
 * adapter's frames, as in tests/unit/test_tp_json.c): on the fuzzer's
 * 8 MiB main stack a recursion the depth limit misses would go unseen.
 *
 * Properties checked beyond "no crash, no sanitizer report": escaped
 * output is always valid JSON that decodes to a string; a successful
 * parse never returns fields pointing outside the parsed document; what
 * tp_json_read() accepts, cJSON prints back as a body tp_json_read()
 * accepts again; and the pre-scan alone agrees with the full read.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_server.h"	/* RELAY_WORKER_STACK_BYTES */
#include "tokenplace/json.h"
#include "tokenplace/log.h"
#include "tokenplace/proto.h"
#include "tokenplace/proto_v1.h"

#define ADAPTER_RESERVE (RELAY_WORKER_STACK_BYTES / 2)

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

/* What the relay does with one body, all of it on the worker stack. */
static void
one_body(const char *s, size_t size)
{
	struct tp_json_error err, scan_err;
	int scanned;
	cJSON *body, *again;
	char *text;
	size_t len = 0;

	escapers(s, size);
	scanned = tp_json_scan(s, size, 0, &scan_err);
	body = tp_json_read(s, size, 0, tp_v1_response_key_fields, &err);
	if (body == NULL) {
		/* Rules 1-4 are the scan's; a scan refusal is the read's. */
		if (scanned != 0 && (err.kind != scan_err.kind ||
		    err.offset != scan_err.offset))
			abort();
		if (err.kind == TP_JSON_OK || err.code == NULL)
			abort();
		return;
	}
	if (scanned != 0)
		abort();
	parsers(body);
	free(tp_chunk_encode(body, &len));
	text = cJSON_PrintUnformatted(body);
	if (text != NULL) {
		again = tp_json_read(text, strlen(text), 0, NULL, &err);
		if (again == NULL)
			abort();
		cJSON_Delete(again);
		cJSON_free(text);
	}
	cJSON_Delete(body);
}

struct input {
	const char *s;
	size_t size;
};

static __attribute__((noinline)) void
below_reserve(struct input *in)
{
	volatile char reserve[ADAPTER_RESERVE];

	reserve[0] = 1;
	reserve[sizeof(reserve) - 1] = 1;
	one_body(in->s, in->size);
	reserve[1] = reserve[0];
}

static void *
worker(void *arg)
{
	below_reserve(arg);
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { (const char *)data, size };
	pthread_attr_t attr;
	pthread_t th;

	if (pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setstacksize(&attr, RELAY_WORKER_STACK_BYTES) != 0 ||
	    pthread_create(&th, &attr, worker, &in) != 0)
		abort();
	pthread_join(th, NULL);
	pthread_attr_destroy(&attr);
	return 0;
}
