/*
 * test_tp_json.c -- the strict JSON entry point (tokenplace/json.h).
 *
 * The depth cases run on a thread whose stack is exactly what civetweb
 * gives a relay worker (RELAY_WORKER_STACK_BYTES), with the adapter's own
 * frames above the body read stood in for by a reserve; the main thread's
 * 8 MiB stack would hide an overflow. Then every strict rule against
 * every route's parser, and the syntax edge cases one by one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "http/http_server.h"	/* RELAY_WORKER_STACK_BYTES */
#include "tokenplace/json.h"
#include "tokenplace/proto.h"
#include "tokenplace/proto_v1.h"

/*
 * Stack the relay has already used when it reads a body: civetweb's
 * frames plus begin_request() (whose struct relay_response alone holds a
 * 16 KiB header buffer). Measured at 40385 bytes in the dev build and
 * 41520 in the ASan build; half the worker stack leaves a margin.
 */
#define ADAPTER_RESERVE (RELAY_WORKER_STACK_BYTES / 2)

/* ---- helpers ---------------------------------------------------------- */

/* open^n close^n around an optional core, e.g. [[[1]]]; heap string. */
static char *
nest(const char *open, const char *core, const char *close, size_t n)
{
	size_t lo = strlen(open), lc = strlen(close), lk = strlen(core);
	char *s = malloc(n * (lo + lc) + lk + 1), *p;
	size_t i;

	assert_non_null(s);
	p = s;
	for (i = 0; i < n; i++, p += lo)
		memcpy(p, open, lo);
	memcpy(p, core, lk);
	p += lk;
	for (i = 0; i < n; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	return s;
}

static char *
fmt(const char *f, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, f);
	n = vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	assert_true(n >= 0);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	va_start(ap, f);
	(void)vsnprintf(s, (size_t)n + 1, f, ap);
	va_end(ap);
	return s;
}

static enum tp_json_kind
kind_of(const char *text, size_t len, const char *const *fields)
{
	struct tp_json_error err;
	cJSON *t = tp_json_read(text, len, 0, fields, &err);

	if (t != NULL) {
		cJSON_Delete(t);
		return TP_JSON_OK;
	}
	assert_int_not_equal(err.kind, TP_JSON_OK);
	assert_non_null(err.code);
	assert_true(err.message[0] != '\0');
	assert_int_equal(err.status, err.kind == TP_JSON_NOMEM ? 503 : 400);
	return err.kind;
}

static cJSON *
read_s(const char *text, const char *const *fields, struct tp_json_error *err)
{
	return tp_json_read(text, strlen(text), 0, fields, err);
}

static enum tp_json_kind
kind_s(const char *text)
{
	return kind_of(text, strlen(text), NULL);
}

/* ---- the worker stack --------------------------------------------------- */

/*
 * Stack high-water mark: cJSON allocates and frees at every level of its
 * recursion, so allocator hooks that note their own stack address see
 * (nearly) the deepest point parsing, printing and deleting reach.
 */
static pthread_t probe_thread;
static uintptr_t probe_deepest = UINTPTR_MAX;

static void
probe_note(void)
{
	volatile char here = 0;

	if (pthread_equal(pthread_self(), probe_thread) &&
	    (uintptr_t)&here < probe_deepest)
		probe_deepest = (uintptr_t)&here;
	(void)here;
}

static void *
probe_malloc(size_t n)
{
	probe_note();
	return malloc(n);
}

static void
probe_free(void *p)
{
	probe_note();
	free(p);
}

static uintptr_t worker_top;	/* highest address of the worker's stack */

/* What one body did on the worker thread, checked on the main thread. */
struct deep_case {
	const char *text;
	size_t len;
	enum tp_json_kind kind;		/* result of tp_json_read() */
	size_t offset;
	size_t printed_len;		/* cJSON_PrintUnformatted() of the tree */
	int stream_rc;			/* tp_stream_source_parse(), -2 = not run */
	size_t chunk_len;		/* tp_chunk_encode() of its chunk */
	size_t stack_used;		/* deepest point below the thread's top */
};

