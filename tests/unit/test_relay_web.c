/*
 * test_relay_web.c -- the browser page held in memory (relay/src/web/web.c):
 * path resolution against every traversal spelling, symlinks that lead
 * out, hidden and special files; rendering of every placeholder; the
 * conditional-request verdicts; Cache-Control; the size and file caps.
 *
 * Each test writes its own directory under a fresh mkdtemp() tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "web/web.h"

#define RELEASE_JSON "{\"environment\":\"staging\",\"label\":\"staging 1.2.3\",\"version\":\"1.2.3\",\"ref\":\"abc\"}"
#define PAGE \
	"<head><script src=\"" RELAY_WEB_PH_VUE "\"></script>" \
	"<script id=\"release\" type=\"application/json\">" RELAY_WEB_PH_RELEASE "</script></head>" \
	"<body><span data-testid=\"release-badge\">" RELAY_WEB_PH_BADGE "</span>" \
	"<script src=\"/static/chat.js?v=" RELAY_WEB_PH_ASSET "\"></script>" \
	"<script src=\"/static/chat_typing.js?v=" RELAY_WEB_PH_ASSET "\"></script></body>"

struct tree {
	char root[64];		/* the temporary tree */
	char web[128];		/* RELAY_WEB_DIR inside it */
	char outside[128];	/* a sibling directory a link may point to */
};

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
make_dir(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void
link_to(const char *target, const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(symlink(target, path), 0);
}

/* The standard tree: a page, scripts, a subdirectory and hostile entries. */
static int
setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	char path[512];

	if (t == NULL)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/tp-web-test-XXXXXX");
	if (mkdtemp(t->root) == NULL)
		return -1;
	snprintf(t->web, sizeof(t->web), "%s/static", t->root);
	snprintf(t->outside, sizeof(t->outside), "%s/secret", t->root);
	make_dir(t->root, "static");
	make_dir(t->root, "secret");
	write_file(t->outside, "passwords.txt", "root:hunter2\n");
	write_file(t->web, "index.html", PAGE);
	write_file(t->web, "chat.js", "console.log('chat');\n");
	write_file(t->web, "chat_typing.js", "console.log('typing');\n");
	write_file(t->web, "favicon.svg", "<svg/>");
	write_file(t->web, "icon.ico", "ICO");
	write_file(t->web, "notes.unknownext", "?");
	write_file(t->web, ".env", "SECRET=1\n");
	write_file(t->web, "100%25.txt", "a name no path can spell once\n");
	make_dir(t->web, "img");
	write_file(t->web, "img/logo.png", "PNG");
	make_dir(t->web, ".git");
	write_file(t->web, ".git/config", "[core]\n");
	/* Links: one to a file outside, one to a directory outside, one in. */
	snprintf(path, sizeof(path), "%s/passwords.txt", t->outside);
	link_to(path, t->web, "leak.txt");
	link_to(t->outside, t->web, "leakdir");
	link_to("chat.js", t->web, "alias.js");
	link_to("../static/img", t->web, "pictures");
	link_to("..", t->web, "img/up");	/* a loop back to the top */
	/* A fifo is neither a file nor a directory. */
	snprintf(path, sizeof(path), "%s/pipe", t->web);
	assert_int_equal(mkfifo(path, 0600), 0);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tree *t = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	if (system(cmd) != 0)
		return -1;
	free(t);
	return 0;
}

static struct relay_web *
load(const struct tree *t, bool dev, uint64_t max_bytes, uint64_t max_files,
    char *err, size_t errlen)
{
	struct relay_web_config cfg = {
		.dir = t->web, .max_bytes = max_bytes, .max_files = max_files,
		.development = dev, .release_json = RELEASE_JSON,
		.release_label = "staging <1.2.3>",
	};

	return relay_web_load(&cfg, err, errlen);
}

static struct relay_web *
load_ok(const struct tree *t)
{
	char err[512];
	struct relay_web *w = load(t, false, 1 << 20, 100, err, sizeof(err));

	if (w == NULL)
		fail_msg("load failed: %s", err);
	return w;
}

