/* Opening the ledger, transactions, map growth, the sync lock and the
 * HMAC person key. */
#define _GNU_SOURCE /* fallocate(2): posix_fallocate's fallback writes into the file */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "state/internal.h"
#include "state/sha.h"
#include "util/log.h"
#include "util/timefmt.h"

#define MAX_DBS 16

/* ---- helpers shared by the ledger's files ---- */

void be64_put(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint64_t be64_get(const uint8_t in[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | in[i];
	return v;
}

size_t recref_key(uint8_t out[1 + LEDGER_ID_MAX], int object, const char *id)
{
	size_t n = strnlen(id, LEDGER_ID_MAX);
	out[0] = (uint8_t)object;
	memcpy(out + 1, id, n);
	return n + 1;
}

int ledger_mdb_error(struct ledger_txn *t, int rc, const char *what, struct err *e)
{
	if (rc == MDB_NOTFOUND && e == NULL)
		return ERR_NOTFOUND;
	if (rc == MDB_NOTFOUND) {
		/* the common answer of a lookup (a pull asks it of every new
		 * record): said without the formatter */
		size_t n = strnlen(what, sizeof(e->msg) - 12);
		memcpy(e->msg, what, n);
		memcpy(e->msg + n, ": not found", 12);
		e->code = ERR_NOTFOUND;
		return ERR_NOTFOUND;
	}
	if (rc == MDB_MAP_FULL && t)
		t->map_full = 1;
	const char *path = t ? t->l->path : "ledger";
	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID)
		return err_set(e, ERR_LEDGER,
		               "ledger %s is corrupt (%s: %s); restore it from a backup", path,
		               what, mdb_strerror(rc));
	return err_set(e, ERR_LEDGER, "ledger %s: %s: %s", path, what, mdb_strerror(rc));
}

int corrupt(struct ledger_txn *t, const char *what, struct err *e)
{
	return err_set(e, ERR_LEDGER, "ledger %s is corrupt: cannot decode %s", t->l->path, what);
}

int db_get(struct ledger_txn *t, MDB_dbi dbi, const void *key, size_t klen, MDB_val *out,
           const char *what, struct err *e)
{
	MDB_val k = {klen, (void *)key};
	int rc = mdb_get(t->txn, dbi, &k, out);
	return rc ? ledger_mdb_error(t, rc, what, e) : 0;
}

int db_put(struct ledger_txn *t, MDB_dbi dbi, const void *key, size_t klen, const void *data,
           size_t len, unsigned flags, const char *what, struct err *e)
{
	MDB_val k = {klen, (void *)key}, v = {len, (void *)data};
	int rc = mdb_put(t->txn, dbi, &k, &v, flags);
	return rc ? ledger_mdb_error(t, rc, what, e) : 0;
}

static int txn_cursor(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, struct err *e)
{
	int rc = *cur ? 0 : mdb_cursor_open(t->txn, dbi, cur);
	if (rc)
		*cur = NULL;
	return rc ? ledger_mdb_error(t, rc, "open a cursor", e) : 0;
}

/* Whether cur stands on key (its value in *v, when v is given). */
static bool on_key(MDB_cursor *cur, const void *key, size_t klen, MDB_val *v)
{
	MDB_val k, d;
	return mdb_cursor_get(cur, &k, v ? v : &d, MDB_GET_CURRENT) == 0 && k.mv_size == klen &&
	       memcmp(k.mv_data, key, klen) == 0;
}

int db_txn_cursor(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, struct err *e)
{
	return t->cache ? txn_cursor(t, cur, dbi, e) : 0;
}

int db_cursor_get(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, const void *key, size_t klen,
                  MDB_val *out, const char *what, struct err *e)
{
	if (!t->cache)
		return db_get(t, dbi, key, klen, out, what, e);
	int rc = txn_cursor(t, cur, dbi, e);
	if (rc)
		return rc;
	/* on the key already (a get, then a put or a delete): no search */
	MDB_val k;
	if (on_key(*cur, key, klen, out))
		return 0;
	/* MDB_SET_RANGE leaves the cursor on the leaf even when the key is
	 * missing (MDB_SET does not); the trees compare keys bytewise */
	k = (MDB_val){klen, (void *)key};
	rc = mdb_cursor_get(*cur, &k, out, MDB_SET_RANGE);
	if (rc == 0 && (k.mv_size != klen || memcmp(k.mv_data, key, klen) != 0))
		rc = MDB_NOTFOUND;
	return rc ? ledger_mdb_error(t, rc, what, e) : 0;
}

int db_cursor_put(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, const void *key, size_t klen,
                  const void *data, size_t len, const char *what, struct err *e)
{
	if (!t->cache)
		return db_put(t, dbi, key, klen, data, len, 0, what, e);
	int rc = txn_cursor(t, cur, dbi, e);
	if (rc)
		return rc;
	MDB_val k = {klen, (void *)key}, v = {len, (void *)data};
	/* a put after the get of its key replaces the value where it is */
	rc = mdb_cursor_put(*cur, &k, &v, on_key(*cur, key, klen, NULL) ? MDB_CURRENT : 0);
	return rc ? ledger_mdb_error(t, rc, what, e) : 0;
}

int db_cursor_del(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, const void *key, size_t klen,
                  const char *what, struct err *e)
{
	if (!t->cache)
		return db_del(t, dbi, key, klen, NULL, what, e);
	MDB_val v;
	int rc = db_cursor_get(t, cur, dbi, key, klen, &v, what, e);
	if (rc)
		return rc;
	rc = mdb_cursor_del(*cur, 0);
	return rc ? ledger_mdb_error(t, rc, what, e) : 0;
}

int db_del(struct ledger_txn *t, MDB_dbi dbi, const void *key, size_t klen, const MDB_val *data,
           const char *what, struct err *e)
{
	MDB_val k = {klen, (void *)key};
	int rc = mdb_del(t->txn, dbi, &k, (MDB_val *)data);
	return rc ? ledger_mdb_error(t, rc, what, e) : 0;
}

static int meta_read_u64(struct ledger_txn *t, const char *name, uint64_t *out, struct err *e)
{
	MDB_val v;
	int rc = db_get(t, t->l->meta, name, strlen(name), &v, name, e);
	if (rc == ERR_NOTFOUND) {
		*out = 0;
		return 0;
	}
	if (rc)
		return rc;
	if (v.mv_size != 8)
		return corrupt(t, name, e);
	*out = be64_get(v.mv_data);
	return 0;
}

static int meta_write_u64(struct ledger_txn *t, const char *name, uint64_t v, struct err *e)
{
	uint8_t b[8];
	be64_put(b, v);
	return db_put(t, t->l->meta, name, strlen(name), b, 8, 0, name, e);
}

/* The transaction's slot for name, read in on first use; -1 when the
 * transaction keeps none (or has no room: then the tree is used). */
static int meta_slot(struct ledger_txn *t, const char *name, int *slot, struct err *e)
{
	*slot = -1;
	if (!t->cache)
		return 0;
	for (int i = 0; i < t->nslots; i++)
		if (t->slot[i].name == name || strcmp(t->slot[i].name, name) == 0) {
			*slot = i;
			return 0;
		}
	if (t->nslots == TXN_META_SLOTS)
		return 0;
	int i = t->nslots;
	int rc = meta_read_u64(t, name, &t->slot[i].v, e);
	if (rc)
		return rc;
	t->slot[i].name = name;
	t->slot[i].dirty = false;
	t->nslots++;
	*slot = i;
	return 0;
}

int meta_get_u64(struct ledger_txn *t, const char *name, uint64_t *out, struct err *e)
{
	int i, rc = meta_slot(t, name, &i, e);
	if (rc || i < 0)
		return rc ? rc : meta_read_u64(t, name, out, e);
	*out = t->slot[i].v;
	return 0;
}

int meta_next(struct ledger_txn *t, const char *name, uint64_t *out, struct err *e)
{
	int i, rc = meta_slot(t, name, &i, e);
	if (rc)
		return rc;
	if (i >= 0) {
		*out = ++t->slot[i].v;
		t->slot[i].dirty = true;
		return 0;
	}
	uint64_t cur;
	if ((rc = meta_read_u64(t, name, &cur, e)) || (rc = meta_write_u64(t, name, cur + 1, e)))
		return rc;
	*out = cur + 1;
	return 0;
}

/* ---- counts (schema 5) ---- */

size_t count_slot(int object)
{
	return object >= 0 && object < LEDGER_OBJ_SLOTS ? (size_t)object : LEDGER_OBJ_SLOTS - 1;
}

static int counts_read(struct ledger_txn *t, const char *name, size_t n, uint64_t *out,
                       struct err *e)
{
	MDB_val v;
	int rc = db_get(t, t->l->meta, name, strlen(name), &v, name, e);
	if (rc == ERR_NOTFOUND) {
		memset(out, 0, n * sizeof(*out));
		return 0;
	}
	if (rc)
		return rc;
	if (v.mv_size != n * 8)
		return corrupt(t, name, e);
	for (size_t i = 0; i < n; i++)
		out[i] = be64_get((const uint8_t *)v.mv_data + 8 * i);
	return 0;
}

static int counts_write(struct ledger_txn *t, const char *name, size_t n, const uint64_t *v,
                        struct err *e)
{
	uint8_t b[8 * TXN_COUNTS_MAX];
	for (size_t i = 0; i < n; i++)
		be64_put(b + 8 * i, v[i]);
	return db_put(t, t->l->meta, name, strlen(name), b, n * 8, 0, name, e);
}

/* The transaction's copy of counts name, read in on first use; NULL when
 * the transaction keeps none. */
static int counts_slot(struct ledger_txn *t, const char *name, size_t n, uint64_t **out,
                       struct err *e)
{
	*out = NULL;
	if (!t->cache || n > TXN_COUNTS_MAX)
		return 0;
	for (int i = 0; i < t->ncounts; i++)
		if (t->counts[i].name == name || strcmp(t->counts[i].name, name) == 0) {
			*out = t->counts[i].v;
			return 0;
		}
	if (t->ncounts == TXN_COUNTS)
		return 0;
	int i = t->ncounts;
	int rc = counts_read(t, name, n, t->counts[i].v, e);
	if (rc)
		return rc;
	t->counts[i].name = name;
	t->counts[i].n = n;
	t->counts[i].dirty = false;
	t->ncounts++;
	*out = t->counts[i].v;
	return 0;
}

int meta_counts_get(struct ledger_txn *t, const char *name, size_t n, uint64_t *out, struct err *e)
{
	uint64_t *v;
	int rc = counts_slot(t, name, n, &v, e);
	if (rc || v == NULL)
		return rc ? rc : counts_read(t, name, n, out, e);
	memcpy(out, v, n * sizeof(*out));
	return 0;
}

static void counts_move(uint64_t *v, int64_t delta)
{
	if (delta < 0 && (uint64_t)-delta > *v)
		*v = 0; /* a ledger edited by hand: never below 0 */
	else
		*v += (uint64_t)delta;
}

int meta_counts_add(struct ledger_txn *t, const char *name, size_t n, size_t i, int64_t delta,
                    struct err *e)
{
	uint64_t *v;
	int rc = counts_slot(t, name, n, &v, e);
	if (rc)
		return rc;
	if (v) {
		counts_move(&v[i], delta);
		for (int k = 0; k < t->ncounts; k++)
			if (t->counts[k].v == v)
				t->counts[k].dirty = true;
		return 0;
	}
	uint64_t cur[TXN_COUNTS_MAX];
	if ((rc = counts_read(t, name, n, cur, e)))
		return rc;
	counts_move(&cur[i], delta);
	return counts_write(t, name, n, cur, e);
}

int meta_counts_put(struct ledger_txn *t, const char *name, size_t n, const uint64_t *v,
                    struct err *e)
{
	uint64_t *c;
	int rc = counts_slot(t, name, n, &c, e);
	if (rc)
		return rc;
	if (c == NULL)
		return counts_write(t, name, n, v, e);
	memcpy(c, v, n * sizeof(*c));
	for (int k = 0; k < t->ncounts; k++)
		if (t->counts[k].v == c)
			t->counts[k].dirty = true;
	return 0;
}

int chain_head_get(struct ledger_txn *t, uint8_t out[40], int *found, struct err *e)
{
	if (!t->cache || t->head == 0) {
		MDB_val v;
		int rc = db_get(t, t->l->meta, "chain_head", 10, &v, "chain head", e);
		if (rc && rc != ERR_NOTFOUND)
			return rc;
		if (rc == 0 && v.mv_size != 40)
			return corrupt(t, "the chain head", e);
		t->head = rc == 0 ? 2 : 1;
		if (rc == 0)
			memcpy(t->head_v, v.mv_data, 40);
	}
	*found = t->head == 2;
	if (*found)
		memcpy(out, t->head_v, 40);
	return 0;
}

static int head_write(struct ledger_txn *t, const uint8_t head[40], struct err *e)
{
	return db_put(t, t->l->meta, "chain_head", 10, head, 40, 0, "chain head", e);
}

int chain_head_put(struct ledger_txn *t, const uint8_t head[40], struct err *e)
{
	if (!t->cache)
		return head_write(t, head, e);
	memcpy(t->head_v, head, 40);
	t->head = 2;
	t->head_dirty = true;
	return 0;
}

/* Write what the transaction kept in memory, before its commit. */
static int txn_flush(struct ledger_txn *t, struct err *e)
{
	int rc = 0;
	for (int i = 0; rc == 0 && i < t->nslots; i++)
		if (t->slot[i].dirty)
			rc = meta_write_u64(t, t->slot[i].name, t->slot[i].v, e);
	for (int i = 0; rc == 0 && i < t->ncounts; i++)
		if (t->counts[i].dirty)
			rc = counts_write(t, t->counts[i].name, t->counts[i].n, t->counts[i].v, e);
	if (rc == 0 && t->head_dirty)
		rc = head_write(t, t->head_v, e);
	return rc;
}

/* ---- the person key ---- */

void ledger_person_key(const struct ledger *l, const char *email, size_t len,
                       uint8_t out[LEDGER_KEY_LEN])
{
	sha_hmac(l->hmac, email, len, out);
}

/* ---- map size ----
 *
 * With MDB_WRITEMAP, LMDB sets data.mdb's length to the map size of the
 * process that opens it or resizes its map (ftruncate), and reads the pages
 * through the map: a process that maps the file shorter than another has
 * grown it cuts the file under the other, which then dies of SIGBUS or
 * writes into pages that are gone. So no process ever asks LMDB for a map
 * smaller than the file: every size change (opening, growth, adopting
 * another process's growth) happens under an exclusive flock of map.lock,
 * and takes the larger of the size wanted and the file's current length.
 *
 * A page written through the map into a hole of a sparse file needs a disk
 * block; on a full disk that is SIGBUS, not an error. So the map is reserved
 * before it is used (fallocate of the whole length): a full disk shows up
 * as ENOSPC when the map is set or grows, where it is an error that names
 * the disk, and writes are refused until the space is there. */

static int map_lock(struct ledger *l)
{
	while (flock(l->map_fd, LOCK_EX) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

static void map_unlock(struct ledger *l)
{
	flock(l->map_fd, LOCK_UN);
}

static int file_size(int fd, uint64_t *out)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	*out = (uint64_t)st.st_size;
	return 0;
}

/* Allocate [from, to) of fd on disk (extending its length to at least to):
 * 0, or the errno. EINTR is retried. */
static int reserve_range(int fd, uint64_t from, uint64_t to)
{
	if (to <= from)
		return 0;
	int rc;
	while ((rc = fallocate(fd, 0, (off_t)from, (off_t)(to - from))) != 0 && errno == EINTR)
		;
	return rc ? errno : 0;
}

static int no_space(struct ledger *l, uint64_t need, struct err *e)
{
	struct statvfs vfs;
	unsigned long long avail = 0;
	if (statvfs(l->path, &vfs) == 0)
		avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
	return err_set(e, ERR_LEDGER,
	               "no space left on the disk of ledger %s (%llu bytes free; it needs "
	               "%llu more): writes are refused until space is freed, reads go on",
	               l->path, avail, (unsigned long long)need);
}

/* Reserve the map from *size up to want, or as much of it as the disk has
 * (the step halves down to a megabyte); *size is what is reserved after.
 * ENOSPC when not even that fits; ENOTSUP/EOPNOTSUPP when the file system
 * cannot reserve (then nothing is). */
static int reserve_upto(int fd, uint64_t *size, uint64_t want)
{
	uint64_t step = want > *size ? want - *size : 0;
	while (step > 0) {
		int rc = reserve_range(fd, *size, *size + step);
		if (rc == 0) {
			*size += step;
			return 0;
		}
		if (rc != ENOSPC && rc != EDQUOT)
			return rc;
		if (step <= (1u << 20))
			return ENOSPC;
		step /= 2;
	}
	return 0;
}

static void reserve_unsupported(struct ledger *l, int rc)
{
	if (!l->no_reserve)
		log_warn("ledger.reserve",
		         "the file system of ledger %s cannot reserve space (%s): a full disk "
		         "may stop optsync with SIGBUS instead of an error",
		         l->path, strerror(rc));
	l->no_reserve = true;
}

/* Set the map (resize lock held exclusively, no transaction open in this
 * process): adopt the file's length when another process made it longer,
 * else, with grow, double it (up to max_map_size) as far as the disk
 * allows. */
enum { MAP_ADOPT, MAP_GROW, MAP_AHEAD };

/* MAP_AHEAD: a map more than half used (its high-water page, free pages
 * below it included) is doubled; checked again here, under the locks, so
 * that threads that saw it at once do not each double it. */
static bool half_used(struct ledger *l, const MDB_envinfo *info)
{
	MDB_stat st;
	mdb_env_stat(l->env, &st);
	uint64_t used = ((uint64_t)info->me_last_pgno + 1) * st.ms_psize;
	return used > info->me_mapsize / 2 && info->me_mapsize < l->max_map_size;
}

/* seen: with MAP_GROW, the map size the full transaction ran in (another
 * thread may have grown it since: then that is the growth). */
static int set_map(struct ledger *l, int mode, uint64_t seen, struct err *e)
{
	if (l->unmapped)
		return err_set(e, ERR_NOMEM, "ledger %s: its map was lost; restart optsync",
		               l->path);
	if (map_lock(l) != 0)
		return err_sys(e, ERR_LEDGER, errno, "ledger %s: cannot lock map.lock", l->path);
	int rc = 0;
	MDB_envinfo info;
	mdb_env_info(l->env, &info);
	uint64_t cur = info.me_mapsize, fsize, target = cur;
	bool grow = (mode == MAP_GROW && cur <= seen) || (mode == MAP_AHEAD && half_used(l, &info));
	if (file_size(l->data_fd, &fsize) != 0) {
		rc = err_sys(e, ERR_LEDGER, errno, "ledger %s: cannot stat data.mdb", l->path);
		goto out;
	}
	if (fsize > cur) {
		target = fsize; /* grown (and reserved) by another process */
		if (l->reserved >= cur)
			l->reserved = fsize;
	} else if (grow && cur >= l->max_map_size) {
		rc = err_set(e, ERR_LEDGER,
		             "ledger %s is full: it reached state.max_map_size (%llu bytes); "
		             "nothing written so far was lost, but new writes are refused",
		             l->path, (unsigned long long)l->max_map_size);
		goto out;
	} else if (grow) {
		uint64_t next = cur > l->max_map_size / 2 ? l->max_map_size : cur * 2;
		target = next;
		if (!l->no_reserve) {
			uint64_t size = fsize;
			int r = reserve_upto(l->data_fd, &size, next);
			if (r == ENOSPC || r == EDQUOT) {
				rc = no_space(l, next - fsize, e);
				goto out;
			}
			if (r)
				reserve_unsupported(l, r);
			else
				target = size;
			if (r == 0 && l->reserved >= fsize)
				l->reserved = target;
		}
	}
	if (target != cur) {
		int mrc = mdb_env_set_mapsize(l->env, (size_t)target);
		if (mrc) {
			/* LMDB unmapped the old map first: map that size again (an
			 * address space too small for the larger one), or no
			 * transaction may begin on this environment any more */
			rc = err_set(e, mrc == ENOMEM ? ERR_NOMEM : ERR_LEDGER,
			             "ledger %s: cannot map %llu bytes: %s", l->path,
			             (unsigned long long)target, mdb_strerror(mrc));
			if (mdb_env_set_mapsize(l->env, (size_t)cur) != 0)
				l->unmapped = true;
		}
	}
out:
	map_unlock(l);
	return rc;
}

/* Growth waits for the backups copying in this process before it takes the
 * resize lock: a writer waiting for that lock would make every reader (the
 * suppression checks) wait behind it for the whole copy. */
static void wait_copies(struct ledger *l)
{
	pthread_mutex_lock(&l->copy_mu);
	while (l->copies > 0)
		pthread_cond_wait(&l->copy_cv, &l->copy_mu);
	pthread_mutex_unlock(&l->copy_mu);
}

void ledger_copy_enter(struct ledger *l)
{
	pthread_mutex_lock(&l->copy_mu);
	l->copies++;
	pthread_mutex_unlock(&l->copy_mu);
}

void ledger_copy_leave(struct ledger *l)
{
	pthread_mutex_lock(&l->copy_mu);
	if (--l->copies == 0)
		pthread_cond_broadcast(&l->copy_cv);
	pthread_mutex_unlock(&l->copy_mu);
}

static int resize(struct ledger *l, int mode, uint64_t seen, struct err *e)
{
	wait_copies(l);
	pthread_rwlock_wrlock(&l->resize);
	int rc = set_map(l, mode, seen, e);
	pthread_rwlock_unlock(&l->resize);
	return rc;
}

/* A write needs the whole map reserved; when the opening could not reserve
 * it (the disk was full), try again, and refuse the write while it cannot. */
static int ensure_reserved(struct ledger *l, struct err *e)
{
	MDB_envinfo info;
	pthread_rwlock_rdlock(&l->resize);
	mdb_env_info(l->env, &info);
	bool ok = l->no_reserve || l->reserved >= info.me_mapsize;
	pthread_rwlock_unlock(&l->resize);
	if (ok)
		return 0;
	wait_copies(l);
	pthread_rwlock_wrlock(&l->resize);
	mdb_env_info(l->env, &info);
	int rc = 0;
	if (!l->no_reserve && l->reserved < info.me_mapsize) {
		int r = reserve_range(l->data_fd, l->reserved, info.me_mapsize);
		if (r == 0)
			l->reserved = info.me_mapsize;
		else if (r == ENOSPC || r == EDQUOT)
			rc = no_space(l, info.me_mapsize - l->reserved, e);
		else
			reserve_unsupported(l, r);
	}
	pthread_rwlock_unlock(&l->resize);
	return rc;
}

/* Before mdb_env_open (map.lock held): the map size to ask for, never less
 * than the file, reserved on disk. alone: no other process has the ledger
 * open (open.lock taken exclusively), so the file may also be cut down to
 * the pages in use when the disk cannot hold all of it (a sparse file of
 * an older optsync, a new ledger's first map on a small volume). */
static int opening_map_size(struct ledger *l, const char *data, const struct ledger_options *opt,
                            bool alone, uint64_t *out, bool *fresh, struct err *e)
{
	int fd = open(data, O_RDWR | (opt->create ? O_CREAT : 0) | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, ERR_LEDGER, errno, "cannot open %s", data);
	uint64_t fsize, want = opt->map_size;
	int rc = 0;
	if (file_size(fd, &fsize) != 0) {
		rc = err_sys(e, ERR_LEDGER, errno, "cannot stat %s", data);
		goto out;
	}
	if (fsize == 0) {
		if (!opt->create) {
			rc = err_set(e, ERR_LEDGER,
			             "ledger %s is damaged: data.mdb is empty; restore it from a "
			             "backup",
			             l->path);
			goto out;
		}
		/* a new ledger: LMDB takes only an empty file for new, so the map
		 * is reserved once LMDB has written its first pages; no larger
		 * than the disk can hold */
		struct statvfs vfs;
		if (statvfs(l->path, &vfs) == 0) {
			uint64_t room = (uint64_t)vfs.f_bavail * vfs.f_frsize / 10 * 9;
			room &= ~(uint64_t)((1u << 20) - 1);
			if (want > room)
				want = room > (1u << 20) ? room : (1u << 20);
		}
		*out = want;
		l->reserved = 0;
		*fresh = true;
		goto out;
	}
	*out = fsize;
	int r = reserve_range(fd, 0, fsize);
	if ((r == ENOSPC || r == EDQUOT) && alone) {
		uint64_t used = ledger_file_used(fd),
		         cut = (used + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
		if (used && cut < fsize && ftruncate(fd, (off_t)cut) == 0) {
			log_warn("ledger.reserve",
			         "ledger %s: the disk cannot hold its %llu-byte file; cut to the "
			         "%llu bytes in use",
			         l->path, (unsigned long long)fsize, (unsigned long long)cut);
			*out = fsize = cut;
			r = reserve_range(fd, 0, fsize);
		}
	}
	if (r == ENOSPC || r == EDQUOT) {
		l->reserved = 0; /* writes wait for ensure_reserved */
	} else if (r) {
		reserve_unsupported(l, r);
	} else {
		l->reserved = fsize;
		/* the growth to map_size only whole: a command that only reads
		 * must not take what is left of the disk */
		if (want > fsize && reserve_range(fd, fsize, want) == 0)
			*out = l->reserved = want;
	}
out:
	close(fd);
	return rc;
}

/* lock.mdb is LMDB's, written through a map as well: its room is reserved
 * before LMDB maps it (LMDB keeps a larger file as it is). */
#define LOCKFILE_RESERVE (64u << 10)
static int reserve_lockfile(struct ledger *l, struct err *e)
{
	char p[4096];
	int n = snprintf(p, sizeof(p), "%s/lock.mdb", l->path);
	if (n < 0 || (size_t)n >= sizeof(p))
		return err_set(e, ERR_LEDGER, "ledger path too long: %s", l->path);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, ERR_LEDGER, errno, "cannot open %s", p);
	uint64_t size;
	int rc = 0;
	if (file_size(fd, &size) == 0 && size < LOCKFILE_RESERVE) {
		int r = reserve_range(fd, 0, LOCKFILE_RESERVE);
		if (r == ENOSPC || r == EDQUOT)
			rc = no_space(l, LOCKFILE_RESERVE, e);
	}
	close(fd);
	return rc;
}

/* ---- opening ---- */

static int open_dbs(struct ledger *l, MDB_txn *txn, bool create, struct err *e)
{
	static const struct {
		const char *name;
		size_t off;
		unsigned flags;
	} dbs[] = {
	    {"meta", offsetof(struct ledger, meta), 0},
	    {"persons", offsetof(struct ledger, persons), 0},
	    {"records", offsetof(struct ledger, records), 0},
	    {"history", offsetof(struct ledger, history), 0},
	    {"feed", offsetof(struct ledger, feed), 0},
	    {"cursors", offsetof(struct ledger, cursors), 0},
	    {"conflicts", offsetof(struct ledger, conflicts), 0},
	    {"outbox", offsetof(struct ledger, outbox), 0},
	    {"idempotency", offsetof(struct ledger, idem), 0},
	    {"purposes", offsetof(struct ledger, purposes), 0},             /* schema 2 */
	    {"person_records", offsetof(struct ledger, person_records), 0}, /* schema 4 */
	    {"open_conflicts", offsetof(struct ledger, open_conflicts), 0}, /* schema 4 */
	    {"push_due", offsetof(struct ledger, push_due), 0},             /* schema 5 */
	    {"conflicts_open", offsetof(struct ledger, conflicts_open), 0}, /* schema 5 */
	};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)l + dbs[i].off);
		int rc =
		    mdb_dbi_open(txn, dbs[i].name, dbs[i].flags | (create ? MDB_CREATE : 0), dbi);
		if (rc == MDB_NOTFOUND && !create)
			return ERR_NOTFOUND; /* a table to create: the write path */
		if (rc) {
			struct ledger_txn t = {.l = l, .txn = txn, .write = 1};
			return ledger_mdb_error(&t, rc, dbs[i].name, e);
		}
	}
	return 0;
}

