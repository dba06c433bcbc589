/* conf: the [gateway] section (defaults, every key's valid and invalid values, the glob lists,
 * cache_dir resolution, resize_workers = 0, the multipart check, conf_dump) and the two pure
 * helpers conf_rendition_key and conf_glob_match. */
#include "conf.h"
#include "conf_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int setup(void **state)
{
    (void)state;
    if (conf_fixture_setup("conf-gateway") != 0)
        return -1;
    env_set("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE");
    env_set("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    return 0;
}

static int teardown(void **state)
{
    return conf_fixture_teardown(state);
}

/* What resize_workers = 0 becomes. */
static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 2 : n >= 64 ? 64 : (unsigned)n + 1;
}

static const char *const default_temp[] = {
    ".goutputstream-*", "*.swp",  "*.swx",        "*~",    "~$*",
    ".~lock.*#",        "*.part", "*.crdownload", "*.tmp", ".*.??????",
};
static const char *const default_junk[] = {".DS_Store", "._*", "Thumbs.db", "desktop.ini"};

static void assert_globs(const char *const *list, size_t count, const char *const *want, size_t n)
{
    assert_non_null(list);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list[i], want[i]);
    assert_null(list[n]);
}

/* ------------------------------------------------------------------------------------------ */
/* Defaults                                                                                     */

static void test_defaults(void **state)
{
    (void)state;
    struct config *c = must_load(NULL);
    char want[600];
    snprintf(want, sizeof(want), "%s/.cache/s3imgfs", home);
    assert_string_equal(c->gateway.cache_dir, want);
    assert_string_equal(conf_origin(c, "gateway", "cache_dir"), "default (~/.cache/s3imgfs)");
    assert_int_equal(c->gateway.upload_workers, 8);
    assert_int_equal(c->gateway.resize_workers, online_cpus());
    assert_true(c->gateway.resize_workers >= 1);
    assert_string_equal(conf_origin(c, "gateway", "resize_workers"),
                        "default (the online CPUs + 1)");
    assert_globs(c->gateway.temp_globs, c->gateway.temp_glob_count, default_temp,
                 COUNT(default_temp));
    assert_int_equal(c->gateway.temp_hold_seconds, 30);
    assert_globs(c->gateway.junk_globs, c->gateway.junk_glob_count, default_junk,
                 COUNT(default_junk));
    assert_string_equal(c->gateway.resized_dir, "resized");
    assert_true(c->gateway.delete_renditions);
    assert_int_equal(c->gateway.attr_ttl, 10);
    assert_int_equal(c->gateway.list_ttl, 10);
    assert_int_equal(c->gateway.negative_ttl, 5);
    assert_false(c->gateway.sync_upload);
    assert_int_equal(c->gateway.cache_max_mb, 10240);
    assert_int_equal(c->gateway.multipart_threshold_mb, 16);
    assert_int_equal(c->gateway.part_size_mb, 8);
    assert_int_equal(c->gateway.part_parallel, 8);
    assert_int_equal(c->gateway.read_ahead_kb, 8192);
    assert_int_equal(c->gateway.upload_kbps, 0);
    assert_string_equal(conf_origin(c, "gateway", "temp_globs"), "default");

    /* conf_dump prints every [gateway] key, in the table's order, with its origin. */
    char *out = dump_of(c);
    char line[800];
    snprintf(line, sizeof(line), "\n[gateway]\ncache_dir = %s  ; default (~/.cache/s3imgfs)\n",
             want);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line), "\nresize_workers = %u  ; default (the online CPUs + 1)\n",
             online_cpus());
    assert_non_null(strstr(out, line));
    static const char *const lines[] = {
        "\nupload_workers = 8  ; default\n",
        "\ntemp_globs = .goutputstream-*, *.swp, *.swx, *~, ~$*, .~lock.*#, *.part, "
        "*.crdownload, *.tmp, .*.??????  ; default\n",
        "\ntemp_hold_seconds = 30  ; default\n",
        "\njunk_globs = .DS_Store, ._*, Thumbs.db, desktop.ini  ; default\n",
        "\nresized_dir = resized  ; default\n",
        "\ndelete_renditions = true  ; default\n",
        "\nattr_ttl = 10  ; default\n",
        "\nlist_ttl = 10  ; default\n",
        "\nnegative_ttl = 5  ; default\n",
        "\nsync_upload = false  ; default\n",
        "\ncache_max_mb = 10240  ; default\n",
        "\nmultipart_threshold_mb = 16  ; default\n",
        "\npart_size_mb = 8  ; default\n",
        "\npart_parallel = 8  ; default\n",
        "\nupload_kbps = 0  ; default\n",
        "\nread_ahead_kb = 8192  ; default\n\n[log]\n",
    };
    for (size_t i = 0; i < COUNT(lines); i++)
        if (!strstr(out, lines[i]))
            fail_msg("conf_dump lacks \"%s\":\n%s", lines[i], out);
    free(out);
    conf_free(c);
}

