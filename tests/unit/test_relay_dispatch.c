/*
 * Unit tests for http/dispatch.c: a request between the adapter and its
 * handler, driven over a connection of the test's own (no civetweb, no
 * socket): admission, body limits, JSON, the fallback 500, the discarded
 * body, accounting, request ids and the one HTTP-date formatter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "core/clock.h"
#include "http/dispatch.h"
#include "http/route.h"
#include "tokenplace/config.h"

/* A connection: fixed headers and a body served in pieces of `step`. */
struct fake_io {
	const char *const *headers;	/* name, value, ..., NULL */
	const char *body;
	size_t body_len, pos, step;
	int fail_read;			/* read() answers -1 */
	int reads;
};

static const char *
fake_header(void *io, const char *name)
{
	struct fake_io *f = io;

	for (size_t i = 0; f->headers[i] != NULL; i += 2)
		if (strcasecmp(f->headers[i], name) == 0)
			return f->headers[i + 1];
	return NULL;
}

static void
fake_header_at(void *io, size_t i, const char **name, const char **value)
{
	struct fake_io *f = io;

	*name = f->headers[2 * i];
	*value = f->headers[2 * i + 1];
}

static int
fake_read(void *io, void *buf, size_t len)
{
	struct fake_io *f = io;
	size_t n = f->body_len - f->pos;

	f->reads++;
	if (f->fail_read)
		return -1;
	if (n > len)
		n = len;
	if (f->step != 0 && n > f->step)
		n = f->step;
	memcpy(buf, f->body + f->pos, n);
	f->pos += n;
	return (int)n;
}

static const struct relay_conn_io fake_ops = {
	.header = fake_header,
	.header_at = fake_header_at,
	.read = fake_read,
};

static int handler_runs;

static void
echo_handler(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	cJSON *o = cJSON_CreateObject();

	(void)app;
	handler_runs++;
	cJSON_AddBoolToObject(o, "object", cJSON_IsObject(req->json));
	relay_response_json(resp, 200, o);
}

static void
silent_handler(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	(void)app;
	(void)req;
	(void)resp;
	handler_runs++;
}

static const struct relay_route test_routes[] = {
	{ "/echo", "POST", "echo", echo_handler,
	    RELAY_ROUTE_JSON_BODY | RELAY_ROUTE_CORS, RELAY_ERR_STRING, 32,
	    NULL, NULL },
	{ "/silent", "GET", "silent", silent_handler, 0, RELAY_ERR_OBJECT, 0,
	    NULL, NULL },
};

static const struct relay_route_table table = {
	.routes = test_routes,
	.n = sizeof(test_routes) / sizeof(test_routes[0]),
};

struct fixture {
	struct relay_settings s;
	struct relay_app app;
};

static const char *
no_env(void *ctx, const char *name)
{
	(void)ctx;
	(void)name;
	return NULL;
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct tp_config_report rep;

	if (fx == NULL || tp_config_load(relay_setting_table,
	    relay_setting_count, &fx->s, no_env, NULL, NULL, 0, &rep) != 0)
		return -1;
	fx->app.settings = &fx->s;
	fx->app.config_ok = true;
	fx->app.health = tp_health_new();
	if (fx->app.health == NULL ||
	    relay_app_init_metrics(&fx->app, "test", "test") != 0)
		return -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	tp_metrics_registry_free(fx->app.metrics);
	tp_health_free(fx->app.health);
	relay_settings_free(&fx->s);
	free(fx);
	return 0;
}

