/* Backups of the ledger, and restoring one.
 *
 * A backup is one file: LMDB's compacted copy of the environment (what
 * `mdb_copy -c` writes), followed by a trailer of TRAILER_LEN bytes:
 *
 *   0  16  magic "OPTSYNC-BACKUP1\n"
 *   16  8  length of the LMDB part, big-endian
 *   24  4  schema version of the ledger copied, big-endian
 *   28  4  zero
 *   32 32  SHA-256 of the LMDB part
 *
 * LMDB ignores bytes past its last page, so the file still opens with
 * `mdb_stat -n`. The trailer lets a restore tell a whole copy from one that
 * was cut short or damaged before LMDB maps it: LMDB trusts its file, and a
 * map shorter than its meta page says faults on access instead of failing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/internal.h"
#include "util/fileio.h"
#include "util/timefmt.h"

#define TRAILER_LEN 64
#define COPY_CHUNK  (1u << 20)
#define STAGING     "restore.tmp"

static const char magic[16] = {'O', 'P', 'T', 'S', 'Y', 'N', 'C', '-',
                               'B', 'A', 'C', 'K', 'U', 'P', '1', '\n'};

struct trailer {
	uint64_t data_len;
	uint32_t schema;
	uint8_t sha[32];
};

static void trailer_put(uint8_t out[TRAILER_LEN], const struct trailer *t)
{
	memset(out, 0, TRAILER_LEN);
	memcpy(out, magic, sizeof(magic));
	be64_put(out + 16, t->data_len);
	for (int i = 0; i < 4; i++)
		out[24 + i] = (uint8_t)(t->schema >> (24 - 8 * i));
	memcpy(out + 32, t->sha, 32);
}

static int trailer_get(const uint8_t in[TRAILER_LEN], struct trailer *t)
{
	if (memcmp(in, magic, sizeof(magic)) != 0)
		return -1;
	t->data_len = be64_get(in + 16);
	t->schema =
	    (uint32_t)in[24] << 24 | (uint32_t)in[25] << 16 | (uint32_t)in[26] << 8 | in[27];
	memcpy(t->sha, in + 32, 32);
	return 0;
}

/* errnum says the disk is full (or the user's quota is). */
static bool no_room(int errnum)
{
	return errnum == ENOSPC || errnum == EDQUOT;
}

/* Writing what ("the backup", "the restored ledger in state.path") at path
 * failed with errnum. A full disk is a ledger error, as the ledger's own
 * full disk is (exit 5), and the message names the disk: where the file
 * system that holds path is mounted. Any other failure is ERR_IO. */
static int write_error(struct err *e, int errnum, const char *what, const char *path)
{
	if (!no_room(errnum))
		return err_sys(e, ERR_IO, errnum, "cannot write %s %s", what, path);
	char mnt[4096];
	if (file_mount_point(path, mnt, sizeof(mnt), NULL) != 0)
		return err_sys(e, ERR_LEDGER, errnum,
		               "cannot write %s %s: no room left on the disk that holds it", what,
		               path);
	return err_sys(e, ERR_LEDGER, errnum,
	               "cannot write %s %s: no room left on the disk mounted at %s", what, path,
	               mnt);
}

/* SHA-256 of the first len bytes of fd; when out_fd >= 0 they are also
 * written there, to out_name (a restore copies and checks in one pass). */
static int hash_fd(int fd, uint64_t len, int out_fd, const char *out_name, uint8_t sha[32],
                   const char *name, struct err *e)
{
	int rc = 0;
	unsigned char *b = malloc(COPY_CHUNK);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (b == NULL || md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (uint64_t off = 0; off < len;) {
		size_t want = len - off < COPY_CHUNK ? (size_t)(len - off) : COPY_CHUNK;
		ssize_t r = pread(fd, b, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? err_sys(e, ERR_IO, errno, "cannot read %s", name)
			           : err_set(e, ERR_LEDGER, "%s ends early, at byte %llu", name,
			                     (unsigned long long)off);
			goto out;
		}
		EVP_DigestUpdate(md, b, (size_t)r);
		for (ssize_t w = 0; out_fd >= 0 && w < r;) {
			ssize_t n = write(out_fd, b + w, (size_t)(r - w));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				rc = write_error(e, errno, "the restored ledger in state.path",
				                 out_name);
				goto out;
			}
			w += n;
		}
		off += (uint64_t)r;
	}
	unsigned int hl = 0;
	EVP_DigestFinal_ex(md, sha, &hl);
out:
	EVP_MD_CTX_free(md);
	free(b);
	return rc;
}