/* Migrations: migrations[v] brings a ledger from schema v to v + 1 in the
 * opening write transaction. Version 1 is the first; a new version adds
 * its step here. */
typedef int (*migration_fn)(struct ledger_txn *t, struct err *e);

/* 1 -> 2: the purposes table, which open_dbs has just created (empty: no
 * person had a purpose before). Nothing else changes. */
static int migrate_1_to_2(struct ledger_txn *t, struct err *e)
{
	(void)t;
	(void)e;
	return 0;
}

/* 3 -> 4: each person's Salesforce records move from the person into the
 * person_records index, which open_dbs has just created, and the open
 * conflicts are indexed by record (of two open about one record, field and
 * purpose, which schema 3 allowed, the later is closed as a duplicate). */
static int migrate_3_to_4(struct ledger_txn *t, struct err *e)
{
	int rc = person_records_migrate_3_to_4(t, e);
	return rc ? rc : conflicts_index_open(t, time_now_ms(), e);
}

/* 4 -> 5: the indexes and counts of the outbox and the conflicts, built
 * from the tables open_dbs has just created beside them (both steps drop
 * what they build first: idempotent). */
static int migrate_4_to_5(struct ledger_txn *t, struct err *e)
{
	int rc = outbox_migrate_4_to_5(t, e);
	return rc ? rc : conflicts_migrate_4_to_5(t, e);
}

