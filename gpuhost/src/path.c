/*
 * path.c -- path joining and splitting on strings. Both separators are
 * accepted on Windows, only '/' elsewhere.
 */
#include <string.h>
#include <stdio.h>

#include "os.h"

static bool
is_sep(char c)
{
#ifdef _WIN32
	return c == '\\' || c == '/';
#else
	return c == '/';
#endif
}

bool
gpuhost_path_is_absolute(const char *path)
{
	if (path == NULL || path[0] == '\0')
		return false;
#ifdef _WIN32
	if (((path[0] >= 'A' && path[0] <= 'Z') ||
	    (path[0] >= 'a' && path[0] <= 'z')) && path[1] == ':' &&
	    is_sep(path[2]))
		return true;
	return is_sep(path[0]) && is_sep(path[1]);
#else
	return path[0] == '/';
#endif
}

int
gpuhost_path_join(char *buf, size_t len, const char *dir, const char *name)
{
	size_t dl;
	int n;

	if (gpuhost_path_is_absolute(name) || dir == NULL || dir[0] == '\0') {
		n = snprintf(buf, len, "%s", name);
		return n < 0 || (size_t)n >= len ? -1 : 0;
	}
	dl = strlen(dir);
	while (dl > 1 && is_sep(dir[dl - 1]))
		dl--;
	while (name[0] == '.' && is_sep(name[1]))
		name += 2;
	if (strcmp(name, ".") == 0 || name[0] == '\0')
		n = snprintf(buf, len, "%.*s", (int)dl, dir);
	else if (dl > 0 && is_sep(dir[dl - 1]))
		n = snprintf(buf, len, "%.*s%s", (int)dl, dir, name);
	else
		n = snprintf(buf, len, "%.*s%c%s", (int)dl, dir, GPUHOST_PATHSEP,
		    name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
gpuhost_path_dirname(char *buf, size_t len, const char *path)
{
	size_t n = strlen(path);
	int w;

	while (n > 1 && is_sep(path[n - 1]))
		n--;
	while (n > 0 && !is_sep(path[n - 1]))
		n--;
	if (n == 0) {
		w = snprintf(buf, len, ".");
		return w < 0 || (size_t)w >= len ? -1 : 0;
	}
	while (n > 1 && is_sep(path[n - 1]))
		n--;
#ifdef _WIN32
	/* Keep "C:\" whole. */
	if (n == 2 && path[1] == ':')
		n = 3;
#endif
	w = snprintf(buf, len, "%.*s", (int)n, path);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}
