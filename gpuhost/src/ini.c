/* ini.c -- parser for gpuhost.ini; see ini.h for the dialect. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ini.h"
#include "os.h"

static int
ieq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return 0;
	}
	return *a == *b;
}

static char *
dup_range(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* Trims blanks at both ends of [*s, *s + *n). */
static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

const struct gpuhost_ini_entry *
gpuhost_ini_find(const struct gpuhost_ini *ini, const char *section,
    const char *key)
{
	for (size_t i = 0; i < ini->n; i++) {
		if (ieq(ini->e[i].section, section) && ieq(ini->e[i].key, key))
			return &ini->e[i];
	}
	return NULL;
}

static int
add(struct gpuhost_ini *ini, const char *section, const char *k, size_t kn,
    const char *v, size_t vn, unsigned line)
{
	struct gpuhost_ini_entry *e;

	if (ini->n == ini->cap) {
		size_t ncap = ini->cap ? ini->cap * 2 : 16;
		struct gpuhost_ini_entry *ne = realloc(ini->e, ncap * sizeof(*ne));

		if (ne == NULL)
			return -2;
		ini->e = ne;
		ini->cap = ncap;
	}
	e = &ini->e[ini->n];
	e->section = dup_range(section, strlen(section));
	e->key = dup_range(k, kn);
	e->value = dup_range(v, vn);
	e->line = line;
	if (e->section == NULL || e->key == NULL || e->value == NULL) {
		free(e->section);
		free(e->key);
		free(e->value);
		return -2;
	}
	ini->n++;
	return 0;
}

int
gpuhost_ini_parse(const char *text, size_t len, struct gpuhost_ini *out,
    char *err, size_t errlen)
{
	char *section = NULL;
	const char *p = text, *end = text + len;
	unsigned line = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < end && rc == 0) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *s = p, *eq;
		size_t n;

		if (eol == NULL)
			eol = end;
		n = (size_t)(eol - p);
		p = eol < end ? eol + 1 : end;
		line++;
		trim(&s, &n);
		if (n == 0 || s[0] == ';' || s[0] == '#')
			continue;
		if (memchr(s, '\0', n) != NULL) {
			snprintf(err, errlen, "line %u: NUL byte", line);
			rc = -1;
			break;
		}
		if (s[0] == '[') {
			const char *name = s + 1;
			size_t nn;

			if (s[n - 1] != ']') {
				snprintf(err, errlen,
				    "line %u: section header without ']'", line);
				rc = -1;
				break;
			}
			nn = n - 2;
			trim(&name, &nn);
			if (nn == 0) {
				snprintf(err, errlen, "line %u: empty section name",
				    line);
				rc = -1;
				break;
			}
			free(section);
			if ((section = dup_range(name, nn)) == NULL)
				rc = -2;
			continue;
		}
		eq = memchr(s, '=', n);
		if (eq == NULL) {
			snprintf(err, errlen, "line %u: expected key = value", line);
			rc = -1;
			break;
		}
		if (section == NULL) {
			snprintf(err, errlen, "line %u: key outside a [section]",
			    line);
			rc = -1;
			break;
		}
		{
			const char *k = s, *v = eq + 1;
			size_t kn = (size_t)(eq - s), vn = n - kn - 1;
			char kbuf[128];
			const struct gpuhost_ini_entry *prev;

			trim(&k, &kn);
			trim(&v, &vn);
			if (kn == 0 || kn >= sizeof(kbuf)) {
				snprintf(err, errlen, "line %u: bad key", line);
				rc = -1;
				break;
			}
			if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
				v++;
				vn -= 2;
			}
			memcpy(kbuf, k, kn);
			kbuf[kn] = '\0';
			prev = gpuhost_ini_find(out, section, kbuf);
			if (prev != NULL) {
				snprintf(err, errlen,
				    "line %u: [%s] %s already set on line %u",
				    line, section, kbuf, prev->line);
				rc = -1;
				break;
			}
			rc = add(out, section, k, kn, v, vn, line);
		}
	}
	free(section);
	if (rc == -2)
		snprintf(err, errlen, "out of memory");
	return rc;
}

int
gpuhost_ini_load(const char *path, struct gpuhost_ini *out, char *err,
    size_t errlen)
{
	FILE *fp;
	char *buf = NULL, e[200];
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	fp = gpuhost_fopen(path, "rb");
	if (fp == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    gpuhost_last_error(e, sizeof(e)));
		return -1;
	}
	buf = malloc(GPUHOST_INI_MAX_BYTES + 1);
	if (buf == NULL) {
		fclose(fp);
		snprintf(err, errlen, "out of memory");
		return -2;
	}
	n = fread(buf, 1, GPUHOST_INI_MAX_BYTES + 1, fp);
	if (ferror(fp)) {
		snprintf(err, errlen, "cannot read %s", path);
		rc = -1;
	} else if (n > GPUHOST_INI_MAX_BYTES) {
		snprintf(err, errlen, "%s is larger than %d bytes", path,
		    GPUHOST_INI_MAX_BYTES);
		rc = -1;
	} else
		rc = gpuhost_ini_parse(buf, n, out, err, errlen);
	fclose(fp);
	free(buf);
	return rc;
}

void
gpuhost_ini_free(struct gpuhost_ini *ini)
{
	for (size_t i = 0; i < ini->n; i++) {
		free(ini->e[i].section);
		free(ini->e[i].key);
		free(ini->e[i].value);
	}
	free(ini->e);
	memset(ini, 0, sizeof(*ini));
}
