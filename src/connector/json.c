/* Knowing when cJSON ran out of memory. cJSON reports an allocation
 * failure only as a NULL from the call that failed, and the cJSON_Add*
 * helpers swallow it: a result missing a member would be handed out as
 * whole. Its allocator is hooked here to note a failure per thread; a use
 * case marks the start of its rendering and asks at the end. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "connector/internal.h"

static _Thread_local bool failed;

static void *json_malloc(size_t n)
{
	void *p = malloc(n);
	if (p == NULL)
		failed = true;
	return p;
}

static void install(void)
{
	cJSON_Hooks h = {json_malloc, free};
	cJSON_InitHooks(&h);
}

void json_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, install);
}

void json_mark(void)
{
	failed = false;
}

int json_result(cJSON *o, int rc, cJSON **out, struct err *e)
{
	*out = NULL;
	if (rc == 0 && (o == NULL || failed))
		rc = err_set(e, ERR_NOMEM, "out of memory");
	if (rc) {
		cJSON_Delete(o);
		return rc;
	}
	*out = o;
	return 0;
}

bool json_attach(cJSON *o, const char *name, cJSON *item)
{
	if (cJSON_AddItemToObject(o, name, item))
		return true;
	cJSON_Delete(item);
	failed = true;
	return false;
}

bool json_append(cJSON *arr, cJSON *item)
{
	if (cJSON_AddItemToArray(arr, item))
		return true;
	cJSON_Delete(item);
	failed = true;
	return false;
}

bool json_failed(void)
{
	return failed;
}

bool json_begin(void)
{
	bool was = failed;
	failed = false;
	return was;
}

bool json_end(bool was)
{
	bool now = failed;
	failed = was || now;
	return now;
}
