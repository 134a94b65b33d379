/* The integrity of the ledger's B-trees: every page of every tree read
 * from the file, as LMDB lays it out, with each bound checked before it is
 * used, so that a damaged page is reported and never followed.
 *
 * LMDB keeps no checksums; what a damaged page breaks is its structure, and
 * that is what this walk checks: each page's number, kind and free-space
 * bounds; each node inside the page; keys in order within their page and
 * within the bounds of the branch above; every leaf at the tree's depth;
 * overflow pages of their stated length; no page used twice (by two trees,
 * or by a tree and the free list); the page and record counts each tree's
 * header states; and every stored value decoding as its table's entity.
 * Pages neither in a tree nor on the free list are counted as leaked: LMDB
 * does not lose data through them, so they are reported, not damage.
 *
 * The on-disk layout is LMDB 0.9's (lmdb.h and mdb.c: MDB_page, MDB_node,
 * MDB_meta, MDB_db), on a 64-bit little-endian machine as LMDB writes it
 * (native byte order; the page numbers of branch nodes are split over the
 * node's size and flag words), as lmdb.h and mdb.c of LMDB 0.9 define it. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/internal.h"
#include "state/sha.h"

#define PAGEHDRSZ  16u
#define NODESIZE   8u
#define P_BRANCH   0x01u
#define P_LEAF     0x02u
#define P_OVERFLOW 0x04u
#define P_META     0x08u
#define P_DIRTY    0x10u /* cleared at commit; tolerated */
#define P_KEEP     0x8000u
#define F_BIGDATA  0x01u
#define F_SUBDATA  0x02u
#define F_DUPDATA  0x04u
#define P_INVALID  UINT64_MAX
#define MDB_MAGIC  0xBEEFC0DEu
#define DB_LEN     48u /* MDB_db */
#define META_DBS   24u /* offset of mm_dbs in MDB_meta */
#define META_LAST  (META_DBS + 2 * DB_LEN)
#define MAX_DEPTH  32u
#define MAX_TREES  32

struct dbinfo {
	uint16_t flags, depth;
	uint64_t branch, leaf, overflow, entries, root;
};

struct tree {
	char name[64];
	struct dbinfo db;
};

/* the largest entity a leaf decodes into */
union entity {
	struct ledger_person p;
	struct ledger_record r;
	struct ledger_change c;
	struct ledger_conflict f;
	struct ledger_push u;
	struct ledger_event v;
};

struct walk {
	const uint8_t *map;
	uint64_t npages;
	uint32_t psize;
	uint8_t *seen; /* a bit per page */
	struct ledger_tree_report *rep;
	const char *tree; /* the tree being walked */
	struct dbinfo *db;
	uint64_t branch, leaf, overflow, entries;
	int kind; /* what its leaves hold: see leaf() */
	struct tree trees[MAX_TREES];
	int ntrees;
	void *scratch; /* a decoded entity */
};

enum {
	K_MAIN,
	K_FREE,
	K_PERSONS,
	K_RECORDS,
	K_HISTORY,
	K_FEED,
	K_CONFLICTS,
	K_OUTBOX,
	K_LINKS, /* person_records */
	K_OPEN,  /* open_conflicts */
	K_OTHER
};

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

#define DAMAGED 1

static int damage(struct walk *w, uint64_t pgno, const char *fmt, ...) ERR_PRINTF(3, 4);
static int damage(struct walk *w, uint64_t pgno, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(w->rep->damage, sizeof(w->rep->damage), "tree %s, page %llu: %s", w->tree,
	         (unsigned long long)pgno, what);
	return DAMAGED;
}

static void read_db(const uint8_t *p, struct dbinfo *db)
{
	db->flags = rd16(p + 4);
	db->depth = rd16(p + 6);
	db->branch = rd64(p + 8);
	db->leaf = rd64(p + 16);
	db->overflow = rd64(p + 24);
	db->entries = rd64(p + 32);
	db->root = rd64(p + 40);
}

static int mark(struct walk *w, uint64_t pgno, const char *what)
{
	if (pgno < 2 || pgno >= w->npages)
		return damage(w, pgno, "%s page number is outside the file (%llu pages)", what,
		              (unsigned long long)w->npages);
	if (w->seen[pgno / 8] & (1u << (pgno % 8)))
		return damage(w, pgno, "%s page is used twice", what);
	w->seen[pgno / 8] |= (uint8_t)(1u << (pgno % 8));
	return 0;
}

