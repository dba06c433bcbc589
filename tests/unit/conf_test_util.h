/* Shared fixture of the conf unit tests (test_conf.c, test_credentials.c): a temporary directory
 * with a home folder in it, files written there, a fake environment, and conf_load wrappers that
 * fail the test with the loader's message. Every helper that can fail does so with cmocka's
 * assertions, so it may only be called from inside a test. */
#ifndef S3IMGFS_TESTS_CONF_TEST_UTIL_H
#define S3IMGFS_TESTS_CONF_TEST_UTIL_H

#include "conf.h"

#include <stddef.h>
#include <sys/types.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The test's temporary directory and the home directory inside it ("tmpdir/home"). */
extern char tmpdir[256];
extern char home[300];

/* Creates "/tmp/s3imgfs-test-NAME-XXXXXX" and its home folder, with an empty environment.
 * Returns 0, or -1 (cmocka then reports the setup as failed). */
int conf_fixture_setup(const char *name);
/* Empties the environment and removes the temporary directory; a cmocka teardown. */
int conf_fixture_teardown(void **state);

/* The fake environment conf_load sees (through conf_options.getenv). */
const char *fake_getenv(void *ctx, const char *name);
/* Sets a variable, or removes it when value is NULL. */
void env_set(const char *name, const char *value);

/* "tmpdir/rel"; the string stays valid for the next 7 calls. */
const char *path_of(const char *rel);
/* Writes tmpdir/rel in place (same inode, parent folders created) with mode; returns its path
 * (as path_of). */
const char *write_file(const char *rel, mode_t mode, const char *text);
/* Replaces tmpdir/rel atomically (a new inode, mode 0600), as editors and `aws configure` do. */
void replace_file(const char *rel, const char *text);

/* conf_load with the fake environment and home; path NULL = the default config locations. */
struct config *load_opts(const char *path, const char *const *ovr, size_t n, struct s3_error *err);
/* The same, failing the test when conf_load fails. */
struct config *must_load_opts(const char *path, const char *const *ovr, size_t n);
struct config *must_load(const char *path);
/* Writes text as config.ini (0600) and loads it. */
struct config *load_ini(const char *text);

/* Expects conf_load to fail with `code` and a message containing `needle`. */
void expect_error_opts(const char *path, const char *const *ovr, size_t n, const char *code,
                       const char *needle);
void expect_error(const char *path, const char *code, const char *needle);
/* Loads text as config.ini (0600) and expects an InvalidConfig error containing needle. */
void expect_ini_error(const char *text, const char *needle);

/* conf_dump's output, malloc'd. */
char *dump_of(const struct config *c);

#endif
