/* Reading and writing files safely. */
#ifndef OPTSYNC_UTIL_FILEIO_H
#define OPTSYNC_UTIL_FILEIO_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

/* Read a whole file into out (initialised here with cap max). ERR_IO names
 * the path; ERR_LIMIT when the file is larger than max. */
int file_read_all(const char *path, size_t max, struct buf *out, struct err *e);

/* Secret files (tokens, keys, passwords): refused when path is not a
 * regular file, when others may read, write or run it, when the group may
 * write it, or when the group may read it while root does not own it
 * (PostgreSQL's rule for key files: it admits secret volumes, root-owned
 * with mode 0440). A symbolic link is followed (Kubernetes mounts secrets
 * as links) and the file it names is checked. Every failure is ERR_CONFIG
 * naming path ("secret file PATH: mode 644 lets others read it; ..."),
 * but ERR_NOMEM.
 *
 * file_read_secret reads a text secret: trailing CR/LF are removed, and an
 * empty one is refused. The caller wipes and frees *out (secret_free). */
int file_read_secret(const char *path, size_t max, char **out, size_t *len, struct err *e);
/* A binary secret (a link key) as it is, into out (initialised here with
 * cap max; buf_free wipes it). */
int file_read_secret_bytes(const char *path, size_t max, struct buf *out, struct err *e);
/* Only the checks, without reading: *st is the file's (its size, for one). */
int file_check_secret(const char *path, struct stat *st, struct err *e);
void secret_free(char *s, size_t len);

/* The mount point of the file system that holds path (or, when path is
 * not there, the nearest folder above it that is), as an absolute path in
 * out: what `df` names, for a message about a full disk. 0, or ERR_IO
 * when it cannot be told (out is then ""). */
int file_mount_point(const char *path, char *out, size_t cap, struct err *e);

/* Write data to path atomically: a temporary file in the same directory,
 * fsync, rename, fsync of the directory. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e);

#endif