static void test_all_keys_set(void **state)
{
    (void)state;
    struct config *c = load_ini("[gateway]\n"
                                "cache_dir = /var/cache/s3imgfs-test/\n"
                                "upload_workers = 3\n"
                                "resize_workers = 5\n"
                                "temp_globs = *.swp , .~lock.*#\n"
                                "temp_hold_seconds = 0\n"
                                "junk_globs = .DS_Store\n"
                                "resized_dir = .renditions\n"
                                "delete_renditions = no\n"
                                "attr_ttl = 1\n"
                                "list_ttl = 2\n"
                                "negative_ttl = 0\n"
                                "sync_upload = yes\n"
                                "cache_max_mb = 64\n"
                                "multipart_threshold_mb = 100\n"
                                "part_size_mb = 100\n"
                                "part_parallel = 32\n"
                                "upload_kbps = 2048\n"
                                "read_ahead_kb = 0\n");
    assert_string_equal(c->gateway.cache_dir, "/var/cache/s3imgfs-test");
    assert_int_equal(c->gateway.upload_workers, 3);
    assert_int_equal(c->gateway.resize_workers, 5);
    static const char *const temp[] = {"*.swp", ".~lock.*#"};
    assert_globs(c->gateway.temp_globs, c->gateway.temp_glob_count, temp, 2);
    assert_int_equal(c->gateway.temp_hold_seconds, 0);
    static const char *const junk[] = {".DS_Store"};
    assert_globs(c->gateway.junk_globs, c->gateway.junk_glob_count, junk, 1);
    assert_string_equal(c->gateway.resized_dir, ".renditions");
    assert_false(c->gateway.delete_renditions);
    assert_int_equal(c->gateway.attr_ttl, 1);
    assert_int_equal(c->gateway.list_ttl, 2);
    assert_int_equal(c->gateway.negative_ttl, 0);
    assert_true(c->gateway.sync_upload);
    assert_int_equal(c->gateway.cache_max_mb, 64);
    assert_int_equal(c->gateway.multipart_threshold_mb, 100);
    assert_int_equal(c->gateway.part_size_mb, 100);
    assert_int_equal(c->gateway.part_parallel, 32);
    assert_int_equal(c->gateway.read_ahead_kb, 0);
    assert_int_equal(c->gateway.upload_kbps, 2048);
    char want[600];
    snprintf(want, sizeof(want), "%s:3", path_of("config.ini"));
    assert_string_equal(conf_origin(c, "gateway", "upload_workers"), want);
    snprintf(want, sizeof(want), "%s:2", path_of("config.ini"));
    assert_string_equal(conf_origin(c, "gateway", "cache_dir"), want);
    char *out = dump_of(c);
    char line[800];
    snprintf(line, sizeof(line), "\ntemp_globs = *.swp, .~lock.*#  ; %s:5\n",
             path_of("config.ini"));
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line), "\ncache_dir = /var/cache/s3imgfs-test  ; %s:2\n",
             path_of("config.ini"));
    assert_non_null(strstr(out, line));
    free(out);
    conf_free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Integer, boolean and name keys                                                               */

struct uint_key {
    const char *key;
    unsigned min, max;
    size_t offset;
    const char *extra; /* more lines, for the keys the multipart check ties together */
};

#define GW(f) offsetof(struct config, gateway.f)

