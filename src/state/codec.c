#include "state/codec.h"

#include <string.h>

void enc_init(struct enc *en, uint8_t *buf, size_t cap)
{
	en->p = buf;
	en->cap = cap;
	en->len = 0;
	en->overflow = 0;
	if (cap > 0)
		en->p[en->len++] = CODEC_VERSION;
	else
		en->overflow = 1;
}

static void put_byte(struct enc *en, uint8_t b)
{
	if (en->len < en->cap)
		en->p[en->len++] = b;
	else
		en->overflow = 1;
}

static void put_varint(struct enc *en, uint64_t v)
{
	while (v >= 0x80) {
		put_byte(en, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	put_byte(en, (uint8_t)v);
}

static void put_raw(struct enc *en, const void *p, size_t n)
{
	if (n > en->cap - en->len || en->len > en->cap) {
		en->overflow = 1;
		return;
	}
	memcpy(en->p + en->len, p, n);
	en->len += n;
}

void enc_uint(struct enc *en, unsigned field, uint64_t v)
{
	if (v == 0)
		return;
	put_byte(en, (uint8_t)(field << 2 | W_UINT));
	put_varint(en, v);
}

void enc_sint(struct enc *en, unsigned field, int64_t v)
{
	if (v == 0)
		return;
	put_byte(en, (uint8_t)(field << 2 | W_SINT));
	put_varint(en, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void enc_bytes(struct enc *en, unsigned field, const void *p, size_t n)
{
	if (n == 0)
		return;
	put_byte(en, (uint8_t)(field << 2 | W_BYTES));
	put_varint(en, n);
	put_raw(en, p, n);
}

void enc_str(struct enc *en, unsigned field, const char *s)
{
	enc_bytes(en, field, s, strlen(s));
}

void enc_hash(struct enc *en, unsigned field, const uint8_t h[32])
{
	static const uint8_t zero[32];
	if (memcmp(h, zero, 32) == 0)
		return;
	put_byte(en, (uint8_t)(field << 2 | W_HASH));
	put_raw(en, h, 32);
}

/* facts: 1 mask, 2 opted_out, 3 auth_type, 4 source_type, 5 consent_date,
 * 6 purpose, 7 auth_other, 8 source_other */
void enc_facts(struct enc *en, unsigned field, const struct ledger_facts *f, int with_texts)
{
	uint8_t buf[3 * (LEDGER_TEXT_MAX + 4) + 64];
	struct enc sub;
	enc_init(&sub, buf, sizeof(buf));
	sub.len = 0; /* nested: no version byte */
	enc_uint(&sub, 1, f->mask);
	enc_uint(&sub, 2, f->opted_out);
	enc_uint(&sub, 3, f->auth_type);
	enc_uint(&sub, 4, f->source_type);
	enc_sint(&sub, 5, f->consent_date);
	if (with_texts) {
		enc_str(&sub, 6, f->purpose);
		enc_str(&sub, 7, f->auth_other);
		enc_str(&sub, 8, f->source_other);
	}
	if (sub.overflow)
		en->overflow = 1;
	else if (sub.len > 0)
		enc_bytes(en, field, buf, sub.len);
}

int dec_init(struct dec *d, const void *p, size_t n)
{
	d->p = p;
	d->end = d->p + n;
	d->bad = 0;
	if (n == 0 || d->p[0] != CODEC_VERSION)
		return -1;
	d->p++;
	return 0;
}

static int get_varint(struct dec *d, uint64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (d->p >= d->end)
			return -1;
		uint8_t b = *d->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

int dec_next(struct dec *d, struct field *f)
{
	if (d->bad)
		return -1;
	if (d->p >= d->end)
		return 0;
	uint8_t tag = *d->p++;
	f->num = tag >> 2;
	f->wire = tag & 3;
	f->u = 0;
	f->s = 0;
	f->data = NULL;
	f->len = 0;
	switch (f->wire) {
	case W_UINT:
		if (get_varint(d, &f->u))
			goto bad;
		break;
	case W_SINT:
		if (get_varint(d, &f->u))
			goto bad;
		f->s = (int64_t)(f->u >> 1) ^ -(int64_t)(f->u & 1);
		break;
	case W_BYTES:
		if (get_varint(d, &f->u) || f->u > (uint64_t)(d->end - d->p))
			goto bad;
		f->data = d->p;
		f->len = (size_t)f->u;
		d->p += f->len;
		break;
	case W_HASH:
		if (d->end - d->p < 32)
			goto bad;
		f->data = d->p;
		f->len = 32;
		d->p += 32;
		break;
	}
	return 1;
bad:
	d->bad = 1;
	return -1;
}

int dec_str(const struct field *f, char *dst, size_t cap)
{
	if (f->wire != W_BYTES || f->len >= cap || memchr(f->data, '\0', f->len))
		return -1;
	memcpy(dst, f->data, f->len);
	dst[f->len] = '\0';
	return 0;
}

int dec_facts(const struct field *f, struct ledger_facts *out)
{
	if (f->wire != W_BYTES)
		return -1;
	/* whole facts, never merged with what *out held (a repeated field
	 * replaces the earlier one entirely) */
	ledger_facts_init(out);
	struct dec d = {f->data, f->data + f->len, 0};
	struct field g;
	int r;
	while ((r = dec_next(&d, &g)) == 1) {
		switch (g.num) {
		case 1:
			out->mask = (uint32_t)g.u;
			break;
		case 2:
			out->opted_out = g.u != 0;
			break;
		case 3:
			out->auth_type = (uint8_t)g.u;
			break;
		case 4:
			out->source_type = (uint8_t)g.u;
			break;
		case 5:
			out->consent_date = g.s;
			break;
		case 6:
			if (dec_str(&g, out->purpose, sizeof(out->purpose)))
				return -1;
			break;
		case 7:
			if (dec_str(&g, out->auth_other, sizeof(out->auth_other)))
				return -1;
			break;
		case 8:
			if (dec_str(&g, out->source_other, sizeof(out->source_other)))
				return -1;
			break;
		default:
			break;
		}
	}
	return r;
}

void enc_pflags(struct enc *en, unsigned field, const struct ledger_pflags *f)
{
	for (uint8_t i = 0; i < f->n && i < LEDGER_PFLAGS_MAX; i++) {
		uint8_t b[1 + LEDGER_PURPOSE_NAME_MAX];
		size_t n = strlen(f->v[i].name);
		if (n == 0 || n > LEDGER_PURPOSE_NAME_MAX)
			continue;
		b[0] = f->v[i].out ? 1 : 0;
		memcpy(b + 1, f->v[i].name, n);
		enc_bytes(en, field, b, 1 + n);
	}
}

int dec_pflag(const struct field *f, struct ledger_pflags *out)
{
	if (f->wire != W_BYTES || f->len < 2 || f->len > 1 + LEDGER_PURPOSE_NAME_MAX ||
	    f->data[0] > 1 || memchr(f->data + 1, 0, f->len - 1))
		return -1;
	char name[LEDGER_PURPOSE_NAME_MAX + 1];
	memcpy(name, f->data + 1, f->len - 1);
	name[f->len - 1] = '\0';
	return ledger_pflags_set(out, name, f->data[0] == 1);
}

int ledger_pflags_get(const struct ledger_pflags *f, const char *name)
{
	for (uint8_t i = 0; i < f->n && i < LEDGER_PFLAGS_MAX; i++)
		if (strcmp(f->v[i].name, name) == 0)
			return f->v[i].out ? 1 : 0;
	return -1;
}

int ledger_pflags_set(struct ledger_pflags *f, const char *name, bool out)
{
	size_t n = strlen(name);
	if (n == 0 || n > LEDGER_PURPOSE_NAME_MAX)
		return -1;
	for (uint8_t i = 0; i < f->n && i < LEDGER_PFLAGS_MAX; i++)
		if (strcmp(f->v[i].name, name) == 0) {
			f->v[i].out = out;
			return 0;
		}
	if (f->n >= LEDGER_PFLAGS_MAX)
		return -1;
	memcpy(f->v[f->n].name, name, n + 1);
	f->v[f->n++].out = out;
	return 0;
}
