/* venv.c -- pyvenv.cfg parsing and library candidates; see venv.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "os.h"
#include "venv.h"

static int
parse_version(const char *s, struct gpuhost_venv *v)
{
	char *end;
	long maj, min;

	maj = strtol(s, &end, 10);
	if (end == s || *end != '.')
		return -1;
	s = end + 1;
	min = strtol(s, &end, 10);
	if (end == s || maj != 3 || min < 0 || min > 99)
		return -1;
	v->major = (int)maj;
	v->minor = (int)min;
	return 0;
}

int
gpuhost_venv_parse_cfg(const char *text, struct gpuhost_venv *v, char *err,
    size_t errlen)
{
	const char *p = text;
	char verbuf[32] = "";
	int have_home = 0;

	v->home[0] = '\0';
	v->version[0] = '\0';
	v->major = v->minor = 0;
	while (*p != '\0') {
		const char *eol = strchr(p, '\n'), *eq, *k, *val;
		size_t n, kn, vn;

		n = eol ? (size_t)(eol - p) : strlen(p);
		eq = memchr(p, '=', n);
		if (eq != NULL) {
			k = p;
			kn = (size_t)(eq - p);
			val = eq + 1;
			vn = n - kn - 1;
			while (kn > 0 && isspace((unsigned char)k[kn - 1]))
				kn--;
			while (kn > 0 && isspace((unsigned char)*k)) {
				k++;
				kn--;
			}
			while (vn > 0 && isspace((unsigned char)*val)) {
				val++;
				vn--;
			}
			while (vn > 0 && isspace((unsigned char)val[vn - 1]))
				vn--;
			if (kn == 4 && strncasecmp(k, "home", 4) == 0 &&
			    vn < sizeof(v->home)) {
				memcpy(v->home, val, vn);
				v->home[vn] = '\0';
				have_home = vn > 0;
			} else if (((kn == 7 && strncasecmp(k, "version", 7) == 0) ||
			    (kn == 12 && strncasecmp(k, "version_info", 12) == 0)) &&
			    vn < sizeof(verbuf)) {
				memcpy(verbuf, val, vn);
				verbuf[vn] = '\0';
			}
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	if (!have_home) {
		snprintf(err, errlen, "pyvenv.cfg has no 'home' key");
		return -1;
	}
	if (verbuf[0] == '\0') {
		snprintf(err, errlen, "pyvenv.cfg has neither 'version' nor "
		    "'version_info'");
		return -1;
	}
	if (parse_version(verbuf, v) != 0) {
		snprintf(err, errlen, "pyvenv.cfg version '%s' is not 3.X", verbuf);
		return -1;
	}
	snprintf(v->version, sizeof(v->version), "%s", verbuf);
	return 0;
}

static void
add(struct gpuhost_venv *v, const char *dir, const char *name)
{
	if (v->ncandidates == GPUHOST_VENV_MAX_CANDIDATES)
		return;
	if (dir == NULL)
		snprintf(v->candidates[v->ncandidates], GPUHOST_PATH_MAX, "%s", name);
	else if (gpuhost_path_join(v->candidates[v->ncandidates],
	    GPUHOST_PATH_MAX, dir, name) != 0)
		return;
	v->ncandidates++;
}

void
gpuhost_venv_candidates(struct gpuhost_venv *v, const char *library)
{
	char name[64];

	v->ncandidates = 0;
	if (library != NULL && library[0] != '\0') {
		add(v, NULL, library);
		return;
	}
#ifdef _WIN32
	snprintf(name, sizeof(name), "python%d%d.dll", v->major, v->minor);
	add(v, v->home, name);
	add(v, v->home, "python3.dll");
#else
	{
		char lib[GPUHOST_PATH_MAX], up[GPUHOST_PATH_MAX];

		if (gpuhost_path_dirname(up, sizeof(up), v->home) == 0 &&
		    gpuhost_path_join(lib, sizeof(lib), up, "lib") == 0) {
			snprintf(name, sizeof(name), "libpython%d.%d.so.1.0",
			    v->major, v->minor);
			add(v, lib, name);
			snprintf(name, sizeof(name), "libpython%d.%d.so",
			    v->major, v->minor);
			add(v, lib, name);
		}
		snprintf(name, sizeof(name), "libpython%d.%d.so.1.0", v->major,
		    v->minor);
		add(v, NULL, name);
		snprintf(name, sizeof(name), "libpython%d.%d.so", v->major,
		    v->minor);
		add(v, NULL, name);
	}
#endif
}

int
gpuhost_venv_load(const char *venv_dir, const char *library,
    struct gpuhost_venv *v, char *err, size_t errlen)
{
	char path[GPUHOST_PATH_MAX], text[8192], why[200];
	FILE *fp;
	size_t n;

	memset(v, 0, sizeof(*v));
	if (!gpuhost_is_dir(venv_dir)) {
		snprintf(err, errlen, "venv directory %s does not exist "
		    "(create it with: python -m venv %s)", venv_dir, venv_dir);
		return -1;
	}
	if (gpuhost_path_join(path, sizeof(path), venv_dir, "pyvenv.cfg") != 0) {
		snprintf(err, errlen, "venv path too long");
		return -1;
	}
	if ((fp = gpuhost_fopen(path, "rb")) == NULL) {
		snprintf(err, errlen, "%s is missing: %s is not a venv "
		    "(create it with: python -m venv %s)", path, venv_dir,
		    venv_dir);
		return -1;
	}
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	if (gpuhost_venv_parse_cfg(text, v, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
#ifdef _WIN32
	(void)gpuhost_path_join(path, sizeof(path), venv_dir, "Scripts");
	(void)gpuhost_path_join(v->interpreter, sizeof(v->interpreter), path,
	    "python.exe");
#else
	(void)gpuhost_path_join(path, sizeof(path), venv_dir, "bin");
	(void)gpuhost_path_join(v->interpreter, sizeof(v->interpreter), path,
	    "python");
	if (!gpuhost_is_file(v->interpreter))
		(void)gpuhost_path_join(v->interpreter, sizeof(v->interpreter),
		    path, "python3");
#endif
	if (!gpuhost_is_file(v->interpreter)) {
		snprintf(err, errlen, "venv interpreter %s is missing",
		    v->interpreter);
		return -1;
	}
	gpuhost_venv_candidates(v, library);
	return 0;
}