/* 6 -> 7: an optsync of schema 6 had empty 3 -> 4 and 4 -> 5 steps, so a
 * ledger it created or migrated may still hold records inside its persons
 * and no indexes: both steps run again (each is idempotent on a ledger
 * they already migrated). */
static int migrate_6_to_7(struct ledger_txn *t, struct err *e)
{
	int rc = migrate_3_to_4(t, e);
	return rc ? rc : migrate_4_to_5(t, e);
}

static const migration_fn migrations[LEDGER_SCHEMA_VERSION] = {
    NULL,           migrate_1_to_2, hist_migrate_2_to_3, migrate_3_to_4,
    migrate_4_to_5, rekey_migrate,  migrate_6_to_7};

/* A ledger of an older schema is backed up before it is migrated: the
 * schema is read in a read transaction of its own (the tables of the new
 * schema do not exist yet), and the backup written beside the ledger. */
static int backup_before_migrating(struct ledger *l, struct err *e)
{
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val k = {6, (void *)"schema"}, v;
	int rc;
	while ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn)) == MDB_MAP_RESIZED)
		ledger_adopt_map_size(l);
	if (rc != 0)
		return 0; /* the opening transaction reports it */
	uint64_t version = 0;
	if (mdb_dbi_open(txn, "meta", 0, &meta) == 0 && mdb_get(txn, meta, &k, &v) == 0 &&
	    v.mv_size == 8)
		version = be64_get(v.mv_data);
	mdb_txn_abort(txn);
	if (version == 0 || version >= LEDGER_SCHEMA_VERSION)
		return 0; /* new, current, or refused as newer later */
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	size_t n = strlen(l->path) + 64;
	l->migration_backup = malloc(n);
	if (l->migration_backup == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	snprintf(l->migration_backup, n, "%s.schema%llu-%s.backup", l->path,
	         (unsigned long long)version, stamp);
	struct ledger_backup_info info;
	rc = ledger_backup_schema(l, l->migration_backup, (uint32_t)version, &info, e);
	if (rc) {
		err_prefix(e,
		           "before migrating the ledger from schema %llu to %d, a backup of it "
		           "failed: ",
		           (unsigned long long)version, LEDGER_SCHEMA_VERSION);
		return rc;
	}
	log_info("ledger.migrate",
	         "ledger %s has schema %llu: backed up to %s (%llu bytes) before migrating to "
	         "schema %d",
	         l->path, (unsigned long long)version, l->migration_backup,
	         (unsigned long long)info.bytes, LEDGER_SCHEMA_VERSION);
	return 0;
}

