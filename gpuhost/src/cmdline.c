/* cmdline.c -- argument-string splitting; see cmdline.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"

int
gpuhost_argv_push(struct gpuhost_argv *a, const char *word)
{
	size_t n = strlen(word);
	char *w;

	if (a->argc >= GPUHOST_MAX_ARGS)
		return -1;
	if ((w = malloc(n + 1)) == NULL)
		return -2;
	memcpy(w, word, n + 1);
	a->argv[a->argc++] = w;
	a->argv[a->argc] = NULL;
	return 0;
}

int
gpuhost_argv_split(struct gpuhost_argv *a, const char *s, char *err,
    size_t errlen)
{
	size_t cap = strlen(s) + 1;
	char *word = malloc(cap);
	int rc = 0;

	if (word == NULL)
		return -2;
	while (rc == 0) {
		size_t n = 0;
		char quote = 0;
		int have = 0;

		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			break;
		while (*s != '\0' && (quote != 0 || !isspace((unsigned char)*s))) {
			char c = *s++;

			have = 1;
			if (quote == 0 && (c == '"' || c == '\'')) {
				quote = c;
				continue;
			}
			if (quote != 0 && c == quote) {
				quote = 0;
				continue;
			}
			if (quote == '"' && c == '\\' && (*s == '"' || *s == '\\'))
				c = *s++;
			word[n++] = c;
		}
		if (quote != 0) {
			snprintf(err, errlen, "unterminated %c quote", quote);
			rc = -1;
			break;
		}
		word[n] = '\0';
		if (have) {
			rc = gpuhost_argv_push(a, word);
			if (rc == -1)
				snprintf(err, errlen, "more than %d arguments",
				    GPUHOST_MAX_ARGS);
		}
	}
	free(word);
	return rc;
}

void
gpuhost_argv_free(struct gpuhost_argv *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	a->argc = 0;
	a->argv[0] = NULL;
}
