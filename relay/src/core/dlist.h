/*
 * Intrusive doubly linked lists with a sentinel head, and container_of():
 * the expiry and LRU lists of the in-memory stores.
 */
#ifndef RELAY_DLIST_H
#define RELAY_DLIST_H

#include <stdbool.h>
#include <stddef.h>

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))
#define const_container_of(p, type, member) \
	((const type *)(const void *)((const char *)(p) - offsetof(type, member)))

struct dlink {
	struct dlink *prev, *next;
};

/* An empty list, or an element linked to nothing. */
static inline void
dl_init(struct dlink *l)
{
	l->prev = l->next = l;
}

static inline bool
dl_empty(const struct dlink *l)
{
	return l->next == l;
}

/* Takes e out of its list; e is then linked to nothing (safe to repeat). */
static inline void
dl_unlink(struct dlink *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}

static inline void
dl_push_tail(struct dlink *head, struct dlink *e)
{
	e->prev = head->prev;
	e->next = head;
	head->prev->next = e;
	head->prev = e;
}

#endif /* RELAY_DLIST_H */
