/*
 * check_gpu.c -- the `gpu` and `model` checks.
 *
 * token.place falls back to the CPU (n_gpu_layers=0) when its
 * llama-cpp-python build has no CUDA, and says so only in a development
 * log line; and its first start downloads the model (gigabytes) while
 * /health refuses connections. Both are said here, before the service
 * starts: the driver's view through NVML, the runtime's view from a
 * probe in the venv (a worker process, like the `args` check, bounded by
 * checks.gpu_timeout, without network and token), and where the model
 * file is. The probe runs once per process and serves both checks.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tokenplace/buf.h"

#include "check.h"
#include "cmdline.h"
#include "gpu.h"
#include "helpopts.h"
#include "os.h"
#include "proc.h"
#include "worker.h"

#define PROBE_PREFIX "GPUHOST_PROBE "
#define PROBE_KILL_WAIT_MS 10000
#define PROBE_POLL_MS 20

struct probe {
	int run;		/* 0 finished, 1 timed out, -1 not started */
	struct gpuhost_exit ex;
	bool ended;		/* the probe printed its last line */
	char err[256];		/* why it could not start */
	char note[256];		/* the worker's own setup error */
	char llama[16];		/* present, absent, error */
	char version[64];
	char module[512];
	char offload[16];	/* true, false, unknown */
	char error[512];
	char model_path[GPUHOST_PATH_MAX];
	long long model_size;	/* -1 absent */
	bool have_size;
	char model_url[512];
	char model_error[512];
};

/* One probe per process: `check` runs both checks on one config. */
static struct probe cached;
static bool cached_done;
static char cached_config[GPUHOST_PATH_MAX];

struct sink {
	struct gpuhost_mutex *mu;
	struct probe *p;
};

static void
set_field(struct probe *p, const char *k, size_t kl, const char *v,
    size_t vl)
{
	static const struct { const char *k; size_t off, len; } f[] = {
		{ "llama_cpp", offsetof(struct probe, llama), sizeof(cached.llama) },
		{ "version", offsetof(struct probe, version), sizeof(cached.version) },
		{ "module", offsetof(struct probe, module), sizeof(cached.module) },
		{ "gpu_offload", offsetof(struct probe, offload), sizeof(cached.offload) },
		{ "error", offsetof(struct probe, error), sizeof(cached.error) },
		{ "model_path", offsetof(struct probe, model_path), sizeof(cached.model_path) },
		{ "model_url", offsetof(struct probe, model_url), sizeof(cached.model_url) },
		{ "model_error", offsetof(struct probe, model_error), sizeof(cached.model_error) },
	};

	if (kl == 3 && memcmp(k, "end", 3) == 0) {
		p->ended = true;
		return;
	}
	if (kl == 10 && memcmp(k, "model_size", 10) == 0) {
		char num[32];

		snprintf(num, sizeof(num), "%.*s", (int)(vl < 31 ? vl : 31), v);
		p->model_size = strtoll(num, NULL, 10);
		p->have_size = true;
		return;
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (strlen(f[i].k) == kl && memcmp(f[i].k, k, kl) == 0) {
			char *dst = (char *)p + f[i].off;

			snprintf(dst, f[i].len, "%.*s", (int)vl, v);
			return;
		}
	}
}

static void
probe_line(void *arg, int stream, const char *line, size_t len)
{
	struct sink *s = arg;
	size_t pl = strlen(PROBE_PREFIX), wl = strlen(GPUHOST_WORKER_PREFIX);

	(void)stream;
	gpuhost_mutex_lock(s->mu);
	if (len > pl && memcmp(line, PROBE_PREFIX, pl) == 0) {
		const char *k = line + pl, *eq = memchr(k, '=', len - pl);

		if (eq != NULL)
			set_field(s->p, k, (size_t)(eq - k), eq + 1,
			    len - (size_t)(eq + 1 - line));
	} else if (len > wl && memcmp(line, GPUHOST_WORKER_PREFIX, wl) == 0 &&
	    strncmp(line + wl, "Python ", 7) != 0 &&
	    strncmp(line + wl, "network:", 8) != 0 && s->p->note[0] == '\0')
		snprintf(s->p->note, sizeof(s->p->note), "%.*s",
		    (int)(len - wl), line + wl);
	gpuhost_mutex_unlock(s->mu);
}

