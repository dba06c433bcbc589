#include "s3_fixture.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

extern char **environ;

void fixture_require(const char *var)
{
    if (getenv(var) && *getenv(var))
        return;
    const char *require = getenv("S3IMGFS_REQUIRE_SERVERS");
    if (require && strcmp(require, "1") == 0) {
        fprintf(stderr,
                "%s is not set but S3IMGFS_REQUIRE_SERVERS=1: start the servers with "
                "tests/run.sh\n",
                var);
        exit(1);
    }
    fprintf(stderr, "%s is not set: skipping (run through tests/run.sh to start servers)\n", var);
    exit(77);
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

void fixture_setup(struct s3_fixture *f, const char *prefix)
{
    fixture_require("S3IMGFS_TEST_ENDPOINT");
    memset(f, 0, sizeof(*f));
    snprintf(f->endpoint, sizeof(f->endpoint), "%s", getenv("S3IMGFS_TEST_ENDPOINT"));
    snprintf(f->region, sizeof(f->region), "%s", env_or("S3IMGFS_TEST_REGION", "us-east-1"));
    snprintf(f->creds.access_key_id, sizeof(f->creds.access_key_id), "%s",
             env_or("S3IMGFS_TEST_ACCESS_KEY", ""));
    snprintf(f->creds.secret_access_key, sizeof(f->creds.secret_access_key), "%s",
             env_or("S3IMGFS_TEST_SECRET_KEY", ""));
    struct s3client_options o = {.endpoint = f->endpoint,
                                 .region = f->region,
                                 .path_style = true,
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &f->creds};
    struct s3_error err;
    f->client = s3client_new(&o, &err);
    if (!f->client)
        fail_msg("s3client_new: %s", err.message);
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(f->bucket, sizeof(f->bucket), "%s-%d-%ld", prefix, (int)getpid(), random() % 100000);
    if (s3_create_bucket(f->client, f->bucket, &err) != 0)
        fail_msg("create bucket %s: %s", f->bucket, err.message);
}

static int delete_page(void *ctx, const struct s3_list_page *page)
{
    struct s3_fixture *f = ctx;
    const char **keys = calloc(page->object_count + 1, sizeof(*keys));
    for (size_t i = 0; i < page->object_count; i++)
        keys[i] = page->objects[i].key;
    struct s3_error err;
    const char *bucket = f->bucket;
    if (page->object_count &&
        s3_delete_objects(f->client, bucket, keys, page->object_count, NULL, &err) != 0)
        fprintf(stderr, "cleanup: %s\n", err.message);
    free(keys);
    return 0;
}

void fixture_empty_bucket(struct s3_fixture *f, const char *bucket)
{
    struct s3_fixture copy = *f;
    snprintf(copy.bucket, sizeof(copy.bucket), "%s", bucket);
    struct s3_error err;
    if (s3_list_all(f->client, bucket, NULL, delete_page, &copy, &err) != 0)
        fprintf(stderr, "cleanup: %s\n", err.message);
    struct s3_multipart_upload *ups = NULL;
    size_t n = 0;
    if (s3_multipart_list_uploads(f->client, bucket, NULL, &ups, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            s3_multipart_abort(f->client, bucket, ups[i].key, ups[i].upload_id, NULL);
        s3_multipart_uploads_free(ups, n);
    }
}

void fixture_teardown(struct s3_fixture *f)
{
    if (!f->client)
        return;
    fixture_empty_bucket(f, f->bucket);
    struct s3_error err;
    if (s3_delete_bucket(f->client, f->bucket, &err) != 0)
        fprintf(stderr, "cleanup: delete bucket %s: %s\n", f->bucket, err.message);
    s3client_free(f->client);
    f->client = NULL;
}

static char **child_env(struct s3_fixture *f)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 8, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "AWS_", 4) != 0)
            env[k++] = strdup(environ[i]);
    asprintf(&env[k++], "AWS_ACCESS_KEY_ID=%s", f->creds.access_key_id);
    asprintf(&env[k++], "AWS_SECRET_ACCESS_KEY=%s", f->creds.secret_access_key);
    asprintf(&env[k++], "AWS_DEFAULT_REGION=%s", f->region);
    asprintf(&env[k++], "AWS_EC2_METADATA_DISABLED=true");
    asprintf(&env[k++], "AWS_PAGER=");
    env[k] = NULL;
    return env;
}

int fixture_run(struct s3_fixture *f, char *const argv[], char **out)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    char **env = child_env(f);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return -1;
    }
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(pipefd[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (cap - len < 2)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void fixture_md5_hex(const void *data, size_t len, char out[33])
{
    unsigned char md[16];
    EVP_Digest(data, len, md, NULL, EVP_md5(), NULL);
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

void fixture_random_bytes(void *buf, size_t len, unsigned seed)
{
    unsigned char *p = buf;
    uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}
