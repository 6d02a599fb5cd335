/*
 * relay_model_list: the model list of GET /api/v1/models, /v1/models and
 * .../models/<id> (docs/web.md), rendered at most once per cache period
 * per process instead of once per request.
 *
 * The list comes from a fetch function (the API v1 store's list_models
 * through the broker, at most `max` ids); the rendered body and its ids
 * are kept for `ttl_ms`. Any number of worker threads may call at once:
 * one of them rebuilds a stale list while the others wait for its result
 * (they never all ask the store), and a request is only ever answered
 * from a list whose build started at most ttl_ms before the request did
 * (with ttl_ms 0: after it did).
 */
#ifndef RELAY_MODEL_LIST_H
#define RELAY_MODEL_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/v1_store.h"

/*
 * Fills *out with at most max ids (v1_store.h's list_models; only NULL)
 * or with the id `only` alone when it is served. Called without any of
 * the list's locks held.
 */
typedef enum relay_v1_rc (*relay_model_fetch_fn)(void *arg, size_t max,
    const char *only, size_t only_len, struct relay_v1_model_list *out);

struct relay_model_list;
struct tp_counter;

/*
 * A list read through fetch(arg, ...), kept ttl_ms (>= 0), at most max
 * (>= 1) ids; every fetch counts one on `reads` (a counter without
 * labels, or NULL). Returns NULL when out of memory.
 */
struct relay_model_list *relay_model_list_new(relay_model_fetch_fn fetch,
    void *arg, int64_t ttl_ms, size_t max, struct tp_counter *reads);

/* Frees the list; no call may be running. NULL is a no-op. */
void relay_model_list_free(struct relay_model_list *ml);

/*
 * The list body ({"object":"list","data":[...]}, token.place's shape;
 * "has_more":true added only when the list was cut at max): a malloc'd
 * copy in *body (the caller frees) of *len bytes. *cut tells whether ids
 * were left out. Returns V1_OK, V1_E_NOMEM, or the fetch's failure.
 */
enum relay_v1_rc relay_model_list_body(struct relay_model_list *ml,
    char **body, size_t *len, bool *cut);

/*
 * Whether a live node serves model `id` (NUL-ended, lower-cased): from
 * the kept list when it holds the id or is complete, else from one fetch
 * of that id alone. Returns V1_OK (*found set), or a failure.
 */
enum relay_v1_rc relay_model_list_find(struct relay_model_list *ml,
    const char *id, bool *found);

/*
 * token.place's model object for `id` (an OpenAI "model" with one
 * permission entry), created = `created` (Unix seconds), rendered as
 * compact JSON: malloc'd, the caller frees. NULL when out of memory.
 */
char *relay_model_object_json(const char *id, double created);

/* Fetch calls made so far (tests). */
uint64_t relay_model_list_fetches(struct relay_model_list *ml);

#endif /* RELAY_MODEL_LIST_H */