/* fsync the directory that holds path, so that a rename in it is durable. */
/* The directory holding path, opened (*fd) to fsync it after a rename
 * into it: opened before, so that nothing can fail for want of memory once
 * the file is in place. */
static int open_dir_of(const char *path, int *fd, struct err *e)
{
	char *dir = strdup(path);
	if (dir == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	char *slash = strrchr(dir, '/');
	const char *d = slash == NULL ? "." : slash == dir ? "/" : (*slash = '\0', dir);
	*fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = *fd < 0 ? err_sys(e, ERR_IO, errno, "cannot open the directory %s", d) : 0;
	free(dir);
	return rc;
}

static int fsync_dir(int fd, const char *path, struct err *e)
{
	int rc =
	    fsync(fd) != 0 ? err_sys(e, ERR_IO, errno, "cannot sync the directory of %s", path) : 0;
	close(fd);
	return rc;
}

static int read_schema(struct ledger_txn *t, void *ctx, struct err *e)
{
	uint64_t v;
	int rc = meta_get_u64(t, "schema", &v, e);
	if (rc == 0)
		*(uint32_t *)ctx = (uint32_t)v;
	return rc;
}

/* LMDB's copy failed with rc: a positive rc is the errno of a write to
 * dest (LMDB reads the ledger through its map), an LMDB code the ledger's. */
static int copy_error(struct ledger *l, int rc, const char *what, const char *dest, struct err *e)
{
	if (rc > 0)
		return write_error(e, rc, what, dest);
	return err_set(e, ERR_LEDGER, "cannot copy the ledger %s: %s", l->path, mdb_strerror(rc));
}

/* LMDB's copy into fd, compacted when LMDB can (it cannot after a page
 * leak; then a plain copy, equally consistent, just not smaller). what and
 * dest name the copy for errors: an errno from LMDB is the write to fd. */
static int copy_env(struct ledger *l, int fd, const char *what, const char *dest, bool *compacted,
                    struct err *e)
{
	unsigned flags = MDB_CP_COMPACT;
	for (int tries = 0;; tries++) {
		/* no map growth in this process meanwhile: it waits for the copy
		 * outside the resize lock, so readers do not queue behind it */
		ledger_copy_enter(l);
		pthread_rwlock_rdlock(&l->resize);
		int rc = mdb_env_copyfd2(l->env, fd, flags);
		pthread_rwlock_unlock(&l->resize);
		ledger_copy_leave(l);
		if (rc == 0) {
			*compacted = flags == MDB_CP_COMPACT;
			return 0;
		}
		if (tries >= 4)
			return copy_error(l, rc, what, dest, e);
		if (rc == MDB_MAP_RESIZED)
			ledger_adopt_map_size(l); /* another process grew the map */
		else if (flags == MDB_CP_COMPACT)
			flags = 0;
		else
			return copy_error(l, rc, what, dest, e);
		if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
			return err_sys(e, ERR_IO, errno, "cannot rewind %s %s", what, dest);
	}
}

int ledger_backup(struct ledger *l, const char *file, struct ledger_backup_info *info,
                  struct err *e)
{
	memset(info, 0, sizeof(*info));
	uint32_t schema = 0;
	/* the history chain too (before a migration, the backup taken of the
	 * older ledger checks its trees only: its tables are not open yet) */
	struct ledger_verify_report vr;
	int rc = ledger_verify(l, &vr, e);
	if (rc) {
		if (rc == ERR_LEDGER)
			err_prefix(e, "no backup was written: ");
		return rc;
	}
	rc = ledger_read(l, read_schema, &schema, e);
	return rc ? rc : ledger_backup_schema(l, file, schema, info, e);
}

int ledger_backup_schema(struct ledger *l, const char *file, uint32_t schema,
                         struct ledger_backup_info *info, struct err *e)
{
	memset(info, 0, sizeof(*info));
	int64_t start = time_now_ms();
	struct trailer t = {0};
	t.schema = schema;
	/* a damaged ledger is reported, never copied as good */
	struct ledger_tree_report tr;
	int rc = ledger_check_trees(l, &tr, e);
	if (rc) {
		if (rc == ERR_LEDGER)
			err_prefix(e, "no backup was written: ");
		return rc;
	}
	size_t tl = strlen(file) + 32;
	char *tmp = malloc(tl);
	if (tmp == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	snprintf(tmp, tl, "%s.tmp-%ld", file, (long)getpid());
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int en = errno;
		rc = no_room(en) ? write_error(e, en, "the backup", file)
		                 : err_sys(e, ERR_IO, en, "cannot create %s", tmp);
		free(tmp);
		return rc;
	}
	struct stat st;
	uint8_t tb[TRAILER_LEN];
	if (fchmod(fd, 0600) != 0) { /* whatever the umask */
		rc = err_sys(e, ERR_IO, errno, "cannot make %s private", tmp);
		goto out;
	}
	if ((rc = copy_env(l, fd, "the backup", file, &info->compacted, e)))
		goto out;
	if (fstat(fd, &st) != 0) {
		rc = err_sys(e, ERR_IO, errno, "cannot stat %s", tmp);
		goto out;
	}
	t.data_len = (uint64_t)st.st_size;
	if ((rc = hash_fd(fd, t.data_len, -1, NULL, t.sha, tmp, e)))
		goto out;
	trailer_put(tb, &t);
	ssize_t w = pwrite(fd, tb, sizeof(tb), (off_t)t.data_len);
	if (w != (ssize_t)sizeof(tb) || fsync(fd) != 0) {
		/* a short write to a regular file: the disk filled up */
		int en = w >= 0 && w != (ssize_t)sizeof(tb) ? ENOSPC : errno;
		rc = no_room(en) ? write_error(e, en, "the backup", file)
		                 : err_sys(e, ERR_IO, en, "cannot write %s", tmp);
		goto out;
	}
	if (close(fd) != 0) {
		int en = errno;
		fd = -1;
		rc = no_room(en) ? write_error(e, en, "the backup", file)
		                 : err_sys(e, ERR_IO, en, "cannot write %s", tmp);
		goto out;
	}
	fd = -1;
	int dirfd;
	if ((rc = open_dir_of(file, &dirfd, e)))
		goto out;
	if (rename(tmp, file) != 0) {
		rc = err_sys(e, ERR_IO, errno, "cannot rename %s to %s", tmp, file);
		close(dirfd);
		goto out;
	}
	if ((rc = fsync_dir(dirfd, file, e)))
		goto out;
	info->bytes = t.data_len + TRAILER_LEN;
	info->schema_version = t.schema;
	info->took_ms = time_now_ms() - start;
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

int ledger_copy(struct ledger *l, const char *dir, struct err *e)
{
	char data[4096];
	int n = snprintf(data, sizeof(data), "%s/data.mdb", dir);
	if (n < 0 || (size_t)n >= sizeof(data))
		return err_set(e, ERR_LEDGER, "path too long: %s", dir);
	int fd = open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, ERR_IO, errno, "cannot create %s", data);
	bool compacted;
	int rc = copy_env(l, fd, "the copy", data, &compacted, e);
	if (close(fd) != 0 && rc == 0)
		rc = err_sys(e, ERR_IO, errno, "cannot write %s", data);
	if (rc)
		unlink(data);
	return rc;
}

/* Open file and check its trailer and size; *fd_out is open on success. */
static int check_file(const char *file, int *fd_out, struct trailer *t, struct err *e)
{
	*fd_out = -1;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, ERR_IO, errno, "cannot open the backup %s", file);
	struct stat st;
	uint8_t tb[TRAILER_LEN];
	int rc = 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = err_set(e, ERR_LEDGER, "the backup %s is not a regular file", file);
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (size < TRAILER_LEN ||
	    pread(fd, tb, sizeof(tb), (off_t)(size - TRAILER_LEN)) != (ssize_t)sizeof(tb) ||
	    trailer_get(tb, t) != 0) {
		rc =
		    err_set(e, ERR_LEDGER,
		            "the backup %s is not whole: it does not end with an optsync backup "
		            "trailer (it was cut short, or it is not a file `optsync backup` made)",
		            file);
		goto out;
	}
	if (t->data_len != size - TRAILER_LEN) {
		rc = err_set(e, ERR_LEDGER,
		             "the backup %s is damaged: its trailer says %llu bytes of ledger, the "
		             "file holds %llu",
		             file, (unsigned long long)t->data_len,
		             (unsigned long long)(size - TRAILER_LEN));
		goto out;
	}
	if (t->schema == 0 || t->schema > LEDGER_SCHEMA_VERSION) {
		rc = err_set(e, ERR_LEDGER,
		             "the backup %s holds a ledger of schema version %u; this optsync "
		             "knows versions 1 to %d (restore it with a newer optsync)",
		             file, t->schema, LEDGER_SCHEMA_VERSION);
		goto out;
	}
out:
	if (rc)
		close(fd);
	else
		*fd_out = fd;
	return rc;
}

