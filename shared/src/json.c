/*
 * json.c -- the strict reading of request bodies (tokenplace/json.h).
 *
 * The pre-scan is a plain loop over the bytes with an explicit stack of
 * open containers, so its stack use does not grow with the input; it
 * settles syntax, depth, trailing content and \u0000 before cJSON, whose
 * parser, printer and delete all recurse once per nesting level, ever
 * sees the body. The duplicate-member walk over the tree is iterative too.
 */
#include "tokenplace/json.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Objects with fewer members are checked pairwise, larger ones sorted. */
#define PAIRWISE_MAX 16

/* Longest member name quoted in an error message, in bytes. */
#define NAME_QUOTE_MAX 48

struct scan {
	const unsigned char *s;
	size_t len;
	size_t pos;
	unsigned max_depth;
	unsigned depth;
	unsigned char open[TP_JSON_MAX_DEPTH];	/* '{' or '[' per level */
	/* The member name being read or last read at depth 1 (raw bytes). */
	size_t top_name;
	size_t top_name_len;
	bool top_named;
	/* The first \u0000 seen. */
	bool nul;
	bool nul_in_name;
	size_t nul_offset;
	bool nul_top_named;
	size_t nul_top_name;
	size_t nul_top_name_len;
};

static const char *const kind_names[TP_JSON_KIND_COUNT] = {
	[TP_JSON_OK] = "ok",
	[TP_JSON_SYNTAX] = "syntax",
	[TP_JSON_DEPTH] = "depth",
	[TP_JSON_TRAILING] = "trailing",
	[TP_JSON_NUL] = "nul",
	[TP_JSON_DUPLICATE] = "duplicate",
	[TP_JSON_TYPE] = "type",
	[TP_JSON_NOMEM] = "nomem",
};

static const char *const kind_codes[TP_JSON_KIND_COUNT] = {
	[TP_JSON_OK] = "ok",
	[TP_JSON_SYNTAX] = "invalid_json",
	[TP_JSON_DEPTH] = "json_too_deep",
	[TP_JSON_TRAILING] = "json_trailing_data",
	[TP_JSON_NUL] = "json_nul_character",
	[TP_JSON_DUPLICATE] = "json_duplicate_member",
	[TP_JSON_TYPE] = "invalid_field_type",
	[TP_JSON_NOMEM] = "out_of_memory",
};

const char *
tp_json_kind_name(enum tp_json_kind kind)
{
	if ((unsigned)kind >= TP_JSON_KIND_COUNT)
		return "unknown";
	return kind_names[kind];
}

