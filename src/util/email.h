/* Email addresses: the one normalization every entrance uses (the CLI, the
 * local API, bulk files, Salesforce records, links) and the ledger's
 * migration re-keys by, and the quoting of untrusted text in messages.
 *
 * The normalized form (docs/sync-rules.md, "Who is one person"):
 *   - surrounding white space trimmed (ASCII, no-break and ideographic
 *     spaces, a byte order mark);
 *   - refused: invalid UTF-8 (overlong forms, surrogates, truncated
 *     sequences), control characters (C0, DEL, C1), an unquoted special of
 *     RFC 5321, a malformed quoted local part, no or two '@', a domain
 *     without a dot or with an empty label, more than 254 bytes once
 *     normalized;
 *   - the domain in its IDNA2008 A-label form (UTS #46 non-transitional
 *     processing of NFC input, libidn2), lower-cased: bücher.example,
 *     BÜCHER.Example and XN--BCHER-KVA.example are xn--bcher-kva.example;
 *   - the local part in Unicode NFC, lower-cased by the full Unicode case
 *     mapping (libunistring's u8_tolower, no language): ÅSA and åsa, a
 *     precomposed é and e + U+0301, are one local part.
 * An address of ASCII only whose domain has no "xn--" label takes a fast
 * path that lower-cases it byte by byte, which gives the same result: the
 * normalized form of such an address is what optsync has always stored. */
#ifndef OPTSYNC_UTIL_EMAIL_H
#define OPTSYNC_UTIL_EMAIL_H

#include <stddef.h>

#include "util/err.h"

#define EMAIL_MAX 254 /* bytes of a normalized address, RFC 5321 path limit */

/* Normalize in into out (EMAIL_MAX + 1 bytes, NUL-terminated). ERR_INVALID
 * with a message that names the input (quoted as email_quote does, so that
 * the message itself is valid UTF-8) and says what is wrong; ERR_NOMEM.
 * out holds "" on failure. Thread-safe; normalizing a normalized address
 * gives it back unchanged. */
int email_normalize(const char *in, char out[EMAIL_MAX + 1], struct err *e);

/* An address an optsync before schema 6 stored (the ledger's migration):
 * as email_normalize, except that one that is not valid UTF-8, which that
 * optsync took from a Latin-1 file or request, is read as Windows-1252
 * (Latin-1's superset) first. *recoded says whether it was. */
int email_normalize_stored(const char *stored, char out[EMAIL_MAX + 1], int *recoded,
                           struct err *e);

/* s is valid UTF-8 (control characters allowed: JSON escapes them). */
int email_utf8_valid(const char *s);

/* What a response echoes of an input string s: s itself when it is valid
 * UTF-8, else s quoted as email_quote does (up to 254 bytes) into buf
 * (EMAIL_ECHO_MAX bytes), so that no output carries bytes that are not
 * UTF-8. */
#define EMAIL_ECHO_MAX (4 * EMAIL_MAX + 4)
const char *email_echo(const char *s, char buf[EMAIL_ECHO_MAX]);

/* in[0..len) for a message, into out (cap bytes, NUL-terminated): valid
 * UTF-8 is kept, control characters and bytes that are not UTF-8 become
 * \xHH, and the text is cut (on a character) after max bytes of input with
 * "..." added. */
void email_quote(const char *in, size_t len, size_t max, char *out, size_t cap);

#endif
