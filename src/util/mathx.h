/* Overflow-checked arithmetic (after libgit2's integer.h). Each returns
 * nonzero when the result does not fit. */
#ifndef OPTSYNC_UTIL_MATHX_H
#define OPTSYNC_UTIL_MATHX_H

#include <stddef.h>
#include <stdint.h>

static inline int size_add_overflow(size_t a, size_t b, size_t *out)
{
	return __builtin_add_overflow(a, b, out);
}

static inline int size_mul_overflow(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

static inline int i64_add_overflow(int64_t a, int64_t b, int64_t *out)
{
	return __builtin_add_overflow(a, b, out);
}

static inline int i64_mul_overflow(int64_t a, int64_t b, int64_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

#endif