const char *ledger_migration_backup(const struct ledger *l)
{
	return l->migration_backup;
}

/* The schema and the ledger key, in the opening write transaction t: a new
 * ledger gets them, an older one is migrated; a migration that fills the
 * map sets t->map_full (the opening grows the map and runs again). */
static int init_meta(struct ledger_txn *t, struct err *e)
{
	struct ledger *l = t->l;
	MDB_val v;
	int rc = db_get(t, l->meta, "schema", 6, &v, "schema version", e);
	if (rc == ERR_NOTFOUND) {
		/* A new ledger: schema version and a fresh HMAC key. */
		uint8_t b[8];
		be64_put(b, LEDGER_SCHEMA_VERSION);
		if (RAND_bytes(l->hmac_key, sizeof(l->hmac_key)) != 1)
			return err_set(e, ERR_INTERNAL, "cannot generate the ledger key");
		rc = db_put(t, l->meta, "schema", 6, b, 8, 0, "schema version", e);
		if (rc == 0)
			rc = db_put(t, l->meta, "key", 3, l->hmac_key, 32, 0, "ledger key", e);
		return rc;
	}
	if (rc)
		return rc;
	if (v.mv_size != 8)
		return corrupt(t, "schema version", e);
	uint64_t version = be64_get(v.mv_data);
	if (version > LEDGER_SCHEMA_VERSION)
		return err_set(e, ERR_LEDGER,
		               "ledger %s has schema version %llu, newer than this optsync's (%d); "
		               "upgrade optsync",
		               l->path, (unsigned long long)version, LEDGER_SCHEMA_VERSION);
	if (version == 0)
		return corrupt(t, "schema version 0", e);
	for (; version < LEDGER_SCHEMA_VERSION; version++) {
		if (migrations[version] == NULL)
			return err_set(e, ERR_INTERNAL, "no migration from schema %llu",
			               (unsigned long long)version);
		rc = migrations[version](t, e);
		if (rc)
			return rc;
		uint8_t b[8];
		be64_put(b, version + 1);
		rc = db_put(t, l->meta, "schema", 6, b, 8, 0, "schema version", e);
		if (rc)
			return rc;
	}
	rc = db_get(t, l->meta, "key", 3, &v, "ledger key", e);
	if (rc == ERR_NOTFOUND)
		return corrupt(t, "ledger key (missing)", e);
	if (rc)
		return rc;
	if (v.mv_size != 32)
		return corrupt(t, "ledger key", e);
	memcpy(l->hmac_key, v.mv_data, 32);
	return 0;
}

