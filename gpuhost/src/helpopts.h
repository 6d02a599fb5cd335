/*
 * helpopts.h -- which --options a script's help text offers, which ones a
 * command line uses, and which used ones the script does not know.
 *
 * This is how `check` catches a wrong python.args before the service
 * restarts an argparse error for ever: the options are read from the
 * script's own `--help` output, so nothing about a particular script is
 * built in. Only long options ("--name") are compared; a word is an
 * option when "--" starts it (after blanks or one of "[(,|{") and a
 * letter or digit follows. On the command line, "--name=value" counts as
 * "--name" and a bare "--" ends the options.
 */
#ifndef GPUHOST_HELPOPTS_H
#define GPUHOST_HELPOPTS_H

#include <stddef.h>

#define GPUHOST_OPTS_MAX 128	/* distinct options kept per set */
#define GPUHOST_OPT_LEN 64	/* longer option names are ignored */

struct gpuhost_optset {
	size_t n;
	char opt[GPUHOST_OPTS_MAX][GPUHOST_OPT_LEN];	/* first-seen order */
};

/* Adds opt unless present (or the set is full or opt too long). */
void gpuhost_optset_add(struct gpuhost_optset *s, const char *opt,
    size_t len);

/* 1 when opt is in the set, else 0. */
int gpuhost_optset_has(const struct gpuhost_optset *s, const char *opt);

/* Collects the long options named anywhere in help text (argparse style). */
void gpuhost_opts_from_help(const char *text, struct gpuhost_optset *out);

/* Collects the long options an argument vector uses. */
void gpuhost_opts_from_argv(int argc, char *const *argv,
    struct gpuhost_optset *out);

/* Fills *missing with the options of used not in offered; returns count. */
size_t gpuhost_opts_missing(const struct gpuhost_optset *used,
    const struct gpuhost_optset *offered, struct gpuhost_optset *missing);

/*
 * Joins a set as "--a, --b, --c" into buf (cut with "..." when it does
 * not fit). Returns buf.
 */
char *gpuhost_optset_join(const struct gpuhost_optset *s, char *buf,
    size_t len);

/*
 * The value the command line gives option opt ("--opt value" or
 * "--opt=value"; the last one wins, a bare "--" ends the options), copied
 * into buf (cut to len). Returns 1 when found, 0 when not.
 */
int gpuhost_argv_option_value(int argc, char *const *argv, const char *opt,
    char *buf, size_t len);

#endif