static int sha_matches(const struct trailer *t, const uint8_t got[32], const char *file,
                       struct err *e)
{
	if (memcmp(got, t->sha, 32) == 0)
		return 0;
	return err_set(e, ERR_LEDGER,
	               "the backup %s is damaged: its content does not match the SHA-256 recorded "
	               "when it was made",
	               file);
}

int ledger_backup_check(const char *file, struct ledger_backup_info *info, struct err *e)
{
	memset(info, 0, sizeof(*info));
	struct trailer t = {0};
	int fd, rc = check_file(file, &fd, &t, e);
	if (rc)
		return rc;
	uint8_t sha[32];
	rc = hash_fd(fd, t.data_len, -1, NULL, sha, file, e);
	close(fd);
	if (rc == 0)
		rc = sha_matches(&t, sha, file, e);
	if (rc == 0) {
		info->bytes = t.data_len + TRAILER_LEN;
		info->schema_version = t.schema;
	}
	return rc;
}

int ledger_remove_dir(const char *dir)
{
	static const char *const files[] = {"data.mdb", "lock.mdb", "sync.lock", "map.lock",
	                                    "open.lock"};
	char p[4096];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int n = snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		if (n > 0 && (size_t)n < sizeof(p))
			unlink(p);
	}
	return rmdir(dir) == 0 || errno == ENOENT ? 0 : -1;
}

