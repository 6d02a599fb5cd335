/*
 * A stand-in NVML library for the gpuhost tests (no NVIDIA driver here):
 * the few functions tokenplace-gpuhost binds, with the NVML C ABI, built
 * as libfakenvml.so on Linux and as nvml.dll with mingw-w64 for wine.
 *
 * FAKE_NVML in the environment picks what the "driver" answers:
 *   (unset) or "one"  one RTX 4090: 1 GiB of 24 GiB used, 37 %, 41 C, 88.5 W
 *   "two"             that one and a second, without temperature/power
 *   "init_error"      nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED
 *   "count_error"     nvmlDeviceGetCount_v2 fails with NVML_ERROR_UNKNOWN
 *   "none"            the driver answers but has no GPU
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_UNKNOWN 999

struct fake_device {
	const char *name;
	unsigned long long total, used;
	unsigned int util, temp, power_mw;
	int has_sensors;
};

static struct fake_device devices[2] = {
	{ "NVIDIA GeForce RTX 4090", 24ULL << 30, 1ULL << 30, 37, 41, 88500, 1 },
	{ "NVIDIA RTX A2000", 6ULL << 30, 512ULL << 20, 5, 0, 0, 0 },
};
static int initialized;

static const char *
mode(void)
{
	const char *m = getenv("FAKE_NVML");

	return m != NULL && m[0] != '\0' ? m : "one";
}

EXPORT nvmlReturn_t nvmlInit_v2(void);
EXPORT nvmlReturn_t nvmlShutdown(void);
EXPORT const char *nvmlErrorString(nvmlReturn_t r);
EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int len);
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n);
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d);
EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len);
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m);
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u);
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t);
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *p);

nvmlReturn_t
nvmlInit_v2(void)
{
	if (strcmp(mode(), "init_error") == 0)
		return NVML_ERROR_DRIVER_NOT_LOADED;
	initialized++;
	return NVML_SUCCESS;
}

nvmlReturn_t
nvmlShutdown(void)
{
	if (initialized == 0)
		return NVML_ERROR_UNINITIALIZED;
	initialized--;
	return NVML_SUCCESS;
}

const char *
nvmlErrorString(nvmlReturn_t r)
{
	switch (r) {
	case NVML_SUCCESS:
		return "Success";
	case NVML_ERROR_UNINITIALIZED:
		return "Uninitialized";
	case NVML_ERROR_DRIVER_NOT_LOADED:
		return "Driver Not Loaded";
	case NVML_ERROR_NOT_SUPPORTED:
		return "Not Supported";
	default:
		return "Unknown Error";
	}
}

nvmlReturn_t
nvmlSystemGetDriverVersion(char *v, unsigned int len)
{
	if (!initialized)
		return NVML_ERROR_UNINITIALIZED;
	snprintf(v, len, "%s", "555.99");
	return NVML_SUCCESS;
}

nvmlReturn_t
nvmlDeviceGetCount_v2(unsigned int *n)
{
	if (!initialized)
		return NVML_ERROR_UNINITIALIZED;
	if (strcmp(mode(), "count_error") == 0)
		return NVML_ERROR_UNKNOWN;
	*n = strcmp(mode(), "none") == 0 ? 0 : strcmp(mode(), "two") == 0 ? 2 : 1;
	return NVML_SUCCESS;
}

nvmlReturn_t
nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d)
{
	unsigned int n;

	if (nvmlDeviceGetCount_v2(&n) != NVML_SUCCESS || i >= n)
		return NVML_ERROR_INVALID_ARGUMENT;
	*d = &devices[i];
	return NVML_SUCCESS;
}

nvmlReturn_t
nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len)
{
	snprintf(name, len, "%s", d->name);
	return NVML_SUCCESS;
}

nvmlReturn_t
nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
	m->total = d->total;
	m->used = d->used;
	m->free = d->total - d->used;
	return NVML_SUCCESS;
}

nvmlReturn_t
nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u)
{
	u->gpu = d->util;
	u->memory = d->util / 2;
	return NVML_SUCCESS;
}

nvmlReturn_t
nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t)
{
	if (!d->has_sensors || sensor != 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*t = d->temp;
	return NVML_SUCCESS;
}

nvmlReturn_t
nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *p)
{
	if (!d->has_sensors)
		return NVML_ERROR_NOT_SUPPORTED;
	*p = d->power_mw;
	return NVML_SUCCESS;
}
