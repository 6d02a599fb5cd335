/*
 * metrics.h -- the optional Prometheus endpoint of the GPU box
 * ([metrics] listen, off by default).
 *
 * The supervisor publishes its state here (service state, restarts,
 * health probe results, when the worker started); every scrape adds a
 * fresh NVML sample (utilisation, memory, temperature, power per GPU) and
 * renders text format 0.0.4 with libtokenplace's tp_metrics. The HTTP
 * side (metrics_http.c) is a small blocking socket server on one thread,
 * POSIX and Winsock, serving GET /metrics only.
 */
#ifndef GPUHOST_METRICS_H
#define GPUHOST_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"

struct gpuhost_metrics;

/*
 * The metrics (families registered, NVML opened when present) without a
 * listener. Returns NULL when out of memory. Free with
 * gpuhost_metrics_free().
 */
struct gpuhost_metrics *gpuhost_metrics_new(const struct gpuhost_config *cfg);

/*
 * Publishes the supervisor's view: st (state, health, restarts), the
 * worker's start (gpuhost_now_ms(), 0 when no worker runs) and the probe
 * counts so far. Any thread; cheap (a copy under a mutex).
 */
void gpuhost_metrics_publish(struct gpuhost_metrics *m,
    const struct gpuhost_status *st, int64_t worker_started_ms,
    uint64_t probes_ok, uint64_t probes_failed);

/*
 * Samples NVML and renders everything (text format 0.0.4). Returns a
 * malloc'd string (length in *len) or NULL when out of memory.
 */
char *gpuhost_metrics_render(struct gpuhost_metrics *m, size_t *len);

/* Counts a refused HTTP request by reason (metrics_http.c). */
void gpuhost_metrics_refused(struct gpuhost_metrics *m, const char *reason);

void gpuhost_metrics_free(struct gpuhost_metrics *m);

/*
 * Binds cfg->metrics_listen (an IP address and port; no name lookup) and
 * serves m on a thread of its own until gpuhost_metrics_server_stop(),
 * with the limits metrics.max_request, metrics.read_timeout and
 * metrics.write_timeout.
 * Returns 0 with *out, or -1 with err (the port taken, a bad address).
 */
struct gpuhost_metrics_server;
int gpuhost_metrics_server_start(const struct gpuhost_config *cfg,
    struct gpuhost_metrics *m, struct gpuhost_metrics_server **out,
    char *err, size_t errlen);

/* The address actually bound, "127.0.0.1:9108". */
const char *gpuhost_metrics_server_addr(const struct gpuhost_metrics_server *s);

/* Stops the thread, closes the socket, frees s. NULL is ignored. */
void gpuhost_metrics_server_stop(struct gpuhost_metrics_server *s);

#endif
