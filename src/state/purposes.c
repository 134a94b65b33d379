/* Per-purpose statuses (schema 2): key person key (32 bytes) + purpose
 * name; value fields 1 status, 2 changed_at, 3 origin, 4 consent_date,
 * 5 evidence_ref (personal: scrubbed by erasure), 6 event_seq, 7 and 8 the
 * first consent row's id and status, 9 each further row (repeated: its
 * status byte, then its id). */
#include <stdlib.h>
#include <string.h>

#include "state/codec.h"
#include "state/internal.h"

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > LEDGER_PURPOSE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

static size_t key_of(const uint8_t person[LEDGER_KEY_LEN], const char *name,
                     uint8_t k[LEDGER_KEY_LEN + LEDGER_PURPOSE_NAME_MAX])
{
	size_t n = strlen(name);
	memcpy(k, person, LEDGER_KEY_LEN);
	memcpy(k + LEDGER_KEY_LEN, name, n);
	return LEDGER_KEY_LEN + n;
}

/* Field 9: one more row, its status byte then its id (after field 7's). */
static int dec_row(const struct field *f, struct ledger_purpose *p)
{
	if (f->wire != W_BYTES || f->len < 2 || f->len > 1 + LEDGER_ID_MAX ||
	    f->data[0] > LEDGER_PURPOSE_OUT || memchr(f->data + 1, 0, f->len - 1) ||
	    p->nrows == 0 || p->nrows >= LEDGER_PURPOSE_ROWS_MAX)
		return -1;
	struct ledger_purpose_row *w = &p->rows[p->nrows++];
	w->status = f->data[0];
	memcpy(w->id, f->data + 1, f->len - 1);
	w->id[f->len - 1] = '\0';
	return 0;
}

static int decode(const MDB_val *k, const MDB_val *v, struct ledger_purpose *p)
{
	memset(p, 0, sizeof(*p));
	if (k->mv_size <= LEDGER_KEY_LEN || k->mv_size > LEDGER_KEY_LEN + LEDGER_PURPOSE_NAME_MAX)
		return -1;
	memcpy(p->name, (const uint8_t *)k->mv_data + LEDGER_KEY_LEN, k->mv_size - LEDGER_KEY_LEN);
	struct dec d;
	struct field f;
	if (dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	int r;
	while ((r = dec_next(&d, &f)) == 1) {
		switch (f.num) {
		case 1:
			p->status = (uint8_t)f.u;
			break;
		case 2:
			p->changed_at = f.s;
			break;
		case 3:
			p->origin = (uint8_t)f.u;
			break;
		case 4:
			p->consent_date = f.s;
			break;
		case 5:
			if (dec_str(&f, p->evidence_ref, sizeof(p->evidence_ref)))
				return -1;
			break;
		case 6:
			p->event_seq = f.u;
			break;
		case 7:
			if (dec_str(&f, p->rows[0].id, sizeof(p->rows[0].id)))
				return -1;
			if (p->nrows == 0 && p->rows[0].id[0])
				p->nrows = 1;
			break;
		case 8:
			p->rows[0].status = (uint8_t)f.u;
			break;
		case 9:
			if (dec_row(&f, p))
				return -1;
			break;
		default:
			break;
		}
	}
	if (r < 0 || p->status > LEDGER_PURPOSE_OUT || p->rows[0].status > LEDGER_PURPOSE_OUT)
		return -1;
	return p->nrows > 1 && p->rows[0].id[0] == '\0' ? -1 : 0; /* more rows, no first */
}

int ledger_purpose_get(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN], const char *name,
                       struct ledger_purpose *out, struct err *e)
{
	if (!name_ok(name))
		return err_set(e, ERR_INVALID, "purpose '%.40s' is not [a-z0-9_]{1,32}", name);
	uint8_t k[LEDGER_KEY_LEN + LEDGER_PURPOSE_NAME_MAX];
	MDB_val key = {key_of(person, name, k), k}, v;
	int rc = db_get(t, t->l->purposes, k, key.mv_size, &v, "purpose", e);
	if (rc)
		return rc;
	return decode(&key, &v, out) ? corrupt(t, "a purpose status", e) : 0;
}

