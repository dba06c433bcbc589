/* conf: the INI file, every key (valid and invalid values), defaults, overrides, the size
 * grammar, the source/destination overlap check, conf_dump and the documentation. The
 * environment and the AWS shared files are in test_credentials.c. */
#include "conf.h"
#include "conf_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Fixture (conf_test_util.c): a temporary directory with a home, and a fake environment that
 * holds credentials, so that every test loads without looking for them.                      */

static int setup(void **state)
{
    (void)state;
    if (conf_fixture_setup("conf") != 0)
        return -1;
    env_set("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE");
    env_set("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    return 0;
}

static int teardown(void **state)
{
    return conf_fixture_teardown(state);
}

/* Loads "[section]\nkey = value\n" as config.ini. */
static struct config *load_value(const char *section, const char *key, const char *value)
{
    char ini[400];
    snprintf(ini, sizeof(ini), "[%s]\n%s = %s\n", section, key, value);
    return load_ini(ini);
}

/* Each value of [section] key is refused with "config.ini:2: [section] key = VALUE: reason". */
static void expect_bad_values(const char *section, const char *key, const char *const *values,
                              size_t n, const char *reason)
{
    for (size_t i = 0; i < n; i++) {
        char ini[400], needle[600];
        snprintf(ini, sizeof(ini), "[%s]\n%s = %s\n", section, key, values[i]);
        snprintf(needle, sizeof(needle), "config.ini:2: [%s] %s = %s: %s", section, key, values[i],
                 reason);
        expect_ini_error(ini, needle);
    }
}

struct bad_case {
    const char *ini;
    const char *needle;
};

static void expect_bad_cases(const struct bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_ini_error(cases[i].ini, cases[i].needle);
}

/* ------------------------------------------------------------------------------------------ */
/* Files and defaults                                                                           */

static void test_defaults_without_file(void **state)
{
    (void)state;
    struct config *c = must_load(NULL);
    assert_string_equal(c->s3.endpoint, "https://s3.us-east-1.amazonaws.com");
    assert_string_equal(conf_origin(c, "s3", "endpoint"), "default (for region us-east-1)");
    assert_string_equal(c->s3.region, "us-east-1");
    assert_false(c->s3.path_style);
    assert_string_equal(c->s3.source_bucket, "");
    assert_string_equal(c->s3.source_prefix, "");
    assert_string_equal(c->s3.destination_bucket, "");
    assert_string_equal(c->s3.destination_prefix, "");
    assert_string_equal(c->s3.profile, "default");
    assert_int_equal(c->s3.sse, CONF_SSE_NONE);
    assert_string_equal(c->s3.sse_kms_key_id, "");
    assert_string_equal(c->s3.ca_file, "");
    assert_int_equal(c->resize.mode, CONF_RESIZE_LOCAL);
    assert_int_equal(c->resize.format, CONF_FORMAT_AUTO);
    assert_int_equal(c->resize.quality, 80);
    assert_string_equal(c->resize.key_template, "{size}/{key}");
    assert_int_equal(c->resize.max_pixels, 100000000);
    assert_int_equal(c->resize.max_file_mb, 100);
    assert_int_equal(c->resize.background.r, 255);
    assert_int_equal(c->resize.background.g, 255);
    assert_int_equal(c->resize.background.b, 255);
    assert_int_equal(c->log.level, CONF_LOG_INFO);

    /* thumbnail:150x150:cover, medium:640x640, large:1280x1280 */
    assert_int_equal(c->resize.size_count, 3);
    const struct conf_size *s = c->resize.sizes;
    assert_string_equal(s[0].name, "thumbnail");
    assert_int_equal(s[0].width, 150);
    assert_int_equal(s[0].height, 150);
    assert_int_equal(s[0].fit, CONF_FIT_COVER);
    assert_int_equal(s[0].crop, CONF_CROP_CENTRE);
    assert_string_equal(s[1].name, "medium");
    assert_int_equal(s[1].width, 640);
    assert_int_equal(s[1].fit, CONF_FIT_INSIDE);
    assert_string_equal(s[2].name, "large");
    assert_int_equal(s[2].height, 1280);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s[i].format, CONF_FORMAT_AUTO);
        assert_int_equal(s[i].quality, 80);
        assert_false(s[i].format_set);
        assert_false(s[i].quality_set);
    }
    /* Defaults resolved at load say how ("default (for region us-east-1)"); see
     * test_conf_gateway.c for cache_dir and resize_workers. */
    for (size_t i = 0; conf_key_at(i); i++) {
        const struct conf_key_info *k = conf_key_at(i);
        if (k->flags & CONF_KEY_SECRET)
            continue;
        bool resolved = strcmp(k->key, "endpoint") == 0 || strcmp(k->key, "cache_dir") == 0 ||
                        strcmp(k->key, "resize_workers") == 0;
        if (resolved)
            assert_true(strncmp(conf_origin(c, k->section, k->key), "default (", 9) == 0);
        else
            assert_string_equal(conf_origin(c, k->section, k->key), "default");
    }
    conf_free(c);
}

static void test_default_file_locations(void **state)
{
    (void)state;
    /* ~/.config/s3imgfs/config.ini */
    write_file("home/.config/s3imgfs/config.ini", 0600, "[resize]\nquality = 61\n");
    struct config *c = must_load(NULL);
    assert_int_equal(c->resize.quality, 61);
    assert_non_null(
        strstr(conf_origin(c, "resize", "quality"), "home/.config/s3imgfs/config.ini:2"));
    conf_free(c);

    /* $XDG_CONFIG_HOME/s3imgfs/config.ini wins over ~/.config */
    char xdg[400];
    snprintf(xdg, sizeof(xdg), "%s/xdg", tmpdir);
    write_file("xdg/s3imgfs/config.ini", 0600, "[resize]\nquality = 62\n");
    env_set("XDG_CONFIG_HOME", xdg);
    c = must_load(NULL);
    assert_int_equal(c->resize.quality, 62);
    conf_free(c);

    /* A relative XDG_CONFIG_HOME is ignored (the XDG spec says so). */
    env_set("XDG_CONFIG_HOME", "relative/dir");
    c = must_load(NULL);
    assert_int_equal(c->resize.quality, 61);
    conf_free(c);

    /* A missing default file is fine. */
    env_set("XDG_CONFIG_HOME", "/nonexistent-s3imgfs-test");
    c = must_load(NULL);
    assert_int_equal(c->resize.quality, 80);
    conf_free(c);
}

