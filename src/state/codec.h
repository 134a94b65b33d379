/* Internal: the ledger's value encoding.
 *
 * Every stored value is one version byte (CODEC_VERSION) followed by
 * fields. A field is a tag byte, (number << 2) | wire type, then:
 *   wire 0: an unsigned LEB128 varint;
 *   wire 1: a signed value, zigzag then LEB128;
 *   wire 2: bytes, a varint length then the bytes;
 *   wire 3: exactly 32 bytes (hashes, person keys).
 * Zero numbers and empty strings are omitted; fields are written in a
 * fixed order, so equal values encode to equal bytes (the history chain
 * hashes the encoding). A decoder skips field numbers it does not know,
 * so a newer optsync can add fields that an older one ignores; layout
 * changes that old code must not read bump LEDGER_SCHEMA_VERSION. */
#ifndef OPTSYNC_STATE_CODEC_H
#define OPTSYNC_STATE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "state/ledger.h"

#define CODEC_VERSION 1
#define CODEC_MAX     16384 /* the largest encoded value */

enum { W_UINT = 0, W_SINT = 1, W_BYTES = 2, W_HASH = 3 };

struct enc {
	uint8_t *p;
	size_t len, cap;
	int overflow;
};

void enc_init(struct enc *en, uint8_t *buf, size_t cap);
void enc_uint(struct enc *en, unsigned field, uint64_t v);
void enc_sint(struct enc *en, unsigned field, int64_t v);
void enc_bytes(struct enc *en, unsigned field, const void *p, size_t n);
void enc_str(struct enc *en, unsigned field, const char *s);
void enc_hash(struct enc *en, unsigned field, const uint8_t h[32]);
void enc_facts(struct enc *en, unsigned field, const struct ledger_facts *f, int with_texts);

struct dec {
	const uint8_t *p, *end;
	int bad;
};

struct field {
	unsigned num, wire;
	uint64_t u;
	int64_t s;
	const uint8_t *data;
	size_t len;
};

/* Start decoding a stored value; -1 when the version byte is unknown. */
int dec_init(struct dec *d, const void *p, size_t n);
/* 1 with the next field in f, 0 at the end, -1 on malformed input. */
int dec_next(struct dec *d, struct field *f);
/* Copy a bytes field into a C string of capacity cap (with its NUL);
 * -1 when it does not fit or holds a NUL. */
int dec_str(const struct field *f, char *dst, size_t cap);
int dec_facts(const struct field *f, struct ledger_facts *out);
/* Purpose checkboxes: one bytes field per entry, its out byte then its name. */
void enc_pflags(struct enc *en, unsigned field, const struct ledger_pflags *f);
/* Add one entry (a field written by enc_pflags) to f; -1 on bad input. */
int dec_pflag(const struct field *f, struct ledger_pflags *out);

#endif
