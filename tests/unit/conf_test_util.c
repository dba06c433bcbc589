/* The conf unit tests' shared fixture: see conf_test_util.h. */
#include "conf_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char tmpdir[256];
char home[300];

/* ------------------------------------------------------------------------------------------ */
/* The fake environment                                                                         */

struct env_var {
    char *name;
    char *value;
};
static struct env_var envs[32];
static size_t nenv;

const char *fake_getenv(void *ctx, const char *name)
{
    (void)ctx;
    for (size_t i = 0; i < nenv; i++)
        if (strcmp(envs[i].name, name) == 0)
            return envs[i].value;
    return NULL;
}

void env_set(const char *name, const char *value)
{
    for (size_t i = 0; i < nenv; i++) {
        if (strcmp(envs[i].name, name) == 0) {
            free(envs[i].value);
            if (value) {
                envs[i].value = strdup(value);
            } else {
                free(envs[i].name);
                envs[i] = envs[--nenv];
            }
            return;
        }
    }
    if (value) {
        assert_true(nenv < COUNT(envs));
        envs[nenv].name = strdup(name);
        envs[nenv++].value = strdup(value);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The temporary directory                                                                      */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int conf_fixture_setup(const char *name)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/s3imgfs-test-%s-XXXXXX", name);
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(home, sizeof(home), "%s/home", tmpdir);
    if (mkdir(home, 0700) != 0)
        return -1;
    nenv = 0;
    return 0;
}

int conf_fixture_teardown(void **state)
{
    (void)state;
    while (nenv > 0)
        env_set(envs[0].name, NULL);
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void mkdirs(const char *path)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                fail_msg("mkdir %s: %s", buf, strerror(errno));
            *p = '/';
        }
    }
}

const char *path_of(const char *rel)
{
    static char paths[8][512];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, rel);
    return p;
}

static void write_text(const char *path, mode_t mode, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

const char *write_file(const char *rel, mode_t mode, const char *text)
{
    const char *p = path_of(rel);
    mkdirs(p);
    write_text(p, mode, text);
    return p;
}

void replace_file(const char *rel, const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.new", path_of(rel));
    write_text(tmp, 0600, text);
    assert_int_equal(rename(tmp, path_of(rel)), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                      */

struct config *load_opts(const char *path, const char *const *ovr, size_t n, struct s3_error *err)
{
    struct conf_options o = {
        .path = path,
        .overrides = ovr,
        .override_count = n,
        .getenv = fake_getenv,
        .home = home,
    };
    return conf_load(&o, err);
}

struct config *must_load_opts(const char *path, const char *const *ovr, size_t n)
{
    struct s3_error err;
    struct config *c = load_opts(path, ovr, n, &err);
    if (!c)
        fail_msg("conf_load failed: %s: %s", err.code, err.message);
    return c;
}

struct config *must_load(const char *path)
{
    return must_load_opts(path, NULL, 0);
}

struct config *load_ini(const char *text)
{
    return must_load(write_file("config.ini", 0600, text));
}

/* `context` names the case in the failure message. */
static void expect_error_ctx(const char *context, const char *path, const char *const *ovr,
                             size_t n, const char *code, const char *needle)
{
    struct s3_error err;
    struct config *c = load_opts(path, ovr, n, &err);
    if (c) {
        conf_free(c);
        fail_msg("[%s] conf_load succeeded, expected an error containing \"%s\"", context, needle);
    }
    if (!strstr(err.message, needle))
        fail_msg("[%s] error \"%s\"\n  does not contain \"%s\"", context, err.message, needle);
    if (strcmp(err.code, code) != 0)
        fail_msg("[%s] code %s, expected %s (%s)", context, err.code, code, err.message);
}

void expect_error_opts(const char *path, const char *const *ovr, size_t n, const char *code,
                       const char *needle)
{
    expect_error_ctx(n ? ovr[0] : path ? path : "default config files", path, ovr, n, code, needle);
}

void expect_error(const char *path, const char *code, const char *needle)
{
    expect_error_opts(path, NULL, 0, code, needle);
}

void expect_ini_error(const char *text, const char *needle)
{
    expect_error_ctx(text, write_file("config.ini", 0600, text), NULL, 0, "InvalidConfig", needle);
}

char *dump_of(const struct config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    conf_dump(c, f);
    fclose(f);
    return buf;
}
