/*
 * pyembed.c -- binds the Stable ABI subset of CPython at run time.
 *
 * Symbols are looked up by name and stored as plain function pointers;
 * the object-to-function pointer conversion goes through a union so that
 * -Wpedantic/-Wcast-function-type stay quiet on both dlsym and
 * GetProcAddress.
 */
#ifdef _WIN32
#include <windows.h>
#include "wstr.h"
#else
#define _GNU_SOURCE 1
#include <dlfcn.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "pyembed.h"

typedef struct gpuhost_pyobject gpuhost_pyobject;	/* opaque PyObject */

typedef int (*fn_bytesmain)(int, char **);
typedef int (*fn_main)(int, wchar_t **);
typedef int (*fn_isinit)(void);
typedef void (*fn_setinterrupt)(void);
typedef int (*fn_addpending)(int (*)(void *), void *);
typedef void (*fn_setnone)(gpuhost_pyobject *);
typedef const char *(*fn_getversion)(void);

struct gpuhost_py {
	char path[1024];
#ifdef _WIN32
	HMODULE lib;
	fn_main main;
#else
	void *lib;
	fn_bytesmain bytesmain;
#endif
	fn_isinit is_initialized;
	fn_setinterrupt set_interrupt;
	fn_addpending add_pending;
	fn_setnone set_none;
	gpuhost_pyobject **exc_systemexit;
	fn_getversion get_version;
	atomic_bool ran;
};

/* One instance per process: the pending-call callback needs it. */
static struct gpuhost_py *current;

typedef void (*generic_fn)(void);

static void *
sym_data(struct gpuhost_py *py, const char *name)
{
#ifdef _WIN32
	union { FARPROC f; void *p; } u;

	u.f = GetProcAddress(py->lib, name);
	return u.p;
#else
	return dlsym(py->lib, name);
#endif
}

static generic_fn
sym_fn(struct gpuhost_py *py, const char *name)
{
	union { void *p; generic_fn f; } u;

	u.p = sym_data(py, name);
	return u.f;
}

#define BIND(py, field, type, name) \
	(((py)->field = (type)sym_fn((py), (name))) != NULL)

static int
bind_all(struct gpuhost_py *py, char *missing, size_t len)
{
	const char *miss = NULL;

#ifdef _WIN32
	if (!BIND(py, main, fn_main, "Py_Main"))
		miss = "Py_Main";
#else
	if (!BIND(py, bytesmain, fn_bytesmain, "Py_BytesMain"))
		miss = "Py_BytesMain (CPython 3.8 or later is required)";
#endif
	else if (!BIND(py, is_initialized, fn_isinit, "Py_IsInitialized"))
		miss = "Py_IsInitialized";
	else if (!BIND(py, set_interrupt, fn_setinterrupt, "PyErr_SetInterrupt"))
		miss = "PyErr_SetInterrupt";
	else if (!BIND(py, add_pending, fn_addpending, "Py_AddPendingCall"))
		miss = "Py_AddPendingCall";
	else if (!BIND(py, set_none, fn_setnone, "PyErr_SetNone"))
		miss = "PyErr_SetNone";
	else if (!BIND(py, get_version, fn_getversion, "Py_GetVersion"))
		miss = "Py_GetVersion";
	else if ((py->exc_systemexit = sym_data(py, "PyExc_SystemExit")) == NULL)
		miss = "PyExc_SystemExit";
	if (miss != NULL) {
		snprintf(missing, len, "%s", miss);
		return -1;
	}
	return 0;
}

static void
unload(struct gpuhost_py *py)
{
	if (py->lib == NULL)
		return;
#ifdef _WIN32
	FreeLibrary(py->lib);
#else
	dlclose(py->lib);
#endif
	py->lib = NULL;
}

int
gpuhost_py_open(const char *const *candidates, size_t n,
    struct gpuhost_py **out, char *err, size_t errlen)
{
	struct gpuhost_py *py = calloc(1, sizeof(*py));
	size_t off;
	int w;