static void test_integer_ranges(void **state)
{
    (void)state;
    static const struct uint_key keys[] = {
        {"upload_workers", 1, 64, GW(upload_workers), ""},
        {"resize_workers", 0, 64, GW(resize_workers), ""},
        {"temp_hold_seconds", 0, 86400, GW(temp_hold_seconds), ""},
        {"attr_ttl", 0, 86400, GW(attr_ttl), ""},
        {"list_ttl", 0, 86400, GW(list_ttl), ""},
        {"negative_ttl", 0, 86400, GW(negative_ttl), ""},
        {"cache_max_mb", 64, 16777216, GW(cache_max_mb), ""},
        {"multipart_threshold_mb", 5, 5120, GW(multipart_threshold_mb), "part_size_mb = 5\n"},
        {"part_size_mb", 5, 5120, GW(part_size_mb), "multipart_threshold_mb = 5120\n"},
        {"part_parallel", 1, 32, GW(part_parallel), ""},
        {"read_ahead_kb", 0, 262144, GW(read_ahead_kb), ""},
        {"upload_kbps", 0, 10485760, GW(upload_kbps), ""},
    };
    for (size_t i = 0; i < COUNT(keys); i++) {
        const struct uint_key *k = &keys[i];
        char ini[300], needle[300];
        /* The bounds are accepted (resize_workers = 0 is checked below). */
        unsigned bounds[2] = {k->min, k->max};
        for (int b = 0; b < 2; b++) {
            if (bounds[b] == 0 && strcmp(k->key, "resize_workers") == 0)
                continue;
            snprintf(ini, sizeof(ini), "[gateway]\n%s = %u\n%s", k->key, bounds[b], k->extra);
            struct config *c = load_ini(ini);
            assert_int_equal(*(const unsigned *)((const char *)c + k->offset), bounds[b]);
            conf_free(c);
        }
        /* Out of range or not an integer: the exact message. */
        char bad[4][32];
        int nbad = 0;
        if (k->min > 0)
            snprintf(bad[nbad++], sizeof(bad[0]), "%u", k->min - 1);
        snprintf(bad[nbad++], sizeof(bad[0]), "%u", k->max + 1);
        snprintf(bad[nbad++], sizeof(bad[0]), "-1");
        snprintf(bad[nbad++], sizeof(bad[0]), "ten");
        for (int b = 0; b < nbad; b++) {
            snprintf(ini, sizeof(ini), "[gateway]\n%s = %s\n%s", k->key, bad[b], k->extra);
            snprintf(needle, sizeof(needle),
                     "config.ini:2: [gateway] %s = %s: expected an integer from %u to %u", k->key,
                     bad[b], k->min, k->max);
            expect_ini_error(ini, needle);
        }
    }
    /* One exact message in full, as docs/config.md shows it. */
    expect_ini_error(
        "[gateway]\nupload_workers = 0\n",
        "config.ini:2: [gateway] upload_workers = 0: expected an integer from 1 to 64");
    expect_ini_error("[gateway]\nattr_ttl =\n",
                     "config.ini:2: [gateway] attr_ttl = : expected an integer from 0 to 86400");
    /* Overrides are checked the same way. */
    const char *ovr[] = {"gateway.part_parallel=33"};
    expect_error_opts(NULL, ovr, 1, "InvalidConfig",
                      "option -o gateway.part_parallel = 33: expected an integer from 1 to 32");
}

static void test_resize_workers_zero(void **state)
{
    (void)state;
    struct config *c = load_ini("[gateway]\nresize_workers = 0\n");
    assert_int_equal(c->gateway.resize_workers, online_cpus());
    char want[600];
    snprintf(want, sizeof(want), "%s:2 (0 = the online CPUs + 1)", path_of("config.ini"));
    assert_string_equal(conf_origin(c, "gateway", "resize_workers"), want);
    conf_free(c);
    const char *ovr[] = {"gateway.resize_workers=0"};
    c = must_load_opts(NULL, ovr, 1);
    assert_int_equal(c->gateway.resize_workers, online_cpus());
    assert_string_equal(conf_origin(c, "gateway", "resize_workers"),
                        "option -o gateway.resize_workers (0 = the online CPUs + 1)");
    conf_free(c);
    c = load_ini("[gateway]\nresize_workers = 64\n");
    assert_int_equal(c->gateway.resize_workers, 64);
    conf_free(c);
}

