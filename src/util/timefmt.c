#include "util/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Howard Hinnant's algorithms, public domain. */
int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void time_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int time_days_in_month(int64_t y, unsigned m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m < 1 || m > 12)
		return 0;
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int time_parse(const char *s, int64_t *ms_out)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > time_days_in_month(y, (unsigned)mo))
		return -1;
	if (*p == '\0')
		goto done;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -1;
	if (h > 23 || mi > 59 || sec > 59)
		return -1;
	if (*p == '.') {
		p++;
		int nd = 0;
		while (*p >= '0' && *p <= '9') {
			if (nd < 3)
				ms = ms * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0)
			return -1;
		for (; nd < 3; nd++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh))
			return -1;
		if (*p == ':')
			p++;
		if (digits(&p, 2, &om) || oh > 23 || om > 59)
			return -1;
		off = sign * (oh * 60 + om);
	} else {
		return -1; /* a date-time without offset is ambiguous */
	}
	if (*p != '\0')
		return -1;
done:;
	int64_t days = time_days_from_civil(y, (unsigned)mo, (unsigned)d);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off * 60;
	*ms_out = secs * 1000 + ms;
	return 0;
}

/* Calendar fields of ms; years outside RFC 3339's 0000-9999 are clamped. */
struct civil {
	int year;
	unsigned char mo, d, h, mi, s;
	unsigned short frac;
};

static struct civil split(int64_t ms)
{
	int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	int64_t rem = secs - days * 86400, y;
	unsigned mo, d;
	time_civil_from_days(days, &y, &mo, &d);
	struct civil c = {(int)(y < 0      ? 0
	                        : y > 9999 ? 9999
	                                   : y),
	                  (unsigned char)mo,
	                  (unsigned char)d,
	                  (unsigned char)(rem / 3600),
	                  (unsigned char)(rem % 3600 / 60),
	                  (unsigned char)(rem % 60),
	                  (unsigned short)(ms - secs * 1000)};
	return c;
}

void time_format(int64_t ms, char out[TIME_STR_MAX])
{
	struct civil c = split(ms);
	if (c.frac)
		snprintf(out, TIME_STR_MAX, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", c.year, c.mo,
		         c.d, c.h, c.mi, c.s, c.frac);
	else
		snprintf(out, TIME_STR_MAX, "%04d-%02u-%02uT%02u:%02u:%02uZ", c.year, c.mo, c.d,
		         c.h, c.mi, c.s);
}

void time_format_sf(int64_t ms, char out[TIME_STR_MAX])
{
	struct civil c = split(ms);
	snprintf(out, TIME_STR_MAX, "%04d-%02u-%02uT%02u:%02u:%02u.%03u+0000", c.year, c.mo, c.d,
	         c.h, c.mi, c.s, c.frac);
}

int64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
