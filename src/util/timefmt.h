/* Times as milliseconds since the Unix epoch (UTC), and their text forms. */
#ifndef OPTSYNC_UTIL_TIMEFMT_H
#define OPTSYNC_UTIL_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIME_STR_MAX 40

/* Parse an RFC 3339 date-time ("2026-11-20T14:05:00Z", "...+01:00",
 * fractional seconds allowed) or a plain date ("2026-11-20", meaning 00:00
 * UTC). Also accepts Salesforce's "+0000" offsets without a colon. Returns 0
 * or -1 for anything else, including trailing garbage and impossible dates. */
int time_parse(const char *s, int64_t *ms_out);
/* "2026-11-20T14:05:00Z" (".123" added when ms is not whole seconds). */
void time_format(int64_t ms, char out[TIME_STR_MAX]);
/* Salesforce's body form: "2026-11-20T14:05:00.000+0000". */
void time_format_sf(int64_t ms, char out[TIME_STR_MAX]);
int64_t time_now_ms(void);
/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d);
void time_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
int time_days_in_month(int64_t y, unsigned m);

#endif