static void
run_probe(const struct gpuhost_config *cfg, struct probe *p)
{
	struct gpuhost_proc *proc = NULL;
	struct sink s = { NULL, p };
	char exe[GPUHOST_PATH_MAX];
	int64_t deadline, now;

	memset(p, 0, sizeof(*p));
	p->run = -1;
	p->model_size = -1;
	if ((s.mu = gpuhost_mutex_new()) == NULL) {
		snprintf(p->err, sizeof(p->err), "out of memory");
		return;
	}
	if (gpuhost_exe_path(exe, sizeof(exe)) != 0) {
		snprintf(p->err, sizeof(p->err), "cannot find own executable");
		goto out;
	}
	if (gpuhost_proc_spawn(exe, cfg->config_path, "--probe", probe_line, &s,
	    &proc, p->err, sizeof(p->err)) != 0)
		goto out;
	p->run = 0;
	deadline = gpuhost_now_ms() + (int64_t)(cfg->gpu_timeout * 1000);
	while (!gpuhost_proc_poll(proc, &p->ex)) {
		now = gpuhost_now_ms();
		if (p->run == 0 && now >= deadline) {
			gpuhost_proc_kill(proc);
			p->run = 1;
			deadline = now + PROBE_KILL_WAIT_MS;
		} else if (p->run == 1 && now >= deadline)
			break;
		gpuhost_sleep_ms(PROBE_POLL_MS);
	}
	/* gpuhost_proc_free joins the readers: every line is in by then. */
	gpuhost_proc_free(proc);
out:
	gpuhost_mutex_free(s.mu);
}

void
gpuhost_gpu_probe_forget(void)
{
	cached_done = false;
}

static const struct probe *
probe_for(const struct gpuhost_config *cfg)
{
	if (!cached_done || strcmp(cached_config, cfg->config_path) != 0) {
		run_probe(cfg, &cached);
		snprintf(cached_config, sizeof(cached_config), "%s",
		    cfg->config_path);
		cached_done = true;
	}
	return &cached;
}

int
gpuhost_config_mock_llm(const struct gpuhost_config *cfg)
{
	struct gpuhost_argv av = { 0 };
	struct gpuhost_optset *used;
	char expanded[4096], err[128];
	const char *env = gpuhost_config_env(cfg, "USE_MOCK_LLM");
	int mock = env != NULL && strcmp(env, "1") == 0;

	if (mock)
		return 1;
	if ((used = calloc(1, sizeof(*used))) == NULL)
		return 0;
	if (gpuhost_config_expand_args(cfg, expanded, sizeof(expanded)) == 0 &&
	    gpuhost_argv_split(&av, expanded, err, sizeof(err)) == 0) {
		gpuhost_opts_from_argv(av.argc, av.argv, used);
		mock = gpuhost_optset_has(used, "--use_mock_llm");
	}
	gpuhost_argv_free(&av);
	free(used);
	return mock;
}

/* Why the probe gave no answer, or NULL when it did. */
static const char *
probe_failure(const struct probe *p, char *buf, size_t len,
    const struct gpuhost_config *cfg)
{
	char desc[96];

	if (p->run < 0)
		snprintf(buf, len, "cannot run the probe: %s", p->err);
	else if (p->run == 1)
		snprintf(buf, len, "the probe did not finish within %g s "
		    "(checks.gpu_timeout)", cfg->gpu_timeout);
	else if (!p->ex.signaled && gpuhost_worker_setup_failure(p->ex.code))
		snprintf(buf, len, "could not start Python (see the python "
		    "check): %s", p->note[0] ? p->note : "setup failed");
	else if (!p->ended) {
		gpuhost_exit_describe(&p->ex, desc, sizeof(desc));
		snprintf(buf, len, "the probe ended with %s before answering",
		    desc);
	} else
		return NULL;
	return buf;
}

static void
nvml_json(struct tp_buf *j, const struct gpuhost_gpu_snapshot *s)
{
	char num[160];

	tp_buf_puts(j, "{\"state\":");
	tp_buf_json_str(j, s->state == GPUHOST_NVML_OK ? "ok" :
	    s->state == GPUHOST_NVML_ABSENT ? "absent" : "error");
	tp_buf_puts(j, ",\"library\":");
	tp_buf_json_str(j, s->library);
	tp_buf_puts(j, ",\"driver\":");
	tp_buf_json_str(j, s->driver[0] ? s->driver : NULL);
	tp_buf_puts(j, ",\"error\":");
	tp_buf_json_str(j, s->error[0] ? s->error : NULL);
	snprintf(num, sizeof(num), ",\"count\":%u,\"gpus\":[", s->count);
	tp_buf_puts(j, num);
	for (unsigned i = 0; i < s->n; i++) {
		const struct gpuhost_gpu_info *g = &s->gpu[i];

		tp_buf_puts(j, i ? ",{\"name\":" : "{\"name\":");
		tp_buf_json_str(j, g->name);
		snprintf(num, sizeof(num), ",\"memory_used_bytes\":%llu,"
		    "\"memory_total_bytes\":%llu,\"utilization_percent\":%d,"
		    "\"temperature_c\":%d,\"power_w\":%.3f}",
		    (unsigned long long)g->mem_used,
		    (unsigned long long)g->mem_total, g->util_percent, g->temp_c,
		    g->power_w);
		tp_buf_puts(j, num);
	}
	tp_buf_puts(j, "]}");
}

