/* The pages a pull holds for one commit, kept compactly (sync.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "connector/internal.h"
#include "connector/sync/sync.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

static int held_room(struct page_copy *pc, size_t more)
{
	if (pc->cap - pc->used >= more)
		return 0;
	size_t cap = pc->cap ? pc->cap : 1u << 16;
	while (cap - pc->used < more)
		cap *= 2;
	unsigned char *d = realloc(pc->data, cap);
	if (d == NULL)
		return -1;
	pc->data = d;
	pc->cap = cap;
	return 0;
}

static int held_put(struct page_copy *pc, const void *p, size_t n)
{
	if (held_room(pc, n))
		return -1;
	memcpy(pc->data + pc->used, p, n);
	pc->used += n;
	return 0;
}

static int held_u32(struct page_copy *pc, size_t v)
{
	uint32_t u = (uint32_t)v;
	return v > UINT32_MAX ? -1 : held_put(pc, &u, 4);
}

static int held_byte(struct page_copy *pc, unsigned v)
{
	unsigned char b = (unsigned char)v;
	return held_put(pc, &b, 1);
}

/* The index of name among m's names, added if new. */
static int name_index(struct name_map *m, size_t k, const char *name)
{
	if (k < PAGE_NAMES_MAX && m->last_ptr[k] == name)
		return m->last_idx[k];
	unsigned i = 0;
	while (i < m->nm && strcmp(m->names[i], name) != 0)
		i++;
	if (i == m->nm) {
		if (m->nm == PAGE_NAMES_MAX)
			return -1;
		m->names[m->nm++] = name;
	}
	if (k < PAGE_NAMES_MAX) {
		m->last_ptr[k] = name;
		m->last_idx[k] = (unsigned char)i;
	}
	return (int)i;
}

/* -1 when memory ran out (or a count does not fit), -2 when the page names
 * more fields than a held page keeps. */
static int page_copy_fill(struct page_copy *pc, const struct sf_record *recs, size_t n,
                          struct name_map *m)
{
	for (size_t i = 0; i < n; i++) {
		const struct sf_record *r = &recs[i];
		if (held_u32(pc, r->nvalues) || held_put(pc, r->type, strlen(r->type) + 1) ||
		    held_put(pc, r->id, strlen(r->id) + 1) || held_byte(pc, r->flaw) ||
		    (r->flaw && held_put(pc, r->flaw_field, strlen(r->flaw_field) + 1)))
			return -1;
		for (size_t k = 0; k < r->nvalues; k++) {
			const struct sf_value *v = &r->values[k];
			int ni = name_index(m, k, v->name);
			if (ni < 0)
				return -2;
			unsigned char h[2] = {(unsigned char)ni, HELD_NULL};
			size_t len = 0;
			switch (v->type) {
			case SF_BOOL:
				h[1] = v->b ? HELD_TRUE : HELD_FALSE;
				break;
			case SF_STRING:
				h[1] = HELD_STRING;
				len = strlen(v->str);
				break;
			case SF_NUMBER:
				h[1] = HELD_NUMBER;
				break;
			default:
				break;
			}
			if (held_put(pc, h, 2) ||
			    (h[1] == HELD_STRING &&
			     (held_u32(pc, len) || held_put(pc, v->str, len + 1))) ||
			    (h[1] == HELD_NUMBER && held_put(pc, &v->num, sizeof(v->num))))
				return -1;
		}
	}
	pc->names = pc->used;
	if (held_u32(pc, m->nm))
		return -1;
	for (unsigned i = 0; i < m->nm; i++)
		if (held_put(pc, m->names[i], strlen(m->names[i]) + 1))
			return -1;
	return 0;
}

/* The blocks of applied pages are kept for the next pages rather than
 * freed: given back, they would be faulted in again for every commit. */
struct page_copy *page_copy(struct pull *pl, const struct sf_record *recs, size_t n, struct err *e)
{
	struct page_copy *pc = pl->spare;
	if (pc) {
		pl->spare = pc->next;
	} else if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	pc->next = NULL;
	pc->n = n;
	pc->used = 0;
	pl->map.nm = 0;
	memset(pl->map.last_ptr, 0, sizeof(pl->map.last_ptr));
	int frc = page_copy_fill(pc, recs, n, &pl->map);
	if (frc) {
		free(pc->data);
		free(pc);
		if (frc == -2)
			err_set(e, ERR_LIMIT, "a %s query page names more than %d fields",
			        ledger_object_name(pl->object), PAGE_NAMES_MAX);
		else
			err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	return pc;
}

/* The pages held are done with: their blocks are kept for the next pages,
 * or with all freed too. */
void drop_pages(struct pull *pl, bool all)
{
	if (pl->tail) {
		pl->tail->next = pl->spare;
		pl->spare = pl->head;
	}
	pl->head = pl->tail = NULL;
	while (all && pl->spare) {
		struct page_copy *next = pl->spare->next;
		free(pl->spare->data);
		free(pl->spare);
		pl->spare = next;
	}
	if (all) {
		free(pl->vals);
		pl->vals = NULL;
		pl->vcap = 0;
	}
	pl->held = 0;
	pl->held_bytes = 0;
	pl->held_pages = 0;
}
