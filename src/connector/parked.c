/* Pulled records that could not be applied (rule 8): parked in the
 * ledger's named values, one per record, until a version of the record
 * applies. A parked record is named in status and /metrics; the pull that
 * reads it again unchanged leaves it parked, one that reads a new version
 * (its SystemModstamp moved) tries it again.
 *
 * Name "parked.<object>.<id>"; value "1 MODSTAMP PARKED_AT REASON\nERROR"
 * (the error names the field, never its value: a parked record belongs to
 * no person, so no erasure would reach a value kept here). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "connector/internal.h"

#define PARKED_PREFIX    "parked."
#define PARKED_VALUE_MAX (80 + LEDGER_ERROR_MAX)

const char *conn_park_reason_name(int reason)
{
	static const char *const names[CONN_PARK_REASONS] = {
	    NULL,    "nul",    "invalid_utf8", "too_long", "invalid_email", "unknown_picklist",
	    "limit", "invalid"};
	return reason > 0 && reason < CONN_PARK_REASONS ? names[reason] : "other";
}

static int parked_name(char out[64], int object, const char *id, struct err *e)
{
	int n = snprintf(out, 64, PARKED_PREFIX "%d.%s", object, id);
	if (n < 0 || n >= 64)
		return err_set(e, ERR_INTERNAL, "parked record name too long: %s", id);
	return 0;
}

int parked_put(struct ledger_txn *t, const struct parked_record *p, struct err *e)
{
	char name[64], v[PARKED_VALUE_MAX + 1];
	int rc = parked_name(name, p->object, p->id, e);
	if (rc)
		return rc;
	int n = snprintf(v, sizeof(v), "1 %" PRId64 " %" PRId64 " %d\n%s", p->modstamp,
	                 p->parked_at, (int)p->reason, p->error);
	if (n < 0 || (size_t)n >= sizeof(v))
		return err_set(e, ERR_INTERNAL, "parked record %s: value too long", p->id);
	return ledger_meta_put(t, name, v, (size_t)n, e);
}

int parked_delete(struct ledger_txn *t, int object, const char *id, struct err *e)
{
	char name[64];
	int rc = parked_name(name, object, id, e);
	if (rc == 0 && (rc = ledger_meta_delete(t, name, e)) == ERR_NOTFOUND)
		rc = 0;
	return rc;
}

struct parked_walk {
	int (*fn)(const struct parked_record *, void *);
	void *ctx;
	struct parked_record rec;
	bool bad; /* a value that is not one of ours */
};

static int parked_one(const char *name, const void *data, size_t len, void *ctx)
{
	struct parked_walk *w = ctx;
	struct parked_record *p = &w->rec;
	char v[PARKED_VALUE_MAX + 1];
	int object, reason, used = 0;
	const char *id = strchr(name + sizeof(PARKED_PREFIX) - 1, '.');
	if (len > PARKED_VALUE_MAX || id == NULL || strlen(id + 1) > LEDGER_ID_MAX ||
	    sscanf(name + sizeof(PARKED_PREFIX) - 1, "%d.", &object) != 1) {
		w->bad = true;
		return 1;
	}
	memcpy(v, data, len);
	v[len] = '\0';
	if (sscanf(v, "1 %" SCNd64 " %" SCNd64 " %d\n%n", &p->modstamp, &p->parked_at, &reason,
	           &used) != 3 ||
	    used == 0) {
		w->bad = true;
		return 1;
	}
	p->object = (uint8_t)object;
	p->reason = (uint8_t)reason;
	str_copy(p->id, sizeof(p->id), id + 1);
	str_copy(p->error, sizeof(p->error), v + used);
	return w->fn(p, w->ctx);
}

int parked_each(struct ledger_txn *t, int object, int (*fn)(const struct parked_record *, void *),
                void *ctx, struct err *e)
{
	char prefix[32];
	if (object)
		snprintf(prefix, sizeof(prefix), PARKED_PREFIX "%d.", object);
	else
		snprintf(prefix, sizeof(prefix), PARKED_PREFIX);
	struct parked_walk w = {fn, ctx, {0}, false};
	int rc = ledger_meta_each(t, prefix, parked_one, &w, e);
	if (w.bad)
		return err_set(e, ERR_LEDGER, "the ledger's parked records are corrupt");
	return rc;
}
