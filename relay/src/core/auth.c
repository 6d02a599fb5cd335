/*
 * auth.c -- registration token check for the node routes.
 */
#include "core/auth.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct token {
	char *s;
	size_t len;
};

struct relay_auth {
	struct token *v;
	size_t n;
	size_t maxlen;
};

/* Python's str.strip() set, as far as ASCII goes. */
static bool
py_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static void
strip(const char **s, size_t *len)
{
	while (*len > 0 && py_space((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && py_space((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

static int
add(struct relay_auth *a, const char *s, size_t len)
{
	struct token *nv;

	strip(&s, &len);
	if (len == 0)
		return 0;
	nv = realloc(a->v, (a->n + 1) * sizeof(*nv));
	if (nv == NULL)
		return -1;
	a->v = nv;
	a->v[a->n].s = malloc(len);
	if (a->v[a->n].s == NULL)
		return -1;
	memcpy(a->v[a->n].s, s, len);
	a->v[a->n].len = len;
	a->n++;
	if (len > a->maxlen)
		a->maxlen = len;
	return 0;
}

struct relay_auth *
relay_auth_new(const char *token, const char *tokens)
{
	struct relay_auth *a = calloc(1, sizeof(*a));
	const char *p;
	size_t n;

	if (a == NULL)
		return NULL;
	if (token != NULL && add(a, token, strlen(token)) != 0)
		goto fail;
	for (p = tokens; p != NULL && *p != '\0'; p += n) {
		n = strcspn(p, ",\n");
		if (add(a, p, n) != 0)
			goto fail;
		if (p[n] != '\0')
			n++;
	}
	return a;
fail:
	relay_auth_free(a);
	return NULL;
}

void
relay_auth_free(struct relay_auth *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->n; i++) {
		if (a->v[i].s != NULL)
			memset(a->v[i].s, 0, a->v[i].len);
		free(a->v[i].s);
	}
	free(a->v);
	free(a);
}

bool
relay_auth_required(const struct relay_auth *a)
{
	return a != NULL && a->n > 0;
}

/*
 * Compares every byte position up to the longest token for every token,
 * so the time depends on the configuration only.
 */
static unsigned
ct_equal(const struct token *t, const char *s, size_t len, size_t span)
{
	volatile unsigned char diff = 0;
	unsigned char x, y;
	size_t i;

	diff |= (unsigned char)(t->len != len);
	for (i = 0; i < span; i++) {
		x = i < t->len ? (unsigned char)t->s[i] : 0;
		y = i < len ? (unsigned char)s[i] : 0;
		diff |= (unsigned char)(x ^ y);
	}
	return diff == 0;
}

bool
relay_auth_check(const struct relay_auth *a, const char *header)
{
	const char *s = header;
	size_t len, i;
	unsigned ok = 0;

	if (!relay_auth_required(a))
		return true;
	if (s == NULL)
		return false;
	len = strlen(s);
	strip(&s, &len);
	if (len == 0 || len > a->maxlen)
		return false;
	for (i = 0; i < a->n; i++)
		ok |= ct_equal(&a->v[i], s, len, a->maxlen);
	return ok != 0;
}
