/*
 * gpu.h -- the NVIDIA GPUs as the driver reports them (NVML, loaded at run
 * time: nvml.dll / libnvidia-ml.so.1, no build-time dependency), and the
 * venv's view of them (the runtime probe run by the `gpu` check).
 *
 * NVML is the library nvidia-smi itself uses; only the few functions
 * below are bound, each present in every driver since R450. A machine
 * without the driver simply has no library: that is GPUHOST_NVML_ABSENT,
 * not an error.
 */
#ifndef GPUHOST_GPU_H
#define GPUHOST_GPU_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

#define GPUHOST_GPU_MAX 16	/* GPUs reported; more are counted, not listed */

enum gpuhost_nvml_state {
	GPUHOST_NVML_OK = 0,	/* driver answered; n may still be 0 */
	GPUHOST_NVML_ABSENT,	/* no NVML library: no NVIDIA driver */
	GPUHOST_NVML_ERROR,	/* library there, but it failed (error) */
};

struct gpuhost_gpu_info {
	char name[96];
	uint64_t mem_used, mem_total;	/* bytes */
	int util_percent;		/* -1 unknown */
	int temp_c;			/* -1 unknown */
	double power_w;			/* -1 unknown */
};

struct gpuhost_gpu_snapshot {
	enum gpuhost_nvml_state state;
	char library[GPUHOST_PATH_MAX];	/* what was loaded (or tried) */
	char driver[80];		/* driver version */
	char error[300];		/* for ABSENT / ERROR */
	unsigned count;			/* GPUs the driver has */
	unsigned n;			/* of them in gpu[] */
	struct gpuhost_gpu_info gpu[GPUHOST_GPU_MAX];
};

struct gpuhost_nvml;

/*
 * Loads NVML (library, or the platform's default when NULL or empty) and
 * initialises it. Returns GPUHOST_NVML_OK with *out (close with
 * gpuhost_nvml_close), or ABSENT / ERROR with a reason in err and *out
 * NULL.
 */
enum gpuhost_nvml_state gpuhost_nvml_open(const char *library,
    struct gpuhost_nvml **out, char *err, size_t errlen);

/*
 * Reads the driver version and every GPU's name, memory, utilisation,
 * temperature and power into *s (zeroed first). A value a GPU does not
 * report stays -1. Thread-compatible: one caller at a time per handle.
 */
void gpuhost_nvml_sample(struct gpuhost_nvml *nv,
    struct gpuhost_gpu_snapshot *s);

/* nvmlShutdown and unload; NULL is ignored. */
void gpuhost_nvml_close(struct gpuhost_nvml *nv);

/* Open, sample, close: one snapshot (state ABSENT/ERROR as above). */
void gpuhost_gpu_snapshot(const char *library,
    struct gpuhost_gpu_snapshot *s);

/* "NVIDIA GeForce RTX 4090, 1.2/24.0 GiB, 3 %, 41 C" into buf; buf. */
char *gpuhost_gpu_line(const struct gpuhost_gpu_info *g, char *buf,
    size_t len);

/*
 * The `status` lines: "gpu:        <gpuhost_gpu_line>, driver X" per GPU,
 * or why there is none. Samples NVML (library as above) once.
 */
void gpuhost_gpu_status_print(const char *library, FILE *fp);

/*
 * Python source the PROBE worker runs (-c) in the checkout: imports
 * llama_cpp from the venv (not a llama_cpp.py shim in the checkout;
 * absent is an answer, not an error), asks llama_supports_gpu_offload(),
 * and asks token.place's ModelManager (constructed, no model loaded)
 * where its model file is and whether it is there. Prints lines
 * "GPUHOST_PROBE key=value" (one line each, newlines flattened): keys
 * llama_cpp (present/absent/error), version, module, gpu_offload
 * (true/false/unknown), error, model_path, model_size (bytes, -1 when
 * absent), model_url, model_error, then "GPUHOST_PROBE end".
 */
extern const char gpuhost_probe_code[];

/*
 * Forgets the probe answer the `gpu` and `model` checks share, so the next
 * report (the supervisor's pre-flight before a restart) probes afresh.
 */
void gpuhost_gpu_probe_forget(void);

/* True when python.args or [environment] selects token.place's mock LLM. */
int gpuhost_config_mock_llm(const struct gpuhost_config *cfg);

#endif