static int lock_file_open(struct ledger *l, const char *name, int *fd, struct err *e)
{
	char p[4096];
	int n = snprintf(p, sizeof(p), "%s/%s", l->path, name);
	if (n < 0 || (size_t)n >= sizeof(p))
		return err_set(e, ERR_LEDGER, "ledger path too long: %s", l->path);
	*fd = open(p, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
	return *fd < 0 ? err_sys(e, ERR_LEDGER, errno, "cannot open %s", p) : 0;
}

/* In a read transaction: the tables, and whether the schema is this
 * optsync's (then the ledger key is read, and nothing is left to write). */
static int open_current(struct ledger *l, bool *current, struct err *e)
{
	MDB_txn *txn;
	int rc;
	*current = false;
	while ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn)) == MDB_MAP_RESIZED)
		ledger_adopt_map_size(l);
	if (rc)
		return ledger_mdb_error(&(struct ledger_txn){.l = l}, rc, "begin read", e);
	struct ledger_txn t = {.l = l, .txn = txn};
	MDB_val v;
	rc = open_dbs(l, txn, false, e);
	if (rc == 0)
		rc = db_get(&t, l->meta, "schema", 6, &v, "schema version", e);
	if (rc == 0 && v.mv_size == 8 && be64_get(v.mv_data) == LEDGER_SCHEMA_VERSION &&
	    db_get(&t, l->meta, "key", 3, &v, "ledger key", NULL) == 0 && v.mv_size == 32) {
		memcpy(l->hmac_key, v.mv_data, 32);
		*current = true;
	}
	if (rc && rc != ERR_NOTFOUND) {
		mdb_txn_abort(txn);
		return rc;
	}
	/* committed, a read transaction keeps the table handles it opened */
	rc = mdb_txn_commit(txn);
	return rc ? ledger_mdb_error(&t, rc, "commit read", e) : 0;
}