static void test_booleans(void **state)
{
    (void)state;
    struct config *c = load_ini("[gateway]\ndelete_renditions = off\nsync_upload = TRUE\n");
    assert_false(c->gateway.delete_renditions);
    assert_true(c->gateway.sync_upload);
    conf_free(c);
    static const struct {
        const char *ini, *needle;
    } bad[] = {
        {"[gateway]\ndelete_renditions = sometimes\n",
         "config.ini:2: [gateway] delete_renditions = sometimes: expected true or false (or "
         "yes/no, on/off, 1/0)"},
        {"[gateway]\nsync_upload = 2\n",
         "config.ini:2: [gateway] sync_upload = 2: expected true or false"},
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        expect_ini_error(bad[i].ini, bad[i].needle);
}

static void test_resized_dir(void **state)
{
    (void)state;
    static const char *const good[] = {"renditions", ".resized", "...",      "a b",
                                       "s3imgfs",    ".s3img",   "x.s3imgfs"};
    for (size_t i = 0; i < COUNT(good); i++) {
        char ini[200];
        snprintf(ini, sizeof(ini), "[gateway]\nresized_dir = %s\n", good[i]);
        struct config *c = load_ini(ini);
        assert_string_equal(c->gateway.resized_dir, good[i]);
        conf_free(c);
    }
    char long_name[300];
    memset(long_name, 'n', 256);
    long_name[256] = '\0';
    char long_ini[400], long_needle[400];
    snprintf(long_ini, sizeof(long_ini), "[gateway]\nresized_dir = %s\n", long_name);
    snprintf(long_needle, sizeof(long_needle),
             "config.ini:2: [gateway] resized_dir = %.100s...: "
             "expected a folder name of 1 to 255 bytes",
             long_name);
    expect_ini_error(long_ini, long_needle);
    long_name[255] = '\0';
    snprintf(long_ini, sizeof(long_ini), "[gateway]\nresized_dir = %s\n", long_name);
    struct config *c = load_ini(long_ini);
    assert_int_equal(strlen(c->gateway.resized_dir), 255);
    conf_free(c);

    static const struct {
        const char *ini, *needle;
    } bad[] = {
        {"[gateway]\nresized_dir =\n",
         "config.ini:2: [gateway] resized_dir = : expected a folder name of 1 to 255 bytes, "
         "such as resized"},
        {"[gateway]\nresized_dir = a/b\n",
         "config.ini:2: [gateway] resized_dir = a/b: expected one folder name, without '/'"},
        {"[gateway]\nresized_dir = /resized\n", "expected one folder name, without '/'"},
        {"[gateway]\nresized_dir = resized/\n", "expected one folder name, without '/'"},
        {"[gateway]\nresized_dir = .\n",
         "config.ini:2: [gateway] resized_dir = .: '.' and '..' are not folder names"},
        {"[gateway]\nresized_dir = ..\n", "'.' and '..' are not folder names"},
        {"[gateway]\nresized_dir = .s3imgfs\n",
         "config.ini:2: [gateway] resized_dir = .s3imgfs: names beginning with .s3imgfs are "
         "reserved for s3imgfs itself"},
        {"[gateway]\nresized_dir = .s3imgfs-spool\n", "are reserved for s3imgfs itself"},
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        expect_ini_error(bad[i].ini, bad[i].needle);
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_ini_error("[gateway]\nworkers = 4\n",
                     "config.ini:2: unknown key 'workers' in [gateway] (known keys: cache_dir, "
                     "upload_workers, resize_workers, temp_globs, temp_hold_seconds, junk_globs, "
                     "resized_dir, delete_renditions, attr_ttl, list_ttl, negative_ttl, "
                     "sync_upload, cache_max_mb, multipart_threshold_mb, part_size_mb, "
                     "part_parallel, upload_kbps, read_ahead_kb)");
    const char *ovr[] = {"gateway.Cache_dir=/x"};
    expect_error_opts(NULL, ovr, 1, "InvalidConfig",
                      "option -o gateway.Cache_dir: unknown key 'Cache_dir' in [gateway] (known "
                      "keys: cache_dir,");
    /* A gateway key in another section is named as unknown there. */
    expect_ini_error("[notify]\ncache_dir = /x\n",
                     "config.ini:2: unknown key 'cache_dir' in [notify] (known keys: on,");
}

/* ------------------------------------------------------------------------------------------ */
/* The multipart check                                                                          */

static void test_part_size_vs_threshold(void **state)
{
    (void)state;
    char needle[700];
    snprintf(needle, sizeof(needle),
             "%s:2: [gateway] part_size_mb = 32: a part must not be larger than the multipart "
             "threshold, but [gateway] multipart_threshold_mb is 16 (default)",
             path_of("config.ini"));
    expect_ini_error("[gateway]\npart_size_mb = 32\n", needle);
    snprintf(needle, sizeof(needle),
             "[gateway] part_size_mb (default) = 8: a part must not be larger than the multipart "
             "threshold, but [gateway] multipart_threshold_mb is 5 (%s:2)",
             path_of("config.ini"));
    expect_ini_error("[gateway]\nmultipart_threshold_mb = 5\n", needle);
    const char *path = write_file("config.ini", 0600, "[gateway]\nmultipart_threshold_mb = 10\n");
    const char *ovr[] = {"gateway.part_size_mb=11"};
    expect_error_opts(path, ovr, 1, "InvalidConfig",
                      "option -o gateway.part_size_mb = 11: a part must not be larger than the "
                      "multipart threshold, but [gateway] multipart_threshold_mb is 10 (");
    /* Equal is fine. */
    struct config *c = load_ini("[gateway]\nmultipart_threshold_mb = 5\npart_size_mb = 5\n");
    assert_int_equal(c->gateway.part_size_mb, 5);
    conf_free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Glob lists                                                                                   */

static void test_globs_parse(void **state)
{
    (void)state;
    struct config *c =
        load_ini("[gateway]\ntemp_globs =  a* ,b?c,\t[xy]z , *.tmp\njunk_globs = \\*x\n");
    static const char *const temp[] = {"a*", "b?c", "[xy]z", "*.tmp"};
    assert_globs(c->gateway.temp_globs, c->gateway.temp_glob_count, temp, COUNT(temp));
    static const char *const junk[] = {"\\*x"};
    assert_globs(c->gateway.junk_globs, c->gateway.junk_glob_count, junk, 1);
    conf_free(c);

    /* An empty value is an empty list (never a NULL array). */
    c = load_ini("[gateway]\ntemp_globs =\njunk_globs =\n");
    assert_globs(c->gateway.temp_globs, c->gateway.temp_glob_count, NULL, 0);
    assert_globs(c->gateway.junk_globs, c->gateway.junk_glob_count, NULL, 0);
    char *out = dump_of(c);
    char line[700];
    snprintf(line, sizeof(line), "\ntemp_globs =   ; %s:2\n", path_of("config.ini"));
    assert_non_null(strstr(out, line));
    free(out);
    conf_free(c);
    const char *ovr[] = {"gateway.junk_globs=", "gateway.temp_globs= *.x "};
    c = must_load_opts(NULL, ovr, 2);
    assert_int_equal(c->gateway.junk_glob_count, 0);
    static const char *const x[] = {"*.x"};
    assert_globs(c->gateway.temp_globs, c->gateway.temp_glob_count, x, 1);
    assert_string_equal(conf_origin(c, "gateway", "temp_globs"), "option -o gateway.temp_globs");
    conf_free(c);

    /* 64 globs of 255 characters are allowed; 65, or 256 characters, are not. */
    size_t cap = 65 * 260 + 100;
    char *ini = malloc(cap);
    assert_non_null(ini);
    char glob[300];
    memset(glob, 'g', 255);
    glob[255] = '\0';
    snprintf(ini, cap, "[gateway]\njunk_globs = ");
    for (int i = 0; i < 64; i++)
        snprintf(ini + strlen(ini), cap - strlen(ini), "%s%s", i ? ", " : "", glob);
    strcat(ini, "\n");
    c = load_ini(ini);
    assert_int_equal(c->gateway.junk_glob_count, 64);
    assert_int_equal(strlen(c->gateway.junk_globs[63]), 255);
    assert_null(c->gateway.junk_globs[64]);
    conf_free(c);
    snprintf(ini, cap, "[gateway]\ntemp_globs = ");
    for (int i = 0; i < 65; i++)
        snprintf(ini + strlen(ini), cap - strlen(ini), "%s*.%d", i ? "," : "", i);
    strcat(ini, "\n");
    expect_ini_error(ini, "...: at most 64 globs are allowed");
    expect_ini_error(ini, "config.ini:2: [gateway] temp_globs = *.0,*.1,");
    snprintf(ini, cap, "[gateway]\ntemp_globs = *.a, %sg\n", glob);
    expect_ini_error(ini, "...: entry 2 is longer than 255 characters");
    free(ini);

    static const struct {
        const char *ini, *needle;
    } bad[] = {
        {"[gateway]\ntemp_globs = *.a,,*.b\n",
         "config.ini:2: [gateway] temp_globs = *.a,,*.b: entry 2 is empty (a stray comma? globs "
         "go on one line)"},
        {"[gateway]\ntemp_globs = *.a,\n", "temp_globs = *.a,: entry 2 is empty"},
        {"[gateway]\njunk_globs = , x\n", "junk_globs = , x: entry 1 is empty"},
        {"[gateway]\njunk_globs = .DS_Store, cache/*\n",
         "config.ini:2: [gateway] junk_globs = .DS_Store, cache/*: entry 2, 'cache/*', contains "
         "'/': globs are matched against a file's name, not its path"},
        {"[gateway]\ntemp_globs = /\n", "entry 1, '/', contains '/'"},
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        expect_ini_error(bad[i].ini, bad[i].needle);
}

static void test_glob_match_defaults(void **state)
{
    (void)state;
    struct config *c = must_load(NULL);
    const char *const *t = c->gateway.temp_globs, *const *j = c->gateway.junk_globs;
    size_t nt = c->gateway.temp_glob_count, nj = c->gateway.junk_glob_count;
    static const char *const temp[] = {
        ".goutputstream-ABC123", /* GLib's atomic replace */
        "x.swp",
        ".notes.txt.swp", /* vim: a dot file, matched without FNM_PERIOD */
        ".notes.txt.swx",
        "report.docx~",
        "~$report.docx",      /* Microsoft Office owner file */
        ".~lock.report.odt#", /* LibreOffice lock */
        "movie.mkv.part",
        "setup.exe.crdownload",
        "a.tmp",
        ".photo.jpg.a1B2c3", /* rsync's temporary name */
        "trips/rome/x.swp",  /* only the base name counts */
        "/abs/dir/.~lock.a#",
    };
    for (size_t i = 0; i < COUNT(temp); i++) {
        if (!conf_glob_match(t, nt, temp[i]))
            fail_msg("'%s' should be a temporary file", temp[i]);
        assert_false(conf_glob_match(j, nj, temp[i]));
    }
    static const char *const junk[] = {".DS_Store", "._photo.jpg", "Thumbs.db", "desktop.ini",
                                       "a/b/.DS_Store"};
    for (size_t i = 0; i < COUNT(junk); i++) {
        if (!conf_glob_match(j, nj, junk[i]))
            fail_msg("'%s' should be junk", junk[i]);
        assert_false(conf_glob_match(t, nt, junk[i]));
    }
    static const char *const neither[] = {
        "photo.jpg",
        "trips/photo.jpg",
        "report.docx",
        ".photo.jpg.a1B2c",   /* 5 characters: not rsync's */
        ".photo.jpg.a1B2c3d", /* 7 */
        "photo.jpg.a1B2c3",   /* no leading dot */
        ".profile",
        "x.swp/photo.jpg", /* a folder's name does not count */
        "DS_Store",
        "thumbs.db", /* globs are case-sensitive */
        "",
    };
    for (size_t i = 0; i < COUNT(neither); i++) {
        if (conf_glob_match(t, nt, neither[i]) || conf_glob_match(j, nj, neither[i]))
            fail_msg("'%s' should match no default glob", neither[i]);
    }
    conf_free(c);
}

static void test_glob_match_custom(void **state)
{
    (void)state;
    static const char *const globs[] = {"IMG_????.JPG", "[abc]*.raw", "\\*literal", NULL};
    assert_true(conf_glob_match(globs, 3, "IMG_0001.JPG"));
    assert_false(conf_glob_match(globs, 3, "IMG_001.JPG"));
    assert_true(conf_glob_match(globs, 3, "dcim/b1.raw"));
    assert_false(conf_glob_match(globs, 3, "d1.raw"));
    assert_true(conf_glob_match(globs, 3, "*literal"));
    assert_false(conf_glob_match(globs, 3, "xliteral"));
    /* Only the first `count` globs are used. */
    assert_false(conf_glob_match(globs, 1, "b1.raw"));
    assert_false(conf_glob_match(globs, 0, "IMG_0001.JPG"));
    assert_false(conf_glob_match(NULL, 0, "x"));
    static const char *const star[] = {"*"};
    assert_true(conf_glob_match(star, 1, "dir/.hidden"));
    assert_true(conf_glob_match(star, 1, "dir/"));
}

/* ------------------------------------------------------------------------------------------ */
/* conf_rendition_key                                                                           */

/* conf_rendition_key on a hand-made configuration. */
static char *rkey(const char *src_prefix, const char *dst_prefix, const char *tpl,
                  const char *size_name, const char *key, const char *ext)
{
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.s3.source_prefix = src_prefix;
    cfg.s3.destination_prefix = dst_prefix;
    cfg.resize.key_template = tpl;
    struct conf_size size;
    memset(&size, 0, sizeof(size));
    snprintf(size.name, sizeof(size.name), "%s", size_name);
    return conf_rendition_key(&cfg, &size, key, ext);
}

static void check_key(const char *src_prefix, const char *dst_prefix, const char *tpl,
                      const char *key, const char *ext, const char *want)
{
    char *got = rkey(src_prefix, dst_prefix, tpl, "thumbnail", key, ext);
    if (!want && got)
        fail_msg("%s + %s with '%s': got '%s', expected NULL", src_prefix, key, tpl, got);
    if (want && (!got || strcmp(got, want) != 0))
        fail_msg("%s + %s with '%s': got '%s', expected '%s'", src_prefix, key, tpl,
                 got ? got : "(null)", want);
    free(got);
}

static void test_rendition_key_placeholders(void **state)
{
    (void)state;
    const char *k = "trips/rome/a.heic";
    check_key("", "", "{size}/{key}", k, "jpg", "thumbnail/trips/rome/a.heic");
    check_key("", "", "{size}", k, "jpg", "thumbnail");
    check_key("", "", "{key}", k, "jpg", "trips/rome/a.heic");
    check_key("", "", "{dir}", k, "jpg", "trips/rome/");
    check_key("", "", "{name}", k, "jpg", "a.heic");
    check_key("", "", "{base}", k, "jpg", "a");
    check_key("", "", "{ext}", k, "webp", "webp");
    check_key("", "", "{dir}{size}/{base}.{ext}", k, "jpg", "trips/rome/thumbnail/a.jpg");
    check_key("", "", "out/{size}-{name}/{base}_{size}.{ext}", k, "avif",
              "out/thumbnail-a.heic/a_thumbnail.avif");
    /* {dir} ends with '/', so "{dir}/" doubles it: that is what the template says. */
    check_key("", "", "{dir}/{size}/{base}.{ext}", k, "jpg", "trips/rome//thumbnail/a.jpg");
    check_key("", "", "{dir}/{size}/{base}.{ext}", "a.heic", "jpg", "/thumbnail/a.jpg");
}

static void test_rendition_key_prefixes(void **state)
{
    (void)state;
    /* The source prefix is cut off, the destination prefix put in front. */
    check_key("uploads/", "", "{size}/{key}", "uploads/trips/a.heic", "jpg",
              "thumbnail/trips/a.heic");
    check_key("", "out/", "{size}/{key}", "trips/a.heic", "jpg", "out/thumbnail/trips/a.heic");
    check_key("in/raw/", "out/web/", "{size}/{dir}{base}.{ext}", "in/raw/trips/rome/a.heic", "webp",
              "out/web/thumbnail/trips/rome/a.webp");
    check_key("in/", "out/", "{dir}{size}/{name}", "in/a.png", "png", "out/thumbnail/a.png");
    /* Not under the source prefix: NULL. */
    check_key("uploads/", "out/", "{size}/{key}", "other/a.jpg", "jpg", NULL);
    check_key("uploads/", "out/", "{size}/{key}", "uploads", "jpg", NULL);
    check_key("uploads/", "out/", "{size}/{key}", "uploadsX/a.jpg", "jpg", NULL);
    check_key("uploads/", "out/", "{size}/{key}", "Uploads/a.jpg", "jpg", NULL);
    check_key("uploads/", "out/", "{size}/{key}", "uploads/", "jpg", NULL); /* the prefix itself */
    check_key("uploads/", "out/", "{size}/{key}", "", "jpg", NULL);
    assert_null(conf_rendition_key(NULL, NULL, "a", "jpg"));
}

static void test_rendition_key_names(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        /* key under "p/", its {dir}, then "{name}|{base}" */
        {"a.heic", "", "a.heic|a"},
        {"README", "", "README|README"},
        {"docs/README", "docs/", "README|README"},
        {".profile", "", ".profile|.profile"},
        {"home/.profile", "home/", ".profile|.profile"},
        {"..x", "", "..x|..x"},
        {".a.b", "", ".a.b|.a"},
        {"a.b.c", "", "a.b.c|a.b"},
        {"a.", "", "a.|a"},
        {"a/b/c/d/e.tar.gz", "a/b/c/d/", "e.tar.gz|e.tar"},
        {"dir.v2/photo", "dir.v2/", "photo|photo"},
        {"été/photo 1.JPG", "été/", "photo 1.JPG|photo 1"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        char want[300];
        snprintf(want, sizeof(want), "%s|%s", cases[i][1], cases[i][2]);
        char key[200];
        snprintf(key, sizeof(key), "p/%s", cases[i][0]);
        check_key("p/", "", "{dir}|{name}|{base}", key, "jpg", want);
        check_key("p/", "", "{key}", key, "jpg", cases[i][0]);
    }
}

/* With a loaded configuration and its sizes. */
static void test_rendition_key_loaded(void **state)
{
    (void)state;
    struct config *c = load_ini("[s3]\nsource_bucket = photos\nsource_prefix = /uploads\n"
                                "destination_bucket = photos\ndestination_prefix = web\n"
                                "[resize]\nsizes = sq:100x100:cover, big:2000x\n"
                                "key_template = {size}/{dir}{base}.{ext}\n");
    char *k = conf_rendition_key(c, &c->resize.sizes[0], "uploads/2024/IMG_1.HEIC", "jpg");
    assert_string_equal(k, "web/sq/2024/IMG_1.jpg");
    free(k);
    k = conf_rendition_key(c, &c->resize.sizes[1], "uploads/IMG_1.png", "webp");
    assert_string_equal(k, "web/big/IMG_1.webp");
    free(k);
    assert_null(conf_rendition_key(c, &c->resize.sizes[1], "web/big/IMG_1.webp", "webp"));
    conf_free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* cache_dir                                                                                    */

static void expect_cache_dir(const char *ini_value, const char *want)
{
    char ini[3000];
    snprintf(ini, sizeof(ini), "[gateway]\ncache_dir = %s\n", ini_value);
    struct config *c = load_ini(ini);
    if (strcmp(c->gateway.cache_dir, want) != 0)
        fail_msg("cache_dir = %s: got '%s', expected '%s'", ini_value, c->gateway.cache_dir, want);
    conf_free(c);
}

static void test_cache_dir(void **state)
{
    (void)state;
    char want[1200];
    /* Absolute, tidied. */
    expect_cache_dir("/var/cache/x/", "/var/cache/x");
    expect_cache_dir("//var/./cache//x", "/var/cache/x");
    expect_cache_dir("/var/../x", "/var/../x"); /* ".." is kept: it may cross a link */
    /* Relative: to the config file's folder. */
    snprintf(want, sizeof(want), "%s/spool", tmpdir);
    expect_cache_dir("spool", want);
    expect_cache_dir("./spool/", want);
    snprintf(want, sizeof(want), "%s/../spool", tmpdir);
    expect_cache_dir("../spool", want);
    const char *path = write_file("etc/s3imgfs/gw.ini", 0600, "[gateway]\ncache_dir = c\n");
    struct config *c = must_load(path);
    snprintf(want, sizeof(want), "%s/etc/s3imgfs/c", tmpdir);
    assert_string_equal(c->gateway.cache_dir, want);
    conf_free(c);
    /* ~ and ~/ are the home. */
    snprintf(want, sizeof(want), "%s/spool", home);
    expect_cache_dir("~/spool", want);
    expect_cache_dir("~", home);
    expect_cache_dir("~/", home);
    /* An option's relative path is relative to the working directory. */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    const char *ovr[] = {"gateway.cache_dir=rel/dir"};
    c = must_load_opts(NULL, ovr, 1);
    snprintf(want, sizeof(want), "%s/rel/dir", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(c->gateway.cache_dir, want);
    conf_free(c);

    static const struct {
        const char *ini, *needle;
    } bad[] = {
        {"[gateway]\ncache_dir = ~bob/spool\n",
         "config.ini:2: [gateway] cache_dir = ~bob/spool: only ~/ is expanded (to your home "
         "directory); write ~/path or an absolute path"},
        {"[gateway]\ncache_dir = /\n",
         "config.ini:2: [gateway] cache_dir = /: the cache folder must not be the root "
         "directory"},
        {"[gateway]\ncache_dir = /./\n", "the cache folder must not be the root directory"},
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        expect_ini_error(bad[i].ini, bad[i].needle);
    char ini[2200] = "[gateway]\ncache_dir = /";
    memset(ini + strlen(ini), 'd', 2048);
    strcat(ini, "\n");
    expect_ini_error(ini, ": expected a path of at most 2048 bytes");
}

static void test_cache_dir_default(void **state)
{
    (void)state;
    char want[600], xdg[400];
    /* $XDG_CACHE_HOME/s3imgfs when XDG_CACHE_HOME is absolute. */
    snprintf(xdg, sizeof(xdg), "%s/xdg-cache/", tmpdir);
    env_set("XDG_CACHE_HOME", xdg);
    struct config *c = must_load(NULL);
    snprintf(want, sizeof(want), "%s/xdg-cache/s3imgfs", tmpdir);
    assert_string_equal(c->gateway.cache_dir, want);
    assert_string_equal(conf_origin(c, "gateway", "cache_dir"),
                        "default ($XDG_CACHE_HOME/s3imgfs)");
    conf_free(c);
    /* An empty value in the file means the default too. */
    c = load_ini("[gateway]\ncache_dir =\n");
    assert_string_equal(c->gateway.cache_dir, want);
    char origin[700];
    snprintf(origin, sizeof(origin), "%s:2 (empty = $XDG_CACHE_HOME/s3imgfs)",
             path_of("config.ini"));
    assert_string_equal(conf_origin(c, "gateway", "cache_dir"), origin);
    conf_free(c);
    /* A relative XDG_CACHE_HOME is ignored (the XDG spec says so): the home's .cache. */
    env_set("XDG_CACHE_HOME", "relative/cache");
    c = must_load(NULL);
    snprintf(want, sizeof(want), "%s/.cache/s3imgfs", home);
    assert_string_equal(c->gateway.cache_dir, want);
    assert_string_equal(conf_origin(c, "gateway", "cache_dir"), "default (~/.cache/s3imgfs)");
    conf_free(c);
    /* So is an empty one. */
    env_set("XDG_CACHE_HOME", "");
    c = must_load(NULL);
    assert_string_equal(c->gateway.cache_dir, want);
    conf_free(c);
    /* The home comes from conf_options.home, else $HOME. */
    env_set("XDG_CACHE_HOME", NULL);
    env_set("HOME", "/home/someone-else");
    struct conf_options o = {.getenv = fake_getenv};
    struct s3_error err;
    c = conf_load(&o, &err);
    if (!c)
        fail_msg("conf_load: %s", err.message);
    assert_string_equal(c->gateway.cache_dir, "/home/someone-else/.cache/s3imgfs");
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_keys_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integer_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize_workers_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_booleans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resized_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_part_size_vs_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_globs_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_glob_match_defaults, setup, teardown),
        cmocka_unit_test(test_glob_match_custom),
        cmocka_unit_test(test_rendition_key_placeholders),
        cmocka_unit_test(test_rendition_key_prefixes),
        cmocka_unit_test(test_rendition_key_names),
        cmocka_unit_test_setup_teardown(test_rendition_key_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_dir_default, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
