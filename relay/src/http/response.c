/*
 * response.c -- building responses: JSON bodies, the error shapes, extra
 * headers. No I/O: the adapter sends what these functions prepare.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "tokenplace/proto.h"

static const char internal_error_body[] =
    "{\"error\":{\"code\":500,\"message\":\"Internal server error\"}}";

void
relay_response_set_body(struct relay_response *resp, int status,
    const char *content_type, char *body, size_t len)
{
	free(resp->body);
	resp->status = status;
	resp->content_type = content_type;
	resp->body = body;
	resp->body_shared = NULL;
	resp->body_len = len;
}

void
relay_response_shared_body(struct relay_response *resp, int status,
    const char *content_type, const char *body, size_t len)
{
	free(resp->body);
	resp->body = NULL;
	resp->status = status;
	resp->content_type = content_type;
	resp->body_shared = body;
	resp->body_len = len;
}

static void
set_internal_error(struct relay_response *resp)
{
	char *copy = strdup(internal_error_body);

	relay_response_set_body(resp, 500, NULL, copy, copy ? strlen(copy) : 0);
	resp->error_kind = "internal";
}

int
relay_response_add_header(struct relay_response *resp, const char *name,
    const char *value)
{
	size_t room = sizeof(resp->headers) - resp->headers_len;
	int n;

	if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
		return -1;
	n = snprintf(resp->headers + resp->headers_len, room, "%s: %s\r\n",
	    name, value);
	if (n < 0 || (size_t)n >= room) {
		resp->headers[resp->headers_len] = '\0';
		return -1;
	}
	resp->headers_len += (size_t)n;
	return 0;
}

void
relay_response_json(struct relay_response *resp, int status, cJSON *body)
{
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;

	cJSON_Delete(body);
	if (text == NULL) {
		set_internal_error(resp);
		return;
	}
	relay_response_set_body(resp, status, NULL, text, strlen(text));
}

void
relay_response_raw_json(struct relay_response *resp, int status,
    const char *json)
{
	char *copy = strdup(json);

	if (copy == NULL) {
		set_internal_error(resp);
		return;
	}
	relay_response_set_body(resp, status, NULL, copy, strlen(copy));
}

void
relay_response_error(struct relay_response *resp, int status, int code,
    const char *message)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");

	if (err == NULL || cJSON_AddNumberToObject(err, "code", code) == NULL ||
	    cJSON_AddStringToObject(err, "message", message) == NULL) {
		cJSON_Delete(root);
		set_internal_error(resp);
		return;
	}
	relay_response_json(resp, status, root);
}

void
relay_response_error_string(struct relay_response *resp, int status,
    const char *message)
{
	cJSON *root = cJSON_CreateObject();

	if (cJSON_AddStringToObject(root, "error", message) == NULL) {
		cJSON_Delete(root);
		set_internal_error(resp);
		return;
	}
	relay_response_json(resp, status, root);
}

void
relay_response_error_code(struct relay_response *resp, int status,
    const char *code, const char *message)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");

	if (err == NULL || cJSON_AddStringToObject(err, "code", code) == NULL ||
	    cJSON_AddStringToObject(err, "message", message) == NULL) {
		cJSON_Delete(root);
		set_internal_error(resp);
		return;
	}
	relay_response_json(resp, status, root);
}

static const char *
openai_type(int status)
{
	if (status == 401 || status == 403)
		return "authentication_error";
	if (status == 429)
		return "rate_limit_error";
	if (status >= 500)
		return status == 503 ? "service_unavailable_error" : "api_error";
	return "invalid_request_error";
}

void
relay_response_error_shaped(struct relay_response *resp,
    enum relay_error_shape shape, int status, const char *code,
    const char *message)
{
	cJSON *root, *err;

	switch (shape) {
	case RELAY_ERR_STRING:
		relay_response_error_string(resp, status, message);
		return;
	case RELAY_ERR_OPENAI:
		root = cJSON_CreateObject();
		err = cJSON_AddObjectToObject(root, "error");
		if (err == NULL ||
		    cJSON_AddStringToObject(err, "message", message) == NULL ||
		    cJSON_AddStringToObject(err, "type", openai_type(status)) == NULL ||
		    (code != NULL && cJSON_AddStringToObject(err, "code", code) == NULL)) {
			cJSON_Delete(root);
			set_internal_error(resp);
			return;
		}
		relay_response_json(resp, status, root);
		return;
	case RELAY_ERR_OBJECT:
	case RELAY_ERR_V1:
	default:
		relay_response_error(resp, status, status, message);
		return;
	}
}

void
relay_response_body_refusal(struct relay_response *resp,
    enum relay_error_shape shape, int status, const char *code,
    const char *message)
{
	size_t len = 0;
	char *body;

	switch (shape) {
	case RELAY_ERR_V1:
		relay_response_error_code(resp, status, code, message);
		return;
	case RELAY_ERR_OBJECT:
	case RELAY_ERR_STRING:
		/* Legacy routes: the bytes their own errors have (jsonify). */
		body = tp_error_reply(shape == RELAY_ERR_STRING ? TP_ERR_STRING :
		    TP_ERR_OBJECT, status, message, &len);
		if (body == NULL) {
			set_internal_error(resp);
			return;
		}
		relay_response_set_body(resp, status, NULL, body, len);
		return;
	case RELAY_ERR_OPENAI:
	default:
		relay_response_error_shaped(resp, shape, status, code, message);
		return;
	}
}
