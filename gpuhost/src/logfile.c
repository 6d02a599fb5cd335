/* logfile.c -- size-rotated log files; see logfile.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logfile.h"
#include "os.h"

struct gpuhost_logfile {
	struct gpuhost_mutex *mu;
	FILE *fp;
	char *path;
	uint64_t max_bytes, size, rotations;
	unsigned keep;
};

static FILE *
open_append(struct gpuhost_logfile *lf)
{
	FILE *fp = gpuhost_fopen(lf->path, "ab");
	long pos;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (pos = ftell(fp)) > 0)
		lf->size = (uint64_t)pos;
	else
		lf->size = 0;
	return fp;
}

struct gpuhost_logfile *
gpuhost_logfile_open(const char *path, uint64_t max_bytes, unsigned keep,
    char *err, size_t errlen)
{
	struct gpuhost_logfile *lf = calloc(1, sizeof(*lf));
	char e[200];
	size_t n = strlen(path);

	if (lf == NULL || (lf->path = malloc(n + 1)) == NULL ||
	    (lf->mu = gpuhost_mutex_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(lf->path, path, n + 1);
	lf->max_bytes = max_bytes;
	lf->keep = keep > 0 ? keep : 1;
	if ((lf->fp = open_append(lf)) == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    gpuhost_last_error(e, sizeof(e)));
		goto fail;
	}
	return lf;
fail:
	if (lf != NULL) {
		gpuhost_mutex_free(lf->mu);
		free(lf->path);
		free(lf);
	}
	return NULL;
}

static void
rotate(struct gpuhost_logfile *lf)
{
	size_t n = strlen(lf->path) + 16;
	char *from = malloc(n), *to = malloc(n);

	if (from == NULL || to == NULL)
		goto out;
	fclose(lf->fp);
	lf->fp = NULL;
	snprintf(to, n, "%s.%u", lf->path, lf->keep);
	(void)gpuhost_unlink(to);
	for (unsigned i = lf->keep; i > 1; i--) {
		snprintf(from, n, "%s.%u", lf->path, i - 1);
		snprintf(to, n, "%s.%u", lf->path, i);
		(void)gpuhost_rename(from, to);
	}
	snprintf(to, n, "%s.1", lf->path);
	(void)gpuhost_rename(lf->path, to);
	lf->rotations++;
	lf->fp = open_append(lf);
out:
	free(from);
	free(to);
}

int
gpuhost_logfile_write(struct gpuhost_logfile *lf, const char *data, size_t len)
{
	int rc = -1;

	gpuhost_mutex_lock(lf->mu);
	if (lf->fp != NULL && lf->size > 0 && lf->size + len > lf->max_bytes)
		rotate(lf);
	if (lf->fp == NULL)
		lf->fp = open_append(lf);
	if (lf->fp != NULL && fwrite(data, 1, len, lf->fp) == len &&
	    fflush(lf->fp) == 0) {
		lf->size += len;
		rc = 0;
	}
	gpuhost_mutex_unlock(lf->mu);
	return rc;
}

uint64_t
gpuhost_logfile_rotations(struct gpuhost_logfile *lf)
{
	uint64_t n;

	gpuhost_mutex_lock(lf->mu);
	n = lf->rotations;
	gpuhost_mutex_unlock(lf->mu);
	return n;
}

void
gpuhost_logfile_close(struct gpuhost_logfile *lf)
{
	if (lf == NULL)
		return;
	if (lf->fp != NULL)
		fclose(lf->fp);
	gpuhost_mutex_free(lf->mu);
	free(lf->path);
	free(lf);
}
