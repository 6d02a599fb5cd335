/*
 * json.h -- cJSON helpers shared by the protocol parsers (internal to
 * libtokenplace).
 */
#ifndef TP_JSON_H
#define TP_JSON_H

#include <string.h>

#include <cjson/cJSON.h>

/*
 * The member `name` of object obj, or NULL. Python dicts keep the last of
 * duplicate keys and the token.place peers are Python, so the last one
 * wins here too (cJSON's own lookup returns the first).
 */
static inline const cJSON *
tp_json_member(const cJSON *obj, const char *name)
{
	const cJSON *c, *found = NULL;

	for (c = obj->child; c != NULL; c = c->next)
		if (c->string != NULL && strcmp(c->string, name) == 0)
			found = c;
	return found;
}

#endif /* TP_JSON_H */
