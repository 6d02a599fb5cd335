/*
 * web.c -- the browser page held in memory (see web.h for the contract).
 *
 * Why everything is read at start-up: a request then costs a lookup in a
 * sorted array and a copy into the socket, never a file system call, so a
 * hostile path has nothing on disk to reach, a slow or changing volume
 * cannot stall a worker thread, and the ETag stays true for the life of
 * the process. The total byte cap bounds what that costs in memory.
 */
#include "web/web.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/percent.h"
#include "http/http.h"
#include "tokenplace/sha256.h"

/* A loaded file and the memory behind its const view. */
struct entry {
	struct relay_web_file f;
	char *name;
	char *body;
};

struct relay_web {
	struct entry *files;		/* sorted by name */
	size_t nfiles, cap;
	uint64_t bytes;
	size_t skipped;
	struct relay_web_file index;	/* rendered */
	char *index_body;
	char asset_version[17];
	/* load-time only */
	const struct relay_web_config *cfg;
	dev_t walk_dev[RELAY_WEB_MAX_DEPTH + 1];	/* directories being walked, */
	ino_t walk_ino[RELAY_WEB_MAX_DEPTH + 1];	/* root first: loop guard */
	char root[PATH_MAX];
	char *err;
	size_t errlen;
};

static void
fail(struct relay_web *w, const char *fmt, ...)
{
	va_list ap;

	if (w->err == NULL || w->errlen == 0 || w->err[0] != '\0')
		return;		/* keep the first reason */
	va_start(ap, fmt);
	vsnprintf(w->err, w->errlen, fmt, ap);
	va_end(ap);
}

/* ---- names and types ------------------------------------------------------ */

static bool
plain_name(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;

	if (*p == '\0' || *p == '.')
		return false;
	for (; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '\\' || *p == '%')
			return false;
	return true;
}

static const struct {
	const char *ext;
	const char *type;
} mime_types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "htm", "text/html; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "json", "application/json" },
	{ "map", "application/json" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "ts", "text/plain; charset=utf-8" },	/* sources shown, never run */
	{ "svg", "image/svg+xml" },
	{ "ico", "image/vnd.microsoft.icon" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "webp", "image/webp" },
	{ "woff", "font/woff" },
	{ "woff2", "font/woff2" },
	{ "wasm", "application/wasm" },
	{ "webmanifest", "application/manifest+json" },
};

static const char *
content_type_for(const char *name)
{
	const char *slash = strrchr(name, '/');
	const char *dot = strrchr(slash ? slash + 1 : name, '.');

	if (dot != NULL)
		for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
			if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
				return mime_types[i].type;
	return "application/octet-stream";
}

static int
two_digits(const char *s, int *out)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	*out = (s[0] - '0') * 10 + (s[1] - '0');
	return 0;
}

int
relay_web_parse_http_date(const char *s, time_t *out)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm;
	int day, hh, mm, ss, y1, y2;
	const char *m;

	/* "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes, fixed positions. */
	if (s == NULL || strlen(s) != 29 || s[3] != ',' || s[4] != ' ' ||
	    s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
	    s[22] != ':' || strcmp(s + 25, " GMT") != 0)
		return -1;
	if (two_digits(s + 5, &day) != 0 || two_digits(s + 12, &y1) != 0 ||
	    two_digits(s + 14, &y2) != 0 || two_digits(s + 17, &hh) != 0 ||
	    two_digits(s + 20, &mm) != 0 || two_digits(s + 23, &ss) != 0)
		return -1;
	m = NULL;
	for (int i = 0; i < 12; i++)
		if (strncmp(months + 3 * i, s + 8, 3) == 0)
			m = months + 3 * i;
	if (m == NULL || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_mday = day;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year = y1 * 100 + y2 - 1900;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	*out = timegm(&tm);
	return 0;
}