static enum gpuhost_outcome
worst(enum gpuhost_outcome a, enum gpuhost_outcome b)
{
	return a > b ? a : b;
}

void
gpuhost_check_gpu(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct gpuhost_gpu_snapshot *s = calloc(1, sizeof(*s));
	struct tp_buf j = TP_BUF_INIT;
	enum gpuhost_outcome raw = GPUHOST_PASS;
	const struct probe *p = NULL;
	const char *skipped = NULL;
	char line[256], why[400];
	bool gpu_present;

	if (s == NULL) {
		gpuhost_check_msg(c, "out of memory\n");
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_FAIL);
		return;
	}
	gpuhost_gpu_snapshot(cfg->nvml_library, s);
	gpu_present = s->state == GPUHOST_NVML_OK && s->n > 0;
	if (s->state == GPUHOST_NVML_ABSENT) {
		gpuhost_check_msg(c, "no NVIDIA driver: NVML (%s) is not "
		    "installed, so server.py can only use the CPU\n  %s\n",
		    s->library, s->error);
		raw = GPUHOST_WARN;
	} else if (s->state == GPUHOST_NVML_ERROR) {
		gpuhost_check_msg(c, "the NVIDIA driver does not answer: %s\n",
		    s->error);
		raw = GPUHOST_WARN;
	} else if (s->count == 0) {
		gpuhost_check_msg(c, "NVIDIA driver %s, but no GPU\n", s->driver);
		raw = GPUHOST_WARN;
	} else {
		gpuhost_check_msg(c, "NVIDIA driver %s, %u GPU%s\n", s->driver,
		    s->count, s->count == 1 ? "" : "s");
		for (unsigned i = 0; i < s->n; i++)
			gpuhost_check_msg(c, "  GPU %u: %s\n", i,
			    gpuhost_gpu_line(&s->gpu[i], line, sizeof(line)));
	}
	if (gpuhost_config_mock_llm(cfg)) {
		skipped = "mock LLM configured";
		gpuhost_check_msg(c, "runtime: not probed, server.py runs the "
		    "mock LLM (--use_mock_llm or USE_MOCK_LLM=1)\n");
		goto json;
	}
	p = probe_for(cfg);
	if (probe_failure(p, why, sizeof(why), cfg) != NULL) {
		gpuhost_check_msg(c, "runtime: %s\n", why);
		raw = worst(raw, GPUHOST_WARN);
	} else if (strcmp(p->llama, "absent") == 0) {
		skipped = "llama_cpp absent";
		gpuhost_check_msg(c, "runtime: llama_cpp is not installed in "
		    "the venv (skipped)\n");
	} else if (strcmp(p->llama, "present") != 0) {
		gpuhost_check_msg(c, "runtime: import llama_cpp failed: %s\n",
		    p->error);
		raw = worst(raw, GPUHOST_WARN);
	} else if (strcmp(p->offload, "true") == 0) {
		gpuhost_check_msg(c, "runtime: llama_cpp %s supports GPU "
		    "offload%s\n", p->version, gpu_present ? "" :
		    " (but the driver shows no GPU)");
	} else if (strcmp(p->offload, "false") == 0 && gpu_present) {
		gpuhost_check_msg(c, "runtime: llama_cpp %s (%s) is a CPU-only "
		    "build: token.place will run the model on the CPU "
		    "(n_gpu_layers=0), not on the GPU\n", p->version, p->module);
		gpuhost_check_msg(c, "  install llama-cpp-python's CUDA build "
		    "into the venv as token.place's README says (its CUDA "
		    "wheel, or CMAKE_ARGS=\"-DGGML_CUDA=on\" pip install "
		    "--force-reinstall --no-cache-dir llama-cpp-python==<the "
		    "version token.place pins>, which needs the CUDA toolkit "
		    "and a C++ compiler)\n");
		raw = GPUHOST_FAIL;
	} else if (strcmp(p->offload, "false") == 0) {
		gpuhost_check_msg(c, "runtime: llama_cpp %s is a CPU-only "
		    "build\n", p->version);
		raw = worst(raw, GPUHOST_WARN);
	} else {
		gpuhost_check_msg(c, "runtime: llama_cpp %s cannot say whether "
		    "it offloads to the GPU: %s\n", p->version, p->error);
		raw = worst(raw, GPUHOST_WARN);
	}
