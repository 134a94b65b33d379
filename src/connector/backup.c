/* Backups and restores of the ledger: the use cases behind `optsync
 * backup`, `optsync restore` and the backups `optsync run` takes on its
 * own ([state] backup_dir, backup_every, backup_keep). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connector/internal.h"
#include "util/timefmt.h"

/* Scheduled backups are named optsync-YYYYMMDDTHHMMSS.mmmZ.backup: the
 * names sort by time, and rotation touches nothing else in the folder. */
#define NAME_PREFIX  "optsync-"
#define NAME_SUFFIX  ".backup"
#define NAME_LEN     (sizeof(NAME_PREFIX) - 1 + 20 + sizeof(NAME_SUFFIX) - 1) /* stamp: 20 */
#define STALE_TMP_MS (3600 * 1000)

static void fill(struct conn_backup_result *out, const char *file,
                 const struct ledger_backup_info *info)
{
	snprintf(out->file, sizeof(out->file), "%s", file);
	out->bytes = info->bytes;
	out->schema_version = info->schema_version;
	out->compacted = info->compacted;
	out->took_ms = info->took_ms;
}

int conn_backup(struct conn *c, const char *file, struct conn_backup_result *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (strlen(file) >= sizeof(out->file))
		return err_set(e, ERR_USAGE, "backup file name too long: %.64s...", file);
	struct ledger_backup_info info;
	out->taken_at = time_now_ms();
	int rc = ledger_backup(c->l, file, &info, e);
	if (rc == 0)
		fill(out, file, &info);
	return rc;
}

static bool scheduled_name(const char *n)
{
	size_t l = strlen(n);
	return l == NAME_LEN && strncmp(n, NAME_PREFIX, sizeof(NAME_PREFIX) - 1) == 0 &&
	       strcmp(n + l - (sizeof(NAME_SUFFIX) - 1), NAME_SUFFIX) == 0;
}