static void
set_etag(struct relay_web_file *f)
{
	unsigned char d[TP_SHA256_LEN];
	char hex[2 * TP_SHA256_LEN + 1];

	tp_sha256(f->body, f->len, d);
	tp_sha256_hex(d, hex);
	snprintf(f->etag, sizeof(f->etag), "\"%.32s\"", hex);
}

/* ---- loading ---------------------------------------------------------------- */

static int
add_file(struct relay_web *w, const char *rel, const char *real,
    const struct stat *st)
{
	struct relay_web_file *f;
	struct entry *e;
	char *body = NULL;
	size_t got = 0;
	int fd;

	if ((uint64_t)w->nfiles >= w->cfg->max_files) {
		fail(w, "RELAY_WEB_DIR '%s' holds more than RELAY_WEB_MAX_FILES=%llu "
		    "files", w->cfg->dir, (unsigned long long)w->cfg->max_files);
		return -1;
	}
	if ((uint64_t)st->st_size > w->cfg->max_bytes - w->bytes) {
		fail(w, "RELAY_WEB_DIR '%s' holds more than RELAY_WEB_MAX_BYTES=%llu "
		    "bytes (reached at %s)", w->cfg->dir,
		    (unsigned long long)w->cfg->max_bytes, rel);
		return -1;
	}
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	body = malloc((size_t)st->st_size + 1);
	if (fd < 0 || body == NULL) {
		fail(w, "cannot read %s/%s: %s", w->cfg->dir, rel,
		    fd < 0 ? strerror(errno) : "out of memory");
		goto err;
	}
	/* Read what stat promised; a file that grew meanwhile is cut there. */
	while (got < (size_t)st->st_size) {
		ssize_t n = read(fd, body + got, (size_t)st->st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fail(w, "cannot read %s/%s: %s", w->cfg->dir, rel,
			    n < 0 ? strerror(errno) : "file shrank while read");
			goto err;
		}
		got += (size_t)n;
	}
	body[got] = '\0';
	close(fd);
	fd = -1;
	if (w->nfiles == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 16;
		struct entry *nf = realloc(w->files, ncap * sizeof(*nf));

		if (nf == NULL) {
			fail(w, "out of memory loading RELAY_WEB_DIR");
			goto err;
		}
		w->files = nf;
		w->cap = ncap;
	}
	e = &w->files[w->nfiles];
	memset(e, 0, sizeof(*e));
	e->name = strdup(rel);
	if (e->name == NULL) {
		fail(w, "out of memory loading RELAY_WEB_DIR");
		goto err;
	}
	e->body = body;
	f = &e->f;
	f->name = e->name;
	f->body = body;
	f->len = got;
	f->mtime = st->st_mtime;
	f->content_type = content_type_for(rel);
	f->versioned = strcmp(rel, "chat.js") == 0 ||
	    strcmp(rel, "chat_typing.js") == 0;
	relay_http_date(f->mtime, f->last_modified, sizeof(f->last_modified));
	set_etag(f);
	w->nfiles++;
	w->bytes += got;
	return 0;
err:
	if (fd >= 0)
		close(fd);
	free(body);
	return -1;
}

/* True when real (a resolved path) is the root or below it. */
static bool
inside_root(const struct relay_web *w, const char *real)
{
	size_t n = strlen(w->root);

	if (strncmp(real, w->root, n) != 0)
		return false;
	return real[n] == '\0' || real[n] == '/' || strcmp(w->root, "/") == 0;
}

/* True when (dev, ino) is a directory being walked: a link back up. */
static bool
walking(const struct relay_web *w, int depth, const struct stat *st)
{
	for (int i = 0; i <= depth; i++)
		if (w->walk_dev[i] == st->st_dev && w->walk_ino[i] == st->st_ino)
			return true;
	return false;
}