/* One request through dispatch; the caller frees resp->body. */
static void
run(struct fixture *fx, struct fake_io *io, struct relay_conn *c,
    const char *method, const char *path, struct relay_response *resp)
{
	struct relay_request req;
	char rid[RELAY_REQUEST_ID_MAX + 1];
	char *body = NULL;
	size_t n = 0;

	while (io->headers[2 * n] != NULL)
		n++;
	memset(c, 0, sizeof(*c));
	c->io = io;
	c->ops = &fake_ops;
	c->header_count = n;
	c->content_length = -1;
	if (fake_header(io, "Content-Length") != NULL)
		c->content_length = atoll(fake_header(io, "Content-Length"));
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.path = path;
	req.remote_addr = "127.0.0.1";
	req.started = relay_mono_s();
	req.conn = c;
	relay_dispatch_request_id(fake_header(io, "X-Request-Id"), rid);
	req.request_id = rid;
	relay_response_init(resp);
	relay_dispatch_run(&fx->app, &table, &req, resp, &body);
	relay_dispatch_account(&fx->app, &req, resp);
	cJSON_Delete(req.json);
	free(body);
}

static void
test_json_body_admitted(void **state)
{
	static const char *const h[] = { "Content-Type",
	    "application/json; charset=utf-8", "Content-Length", "2", NULL };
	struct fake_io io = { .headers = h, .body = "{}", .body_len = 2 };
	struct relay_response resp;
	struct relay_conn c;

	handler_runs = 0;
	run(*state, &io, &c, "POST", "/echo", &resp);
	assert_int_equal(resp.status, 200);
	assert_int_equal(handler_runs, 1);
	assert_true(c.body_consumed);
	assert_non_null(strstr(resp.body, "\"object\":true"));
	assert_non_null(strstr(resp.headers, "Access-Control-Allow-Origin: *"));
	free(resp.body);
}

static void
test_refusals_never_run_the_handler(void **state)
{
	static const char *const text[] = { "Content-Type", "text/plain", NULL };
	static const char *const big[] = { "Content-Type", "application/json",
	    "Content-Length", "33", NULL };
	static const char *const chunked[] = { "Content-Type",
	    "application/vnd.x+json", "Transfer-Encoding", "chunked", NULL };
	static const char *const json[] = { "Content-Type", "application/json",
	    NULL };
	static const char *const none[] = { NULL };
	static const char long_body[] = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]";
	struct fake_io io;
	struct relay_response resp;
	struct relay_conn c;

	handler_runs = 0;
	io = (struct fake_io){ .headers = text };
	run(*state, &io, &c, "POST", "/echo", &resp);
	assert_int_equal(resp.status, 415);
	assert_string_equal(resp.error_kind, "unsupported_media_type");
	assert_string_equal(resp.body,
	    "{\"error\":\"Content-Type must be application/json\"}");
	free(resp.body);

	/* refused from Content-Length before a byte is read */
	io = (struct fake_io){ .headers = big, .body = long_body,
	    .body_len = 33 };
	run(*state, &io, &c, "POST", "/echo", &resp);
	assert_int_equal(resp.status, 413);
	assert_true(resp.close);
	assert_int_equal(io.reads, 0);
	free(resp.body);

	/* chunked: refused while reading, past the route's 32 bytes */
	io = (struct fake_io){ .headers = chunked, .body = long_body,
	    .body_len = sizeof(long_body) - 1, .step = 4 };
	run(*state, &io, &c, "POST", "/echo", &resp);
	assert_int_equal(resp.status, 413);
	assert_string_equal(resp.error_kind, "body_too_large");
	/* stops within one read of the limit, before the body's end */
	assert_true(io.pos <= 32 + 4);
	assert_true(io.pos < io.body_len);
	free(resp.body);

	io = (struct fake_io){ .headers = json, .fail_read = 1 };
	run(*state, &io, &c, "POST", "/echo", &resp);
	assert_int_equal(resp.status, 400);
	assert_string_equal(resp.error_kind, "body_read_failed");
	free(resp.body);

	io = (struct fake_io){ .headers = json, .body = "{\"a\":1}x",
	    .body_len = 8 };
	run(*state, &io, &c, "POST", "/echo", &resp);
	assert_int_equal(resp.status, 400);
	assert_string_equal(resp.error_kind, "json_trailing");
	free(resp.body);

	io = (struct fake_io){ .headers = none };
	run(*state, &io, &c, "GET", "/echo", &resp);
	assert_int_equal(resp.status, 405);
	assert_non_null(strstr(resp.headers, "Allow: "));
	free(resp.body);

	run(*state, &io, &c, "GET", "/nowhere", &resp);
	assert_int_equal(resp.status, 404);
	assert_string_equal(resp.error_kind, "not_found");
	free(resp.body);
	assert_int_equal(handler_runs, 0);
}

