/*
 * metrics.c -- the families of the gpuhost endpoint; see metrics.h.
 *
 * Values the supervisor owns arrive through gpuhost_metrics_publish() and
 * are copied into the tp_metrics families at render time, so a scrape
 * always shows one consistent state. GPU values come from a fresh NVML
 * sample per scrape; NVML stays open between scrapes (nvmlInit is slow on
 * real drivers) and is reopened after it failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/metrics.h"

#include "gpu.h"
#include "metrics.h"
#include "os.h"

static const char *const nvml_states[] = { "ok", "absent", "error" };

struct gpuhost_metrics {
	struct gpuhost_mutex *mu;	/* published state and NVML */
	char nvml_library[GPUHOST_PATH_MAX];
	struct gpuhost_nvml *nvml;
	struct gpuhost_gpu_snapshot snap;
	char last_driver[80];	/* its _info series goes to 0 on a change */

	/* Published by the supervisor. */
	struct gpuhost_status st;
	int64_t worker_started_ms;
	uint64_t probes_ok, probes_failed;
	/* What the counters already hold (they only move forward). */
	uint64_t seen_restarts, seen_ok, seen_failed;

	struct tp_metrics_registry *reg;
	struct tp_gauge *state, *health, *uptime, *nvml_state, *gpus;
	struct tp_gauge *driver, *util, *mem_used, *mem_total, *temp, *power;
	struct tp_counter *restarts, *probes, *refused, *scrapes;
};

struct gpuhost_metrics *
gpuhost_metrics_new(const struct gpuhost_config *cfg)
{
	static const char *const l_state[] = { "state" };
	static const char *const l_result[] = { "result" };
	static const char *const l_reason[] = { "reason" };
	static const char *const l_gpu[] = { "gpu", "name" };
	static const char *const l_driver[] = { "driver" };
	struct gpuhost_metrics *m = calloc(1, sizeof(*m));
	struct tp_metrics_registry *r;

	if (m == NULL)
		return NULL;
	snprintf(m->nvml_library, sizeof(m->nvml_library), "%s",
	    cfg->nvml_library);
	m->mu = gpuhost_mutex_new();
	m->reg = r = tp_metrics_registry_new();
	if (m->mu == NULL || r == NULL)
		goto fail;
	m->state = tp_gauge_new(r, "tokenplace_gpuhost_state",
	    "Supervisor state: 1 for the current one.", 1, l_state);
	m->health = tp_gauge_new(r, "tokenplace_gpuhost_health",
	    "server.py health as the /health probe sees it: 1 for the current "
	    "one.", 1, l_state);
	m->restarts = tp_counter_new(r, "tokenplace_gpuhost_restarts_total",
	    "Worker restarts after an unexpected exit.", 0, NULL);
	m->probes = tp_counter_new(r, "tokenplace_gpuhost_health_probes_total",
	    "Health probes of server.py by result.", 1, l_result);
	m->uptime = tp_gauge_new(r, "tokenplace_gpuhost_server_uptime_seconds",
	    "Seconds since the running worker (server.py) started; 0 when "
	    "none runs.", 0, NULL);
	m->nvml_state = tp_gauge_new(r, "tokenplace_gpuhost_nvml",
	    "NVML (the NVIDIA driver) at the last scrape: 1 for ok, absent "
	    "(no driver) or error.", 1, l_state);
	m->gpus = tp_gauge_new(r, "tokenplace_gpuhost_gpus",
	    "GPUs the driver reports.", 0, NULL);
	m->driver = tp_gauge_new(r, "tokenplace_gpuhost_gpu_driver_info",
	    "NVIDIA driver version (value 1).", 1, l_driver);
	m->util = tp_gauge_new(r, "tokenplace_gpuhost_gpu_utilization_ratio",
	    "GPU utilisation over NVML's last sample period, 0-1.", 2, l_gpu);
	m->mem_used = tp_gauge_new(r, "tokenplace_gpuhost_gpu_memory_used_bytes",
	    "GPU memory in use.", 2, l_gpu);
	m->mem_total = tp_gauge_new(r,
	    "tokenplace_gpuhost_gpu_memory_total_bytes", "GPU memory in all.",
	    2, l_gpu);
	m->temp = tp_gauge_new(r, "tokenplace_gpuhost_gpu_temperature_celsius",
	    "GPU core temperature.", 2, l_gpu);
	m->power = tp_gauge_new(r, "tokenplace_gpuhost_gpu_power_watts",
	    "GPU board power draw.", 2, l_gpu);
	m->scrapes = tp_counter_new(r, "tokenplace_gpuhost_metrics_scrapes_total",
	    "Requests for /metrics answered.", 0, NULL);
	m->refused = tp_counter_new(r,
	    "tokenplace_gpuhost_metrics_refused_total",
	    "Requests to the metrics endpoint refused, by reason.", 1,
	    l_reason);
	if (m->state == NULL || m->health == NULL || m->restarts == NULL ||
	    m->probes == NULL || m->uptime == NULL || m->nvml_state == NULL ||
	    m->gpus == NULL || m->driver == NULL || m->util == NULL ||
	    m->mem_used == NULL || m->mem_total == NULL || m->temp == NULL ||
	    m->power == NULL || m->scrapes == NULL || m->refused == NULL ||
	    tp_metrics_register_process(r) != 0)
		goto fail;
	/* Every label value that exists shows from the first scrape. */
	tp_counter_add(m->probes, (const char *const[]){ "ok" }, 0);
	tp_counter_add(m->probes, (const char *const[]){ "failed" }, 0);
	snprintf(m->st.state, sizeof(m->st.state), "%s",
	    gpuhost_state_name(GPUHOST_STATE_STARTING));
	snprintf(m->st.health, sizeof(m->st.health), "%s",
	    gpuhost_health_name(GPUHOST_HEALTH_STARTING));
	return m;
fail:
	gpuhost_metrics_free(m);
	return NULL;
}