/* The tree's order: bytewise, or native integers (MDB_INTEGERKEY: the free
 * list's transaction ids). */
static int keycmp(const struct walk *w, const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	if ((w->db->flags & MDB_INTEGERKEY) && al == 8 && bl == 8) {
		uint64_t x = rd64(a), y = rd64(b);
		return (x > y) - (x < y);
	}
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* A leaf's record, by what its tree holds. */
static int leaf(struct walk *w, uint64_t pgno, const uint8_t *k, size_t kl, const uint8_t *d,
                size_t dl, unsigned nflags)
{
	MDB_val key = {kl, (void *)k}, val = {dl, (void *)d};
	uint8_t digest[32];
	if ((nflags & F_SUBDATA) && w->kind != K_MAIN)
		return damage(w, pgno, "a tree header inside a table");
	switch (w->kind) {
	case K_MAIN:
		if (!(nflags & F_SUBDATA))
			return 0; /* not a table (optsync keeps none) */
		if (dl != DB_LEN || kl == 0 || kl >= sizeof(w->trees[0].name))
			return damage(w, pgno, "a table header of %zu bytes", dl);
		if (w->ntrees == MAX_TREES)
			return damage(w, pgno, "more than %d tables", MAX_TREES);
		memcpy(w->trees[w->ntrees].name, k, kl);
		w->trees[w->ntrees].name[kl] = '\0';
		read_db(d, &w->trees[w->ntrees].db);
		w->ntrees++;
		return 0;
	case K_FREE: {
		if (kl != 8 || dl < 8 || dl % 8)
			return damage(w, pgno, "a free-list record of %zu bytes", dl);
		uint64_t n = rd64(d);
		if (n > dl / 8 - 1)
			return damage(w, pgno, "a free-list record says %llu pages in %zu bytes",
			              (unsigned long long)n, dl);
		for (uint64_t i = 1; i <= n; i++) {
			int rc = mark(w, rd64(d + 8 * i), "a free");
			if (rc)
				return rc;
			w->rep->free_pages++;
		}
		return 0;
	}
	case K_PERSONS:
		return ent_person_decode(&val, w->scratch)
		           ? damage(w, pgno, "a person cannot be decoded")
		           : 0;
	case K_RECORDS:
		return ent_record_decode(&val, w->scratch)
		           ? damage(w, pgno, "a record cannot be decoded")
		           : 0;
	case K_FEED:
		return ent_change_decode(&key, &val, w->scratch)
		           ? damage(w, pgno, "a change cannot be decoded")
		           : 0;
	case K_CONFLICTS:
		return ent_conflict_decode(&key, &val, w->scratch)
		           ? damage(w, pgno, "a conflict cannot be decoded")
		           : 0;
	case K_OUTBOX:
		return ent_push_decode(&key, &val, w->scratch)
		           ? damage(w, pgno, "a push cannot be decoded")
		           : 0;
	case K_HISTORY:
		return hist_event_decode(&key, &val, w->scratch, digest)
		           ? damage(w, pgno, "an event cannot be decoded")
		           : 0;
	case K_LINKS:
		return !person_records_key_ok(k, kl) || dl != 0
		           ? damage(w, pgno, "a person's record link of %zu+%zu bytes", kl, dl)
		           : 0;
	case K_OPEN:
		return !open_conflicts_key_ok(k, kl) || dl != 8
		           ? damage(w, pgno, "an open conflict's entry of %zu+%zu bytes", kl, dl)
		           : 0;
	default:
		return 0;
	}
}

/* An overflow value: its first page, checked and marked; *data set. */
static int overflow(struct walk *w, uint64_t from, uint64_t ov, size_t dl, const uint8_t **data)
{
	int rc = mark(w, ov, "an overflow");
	if (rc)
		return rc;
	const uint8_t *p = w->map + ov * w->psize;
	uint64_t want = (PAGEHDRSZ - 1 + (uint64_t)dl) / w->psize + 1;
	if (rd64(p) != ov || (rd16(p + 10) & ~(P_DIRTY | P_KEEP)) != P_OVERFLOW)
		return damage(w, ov, "not the overflow page that page %llu points to",
		              (unsigned long long)from);
	if (rd32(p + 12) != want || ov + want > w->npages)
		return damage(w, ov, "an overflow of %u pages where %llu are needed", rd32(p + 12),
		              (unsigned long long)want);
	for (uint64_t i = 1; i < want; i++)
		if ((rc = mark(w, ov + i, "an overflow")))
			return rc;
	w->overflow += want;
	*data = p + PAGEHDRSZ;
	return 0;
}

/* Keys below the page are in [lo, hi) (lo NULL: no bound; hi NULL: none). */
static int page(struct walk *w, uint64_t pgno, unsigned depth, const uint8_t *lo, size_t lol,
                const uint8_t *hi, size_t hil)
{
	int rc = mark(w, pgno, "a tree");
	if (rc)
		return rc;
	const uint8_t *p = w->map + pgno * w->psize;
	unsigned flags = rd16(p + 10) & ~(P_DIRTY | P_KEEP);
	unsigned lower = rd16(p + 12), upper = rd16(p + 14);
	if (rd64(p) != pgno)
		return damage(w, pgno, "its header says page %llu", (unsigned long long)rd64(p));
	if (flags != P_BRANCH && flags != P_LEAF)
		return damage(w, pgno, "not a branch or leaf page (flags 0x%x)", rd16(p + 10));
	if (lower < PAGEHDRSZ || (lower - PAGEHDRSZ) % 2 || lower > upper || upper > w->psize)
		return damage(w, pgno, "its free space bounds %u..%u are impossible", lower, upper);
	unsigned n = (lower - PAGEHDRSZ) / 2;
	if (n == 0)
		return damage(w, pgno, "an empty page");
	bool is_leaf = flags == P_LEAF;
	if (is_leaf != (depth == w->db->depth))
		return damage(w, pgno, "a %s at depth %u of a tree %u deep",
		              is_leaf ? "leaf" : "branch", depth, w->db->depth);
	is_leaf ? w->leaf++ : w->branch++;
	const uint8_t *prev = lo;
	size_t prevl = lol;
	/* LMDB packs nodes down from the page's end: together they fill
	 * [upper, psize) exactly, each of an even size */
	uint64_t packed = 0;
	for (unsigned i = 0; i < n; i++) {
		unsigned off = rd16(p + PAGEHDRSZ + 2 * i);
		if (off < upper || off % 2 || off + NODESIZE > w->psize)
			return damage(w, pgno, "node %u at offset %u is outside the page", i, off);
		const uint8_t *node = p + off;
		unsigned nlo = rd16(node), nhi = rd16(node + 2), nflags = rd16(node + 4);
		size_t kl = rd16(node + 6);
		const uint8_t *k = node + NODESIZE;
		if (off + NODESIZE + kl > w->psize)
			return damage(w, pgno, "node %u's key runs past the page", i);
		size_t dsz = !is_leaf ? 0 : (nflags & F_BIGDATA) ? 8 : (nlo | (size_t)nhi << 16);
		packed += (NODESIZE + kl + dsz + 1) & ~(uint64_t)1;
		if (!is_leaf && i == 0) {
			k = lo; /* the first branch key stands for the bound above */
			kl = lol;
		} else if ((prev && keycmp(w, k, kl, prev, prevl) < (i == 0 ? 0 : 1)) ||
		           (hi && keycmp(w, k, kl, hi, hil) >= 0)) {
			return damage(w, pgno, "node %u's key is out of order", i);
		}
		if (!is_leaf) {
			uint64_t child = nlo | (uint64_t)nhi << 16 | (uint64_t)nflags << 32;
			const uint8_t *next = hi;
			size_t nextl = hil;
			if (i + 1 < n) {
				unsigned noff = rd16(p + PAGEHDRSZ + 2 * (i + 1));
				if (noff < upper || noff % 2 || noff + NODESIZE > w->psize ||
				    noff + NODESIZE + rd16(p + noff + 6) > w->psize)
					return damage(w, pgno, "node %u is outside the page",
					              i + 1);
				next = p + noff + NODESIZE;
				nextl = rd16(p + noff + 6);
			}
			if ((rc = page(w, child, depth + 1, k, kl, next, nextl)))
				return rc;
		} else {
			size_t dl = nlo | (size_t)nhi << 16;
			const uint8_t *d = node + NODESIZE + kl;
			if (nflags & ~(F_BIGDATA | F_SUBDATA | F_DUPDATA))
				return damage(w, pgno, "node %u has unknown flags 0x%x", i, nflags);
			if (nflags & F_DUPDATA)
				return damage(w, pgno,
				              "node %u holds duplicates, which no table has", i);
			if (nflags & F_BIGDATA) {
				if (off + NODESIZE + kl + 8 > w->psize)
					return damage(w, pgno,
					              "node %u's overflow number runs past "
					              "the page",
					              i);
				if ((rc = overflow(w, pgno, rd64(d), dl, &d)))
					return rc;
			} else if (off + NODESIZE + kl + dl > w->psize) {
				return damage(w, pgno, "node %u's value runs past the page", i);
			}
			w->entries++;
			if ((rc = leaf(w, pgno, k, kl, d, dl, nflags)))
				return rc;
		}
		prev = k;
		prevl = kl;
	}
	if (packed != w->psize - upper)
		return damage(w, pgno, "its nodes take %llu bytes of the %u the page gives them",
		              (unsigned long long)packed, w->psize - upper);
	return 0;
}

static int walk_tree(struct walk *w, const char *name, struct dbinfo *db, int kind)
{
	w->tree = name;
	w->db = db;
	w->kind = kind;
	w->branch = w->leaf = w->overflow = w->entries = 0;
	if (db->root == P_INVALID) {
		if (db->depth || db->branch || db->leaf || db->overflow || db->entries)
			return damage(w, 0, "an empty tree whose header counts pages or records");
		return 0;
	}
	if (db->depth == 0 || db->depth > MAX_DEPTH)
		return damage(w, db->root, "a tree %u deep", db->depth);
	int rc = page(w, db->root, 1, NULL, 0, NULL, 0);
	if (rc)
		return rc;
	if (w->branch != db->branch || w->leaf != db->leaf || w->overflow != db->overflow ||
	    w->entries != db->entries)
		return damage(
		    w, db->root,
		    "the header counts %llu branch, %llu leaf, %llu overflow pages and %llu "
		    "records; the tree has %llu, %llu, %llu and %llu",
		    (unsigned long long)db->branch, (unsigned long long)db->leaf,
		    (unsigned long long)db->overflow, (unsigned long long)db->entries,
		    (unsigned long long)w->branch, (unsigned long long)w->leaf,
		    (unsigned long long)w->overflow, (unsigned long long)w->entries);
	w->rep->pages += w->branch + w->leaf + w->overflow;
	w->rep->entries += w->entries;
	return 0;
}

static int kind_of(const char *name)
{
	static const struct {
		const char *name;
		int kind;
	} kinds[] = {{"persons", K_PERSONS},      {"records", K_RECORDS},
	             {"history", K_HISTORY},      {"feed", K_FEED},
	             {"conflicts", K_CONFLICTS},  {"outbox", K_OUTBOX},
	             {"person_records", K_LINKS}, {"open_conflicts", K_OPEN}};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].name, name) == 0)
			return kinds[i].kind;
	return K_OTHER;
}

