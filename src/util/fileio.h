/* Reading and writing files safely. */
#ifndef OPTSYNC_UTIL_FILEIO_H
#define OPTSYNC_UTIL_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

/* Read a whole file into out (initialised here with cap max). ERR_IO names
 * the path; ERR_LIMIT when the file is larger than max. */
int file_read_all(const char *path, size_t max, struct buf *out, struct err *e);

/* Read a secret (token, key, password) from path. Refuses a file that is
 * not a regular file, that others may read, write or run, that the group
 * may write, or that the group may read while root does not own it
 * (PostgreSQL's rule for key files: it admits secret volumes, root-owned
 * with mode 0440). Trailing CR/LF are removed. The caller wipes and frees
 * *out (secret_free). */
int file_read_secret(const char *path, size_t max, char **out, size_t *len, struct err *e);
void secret_free(char *s, size_t len);

/* Write data to path atomically: a temporary file in the same directory,
 * fsync, rename, fsync of the directory. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e);

#endif