static void test_explicit_file_must_exist(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof(path), "%s/missing.ini", tmpdir);
    expect_error_opts(path, NULL, 0, "LocalIOError", "cannot open the config file");
    expect_error_opts(path, NULL, 0, "LocalIOError", "missing.ini: No such file or directory");
    expect_error_opts(tmpdir, NULL, 0, "LocalIOError", "is not a regular file");
}

static void test_all_keys_valid(void **state)
{
    (void)state;
    write_file("certs/ca.pem", 0644, "-----BEGIN CERTIFICATE-----\n");
    write_file("home/.aws/config", 0600, "[profile work]\n");
    struct config *c = load_ini("; a comment\n"
                                "# another comment\n"
                                "[s3]\n"
                                "endpoint = http://127.0.0.1:9000/\n"
                                "region = eu-west-3\n"
                                "path_style = yes\n"
                                "source_bucket = photos.example-1\n"
                                "source_prefix = /incoming/raw\n"
                                "destination_bucket = thumbs\n"
                                "destination_prefix = out/\n"
                                "profile = work\n"
                                "sse = aws:kms\n"
                                "sse_kms_key_id = alias/s3imgfs\n"
                                "ca_file = certs/ca.pem\n"
                                "\n"
                                "[resize]\n"
                                "mode = lambda\n"
                                "sizes = small:100x100, big:2000x\n"
                                "format = webp\n"
                                "quality = 90\n"
                                "key_template = {dir}/{size}/{base}.{ext}\n"
                                "max_pixels = 50M\n"
                                "max_file_mb = 20\n"
                                "background = #1020Ff\n"
                                "[notify]\n"
                                "[gateway]\n"
                                "[log]\n"
                                "level = debug\n");
    assert_string_equal(c->s3.endpoint, "http://127.0.0.1:9000");
    assert_string_equal(c->s3.region, "eu-west-3");
    assert_true(c->s3.path_style);
    assert_string_equal(c->s3.source_bucket, "photos.example-1");
    assert_string_equal(c->s3.source_prefix, "incoming/raw/");
    assert_string_equal(c->s3.destination_bucket, "thumbs");
    assert_string_equal(c->s3.destination_prefix, "out/");
    assert_string_equal(c->s3.profile, "work");
    assert_int_equal(c->s3.sse, CONF_SSE_KMS);
    assert_string_equal(c->s3.sse_kms_key_id, "alias/s3imgfs");
    char ca[600];
    snprintf(ca, sizeof(ca), "%s/certs/ca.pem", tmpdir);
    assert_string_equal(c->s3.ca_file, ca); /* relative to the config file's directory */
    assert_int_equal(c->resize.mode, CONF_RESIZE_LAMBDA);
    assert_int_equal(c->resize.size_count, 2);
    assert_int_equal(c->resize.sizes[1].width, 2000);
    assert_int_equal(c->resize.sizes[1].height, 0);
    assert_int_equal(c->resize.format, CONF_FORMAT_WEBP);
    assert_int_equal(c->resize.quality, 90);
    assert_string_equal(c->resize.key_template, "{dir}/{size}/{base}.{ext}");
    assert_int_equal(c->resize.max_pixels, 50000000);
    assert_int_equal(c->resize.max_file_mb, 20);
    assert_int_equal(c->resize.background.r, 0x10);
    assert_int_equal(c->resize.background.g, 0x20);
    assert_int_equal(c->resize.background.b, 0xff);
    assert_int_equal(c->log.level, CONF_LOG_DEBUG);
    /* Origins name the file and line. */
    assert_non_null(strstr(conf_origin(c, "s3", "endpoint"), "config.ini:4"));
    assert_non_null(strstr(conf_origin(c, "log", "level"), "config.ini:28"));
    assert_null(conf_origin(c, "s3", "nope"));
    conf_free(c);
}

static void test_syntax(void **state)
{
    (void)state;
    /* UTF-8 BOM, CRLF, indentation, inline comments, "key: value", '#' inside values. */
    struct config *c = load_ini("\xEF\xBB\xBF[resize]\r\n"
                                "  quality = 70 ; inline comment\r\n"
                                "format: png\r\n"
                                "background = #000000\r\n"
                                "  [ log ]  \r\n"
                                "level = warn\r\n");
    assert_int_equal(c->resize.quality, 70);
    assert_int_equal(c->resize.format, CONF_FORMAT_PNG);
    assert_int_equal(c->resize.background.r, 0);
    assert_int_equal(c->log.level, CONF_LOG_WARN);
    conf_free(c);

    /* Lines longer than inih's buffer (200 bytes) work, comments included. */
    char text[4096] = "[resize]\nsizes = ";
    for (int i = 0; i < 30; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%ssize%02d:%dx", i ? ", " : "",
                 i, 100 + i);
    strcat(text, " ; thirty sizes\n[log]\nlevel = error\n");
    assert_true(strlen(text) > 400);
    c = load_ini(text);
    assert_int_equal(c->resize.size_count, 30);
    assert_string_equal(c->resize.sizes[29].name, "size29");
    assert_int_equal(c->resize.sizes[29].width, 129);
    assert_int_equal(c->log.level, CONF_LOG_ERROR);
    conf_free(c);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    char longsect[300] = "[";
    memset(longsect + 1, 'a', 250);
    strcpy(longsect + 251, "]\n");
    char longneedle[300] = "config.ini:1: unknown section [";
    memset(longneedle + strlen(longneedle), 'a', 250);
    static const struct bad_case cases[] = {
        {"[s3\nregion = x\n", "config.ini:1: a section header needs a closing ']'"},
        {"[s3]\n\njust words\n", "config.ini:3: expected 'key = value', '[section]' or a comment"},
        {"[s3]\n= value\n", "config.ini:2: a key name is missing before the '='"},
        {"[s3]\nregion = eu-west-1\n  eu-west-2\n",
         "config.ini:3: an indented line continues the previous key's value, which s3imgfs "
         "does not support"},
        {"[s3]\nregion = a\x01\n", "config.ini:2: the line contains a control character"},
        {"[s3]\nregion = eu-west-1\n\n; c\nregion = eu-west-2\n",
         "config.ini:5: [s3] region is set twice (first on line 2)"},
        {"region = eu-west-1\n", "config.ini:1: key 'region' is outside any section; put it "
                                 "under one of [s3], [resize], [notify], [gateway], [log]"},
        {"[foo]\n", "config.ini:1: unknown section [foo] (known sections: [s3], [resize], "
                    "[notify], [gateway], [log])"},
        {"[S3]\nregion = x\n", "config.ini:1: unknown section [S3]"},
        {"[s3]\nfoo = 1\n", "config.ini:2: unknown key 'foo' in [s3] (known keys: endpoint, "
                            "region, path_style,"},
        {"[s3]\nRegion = x\n", "config.ini:2: unknown key 'Region' in [s3]"},
        {"[resize]\nquality = 80\n[notify]\nfoo = 1\n",
         "config.ini:4: unknown key 'foo' in [notify] (known keys: on, digest_seconds,"},
        {"[gateway]\nbar = 1\n", "config.ini:2: unknown key 'bar' in [gateway]"},
        {"[log]\nfile2 = x\n", "config.ini:2: unknown key 'file2' in [log] (known keys: level, "
                               "format, file, metrics_seconds)"},
    };
    expect_bad_cases(cases, COUNT(cases));
    expect_ini_error(longsect, longneedle);
}

