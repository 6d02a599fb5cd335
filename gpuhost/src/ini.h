/*
 * ini.h -- the small INI dialect of gpuhost.ini.
 *
 * "[section]" lines, "key = value" lines, comments starting with ';' or
 * '#' (whole lines only, so values may contain them), blanks around keys
 * and values trimmed, one pair of surrounding double quotes stripped, a
 * UTF-8 byte-order mark ignored, CRLF accepted. Section and key names are
 * case-insensitive. A key outside any section, a line without '=', an
 * unterminated section header and a key given twice in one section are
 * errors reported with their line number.
 */
#ifndef GPUHOST_INI_H
#define GPUHOST_INI_H

#include <stdbool.h>
#include <stddef.h>

struct gpuhost_ini_entry {
	char *section;
	char *key;
	char *value;
	unsigned line;
};

struct gpuhost_ini {
	size_t n;
	size_t cap;
	struct gpuhost_ini_entry *e;
};

/* Largest file gpuhost_ini_load() reads. */
#define GPUHOST_INI_MAX_BYTES (1024 * 1024)

/*
 * Parses text (len bytes, need not be NUL-terminated) into *out, which
 * the caller frees with gpuhost_ini_free() whatever the result. Returns
 * 0, -1 on a syntax error (message with line number in err) or -2 when
 * out of memory.
 */
int gpuhost_ini_parse(const char *text, size_t len, struct gpuhost_ini *out,
    char *err, size_t errlen);

/* Reads and parses a file; as gpuhost_ini_parse(), -1 also for I/O errors. */
int gpuhost_ini_load(const char *path, struct gpuhost_ini *out, char *err,
    size_t errlen);

/* Returns the entry for section/key, or NULL. Points into ini. */
const struct gpuhost_ini_entry *gpuhost_ini_find(const struct gpuhost_ini *ini,
    const char *section, const char *key);

/* Frees the entries; the struct itself is zeroed and may be reused. */
void gpuhost_ini_free(struct gpuhost_ini *ini);

#endif
