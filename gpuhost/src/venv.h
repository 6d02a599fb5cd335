/*
 * venv.h -- what a venv's pyvenv.cfg says about its base Python, and
 * where the CPython shared library should be. Pure string work plus file
 * existence checks; nothing is loaded here (pyembed.c does that).
 */
#ifndef GPUHOST_VENV_H
#define GPUHOST_VENV_H

#include <stddef.h>

#include "config.h"

#define GPUHOST_VENV_MAX_CANDIDATES 8

struct gpuhost_venv {
	char home[GPUHOST_PATH_MAX];		/* base install's bin/ (Scripts dir on Windows: the dir with python.exe) */
	char version[32];			/* "3.11.2" as written */
	int major, minor;
	char interpreter[GPUHOST_PATH_MAX];	/* <venv>/bin/python, <venv>\Scripts\python.exe */
	size_t ncandidates;
	char candidates[GPUHOST_VENV_MAX_CANDIDATES][GPUHOST_PATH_MAX];
};

/*
 * Parses the text of a pyvenv.cfg ("key = value" lines; home, version or
 * version_info). Returns 0, or -1 with a reason when home or the version
 * is missing or unreadable.
 */
int gpuhost_venv_parse_cfg(const char *text, struct gpuhost_venv *v,
    char *err, size_t errlen);

/*
 * Fills the library candidates for the parsed version, in the order they
 * should be tried: `library` (if non-empty) alone; else on Windows
 * home\python3XY.dll then home\python3.dll; elsewhere
 * home/../lib/libpython3.X.so.1.0, home/../lib/libpython3.X.so, then the
 * bare sonames for the loader's search path.
 */
void gpuhost_venv_candidates(struct gpuhost_venv *v, const char *library);

/*
 * Reads <venv_dir>/pyvenv.cfg, fills *v (interpreter path and candidates
 * included). Returns 0, or -1 with a message naming the missing piece
 * (venv directory, pyvenv.cfg, home, interpreter).
 */
int gpuhost_venv_load(const char *venv_dir, const char *library,
    struct gpuhost_venv *v, char *err, size_t errlen);

#endif
