/*
 * cmdline.h -- splitting an argument string from the config into argv.
 *
 * Blanks separate words; "double" or 'single' quotes group blanks into a
 * word; inside double quotes \" is a quote and \\ a backslash. Any other
 * backslash is literal, so Windows paths need no escaping.
 */
#ifndef GPUHOST_CMDLINE_H
#define GPUHOST_CMDLINE_H

#include <stddef.h>

#define GPUHOST_MAX_ARGS 128

struct gpuhost_argv {
	int argc;
	char *argv[GPUHOST_MAX_ARGS + 1];	/* NULL-terminated */
};

/*
 * Appends the words of s to *a (strings malloc'd). Returns 0, -1 for an
 * unterminated quote or too many words (reason in err), -2 out of memory.
 */
int gpuhost_argv_split(struct gpuhost_argv *a, const char *s, char *err,
    size_t errlen);

/* Appends one word (copied); 0, -1 when full, -2 out of memory. */
int gpuhost_argv_push(struct gpuhost_argv *a, const char *word);

/* Frees the words and empties a. */
void gpuhost_argv_free(struct gpuhost_argv *a);

#endif