static int
walk(struct relay_web *w, const char *dir, const char *rel, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat self;
	int rc = 0;

	if (d == NULL || fstat(dirfd(d), &self) != 0) {
		fail(w, "cannot open %s: %s", dir, strerror(errno));
		if (d != NULL)
			closedir(d);
		return -1;
	}
	w->walk_dev[depth] = self.st_dev;
	w->walk_ino[depth] = self.st_ino;
	while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
		char path[PATH_MAX], sub[RELAY_WEB_MAX_NAME + 2], real[PATH_MAX];
		struct stat st;
		int n, m;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		m = snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "",
		    e->d_name);
		if (!plain_name(e->d_name) || n < 0 || (size_t)n >= sizeof(path) ||
		    m < 0 || (size_t)m > RELAY_WEB_MAX_NAME) {
			w->skipped++;	/* hidden, odd bytes, or too long */
			continue;
		}
		/* Links are resolved and must stay inside the directory. */
		if (realpath(path, real) == NULL || !inside_root(w, real) ||
		    stat(real, &st) != 0) {
			w->skipped++;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (depth + 1 > RELAY_WEB_MAX_DEPTH ||
			    walking(w, depth, &st)) {
				w->skipped++;
				continue;
			}
			rc = walk(w, real, sub, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			rc = add_file(w, sub, real, &st);
		} else {
			w->skipped++;	/* fifos, sockets, devices */
		}
	}
	if (rc == 0 && errno != 0) {
		fail(w, "cannot list %s: %s", dir, strerror(errno));
		rc = -1;
	}
	closedir(d);
	return rc;
}

static int
cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name,
	    ((const struct entry *)b)->name);
}

static int
cmp_key(const void *key, const void *elem)
{
	return strcmp(key, ((const struct entry *)elem)->name);
}

static const struct relay_web_file *
find(const struct relay_web *w, const char *name)
{
	const struct entry *e;

	if (w->nfiles == 0)
		return NULL;
	e = bsearch(name, w->files, w->nfiles, sizeof(w->files[0]), cmp_key);
	return e ? &e->f : NULL;
}

/* ---- rendering ------------------------------------------------------------------- */

/*
 * Replaces every `needle` in *buf (*len bytes, NUL-terminated) with rep.
 * Returns 0 (the buffer may have been replaced), -1 when out of memory.
 */
static int
replace_all(char **buf, size_t *len, const char *needle, const char *rep)
{
	size_t nl = strlen(needle), rl = strlen(rep), count = 0, out_len;
	const char *p = *buf, *q;
	char *out, *o;

	while ((q = strstr(p, needle)) != NULL) {
		count++;
		p = q + nl;
	}
	if (count == 0)
		return 0;
	out_len = *len - count * nl + count * rl;
	out = malloc(out_len + 1);
	if (out == NULL)
		return -1;
	o = out;
	p = *buf;
	while ((q = strstr(p, needle)) != NULL) {
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		memcpy(o, rep, rl);
		o += rl;
		p = q + nl;
	}
	memcpy(o, p, strlen(p) + 1);
	free(*buf);
	*buf = out;
	*len = out_len;
	return 0;
}

/*
 * The release JSON goes inside a <script> element: '<', '>' and '&' are
 * written as \u escapes so no value can close the element.
 */
static char *
script_safe_json(const char *json)
{
	size_t n = 0;
	char *out, *o;

	for (const char *p = json; *p; p++)
		n += (*p == '<' || *p == '>' || *p == '&') ? 6 : 1;
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	o = out;
	for (const char *p = json; *p; p++) {
		if (*p == '<' || *p == '>' || *p == '&')
			o += sprintf(o, "\\u%04x", (unsigned)*p);
		else
			*o++ = *p;
	}
	*o = '\0';
	return out;
}

/* The badge text is HTML text: escape what could start markup. */
static char *
html_text(const char *s)
{
	size_t n = 0;
	char *out, *o;

	for (const char *p = s; *p; p++)
		n += *p == '&' ? 5 : (*p == '<' || *p == '>') ? 4 :
		    (*p == '"' || *p == '\'') ? 5 : 1;
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	o = out;
	for (const char *p = s; *p; p++) {
		switch (*p) {
		case '&': memcpy(o, "&amp;", 5); o += 5; break;
		case '<': memcpy(o, "&lt;", 4); o += 4; break;
		case '>': memcpy(o, "&gt;", 4); o += 4; break;
		case '"': memcpy(o, "&#34;", 5); o += 5; break;
		case '\'': memcpy(o, "&#39;", 5); o += 5; break;
		default: *o++ = *p; break;
		}
	}
	*o = '\0';
	return out;
}