/* Fills *err; message is a printf format. Returns -1. */
__attribute__((format(printf, 4, 5)))
static int
refuse(struct tp_json_error *err, enum tp_json_kind kind, size_t offset,
    const char *fmt, ...)
{
	va_list ap;

	err->kind = kind;
	err->status = kind == TP_JSON_NOMEM ? 503 : 400;
	err->code = kind_codes[kind];
	err->field = NULL;
	err->offset = offset;
	va_start(ap, fmt);
	(void)vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Copies at most NAME_QUOTE_MAX bytes of a member name (valid UTF-8, as
 * the scan checked) for a message, cut at a character boundary, with
 * control characters shown as '?'.
 */
static void
quote_name(char out[NAME_QUOTE_MAX + 4], const unsigned char *name,
    size_t len)
{
	size_t i = 0, o = 0, k;

	while (i < len) {
		k = name[i] < 0x80 ? 1 : tp_utf8_decode(name + i, len - i, NULL);
		if (k == 0)
			k = 1;
		if (o + k > NAME_QUOTE_MAX) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (k == 1 && (name[i] < 0x20 || name[i] == 0x7f))
			out[o] = '?';
		else
			memcpy(out + o, name + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
}

/* ---- the pre-scan ---------------------------------------------------- */

static bool
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void
skip_ws(struct scan *sc)
{
	while (sc->pos < sc->len && is_ws(sc->s[sc->pos]))
		sc->pos++;
}

static int
hex4(const unsigned char *p, uint32_t *out)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static int
syntax(struct tp_json_error *err, size_t offset, const char *what)
{
	return refuse(err, TP_JSON_SYNTAX, offset,
	    "Request body is not valid JSON: %s at byte %zu", what, offset);
}

static void
note_nul(struct scan *sc, size_t at, bool is_name)
{
	if (sc->nul)
		return;
	sc->nul = true;
	sc->nul_offset = at;
	sc->nul_in_name = is_name;
	sc->nul_top_named = !is_name && sc->top_named && sc->depth >= 1 &&
	    sc->open[0] == '{';
	sc->nul_top_name = sc->top_name;
	sc->nul_top_name_len = sc->top_name_len;
}

/* A string starting at the '"' under sc->pos; leaves pos after it. */
static int
scan_string(struct scan *sc, bool is_name, struct tp_json_error *err)
{
	const unsigned char *s = sc->s;
	size_t start = sc->pos;
	uint32_t cp, lo;
	size_t k;

	sc->pos++;
	if (is_name && sc->depth == 1) {
		sc->top_name = sc->pos;
		sc->top_named = true;
	}
	for (;;) {
		unsigned char c;

		if (sc->pos >= sc->len)
			return syntax(err, start, "unterminated string");
		c = s[sc->pos];
		if (c == '"')
			break;
		if (c < 0x20)
			return syntax(err, sc->pos, "control character in a string");
		if (c >= 0x80) {
			k = tp_utf8_decode(s + sc->pos, sc->len - sc->pos, NULL);
			if (k == 0)
				return refuse(err, TP_JSON_SYNTAX, sc->pos,
				    "Request body is not valid UTF-8 at byte %zu",
				    sc->pos);
			sc->pos += k;
			continue;
		}
		if (c != '\\') {
			sc->pos++;
			continue;
		}
		if (sc->pos + 1 >= sc->len)
			return syntax(err, sc->pos, "unterminated string");
		switch (s[sc->pos + 1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n':
		case 'r': case 't':
			sc->pos += 2;
			continue;
		case 'u':
			break;
		default:
			return syntax(err, sc->pos, "invalid escape");
		}
		if (sc->len - sc->pos < 6 || hex4(s + sc->pos + 2, &cp) != 0)
			return syntax(err, sc->pos, "invalid \\u escape");
		if (cp == 0)
			note_nul(sc, sc->pos, is_name);
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return syntax(err, sc->pos, "lone UTF-16 surrogate");
		if (cp >= 0xd800 && cp <= 0xdbff) {
			/* A high surrogate must be followed by a low one. */
			if (sc->len - sc->pos < 12 || s[sc->pos + 6] != '\\' ||
			    s[sc->pos + 7] != 'u' ||
			    hex4(s + sc->pos + 8, &lo) != 0 ||
			    lo < 0xdc00 || lo > 0xdfff)
				return syntax(err, sc->pos, "lone UTF-16 surrogate");
			sc->pos += 6;
		}
		sc->pos += 6;
	}
	if (is_name && sc->depth == 1)
		sc->top_name_len = sc->pos - sc->top_name;
	sc->pos++;
	return 0;
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 8259 number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int
scan_number(struct scan *sc, struct tp_json_error *err)
{
	const unsigned char *s = sc->s;
	size_t start = sc->pos, p = sc->pos;

	if (p < sc->len && s[p] == '-')
		p++;
	if (p >= sc->len || !is_digit(s[p]))
		return syntax(err, start, "invalid number");
	if (s[p] == '0') {
		p++;
	} else {
		while (p < sc->len && is_digit(s[p]))
			p++;
	}
	if (p < sc->len && s[p] == '.') {
		p++;
		if (p >= sc->len || !is_digit(s[p]))
			return syntax(err, start, "invalid number");
		while (p < sc->len && is_digit(s[p]))
			p++;
	}
	if (p < sc->len && (s[p] == 'e' || s[p] == 'E')) {
		p++;
		if (p < sc->len && (s[p] == '+' || s[p] == '-'))
			p++;
		if (p >= sc->len || !is_digit(s[p]))
			return syntax(err, start, "invalid number");
		while (p < sc->len && is_digit(s[p]))
			p++;
	}
	if (p - start > TP_JSON_MAX_NUMBER_CHARS)
		return refuse(err, TP_JSON_SYNTAX, start,
		    "Request body has a number longer than %d characters at "
		    "byte %zu", TP_JSON_MAX_NUMBER_CHARS, start);
	sc->pos = p;
	return 0;
}

static int
scan_literal(struct scan *sc, struct tp_json_error *err)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t i, n;

	for (i = 0; i < 3; i++) {
		n = strlen(words[i]);
		if (sc->len - sc->pos >= n &&
		    memcmp(sc->s + sc->pos, words[i], n) == 0) {
			sc->pos += n;
			return 0;
		}
	}
	return syntax(err, sc->pos, "unexpected character");
}

/* Opens a container at sc->pos; refuses the level past the limit. */
static int
open_container(struct scan *sc, struct tp_json_error *err)
{
	if (sc->depth >= sc->max_depth)
		return refuse(err, TP_JSON_DEPTH, sc->pos,
		    "Request body nests arrays and objects deeper than %u "
		    "levels (at byte %zu)", sc->max_depth, sc->pos);
	sc->open[sc->depth++] = sc->s[sc->pos++];
	return 0;
}

/*
 * The scan proper. States: VALUE (a value must start here), NAME (a
 * member name must start here), AFTER (a value just ended).
 */
static int
scan_body(struct scan *sc, struct tp_json_error *err)
{
	enum { VALUE, NAME, AFTER } state = VALUE;
	unsigned char c;

	for (;;) {
		skip_ws(sc);
		if (state == AFTER && sc->depth == 0) {
			if (sc->pos < sc->len)
				return refuse(err, TP_JSON_TRAILING, sc->pos,
				    "Request body has data after the JSON value "
				    "(at byte %zu)", sc->pos);
			return 0;
		}
		if (sc->pos >= sc->len)
			return syntax(err, sc->pos, sc->pos == 0 && state == VALUE ?
			    "empty body" : "unexpected end");
		c = sc->s[sc->pos];
		switch (state) {
		case VALUE:
			if (c == '{' || c == '[') {
				if (open_container(sc, err) != 0)
					return -1;
				skip_ws(sc);
				if (sc->pos < sc->len &&
				    sc->s[sc->pos] == (c == '{' ? '}' : ']')) {
					sc->pos++;
					sc->depth--;
					state = AFTER;
				} else {
					state = c == '{' ? NAME : VALUE;
				}
				continue;
			}
			if (c == '"') {
				if (scan_string(sc, false, err) != 0)
					return -1;
			} else if (c == '-' || is_digit(c)) {
				if (scan_number(sc, err) != 0)
					return -1;
			} else if (scan_literal(sc, err) != 0) {
				return -1;
			}
			state = AFTER;
			continue;
		case NAME:
			if (c != '"')
				return syntax(err, sc->pos, "expected a member name");
			if (scan_string(sc, true, err) != 0)
				return -1;
			skip_ws(sc);
			if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
				return syntax(err, sc->pos, "expected ':'");
			sc->pos++;
			state = VALUE;
			continue;
		case AFTER:
			if (c == ',') {
				sc->pos++;
				state = sc->open[sc->depth - 1] == '{' ? NAME : VALUE;
				continue;
			}
			if (c == (sc->open[sc->depth - 1] == '{' ? '}' : ']')) {
				sc->pos++;
				sc->depth--;
				continue;
			}
			return syntax(err, sc->pos, "expected ',' or a closing bracket");
		}
	}
}

static unsigned
clamp_depth(unsigned max_depth)
{
	return max_depth == 0 || max_depth > TP_JSON_MAX_DEPTH ?
	    TP_JSON_MAX_DEPTH : max_depth;
}

int
tp_json_scan(const char *body, size_t len, unsigned max_depth,
    struct tp_json_error *err)
{
	struct scan sc;
	char name[NAME_QUOTE_MAX + 4];

	memset(&sc, 0, sizeof(sc));
	sc.s = (const unsigned char *)body;
	sc.len = len;
	sc.max_depth = clamp_depth(max_depth);
	if (scan_body(&sc, err) != 0)
		return -1;
	if (sc.nul) {
		if (sc.nul_in_name)
			return refuse(err, TP_JSON_NUL, sc.nul_offset,
			    "Request body has \\u0000 in a member name (at byte "
			    "%zu)", sc.nul_offset);
		if (sc.nul_top_named) {
			quote_name(name, sc.s + sc.nul_top_name,
			    sc.nul_top_name_len);
			return refuse(err, TP_JSON_NUL, sc.nul_offset,
			    "Member \"%s\" has \\u0000 in a string (at byte %zu)",
			    name, sc.nul_offset);
		}
		return refuse(err, TP_JSON_NUL, sc.nul_offset,
		    "Request body has \\u0000 in a string (at byte %zu)",
		    sc.nul_offset);
	}
	err->kind = TP_JSON_OK;
	return 0;
}

/* ---- checks on the tree ---------------------------------------------- */

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
duplicate(const char *name, struct tp_json_error *err)
{
	char q[NAME_QUOTE_MAX + 4];

	quote_name(q, (const unsigned char *)name, strlen(name));
	return refuse(err, TP_JSON_DUPLICATE, 0,
	    "Request body names member \"%s\" twice in one object", q);
}

/*
 * One object's member names, pairwise when few, else sorted in *names
 * (grown as needed; the caller frees it).
 */
static int
object_unique(const cJSON *obj, const char ***names, size_t *cap,
    struct tp_json_error *err)
{
	const cJSON *a, *b;
	size_t n = 0, i;

	for (a = obj->child; a != NULL; a = a->next)
		n++;
	if (n < 2)
		return 0;
	if (n <= PAIRWISE_MAX) {
		for (a = obj->child; a != NULL; a = a->next)
			for (b = a->next; b != NULL; b = b->next)
				if (strcmp(a->string, b->string) == 0)
					return duplicate(a->string, err);
		return 0;
	}
	if (n > *cap) {
		const char **grown = realloc(*names, n * sizeof(**names));

		if (grown == NULL)
			return refuse(err, TP_JSON_NOMEM, 0,
			    "Relay is out of memory");
		*names = grown;
		*cap = n;
	}
	i = 0;
	for (a = obj->child; a != NULL; a = a->next)
		(*names)[i++] = a->string;
	qsort(*names, n, sizeof(**names), cmp_names);
	for (i = 1; i < n; i++)
		if (strcmp((*names)[i - 1], (*names)[i]) == 0)
			return duplicate((*names)[i], err);
	return 0;
}

/*
 * Walks every object of the tree without recursion: path[] holds the
 * containers above the current node, at most max_depth of them.
 */
static int
all_unique(const cJSON *root, struct tp_json_error *err)
{
	const cJSON *path[TP_JSON_MAX_DEPTH + 1];
	const cJSON *n = root;
	const char **names = NULL;
	size_t d = 0, cap = 0;
	int rc = 0;

	for (;;) {
		if (cJSON_IsObject(n) &&
		    (rc = object_unique(n, &names, &cap, err)) != 0)
			goto out;
		if ((cJSON_IsObject(n) || cJSON_IsArray(n)) && n->child != NULL) {
			if (d >= TP_JSON_MAX_DEPTH + 1) {
				/* The scan bounds the depth: cannot happen. */
				rc = refuse(err, TP_JSON_DEPTH, 0,
				    "Request body nests too deep");
				goto out;
			}
			path[d++] = n;
			n = n->child;
			continue;
		}
		while (n->next == NULL) {
			if (d == 0)
				goto out;
			n = path[--d];
		}
		if (d == 0)
			goto out;
		n = n->next;
	}
out:
	free(names);
	return rc;
}

static int
strings_typed(const cJSON *root, const char *const *fields,
    struct tp_json_error *err)
{
	const cJSON *v;
	size_t i;

	if (fields == NULL || !cJSON_IsObject(root))
		return 0;
	for (i = 0; fields[i] != NULL; i++) {
		v = cJSON_GetObjectItemCaseSensitive(root, fields[i]);
		if (v == NULL || cJSON_IsNull(v) || cJSON_IsString(v))
			continue;
		refuse(err, TP_JSON_TYPE, 0, "Member \"%s\" must be a string",
		    fields[i]);
		err->field = fields[i];
		return -1;
	}
	return 0;
}

cJSON *
tp_json_read(const char *body, size_t len, unsigned max_depth,
    const char *const *string_fields, struct tp_json_error *err)
{
	cJSON *tree;

	if (tp_json_scan(body, len, max_depth, err) != 0)
		return NULL;
	/*
	 * The scan accepted strict JSON within cJSON's limits, so a NULL
	 * here means cJSON could not allocate.
	 */
	tree = cJSON_ParseWithLengthOpts(body, len, NULL, 0);
	if (tree == NULL) {
		refuse(err, TP_JSON_NOMEM, 0, "Relay is out of memory");
		return NULL;
	}
	if (all_unique(tree, err) != 0 ||
	    strings_typed(tree, string_fields, err) != 0) {
		cJSON_Delete(tree);
		return NULL;
	}
	err->kind = TP_JSON_OK;
	return tree;
}
