/*
 * gpu_nvml.c -- NVML bound at run time; see gpu.h.
 *
 * The NVML C ABI is stable across drivers: nvmlReturn_t is an int,
 * nvmlDevice_t an opaque pointer, and the structs below have had these
 * layouts since NVML's first release. Symbols go through a union, as in
 * pyembed.c, to keep -Wpedantic quiet about object/function pointers.
 */
#ifdef _WIN32
#include <windows.h>
#include "wstr.h"
#else
#include <dlfcn.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

typedef int nvml_return;
typedef struct nvml_device_st *nvml_device;
struct nvml_memory {
	unsigned long long total, free, used;
};
struct nvml_utilization {
	unsigned int gpu, memory;
};
#define NVML_SUCCESS 0
#define NVML_TEMPERATURE_GPU 0
#define NVML_DRIVER_LEN 80	/* NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE */
#define NVML_NAME_LEN 96	/* NVML_DEVICE_NAME_V2_BUFFER_SIZE */

typedef nvml_return (*fn_void)(void);
typedef const char *(*fn_errstr)(nvml_return);
typedef nvml_return (*fn_driver)(char *, unsigned int);
typedef nvml_return (*fn_count)(unsigned int *);
typedef nvml_return (*fn_handle)(unsigned int, nvml_device *);
typedef nvml_return (*fn_name)(nvml_device, char *, unsigned int);
typedef nvml_return (*fn_mem)(nvml_device, struct nvml_memory *);
typedef nvml_return (*fn_util)(nvml_device, struct nvml_utilization *);
typedef nvml_return (*fn_temp)(nvml_device, int, unsigned int *);
typedef nvml_return (*fn_power)(nvml_device, unsigned int *);

struct gpuhost_nvml {
#ifdef _WIN32
	HMODULE lib;
#else
	void *lib;
#endif
	char path[GPUHOST_PATH_MAX];
	fn_void init, shutdown;
	fn_errstr errstr;
	fn_driver driver;
	fn_count count;
	fn_handle handle;
	fn_name name;
	fn_mem mem;
	fn_util util;
	fn_temp temp;
	fn_power power;
};

typedef void (*generic_fn)(void);

static generic_fn
sym(struct gpuhost_nvml *nv, const char *name)
{
#ifdef _WIN32
	union { FARPROC f; generic_fn g; } u;

	u.f = GetProcAddress(nv->lib, name);
	return u.g;
#else
	union { void *p; generic_fn g; } u;

	u.p = dlsym(nv->lib, name);
	return u.g;
#endif
}

#define BIND(nv, field, type, name) \
	(((nv)->field = (type)sym((nv), (name))) != NULL)

static void
unload(struct gpuhost_nvml *nv)
{
	if (nv->lib == NULL)
		return;
#ifdef _WIN32
	FreeLibrary(nv->lib);
#else
	dlclose(nv->lib);
#endif
	nv->lib = NULL;
}

/* Tries one path; on failure appends why to err. */
static int
try_load(struct gpuhost_nvml *nv, const char *path, char *err,
    size_t errlen)
{
	size_t off = strlen(err);
	char why[300];

#ifdef _WIN32
	wchar_t *wp = gpuhost_to_wide(path);
	DWORD flags = (wp != NULL && (wcschr(wp, L'\\') != NULL ||
	    wcschr(wp, L'/') != NULL)) ? LOAD_WITH_ALTERED_SEARCH_PATH :
	    LOAD_LIBRARY_SEARCH_SYSTEM32;

	nv->lib = wp != NULL ? LoadLibraryExW(wp, NULL, flags) : NULL;
	if (nv->lib == NULL)
		gpuhost_win_error(GetLastError(), why, sizeof(why));
	free(wp);
#else
	const char *de;

	nv->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (nv->lib == NULL) {
		de = dlerror();
		snprintf(why, sizeof(why), "%s", de != NULL ? de : "not loadable");
	}
#endif
	if (nv->lib != NULL) {
		snprintf(nv->path, sizeof(nv->path), "%s", path);
		return 0;
	}
	if (off < errlen)
		snprintf(err + off, errlen - off, "%s%s (%s)", off ? "; " : "",
		    path, why);
	return -1;
}