/* The meta page at txnid (0: the newer of the two, as LMDB picks), or -1. */
static int pick_meta(const uint8_t *map, size_t len, uint32_t psize, uint64_t txnid)
{
	int best = -1;
	uint64_t best_id = 0;
	for (int i = 0; i < 2; i++) {
		if ((size_t)(i + 1) * psize > len)
			break;
		const uint8_t *m = map + (size_t)i * psize;
		if (rd32(m + PAGEHDRSZ) != MDB_MAGIC)
			continue;
		uint64_t id = rd64(m + PAGEHDRSZ + META_LAST + 8);
		if (txnid ? id == txnid : best < 0 || id > best_id) {
			best = i;
			best_id = id;
		}
	}
	return best;
}

/* Walk the file of fd at its snapshot txnid (0: the newest). ERR_RETRY when
 * that snapshot's meta page was overwritten meanwhile (a live ledger). */
static int walk_fd(int fd, const char *path, uint64_t txnid, struct ledger_tree_report *rep,
                   struct err *e)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return err_sys(e, ERR_LEDGER, errno, "cannot stat %s", path);
	size_t len = (size_t)st.st_size;
	if (len < 2 * 4096u)
		return err_set(e, ERR_LEDGER, "ledger %s is damaged: the file is %zu bytes", path,
		               len);
	const uint8_t *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return err_sys(e, ERR_NOMEM, errno, "cannot map %s to check it", path);
	struct walk *w = calloc(1, sizeof(*w));
	void *scratch = malloc(sizeof(union entity));
	int rc = 0;
	if (w == NULL || scratch == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory checking the ledger %s", path);
		goto out;
	}
	/* the page size is in either meta page (mm_psize: the free tree's md_pad) */
	uint32_t psize = rd32(map + PAGEHDRSZ + META_DBS);
	if (psize < 512 || psize > 65536 || (psize & (psize - 1)))
		psize = rd32(map + 4096 + PAGEHDRSZ + META_DBS);
	if (psize < 512 || psize > 65536 || (psize & (psize - 1)) || len < 2 * (size_t)psize) {
		snprintf(rep->damage, sizeof(rep->damage), "no meta page gives a page size");
		rc = DAMAGED;
		goto report;
	}
	int mi = pick_meta(map, len, psize, txnid);
	if (mi < 0) {
		if (txnid) {
			rc = ERR_RETRY;
			goto out;
		}
		snprintf(rep->damage, sizeof(rep->damage), "no valid meta page");
		rc = DAMAGED;
		goto report;
	}
	const uint8_t *m = map + (size_t)mi * psize + PAGEHDRSZ;
	struct dbinfo freedb, maindb;
	read_db(m + META_DBS, &freedb);
	read_db(m + META_DBS + DB_LEN, &maindb);
	uint64_t last = rd64(m + META_LAST);
	if (txnid && rd64(m + META_LAST + 8) != txnid) {
		rc = ERR_RETRY; /* overwritten while it was read */
		goto out;
	}
	w->map = map;
	w->psize = psize;
	w->rep = rep;
	w->scratch = scratch;
	w->tree = "meta";
	if (last < 1 || last >= len / psize) {
		rc = damage(w, (uint64_t)mi, "the last page %llu is outside the file (%zu pages)",
		            (unsigned long long)last, len / psize);
		goto report;
	}
	w->npages = last + 1;
	w->seen = calloc((size_t)(w->npages / 8 + 1), 1);
	if (w->seen == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory checking the ledger %s", path);
		goto out;
	}
	if ((rc = walk_tree(w, "main", &maindb, K_MAIN)))
		goto report;
	for (int i = 0; i < w->ntrees; i++)
		if ((rc = walk_tree(w, w->trees[i].name, &w->trees[i].db,
		                    kind_of(w->trees[i].name))))
			goto report;
	if ((rc = walk_tree(w, "free list", &freedb, K_FREE)))
		goto report;
	rep->tables = (unsigned)w->ntrees;
	uint64_t used = 0;
	for (uint64_t i = 2; i < w->npages; i++)
		used += (w->seen[i / 8] >> (i % 8)) & 1;
	rep->leaked_pages = w->npages - 2 - used;