/* An empty value of a key with environment fallbacks means "not set". */
static void test_empty_value_means_unset(void **state)
{
    (void)state;
    env_set("AWS_REGION", "ap-south-1");
    struct config *c = load_ini("[s3]\nregion =\nendpoint =\n");
    assert_string_equal(c->s3.region, "ap-south-1");
    assert_string_equal(conf_origin(c, "s3", "region"), "env AWS_REGION");
    assert_string_equal(c->s3.endpoint, "https://s3.ap-south-1.amazonaws.com");
    conf_free(c);
    /* Keys without fallbacks: empty is a value like any other. */
    expect_ini_error("[resize]\nquality =\n",
                     "config.ini:2: [resize] quality = : expected an integer from 1 to 100");
}

/* ------------------------------------------------------------------------------------------ */
/* Every key: valid and invalid values                                                          */

static void test_s3_endpoint(void **state)
{
    (void)state;
    static const char *const good[][2] = {
        {"https://s3.example.com", "https://s3.example.com"},
        {"https://s3.example.com/", "https://s3.example.com"},
        {"http://localhost:9000", "http://localhost:9000"},
        {"http://[::1]:9000", "http://[::1]:9000"},
        {"https://10.0.0.1", "https://10.0.0.1"},
    };
    for (size_t i = 0; i < COUNT(good); i++) {
        struct config *c = load_value("s3", "endpoint", good[i][0]);
        assert_string_equal(c->s3.endpoint, good[i][1]);
        conf_free(c);
    }
    static const char *const bad[] = {
        "ftp://s3.example.com", "s3.example.com",   "https://",           "https://host/path",
        "https://host/bucket/", "https://host:0",   "https://host:65536", "https://host:port",
        "https://user@host",    "https://host?x=1", "https://-host",      "https://[::1",
        "https://host:9000/x",
    };
    expect_bad_values("s3", "endpoint", bad, COUNT(bad),
                      "expected http://host[:port] or https://host[:port] with no path");
}

static void test_s3_region_bool_profile(void **state)
{
    (void)state;
    struct config *c = load_ini("[s3]\nregion = garage_1\n");
    assert_string_equal(c->s3.region, "garage_1");
    conf_free(c);
    static const char *const yes[] = {"true", "TRUE", "yes", "on", "1"};
    static const char *const no[] = {"false", "No", "off", "0"};
    for (size_t i = 0; i < COUNT(yes) + COUNT(no); i++) {
        bool want = i < COUNT(yes);
        c = load_value("s3", "path_style", want ? yes[i] : no[i - COUNT(yes)]);
        assert_int_equal(c->s3.path_style, want);
        conf_free(c);
    }
    static const struct bad_case cases[] = {
        {"[s3]\nregion = eu west 1\n",
         "config.ini:2: [s3] region = eu west 1: expected a region name such as eu-west-1"},
        {"[s3]\nregion = eu.west\n", "[s3] region = eu.west: expected a region name"},
        {"[s3]\nregion = "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
         "expected a region name such as eu-west-1 (1 to 63 letters"},
        {"[s3]\npath_style = maybe\n",
         "config.ini:2: [s3] path_style = maybe: expected true or false (or yes/no, on/off, "
         "1/0)"},
        {"[s3]\nprofile = my profile\n",
         "config.ini:2: [s3] profile = my profile: expected a profile name (1 to 128 "
         "characters, no spaces or brackets)"},
        {"[s3]\nprofile = a]b\n", "[s3] profile = a]b: expected a profile name"},
    };
    expect_bad_cases(cases, COUNT(cases));
}

static void test_s3_buckets(void **state)
{
    (void)state;
    static const char *const good[] = {
        "abc", "my-bucket.v2", "0123",
        "a23456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < COUNT(good); i++) {
        char ini[400];
        snprintf(ini, sizeof(ini), "[s3]\nsource_bucket = %s\ndestination_bucket = %s\n", good[i],
                 good[i]);
        /* Same bucket: give the destination a prefix outside the source. */
        strcat(ini, "source_prefix = in\ndestination_prefix = out\n");
        struct config *c = load_ini(ini);
        assert_string_equal(c->s3.source_bucket, good[i]);
        assert_string_equal(c->s3.destination_bucket, good[i]);
        conf_free(c);
    }
    static const struct bad_case cases[] = {
        {"[s3]\nsource_bucket = ab\n",
         "config.ini:2: [s3] source_bucket = ab: expected a bucket name of 3 to 63 characters"},
        {"[s3]\nsource_bucket = "
         "a234567890123456789012345678901234567890123456789012345678901234\n",
         "expected a bucket name of 3 to 63 characters"},
        {"[s3]\nsource_bucket = My-Bucket\n",
         "[s3] source_bucket = My-Bucket: a bucket name may only hold lowercase letters, "
         "digits, '.' and '-'"},
        {"[s3]\nsource_bucket = my_bucket\n", "may only hold lowercase letters"},
        {"[s3]\ndestination_bucket = -bucket\n",
         "[s3] destination_bucket = -bucket: a bucket name must begin and end with a letter or "
         "digit"},
        {"[s3]\ndestination_bucket = bucket.\n", "must begin and end with a letter or digit"},
        {"[s3]\ndestination_bucket = a..b\n", "a bucket name must not contain '..'"},
        {"[s3]\ndestination_bucket = 192.168.1.1\n",
         "a bucket name must not look like an IP address"},
        {"[s3]\nsource_bucket = xn--abc\n", "are reserved by S3"},
        {"[s3]\nsource_bucket = sthree-abc\n", "are reserved by S3"},
        {"[s3]\nsource_bucket = abc-s3alias\n", "are reserved by S3"},
        {"[s3]\nsource_bucket = abc--ol-s3\n", "are reserved by S3"},
    };
    expect_bad_cases(cases, COUNT(cases));
}