int ledger_purpose_put(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                       const struct ledger_purpose *p, struct err *e)
{
	if (!name_ok(p->name))
		return err_set(e, ERR_INVALID, "purpose '%.40s' is not [a-z0-9_]{1,32}", p->name);
	uint8_t k[LEDGER_KEY_LEN + LEDGER_PURPOSE_NAME_MAX], buf[CODEC_MAX];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	enc_uint(&en, 1, p->status);
	enc_sint(&en, 2, p->changed_at);
	enc_uint(&en, 3, p->origin);
	enc_sint(&en, 4, p->consent_date);
	enc_str(&en, 5, p->evidence_ref);
	enc_uint(&en, 6, p->event_seq);
	if (p->nrows > LEDGER_PURPOSE_ROWS_MAX)
		return err_set(e, ERR_INVALID, "purpose status with %u consent rows",
		               (unsigned)p->nrows);
	if (p->nrows) {
		enc_str(&en, 7, p->rows[0].id);
		enc_uint(&en, 8, p->rows[0].status);
	}
	for (uint8_t i = 1; i < p->nrows; i++) {
		uint8_t b[1 + LEDGER_ID_MAX];
		size_t n = strnlen(p->rows[i].id, sizeof(p->rows[i].id));
		if (n == 0 || n > LEDGER_ID_MAX)
			return err_set(e, ERR_INVALID, "a consent row id of %zu bytes", n);
		b[0] = p->rows[i].status;
		memcpy(b + 1, p->rows[i].id, n);
		enc_bytes(&en, 9, b, 1 + n);
	}
	if (en.overflow)
		return err_set(e, ERR_INVALID, "purpose status too large");
	return db_put(t, t->l->purposes, k, key_of(person, p->name, k), buf, en.len, 0, "purpose",
	              e);
}

struct ledger_purpose_row *ledger_purpose_row_find(struct ledger_purpose *p, const char *id)
{
	for (uint8_t i = 0; i < p->nrows && i < LEDGER_PURPOSE_ROWS_MAX; i++)
		if (strcmp(p->rows[i].id, id) == 0)
			return &p->rows[i];
	return NULL;
}

int ledger_purpose_row_note(struct ledger_purpose *p, const char *id, uint8_t status, struct err *e)
{
	struct ledger_purpose_row *w = ledger_purpose_row_find(p, id);
	if (w == NULL) {
		size_t n = strlen(id);
		if (n == 0 || n > LEDGER_ID_MAX)
			return err_set(e, ERR_INVALID, "a consent row id of %zu bytes", n);
		if (p->nrows >= LEDGER_PURPOSE_ROWS_MAX)
			return err_set(
			    e, ERR_LIMIT,
			    "purpose %s of this person has %d ContactPointTypeConsent rows "
			    "already; row %s is not remembered",
			    p->name, LEDGER_PURPOSE_ROWS_MAX, id);
		w = &p->rows[p->nrows++];
		memcpy(w->id, id, n + 1);
	}
	w->status = status;
	return 0;
}

/* Walk the purposes table from key (len bytes; 0: from the start) while
 * the keys start with it. */
static int walk(struct ledger_txn *t, const uint8_t *prefix, size_t plen,
                int (*fn)(const uint8_t *, const struct ledger_purpose *, void *), void *ctx,
                struct err *e)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->l->purposes, &cur);
	if (rc)
		return ledger_mdb_error(t, rc, "purposes", e);
	struct ledger_purpose *p = malloc(sizeof(*p));
	if (p == NULL) {
		mdb_cursor_close(cur);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	MDB_val k = {plen, (void *)prefix}, v;
	int ret = 0;
	rc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
	while (rc == 0) {
		if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		if (decode(&k, &v, p)) {
			ret = corrupt(t, "a purpose status", e);
			break;
		}
		if ((ret = fn(k.mv_data, p, ctx)) != 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (ret == 0 && rc && rc != MDB_NOTFOUND)
		ret = ledger_mdb_error(t, rc, "purposes", e);
	free(p);
	mdb_cursor_close(cur);
	return ret;
}

struct each_ctx {
	int (*fn)(const struct ledger_purpose *, void *);
	void *ctx;
};

static int each_one(const uint8_t *person, const struct ledger_purpose *p, void *ctx)
{
	(void)person;
	struct each_ctx *x = ctx;
	return x->fn(p, x->ctx);
}

int ledger_purpose_each(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                        int (*fn)(const struct ledger_purpose *, void *), void *ctx, struct err *e)
{
	struct each_ctx x = {fn, ctx};
	return walk(t, person, LEDGER_KEY_LEN, each_one, &x, e);
}

int ledger_purpose_scan(struct ledger_txn *t,
                        int (*fn)(const uint8_t person[LEDGER_KEY_LEN],
                                  const struct ledger_purpose *, void *),
                        void *ctx, struct err *e)
{
	return walk(t, NULL, 0, fn, ctx, e);
}

/* Erasure: the statuses stay (an opt-out must), their evidence goes. */
struct scrub {
	struct ledger_txn *t;
	const uint8_t *person;
	struct ledger_purpose list[64];
	size_t n;
};

static int collect(const struct ledger_purpose *p, void *ctx)
{
	struct scrub *s = ctx;
	if (p->evidence_ref[0] && s->n < sizeof(s->list) / sizeof(s->list[0]))
		s->list[s->n++] = *p;
	return 0;
}

int ledger_purposes_scrub(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN], struct err *e)
{
	struct scrub *s = malloc(sizeof(*s));
	if (s == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	s->t = t;
	s->person = person;
	s->n = 0;
	int rc = ledger_purpose_each(t, person, collect, s, e);
	for (size_t i = 0; rc == 0 && i < s->n; i++) {
		s->list[i].evidence_ref[0] = '\0';
		rc = ledger_purpose_put(t, person, &s->list[i], e);
	}
	free(s);
	return rc;
}