static void
run_case(struct deep_case *c)
{
	struct tp_proto_limits lim = { .max_key_bytes = 256 };
	struct tp_stream_source_request ss;
	struct tp_json_error err;
	struct tp_error perr;
	cJSON *t;
	char *text;

	probe_deepest = UINTPTR_MAX;
	t = tp_json_read(c->text, c->len, 0, tp_stream_source_key_fields, &err);
	c->kind = t != NULL ? TP_JSON_OK : err.kind;
	c->offset = t != NULL ? 0 : err.offset;
	c->stream_rc = -2;
	if (t == NULL)
		return;
	/* Printing and deleting recurse as parsing does. */
	text = cJSON_PrintUnformatted(t);
	c->printed_len = text != NULL ? strlen(text) : 0;
	cJSON_free(text);
	if (cJSON_IsObject(t)) {
		c->stream_rc = tp_stream_source_parse(t, &lim, &ss, &perr);
		if (c->stream_rc == 0) {
			text = tp_chunk_encode(ss.chunk, &c->chunk_len);
			if (text == NULL)
				c->chunk_len = 0;
			free(text);
		}
	}
	cJSON_Delete(t);
	if (probe_deepest != UINTPTR_MAX)
		c->stack_used = (size_t)(worker_top - probe_deepest);
}

struct worker_job {
	struct deep_case *cases;
	size_t n;
};

/* Keeps the reserve on the stack while the cases run below it. */
static __attribute__((noinline)) void
below_reserve(struct worker_job *job)
{
	volatile char reserve[ADAPTER_RESERVE];
	size_t i;

	reserve[0] = 1;
	reserve[sizeof(reserve) - 1] = 1;
	for (i = 0; i < job->n; i++)
		run_case(&job->cases[i]);
	reserve[1] = reserve[0];
}

static void *
worker(void *arg)
{
	pthread_attr_t attr;
	void *lo = NULL;
	size_t size = 0;

	probe_thread = pthread_self();
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		if (pthread_attr_getstack(&attr, &lo, &size) == 0)
			worker_top = (uintptr_t)lo + size;
		pthread_attr_destroy(&attr);
	}
	below_reserve(arg);
	return NULL;
}