static void test_s3_prefixes(void **state)
{
    (void)state;
    static const char *const good[][2] = {
        {"", ""},         {"/", ""},      {"a", "a/"},         {"/a/b", "a/b/"},
        {"a/b/", "a/b/"}, {"//x/", "x/"}, {"a.b/c", "a.b/c/"},
    };
    for (size_t i = 0; i < COUNT(good); i++) {
        char ini[200];
        snprintf(ini, sizeof(ini), "[s3]\nsource_prefix = %s\ndestination_prefix = %s\n",
                 good[i][0], good[i][0]);
        struct config *c = load_ini(ini);
        assert_string_equal(c->s3.source_prefix, good[i][1]);
        assert_string_equal(c->s3.destination_prefix, good[i][1]);
        conf_free(c);
    }
    static const char *const bad[] = {"a//b", "a/../b", "./a", "a/.", "a//"};
    expect_bad_values("s3", "destination_prefix", bad, COUNT(bad),
                      "a prefix must not contain empty, '.' or '..' segments");
}

static void test_s3_sse(void **state)
{
    (void)state;
    struct config *c = load_ini("[s3]\nsse = AES256\n");
    assert_int_equal(c->s3.sse, CONF_SSE_AES256);
    conf_free(c);
    c = load_ini("[s3]\nsse = aws:kms\n");
    assert_int_equal(c->s3.sse, CONF_SSE_KMS);
    assert_string_equal(c->s3.sse_kms_key_id, "");
    conf_free(c);
    c = load_ini("[s3]\nsse = none\n");
    assert_int_equal(c->s3.sse, CONF_SSE_NONE);
    conf_free(c);
    static const struct bad_case cases[] = {
        {"[s3]\nsse = kms\n",
         "config.ini:2: [s3] sse = kms: expected one of none, AES256, aws:kms"},
        {"[s3]\nsse = aws:kms\nsse_kms_key_id = my key\n",
         "config.ini:3: [s3] sse_kms_key_id = my key: expected a KMS key id, alias or ARN (no "
         "spaces)"},
        {"[s3]\nsse_kms_key_id = alias/x\n",
         "config.ini:2: [s3] sse_kms_key_id = alias/x: a KMS key is only used with sse = "
         "aws:kms, but [s3] sse is none (default)"},
        {"[s3]\nsse = AES256\nsse_kms_key_id = alias/x\n", "but [s3] sse is AES256 ("},
    };
    expect_bad_cases(cases, COUNT(cases));
}

static void test_s3_ca_file(void **state)
{
    (void)state;
    const char *pem = write_file("ca.pem", 0644, "x\n");
    char ini[700];
    snprintf(ini, sizeof(ini), "[s3]\nca_file = %s\n", pem);
    struct config *c = load_ini(ini);
    assert_string_equal(c->s3.ca_file, pem);
    conf_free(c);
    snprintf(ini, sizeof(ini), "[s3]\nca_file = %s/nope.pem\n", tmpdir);
    expect_ini_error(ini, "nope.pem: No such file or directory");
    expect_ini_error(ini, "config.ini:2: [s3] ca_file = ");
    snprintf(ini, sizeof(ini), "[s3]\nca_file = %s\n", tmpdir);
    expect_ini_error(ini, "is not a regular file");
    /* Relative to the config file's directory, not the working directory. */
    char needle[700];
    snprintf(needle, sizeof(needle), "cannot use the CA file %s/missing.pem", tmpdir);
    expect_ini_error("[s3]\nca_file = missing.pem\n", needle);
}

static void test_resize_keys(void **state)
{
    (void)state;
    static const char *const modes[] = {"local", "lambda", "off"};
    for (int i = 0; i < 3; i++) {
        struct config *c = load_value("resize", "mode", modes[i]);
        assert_int_equal(c->resize.mode, i);
        conf_free(c);
    }
    static const char *const formats[] = {"auto", "jpeg", "webp", "avif", "png"};
    for (int i = 0; i < 5; i++) {
        struct config *c = load_value("resize", "format", formats[i]);
        assert_int_equal(c->resize.format, i);
        assert_string_equal(conf_format_name(c->resize.format), formats[i]);
        conf_free(c);
    }
    struct config *c = load_ini("[resize]\nquality = 1\nmax_file_mb = 1048576\n"
                                "max_pixels = 1\nbackground = #ABCDEF\n");
    assert_int_equal(c->resize.quality, 1);
    assert_int_equal(c->resize.max_file_mb, 1048576);
    assert_int_equal(c->resize.max_pixels, 1);
    assert_int_equal(c->resize.background.r, 0xab);
    conf_free(c);
    c = load_ini("[resize]\nquality = 100\nmax_pixels = 1000000M\n");
    assert_int_equal(c->resize.quality, 100);
    assert_int_equal(c->resize.max_pixels, 1000000000000ULL);
    conf_free(c);
    c = load_ini("[resize]\nmax_pixels = 2m\n");
    assert_int_equal(c->resize.max_pixels, 2000000);
    conf_free(c);

    static const struct bad_case cases[] = {
        {"[resize]\nmode = remote\n",
         "config.ini:2: [resize] mode = remote: expected one of local, lambda, off"},
        {"[resize]\nformat = gif\n",
         "config.ini:2: [resize] format = gif: expected one of auto, jpeg, webp, avif, png"},
        {"[resize]\nquality = 120\n",
         "config.ini:2: [resize] quality = 120: expected an integer from 1 to 100"},
        {"[resize]\nquality = 0\n", "[resize] quality = 0: expected an integer from 1 to 100"},
        {"[resize]\nquality = -5\n", "expected an integer from 1 to 100"},
        {"[resize]\nquality = 8.5\n", "expected an integer from 1 to 100"},
        {"[resize]\nquality = high\n", "expected an integer from 1 to 100"},
        {"[resize]\nmax_file_mb = 0\n",
         "config.ini:2: [resize] max_file_mb = 0: expected an integer from 1 to 1048576"},
        {"[resize]\nmax_file_mb = 1048577\n", "expected an integer from 1 to 1048576"},
        {"[resize]\nmax_pixels = 0\n",
         "config.ini:2: [resize] max_pixels = 0: expected a number of pixels from 1 to "
         "1000000M, such as 100000000 or 100M"},
        {"[resize]\nmax_pixels = 1.5M\n", "expected a number of pixels"},
        {"[resize]\nmax_pixels = M\n", "expected a number of pixels"},
        {"[resize]\nmax_pixels = 1000001M\n", "expected a number of pixels"},
        {"[resize]\nmax_pixels = 1000000000001\n", "expected a number of pixels"},
        {"[resize]\nmax_pixels = 99999999999999999999999\n", "expected a number of pixels"},
        {"[resize]\nbackground = white\n",
         "config.ini:2: [resize] background = white: expected a colour as #rrggbb, such as "
         "#ffffff"},
        {"[resize]\nbackground = #fff\n", "expected a colour as #rrggbb"},
        {"[resize]\nbackground = #gg0000\n", "expected a colour as #rrggbb"},
        {"[resize]\nbackground = ffffff\n", "expected a colour as #rrggbb"},
        {"[log]\nlevel = verbose\n",
         "config.ini:2: [log] level = verbose: expected one of error, warn, info, debug"},
    };
    expect_bad_cases(cases, COUNT(cases));

    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        c = load_value("log", "level", levels[i]);
        assert_int_equal(c->log.level, i);
        assert_string_equal(conf_log_level_name(c->log.level), levels[i]);
        conf_free(c);
    }
}

