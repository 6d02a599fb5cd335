/*
 * The supervisor's building blocks: pyvenv.cfg parsing and library
 * candidates, restart back-off, log rotation, output line splitting,
 * status file round trip, paths.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "backoff.h"
#include "linesplit.h"
#include "logfile.h"
#include "os.h"
#include "status.h"
#include "venv.h"

static void
test_pyvenv_cfg(void **state)
{
	struct gpuhost_venv v;
	char err[200];

	(void)state;
	memset(&v, 0, sizeof(v));
	assert_int_equal(gpuhost_venv_parse_cfg("home = /usr/bin\n"
	    "include-system-site-packages = false\nversion = 3.11.2\n", &v, err,
	    sizeof(err)), 0);
	assert_string_equal(v.home, "/usr/bin");
	assert_int_equal(v.major, 3);
	assert_int_equal(v.minor, 11);
	gpuhost_venv_candidates(&v, "");
	assert_int_equal(v.ncandidates, 4);
	assert_string_equal(v.candidates[0], "/usr/lib/libpython3.11.so.1.0");
	assert_string_equal(v.candidates[1], "/usr/lib/libpython3.11.so");
	assert_string_equal(v.candidates[2], "libpython3.11.so.1.0");
	gpuhost_venv_candidates(&v, "/opt/py/libpython3.12.so");
	assert_int_equal(v.ncandidates, 1);
	assert_string_equal(v.candidates[0], "/opt/py/libpython3.12.so");

	/* uv / virtualenv spell it version_info; CRLF from Windows editors. */
	assert_int_equal(gpuhost_venv_parse_cfg("home = C:\\Python313\r\n"
	    "version_info = 3.13.0.final.0\r\n", &v, err, sizeof(err)), 0);
	assert_string_equal(v.home, "C:\\Python313");
	assert_int_equal(v.minor, 13);

	assert_int_equal(gpuhost_venv_parse_cfg("version = 3.11.2\n", &v, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "no 'home'"));
	assert_int_equal(gpuhost_venv_parse_cfg("home = /usr/bin\n", &v, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "neither 'version'"));
	assert_int_equal(gpuhost_venv_parse_cfg("home = /x\nversion = 2.7.18\n",
	    &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not 3.X"));
}

static void
test_venv_load_errors(void **state)
{
	struct gpuhost_venv v;
	char err[600];

	(void)state;
	assert_int_equal(gpuhost_venv_load("/nonexistent/venv", "", &v, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "venv directory /nonexistent/venv does not exist"));
	assert_int_equal(gpuhost_venv_load("/tmp", "", &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "pyvenv.cfg is missing"));
}

static void
test_backoff(void **state)
{
	struct gpuhost_backoff b = { 1000, 8000, 60000, 0 };

	(void)state;
	assert_int_equal(gpuhost_backoff_next(&b, 10), 1000);
	assert_int_equal(gpuhost_backoff_next(&b, 10), 2000);
	assert_int_equal(gpuhost_backoff_next(&b, 10), 4000);
	assert_int_equal(gpuhost_backoff_next(&b, 10), 8000);
	assert_int_equal(gpuhost_backoff_next(&b, 10), 8000);
	assert_int_equal(b.failures, 5);
	/* A stable run resets the sequence. */
	assert_int_equal(gpuhost_backoff_next(&b, 60000), 1000);
	assert_int_equal(b.failures, 1);
	for (int i = 0; i < 100; i++)
		assert_int_equal(gpuhost_backoff_next(&b, 0) <= 8000, 1);
}

static char tmpdir[64];

static int
mk_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/gpuhost-unit-XXXXXX");
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static long
file_size(const char *path)
{
	FILE *fp = fopen(path, "rb");
	long n;

	if (fp == NULL)
		return -1;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fclose(fp);
	return n;
}

static void
test_log_rotation(void **state)
{
	struct gpuhost_logfile *lf;
	char path[128], p[160], err[200], line[101];

	(void)state;
	snprintf(path, sizeof(path), "%s/server.log", tmpdir);
	lf = gpuhost_logfile_open(path, 1000, 3, err, sizeof(err));
	assert_non_null(lf);
	memset(line, 'x', 99);
	line[99] = '\n';
	line[100] = '\0';
	for (int i = 0; i < 55; i++)
		assert_int_equal(gpuhost_logfile_write(lf, line, 100), 0);
	/* 5500 bytes in files of 1000: 5 rotations, 3 kept. */
	assert_int_equal(gpuhost_logfile_rotations(lf), 5);
	gpuhost_logfile_close(lf);
	assert_int_equal(file_size(path), 500);
	for (int k = 1; k <= 3; k++) {
		snprintf(p, sizeof(p), "%s.%d", path, k);
		assert_int_equal(file_size(p), 1000);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s.4", path);
	assert_int_equal(file_size(p), -1);
	/* Reopening appends and counts the existing size. */
	lf = gpuhost_logfile_open(path, 1000, 3, err, sizeof(err));
	assert_non_null(lf);
	for (int i = 0; i < 5; i++)
		assert_int_equal(gpuhost_logfile_write(lf, line, 100), 0);
	assert_int_equal(gpuhost_logfile_rotations(lf), 0);
	assert_int_equal(gpuhost_logfile_write(lf, line, 100), 0);
	assert_int_equal(gpuhost_logfile_rotations(lf), 1);
	gpuhost_logfile_close(lf);
	snprintf(p, sizeof(p), "%s.1", path);
	unlink(p);
	unlink(path);
	assert_null(gpuhost_logfile_open("/nonexistent/dir/x.log", 1000, 3, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "cannot open /nonexistent/dir/x.log"));
}

struct lines {
	int n;
	char got[8][64];
	size_t len[8];
};

static void
sink(void *arg, int stream, const char *line, size_t len)
{
	struct lines *l = arg;

	assert_int_equal(stream, 2);
	assert_true(l->n < 8);
	l->len[l->n] = len;
	snprintf(l->got[l->n], sizeof(l->got[0]), "%.*s", (int)(len > 60 ? 60 : len),
	    line);
	l->n++;
}

static void
test_linesplit(void **state)
{
	struct gpuhost_linesplit *ls = calloc(1, sizeof(*ls));
	struct lines l;
	char *big = malloc(GPUHOST_LINE_MAX + 10);

	(void)state;
	memset(&l, 0, sizeof(l));
	ls->sink = sink;
	ls->arg = &l;
	ls->stream = 2;
	gpuhost_linesplit_feed(ls, "one\r\ntw", 7);
	gpuhost_linesplit_feed(ls, "o\n\nthree", 8);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.got[0], "one");
	assert_string_equal(l.got[1], "two");
	assert_int_equal(l.len[2], 0);
	gpuhost_linesplit_flush(ls);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.got[3], "three");
	memset(big, 'y', GPUHOST_LINE_MAX + 5);
	big[GPUHOST_LINE_MAX + 5] = '\n';
	gpuhost_linesplit_feed(ls, big, GPUHOST_LINE_MAX + 6);
	assert_int_equal(l.n, 6);
	assert_int_equal(l.len[4], GPUHOST_LINE_MAX);
	assert_int_equal(l.len[5], 5);
	free(big);
	free(ls);
}

