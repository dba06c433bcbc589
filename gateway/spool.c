#include "spool.h"

#include "s3client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct spool {
    int dirfd;  /* cache_dir/spool */
    int lockfd; /* cache_dir/lock, flock'd */
    uint64_t next_id;
    char *path;
};

static const char record_magic[] = "s3imgfs-spool 1";

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

struct spool *spool_open(const char *cache_dir, struct s3_error *err)
{
    struct spool *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return NULL;
    sp->dirfd = sp->lockfd = -1;
    char *lock = NULL;
    if (asprintf(&sp->path, "%s/spool", cache_dir) < 0 || asprintf(&lock, "%s/lock", cache_dir) < 0)
        goto oom;
    int rc = make_dir(cache_dir);
    if (rc == 0)
        rc = make_dir(sp->path);
    if (rc != 0) {
        s3_error_set(err, 0, "LocalIOError", false,
                     "cannot create the cache folder %s: %s (set [gateway] cache_dir to a "
                     "writable folder)",
                     sp->path, strerror(-rc));
        goto fail;
    }
    sp->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->lockfd < 0 || flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
        bool busy = errno == EWOULDBLOCK;
        s3_error_set(err, 0, "LocalIOError", false,
                     busy ? "the cache folder %s is in use by another s3imgfs (give each mount "
                            "its own [gateway] cache_dir)"
                          : "cannot lock %s: %s",
                     cache_dir, strerror(errno));
        goto fail;
    }
    sp->dirfd = open(sp->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        s3_error_set(err, 0, "LocalIOError", false, "cannot open %s: %s", sp->path,
                     strerror(errno));
        goto fail;
    }
    sp->next_id = 1;
    free(lock);
    return sp;
oom:
    s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
fail:
    free(lock);
    spool_close(sp);
    return NULL;
}

void spool_close(struct spool *sp)
{
    if (!sp)
        return;
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    if (sp->lockfd >= 0)
        close(sp->lockfd); /* releases the flock */
    free(sp->path);
    free(sp);
}

static void name_of(char *buf, size_t len, uint64_t id, const char *ext)
{
    snprintf(buf, len, "%020" PRIu64 ".%s", id, ext);
}

int spool_create(struct spool *sp, uint64_t *id)
{
    char name[64];
    for (;;) {
        uint64_t n = __atomic_fetch_add(&sp->next_id, 1, __ATOMIC_RELAXED);
        name_of(name, sizeof(name), n, "data");
        int fd = openat(sp->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *id = n;
            return fd;
        }
        if (errno != EEXIST)
            return -errno;
    }
}

static const char *const state_names[] = {"writing",  "held",     "local", "pending", "uploading",
                                          "uploaded", "resizing", "done",  "failed"};

const char *gw_state_name(enum gw_state state)
{
    static const char *const shown[] = {"pending",  "pending",   "local only",
                                        "pending",  "uploading", "uploaded",
                                        "resizing", "done",      "failed"};
    return shown[state];
}

static int parse_state(const char *s, enum gw_state *out)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum gw_state)i;
            return 0;
        }
    return -1;
}