static int
load(struct gpuhost_nvml *nv, const char *library, char *err, size_t errlen)
{
	err[0] = '\0';
	if (library != NULL && library[0] != '\0')
		return try_load(nv, library, err, errlen);
#ifdef _WIN32
	/* Current drivers put it in System32; older ones under NVSMI. */
	if (try_load(nv, "nvml.dll", err, errlen) == 0)
		return 0;
	{
		char pf[GPUHOST_PATH_MAX], path[GPUHOST_PATH_MAX + 64];
		DWORD n = GetEnvironmentVariableA("ProgramW6432", pf,
		    (DWORD)sizeof(pf));

		if (n == 0 || n >= sizeof(pf))
			n = GetEnvironmentVariableA("ProgramFiles", pf,
			    (DWORD)sizeof(pf));
		if (n > 0 && n < sizeof(pf)) {
			snprintf(path, sizeof(path),
			    "%s\\NVIDIA Corporation\\NVSMI\\nvml.dll", pf);
			if (try_load(nv, path, err, errlen) == 0)
				return 0;
		}
	}
	return -1;
#else
	if (try_load(nv, "libnvidia-ml.so.1", err, errlen) == 0)
		return 0;
	return -1;
#endif
}

static const char *
errstr(struct gpuhost_nvml *nv, nvml_return r, char *buf, size_t len)
{
	const char *s = nv->errstr != NULL ? nv->errstr(r) : NULL;

	snprintf(buf, len, "%s (NVML error %d)", s != NULL ? s : "error", r);
	return buf;
}

enum gpuhost_nvml_state
gpuhost_nvml_open(const char *library, struct gpuhost_nvml **out, char *err,
    size_t errlen)
{
	struct gpuhost_nvml *nv = calloc(1, sizeof(*nv));
	const char *miss = NULL;
	char why[160];
	nvml_return r;

	*out = NULL;
	if (nv == NULL) {
		snprintf(err, errlen, "out of memory");
		return GPUHOST_NVML_ERROR;
	}
	if (load(nv, library, err, errlen) != 0) {
		free(nv);
		return GPUHOST_NVML_ABSENT;
	}
	(void)BIND(nv, errstr, fn_errstr, "nvmlErrorString");
	if (!BIND(nv, init, fn_void, "nvmlInit_v2"))
		miss = "nvmlInit_v2";
	else if (!BIND(nv, shutdown, fn_void, "nvmlShutdown"))
		miss = "nvmlShutdown";
	else if (!BIND(nv, driver, fn_driver, "nvmlSystemGetDriverVersion"))
		miss = "nvmlSystemGetDriverVersion";
	else if (!BIND(nv, count, fn_count, "nvmlDeviceGetCount_v2"))
		miss = "nvmlDeviceGetCount_v2";
	else if (!BIND(nv, handle, fn_handle, "nvmlDeviceGetHandleByIndex_v2"))
		miss = "nvmlDeviceGetHandleByIndex_v2";
	else if (!BIND(nv, name, fn_name, "nvmlDeviceGetName"))
		miss = "nvmlDeviceGetName";
	else if (!BIND(nv, mem, fn_mem, "nvmlDeviceGetMemoryInfo"))
		miss = "nvmlDeviceGetMemoryInfo";
	/* Optional: not every board reports these. */
	(void)BIND(nv, util, fn_util, "nvmlDeviceGetUtilizationRates");
	(void)BIND(nv, temp, fn_temp, "nvmlDeviceGetTemperature");
	(void)BIND(nv, power, fn_power, "nvmlDeviceGetPowerUsage");
	if (miss != NULL) {
		snprintf(err, errlen, "%s loaded but has no %s", nv->path, miss);
		goto fail;
	}
	if ((r = nv->init()) != NVML_SUCCESS) {
		snprintf(err, errlen, "%s: nvmlInit failed: %s", nv->path,
		    errstr(nv, r, why, sizeof(why)));
		goto fail;
	}
	*out = nv;
	return GPUHOST_NVML_OK;
fail:
	unload(nv);
	free(nv);
	return GPUHOST_NVML_ERROR;
}