/* ---- path resolution ------------------------------------------------------ */

static void
test_normalize_refuses_every_traversal_spelling(void **state)
{
	static const char *const bad[] = {
		"", "..", ".", "../index.html", "./index.html", "a/../index.html",
		"a/./b", "img/..", "%2e%2e/index.html", "%2E%2E/index.html",
		"%2e%2E", ".%2e/x", "%2e./x", "img/%2e%2e/%2e%2e/secret",
		"%2e", "img/%2e/logo.png", "..%2fsecret", "img%2flogo.png",
		"img%2Flogo.png", "%2f", "..\\secret", "img\\logo.png",
		"img%5clogo.png", "%5c..%5csecret", "a%00b", "%00", "a\001b",
		"a%0ab", "a%7fb", "/index.html", "img//logo.png", "img/",
		".env", ".git/config", "img/.hidden", "%2eenv", "%", "%2",
		"%zz", "abc%g0",
	};
	char out[RELAY_WEB_MAX_NAME + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (relay_web_normalize(bad[i], out, sizeof(out)) != -1)
			fail_msg("'%s' was accepted as '%s'", bad[i], out);
	assert_int_equal(relay_web_normalize("img/logo%20x.png", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "img/logo x.png");
	assert_int_equal(relay_web_normalize("a.b..c/d...e", out, sizeof(out)), 0);
	assert_string_equal(out, "a.b..c/d...e");
	/* Too long for the buffer. */
	assert_int_equal(relay_web_normalize("abcdef", out, 4), -1);
}

static void
test_lookup_serves_only_loaded_plain_names(void **state)
{
	struct tree *t = *state;
	struct relay_web *w = load_ok(t);
	const struct relay_web_file *f = NULL;
	struct relay_web_stats st;

	assert_int_equal(relay_web_lookup(w, "chat.js", &f), RELAY_WEB_FOUND);
	assert_string_equal(f->name, "chat.js");
	assert_int_equal(f->len, strlen("console.log('chat');\n"));
	assert_memory_equal(f->body, "console.log('chat');\n", f->len);
	assert_int_equal(relay_web_lookup(w, "img/logo.png", &f), RELAY_WEB_FOUND);
	assert_string_equal(f->content_type, "image/png");
	assert_int_equal(relay_web_lookup(w, "img%2Flogo.png", &f),
	    RELAY_WEB_BAD_PATH);
	/* A link inside the tree is followed, to its content. */
	assert_int_equal(relay_web_lookup(w, "alias.js", &f), RELAY_WEB_FOUND);
	assert_memory_equal(f->body, "console.log('chat');\n", f->len);
	assert_int_equal(relay_web_lookup(w, "pictures/logo.png", &f),
	    RELAY_WEB_FOUND);
	/* Links out, hidden entries and the fifo were never loaded. */
	assert_int_equal(relay_web_lookup(w, "leak.txt", &f), RELAY_WEB_NOT_FOUND);
	assert_int_equal(relay_web_lookup(w, "leakdir/passwords.txt", &f),
	    RELAY_WEB_NOT_FOUND);
	assert_int_equal(relay_web_lookup(w, "pipe", &f), RELAY_WEB_NOT_FOUND);
	assert_int_equal(relay_web_lookup(w, ".env", &f), RELAY_WEB_BAD_PATH);
	assert_int_equal(relay_web_lookup(w, ".git/config", &f),
	    RELAY_WEB_BAD_PATH);
	assert_int_equal(relay_web_lookup(w, "%2e%2e/secret/passwords.txt", &f),
	    RELAY_WEB_BAD_PATH);
	assert_int_equal(relay_web_lookup(w, "../secret/passwords.txt", &f),
	    RELAY_WEB_BAD_PATH);
	assert_int_equal(relay_web_lookup(w, "missing.js", &f),
	    RELAY_WEB_NOT_FOUND);
	assert_int_equal(relay_web_lookup(w, "100%25.txt", &f),
	    RELAY_WEB_NOT_FOUND);
	assert_int_equal(relay_web_lookup(w, "img/up/chat.js", &f),
	    RELAY_WEB_NOT_FOUND);
	/*
	 * Skipped: .env, 100%25.txt, .git, leak.txt, leakdir, pipe, and the
	 * loop twice (img/up, and pictures/up: pictures is img again).
	 */
	relay_web_get_stats(w, &st);
	assert_int_equal(st.skipped, 8);
	/* index, chat, typing, favicon, icon, notes, logo, alias, pictures/logo */
	assert_int_equal(st.files, 9);
	relay_web_free(w);
}

static void
test_content_types(void **state)
{
	struct tree *t = *state;
	struct relay_web *w = load_ok(t);
	const struct relay_web_file *f = NULL;

	assert_string_equal(relay_web_index(w)->content_type,
	    "text/html; charset=utf-8");
	assert_int_equal(relay_web_lookup(w, "chat.js", &f), RELAY_WEB_FOUND);
	assert_string_equal(f->content_type, "text/javascript; charset=utf-8");
	assert_int_equal(relay_web_lookup(w, "favicon.svg", &f), RELAY_WEB_FOUND);
	assert_string_equal(f->content_type, "image/svg+xml");
	assert_int_equal(relay_web_lookup(w, "icon.ico", &f), RELAY_WEB_FOUND);
	assert_string_equal(f->content_type, "image/vnd.microsoft.icon");
	assert_int_equal(relay_web_lookup(w, "notes.unknownext", &f),
	    RELAY_WEB_FOUND);
	assert_string_equal(f->content_type, "application/octet-stream");
	relay_web_free(w);
}

/* ---- rendering -------------------------------------------------------------- */

static void
test_render_replaces_every_placeholder(void **state)
{
	struct tree *t = *state;
	char err[512], expect[2048];
	struct relay_web *prod = load(t, false, 1 << 20, 100, err, sizeof(err));
	struct relay_web *dev = load(t, true, 1 << 20, 100, err, sizeof(err));
	const struct relay_web_file *ip, *id;
	const char *v;

	assert_non_null(prod);
	assert_non_null(dev);
	v = relay_web_asset_version(prod);
	assert_int_equal(strlen(v), 16);
	assert_string_equal(v, relay_web_asset_version(dev));
	/* '<' '>' '&' in the JSON become \u escapes; the badge is HTML text. */
	snprintf(expect, sizeof(expect),
	    "<head><script src=\"%s\"></script>"
	    "<script id=\"release\" type=\"application/json\">%s</script></head>"
	    "<body><span data-testid=\"release-badge\">staging &lt;1.2.3&gt;</span>"
	    "<script src=\"/static/chat.js?v=%s\"></script>"
	    "<script src=\"/static/chat_typing.js?v=%s\"></script></body>",
	    RELAY_WEB_VUE_PROD, RELEASE_JSON, v, v);
	ip = relay_web_index(prod);
	assert_int_equal(ip->len, strlen(expect));
	assert_memory_equal(ip->body, expect, ip->len);
	id = relay_web_index(dev);
	assert_non_null(strstr(id->body, RELAY_WEB_VUE_DEV));
	assert_null(strstr(id->body, RELAY_WEB_VUE_PROD));
	assert_null(strstr(ip->body, "__TOKENPLACE_"));
	assert_null(strstr(id->body, "__TOKENPLACE_"));
	/* Different bodies, different entity tags. */
	assert_string_not_equal(ip->etag, id->etag);
	relay_web_free(prod);
	relay_web_free(dev);
}

static void
test_render_escapes_release_json_for_a_script_element(void **state)
{
	struct tree *t = *state;
	struct relay_web_config cfg = {
		.dir = t->web, .max_bytes = 1 << 20, .max_files = 100,
		.release_json = "{\"label\":\"</script><script>alert(1)&\"}",
		.release_label = "a&b\"'",
	};
	char err[512];
	struct relay_web *w = relay_web_load(&cfg, err, sizeof(err));
	const struct relay_web_file *f;

	assert_non_null(w);
	f = relay_web_index(w);
	assert_non_null(strstr(f->body, "{\"label\":\"\\u003c/script\\u003e"
	    "\\u003cscript\\u003ealert(1)\\u0026\"}"));
	assert_null(strstr(f->body, "alert(1)&"));
	assert_non_null(strstr(f->body, ">a&amp;b&#34;&#39;</span>"));
	relay_web_free(w);
}

static void
test_page_without_placeholders_is_served_as_is(void **state)
{
	struct tree *t = *state;
	static const char old[] = "<html><body>October 2025 page "
	    "<script src=\"https://cdn.jsdelivr.net/npm/vue@2.6.14/dist/vue.js\">"
	    "</script></body></html>\n";
	struct relay_web *w;

	write_file(t->web, "index.html", old);
	w = load_ok(t);
	assert_int_equal(relay_web_index(w)->len, sizeof(old) - 1);
	assert_memory_equal(relay_web_index(w)->body, old, sizeof(old) - 1);
	relay_web_free(w);
}

static void
test_asset_version_follows_the_files(void **state)
{
	struct tree *t = *state;
	struct relay_web *a = load_ok(t), *b, *c;
	char va[17], vb[17];

	snprintf(va, sizeof(va), "%s", relay_web_asset_version(a));
	b = load_ok(t);
	assert_string_equal(va, relay_web_asset_version(b));
	write_file(t->web, "chat.js", "console.log('chat, version 2');\n");
	c = load_ok(t);
	snprintf(vb, sizeof(vb), "%s", relay_web_asset_version(c));
	assert_string_not_equal(va, vb);
	/* The rendered page names the new version. */
	assert_non_null(strstr(relay_web_index(c)->body, vb));
	relay_web_free(a);
	relay_web_free(b);
	relay_web_free(c);
}

/* ---- conditional requests and caching ----------------------------------------- */

static void
test_conditional_requests(void **state)
{
	struct tree *t = *state;
	struct relay_web *w;
	const struct relay_web_file *f = NULL;
	struct timeval tv[2] = { { 784111777, 0 }, { 784111777, 0 } };
	char path[512], list[256], weak[64];

	/* mtime = Sun, 06 Nov 1994 08:49:37 GMT */
	snprintf(path, sizeof(path), "%s/chat.js", t->web);
	assert_int_equal(utimes(path, tv), 0);
	w = load_ok(t);
	assert_int_equal(relay_web_lookup(w, "chat.js", &f), RELAY_WEB_FOUND);
	assert_string_equal(f->last_modified, "Sun, 06 Nov 1994 08:49:37 GMT");
	assert_int_equal(strlen(f->etag), 34);
	assert_true(f->etag[0] == '"' && f->etag[33] == '"');

	assert_false(relay_web_not_modified(f, NULL, NULL));
	assert_true(relay_web_not_modified(f, f->etag, NULL));
	snprintf(weak, sizeof(weak), "W/%s", f->etag);
	assert_true(relay_web_not_modified(f, weak, NULL));
	snprintf(list, sizeof(list), "\"x\", %s ,\"y\"", f->etag);
	assert_true(relay_web_not_modified(f, list, NULL));
	assert_true(relay_web_not_modified(f, "*", NULL));
	assert_false(relay_web_not_modified(f, "\"other\"", NULL));
	/* An etag without quotes is another tag. */
	snprintf(list, sizeof(list), "%.32s", f->etag + 1);
	assert_false(relay_web_not_modified(f, list, NULL));
	/* If-None-Match decides when present, even against a fresh date. */
	assert_false(relay_web_not_modified(f, "\"other\"",
	    "Sun, 06 Nov 1994 08:49:37 GMT"));
	/* If-Modified-Since: same second and later are fresh, earlier not. */
	assert_true(relay_web_not_modified(f, NULL,
	    "Sun, 06 Nov 1994 08:49:37 GMT"));
	assert_true(relay_web_not_modified(f, "  ",
	    "Mon, 07 Nov 1994 00:00:00 GMT"));
	assert_false(relay_web_not_modified(f, NULL,
	    "Sun, 06 Nov 1994 08:49:36 GMT"));
	assert_false(relay_web_not_modified(f, NULL, "yesterday"));
	assert_false(relay_web_not_modified(f, NULL,
	    "Sunday, 06-Nov-94 08:49:37 GMT"));
	relay_web_free(w);
}

static void
test_parse_http_date(void **state)
{
	time_t when;

	(void)state;
	assert_int_equal(relay_web_parse_http_date(
	    "Sun, 06 Nov 1994 08:49:37 GMT", &when), 0);
	assert_int_equal((long long)when, 784111777LL);
	assert_int_equal(relay_web_parse_http_date(
	    "Thu, 01 Jan 1970 00:00:00 GMT", &when), 0);
	assert_int_equal((long long)when, 0LL);
	assert_int_equal(relay_web_parse_http_date(
	    "Sun, 06 Nov 1994 08:49:37 UTC", &when), -1);
	assert_int_equal(relay_web_parse_http_date(
	    "Sun, 06 Xyz 1994 08:49:37 GMT", &when), -1);
	assert_int_equal(relay_web_parse_http_date(
	    "Sun, 32 Nov 1994 08:49:37 GMT", &when), -1);
	assert_int_equal(relay_web_parse_http_date(
	    "Sun, 06 Nov 1994 24:49:37 GMT", &when), -1);
	assert_int_equal(relay_web_parse_http_date(
	    "Sun, 06 Nov 1994 08:49:37 GMT ", &when), -1);
	assert_int_equal(relay_web_parse_http_date(NULL, &when), -1);
}

static void
test_cache_control(void **state)
{
	struct tree *t = *state;
	struct relay_web *w = load_ok(t);
	const struct relay_web_file *chat = NULL, *typing = NULL, *svg = NULL;
	char q[64];

	assert_int_equal(relay_web_lookup(w, "chat.js", &chat), RELAY_WEB_FOUND);
	assert_int_equal(relay_web_lookup(w, "chat_typing.js", &typing),
	    RELAY_WEB_FOUND);
	assert_int_equal(relay_web_lookup(w, "favicon.svg", &svg),
	    RELAY_WEB_FOUND);
	snprintf(q, sizeof(q), "v=%s", relay_web_asset_version(w));
	assert_string_equal(relay_web_cache_control(w, chat, q),
	    RELAY_WEB_CC_IMMUTABLE);
	assert_string_equal(relay_web_cache_control(w, typing, q),
	    RELAY_WEB_CC_IMMUTABLE);
	snprintf(q, sizeof(q), "x=1&v=%s", relay_web_asset_version(w));
	assert_string_equal(relay_web_cache_control(w, chat, q),
	    RELAY_WEB_CC_IMMUTABLE);
	/* Not this version, no version, or not a versioned file. */
	assert_string_equal(relay_web_cache_control(w, chat, "v=0123456789abcdef"),
	    RELAY_WEB_CC_DEFAULT);
	snprintf(q, sizeof(q), "v=%sx", relay_web_asset_version(w));
	assert_string_equal(relay_web_cache_control(w, chat, q),
	    RELAY_WEB_CC_DEFAULT);
	assert_string_equal(relay_web_cache_control(w, chat, NULL),
	    RELAY_WEB_CC_DEFAULT);
	assert_string_equal(relay_web_cache_control(w, chat, "v="),
	    RELAY_WEB_CC_DEFAULT);
	snprintf(q, sizeof(q), "v=%s", relay_web_asset_version(w));
	assert_string_equal(relay_web_cache_control(w, svg, q),
	    RELAY_WEB_CC_DEFAULT);
	relay_web_free(w);
}

/* ---- start-up refusals ------------------------------------------------------------ */

static void
test_size_cap_refuses_to_load(void **state)
{
	struct tree *t = *state;
	char err[512];
	struct relay_web *w;
	struct relay_web_stats st;

	w = load_ok(t);
	relay_web_get_stats(w, &st);
	relay_web_free(w);
	/* Exactly the total fits; one byte less does not. */
	w = load(t, false, st.bytes, 100, err, sizeof(err));
	assert_non_null(w);
	relay_web_free(w);
	w = load(t, false, st.bytes - 1, 100, err, sizeof(err));
	assert_null(w);
	assert_non_null(strstr(err, "RELAY_WEB_MAX_BYTES"));
	assert_non_null(strstr(err, t->web));
	/* The file cap likewise. */
	w = load(t, false, 1 << 20, st.files, err, sizeof(err));
	assert_non_null(w);
	relay_web_free(w);
	w = load(t, false, 1 << 20, st.files - 1, err, sizeof(err));
	assert_null(w);
	assert_non_null(strstr(err, "RELAY_WEB_MAX_FILES"));
}

static void
test_bad_directories_refuse_to_load(void **state)
{
	struct tree *t = *state;
	struct relay_web_config cfg = { .max_bytes = 1 << 20, .max_files = 10 };
	char err[512], path[512];

	cfg.dir = "/nonexistent/tp-web";
	assert_null(relay_web_load(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/tp-web"));
	snprintf(path, sizeof(path), "%s/chat.js", t->web);
	cfg.dir = path;
	assert_null(relay_web_load(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "not a directory"));
	cfg.dir = t->outside;		/* no index.html there */
	assert_null(relay_web_load(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "no index.html"));
	cfg.dir = "";
	assert_null(relay_web_load(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "empty"));
}

/*
 * A ConfigMap volume as the kubelet writes it: the files live in a
 * hidden timestamped directory, "..data" links to it, and each visible
 * name links through "..data". The visible names load; the hidden
 * entries are skipped.
 */
static void
test_configmap_volume_layout(void **state)
{
	struct tree *t = *state;
	char dir[256], err[512];
	struct relay_web_config cfg = { .max_bytes = 1 << 20, .max_files = 10 };
	struct relay_web *w;
	const struct relay_web_file *f = NULL;
	struct relay_web_stats st;

	snprintf(dir, sizeof(dir), "%s/cm", t->root);
	assert_int_equal(mkdir(dir, 0755), 0);
	make_dir(dir, "..2026_12_03_09_00_00.123456789");
	write_file(dir, "..2026_12_03_09_00_00.123456789/index.html", PAGE);
	write_file(dir, "..2026_12_03_09_00_00.123456789/chat.js", "x\n");
	link_to("..2026_12_03_09_00_00.123456789", dir, "..data");
	link_to("..data/index.html", dir, "index.html");
	link_to("..data/chat.js", dir, "chat.js");
	cfg.dir = dir;
	w = relay_web_load(&cfg, err, sizeof(err));
	if (w == NULL)
		fail_msg("load failed: %s", err);
	assert_int_equal(relay_web_lookup(w, "chat.js", &f), RELAY_WEB_FOUND);
	assert_memory_equal(f->body, "x\n", 2);
	assert_null(strstr(relay_web_index(w)->body, RELAY_WEB_PH_VUE));
	relay_web_get_stats(w, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.skipped, 2);
	relay_web_free(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize_refuses_every_traversal_spelling),
		cmocka_unit_test_setup_teardown(
		    test_lookup_serves_only_loaded_plain_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_content_types, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_render_replaces_every_placeholder, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_render_escapes_release_json_for_a_script_element, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_page_without_placeholders_is_served_as_is, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_asset_version_follows_the_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conditional_requests, setup,
		    teardown),
		cmocka_unit_test(test_parse_http_date),
		cmocka_unit_test_setup_teardown(test_cache_control, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_size_cap_refuses_to_load,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bad_directories_refuse_to_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configmap_volume_layout,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
