/* random.c -- getrandom(2), retried on EINTR and short reads. */
#include "core/random.h"

#include <errno.h>
#include <sys/random.h>
#include <sys/types.h>

int
relay_random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += (size_t)n;
		len -= (size_t)n;
	}
	return 0;
}