void
gpuhost_nvml_sample(struct gpuhost_nvml *nv, struct gpuhost_gpu_snapshot *s)
{
	char why[160];
	unsigned int count = 0;
	nvml_return r;

	memset(s, 0, sizeof(*s));
	s->state = GPUHOST_NVML_OK;
	snprintf(s->library, sizeof(s->library), "%s", nv->path);
	if ((r = nv->driver(s->driver, sizeof(s->driver))) != NVML_SUCCESS) {
		s->driver[0] = '\0';
		snprintf(s->error, sizeof(s->error), "driver version: %s",
		    errstr(nv, r, why, sizeof(why)));
		s->state = GPUHOST_NVML_ERROR;
		return;
	}
	s->driver[sizeof(s->driver) - 1] = '\0';
	if ((r = nv->count(&count)) != NVML_SUCCESS) {
		snprintf(s->error, sizeof(s->error), "GPU count: %s",
		    errstr(nv, r, why, sizeof(why)));
		s->state = GPUHOST_NVML_ERROR;
		return;
	}
	s->count = count;
	for (unsigned int i = 0; i < count && s->n < GPUHOST_GPU_MAX; i++) {
		struct gpuhost_gpu_info *g = &s->gpu[s->n];
		struct nvml_memory m;
		struct nvml_utilization u;
		unsigned int v;
		nvml_device d;

		memset(g, 0, sizeof(*g));
		g->util_percent = g->temp_c = -1;
		g->power_w = -1;
		if ((r = nv->handle(i, &d)) != NVML_SUCCESS) {
			snprintf(s->error, sizeof(s->error), "GPU %u: %s", i,
			    errstr(nv, r, why, sizeof(why)));
			continue;
		}
		if (nv->name(d, g->name, sizeof(g->name)) != NVML_SUCCESS)
			snprintf(g->name, sizeof(g->name), "GPU %u", i);
		g->name[sizeof(g->name) - 1] = '\0';
		if (nv->mem(d, &m) == NVML_SUCCESS) {
			g->mem_used = m.used;
			g->mem_total = m.total;
		}
		if (nv->util != NULL && nv->util(d, &u) == NVML_SUCCESS &&
		    u.gpu <= 100)
			g->util_percent = (int)u.gpu;
		if (nv->temp != NULL && nv->temp(d, NVML_TEMPERATURE_GPU, &v) ==
		    NVML_SUCCESS && v < 1000)
			g->temp_c = (int)v;
		if (nv->power != NULL && nv->power(d, &v) == NVML_SUCCESS)
			g->power_w = v / 1000.0;
		s->n++;
	}
}

void
gpuhost_nvml_close(struct gpuhost_nvml *nv)
{
	if (nv == NULL)
		return;
	(void)nv->shutdown();
	unload(nv);
	free(nv);
}

void
gpuhost_gpu_snapshot(const char *library, struct gpuhost_gpu_snapshot *s)
{
	struct gpuhost_nvml *nv = NULL;
	enum gpuhost_nvml_state st;
	char err[sizeof(s->error)];

	st = gpuhost_nvml_open(library, &nv, err, sizeof(err));
	if (st != GPUHOST_NVML_OK) {
		memset(s, 0, sizeof(*s));
		s->state = st;
		snprintf(s->library, sizeof(s->library), "%s",
		    library != NULL && library[0] != '\0' ? library :
#ifdef _WIN32
		    "nvml.dll"
#else
		    "libnvidia-ml.so.1"
#endif
		    );
		snprintf(s->error, sizeof(s->error), "%s", err);
		return;
	}
	gpuhost_nvml_sample(nv, s);
	gpuhost_nvml_close(nv);
}

char *
gpuhost_gpu_line(const struct gpuhost_gpu_info *g, char *buf, size_t len)
{
	const double gib = 1024.0 * 1024.0 * 1024.0;
	char util[16] = "? %", temp[16] = "? C";

	if (g->util_percent >= 0)
		snprintf(util, sizeof(util), "%d %%", g->util_percent);
	if (g->temp_c >= 0)
		snprintf(temp, sizeof(temp), "%d C", g->temp_c);
	snprintf(buf, len, "%s, %.1f/%.1f GiB, %s, %s", g->name,
	    (double)g->mem_used / gib, (double)g->mem_total / gib, util, temp);
	return buf;
}

void
gpuhost_gpu_status_print(const char *library, FILE *fp)
{
	struct gpuhost_gpu_snapshot *s = calloc(1, sizeof(*s));
	char line[256];

	if (s == NULL)
		return;
	gpuhost_gpu_snapshot(library, s);
	if (s->state == GPUHOST_NVML_ABSENT)
		fprintf(fp, "gpu:        none (no NVIDIA driver: %s not found)\n",
		    s->library);
	else if (s->state == GPUHOST_NVML_ERROR)
		fprintf(fp, "gpu:        unknown (%s)\n", s->error);
	else if (s->n == 0)
		fprintf(fp, "gpu:        none (NVIDIA driver %s)\n", s->driver);
	for (unsigned i = 0; i < s->n; i++)
		fprintf(fp, "gpu:        %s%s%s\n",
		    gpuhost_gpu_line(&s->gpu[i], line, sizeof(line)),
		    i == 0 ? ", driver " : "", i == 0 ? s->driver : "");
	free(s);
}