/* Runs the cases on a thread with the relay worker's stack size. */
static void
on_worker_stack(struct deep_case *cases, size_t n)
{
	struct worker_job job = { cases, n };
	cJSON_Hooks hooks;
	pthread_attr_t attr;
	pthread_t th;
	size_t got = 0;

	assert_int_equal(pthread_attr_init(&attr), 0);
	assert_int_equal(pthread_attr_setstacksize(&attr,
	    RELAY_WORKER_STACK_BYTES), 0);
	assert_int_equal(pthread_attr_getstacksize(&attr, &got), 0);
	assert_int_equal(got, RELAY_WORKER_STACK_BYTES);
	hooks.malloc_fn = probe_malloc;
	hooks.free_fn = probe_free;
	cJSON_InitHooks(&hooks);
	assert_int_equal(pthread_create(&th, &attr, worker, &job), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	cJSON_InitHooks(NULL);
	pthread_attr_destroy(&attr);
}

static void
test_depth_on_worker_stack(void **state)
{
	/* 64 levels is the worst accepted body, 65 the first refused one. */
	char *arr64 = nest("[", "", "]", TP_JSON_MAX_DEPTH);
	char *arr65 = nest("[", "", "]", TP_JSON_MAX_DEPTH + 1);
	char *obj64 = nest("{\"a\":", "1", "}", TP_JSON_MAX_DEPTH);
	char *obj65 = nest("{\"a\":", "1", "}", TP_JSON_MAX_DEPTH + 1);
	/* A stream chunk 63 deep inside its body: every walk proto.c does. */
	char *chunk63 = nest("[", "\"x\"", "]", TP_JSON_MAX_DEPTH - 1);
	char *stream64 = fmt("{\"session_id\":\"s\",\"chunk\":%s}", chunk63);
	char *mixed64 = nest("[{\"k\":", "1", "}]", TP_JSON_MAX_DEPTH / 2);
	char *arr1e5 = nest("[", "", "]", 100000);
	char *arr1e6 = nest("[", "", "]", 1000000);
	char *obj1e5 = nest("{\"a\":", "1", "}", 100000);
	char *open1e6 = nest("[", "", "", 1000000);
	struct deep_case c[] = {
		{ .text = arr64 }, { .text = obj64 }, { .text = stream64 },
		{ .text = mixed64 },
		{ .text = arr65 }, { .text = obj65 }, { .text = arr1e5 },
		{ .text = arr1e6 }, { .text = obj1e5 }, { .text = open1e6 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		c[i].len = strlen(c[i].text);
	on_worker_stack(c, sizeof(c) / sizeof(c[0]));

	/* accepted, printed back whole, deleted */
	for (i = 0; i < 4; i++) {
		assert_int_equal(c[i].kind, TP_JSON_OK);
		assert_int_equal(c[i].printed_len, c[i].len);
	}
	assert_int_equal(c[2].stream_rc, 0);
	assert_int_equal(c[2].chunk_len, strlen(chunk63));
	/* the figure behind the limit: how deep cJSON went on this stack */
	for (i = 0; i < 4; i++) {
		assert_true(c[i].stack_used > ADAPTER_RESERVE);
		assert_true(c[i].stack_used < RELAY_WORKER_STACK_BYTES);
		print_message("64 levels (case %zu): %zu bytes of the %d-byte "
		    "worker stack used, %zu below the adapter reserve\n", i,
		    c[i].stack_used, RELAY_WORKER_STACK_BYTES,
		    c[i].stack_used - ADAPTER_RESERVE);
	}
	/* refused at the 65th opening bracket, before any parse */
	for (i = 4; i < sizeof(c) / sizeof(c[0]); i++)
		assert_int_equal(c[i].kind, TP_JSON_DEPTH);
	assert_int_equal(c[4].offset, TP_JSON_MAX_DEPTH);
	assert_int_equal(c[5].offset, TP_JSON_MAX_DEPTH * 5);
	assert_int_equal(c[7].offset, TP_JSON_MAX_DEPTH);

	free(arr64); free(arr65); free(obj64); free(obj65); free(chunk63);
	free(stream64); free(mixed64); free(arr1e5); free(arr1e6);
	free(obj1e5); free(open1e6);
}

static void
test_depth_limit_is_configurable_downward(void **state)
{
	struct tp_json_error err;
	char *a8 = nest("[", "", "]", 8), *a9 = nest("[", "", "]", 9);
	char *a65 = nest("[", "", "]", 65);
	cJSON *t;

	(void)state;
	t = tp_json_read(a8, strlen(a8), 8, NULL, &err);
	assert_non_null(t);
	cJSON_Delete(t);
	assert_null(tp_json_read(a9, strlen(a9), 8, NULL, &err));
	assert_int_equal(err.kind, TP_JSON_DEPTH);
	assert_string_equal(err.code, "json_too_deep");
	assert_int_equal(err.offset, 8);
	/* never above TP_JSON_MAX_DEPTH, whatever is asked */
	assert_null(tp_json_read(a65, strlen(a65), 1000, NULL, &err));
	assert_int_equal(err.kind, TP_JSON_DEPTH);
	assert_int_equal(tp_json_scan(a65, strlen(a65), 0, &err), -1);
	assert_int_equal(err.kind, TP_JSON_DEPTH);
	free(a8); free(a9); free(a65);
}

/* ---- one rule at a time ------------------------------------------------- */

static void
test_syntax(void **state)
{
	static const char *const bad[] = {
		"", " ", "\n", "{", "}", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}",
		"{\"a\":1,}", "{a:1}", "{'a':1}", "NaN", "Infinity", "-Infinity",
		"1.", ".5", "+1", "-", "1e", "1e+", "tru", "nul", "[true",
		"\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\ud800\"",
		"\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"",
		"\"\t\"", "\"\x01\"", "\"\xff\"", "\"\xc3\"", "\"\xed\xa0\x80\"",
		"\xef\xbb\xbf{}", "\x0c{}", "[1 2]", "{\"a\" 1}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (kind_s(bad[i]) != TP_JSON_SYNTAX)
			fail_msg("not a syntax error: %s", bad[i]);
	/* a leading zero ends the number (Python: "Extra data") */
	assert_int_equal(kind_s("01"), TP_JSON_TRAILING);
	/* a vertical tab is not JSON whitespace: after a value, trailing */
	assert_int_equal(kind_s("{}\x0b"), TP_JSON_TRAILING);
}

static void
test_accepts_rfc8259(void **state)
{
	static const char *const good[] = {
		"{}", "[]", "0", "-0", "1.5e-7", "-12.25E+3", "true", "false",
		"null", "\"\"", " \t\r\n{ \"a\" : [ 1 , 2 ] }\r\n ",
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"",
		"\"\xc3\xa9\xf0\x9f\x98\x80\"", "[[],{},[{}]]",
		"{\"a\":{\"a\":{\"a\":1}}}",	/* same name at other depths */
		"{\"a\":1,\"A\":2}",		/* case matters */
	};
	char num[TP_JSON_MAX_NUMBER_CHARS + 2];
	cJSON *t;
	struct tp_json_error err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (kind_s(good[i]) != TP_JSON_OK)
			fail_msg("refused: %s", good[i]);
	/* a number of exactly the longest length, and one more */
	memset(num, '1', TP_JSON_MAX_NUMBER_CHARS);
	num[TP_JSON_MAX_NUMBER_CHARS] = '\0';
	t = tp_json_read(num, strlen(num), 0, NULL, &err);
	assert_non_null(t);
	cJSON_Delete(t);
	num[TP_JSON_MAX_NUMBER_CHARS] = '1';
	num[TP_JSON_MAX_NUMBER_CHARS + 1] = '\0';
	assert_int_equal(kind_s(num), TP_JSON_SYNTAX);
	/* no NUL terminator needed: only len bytes are read */
	t = tp_json_read("{}garbage", 2, 0, NULL, &err);
	assert_non_null(t);
	cJSON_Delete(t);
}

static void
test_trailing(void **state)
{
	struct tp_json_error err;
	static const char body[] = "{\"a\":1}\0{}";

	(void)state;
	assert_int_equal(kind_s("{\"server_public_key\":\"k\"}garbage"),
	    TP_JSON_TRAILING);
	assert_int_equal(kind_s("{} {}"), TP_JSON_TRAILING);
	assert_int_equal(kind_s("1 2"), TP_JSON_TRAILING);
	assert_int_equal(kind_s("[]]"), TP_JSON_TRAILING);
	assert_int_equal(kind_s("{}\n\t \r"), TP_JSON_OK);
	/* a raw NUL byte ends nothing: it is trailing content */
	assert_null(tp_json_read(body, sizeof(body) - 1, 0, NULL, &err));
	assert_int_equal(err.kind, TP_JSON_TRAILING);
	assert_string_equal(err.code, "json_trailing_data");
	assert_int_equal(err.offset, 7);
}

static void
test_duplicates(void **state)
{
	struct tp_json_error err;
	char big[4096];
	size_t off = 0;
	int i;

	(void)state;
	assert_int_equal(kind_s("{\"server_public_key\":\"A\","
	    "\"server_public_key\":\"B\"}"), TP_JSON_DUPLICATE);
	/* names compared after unescaping */
	assert_int_equal(kind_s("{\"a\":1,\"\\u0061\":2}"), TP_JSON_DUPLICATE);
	/* at any depth, in arrays too */
	assert_int_equal(kind_s("{\"x\":[1,{\"c\":{\"k\":1,\"j\":2,\"k\":3}}]}"),
	    TP_JSON_DUPLICATE);
	assert_int_equal(kind_s("[{},{\"a\":1},{\"b\":1,\"b\":1}]"),
	    TP_JSON_DUPLICATE);
	/* many members: the sorted path, duplicate last or absent */
	off += (size_t)snprintf(big + off, sizeof(big) - off, "{");
	for (i = 0; i < 200; i++)
		off += (size_t)snprintf(big + off, sizeof(big) - off,
		    "%s\"m%d\":%d", i ? "," : "", i, i);
	assert_int_equal(kind_of(big, off, NULL) == TP_JSON_SYNTAX, 1);
	big[off] = '}';
	assert_int_equal(kind_of(big, off + 1, NULL), TP_JSON_OK);
	off += (size_t)snprintf(big + off, sizeof(big) - off, ",\"m137\":0}");
	assert_null(tp_json_read(big, off, 0, NULL, &err));
	assert_int_equal(err.kind, TP_JSON_DUPLICATE);
	assert_string_equal(err.code, "json_duplicate_member");
	assert_non_null(strstr(err.message, "\"m137\""));
}

static void
test_nul(void **state)
{
	struct tp_json_error err;

	(void)state;
	assert_null(read_s("{\"a\\u0000b\":1}", NULL, &err));
	assert_int_equal(err.kind, TP_JSON_NUL);
	assert_string_equal(err.code, "json_nul_character");
	assert_non_null(strstr(err.message, "member name"));
	assert_null(read_s("{\"client_public_key\":\"C\\u0000x\"}", NULL, &err));
	assert_int_equal(err.kind, TP_JSON_NUL);
	assert_non_null(strstr(err.message, "\"client_public_key\""));
	assert_int_equal(err.offset, 23);
	/* deep inside a member: the top-level member is named */
	assert_null(read_s("{\"chunk\":[{\"x\":\"\\u0000\"}]}", NULL, &err));
	assert_int_equal(err.kind, TP_JSON_NUL);
	assert_non_null(strstr(err.message, "\"chunk\""));
	assert_int_equal(kind_s("[\"\\u0000\"]"), TP_JSON_NUL);
	/* other escapes of small code points are fine */
	assert_int_equal(kind_s("\"\\u0001\\u001f\""), TP_JSON_OK);
	/* a syntax error later wins: the scan must finish first */
	assert_int_equal(kind_s("[\"\\u0000\""), TP_JSON_SYNTAX);
}

static void
test_types(void **state)
{
	static const char *const fields[] = { "server_public_key",
	    "control_credential", NULL };
	static const char *const wrong[] = { "7", "true", "false", "[]",
	    "{}", "[\"k\"]", "0.5" };
	struct tp_json_error err;
	char body[128];
	size_t i;
	cJSON *t;

	(void)state;
	for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		snprintf(body, sizeof(body), "{\"server_public_key\":\"S\","
		    "\"control_credential\":%s}", wrong[i]);
		assert_null(tp_json_read(body, strlen(body), 0, fields, &err));
		assert_int_equal(err.kind, TP_JSON_TYPE);
		assert_int_equal(err.status, 400);
		assert_string_equal(err.field, "control_credential");
		assert_string_equal(err.code, "invalid_field_type");
		assert_non_null(strstr(err.message, "\"control_credential\""));
	}
	/* absent, null or a string: the route's parser decides */
	t = read_s("{\"server_public_key\":null}", fields, &err);
	assert_non_null(t);
	cJSON_Delete(t);
	t = read_s("{\"other\":7}", fields, &err);
	assert_non_null(t);
	cJSON_Delete(t);
	/* only top-level members are keys */
	t = read_s("{\"x\":{\"server_public_key\":7}}", fields, &err);
	assert_non_null(t);
	cJSON_Delete(t);
	/* a body that is not an object is the parser's business */
	t = read_s("[7]", fields, &err);
	assert_non_null(t);
	cJSON_Delete(t);
}

static void
test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(tp_json_kind_name(TP_JSON_SYNTAX), "syntax");
	assert_string_equal(tp_json_kind_name(TP_JSON_DEPTH), "depth");
	assert_string_equal(tp_json_kind_name(TP_JSON_TRAILING), "trailing");
	assert_string_equal(tp_json_kind_name(TP_JSON_NUL), "nul");
	assert_string_equal(tp_json_kind_name(TP_JSON_DUPLICATE), "duplicate");
	assert_string_equal(tp_json_kind_name(TP_JSON_TYPE), "type");
	assert_string_equal(tp_json_kind_name(TP_JSON_NOMEM), "nomem");
	assert_string_equal(tp_json_kind_name((enum tp_json_kind)99), "unknown");
}

/* ---- every rule against every route's parser ---------------------------- */

static const struct tp_proto_limits lim = { .max_key_bytes = 256 };
static const struct tp_v1_limits vlim = { .max_key_bytes = 256 };

static int p_faucet(const cJSON *b)
{ struct tp_faucet_request o; struct tp_error e; return tp_faucet_parse(b, &lim, &o, &e); }
static int p_sink(const cJSON *b)
{ struct tp_sink_request o; struct tp_error e; return tp_sink_parse(b, &lim, &o, &e); }
static int p_source(const cJSON *b)
{ struct tp_source_request o; struct tp_error e; return tp_source_parse(b, &lim, &o, &e); }
static int p_retrieve(const cJSON *b)
{ struct tp_client_request o; struct tp_error e; return tp_retrieve_parse(b, &lim, &o, &e); }
static int p_stream_source(const cJSON *b)
{ struct tp_stream_source_request o; struct tp_error e; return tp_stream_source_parse(b, &lim, &o, &e); }
static int p_stream_retrieve(const cJSON *b)
{ struct tp_client_request o; struct tp_error e; return tp_stream_retrieve_parse(b, &lim, &o, &e); }
static int p_unregister(const cJSON *b)
{ struct tp_unregister_request o; struct tp_error e; return tp_unregister_parse(b, &lim, &o, &e); }
static int p_register(const cJSON *b)
{
	struct tp_v1_node_request *o = malloc(sizeof(*o));
	struct tp_v1_error e;
	int rc;

	assert_non_null(o);
	rc = tp_v1_register_parse(b, &vlim, o, &e);
	free(o);
	return rc;
}
static int p_poll(const cJSON *b)
{
	struct tp_v1_node_request *o = malloc(sizeof(*o));
	struct tp_v1_error e;
	int rc;

	assert_non_null(o);
	rc = tp_v1_poll_parse(b, &vlim, o, &e);
	free(o);
	return rc;
}
static int p_control(const cJSON *b)
{ struct tp_v1_control o; struct tp_v1_error e; return tp_v1_control_parse(b, &vlim, &o, &e); }
static int p_v1_unregister(const cJSON *b)
{ struct tp_v1_unregister o; struct tp_v1_error e; return tp_v1_unregister_parse(b, &vlim, &o, &e); }
static int p_requests(const cJSON *b)
{ struct tp_v1_envelope o; struct tp_v1_error e; return tp_v1_request_parse(b, &vlim, &o, &e); }
static int p_responses(const cJSON *b)
{ struct tp_v1_envelope o; struct tp_v1_error e; return tp_v1_response_parse(b, &vlim, &o, &e); }
static int p_progress(const cJSON *b)
{ struct tp_v1_progress o; struct tp_v1_error e; return tp_v1_progress_parse(b, &vlim, &o, &e); }
static int p_cancel(const cJSON *b)
{ struct tp_v1_cancel o; struct tp_v1_error e; return tp_v1_cancel_parse(b, &vlim, &o, &e); }
static int p_v1_retrieve(const cJSON *b)
{ struct tp_v1_retrieve o; struct tp_v1_error e; return tp_v1_retrieve_parse(b, &vlim, &o, &e); }

/*
 * One route: its key fields, a valid body whose first key field's value
 * is the %s, and its parser.
 */
struct route_case {
	const char *name;
	const char *const *fields;
	const char *tmpl;
	int (*parse)(const cJSON *);
};

#define PROG_REST ",\"client_public_key\":\"C\",\"request_id\":\"r\"," \
	"\"control_credential\":\"cc\",\"protocol\":\"" TP_V1_PROTOCOL "\"," \
	"\"version\":1,\"ciphertext\":\"X\",\"cipherkey\":\"K\",\"iv\":\"I\"}"

static const struct route_case routes[] = {
	{ "/faucet", tp_faucet_key_fields, "{\"server_public_key\":%s,"
	  "\"chat_history\":\"c\",\"cipherkey\":\"k\",\"iv\":\"i\","
	  "\"client_public_key\":\"C\"}", p_faucet },
	{ "/sink", tp_sink_key_fields, "{\"server_public_key\":%s,"
	  "\"max_batch_size\":2}", p_sink },
	{ "/source", tp_source_key_fields, "{\"client_public_key\":%s,"
	  "\"chat_history\":\"c\",\"cipherkey\":\"k\",\"iv\":\"i\"}", p_source },
	{ "/retrieve", tp_retrieve_key_fields, "{\"client_public_key\":%s}",
	  p_retrieve },
	{ "/stream/source", tp_stream_source_key_fields, "{\"session_id\":%s,"
	  "\"chunk\":{\"iv\":\"v\",\"ciphertext\":[1,2]},\"final\":false}",
	  p_stream_source },
	{ "/stream/retrieve", tp_retrieve_key_fields,
	  "{\"client_public_key\":%s}", p_stream_retrieve },
	{ "/unregister", tp_unregister_key_fields, "{\"server_public_key\":%s}",
	  p_unregister },
	{ "v1 register", tp_v1_node_key_fields, "{\"server_public_key\":%s,"
	  "\"capabilities\":{\"supported_model_ids\":[\"m\"],"
	  "\"max_concurrency\":2}}", p_register },
	{ "v1 poll", tp_v1_node_key_fields, "{\"server_public_key\":%s}",
	  p_poll },
	{ "v1 control", tp_v1_control_key_fields, "{\"server_public_key\":%s,"
	  "\"request_id\":\"r\",\"control_credential\":\"cc\"}", p_control },
	{ "v1 unregister", tp_v1_unregister_key_fields,
	  "{\"server_public_key\":%s,\"control_credential\":\"cc\"}",
	  p_v1_unregister },
	{ "v1 requests", tp_v1_request_key_fields, "{\"server_public_key\":%s,"
	  "\"client_public_key\":\"C\",\"ciphertext\":\"X\",\"cipherkey\":\"K\","
	  "\"iv\":\"I\",\"request_id\":\"r\",\"cancel_token\":\"t\"}",
	  p_requests },
	{ "v1 responses", tp_v1_response_key_fields,
	  "{\"server_public_key\":%s,\"control_credential\":\"cc\","
	  "\"client_public_key\":\"C\",\"ciphertext\":\"X\",\"cipherkey\":\"K\","
	  "\"iv\":\"I\",\"request_id\":\"r\"}", p_responses },
	{ "v1 progress", tp_v1_progress_key_fields,
	  "{\"server_public_key\":%s" PROG_REST, p_progress },
	{ "v1 cancel", tp_v1_cancel_key_fields, "{\"client_public_key\":%s,"
	  "\"request_id\":\"r\",\"cancel_token\":\"t\"}", p_cancel },
	{ "v1 retrieve", tp_v1_retrieve_key_fields,
	  "{\"client_public_key\":%s,\"request_id\":\"r\"}", p_v1_retrieve },
};

static void
expect_kind(const struct route_case *r, const char *body,
    enum tp_json_kind want, const char *rule)
{
	struct tp_json_error err;
	cJSON *t = tp_json_read(body, strlen(body), 0, r->fields, &err);

	if (want == TP_JSON_OK) {
		if (t == NULL)
			fail_msg("%s: %s refused (%s): %s", r->name, rule,
			    err.message, body);
		if (r->parse(t) != 0)
			fail_msg("%s: parser refused %s", r->name, body);
		cJSON_Delete(t);
		return;
	}
	if (t != NULL) {
		cJSON_Delete(t);
		fail_msg("%s: %s accepted: %s", r->name, rule, body);
	}
	if (err.kind != want)
		fail_msg("%s: %s judged %s: %s", r->name, rule,
		    tp_json_kind_name(err.kind), body);
}

static void
test_every_route_every_rule(void **state)
{
	char *deep = nest("[", "", "]", TP_JSON_MAX_DEPTH);
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route_case *r = &routes[i];
		const char *f0 = r->fields[0];
		char *ok = fmt(r->tmpl, "\"S\"");
		char *body;

		expect_kind(r, ok, TP_JSON_OK, "valid body");
		/* depth: one member 64 deep inside the body object is 65 */
		body = fmt("{\"deep\":%s,%s", deep, ok + 1);
		expect_kind(r, body, TP_JSON_DEPTH, "depth");
		free(body);
		body = fmt("%s{}", ok);
		expect_kind(r, body, TP_JSON_TRAILING, "trailing");
		free(body);
		body = fmt("%s\"x\"", ok);
		expect_kind(r, body, TP_JSON_TRAILING, "trailing string");
		free(body);
		body = fmt("{\"%s\":\"Z\",%s", f0, ok + 1);
		expect_kind(r, body, TP_JSON_DUPLICATE, "duplicate key");
		free(body);
		body = fmt(r->tmpl, "\"S\\u0000Z\"");
		expect_kind(r, body, TP_JSON_NUL, "nul in key");
		free(body);
		body = fmt("{\"a\\u0000\":1,%s", ok + 1);
		expect_kind(r, body, TP_JSON_NUL, "nul in name");
		free(body);
		body = fmt("%.*s", (int)(strlen(ok) - 1), ok);
		expect_kind(r, body, TP_JSON_SYNTAX, "unterminated");
		free(body);
		/* every key and credential of the route, each wrong type */
		for (j = 0; r->fields[j] != NULL; j++) {
			struct tp_json_error err;
			cJSON *t;

			body = fmt("{\"%s\":7,%s", r->fields[j], ok + 1);
			/* the field is given twice when it is in the template */
			t = tp_json_read(body, strlen(body), 0, r->fields, &err);
			assert_null(t);
			assert_true(err.kind == TP_JSON_TYPE ||
			    err.kind == TP_JSON_DUPLICATE);
			free(body);
		}
		body = fmt(r->tmpl, "7");
		expect_kind(r, body, TP_JSON_TYPE, "number as key");
		free(body);
		body = fmt(r->tmpl, "{\"k\":\"S\"}");
		expect_kind(r, body, TP_JSON_TYPE, "object as key");
		free(body);
		free(ok);
	}
	free(deep);
}

/* Each declared key field of a route is refused alone with its name. */
static void
test_key_fields_named(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		for (j = 0; routes[i].fields[j] != NULL; j++) {
			struct tp_json_error err;
			char *body = fmt("{\"%s\":[]}", routes[i].fields[j]);

			assert_null(tp_json_read(body, strlen(body), 0,
			    routes[i].fields, &err));
			assert_int_equal(err.kind, TP_JSON_TYPE);
			assert_string_equal(err.field, routes[i].fields[j]);
			free(body);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_depth_on_worker_stack),
		cmocka_unit_test(test_depth_limit_is_configurable_downward),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_accepts_rfc8259),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_every_route_every_rule),
		cmocka_unit_test(test_key_fields_named),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