static void test_key_template(void **state)
{
    (void)state;
    static const char *const good[] = {"{size}/{key}", "{dir}/{size}/{name}", "{size}-{base}.{ext}",
                                       "thumbs/{size}/{key}"};
    for (size_t i = 0; i < COUNT(good); i++) {
        struct config *c = load_value("resize", "key_template", good[i]);
        assert_string_equal(c->resize.key_template, good[i]);
        conf_free(c);
    }
    static const struct bad_case cases[] = {
        {"[resize]\nkey_template = {key}\n",
         "config.ini:2: [resize] key_template = {key}: a template must contain {size}, or all "
         "sizes of an image would be written to the same key"},
        {"[resize]\nkey_template = {size}/{dir}.{ext}\n",
         "a template must contain {key}, {name} or {base}, or all images would be written to "
         "the same key"},
        {"[resize]\nkey_template = {size}/{file}\n",
         "unknown placeholder {file} (known: {size}, {key}, {dir}, {name}, {base}, {ext})"},
        {"[resize]\nkey_template = {size}/{key\n", "'{' without a closing '}'"},
        {"[resize]\nkey_template = {size}/key}\n", "'}' without an opening '{'"},
        {"[resize]\nkey_template = /{size}/{key}\n",
         "a template must not begin with '/' (keys are relative to destination_prefix)"},
        {"[resize]\nkey_template =\n", "expected a template such as {size}/{key}"},
    };
    expect_bad_cases(cases, COUNT(cases));
}

/* ------------------------------------------------------------------------------------------ */
/* [resize] sizes                                                                               */

static void test_sizes_good(void **state)
{
    (void)state;
    struct config *c =
        load_ini("[resize]\n"
                 "format = jpeg\n"
                 "quality = 70\n"
                 "sizes = wide:640x, tall:x480 , c:100x50:cover:attention:webp:q75,"
                 " d:10x10:fit:png, e:10x20:q50:avif:cover, "
                 "f_1-x:16384x16384:cover:entropy, g:1x1:cover:centre, h : 5x5 : auto\n");
    assert_int_equal(c->resize.size_count, 8);
    const struct conf_size *s = c->resize.sizes;
    assert_string_equal(s[0].name, "wide");
    assert_int_equal(s[0].width, 640);
    assert_int_equal(s[0].height, 0);
    assert_int_equal(s[0].format, CONF_FORMAT_JPEG); /* from [resize] format */
    assert_int_equal(s[0].quality, 70);              /* from [resize] quality */
    assert_string_equal(s[1].name, "tall");
    assert_int_equal(s[1].width, 0);
    assert_int_equal(s[1].height, 480);
    assert_int_equal(s[2].fit, CONF_FIT_COVER);
    assert_int_equal(s[2].crop, CONF_CROP_ATTENTION);
    assert_int_equal(s[2].format, CONF_FORMAT_WEBP);
    assert_true(s[2].format_set);
    assert_int_equal(s[2].quality, 75);
    assert_true(s[2].quality_set);
    assert_int_equal(s[3].fit, CONF_FIT_INSIDE);
    assert_int_equal(s[3].format, CONF_FORMAT_PNG);
    assert_int_equal(s[3].quality, 70);
    /* Options in any order. */
    assert_int_equal(s[4].fit, CONF_FIT_COVER);
    assert_int_equal(s[4].format, CONF_FORMAT_AVIF);
    assert_int_equal(s[4].quality, 50);
    assert_int_equal(s[5].width, 16384);
    assert_int_equal(s[5].crop, CONF_CROP_ENTROPY);
    assert_string_equal(s[5].name, "f_1-x");
    assert_int_equal(s[6].crop, CONF_CROP_CENTRE);
    assert_int_equal(s[7].format, CONF_FORMAT_AUTO);
    assert_true(s[7].format_set);
    assert_string_equal(conf_fit_name(s[2].fit), "cover");
    assert_string_equal(conf_crop_name(s[2].crop), "attention");
    conf_free(c);

    /* 32 sizes are allowed. */
    char ini[2048] = "[resize]\nsizes = ";
    for (int i = 0; i < 32; i++)
        snprintf(ini + strlen(ini), sizeof(ini) - strlen(ini), "%ss%d:%dx%d", i ? "," : "", i,
                 i + 1, i + 1);
    strcat(ini, "\n");
    c = load_ini(ini);
    assert_int_equal(c->resize.size_count, 32);
    conf_free(c);
}