report:
	if (rc == DAMAGED)
		rc = err_set(e, ERR_LEDGER, "ledger %s is damaged (%s); restore it from a backup",
		             path, rep->damage);
out:
	if (w)
		free(w->seen);
	free(w);
	free(scratch);
	munmap((void *)map, len);
	return rc;
}

struct live {
	struct ledger_tree_report *rep;
	int fd;
};

/* What the trees' structure cannot show: each person under the key its
 * email gives (a flipped bit in a key, or in the ledger key, makes opted-out
 * persons unfindable), and the event counter at the history's last event
 * (past it, every append would fail). */
static int check_meaning(struct ledger_txn *t, struct ledger_tree_report *rep, struct err *e)
{
	struct ledger *l = t->l;
	/* the tables by name: a ledger being backed up before its migration
	 * has not opened them yet */
	MDB_dbi persons, history, meta;
	if (mdb_dbi_open(t->txn, "persons", 0, &persons) != 0 ||
	    mdb_dbi_open(t->txn, "history", 0, &history) != 0 ||
	    mdb_dbi_open(t->txn, "meta", 0, &meta) != 0)
		return 0; /* a ledger without them has nothing to check here */
	/* the ledger key as this snapshot holds it (the open ledger's is not
	 * set yet while a ledger is backed up before its migration) */
	MDB_val kk = {3, (void *)"key"}, kv;
	int rc = mdb_get(t->txn, meta, &kk, &kv);
	if (rc == MDB_NOTFOUND || (rc == 0 && kv.mv_size != 32)) {
		snprintf(rep->damage, sizeof(rep->damage), "meta: the ledger key is %s",
		         rc ? "missing" : "not 32 bytes");
		return err_set(e, ERR_LEDGER, "ledger %s is damaged (%s); restore it from a backup",
		               l->path, rep->damage);
	}
	if (rc)
		return ledger_mdb_error(t, rc, "ledger key", e);
	struct hmac_key *hk = sha_hmac_key_new(kv.mv_data);
	struct ledger_person *p = malloc(sizeof(*p));
	MDB_cursor *c = NULL;
	if (p == NULL || hk == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory checking the ledger %s", l->path);
		goto fail;
	}
	if ((rc = mdb_cursor_open(t->txn, persons, &c))) {
		rc = ledger_mdb_error(t, rc, "persons cursor", e);
		goto fail;
	}
	MDB_val k, v;
	uint8_t want[LEDGER_KEY_LEN];
	int op = MDB_FIRST, bad = 0;
	while (!bad && (rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (ent_person_decode(&v, p) || p->email[0] == '\0')
			continue; /* the walk decoded it; an erased person has no email */
		sha_hmac(hk, p->email, strlen(p->email), want);
		if (k.mv_size != LEDGER_KEY_LEN || memcmp(k.mv_data, want, LEDGER_KEY_LEN) != 0) {
			snprintf(rep->damage, sizeof(rep->damage),
			         "tree persons: a person is not under the key its email gives (the "
			         "entry or the ledger key is damaged)");
			bad = 1;
		}
	}
	mdb_cursor_close(c);
	free(p);
	sha_hmac_key_free(hk);
	if (bad)
		return err_set(e, ERR_LEDGER, "ledger %s is damaged (%s); restore it from a backup",
		               l->path, rep->damage);
	if (rc != MDB_NOTFOUND)
		return ledger_mdb_error(t, rc, "persons cursor", e);
	uint64_t seq = 0, last = 0;
	MDB_val mk = {9, (void *)"event_seq"};
	rc = mdb_get(t->txn, meta, &mk, &v);
	if (rc == 0 && v.mv_size == 8)
		seq = be64_get(v.mv_data);
	else if (rc != MDB_NOTFOUND)
		return rc ? ledger_mdb_error(t, rc, "event counter", e)
		          : err_set(e, ERR_LEDGER,
		                    "ledger %s is damaged: the event counter is %zu bytes", l->path,
		                    v.mv_size);
	if ((rc = mdb_cursor_open(t->txn, history, &c)))
		return ledger_mdb_error(t, rc, "history cursor", e);
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == 8)
		last = be64_get(k.mv_data);
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return ledger_mdb_error(t, rc, "history cursor", e);
	if (seq != last) {
		snprintf(rep->damage, sizeof(rep->damage),
		         "meta: the event counter says %llu, the history ends at %llu",
		         (unsigned long long)seq, (unsigned long long)last);
		return err_set(e, ERR_LEDGER, "ledger %s is damaged (%s); restore it from a backup",
		               l->path, rep->damage);
	}
	return 0;
fail:
	free(p);
	sha_hmac_key_free(hk);
	return rc;
}