int spool_write_record(struct spool *sp, const struct spool_record *rec, bool durable)
{
    char *key = aws_uri_encode(rec->key, strlen(rec->key), true);
    if (!key)
        return -ENOMEM;
    char *text = NULL;
    int len = asprintf(&text,
                       "%s\nid=%" PRIu64 "\nseq=%" PRIu64 "\nstate=%s\nmode=%o\nmtime=%lld.%09ld\n"
                       "key=%s\n",
                       record_magic, rec->id, rec->seq, state_names[rec->state],
                       (unsigned)rec->mode & 07777, (long long)rec->mtime.tv_sec,
                       rec->mtime.tv_nsec, key);
    free(key);
    if (len < 0)
        return -ENOMEM;
    char tmp[64], name[64];
    name_of(tmp, sizeof(tmp), rec->id, "job.tmp");
    name_of(name, sizeof(name), rec->id, "job");
    int rc = 0;
    int fd = openat(sp->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        rc = -errno;
    else {
        if (write(fd, text, (size_t)len) != len)
            rc = errno ? -errno : -EIO;
        if (rc == 0 && durable && fsync(fd) != 0)
            rc = -errno;
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
        if (rc == 0 && renameat(sp->dirfd, tmp, sp->dirfd, name) != 0)
            rc = -errno;
        if (rc != 0)
            unlinkat(sp->dirfd, tmp, 0);
    }
    free(text);
    return rc;
}

int spool_sync_dir(struct spool *sp)
{
    return fsync(sp->dirfd) == 0 ? 0 : -errno;
}

void spool_remove(struct spool *sp, uint64_t id)
{
    char name[64];
    name_of(name, sizeof(name), id, "job");
    unlinkat(sp->dirfd, name, 0);
    name_of(name, sizeof(name), id, "data");
    unlinkat(sp->dirfd, name, 0);
}

uint64_t spool_free_bytes(struct spool *sp)
{
    struct statvfs st;
    if (fstatvfs(sp->dirfd, &st) != 0)
        return UINT64_MAX;
    return (uint64_t)st.f_bavail * st.f_frsize;
}

/* Parses one record file; 0 when it is whole and valid. */
static int parse_record(const char *text, struct spool_record *rec)
{
    if (strncmp(text, record_magic, sizeof(record_magic) - 1) != 0)
        return -1;
    char state[32] = "";
    unsigned mode = 0644;
    long long sec = 0;
    long nsec = 0;
    const char *key = NULL;
    for (const char *line = strchr(text, '\n'); line && *++line; line = strchr(line, '\n')) {
        if (sscanf(line, "seq=%" SCNu64, &rec->seq) == 1 || sscanf(line, "mode=%o", &mode) == 1 ||
            sscanf(line, "mtime=%lld.%ld", &sec, &nsec) == 2 ||
            sscanf(line, "state=%31s", state) == 1)
            continue;
        if (strncmp(line, "key=", 4) == 0)
            key = line + 4;
    }
    if (!key || parse_state(state, &rec->state) != 0)
        return -1;
    const char *end = strchr(key, '\n');
    if (!end)
        return -1; /* a record always ends with its key line */
    rec->key = aws_uri_decode(key, (size_t)(end - key), false, NULL);
    rec->mode = (mode_t)(mode & 07777);
    rec->mtime.tv_sec = (time_t)sec;
    rec->mtime.tv_nsec = nsec;
    return rec->key ? 0 : -1;
}

static char *read_small_file(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(8192 + 1);
    ssize_t n = buf ? read(fd, buf, 8192) : -1;
    close(fd);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void scan_entry(struct spool *sp, const char *name, spool_record_fn fn, void *ctx)
{
    uint64_t id;
    char ext[16];
    if (sscanf(name, "%" SCNu64 ".%15s", &id, ext) != 2)
        return;
    if (id >= sp->next_id)
        sp->next_id = id + 1;
    char data[64];
    name_of(data, sizeof(data), id, "data");
    if (strcmp(ext, "job.tmp") == 0) {
        unlinkat(sp->dirfd, name, 0);
        return;
    }
    if (strcmp(ext, "data") == 0) {
        char job[64];
        name_of(job, sizeof(job), id, "job");
        if (faccessat(sp->dirfd, job, F_OK, 0) != 0)
            unlinkat(sp->dirfd, name, 0); /* never committed */
        return;
    }
    if (strcmp(ext, "job") != 0)
        return;
    struct spool_record rec = {.id = id};
    char *text = read_small_file(sp->dirfd, name);
    int fd = openat(sp->dirfd, data, O_RDWR | O_CLOEXEC);
    if (text && fd >= 0 && parse_record(text, &rec) == 0) {
        rec.id = id;
        fn(ctx, &rec, fd);
    } else {
        if (fd >= 0)
            close(fd);
        /* A record without data (removed after its upload, the record's unlink lost in a
         * crash) or unreadable: nothing to resume. */
        spool_remove(sp, id);
    }
    free(rec.key);
    free(text);
}

int spool_scan(struct spool *sp, spool_record_fn fn, void *ctx, struct s3_error *err)
{
    int fd = dup(sp->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        s3_error_set(err, 0, "LocalIOError", false, "cannot read %s: %s", sp->path,
                     strerror(errno));
        return -1;
    }
    /* Records first would need two passes; names sort by id, and a .data is only removed when
     * its .job is missing, which does not depend on the order. */
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            scan_entry(sp, de->d_name, fn, ctx);
    closedir(d);
    return 0;
}
