/* helpopts.c -- options in help text and on command lines; see helpopts.h. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "helpopts.h"

void
gpuhost_optset_add(struct gpuhost_optset *s, const char *opt, size_t len)
{
	if (len >= GPUHOST_OPT_LEN || s->n == GPUHOST_OPTS_MAX)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (strlen(s->opt[i]) == len && memcmp(s->opt[i], opt, len) == 0)
			return;
	}
	memcpy(s->opt[s->n], opt, len);
	s->opt[s->n][len] = '\0';
	s->n++;
}

int
gpuhost_optset_has(const struct gpuhost_optset *s, const char *opt)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->opt[i], opt) == 0)
			return 1;
	}
	return 0;
}

static int
name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/* Length of the option starting at p ("--x..."), or 0 if none starts there. */
static size_t
option_len(const char *p)
{
	size_t n = 2;

	if (p[0] != '-' || p[1] != '-' || !isalnum((unsigned char)p[2]))
		return 0;
	while (name_char(p[n]))
		n++;
	return n;
}

void
gpuhost_opts_from_help(const char *text, struct gpuhost_optset *out)
{
	char prev = ' ';

	memset(out, 0, sizeof(*out));
	for (const char *p = text; *p != '\0'; p++) {
		size_t n;

		if ((isspace((unsigned char)prev) || strchr("[(,|{", prev) != NULL) &&
		    (n = option_len(p)) > 0) {
			gpuhost_optset_add(out, p, n);
			p += n - 1;
			prev = p[0];
			continue;
		}
		prev = *p;
	}
}

void
gpuhost_opts_from_argv(int argc, char *const *argv,
    struct gpuhost_optset *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			break;
		if (a[0] == '-' && a[1] == '-' && a[2] != '\0')
			gpuhost_optset_add(out, a, strcspn(a, "="));
	}
}

size_t
gpuhost_opts_missing(const struct gpuhost_optset *used,
    const struct gpuhost_optset *offered, struct gpuhost_optset *missing)
{
	memset(missing, 0, sizeof(*missing));
	for (size_t i = 0; i < used->n; i++) {
		if (!gpuhost_optset_has(offered, used->opt[i]))
			gpuhost_optset_add(missing, used->opt[i],
			    strlen(used->opt[i]));
	}
	return missing->n;
}

char *
gpuhost_optset_join(const struct gpuhost_optset *s, char *buf, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < s->n; i++) {
		size_t need = strlen(s->opt[i]) + (i > 0 ? 2 : 0);

		if (o + need + 4 >= len) {
			snprintf(buf + o, len - o, "%s...", i > 0 ? ", " : "");
			break;
		}
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i > 0 ? ", " : "",
		    s->opt[i]);
	}
	return buf;
}

int
gpuhost_argv_option_value(int argc, char *const *argv, const char *opt,
    char *buf, size_t len)
{
	size_t ol = strlen(opt);
	int found = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = NULL;

		if (strcmp(a, "--") == 0)
			break;
		if (strncmp(a, opt, ol) != 0)
			continue;
		if (a[ol] == '=')
			v = a + ol + 1;
		else if (a[ol] == '\0' && i + 1 < argc)
			v = argv[++i];
		else
			continue;
		/* argparse: the last occurrence wins. */
		snprintf(buf, len, "%s", v);
		found = 1;
	}
	return found;
}
