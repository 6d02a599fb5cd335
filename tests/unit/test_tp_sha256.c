/*
 * test_tp_sha256.c -- SHA-256 against the FIPS 180-4 / NIST CAVP example
 * vectors, padding boundaries (55/56/63/64/119/120 bytes, checked with
 * Python's hashlib) and incremental updates split at every point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tokenplace/sha256.h"

static void
hex_of(const void *data, size_t len, char out[65])
{
	unsigned char d[TP_SHA256_LEN];

	tp_sha256(data, len, d);
	tp_sha256_hex(d, out);
}

static void
test_fips_examples(void **state)
{
	char hex[65];
	static const char two_block[] =
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const char four_block[] =
	    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
	    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

	(void)state;
	hex_of("", 0, hex);
	assert_string_equal(hex,
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of("abc", 3, hex);
	assert_string_equal(hex,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hex_of(two_block, strlen(two_block), hex);
	assert_string_equal(hex,
	    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	hex_of(four_block, strlen(four_block), hex);
	assert_string_equal(hex,
	    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void
test_million_a(void **state)
{
	struct tp_sha256 c;
	unsigned char chunk[1000], d[TP_SHA256_LEN];
	char hex[65];
	int i;

	(void)state;
	memset(chunk, 'a', sizeof(chunk));
	tp_sha256_init(&c);
	for (i = 0; i < 1000; i++)
		tp_sha256_update(&c, chunk, sizeof(chunk));
	tp_sha256_final(&c, d);
	tp_sha256_hex(d, hex);
	assert_string_equal(hex,
	    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void
test_padding_boundaries(void **state)
{
	static const struct {
		size_t n;
		const char *hex;
	} v[] = {
		{ 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
		{ 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
		{ 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
		{ 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
		{ 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
		{ 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
	};
	unsigned char a[128];
	char hex[65];
	size_t i;

	(void)state;
	memset(a, 'a', sizeof(a));
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		hex_of(a, v[i].n, hex);
		assert_string_equal(hex, v[i].hex);
	}
}

/* Every split of every message up to 200 bytes gives the one-shot digest. */
static void
test_incremental_splits(void **state)
{
	unsigned char msg[200], one[TP_SHA256_LEN], inc[TP_SHA256_LEN];
	size_t n, cut, i;

	(void)state;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)(i * 7 + 3);
	for (n = 0; n <= sizeof(msg); n++) {
		tp_sha256(msg, n, one);
		for (cut = 0; cut <= n; cut++) {
			struct tp_sha256 c;

			tp_sha256_init(&c);
			tp_sha256_update(&c, msg, cut);
			tp_sha256_update(&c, msg + cut, 0);
			tp_sha256_update(&c, msg + cut, n - cut);
			tp_sha256_final(&c, inc);
			assert_memory_equal(one, inc, TP_SHA256_LEN);
		}
	}
}

static void
test_equal(void **state)
{
	unsigned char a[TP_SHA256_LEN], b[TP_SHA256_LEN];

	(void)state;
	tp_sha256("x", 1, a);
	tp_sha256("x", 1, b);
	assert_int_equal(tp_sha256_equal(a, b), 1);
	b[31] ^= 1;
	assert_int_equal(tp_sha256_equal(a, b), 0);
	b[31] ^= 1;
	b[0] ^= 0x80;
	assert_int_equal(tp_sha256_equal(a, b), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fips_examples),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_padding_boundaries),
		cmocka_unit_test(test_incremental_splits),
		cmocka_unit_test(test_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