/* A temporary file an interrupted backup left: NAME.backup.tmp-PID. */
static bool stale_tmp(const char *dir, const char *n, int64_t now)
{
	const char *t = strstr(n, NAME_SUFFIX ".tmp-");
	if (strncmp(n, NAME_PREFIX, sizeof(NAME_PREFIX) - 1) != 0 || t == NULL)
		return false;
	char p[4096];
	struct stat st;
	int k = snprintf(p, sizeof(p), "%s/%s", dir, n);
	return k > 0 && (size_t)k < sizeof(p) && stat(p, &st) == 0 &&
	       now - (int64_t)st.st_mtime * 1000 > STALE_TMP_MS;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The scheduled backups in dir, oldest first (*names malloc'ed, each name
 * too); stale temporary files are removed on the way. */
static int list_backups(const char *dir, char ***names, size_t *n, struct err *e)
{
	*names = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return err_sys(e, ERR_IO, errno, "state.backup_dir %s", dir);
	size_t cap = 0;
	int rc = 0;
	int64_t now = time_now_ms();
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (stale_tmp(dir, de->d_name, now)) {
			char p[4096];
			int k = snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			if (k > 0 && (size_t)k < sizeof(p))
				unlink(p);
			continue;
		}
		if (!scheduled_name(de->d_name))
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **g = realloc(*names, nc * sizeof(*g));
			if (g == NULL) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
			*names = g;
			cap = nc;
		}
		if (((*names)[*n] = strdup(de->d_name)) == NULL)
			rc = err_set(e, ERR_NOMEM, "out of memory");
		else
			(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_names);
	return rc;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int conn_backup_last(const struct config *cfg, int64_t *at, struct err *e)
{
	*at = 0;
	char **names;
	size_t n;
	struct stat ds;
	if (stat(cfg->state.backup_dir, &ds) != 0 && errno == ENOENT)
		return 0; /* none yet: the first scheduled backup makes the folder */
	int rc = list_backups(cfg->state.backup_dir, &names, &n, e);
	if (rc == 0 && n) {
		char p[4096];
		struct stat st;
		int k = snprintf(p, sizeof(p), "%s/%s", cfg->state.backup_dir, names[n - 1]);
		if (k > 0 && (size_t)k < sizeof(p) && stat(p, &st) == 0)
			*at = (int64_t)st.st_mtime * 1000;
	}
	free_names(names, n);
	return rc;
}

/* state.backup_dir made when it is not there (0700), its last folder
 * only: a missing parent is refused, for it is often a volume that is not
 * mounted, and backups written beneath its mount point would fill the
 * wrong disk. *created: it was made now. */
static int backup_dir_ready(const char *dir, bool *created, struct err *e)
{
	*created = false;
	if (mkdir(dir, 0700) != 0) {
		if (errno == EEXIST)
			return 0; /* not a folder? the backup's file then fails, naming it */
		if (errno == ENOENT)
			return err_set(e, ERR_IO,
			               "state.backup_dir %s: the folder above it does not exist "
			               "(optsync makes only the last folder of backup_dir; is the "
			               "volume mounted?)",
			               dir);
		return err_sys(e, ERR_IO, errno, "state.backup_dir %s: cannot create it", dir);
	}
	*created = true;
	/* the new folder's name is durable before a backup is said to be */
	char up[4096];
	int k = snprintf(up, sizeof(up), "%s", dir);
	int fd = k > 0 && (size_t)k < sizeof(up)
	             ? open(dirname(up), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
	             : -1;
	if (fd < 0 || fsync(fd) != 0) {
		int en = errno;
		if (fd >= 0)
			close(fd);
		return err_sys(e, ERR_IO, en,
		               "state.backup_dir %s: cannot sync the folder above it", dir);
	}
	close(fd);
	return 0;
}

int conn_backup_scheduled(struct conn *c, struct conn_backup_result *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	const char *dir = c->cfg->state.backup_dir;
	if (dir == NULL)
		return err_set(e, ERR_CONFIG, "state.backup_dir is not set");
	char when[TIME_STR_MAX], stamp[32], file[sizeof(out->file)];
	int64_t now = time_now_ms();
	time_format(now - now % 1000, when); /* 2026-11-29T06:58:00Z */
	/* YYYYMMDDTHHMMSS.mmmZ: the RFC 3339 form without separators */
	snprintf(stamp, sizeof(stamp), "%.4s%.2s%.2sT%.2s%.2s%.2s.%03dZ", when, when + 5, when + 8,
	         when + 11, when + 14, when + 17, (int)(now % 1000));
	int k = snprintf(file, sizeof(file), "%s/" NAME_PREFIX "%s" NAME_SUFFIX, dir, stamp);
	if (k < 0 || (size_t)k >= sizeof(file))
		return err_set(e, ERR_CONFIG, "state.backup_dir is too long");
	bool created;
	int rc = backup_dir_ready(dir, &created, e);
	if (rc == 0)
		rc = conn_backup(c, file, out, e);
	if (rc)
		return rc;
	out->created_dir = created;
	/* keep the newest backup_keep; a failure to remove one is not a failed backup */
	char **names;
	size_t n;
	struct err le;
	if (list_backups(dir, &names, &n, &le) == 0) {
		for (size_t i = 0; i + c->cfg->state.backup_keep < n; i++) {
			char p[4096];
			k = snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
			if (k > 0 && (size_t)k < sizeof(p) && unlink(p) == 0)
				out->removed++;
		}
	}
	free_names(names, n);
	return 0;
}

int conn_restore(const struct config *cfg, const char *file, struct conn_backup_result *out,
                 struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (strlen(file) >= sizeof(out->file))
		return err_set(e, ERR_USAGE, "backup file name too long: %.64s...", file);
	struct ledger_options o = {cfg->state.path, cfg->state.map_size, cfg->state.max_map_size,
	                           false, false};
	struct ledger_backup_info info;
	struct ledger_verify_report rep;
	int rc = ledger_restore(file, &o, &info, &rep, e);
	if (rc == 0) {
		fill(out, file, &info);
		out->events_verified = rep.events;
	}
	return rc;
}
