/*
 * relay_v1_model_index: the memory store's per-model sets. Every model id
 * a node advertises maps to the list of nodes serving it, so the model
 * list (list_models) reads one member per model instead of walking every
 * node and every node's models.
 *
 * Not thread safe: the memory store calls it under its mutex. Members are
 * opaque owners (the store's nodes); the index never looks inside them.
 */
#ifndef RELAY_V1_MODEL_INDEX_H
#define RELAY_V1_MODEL_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "core/dlist.h"
#include "core/hashtab.h"
#include "store/v1_store.h"

struct relay_v1_model_index {
	struct relay_hashtab tab;	/* id -> struct model (v1_model_index.c) */
	struct dlink all;		/* every model with a member */
	size_t count;
};

/* One owner's memberships, one per model it serves (opaque). */
struct relay_v1_model_ref;

/*
 * Is `owner` live? Called under the store's lock; must not change the
 * index (a stale owner is noted by the callback and removed afterwards).
 */
typedef bool (*relay_v1_model_live_fn)(void *owner, void *arg);

/*
 * Prepares an empty index (SipHash keys from the system's randomness, as
 * every relay table: a node cannot choose ids that collide). Returns 0, or
 * -1 when out of memory or without randomness.
 */
int relay_v1_model_index_init(struct relay_v1_model_index *ix);

/* Frees the index; every ref must have left before. */
void relay_v1_model_index_destroy(struct relay_v1_model_index *ix);

/*
 * Files `owner` under each of the `nmodels` NUL-ended ids packed in
 * `models`. Returns its memberships (give them to _leave), or NULL when
 * out of memory, in which case nothing changed. nmodels 0 gives an empty,
 * non-NULL ref.
 */
struct relay_v1_model_ref *relay_v1_model_index_join(
    struct relay_v1_model_index *ix, void *owner, const char *models,
    size_t nmodels);

/*
 * Takes the owner of `ref` out of every model it joined and frees `ref`;
 * a model left without members is forgotten. NULL is a no-op.
 */
void relay_v1_model_index_leave(struct relay_v1_model_index *ix,
    struct relay_v1_model_ref *ref);

/*
 * The model list as v1_store.h's list_models defines it, for the members
 * `live` accepts: the first `max` ids in byte order with out->more, or
 * with `only` that id alone when served. Each model costs one callback
 * while its first member is live. Returns V1_OK or V1_E_NOMEM (out then
 * empty); out is the caller's (relay_v1_model_list_free()).
 */
enum relay_v1_rc relay_v1_model_index_list(struct relay_v1_model_index *ix,
    size_t max, const char *only, size_t only_len, relay_v1_model_live_fn live,
    void *arg, struct relay_v1_model_list *out);

#endif /* RELAY_V1_MODEL_INDEX_H */