static void
test_options_and_framing(void **state)
{
	static const char *const none[] = { NULL };
	static const char *const both[] = { "Content-Length", "2",
	    "Transfer-Encoding", "chunked", NULL };
	struct fake_io io = { .headers = none };
	struct relay_response resp;
	struct relay_conn c;

	run(*state, &io, &c, "OPTIONS", "/echo", &resp);
	assert_int_equal(resp.status, 204);
	assert_non_null(strstr(resp.headers, "Access-Control-Max-Age: 600"));
	assert_null(resp.body);

	io = (struct fake_io){ .headers = both, .body = "{}", .body_len = 2 };
	run(*state, &io, &c, "POST", "/echo", &resp);
	assert_int_equal(resp.status, 400);
	assert_true(c.framing_bad);
	assert_true(resp.close);
	assert_int_equal(io.reads, 0);
	/* a refused framing's body is never read, not even to discard it */
	relay_dispatch_discard(&((struct fixture *)*state)->app, &c);
	assert_int_equal(io.reads, 0);
	free(resp.body);
}

static void
test_gates_and_fallback(void **state)
{
	static const char *const none[] = { NULL };
	struct fixture *fx = *state;
	struct fake_io io = { .headers = none };
	struct relay_response resp;
	struct relay_conn c;

	handler_runs = 0;
	run(fx, &io, &c, "GET", "/silent", &resp);
	assert_int_equal(handler_runs, 1);
	assert_int_equal(resp.status, 500);
	assert_string_equal(resp.error_kind, "no_response");
	free(resp.body);

	fx->app.config_ok = false;
	run(fx, &io, &c, "GET", "/silent", &resp);
	fx->app.config_ok = true;
	assert_int_equal(resp.status, 503);
	assert_string_equal(resp.error_kind, "config_invalid");
	free(resp.body);
	assert_int_equal(handler_runs, 1);
}

static void
test_discard_small_body(void **state)
{
	static const char *const small[] = { "Content-Length", "5", NULL };
	struct fake_io io = { .headers = small, .body = "hello",
	    .body_len = 5, .step = 2 };
	struct relay_conn c = { .io = &io, .ops = &fake_ops,
	    .content_length = 5 };

	relay_dispatch_discard(&((struct fixture *)*state)->app, &c);
	assert_int_equal(io.pos, 5);
	assert_true(c.body_consumed);
}

static void
test_request_id(void **state)
{
	char rid[RELAY_REQUEST_ID_MAX + 1];

	(void)state;
	relay_dispatch_request_id("abc-123", rid);
	assert_string_equal(rid, "abc-123");
	relay_dispatch_request_id("bad\nid", rid);
	assert_int_equal(strlen(rid), RELAY_REQUEST_ID_GENERATED);
	relay_dispatch_request_id(NULL, rid);
	assert_int_equal(strlen(rid), RELAY_REQUEST_ID_GENERATED);
}

static void
test_http_date(void **state)
{
	char buf[30];
	const char *now = relay_dispatch_date();

	(void)state;
	relay_http_date(784111777, buf, sizeof(buf));
	assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
	relay_http_date(0, buf, sizeof(buf));
	assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	assert_int_equal(strlen(now), 29);
	assert_string_equal(now + 25, " GMT");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_body_admitted),
		cmocka_unit_test(test_refusals_never_run_the_handler),
		cmocka_unit_test(test_options_and_framing),
		cmocka_unit_test(test_gates_and_fallback),
		cmocka_unit_test(test_discard_small_body),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_http_date),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
