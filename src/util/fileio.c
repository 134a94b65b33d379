#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read what is left of fd into out (initialised here with cap max); errors
 * name path. */
static int read_fd(int fd, const char *path, size_t max, struct buf *out, struct err *e)
{
	buf_init(out, max);
	int rc = 0;
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = err_sys(e, ERR_IO, errno, "%s: cannot read", path);
			break;
		}
		if (n == 0)
			break;
		rc = buf_append(out, chunk, (size_t)n, e);
		if (rc) {
			err_prefix(e, "%s: ", path);
			break;
		}
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	if (rc == 0 && out->data == NULL)
		rc = buf_append(out, "", 0, e);
	if (rc)
		buf_free(out);
	return rc;
}

int file_read_all(const char *path, size_t max, struct buf *out, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		buf_init(out, max);
		return err_sys(e, ERR_IO, errno, "%s: cannot open", path);
	}
	int rc = read_fd(fd, path, max, out, e);
	close(fd);
	return rc;
}

/* Open path as a secret file, *fd open on success; the rule is in
 * fileio.h. ERR_CONFIG naming path. */
static int secret_open(const char *path, int *fd_out, struct stat *st, struct err *e)
{
	*fd_out = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ELOOP)
		fd = open(path, O_RDONLY | O_CLOEXEC); /* Kubernetes mounts secrets as links */
	if (fd < 0)
		return err_sys(e, ERR_CONFIG, errno, "secret file %s: cannot open", path);
	int rc = 0;
	/* PostgreSQL's rule for key files: others never; the group may read
	 * when root owns the file (a Kubernetes secret volume with defaultMode
	 * 0440 and the Pod's fsGroup, a Docker secret made 0440); nobody but
	 * the owner may write */
	unsigned mode = 0;
	if (fstat(fd, st) != 0) {
		rc = err_sys(e, ERR_CONFIG, errno, "secret file %s: cannot stat", path);
		goto out;
	}
	mode = (unsigned)(st->st_mode & 0777);
	if (!S_ISREG(st->st_mode))
		rc = err_set(e, ERR_CONFIG, "secret file %s: not a regular file", path);
	else if (st->st_mode & S_IRWXO)
		rc = err_set(e, ERR_CONFIG,
		             "secret file %s: mode %03o lets others read it; chmod 600 it (for "
		             "a Kubernetes secret volume set defaultMode: 0440 and the Pod's "
		             "fsGroup; for a Docker secret, mode 0440)",
		             path, mode);
	else if (st->st_mode & (S_IWGRP | S_IXGRP))
		rc = err_set(e, ERR_CONFIG,
		             "secret file %s: mode %03o lets the group write it; chmod 600 it (or "
		             "0440 when root owns it)",
		             path, mode);
	else if ((st->st_mode & S_IRGRP) && st->st_uid != 0)
		rc = err_set(e, ERR_CONFIG,
		             "secret file %s: mode %03o lets the group read it, and root does not "
		             "own it; chmod 600 it (a group-readable secret must belong to root, "
		             "as secret volumes do)",
		             path, mode);
out:
	if (rc)
		close(fd);
	else
		*fd_out = fd;
	return rc;
}

int file_check_secret(const char *path, struct stat *st, struct err *e)
{
	int fd, rc = secret_open(path, &fd, st, e);
	if (rc == 0)
		close(fd);
	return rc;
}

int file_read_secret_bytes(const char *path, size_t max, struct buf *out, struct err *e)
{
	struct stat st;
	int fd, rc = secret_open(path, &fd, &st, e);
	if (rc) {
		buf_init(out, max);
		return rc;
	}
	rc = read_fd(fd, path, max, out, e);
	close(fd);
	if (rc && rc != ERR_NOMEM)
		rc = e->code = ERR_CONFIG; /* a secret that cannot be read is a config error */
	return rc;
}

int file_read_secret(const char *path, size_t max, char **out, size_t *len, struct err *e)
{
	*out = NULL;
	*len = 0;
	struct buf b;
	int rc = file_read_secret_bytes(path, max, &b, e);
	if (rc)
		return rc;
	while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	if (b.len == 0) {
		buf_free(&b);
		return err_set(e, ERR_CONFIG, "secret file %s: empty", path);
	}
	*out = buf_detach(&b, len);
	return 0;
}

void secret_free(char *s, size_t len)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, len);
	free(s);
}

int file_mount_point(const char *path, char *out, size_t cap, struct err *e)
{
	out[0] = '\0';
	char cur[4096], up[4096];
	struct stat st, ust;
	int n = snprintf(cur, sizeof(cur), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(cur))
		return err_set(e, ERR_IO, "%s: path too long", path);
	/* the nearest part of path that is there: a file being made may not be */
	while (stat(cur, &st) != 0) {
		if (errno != ENOENT || strcmp(cur, "/") == 0 || strcmp(cur, ".") == 0)
			return err_sys(e, ERR_IO, errno, "%s: cannot stat", cur);
		const char *d = dirname(cur); /* in cur, or a static "." or "/" */
		memmove(cur, d, strlen(d) + 1);
	}
	char *real = realpath(cur, NULL);
	if (real == NULL)
		return err_sys(e, ERR_IO, errno, "%s: cannot resolve", cur);
	n = snprintf(cur, sizeof(cur), "%s", real);
	free(real);
	if (n < 0 || (size_t)n >= sizeof(cur))
		return err_set(e, ERR_IO, "%s: path too long", path);
	/* up from there while the device stays the same */
	while (strcmp(cur, "/") != 0) {
		memcpy(up, cur, (size_t)n + 1);
		const char *parent = dirname(up);
		if (stat(parent, &ust) != 0 || ust.st_dev != st.st_dev)
			break;
		n = snprintf(cur, sizeof(cur), "%s", parent);
	}
	if ((size_t)n >= cap)
		return err_set(e, ERR_IO, "%s: path too long", cur);
	memcpy(out, cur, (size_t)n + 1);
	return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e)
{
	char tmp[4096];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return err_set(e, ERR_IO, "%s: path too long", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return err_sys(e, ERR_IO, errno, "%s: cannot create", tmp);
	const char *p = data;
	size_t left = len;
	int rc = 0;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = err_sys(e, ERR_IO, errno, "%s: cannot write", tmp);
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = err_sys(e, ERR_IO, errno, "%s: fsync", tmp);
	if (close(fd) != 0 && rc == 0)
		rc = err_sys(e, ERR_IO, errno, "%s: close", tmp);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = err_sys(e, ERR_IO, errno, "%s: cannot rename to %s", tmp, path);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	char dir[4096];
	n = snprintf(dir, sizeof(dir), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return err_set(e, ERR_IO, "%s: path too long", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0)
			rc = err_sys(e, ERR_IO, errno, "%s: fsync of directory", path);
		close(dfd);
	}
	return rc;
}