int ledger_open(struct ledger **out, const struct ledger_options *opt, struct err *e)
{
	*out = NULL;
	struct ledger *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	l->lock_fd = l->map_fd = l->open_fd = -1;
	pthread_mutex_init(&l->copy_mu, NULL);
	pthread_cond_init(&l->copy_cv, NULL);
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__ /* an enum constant there, not a macro */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	pthread_rwlock_init(&l->resize, &attr);
	pthread_rwlockattr_destroy(&attr);
	int rc = 0;
	MDB_txn *txn = NULL;
	l->path = strdup(opt->path);
	if (l->path == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	l->max_map_size = opt->max_map_size > opt->map_size ? opt->max_map_size : opt->map_size;

	char data[4096];
	int n = snprintf(data, sizeof(data), "%s/data.mdb", opt->path);
	if (n < 0 || (size_t)n >= sizeof(data)) {
		rc = err_set(e, ERR_LEDGER, "ledger path too long: %s", opt->path);
		goto out;
	}
	struct stat st;
	if (stat(opt->path, &st) != 0) {
		if (errno != ENOENT || !opt->create) {
			rc = err_sys(e, ERR_LEDGER, errno, "no ledger at %s", opt->path);
			goto out;
		}
		if (mkdir(opt->path, 0700) != 0) {
			rc = err_sys(e, ERR_LEDGER, errno, "cannot create the ledger directory %s",
			             opt->path);
			goto out;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		rc = err_set(e, ERR_LEDGER, "ledger path %s is not a directory", opt->path);
		goto out;
	} else if (!opt->create && access(data, F_OK) != 0) {
		rc = err_set(e, ERR_LEDGER, "no ledger at %s (data.mdb missing)", opt->path);
		goto out;
	}

	/* map.lock: held exclusively while a process sets data.mdb's size;
	 * open.lock: held shared by every process with the ledger open (taken
	 * exclusively, under map.lock, only to learn that none is). Both are
	 * empty, opened read-only (flock needs no more), 0644 so that an
	 * operator's root shell does not lock the service user out. */
	if ((rc = lock_file_open(l, "map.lock", &l->map_fd, e)) ||
	    (rc = lock_file_open(l, "open.lock", &l->open_fd, e)))
		goto out;
	if (map_lock(l) != 0) {
		rc = err_sys(e, ERR_LEDGER, errno, "cannot lock %s/map.lock", opt->path);
		goto out;
	}
	bool alone = flock(l->open_fd, LOCK_EX | LOCK_NB) == 0;
	uint64_t mapsize = 0;
	int mrc = 0;
	bool fresh = false;
	rc = opening_map_size(l, data, opt, alone, &mapsize, &fresh, e);
	if (rc == 0)
		rc = reserve_lockfile(l, e);
	if (rc == 0 &&
	    ((rc = mdb_env_create(&l->env)) || (rc = mdb_env_set_maxdbs(l->env, MAX_DBS)) ||
	     (rc = mdb_env_set_mapsize(l->env, (size_t)mapsize))))
		rc = ledger_mdb_error(&(struct ledger_txn){.l = l}, rc, "create environment", e);
	if (rc == 0)
		mrc =
		    mdb_env_open(l->env, opt->path, MDB_NOTLS | MDB_NORDAHEAD | MDB_WRITEMAP, 0600);
	if (rc == 0 && mrc == 0) {
		mdb_filehandle_t dfd;
		mdb_env_get_fd(l->env, &dfd);
		l->data_fd = dfd;
		/* a new ledger's first write needs its map on disk; on a full disk
		 * the file is left empty, for the next open to begin again */
		if (fresh && (rc = ensure_reserved(l, e)) && alone && ftruncate(dfd, 0) != 0)
			log_warn("ledger.reserve", "ledger %s: cannot empty data.mdb: %s", l->path,
			         strerror(errno));
	}
	flock(l->open_fd, LOCK_SH); /* under map.lock: nobody takes it exclusively now */
	map_unlock(l);
	if (rc)
		goto out;
	if ((rc = mrc)) {
		if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED)
			rc = err_set(e, ERR_LEDGER,
			             "ledger %s is corrupt or not an optsync ledger (%s)",
			             opt->path, mdb_strerror(rc));
		else
			rc = err_set(e, rc == ENOMEM ? ERR_NOMEM : ERR_LEDGER,
			             "cannot open the ledger %s: %s", opt->path, mdb_strerror(rc));
		goto out;
	}
	int dead = 0;
	mdb_reader_check(l->env, &dead); /* clear slots of crashed readers */

	if (!opt->no_migration_backup && (rc = backup_before_migrating(l, e)))
		goto out;
	/* a ledger of this schema with all its tables needs no write to open
	 * (a full disk must not stop a reader); a new or older one does */
	bool current = false;
	if ((rc = open_current(l, &current, e)))
		goto out;
	if (!current && (rc = ensure_reserved(l, e)))
		goto out;
	while (!current) {
		/* another process may grow the file between the open and this */
		while ((rc = mdb_txn_begin(l->env, NULL, 0, &txn)) == MDB_MAP_RESIZED)
			ledger_adopt_map_size(l);
		if (rc) {
			rc = ledger_mdb_error(&(struct ledger_txn){.l = l}, rc, "begin", e);
			goto out;
		}
		MDB_envinfo info;
		mdb_env_info(l->env, &info);
		struct ledger_txn t = {.l = l, .txn = txn, .write = 1};
		rc = open_dbs(l, txn, true, e);
		if (rc == 0)
			rc = init_meta(&t, e);
		if (rc == 0 && (mrc = mdb_txn_commit(txn)) != 0)
			rc = ledger_mdb_error(&t, mrc, "commit", e);
		else if (rc)
			mdb_txn_abort(txn);
		if (rc == 0 || !t.map_full)
			break;
		/* a migration filled the map: it grows, and the migration runs
		 * again from the start (nothing of it was committed) */
		if ((rc = resize(l, MAP_GROW, info.me_mapsize, e)))
			goto out;
	}
	if (rc) {
		if (rc == ERR_NOTFOUND)
			rc = ERR_LEDGER;
		goto out;
	}
	l->hmac = sha_hmac_key_new(l->hmac_key);
	if (l->hmac == NULL)
		rc = err_set(e, ERR_NOMEM, "out of memory");
out:
	if (rc) {
		ledger_close(l);
		return rc;
	}
	*out = l;
	return 0;
}

void ledger_close(struct ledger *l)
{
	if (l == NULL)
		return;
	ledger_sync_unlock(l);
	if (l->env)
		mdb_env_close(l->env);
	sha_hmac_key_free(l->hmac);
	OPENSSL_cleanse(l->hmac_key, sizeof(l->hmac_key));
	pthread_rwlock_destroy(&l->resize);
	pthread_mutex_destroy(&l->copy_mu);
	pthread_cond_destroy(&l->copy_cv);
	if (l->map_fd >= 0)
		close(l->map_fd);
	if (l->open_fd >= 0)
		close(l->open_fd); /* and with it the shared flock */
	free(l->path);
	free(l->migration_backup);
	free(l);
}

/* ---- transactions ---- */

/* Another process grew the map: adopt its size. */
void ledger_adopt_map_size(struct ledger *l)
{
	struct err ignored;
	resize(l, MAP_ADOPT, 0, &ignored);
}

/* Before a write: a map more than half used is doubled while nothing runs
 * in it, so that a large transaction (a batch of pulled pages) seldom fills
 * the map half way and runs again after growing it. Past max_map_size the
 * map stays, and a transaction that fills it fails as before. */
static void grow_ahead(struct ledger *l)
{
	MDB_envinfo info;
	pthread_rwlock_rdlock(&l->resize);
	mdb_env_info(l->env, &info);
	bool want = half_used(l, &info);
	pthread_rwlock_unlock(&l->resize);
	if (want) {
		struct err ignored;
		resize(l, MAP_AHEAD, 0, &ignored);
	}
}

static bool map_lost(struct ledger *l)
{
	pthread_rwlock_rdlock(&l->resize);
	bool lost = l->unmapped;
	pthread_rwlock_unlock(&l->resize);
	return lost;
}

static int run_txn(struct ledger *l, int write, ledger_fn fn, void *ctx, struct err *e)
{
	if (map_lost(l)) /* nothing may read the environment, not even its info */
		return err_set(e, ERR_NOMEM,
		               "ledger %s: its map was lost when a growth failed (out of address "
		               "space): restart optsync",
		               l->path);

	if (write) {
		int rc = ensure_reserved(l, e);
		if (rc)
			return rc;
		grow_ahead(l);
	}
	for (;;) {
		pthread_rwlock_rdlock(&l->resize);
		if (l->unmapped) {
			pthread_rwlock_unlock(&l->resize);
			return err_set(e, ERR_NOMEM, "ledger %s: its map was lost; restart optsync",
			               l->path);
		}
		struct ledger_txn t = {.l = l, .write = write, .cache = write != 0};
		int rc = mdb_txn_begin(l->env, NULL, write ? 0 : MDB_RDONLY, &t.txn);
		if (rc == MDB_MAP_RESIZED) {
			pthread_rwlock_unlock(&l->resize);
			ledger_adopt_map_size(l);
			continue;
		}
		if (rc) {
			pthread_rwlock_unlock(&l->resize);
			return ledger_mdb_error(&t, rc, write ? "begin write" : "begin read", e);
		}
		MDB_envinfo info;
		if (write)
			mdb_env_info(l->env, &info);
		rc = fn(&t, ctx, e);
		if (rc == 0 && write)
			rc = txn_flush(&t, e);
		if (rc == 0 && write) {
			int mrc = mdb_txn_commit(t.txn);
			if (mrc)
				rc = ledger_mdb_error(&t, mrc, "commit", e);
		} else {
			mdb_txn_abort(t.txn);
		}
		pthread_rwlock_unlock(&l->resize);
		if (rc && write && t.map_full) {
			int grc = resize(l, MAP_GROW, info.me_mapsize, e);
			if (grc)
				return grc;
			continue; /* run the whole transaction again in the larger map */
		}
		return rc;
	}
}

int ledger_read(struct ledger *l, ledger_fn fn, void *ctx, struct err *e)
{
	return run_txn(l, 0, fn, ctx, e);
}

int ledger_write(struct ledger *l, ledger_fn fn, void *ctx, struct err *e)
{
	return run_txn(l, 1, fn, ctx, e);
}

/* ---- sync lock ---- */

int ledger_sync_lock(struct ledger *l, const char *who, struct err *e)
{
	if (l->lock_fd >= 0)
		return 0;
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/sync.lock", l->path);
	if (n < 0 || (size_t)n >= sizeof(path))
		return err_set(e, ERR_LEDGER, "ledger path too long: %s", l->path);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, ERR_LEDGER, errno, "cannot open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int saved = errno;
		char holder[96] = "";
		ssize_t r = pread(fd, holder, sizeof(holder) - 1, 0);
		close(fd);
		if (saved == EWOULDBLOCK) {
			/* "PID WHO\n", as the holder wrote it */
			holder[r > 0 ? r : 0] = '\0';
			holder[strcspn(holder, "\n")] = '\0';
			char *sp = strchr(holder, ' ');
			if (sp)
				*sp++ = '\0';
			return err_set(e, ERR_LEDGER,
			               "ledger %s is locked by another sync: %s (pid %s) holds it; "
			               "only one may run per ledger, try again when it has "
			               "stopped",
			               l->path, sp && *sp ? sp : "another optsync",
			               holder[0] ? holder : "unknown");
		}
		return err_sys(e, ERR_LEDGER, saved, "cannot lock %s", path);
	}
	char line[96];
	int pl = snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), who);
	if (pl < 0 || (size_t)pl >= sizeof(line) || ftruncate(fd, 0) != 0 ||
	    pwrite(fd, line, (size_t)pl, 0) != pl) {
		/* the holder's name is only informative */
	}
	l->lock_fd = fd;
	return 0;
}

