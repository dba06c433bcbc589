/* aws_uri_encode / aws_uri_decode: the SigV4 percent-encoding rule, byte by byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3client.h"

static bool is_unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static void expect_encoded(const char *in, size_t len, bool keep_slash, const char *expected)
{
    char *out = aws_uri_encode(in, len, keep_slash);
    assert_non_null(out);
    assert_string_equal(out, expected);
    free(out);
}

static void expect_decoded(const char *in, bool plus_is_space, const char *expected,
                           size_t expected_len)
{
    size_t len = 12345;
    char *out = aws_uri_decode(in, strlen(in), plus_is_space, &len);
    assert_non_null(out);
    assert_int_equal(len, expected_len);
    assert_memory_equal(out, expected, expected_len);
    assert_int_equal(out[len], '\0');
    free(out);
}

static void expect_malformed(const char *in, size_t len)
{
    errno = 0;
    size_t out_len = 777;
    assert_null(aws_uri_decode(in, len, false, &out_len));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aws_uri_decode(in, len, true, NULL));
    assert_int_equal(errno, EINVAL);
}

/* Each printable ASCII character on its own, with and without keep_slash. */
static void test_encode_printable_ascii(void **state)
{
    (void)state;
    for (int c = 0x20; c <= 0x7E; c++) {
        char in[2] = {(char)c, '\0'};
        char expected[4];
        for (int keep = 0; keep <= 1; keep++) {
            if (is_unreserved(c) || (keep && c == '/'))
                snprintf(expected, sizeof(expected), "%c", c);
            else
                snprintf(expected, sizeof(expected), "%%%02X", c);
            expect_encoded(in, 1, keep, expected);
        }
    }
}

/* The whole printable range in one string, against a spelled-out expectation. */
static void test_encode_printable_string(void **state)
{
    (void)state;
    char in[0x7F - 0x20 + 1];
    for (int c = 0x20; c <= 0x7E; c++)
        in[c - 0x20] = (char)c;
    in[sizeof(in) - 1] = '\0';
    expect_encoded(in, strlen(in), false,
                   "%20%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F"
                   "%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz"
                   "%7B%7C%7D~");
    expect_decoded("%20%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F"
                   "%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz"
                   "%7B%7C%7D~",
                   false, in, strlen(in));
}

/* Every byte value survives encode then decode, and only unreserved bytes stay unescaped. */
static void test_round_trip_all_bytes(void **state)
{
    (void)state;
    char in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (char)i;
    for (int keep = 0; keep <= 1; keep++) {
        char *enc = aws_uri_encode(in, sizeof(in), keep);
        assert_non_null(enc);
        for (const char *p = enc; *p; p++)
            assert_true(is_unreserved((unsigned char)*p) || *p == '%' || (keep && *p == '/'));
        size_t len = 0;
        char *dec = aws_uri_decode(enc, strlen(enc), false, &len);
        assert_non_null(dec);
        assert_int_equal(len, sizeof(in));
        assert_memory_equal(dec, in, sizeof(in));
        free(dec);
        free(enc);
    }
}

static void test_unicode(void **state)
{
    (void)state;
    /* ü (2 bytes), ☃ (3 bytes), 😀 (4 bytes): every UTF-8 byte is escaped, uppercase hex. */
    const char *s = "\xc3\xbc\xe2\x98\x83\xf0\x9f\x98\x80";
    expect_encoded(s, strlen(s), true, "%C3%BC%E2%98%83%F0%9F%98%80");
    expect_encoded("/\xe1\x88\xb4", 4, true, "/%E1%88%B4");
    expect_decoded("%C3%BC%E2%98%83%F0%9F%98%80", false, s, strlen(s));
    expect_decoded("%c3%bc", false, "\xc3\xbc", 2); /* lowercase hex is accepted */
    /* Raw UTF-8 in the input passes through decoding untouched. */
    expect_decoded("\xe1\x88\xb4=bar", false, "\xe1\x88\xb4=bar", 7);
}

static void test_slash(void **state)
{
    (void)state;
    expect_encoded("a/b//c/", 7, true, "a/b//c/");
    expect_encoded("a/b//c/", 7, false, "a%2Fb%2F%2Fc%2F");
    expect_encoded("/dir/my file.txt", 16, true, "/dir/my%20file.txt");
    expect_decoded("a%2Fb/c", false, "a/b/c", 5);
    expect_decoded("a%2fb", false, "a/b", 3);
}

static void test_plus(void **state)
{
    (void)state;
    /* '+' is not unreserved: it is always escaped, so it can never be read back as a space. */
    expect_encoded("a+b", 3, true, "a%2Bb");
    expect_encoded("a b", 3, false, "a%20b");
    expect_decoded("a+b", false, "a+b", 3);
    expect_decoded("a+b", true, "a b", 3);
    expect_decoded("a%2Bb", false, "a+b", 3);
    expect_decoded("a%2Bb", true, "a+b", 3);
    expect_decoded("++%20", true, "   ", 3);
}

static void test_malformed_escapes(void **state)
{
    (void)state;
    static const char *const bad[] = {"%",    "%4",  "a%2", "%zz",  "%g0", "%0g",
                                      "%%41", "%-1", "% 1", "abc%", "%+1", "%1%41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_malformed(bad[i], strlen(bad[i]));
    /* The length given is what counts: an escape cut by it is malformed. */
    expect_malformed("%41", 2);
    expect_malformed("x%4142", 3);
}

/* Lengths are honoured in both directions: NUL bytes inside, and strings cut short. */
static void test_embedded_lengths(void **state)
{
    (void)state;
    expect_encoded("a\0b", 3, false, "a%00b");
    expect_encoded("\0", 1, true, "%00");
    expect_encoded("abcdef", 3, false, "abc");
    expect_encoded("", 0, false, "");
    expect_encoded("a/b", 0, true, "");

    expect_decoded("%00x", false, "\0x", 2);
    expect_decoded("a%00%00", true, "a\0\0", 3);
    expect_decoded("", false, "", 0);

    size_t len = 99;
    char *out = aws_uri_decode("%41%42", 3, false, &len);
    assert_non_null(out);
    assert_int_equal(len, 1);
    assert_string_equal(out, "A");
    free(out);

    out = aws_uri_decode("abc", 3, false, NULL); /* out_len may be NULL */
    assert_non_null(out);
    assert_string_equal(out, "abc");
    free(out);
}

/* A long input costs one pass and one allocation each way; nothing is truncated. */
static void test_long_input(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(i % 3 == 0 ? ' ' : 'a' + i % 26);
    char *enc = aws_uri_encode(in, n, false);
    assert_non_null(enc);
    size_t spaces = (n + 2) / 3;
    assert_int_equal(strlen(enc), n + 2 * spaces);
    size_t len = 0;
    char *dec = aws_uri_decode(enc, strlen(enc), false, &len);
    assert_non_null(dec);
    assert_int_equal(len, n);
    assert_memory_equal(dec, in, n);
    free(dec);
    free(enc);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_printable_ascii),
        cmocka_unit_test(test_encode_printable_string),
        cmocka_unit_test(test_round_trip_all_bytes),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_slash),
        cmocka_unit_test(test_plus),
        cmocka_unit_test(test_malformed_escapes),
        cmocka_unit_test(test_embedded_lengths),
        cmocka_unit_test(test_long_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