static void test_sizes_bad(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"[resize]\nsizes =\n",
         "config.ini:2: [resize] sizes = : expected at least one size, such as "
         "thumbnail:150x150:cover"},
        {"[resize]\nsizes = thumb\n",
         "config.ini:2: [resize] sizes = thumb: size 'thumb' (entry 1): expected WIDTHxHEIGHT "
         "after the name, such as thumb:640x480 (or 640x, x480)"},
        {"[resize]\nsizes = a:1x1, Thumb:10x10\n",
         "size 'Thumb' (entry 2): a name must be 1 to 32 characters of a-z, 0-9, '_' and '-'"},
        {"[resize]\nsizes = a234567890123456789012345678901234:10x10\n",
         "(entry 1): a name must be 1 to 32 characters"},
        {"[resize]\nsizes = a:1x1, b:0x10\n",
         "size 'b' (entry 2): width 0 is out of range (1 to 16384)"},
        {"[resize]\nsizes = a:10x0\n", "size 'a' (entry 1): height 0 is out of range (1 to 16384)"},
        {"[resize]\nsizes = medium:20000x10\n",
         "size 'medium' (entry 1): width 20000 is out of range (1 to 16384)"},
        {"[resize]\nsizes = medium:10x16385\n",
         "size 'medium' (entry 1): height 16385 is out of range (1 to 16384)"},
        {"[resize]\nsizes = a:x\n",
         "size 'a' (entry 1): expected WIDTHxHEIGHT after the name, such as a:640x480 (or "
         "640x, x480), not 'x'"},
        {"[resize]\nsizes = a:640\n", "size 'a' (entry 1): expected WIDTHxHEIGHT"},
        {"[resize]\nsizes = a:axb\n", "size 'a' (entry 1): expected WIDTHxHEIGHT"},
        {"[resize]\nsizes = a:10x10x10\n", "size 'a' (entry 1): expected WIDTHxHEIGHT"},
        {"[resize]\nsizes = a:1x1, b:1x1:foo\n",
         "size 'b' (entry 2): unknown option 'foo': expected fit, cover, cover:attention (or "
         "entropy, centre), a format (auto, jpeg, webp, avif, png) or a quality such as q80"},
        {"[resize]\nsizes = a:1x1:q0\n",
         "size 'a' (entry 1): quality 'q0' is out of range: expected q1 to q100"},
        {"[resize]\nsizes = a:1x1:q101\n", "size 'a' (entry 1): quality 'q101' is out of range"},
        {"[resize]\nsizes = a:1x1:q\n", "size 'a' (entry 1): quality 'q' is out of range"},
        {"[resize]\nsizes = a:1x1:attention\n",
         "size 'a' (entry 1): the crop hint 'attention' must follow cover, as in "
         "cover:attention"},
        {"[resize]\nsizes = a:1x1:cover:webp:entropy\n",
         "size 'a' (entry 1): the crop hint 'entropy' must follow cover"},
        {"[resize]\nsizes = a:1x1:fit:cover\n", "size 'a' (entry 1): fit or cover given twice"},
        {"[resize]\nsizes = a:1x1:webp:png\n", "size 'a' (entry 1): format given twice"},
        {"[resize]\nsizes = a:1x1:q1:q2\n", "size 'a' (entry 1): quality given twice"},
        {"[resize]\nsizes = a:10x:cover\n",
         "size 'a' (entry 1): cover needs both a width and a height"},
        {"[resize]\nsizes = a:1x1, b:2x2, a:3x3\n",
         "size 'a' (entry 3): the name is already used by entry 1"},
        {"[resize]\nsizes = a:1x1,,b:1x1\n",
         "entry 2 is empty (a stray comma? sizes go on one line)"},
        {"[resize]\nsizes = a:1x1,\n", "entry 2 is empty (a stray comma? sizes go on one line)"},
        {"[resize]\nsizes = a:1x1:\n", "size 'a' (entry 1): empty option (a stray ':'?)"},
        {"[resize]\nsizes = a::1x1\n", "size 'a' (entry 1): empty option (a stray ':'?)"},
    };
    expect_bad_cases(cases, COUNT(cases));

    char ini[2048] = "[resize]\nsizes = ";
    for (int i = 0; i < 33; i++)
        snprintf(ini + strlen(ini), sizeof(ini) - strlen(ini), "%ss%d:1x1", i ? "," : "", i);
    strcat(ini, "\n");
    expect_ini_error(ini, "at most 32 sizes are allowed");
}

/* ------------------------------------------------------------------------------------------ */
/* Source and destination must not overlap                                                      */