static void
compute_asset_version(struct relay_web *w)
{
	struct tp_sha256 c;
	unsigned char d[TP_SHA256_LEN];
	char hex[2 * TP_SHA256_LEN + 1];

	tp_sha256_init(&c);
	for (size_t i = 0; i < w->nfiles; i++) {
		unsigned char len[8];
		uint64_t n = w->files[i].f.len;

		for (int k = 0; k < 8; k++)
			len[k] = (unsigned char)(n >> (8 * k));
		tp_sha256_update(&c, w->files[i].name,
		    strlen(w->files[i].name) + 1);
		tp_sha256_update(&c, len, sizeof(len));
		tp_sha256_update(&c, w->files[i].body, w->files[i].f.len);
	}
	tp_sha256_final(&c, d);
	tp_sha256_hex(d, hex);
	memcpy(w->asset_version, hex, 16);
	w->asset_version[16] = '\0';
}

static int
render_index(struct relay_web *w, const struct relay_web_file *raw)
{
	const struct relay_web_config *cfg = w->cfg;
	char *body = malloc(raw->len + 1);
	char *json = script_safe_json(cfg->release_json ? cfg->release_json : "{}");
	char *badge = html_text(cfg->release_label ? cfg->release_label : "");
	size_t len = raw->len;
	int rc = -1;

	if (body == NULL || json == NULL || badge == NULL)
		goto out;
	memcpy(body, raw->body, raw->len + 1);
	if (memchr(body, '\0', raw->len) != NULL) {
		fail(w, "%s/index.html contains a NUL byte", cfg->dir);
		free(body);
		body = NULL;
		rc = -2;
		goto out;
	}
	if (replace_all(&body, &len, RELAY_WEB_PH_VUE, cfg->development ?
	    RELAY_WEB_VUE_DEV : RELAY_WEB_VUE_PROD) != 0 ||
	    replace_all(&body, &len, RELAY_WEB_PH_RELEASE, json) != 0 ||
	    replace_all(&body, &len, RELAY_WEB_PH_BADGE, badge) != 0 ||
	    replace_all(&body, &len, RELAY_WEB_PH_ASSET, w->asset_version) != 0)
		goto out;
	w->index = *raw;
	w->index.name = "index.html";
	w->index.body = body;
	w->index_body = body;
	w->index.len = len;
	w->index.versioned = false;
	set_etag(&w->index);
	body = NULL;
	rc = 0;
out:
	if (rc == -1)
		fail(w, "out of memory rendering index.html");
	free(body);
	free(json);
	free(badge);
	return rc == 0 ? 0 : -1;
}

struct relay_web *
relay_web_load(const struct relay_web_config *cfg, char *err, size_t errlen)
{
	struct relay_web *w = calloc(1, sizeof(*w));
	const struct relay_web_file *raw;
	struct stat st;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (w == NULL) {
		if (err != NULL)
			snprintf(err, errlen, "out of memory loading RELAY_WEB_DIR");
		return NULL;
	}
	w->cfg = cfg;
	w->err = err;
	w->errlen = errlen;
	if (cfg->dir == NULL || cfg->dir[0] == '\0') {
		fail(w, "RELAY_WEB_DIR is empty");
		goto err;
	}
	if (realpath(cfg->dir, w->root) == NULL || stat(w->root, &st) != 0) {
		fail(w, "RELAY_WEB_DIR '%s': %s", cfg->dir, strerror(errno));
		goto err;
	}
	if (!S_ISDIR(st.st_mode)) {
		fail(w, "RELAY_WEB_DIR '%s' is not a directory", cfg->dir);
		goto err;
	}
	if (walk(w, w->root, "", 0) != 0)
		goto err;
	qsort(w->files, w->nfiles, sizeof(w->files[0]), cmp_file);
	raw = find(w, "index.html");
	if (raw == NULL) {
		fail(w, "RELAY_WEB_DIR '%s' has no index.html", cfg->dir);
		goto err;
	}
	compute_asset_version(w);
	if (render_index(w, raw) != 0)
		goto err;
	w->cfg = NULL;
	w->err = NULL;
	return w;
err:
	w->cfg = NULL;
	w->err = NULL;
	relay_web_free(w);
	return NULL;
}