void
gpuhost_metrics_publish(struct gpuhost_metrics *m,
    const struct gpuhost_status *st, int64_t worker_started_ms,
    uint64_t probes_ok, uint64_t probes_failed)
{
	if (m == NULL)
		return;
	gpuhost_mutex_lock(m->mu);
	m->st = *st;
	m->worker_started_ms = worker_started_ms;
	m->probes_ok = probes_ok;
	m->probes_failed = probes_failed;
	gpuhost_mutex_unlock(m->mu);
}

void
gpuhost_metrics_refused(struct gpuhost_metrics *m, const char *reason)
{
	tp_counter_inc(m->refused, (const char *const[]){ reason });
}

/* One-hot gauge over a closed set of values; others count as none. */
static void
one_hot(struct tp_gauge *g, const char *const *names, size_t n,
    const char *current)
{
	for (size_t i = 0; i < n; i++)
		tp_gauge_set(g, (const char *const[]){ names[i] },
		    strcmp(names[i], current) == 0 ? 1 : 0);
}

static void
sample_gpus(struct gpuhost_metrics *m)
{
	struct gpuhost_gpu_snapshot *s = &m->snap;
	char err[300], idx[16];

	if (m->nvml == NULL) {
		enum gpuhost_nvml_state st = gpuhost_nvml_open(m->nvml_library,
		    &m->nvml, err, sizeof(err));

		if (st != GPUHOST_NVML_OK) {
			memset(s, 0, sizeof(*s));
			s->state = st;
		}
	}
	if (m->nvml != NULL) {
		gpuhost_nvml_sample(m->nvml, s);
		if (s->state != GPUHOST_NVML_OK) {
			/* Reopen next time: the driver may have been updated. */
			gpuhost_nvml_close(m->nvml);
			m->nvml = NULL;
		}
	}
	one_hot(m->nvml_state, nvml_states, 3, nvml_states[s->state]);
	tp_gauge_set(m->gpus, NULL, s->state == GPUHOST_NVML_OK ? s->count : 0);
	if (s->driver[0] != '\0') {
		if (m->last_driver[0] != '\0' &&
		    strcmp(m->last_driver, s->driver) != 0)
			tp_gauge_set(m->driver,
			    (const char *const[]){ m->last_driver }, 0);
		tp_gauge_set(m->driver, (const char *const[]){ s->driver }, 1);
		snprintf(m->last_driver, sizeof(m->last_driver), "%s",
		    s->driver);
	}
	for (unsigned i = 0; i < s->n; i++) {
		const struct gpuhost_gpu_info *g = &s->gpu[i];
		const char *const l[] = { idx, g->name };

		snprintf(idx, sizeof(idx), "%u", i);
		tp_gauge_set(m->mem_used, l, (double)g->mem_used);
		tp_gauge_set(m->mem_total, l, (double)g->mem_total);
		if (g->util_percent >= 0)
			tp_gauge_set(m->util, l, g->util_percent / 100.0);
		if (g->temp_c >= 0)
			tp_gauge_set(m->temp, l, g->temp_c);
		if (g->power_w >= 0)
			tp_gauge_set(m->power, l, g->power_w);
	}
}

char *
gpuhost_metrics_render(struct gpuhost_metrics *m, size_t *len)
{
	char *out;

	gpuhost_mutex_lock(m->mu);
	one_hot(m->state, gpuhost_state_names, GPUHOST_STATE_COUNT,
	    m->st.state);
	one_hot(m->health, gpuhost_health_names, GPUHOST_HEALTH_COUNT,
	    m->st.health);
	if (m->st.restarts > m->seen_restarts) {
		tp_counter_add(m->restarts, NULL,
		    (double)(m->st.restarts - m->seen_restarts));
		m->seen_restarts = m->st.restarts;
	}
	if (m->probes_ok > m->seen_ok) {
		tp_counter_add(m->probes, (const char *const[]){ "ok" },
		    (double)(m->probes_ok - m->seen_ok));
		m->seen_ok = m->probes_ok;
	}
	if (m->probes_failed > m->seen_failed) {
		tp_counter_add(m->probes, (const char *const[]){ "failed" },
		    (double)(m->probes_failed - m->seen_failed));
		m->seen_failed = m->probes_failed;
	}
	tp_gauge_set(m->uptime, NULL, m->worker_started_ms > 0 ?
	    (double)(gpuhost_now_ms() - m->worker_started_ms) / 1000.0 : 0);
	sample_gpus(m);
	tp_counter_inc(m->scrapes, NULL);
	out = tp_metrics_render(m->reg, len);
	gpuhost_mutex_unlock(m->mu);
	return out;
}

void
gpuhost_metrics_free(struct gpuhost_metrics *m)
{
	if (m == NULL)
		return;
	gpuhost_nvml_close(m->nvml);
	tp_metrics_registry_free(m->reg);
	gpuhost_mutex_free(m->mu);
	free(m);
}
