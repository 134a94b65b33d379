/* One error convention for the whole project.
 *
 * Functions return 0 on success or a negative ERR_* code. The message is
 * written once, where the failure is detected, and names the failing input;
 * callers pass it up unchanged. Only main() maps codes to exit statuses. */
#ifndef OPTSYNC_UTIL_ERR_H
#define OPTSYNC_UTIL_ERR_H

#include <stddef.h>

enum err_code {
	ERR_OK = 0,
	ERR_NOMEM = -1,     /* allocation failed */
	ERR_USAGE = -2,     /* bad command line */
	ERR_CONFIG = -3,    /* bad configuration */
	ERR_IO = -4,        /* file or system call failed */
	ERR_LEDGER = -5,    /* ledger missing, locked, corrupt or full */
	ERR_REFUSED = -6,   /* missing admin credentials or evidence */
	ERR_INVALID = -7,   /* input failed validation (parse error, bad field) */
	ERR_NOTFOUND = -8,  /* no such person, conflict, record */
	ERR_CONFLICT = -9,  /* state does not allow the change */
	ERR_REMOTE = -10,   /* Salesforce or network failure, permanent */
	ERR_RETRY = -11,    /* Salesforce or network failure, retryable */
	ERR_LIMIT = -12,    /* a hard cap was reached (size, count) */
	ERR_INTERNAL = -13, /* a bug: an invariant did not hold */
	ERR_BUSY = -14,     /* a bounded resource is in use; try again shortly */
	ERR_RATE = -15,     /* too many failures from one client; try again later */
	ERR_PARTIAL = -16,  /* a bulk run applied the valid rows and rejected others */
	ERR_EVIDENCE = -17, /* consent evidence missing or not enough (exit 4, HTTP 422) */
};

#define ERR_MSG_MAX 512

struct err {
	int code;
	char msg[ERR_MSG_MAX];
};

#if defined(__GNUC__)
#define ERR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ERR_PRINTF(a, b)
#endif

/* Record an error and return code. e may be NULL. A message longer than
 * ERR_MSG_MAX is cut and ends in "...". */
int err_set(struct err *e, int code, const char *fmt, ...) ERR_PRINTF(3, 4);
/* Like err_set, with ": <strerror(errnum)>" appended. */
int err_sys(struct err *e, int code, int errnum, const char *fmt, ...) ERR_PRINTF(4, 5);
/* Prefix an existing message with context ("file.toml: "). */
void err_prefix(struct err *e, const char *fmt, ...) ERR_PRINTF(2, 3);
/* A short name for a code, "config" or "ledger". */
const char *err_code_name(int code);

#endif