static void test_overlap(void **state)
{
    (void)state;
    static const struct bad_case bad[] = {
        /* Destination inside the source. */
        {"[s3]\nsource_bucket = bkt1\nsource_prefix = src\ndestination_bucket = bkt1\n"
         "destination_prefix = src/out\n",
         "[s3] destination_prefix 'src/out/' ("},
        {"[s3]\nsource_bucket = bkt1\nsource_prefix = src\ndestination_bucket = bkt1\n"
         "destination_prefix = src/out\n",
         "is inside [s3] source_prefix 'src/' ("},
        {"[s3]\nsource_bucket = bkt1\nsource_prefix = src\ndestination_bucket = bkt1\n"
         "destination_prefix = src/out\n",
         "of the same bucket 'bkt1': resized images would be written into the watched source, "
         "picked up as new images and resized again, forever"},
        /* Same prefix. */
        {"[s3]\nsource_bucket = bkt1\nsource_prefix = p\ndestination_bucket = bkt1\n"
         "destination_prefix = p\n",
         "[s3] destination_prefix 'p/' ("},
        /* Empty source prefix: the whole bucket is watched. */
        {"[s3]\nsource_bucket = bkt1\ndestination_bucket = bkt1\ndestination_prefix = out\n",
         "is inside [s3] source_prefix '' (the whole bucket)"},
        {"[s3]\nsource_bucket = bkt1\ndestination_bucket = bkt1\n",
         "[s3] destination_prefix '' (default) is inside [s3] source_prefix '' (the whole "
         "bucket) (default)"},
        /* Source inside the destination, and a size named like the source folder. */
        {"[s3]\nsource_bucket = bkt1\nsource_prefix = large\ndestination_bucket = bkt1\n",
         "size 'large' is written to keys beginning with 'large/' ([resize] key_template "
         "'{size}/{key}'), inside [s3] source_prefix 'large/'"},
        {"[s3]\nsource_bucket = bkt1\nsource_prefix = thumbnails\ndestination_bucket = bkt1\n"
         "[resize]\nkey_template = {size}{key}\n",
         "size 'thumbnail' is written to keys beginning with 'thumbnail' ([resize] "
         "key_template '{size}{key}'), inside [s3] source_prefix 'thumbnails/'"},
        /* A template that does not begin with a fixed folder or {size}. */
        {"[s3]\nsource_bucket = bkt1\nsource_prefix = in\ndestination_bucket = bkt1\n"
         "[resize]\nkey_template = {key}-{size}\n",
         "[resize] key_template '{key}-{size}' ("},
        {"[s3]\nsource_bucket = bkt1\nsource_prefix = in\ndestination_bucket = bkt1\n"
         "[resize]\nkey_template = i{key}-{size}\n",
         "can write keys under [s3] destination_prefix '' (default) that fall inside [s3] "
         "source_prefix 'in/'"},
    };
    expect_bad_cases(bad, COUNT(bad));

    static const char *const good[] = {
        /* Disjoint prefixes. */
        "[s3]\nsource_bucket = bkt1\nsource_prefix = in\ndestination_bucket = bkt1\n"
        "destination_prefix = out\n",
        "[s3]\nsource_bucket = bkt1\nsource_prefix = in\ndestination_bucket = bkt1\n"
        "destination_prefix = inbox\n",
        /* Source inside the destination, outputs under {size}/ folders elsewhere. */
        "[s3]\nsource_bucket = bkt1\nsource_prefix = uploads\ndestination_bucket = bkt1\n",
        "[s3]\nsource_bucket = bkt1\nsource_prefix = thumbnails\ndestination_bucket = bkt1\n",
        "[s3]\nsource_bucket = bkt1\nsource_prefix = img/uploads\ndestination_bucket = bkt1\n"
        "destination_prefix = img\n",
        "[s3]\nsource_bucket = bkt1\nsource_prefix = in\ndestination_bucket = bkt1\n"
        "[resize]\nkey_template = out/{key}-{size}\n",
        /* Other bucket, or no destination yet. */
        "[s3]\nsource_bucket = bkt1\ndestination_bucket = bkt2\n",
        "[s3]\nsource_bucket = bkt1\n",
    };
    for (size_t i = 0; i < COUNT(good); i++)
        conf_free(load_ini(good[i]));

    /* The check sees overrides too. */
    const char *path =
        write_file("config.ini", 0600, "[s3]\nsource_bucket = bkt1\ndestination_bucket = bkt2\n");
    const char *ovr[] = {"s3.destination_bucket=bkt1"};
    expect_error_opts(path, ovr, 1, "InvalidConfig", "is inside [s3] source_prefix");
}

/* ------------------------------------------------------------------------------------------ */
/* Overrides                                                                                    */

static void test_overrides(void **state)
{
    (void)state;
    const char *path =
        write_file("config.ini", 0600, "[s3]\nregion = eu-west-1\n[resize]\nquality = 50\n");
    const char *ovr[] = {"s3.region=eu-central-1", " resize.quality = 60 ", "log.level=debug",
                         "resize.sizes=a:10x10:q5"};
    struct config *c = must_load_opts(path, ovr, COUNT(ovr));
    assert_string_equal(c->s3.region, "eu-central-1");
    assert_string_equal(conf_origin(c, "s3", "region"), "option -o s3.region");
    assert_int_equal(c->resize.quality, 60);
    assert_int_equal(c->log.level, CONF_LOG_DEBUG);
    assert_int_equal(c->resize.sizes[0].quality, 5);
    conf_free(c);

    /* The last one wins. */
    const char *twice[] = {"resize.quality=61", "resize.quality=62"};
    c = must_load_opts(path, twice, 2);
    assert_int_equal(c->resize.quality, 62);
    conf_free(c);

    /* An empty value unsets a key with fallbacks: the environment applies again. */
    env_set("AWS_REGION", "sa-east-1");
    const char *unset[] = {"s3.region="};
    c = must_load_opts(path, unset, 1);
    assert_string_equal(c->s3.region, "sa-east-1");
    conf_free(c);

    const struct {
        const char *ovr;
        const char *needle;
    } bad[] = {
        {"resize.quality=120", "option -o resize.quality = 120: expected an integer from 1 to 100"},
        {"s3.region=a b", "option -o s3.region = a b: expected a region name"},
        {"quality=1", "option -o quality=1: expected section.key=value, such as "
                      "s3.region=eu-west-1"},
        {"resize.quality", "option -o resize.quality: expected section.key=value"},
        {"foo.bar=1", "option -o foo.bar: unknown section [foo] (known sections: [s3], [resize], "
                      "[notify], [gateway], [log])"},
        {"s3.foo=1", "option -o s3.foo: unknown key 'foo' in [s3] (known keys: endpoint,"},
        {"notify.topic=x", "option -o notify.topic: unknown key 'topic' in [notify] (known keys: "
                           "on,"},
        {"s3.secret_access_key=abc",
         "option -o s3.secret_access_key = (hidden): credentials are not accepted as options, "
         "since other users can read command lines"},
        {"s3.access_key_id=", "option -o s3.access_key_id = (hidden): credentials are not "
                              "accepted as options"},
        {"resize.sizes=a:1x1:q0", "option -o resize.sizes = a:1x1:q0: size 'a' (entry 1): "
                                  "quality 'q0' is out of range"},
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        expect_error_opts(path, &bad[i].ovr, 1, "InvalidConfig", bad[i].needle);

    /* The label is the caller's. */
    struct s3_error err;
    struct conf_options o = {.path = path,
                             .overrides = (const char *const[]){"resize.quality=0"},
                             .override_count = 1,
                             .override_origin = "env S3IMGFS_*:",
                             .getenv = fake_getenv,
                             .home = home};
    assert_null(conf_load(&o, &err));
    assert_non_null(strstr(err.message, "env S3IMGFS_*: resize.quality = 0: expected"));
}

/* ------------------------------------------------------------------------------------------ */
/* conf_dump                                                                                    */

static void test_dump(void **state)
{
    (void)state;
    env_set("AWS_SESSION_TOKEN", "FQoGZXIvYXdzEXAMPLETOKENVALUE");
    env_set("AWS_DEFAULT_REGION", "eu-north-1");
    const char *path = write_file("config.ini", 0600,
                                  "[s3]\nsource_bucket = photos\n[resize]\nquality = 77\n"
                                  "sizes = a:10x10:cover:attention, b:x20:webp:q9\n");
    const char *ovr[] = {"log.level=warn"};
    struct config *c = must_load_opts(path, ovr, 1);
    char *out = dump_of(c);
    char line[700];
    snprintf(line, sizeof(line), "source_bucket = photos  ; %s:2\n", path);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line), "quality = 77  ; %s:4\n", path);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "region = eu-north-1  ; env AWS_DEFAULT_REGION\n"));
    assert_non_null(strstr(out,
                           "endpoint = https://s3.eu-north-1.amazonaws.com  ; default (for region "
                           "eu-north-1)\n"));
    assert_non_null(strstr(out, "level = warn  ; option -o log.level\n"));
    assert_non_null(strstr(out, "max_pixels = 100000000  ; default\n"));
    assert_non_null(strstr(out, "path_style = false  ; default\n"));
    assert_non_null(strstr(out, "background = #ffffff  ; default\n"));
    assert_non_null(strstr(out, "sizes = a:10x10:cover:attention:auto:q77, b:x20:webp:q9  ; "));
    assert_non_null(strstr(out, "[s3]\n"));
    assert_non_null(strstr(out, "\n[notify]\n"));
    assert_non_null(strstr(out, "\n[gateway]\n"));
    /* Secrets are masked; the access key shows its last 4 characters, like the AWS CLI. */
    assert_non_null(strstr(out, "access_key_id = ****************MPLE  ; env AWS_ACCESS_KEY_ID\n"));
    assert_non_null(strstr(out, "secret_access_key = ********  ; env AWS_SECRET_ACCESS_KEY\n"));
    assert_non_null(strstr(out, "session_token = ********  ; env AWS_SESSION_TOKEN\n"));
    assert_null(strstr(out, "AKIAIOSFODNN7EXAMPLE"));
    assert_null(strstr(out, "wJalrXUtnFEMI"));
    assert_null(strstr(out, "EXAMPLEKEY"));
    assert_null(strstr(out, "FQoGZXIvYXdzEXAMPLETOKENVALUE"));
    /* Every key of the table is printed. */
    for (size_t i = 0; conf_key_at(i); i++) {
        snprintf(line, sizeof(line), "\n%s = ", conf_key_at(i)->key);
        assert_non_null(strstr(out, line));
    }
    free(out);
    conf_free(c);

    env_set("AWS_SESSION_TOKEN", NULL);
    c = must_load(path);
    out = dump_of(c);
    assert_non_null(strstr(out, "session_token =   ; not set\n"));
    free(out);
    conf_free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* The key table and the documentation agree                                                    */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    buf[len] = '\0';
    return buf;
}