/* state.path must be missing or empty (a volume's lost+found, and what an
 * interrupted restore left, do not count). */
static int check_target(const char *path, struct err *e)
{
	DIR *d = opendir(path);
	if (d == NULL) {
		if (errno == ENOENT) {
			if (mkdir(path, 0700) != 0)
				return no_room(errno)
				           ? write_error(e, errno, "state.path", path)
				           : err_sys(e, ERR_IO, errno, "cannot create %s", path);
			return 0;
		}
		return err_sys(e, ERR_LEDGER, errno, "cannot open state.path %s", path);
	}
	int rc = 0;
	char data[4096];
	int n = snprintf(data, sizeof(data), "%s/data.mdb", path);
	if (n > 0 && (size_t)n < sizeof(data) && access(data, F_OK) == 0)
		rc = err_set(e, ERR_LEDGER,
		             "state.path %s already holds a ledger; restore only fills an empty "
		             "state.path, it never overwrites one (move that ledger away, or point "
		             "state.path at a new directory)",
		             path);
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
		    strcmp(name, "lost+found") == 0 || strcmp(name, STAGING) == 0)
			continue;
		rc = err_set(e, ERR_LEDGER,
		             "state.path %s is not empty (it holds '%s'); restore only fills an "
		             "empty state.path",
		             path, name);
	}
	closedir(d);
	return rc;
}

