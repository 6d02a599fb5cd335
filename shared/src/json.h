/*
 * json.h -- cJSON helpers shared by the protocol parsers (internal to
 * libtokenplace).
 */
#ifndef TP_JSON_H
#define TP_JSON_H

#include <string.h>

#include <cjson/cJSON.h>

/*
 * The member `name` of object obj, or NULL. Request bodies never hold
 * duplicate members (tp_json_read() refuses them); for a tree built some
 * other way the last one wins, as in a Python dict.
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
