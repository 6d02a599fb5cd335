/*
 * http_date.c -- the one IMF-fixdate formatter (RFC 9110 section 5.6.7)
 * of the relay: the Date header and the page's Last-Modified. Its own
 * file so that code without the dispatcher (web.c, its fuzzer) links it.
 * Not locale-dependent: the names are spelt out.
 */
#include "http/http.h"

#include <stdio.h>
#include <time.h>

void
relay_http_date(time_t t, char *buf, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "Thu, 01 Jan 1970 00:00:00 GMT");
		return;
	}
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