static int check_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct live *lv = ctx;
	/* a long read: growth waits for it without the resize lock (see
	 * ledger_copy_enter), so that suppression checks do not queue behind */
	ledger_copy_enter(t->l);
	int rc = walk_fd(lv->fd, t->l->path, mdb_txn_id(t->txn), lv->rep, e);
	if (rc == 0)
		rc = check_meaning(t, lv->rep, e);
	ledger_copy_leave(t->l);
	return rc;
}

int ledger_check_trees(struct ledger *l, struct ledger_tree_report *rep, struct err *e)
{
	struct live lv = {rep, l->data_fd};
	int rc;
	for (int tries = 0; tries < 100; tries++) {
		memset(rep, 0, sizeof(*rep));
		rc = ledger_read(l, check_txn, &lv, e);
		if (rc != ERR_RETRY)
			return rc;
	}
	return err_set(e, ERR_BUSY,
	               "ledger %s: writes went on too fast to check its trees; try again", l->path);
}

int ledger_check_file(const char *data, struct ledger_tree_report *rep, struct err *e)
{
	memset(rep, 0, sizeof(*rep));
	int fd = open(data, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, ERR_LEDGER, errno, "cannot open %s", data);
	int rc = walk_fd(fd, data, 0, rep, e);
	close(fd);
	return rc;
}

uint64_t ledger_file_used(int fd)
{
	uint8_t m[2][4096];
	if (pread(fd, m[0], sizeof(m[0]), 0) != (ssize_t)sizeof(m[0]))
		return 0;
	uint32_t psize = rd32(m[0] + PAGEHDRSZ + META_DBS);
	if (psize != 4096) /* the page size LMDB takes on this platform */
		return 0;
	if (pread(fd, m[1], sizeof(m[1]), 4096) != (ssize_t)sizeof(m[1]))
		return 0;
	int mi = pick_meta(m[0], sizeof(m), psize, 0);
	return mi < 0 ? 0 : (rd64(m[mi] + PAGEHDRSZ + META_LAST) + 1) * psize;
}