/* docs/config.md has a "## [section]" part per section whose table rows "| `key` | ..."
 * are exactly the keys of the table, each with its default and environment variables. */
static void test_docs_match_table(void **state)
{
    (void)state;
    const char *root = getenv("S3IMGFS_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof(path), "%s/docs/config.md", root ? root : ".");
    char *doc = read_all(path);
    if (!doc && root)
        fail_msg("cannot read %s", path);
    if (!doc) {
        print_message("no %s (set S3IMGFS_SOURCE_ROOT)\n", path);
        skip();
    }
    for (size_t s = 0; conf_section_at(s); s++) {
        const char *sec = conf_section_at(s);
        char head[64];
        snprintf(head, sizeof(head), "\n## [%s]", sec);
        char *start = strstr(doc, head);
        if (!start) {
            fail_msg("docs/config.md has no \"## [%s]\" heading", sec);
            return;
        }
        start += strlen(head);
        char *end = strstr(start, "\n## ");
        size_t len = end ? (size_t)(end - start) : strlen(start);
        char *part = strndup(start, len);
        /* Every documented key exists. */
        for (char *p = strstr(part, "\n| `"); p; p = strstr(p + 1, "\n| `")) {
            char key[64];
            if (sscanf(p, "\n| `%63[^`]`", key) != 1)
                continue;
            bool found = false;
            for (size_t i = 0; conf_key_at(i); i++)
                found |= strcmp(conf_key_at(i)->section, sec) == 0 &&
                         strcmp(conf_key_at(i)->key, key) == 0;
            if (!found)
                fail_msg("docs/config.md documents [%s] %s, which does not exist", sec, key);
        }
        /* Every key is documented with its default and environment variables. */
        for (size_t i = 0; conf_key_at(i); i++) {
            const struct conf_key_info *k = conf_key_at(i);
            if (strcmp(k->section, sec) != 0)
                continue;
            char row[80];
            snprintf(row, sizeof(row), "\n| `%s` |", k->key);
            char *r = strstr(part, row);
            if (!r) {
                fail_msg("docs/config.md does not document [%s] %s", sec, k->key);
                return;
            }
            char *eol = strchr(r + 1, '\n');
            char *rowtext = strndup(r, eol ? (size_t)(eol - r) : strlen(r));
            if (k->default_value[0]) {
                char def[128];
                snprintf(def, sizeof(def), "`%s`", k->default_value);
                if (!strstr(rowtext, def))
                    fail_msg("docs/config.md: [%s] %s: default %s missing", sec, k->key, def);
            }
            for (int e = 0; e < 3 && k->env[e]; e++)
                if (!strstr(doc, k->env[e]))
                    fail_msg("docs/config.md never mentions %s", k->env[e]);
            free(rowtext);
        }
        free(part);
    }
    free(doc);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(conf_sse_name(CONF_SSE_KMS), "aws:kms");
    assert_string_equal(conf_sse_name(CONF_SSE_AES256), "AES256");
    assert_string_equal(conf_fit_name(CONF_FIT_INSIDE), "fit");
    assert_string_equal(conf_crop_name(CONF_CROP_ENTROPY), "entropy");
    assert_string_equal(conf_section_at(0), "s3");
    assert_string_equal(conf_section_at(4), "log");
    assert_null(conf_section_at(5));
    assert_string_equal(conf_key_at(0)->key, "endpoint");
    assert_null(conf_key_at(1000));
    conf_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_without_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_file_locations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_file_must_exist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_keys_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_value_means_unset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_region_bool_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_sse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_ca_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_template, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump, setup, teardown),
        cmocka_unit_test(test_docs_match_table),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