json:
	tp_buf_puts(&j, "{\"nvml\":");
	nvml_json(&j, s);
	tp_buf_puts(&j, ",\"runtime\":{\"skipped\":");
	tp_buf_json_str(&j, skipped);
	if (p != NULL) {
		tp_buf_puts(&j, ",\"probe_error\":");
		tp_buf_json_str(&j, probe_failure(p, why, sizeof(why), cfg));
		tp_buf_puts(&j, ",\"llama_cpp\":");
		tp_buf_json_str(&j, p->llama[0] ? p->llama : NULL);
		tp_buf_puts(&j, ",\"version\":");
		tp_buf_json_str(&j, p->version[0] ? p->version : NULL);
		tp_buf_puts(&j, ",\"module\":");
		tp_buf_json_str(&j, p->module[0] ? p->module : NULL);
		tp_buf_puts(&j, ",\"gpu_offload\":");
		tp_buf_puts(&j, strcmp(p->offload, "true") == 0 ? "true" :
		    strcmp(p->offload, "false") == 0 ? "false" : "null");
		tp_buf_puts(&j, ",\"error\":");
		tp_buf_json_str(&j, p->error[0] ? p->error : NULL);
	}
	tp_buf_puts(&j, "}}");
	c->details = tp_buf_finish(&j, NULL);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
	free(s);
}

/* True when path lies inside dir (both absolute, as gpuhost makes them). */
static bool
path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 0 && (dir[n - 1] == '/' || dir[n - 1] == '\\'))
		n--;
#ifdef _WIN32
	if (strncasecmp(path, dir, n) != 0)
		return false;
#else
	if (strncmp(path, dir, n) != 0)
		return false;
#endif
	return path[n] == '/' || path[n] == '\\';
}

void
gpuhost_check_model(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct tp_buf j = TP_BUF_INIT;
	enum gpuhost_outcome raw = GPUHOST_PASS;
	const struct probe *p;
	char why[400], num[64];

	tp_buf_puts(&j, "{\"data_dir\":");
	tp_buf_json_str(&j, cfg->data_path[0] ? cfg->data_path : NULL);
	if (gpuhost_config_mock_llm(cfg)) {
		gpuhost_check_msg(c, "server.py runs the mock LLM: no model "
		    "file\n");
		tp_buf_puts(&j, ",\"skipped\":\"mock LLM configured\"}");
		c->details = tp_buf_finish(&j, NULL);
		c->outcome = GPUHOST_SKIP;
		return;
	}
	p = probe_for(cfg);
	if (probe_failure(p, why, sizeof(why), cfg) != NULL) {
		gpuhost_check_msg(c, "cannot tell where the model goes: %s\n",
		    why);
		raw = GPUHOST_UNKNOWN;
		tp_buf_puts(&j, ",\"error\":");
		tp_buf_json_str(&j, why);
		goto out;
	}
	if (p->model_error[0] != '\0' || p->model_path[0] == '\0') {
		gpuhost_check_msg(c, "cannot ask token.place's ModelManager "
		    "where the model goes (%s): is this token.place's "
		    "server.py with its requirements installed?\n",
		    p->model_error[0] ? p->model_error : "no answer");
		raw = GPUHOST_UNKNOWN;
		tp_buf_puts(&j, ",\"error\":");
		tp_buf_json_str(&j, p->model_error);
		goto out;
	}
	tp_buf_puts(&j, ",\"model_path\":");
	tp_buf_json_str(&j, p->model_path);
	snprintf(num, sizeof(num), ",\"model_size\":%lld", p->model_size);
	tp_buf_puts(&j, num);
	tp_buf_puts(&j, ",\"model_url\":");
	tp_buf_json_str(&j, p->model_url[0] ? p->model_url : NULL);
	if (p->have_size && p->model_size >= 0)
		gpuhost_check_msg(c, "model %s is there (%.2f GiB)\n",
		    p->model_path, (double)p->model_size /
		    (1024.0 * 1024.0 * 1024.0));
	else {
		gpuhost_check_msg(c, "model %s is not there: the first start "
		    "downloads it%s%s (several GB; /health answers only after "
		    "that)\n", p->model_path, p->model_url[0] ? " from " : "",
		    p->model_url);
		raw = GPUHOST_WARN;
	}
	if (cfg->data_path[0] != '\0' && !path_under(p->model_path,
	    cfg->data_path)) {
		gpuhost_check_msg(c, "token.place does not keep it in data.dir "
		    "%s: this token.place ignores %s's paths.models_dir\n",
		    cfg->data_path, GPUHOST_TP_CONFIG_VAR);
		raw = GPUHOST_FAIL;
	}
	tp_buf_puts(&j, cfg->data_path[0] == '\0' ? "" :
	    path_under(p->model_path, cfg->data_path) ?
	    ",\"in_data_dir\":true" : ",\"in_data_dir\":false");
out:
	tp_buf_puts(&j, "}");
	c->details = tp_buf_finish(&j, NULL);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
}