void
relay_web_free(struct relay_web *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->nfiles; i++) {
		free(w->files[i].name);
		free(w->files[i].body);
	}
	free(w->files);
	free(w->index_body);
	free(w);
}

const struct relay_web_file *
relay_web_index(const struct relay_web *w)
{
	return &w->index;
}

const char *
relay_web_asset_version(const struct relay_web *w)
{
	return w->asset_version;
}

void
relay_web_get_stats(const struct relay_web *w, struct relay_web_stats *out)
{
	out->files = w->nfiles;
	out->bytes = w->bytes;
	out->skipped = w->skipped;
}

/* ---- requests ---------------------------------------------------------------------- */

int
relay_web_normalize(const char *raw, char *out, size_t outlen)
{
	size_t o = 0, seg = 0;

	if (raw == NULL || outlen == 0)
		return -1;
	for (const char *p = raw;; p++) {
		unsigned char c;

		if (*p == '\0' || *p == '/') {
			/* End of a segment: not empty, not ".", "..", ".x". */
			if (o == seg || out[seg] == '.')
				return -1;
			if (*p == '\0')
				break;
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '/';
			seg = o;
			continue;
		}
		if (*p == '%') {
			int b = relay_percent_byte(p);

			if (b < 0)
				return -1;	/* malformed escape */
			c = (unsigned char)b;
			if (c == '/')
				return -1;	/* an encoded separator */
			p += 2;
		} else {
			c = (unsigned char)*p;
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			return -1;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

enum relay_web_lookup
relay_web_lookup(const struct relay_web *w, const char *raw,
    const struct relay_web_file **out)
{
	char name[RELAY_WEB_MAX_NAME + 1];
	const struct relay_web_file *f;

	if (relay_web_normalize(raw, name, sizeof(name)) != 0)
		return RELAY_WEB_BAD_PATH;
	f = find(w, name);
	if (f == NULL)
		return RELAY_WEB_NOT_FOUND;
	*out = f;
	return RELAY_WEB_FOUND;
}

/* True when the If-None-Match list names f's entity tag (weak compare). */
static bool
etag_listed(const char *list, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = list;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 1 && p[0] == '*')
			return true;
		if (n == elen && strncmp(p, etag, n) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

bool
relay_web_not_modified(const struct relay_web_file *f,
    const char *if_none_match, const char *if_modified_since)
{
	time_t since;

	if (if_none_match != NULL && if_none_match[strspn(if_none_match,
	    " \t")] != '\0')
		return etag_listed(if_none_match, f->etag);
	if (if_modified_since != NULL &&
	    relay_web_parse_http_date(if_modified_since, &since) == 0)
		return f->mtime <= since;
	return false;
}

const char *
relay_web_cache_control(const struct relay_web *w,
    const struct relay_web_file *f, const char *query)
{
	const char *p = query;
	size_t vlen = strlen(w->asset_version);

	if (!f->versioned || p == NULL)
		return RELAY_WEB_CC_DEFAULT;
	while (*p != '\0') {
		size_t n = strcspn(p, "&");

		if (n == 2 + vlen && strncmp(p, "v=", 2) == 0 &&
		    strncmp(p + 2, w->asset_version, vlen) == 0)
			return RELAY_WEB_CC_IMMUTABLE;
		p += n;
		if (*p == '&')
			p++;
	}
	return RELAY_WEB_CC_DEFAULT;
}