static void
test_status_roundtrip(void **state)
{
	struct gpuhost_status a, b;
	char path[128], err[200];

	(void)state;
	memset(&a, 0, sizeof(a));
	a.pid = 42;
	snprintf(a.state, sizeof(a.state), "running");
	a.worker_pid = 43;
	snprintf(a.health, sizeof(a.health), "unhealthy");
	a.health_since_ms = 1700000000123;
	snprintf(a.health_reason, sizeof(a.health_reason), "HTTP 503\nsecond line");
	a.restarts = 7;
	a.health_failures = 9;
	snprintf(a.last_exit, sizeof(a.last_exit), "exit code 3");
	a.updated_ms = 1700000000999;
	snprintf(path, sizeof(path), "%s/gpuhost.status", tmpdir);
	assert_int_equal(gpuhost_status_write(path, &a), 0);
	assert_int_equal(gpuhost_status_read(path, &b, err, sizeof(err)), 0);
	assert_int_equal(b.pid, 42);
	assert_string_equal(b.state, "running");
	assert_int_equal(b.worker_pid, 43);
	assert_string_equal(b.health, "unhealthy");
	assert_true(b.health_since_ms == a.health_since_ms);
	assert_string_equal(b.health_reason, "HTTP 503 second line");
	assert_int_equal(b.restarts, 7);
	assert_int_equal(b.health_failures, 9);
	assert_string_equal(b.last_exit, "exit code 3");
	unlink(path);
	assert_string_equal(gpuhost_iso_time(1700000000123, err, sizeof(err)),
	    "2023-11-14T22:13:20.123Z");
}

static void
test_paths(void **state)
{
	char b[64];

	(void)state;
	assert_int_equal(gpuhost_path_join(b, sizeof(b), "/a/b/", "c"), 0);
	assert_string_equal(b, "/a/b/c");
	assert_int_equal(gpuhost_path_join(b, sizeof(b), "/a", "./c"), 0);
	assert_string_equal(b, "/a/c");
	assert_int_equal(gpuhost_path_join(b, sizeof(b), "/a", "/abs"), 0);
	assert_string_equal(b, "/abs");
	assert_int_equal(gpuhost_path_join(b, sizeof(b), "/a", "."), 0);
	assert_string_equal(b, "/a");
	assert_int_equal(gpuhost_path_join(b, 4, "/a", "bcd"), -1);
	assert_int_equal(gpuhost_path_dirname(b, sizeof(b), "/etc/tp/x.ini"), 0);
	assert_string_equal(b, "/etc/tp");
	assert_int_equal(gpuhost_path_dirname(b, sizeof(b), "x.ini"), 0);
	assert_string_equal(b, ".");
	assert_int_equal(gpuhost_path_dirname(b, sizeof(b), "/x"), 0);
	assert_string_equal(b, "/");
	assert_true(gpuhost_path_is_absolute("/x"));
	assert_false(gpuhost_path_is_absolute("x/y"));
}

static int
rm_tmp(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pyvenv_cfg),
		cmocka_unit_test(test_venv_load_errors),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_log_rotation),
		cmocka_unit_test(test_linesplit),
		cmocka_unit_test(test_status_roundtrip),
		cmocka_unit_test(test_paths),
	};

	return cmocka_run_group_tests(tests, mk_tmp, rm_tmp);
}
