/* The sync's health, kept in the ledger so that every process sees it:
 * `optsync status`, /metrics and /v1/status of whichever process asks. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "connector/internal.h"

#define HEALTH_MAX (64 + sizeof(((struct conn_health *)0)->last_error))

/* meta "health": "1 LAST_SUCCESS FAILURES LAST_ERROR_AT\nLAST_ERROR" */
int health_get(struct ledger_txn *t, struct conn_health *h, struct err *e)
{
	memset(h, 0, sizeof(*h));
	char buf[HEALTH_MAX + 1];
	size_t n;
	int rc = ledger_meta_get(t, META_HEALTH, buf, sizeof(buf) - 1, &n, e);
	if (rc == ERR_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	buf[n] = '\0';
	int64_t ok, err_at;
	uint64_t fails;
	int used = 0;
	if (sscanf(buf, "1 %" SCNd64 " %" SCNu64 " %" SCNd64 "\n%n", &ok, &fails, &err_at, &used) !=
	        3 ||
	    used == 0)
		return err_set(e, ERR_LEDGER, "the ledger's health record is corrupt");
	h->last_success_at = ok;
	h->failures_in_a_row = fails;
	h->last_error_at = err_at;
	snprintf(h->last_error, sizeof(h->last_error), "%s", buf + used);
	return 0;
}

int health_put(struct ledger_txn *t, const struct conn_health *h, struct err *e)
{
	char buf[HEALTH_MAX + 1];
	int n = snprintf(buf, sizeof(buf), "1 %" PRId64 " %" PRIu64 " %" PRId64 "\n%s",
	                 h->last_success_at, h->failures_in_a_row, h->last_error_at, h->last_error);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return err_set(e, ERR_INTERNAL, "health record too long");
	return ledger_meta_put(t, META_HEALTH, buf, (size_t)n, e);
}
