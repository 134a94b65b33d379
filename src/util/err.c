#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void err_vformat(char *dst, size_t cap, const char *fmt, va_list ap) ERR_PRINTF(3, 0);
static void err_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
	int n = vsnprintf(dst, cap, fmt, ap);
	if (n < 0) {
		snprintf(dst, cap, "(unformattable error message)");
	} else if ((size_t)n >= cap && cap > 4) {
		memcpy(dst + cap - 4, "...", 4);
	}
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (e == NULL)
		return code;
	va_list ap;
	va_start(ap, fmt);
	e->code = code;
	err_vformat(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

int err_sys(struct err *e, int code, int errnum, const char *fmt, ...)
{
	if (e == NULL)
		return code;
	char head[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	err_vformat(head, sizeof(head), fmt, ap);
	va_end(ap);
	return err_set(e, code, "%s: %s", head, strerror(errnum));
}

void err_prefix(struct err *e, const char *fmt, ...)
{
	if (e == NULL)
		return;
	char head[ERR_MSG_MAX], old[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	err_vformat(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	int n = snprintf(e->msg, sizeof(e->msg), "%s%s", head, old);
	if (n < 0 || (size_t)n >= sizeof(e->msg))
		memcpy(e->msg + sizeof(e->msg) - 4, "...", 4);
}

const char *err_code_name(int code)
{
	switch (code) {
	case ERR_OK:
		return "ok";
	case ERR_NOMEM:
		return "nomem";
	case ERR_USAGE:
		return "usage";
	case ERR_CONFIG:
		return "config";
	case ERR_IO:
		return "io";
	case ERR_LEDGER:
		return "ledger";
	case ERR_REFUSED:
		return "refused";
	case ERR_INVALID:
		return "invalid";
	case ERR_NOTFOUND:
		return "not_found";
	case ERR_CONFLICT:
		return "conflict";
	case ERR_REMOTE:
		return "remote";
	case ERR_RETRY:
		return "retryable";
	case ERR_LIMIT:
		return "limit";
	case ERR_BUSY:
		return "busy";
	case ERR_RATE:
		return "rate";
	case ERR_PARTIAL:
		return "partial";
	case ERR_EVIDENCE:
		return "evidence";
	case ERR_INTERNAL:
		return "internal";
	default:
		return "unknown";
	}
}
