/* Shared setup of the integration tests: a client for the local radosgw started by
 * scripts/servers/rgw-start.sh (through the S3IMGFS_TEST_* variables), a fresh bucket per test
 * program, and helpers to run independent clients (aws CLI, curl). */
#ifndef S3IMGFS_TESTS_S3_FIXTURE_H
#define S3IMGFS_TESTS_S3_FIXTURE_H

#include "s3client.h"

#include <stdbool.h>
#include <stddef.h>

struct s3_fixture {
    struct s3client *client;
    struct aws_credentials creds;
    char endpoint[256];
    char region[64];
    char bucket[64];
};

/* Exits 77 (skip) when no server is configured, or fails when S3IMGFS_REQUIRE_SERVERS=1. */
void fixture_require(const char *var);
/* Creates the client and a bucket named "<prefix>-<pid>-<random>". */
void fixture_setup(struct s3_fixture *f, const char *prefix);
/* Empties and deletes the bucket, frees the client. */
void fixture_teardown(struct s3_fixture *f);
/* Deletes every object in a bucket. */
void fixture_empty_bucket(struct s3_fixture *f, const char *bucket);

/* Runs argv (no shell) with the test credentials in the environment; captures stdout into a
 * malloc'd string (may be NULL). Returns the exit status, or -1 if it could not run. */
int fixture_run(struct s3_fixture *f, char *const argv[], char **out);

/* MD5 of data as 32 lowercase hex digits. */
void fixture_md5_hex(const void *data, size_t len, char out[33]);
/* Fills buf with deterministic pseudo-random bytes. */
void fixture_random_bytes(void *buf, size_t len, unsigned seed);

#endif