void ledger_sync_unlock(struct ledger *l)
{
	if (l->lock_fd < 0)
		return;
	flock(l->lock_fd, LOCK_UN);
	close(l->lock_fd);
	l->lock_fd = -1;
}

/* ---- statistics ---- */

int ledger_stats(struct ledger_txn *t, struct ledger_stats *out, struct err *e)
{
	struct ledger *l = t->l;
	MDB_stat st;
	struct {
		MDB_dbi dbi;
		uint64_t *dst;
	} map[] = {{l->persons, &out->persons},
	           {l->records, &out->records},
	           {l->history, &out->events},
	           {l->feed, &out->changes},
	           {l->conflicts, &out->conflicts},
	           {l->outbox, &out->pushes},
	           {l->person_records, &out->person_records},
	           {l->open_conflicts, &out->open_conflicts}};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		int rc = mdb_stat(t->txn, map[i].dbi, &st);
		if (rc)
			return ledger_mdb_error(t, rc, "stat", e);
		*map[i].dst = st.ms_entries;
	}
	MDB_envinfo info;
	mdb_env_info(l->env, &info);
	mdb_env_stat(l->env, &st);
	out->map_size = info.me_mapsize;
	out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	uint64_t v;
	int rc = meta_get_u64(t, "schema", &v, e);
	if (rc)
		return rc;
	out->schema_version = (uint32_t)v;
	return 0;
}