int ledger_restore(const char *file, const struct ledger_options *opt,
                   struct ledger_backup_info *info, struct ledger_verify_report *rep, struct err *e)
{
	memset(info, 0, sizeof(*info));
	memset(rep, 0, sizeof(*rep));
	struct trailer t = {0};
	int fd = -1, out = -1, rc;
	char staging[4096], data[4096], final[4096];
	if (snprintf(staging, sizeof(staging), "%s/%s", opt->path, STAGING) >=
	        (int)sizeof(staging) ||
	    snprintf(data, sizeof(data), "%s/data.mdb", staging) >= (int)sizeof(data) ||
	    snprintf(final, sizeof(final), "%s/data.mdb", opt->path) >= (int)sizeof(final))
		return err_set(e, ERR_LEDGER, "state.path too long: %s", opt->path);
	/* the backup first: a bad file must not even create state.path */
	if ((rc = check_file(file, &fd, &t, e)))
		return rc;
	if ((rc = check_target(opt->path, e)))
		goto out;
	ledger_remove_dir(staging);
	if (mkdir(staging, 0700) != 0) {
		int en = errno;
		rc = no_room(en)
		         ? write_error(e, en, "the restored ledger in state.path", opt->path)
		         : err_sys(e, ERR_IO, en, "cannot create %s", staging);
		goto out;
	}
	out = open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		int en = errno;
		rc = no_room(en)
		         ? write_error(e, en, "the restored ledger in state.path", opt->path)
		         : err_sys(e, ERR_IO, en, "cannot create %s", data);
		goto out;
	}
	uint8_t sha[32];
	if ((rc = hash_fd(fd, t.data_len, out, opt->path, sha, file, e)) ||
	    (rc = sha_matches(&t, sha, file, e)))
		goto out;
	if (fsync(out) != 0) {
		int en = errno;
		rc = no_room(en)
		         ? write_error(e, en, "the restored ledger in state.path", opt->path)
		         : err_sys(e, ERR_IO, en, "cannot sync %s", data);
		goto out;
	}
	close(out);
	out = -1;
	/* its trees first (LMDB would follow a damaged page), then open it as
	 * optsync will (an older schema is migrated here), and check the whole
	 * history chain before it takes the ledger's place */
	struct ledger_tree_report tr;
	if ((rc = ledger_check_file(data, &tr, e))) {
		if (rc == ERR_LEDGER)
			err_prefix(e, "the backup %s is damaged, nothing was restored: ", file);
		goto out;
	}
	struct ledger_options so = *opt;
	so.no_migration_backup = true; /* the file is the backup */
	so.path = staging;
	so.create = false;
	struct ledger *l = NULL;
	if ((rc = ledger_open(&l, &so, e)))
		goto out;
	rc = ledger_verify(l, rep, e);
	ledger_close(l);
	if (rc) {
		if (rc == ERR_LEDGER) /* a verdict; out of memory is none */
			err_prefix(e,
			           "the backup %s does not verify, nothing was restored: ", file);
		goto out;
	}
	int dirfd;
	if ((rc = open_dir_of(final, &dirfd, e)))
		goto out;
	if (rename(data, final) != 0) {
		rc =
		    err_sys(e, ERR_IO, errno, "cannot move the restored ledger into %s", opt->path);
		close(dirfd);
		goto out;
	}
	rc = fsync_dir(dirfd, final, e);
	info->bytes = t.data_len + TRAILER_LEN;
	info->schema_version = t.schema;
out:
	if (out >= 0)
		close(out);
	if (fd >= 0)
		close(fd);
	ledger_remove_dir(staging);
	return rc;
}