	if (py == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w = snprintf(err, errlen, "Python library not found; tried:");
	off = w > 0 && (size_t)w < errlen ? (size_t)w : 0;
	for (size_t i = 0; i < n; i++) {
		char why[512], missing[128];

#ifdef _WIN32
		wchar_t *wp = gpuhost_to_wide(candidates[i]);
		DWORD flags = (wcschr(wp ? wp : L"", L'\\') != NULL ||
		    wcschr(wp ? wp : L"", L'/') != NULL) ?
		    LOAD_WITH_ALTERED_SEARCH_PATH : 0;

		py->lib = wp != NULL ? LoadLibraryExW(wp, NULL, flags) : NULL;
		if (py->lib == NULL)
			gpuhost_win_error(GetLastError(), why, sizeof(why));
		free(wp);
#else
		const char *de;

		py->lib = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
		if (py->lib == NULL) {
			de = dlerror();
			snprintf(why, sizeof(why), "%s", de ? de : "dlopen failed");
		}
#endif
		if (py->lib != NULL && bind_all(py, missing, sizeof(missing)) != 0) {
			snprintf(why, sizeof(why), "loaded but has no %s", missing);
			unload(py);
		}
		if (py->lib != NULL) {
			snprintf(py->path, sizeof(py->path), "%s", candidates[i]);
			current = py;
			*out = py;
			return 0;
		}
		if (off < errlen) {
			w = snprintf(err + off, errlen - off, "%s %s (%s)",
			    i == 0 ? "" : ";", candidates[i], why);
			if (w > 0)
				off += (size_t)w;
		}
	}
	if (n == 0)
		snprintf(err, errlen, "Python library not found: no candidates");
	free(py);
	return -1;
}

const char *
gpuhost_py_path(const struct gpuhost_py *py)
{
	return py->path;
}

const char *
gpuhost_py_version(const struct gpuhost_py *py)
{
	const char *v = py->get_version();

	return v != NULL ? v : "?";
}

int
gpuhost_py_main(struct gpuhost_py *py, int argc, char **argv)
{
	atomic_store(&py->ran, true);
#ifdef _WIN32
	{
		wchar_t **wargv = calloc((size_t)argc + 1, sizeof(*wargv));
		int rc;

		if (wargv == NULL)
			return 1;
		for (int i = 0; i < argc; i++) {
			if ((wargv[i] = gpuhost_to_wide(argv[i])) == NULL) {
				for (int k = 0; k < i; k++)
					free(wargv[k]);
				free(wargv);
				return 1;
			}
		}
		rc = py->main(argc, wargv);
		for (int i = 0; i < argc; i++)
			free(wargv[i]);
		free(wargv);
		return rc;
	}
#else
	return py->bytesmain(argc, argv);
#endif
}

bool
gpuhost_py_initialized(const struct gpuhost_py *py)
{
	return atomic_load(&py->ran) && py->is_initialized() != 0;
}

bool
gpuhost_py_interrupt(struct gpuhost_py *py)
{
	if (!gpuhost_py_initialized(py))
		return false;
	py->set_interrupt();
	return true;
}

/* Runs in the interpreter's main thread with the GIL held. */
static int
raise_system_exit(void *arg)
{
	(void)arg;
	if (current == NULL)
		return 0;
	current->set_none(*current->exc_systemexit);
	return -1;
}

bool
gpuhost_py_escalate(struct gpuhost_py *py)
{
	int rc;

	if (!gpuhost_py_initialized(py))
		return false;
	rc = py->add_pending(raise_system_exit, NULL);
	py->set_interrupt();
	return rc == 0;
}

void
gpuhost_py_close(struct gpuhost_py *py)
{
	if (py == NULL)
		return;
	/* After Py_Main the runtime is finalised but may not unload cleanly. */
	if (!atomic_load(&py->ran))
		unload(py);
	if (current == py)
		current = NULL;
	free(py);
}
