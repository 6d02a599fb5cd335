/*
 * state_upgrade: `tokenplace-relay --state-upgrade`, the last step of a
 * rolling upgrade onto a shared state whose stored schema version is older
 * than this relay's (docs/store-redis.md, "Start-up and compatibility").
 *
 * While the store says version 1, this relay keeps its layout, so that
 * replicas of the previous release beside it keep working; once no such
 * replica is left the operator runs this once, and every replica of this
 * release switches to layout 2 at the same instant (each script reads the
 * version). The step is atomic (one script): it moves the API v1 model
 * sets to their layout-2 names and writes version 2. The legacy layout's
 * leftovers need no move (layout 2 still reads them until they expire).
 */
#ifndef RELAY_STATE_UPGRADE_H
#define RELAY_STATE_UPGRADE_H

#include <stddef.h>

struct relay_settings;

/*
 * Upgrades the store named by s's RELAY_STATE_* settings. Returns 0 when
 * the store is at version 2 afterwards (msg tells whether this call wrote
 * it and how many model sets it moved), 2 when the settings name no Redis
 * store, or the store is unreachable, refuses, or holds a version this
 * relay does not know (msg says which; never the password).
 */
int relay_state_upgrade(const struct relay_settings *s, char *msg,
    size_t msglen);

#endif /* RELAY_STATE_UPGRADE_H */
