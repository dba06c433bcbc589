#include "spool.h"

#include "s3client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct spool {
    int dirfd;     /* cache_dir/spool */
    int cachefd;   /* cache_dir */
    int lockfd;    /* cache_dir/lock, flock'd */
    int journalfd; /* cache_dir/journal, O_APPEND */
    /* Appends and syncs share it (read side); a compaction replacing the journal excludes them
     * (write side). */
    pthread_rwlock_t journal_lock;
    uint64_t compact_at; /* journal size that makes spool_compact rewrite it */
    uint64_t next_id;
    char *path, *journal;
    char boot_id[40]; /* this boot's (/proc/sys/kernel/random/boot_id), "-" when unknown */
};

#define COMPACT_MIN (16ull << 20) /* a journal is rewritten from this size on (spool_compact) */

static const char *const state_names[] = {"writing",  "held",     "local", "pending", "uploading",
                                          "uploaded", "resizing", "done",  "failed"};

const char *gw_state_name(enum gw_state state)
{
    static const char *const shown[] = {"pending",  "pending",   "local only",
                                        "pending",  "uploading", "uploaded",
                                        "resizing", "done",      "failed"};
    return shown[state];
}

/* The kernel's id of this boot: a version flushed under the same boot id had its bytes in the
 * page cache when the gateway died, even if they never reached the disk. */
static void read_boot_id(char *out, size_t len)
{
    snprintf(out, len, "-");
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    char buf[64];
    if (f && fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\n")] = '\0';
        size_t n = strlen(buf);
        if (n && n < len && !strchr(buf, ' '))
            memcpy(out, buf, n + 1);
    }
    if (f)
        fclose(f);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

static int open_fail(struct s3_error *err, const char *what, const char *path)
{
    s3_error_set(err, 0, "LocalIOError", false,
                 "cannot %s %s: %s (set [gateway] cache_dir to a writable folder)", what, path,
                 strerror(errno));
    return -1;
}

static int lock_cache(struct spool *sp, const char *cache_dir, struct s3_error *err)
{
    sp->lockfd = openat(sp->cachefd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->lockfd < 0)
        return open_fail(err, "create a lock file in", cache_dir);
    if (flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
        s3_error_set(err, 0, "LocalIOError", false,
                     "the cache folder %s is in use by another s3imgfs (give each mount its own "
                     "[gateway] cache_dir)",
                     cache_dir);
        return -1;
    }
    return 0;
}

struct spool *spool_open(const char *cache_dir, struct s3_error *err)
{
    struct spool *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return NULL;
    sp->dirfd = sp->cachefd = sp->lockfd = sp->journalfd = -1;
    sp->next_id = 1;
    read_boot_id(sp->boot_id, sizeof(sp->boot_id));
    sp->compact_at = COMPACT_MIN;
    pthread_rwlockattr_t attr; /* a waiting compaction is not starved by a stream of appends */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&sp->journal_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (asprintf(&sp->path, "%s/spool", cache_dir) < 0 ||
        asprintf(&sp->journal, "%s/journal", cache_dir) < 0) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        goto fail;
    }
    if (make_dir(cache_dir) != 0 || make_dir(sp->path) != 0) {
        open_fail(err, "create", sp->path);
        goto fail;
    }
    sp->cachefd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    sp->dirfd = open(sp->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->cachefd < 0 || sp->dirfd < 0) {
        open_fail(err, "open", sp->path);
        goto fail;
    }
    if (lock_cache(sp, cache_dir, err) != 0)
        goto fail;
    return sp;
fail:
    spool_close(sp);
    return NULL;
}

void spool_close(struct spool *sp)
{
    if (!sp)
        return;
    int fds[] = {sp->dirfd, sp->cachefd, sp->journalfd, sp->lockfd}; /* the lock last */
    for (size_t i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(sp->path);
    free(sp->journal);
    pthread_rwlock_destroy(&sp->journal_lock);
    free(sp);
}

static void data_name(char *buf, size_t len, uint64_t id)
{
    snprintf(buf, len, "%020" PRIu64 ".data", id);
}

int spool_create(struct spool *sp, uint64_t *id)
{
    char name[64];
    for (;;) {
        uint64_t n = __atomic_fetch_add(&sp->next_id, 1, __ATOMIC_RELAXED);
        data_name(name, sizeof(name), n);
        int fd = openat(sp->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *id = n;
            return fd;
        }
        if (errno != EEXIST)
            return -errno;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Journal lines                                                                                */

static uint32_t checksum(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Writes `body` + " <checksum>\n" with one write (O_APPEND keeps lines whole). */
static int write_line(int fd, const char *body)
{
    size_t len = strlen(body);
    char *line = malloc(len + 12);
    if (!line)
        return -ENOMEM;
    int n = snprintf(line, len + 12, "%s %08" PRIx32 "\n", body, checksum(body, len));
    int rc = 0;
    if (write(fd, line, (size_t)n) != n)
        rc = errno ? -errno : -EIO;
    free(line);
    return rc;
}

static int append_line(struct spool *sp, const char *body)
{
    pthread_rwlock_rdlock(&sp->journal_lock);
    int rc = write_line(sp->journalfd, body);
    pthread_rwlock_unlock(&sp->journal_lock);
    return rc;
}

static char *record_line(const struct spool_record *rec)
{
    char *key = aws_uri_encode(rec->key, strlen(rec->key), true);
    char *line = NULL;
    if (key && asprintf(&line, "C %" PRIu64 " %" PRIu64 " %s %o %lld.%09ld %s", rec->id, rec->seq,
                        state_names[rec->state], (unsigned)rec->mode & 07777,
                        (long long)rec->mtime.tv_sec, rec->mtime.tv_nsec, key) < 0)
        line = NULL;
    free(key);
    return line;
}

int spool_write_record(struct spool *sp, const struct spool_record *rec)
{
    char *line = record_line(rec);
    int rc = line ? append_line(sp, line) : -ENOMEM;
    free(line);
    return rc;
}

static char *flushed_line(const struct spool_record *rec, const struct spool_flush *f)
{
    char *key = aws_uri_encode(rec->key, strlen(rec->key), true);
    char *line = NULL;
    if (key &&
        asprintf(&line, "F %" PRIu64 " %" PRIu64 " %s %o %lld.%09ld %" PRIu64 " %lld.%09ld %s %s",
                 rec->id, rec->seq, state_names[rec->state], (unsigned)rec->mode & 07777,
                 (long long)rec->mtime.tv_sec, rec->mtime.tv_nsec, f->size,
                 (long long)f->data_mtime.tv_sec, f->data_mtime.tv_nsec, f->boot_id, key) < 0)
        line = NULL;
    free(key);
    return line;
}

int spool_write_flushed(struct spool *sp, const struct spool_record *rec, uint64_t size,
                        const struct timespec *data_mtime)
{
    struct spool_flush f = {.size = size, .data_mtime = *data_mtime};
    snprintf(f.boot_id, sizeof(f.boot_id), "%s", sp->boot_id);
    char *line = flushed_line(rec, &f);
    int rc = line ? append_line(sp, line) : -ENOMEM;
    free(line);
    return rc;
}

static char *upload_line(uint64_t id, const char *key, const char *upload_id, uint64_t part_size)
{
    char *k = upload_id ? aws_uri_encode(key, strlen(key), true) : NULL;
    char *u = upload_id ? aws_uri_encode(upload_id, strlen(upload_id), true) : NULL;
    char *line = NULL;
    if (!upload_id) {
        if (asprintf(&line, "M %" PRIu64 " 0 - -", id) < 0)
            line = NULL;
    } else if (k && u &&
               asprintf(&line, "M %" PRIu64 " %" PRIu64 " %s %s", id, part_size, k, u) < 0) {
        line = NULL;
    }
    free(k);
    free(u);
    return line;
}

int spool_write_upload(struct spool *sp, uint64_t id, const char *key, const char *upload_id,
                       uint64_t part_size)
{
    char *line = upload_line(id, key, upload_id, part_size);
    int rc = line ? append_line(sp, line) : -ENOMEM;
    free(line);
    return rc;
}

int spool_sync(struct spool *sp)
{
    pthread_rwlock_rdlock(&sp->journal_lock);
    int rc = fdatasync(sp->journalfd) != 0 || fsync(sp->dirfd) != 0 ? -errno : 0;
    pthread_rwlock_unlock(&sp->journal_lock);
    return rc;
}

void spool_remove(struct spool *sp, uint64_t id)
{
    char name[64], line[40];
    data_name(name, sizeof(name), id);
    unlinkat(sp->dirfd, name, 0);
    snprintf(line, sizeof(line), "D %" PRIu64, id);
    append_line(sp, line);
}

bool spool_disk_low(struct spool *sp)
{
    struct statvfs st;
    if (fstatvfs(sp->dirfd, &st) != 0)
        return false;
    /* 64 MiB, or a 16th of a small disk (a 64 MiB tmpfs keeps 4 MiB): room for the journal and
     * the files being written when new writes start to be refused */
    uint64_t size = (uint64_t)st.f_blocks * st.f_frsize, reserve = 64ull << 20;
    if (size / 16 < reserve)
        reserve = size / 16;
    return (uint64_t)st.f_bavail * st.f_frsize < reserve;
}

/* ------------------------------------------------------------------------------------------ */
/* Replay                                                                                       */

struct orphan {
    uint64_t id; /* of the version (unattached uploads) */
    uint64_t part_size;
    char *key, *upload_id;
    struct orphan *next;
};

struct live {
    struct spool_record *recs; /* by first appearance; removed ones have key NULL */
    size_t count, cap;
    size_t *index; /* open addressing: id -> position in recs + 1 (0 = empty) */
    size_t index_cap;
    struct orphan *orphans; /* multipart uploads of data that is gone */
    /* Uploads of versions with no "C" line (yet): a file being written whose parts go up
     * early (stream.c). Attached at its "C" line; orphans at a replay at open. */
    struct orphan *unattached;
    struct flushed *flushed; /* versions with an "F" line and no "C" line (yet) */
};

struct flushed {
    struct spool_record rec;
    struct spool_flush f;
    struct flushed *next;
};

static struct flushed **find_flushed(struct live *l, uint64_t id)
{
    struct flushed **p = &l->flushed;
    while (*p && (*p)->rec.id != id)
        p = &(*p)->next;
    return p;
}

/* The "F" line of id is superseded (its "C" or "D" line came). */
static void drop_flushed(struct live *l, uint64_t id)
{
    struct flushed **p = find_flushed(l, id), *f = *p;
    if (!f)
        return;
    *p = f->next;
    free(f->rec.key);
    free(f);
}

static struct orphan **find_unattached(struct live *l, uint64_t id)
{
    struct orphan **p = &l->unattached;
    while (*p && (*p)->id != id)
        p = &(*p)->next;
    return p;
}

static void orphan_free(struct orphan *o)
{
    free(o->key);
    free(o->upload_id);
    free(o);
}

/* The record's multipart upload becomes an orphan (its data is gone or uses another one). */
static void orphan_upload(struct live *l, struct spool_record *r)
{
    struct orphan *o = r->upload_id ? malloc(sizeof(*o)) : NULL;
    if (o) {
        *o = (struct orphan){.key = r->upload_key, .upload_id = r->upload_id, .next = l->orphans};
        l->orphans = o;
    } else {
        free(r->upload_key);
        free(r->upload_id);
    }
    r->upload_key = r->upload_id = NULL;
}

static void record_clear(struct live *l, struct spool_record *r)
{
    free(r->key);
    r->key = NULL;
    orphan_upload(l, r);
}

static size_t *index_slot(const struct live *l, uint64_t id)
{
    size_t i = (size_t)(id * 11400714819323198485ull) & (l->index_cap - 1);
    while (l->index[i] && l->recs[l->index[i] - 1].id != id)
        i = (i + 1) & (l->index_cap - 1);
    return &l->index[i];
}

static int index_grow(struct live *l)
{
    size_t cap = l->index_cap ? l->index_cap * 2 : 256;
    size_t *index = calloc(cap, sizeof(*index));
    if (!index)
        return -1;
    free(l->index);
    l->index = index;
    l->index_cap = cap;
    for (size_t i = 0; i < l->count; i++)
        *index_slot(l, l->recs[i].id) = i + 1;
    return 0;
}

static struct spool_record *find_live(struct live *l, uint64_t id)
{
    if (!l->index_cap)
        return NULL;
    size_t pos = *index_slot(l, id);
    return pos && l->recs[pos - 1].key ? &l->recs[pos - 1] : NULL;
}

/* An "M" line of a version not committed (yet): kept aside until its "C" line. */
static void unattached_upload(struct live *l, uint64_t id, uint64_t part_size, const char *key,
                              const char *upload)
{
    struct orphan **p = find_unattached(l, id), *old = *p;
    if (old) { /* replaced, or cleared: the old one is done with */
        *p = old->next;
        if (strcmp(upload, "-") == 0 || strcmp(old->upload_id, upload) == 0) {
            orphan_free(old);
        } else {
            old->next = l->orphans;
            l->orphans = old;
        }
    }
    if (strcmp(upload, "-") == 0)
        return;
    struct orphan *o = calloc(1, sizeof(*o));
    if (!o)
        return;
    *o = (struct orphan){id, part_size, aws_uri_decode(key, strlen(key), false, NULL),
                         aws_uri_decode(upload, strlen(upload), false, NULL), l->unattached};
    if (!o->key || !o->upload_id) {
        orphan_free(o);
        return;
    }
    l->unattached = o;
}

/* "M id part_size key upload_id" (or "M id 0 - -": none any more). */
static void replay_upload(struct live *l, const char *line)
{
    uint64_t id, part_size;
    char key[4096], upload[2048];
    if (sscanf(line, "M %" SCNu64 " %" SCNu64 " %4095s %2047s", &id, &part_size, key, upload) != 4)
        return;
    struct spool_record *r = find_live(l, id);
    if (!r) {
        unattached_upload(l, id, part_size, key, upload);
        return;
    }
    if (strcmp(upload, "-") == 0) { /* completed (or given up by the client): nothing to abort */
        free(r->upload_key);
        free(r->upload_id);
        r->upload_key = r->upload_id = NULL;
        return;
    }
    orphan_upload(l, r); /* replaced by a new upload */
    r->upload_key = aws_uri_decode(key, strlen(key), false, NULL);
    r->upload_id = aws_uri_decode(upload, strlen(upload), false, NULL);
    r->part_size = part_size;
    if (!r->upload_key || !r->upload_id)
        orphan_upload(l, r);
}

/* A new record takes the upload its version started before its close. */
static void attach_upload(struct live *l, struct spool_record *r)
{
    struct orphan **p = find_unattached(l, r->id), *o = *p;
    if (!o)
        return;
    *p = o->next;
    r->upload_key = o->key;
    r->upload_id = o->upload_id;
    r->part_size = o->part_size;
    free(o);
}

/* "C id seq state mode mtime key" or "F id seq state mode mtime size data_mtime boot key" into
 * rec (key malloc'd) and, for "F", f. Returns 0, or -1 when the line is not one of those. */
static int parse_record(const char *line, const char *kind, struct spool_record *rec,
                        struct spool_flush *f)
{
    uint64_t id, seq, size = 0;
    char state[16], key[4096], boot[40] = "";
    unsigned mode;
    long long sec, dsec = 0;
    long nsec, dnsec = 0;
    int n =
        f ? sscanf(line,
                   "F %" SCNu64 " %" SCNu64 " %15s %o %lld.%ld %" SCNu64 " %lld.%ld %39s %4095s",
                   &id, &seq, state, &mode, &sec, &nsec, &size, &dsec, &dnsec, boot, key)
          : sscanf(line, "C %" SCNu64 " %" SCNu64 " %15s %o %lld.%ld %4095s", &id, &seq, state,
                   &mode, &sec, &nsec, key);
    if (line[0] != kind[0] || n != (f ? 11 : 7))
        return -1;
    *rec = (struct spool_record){.id = id, .seq = seq, .mode = (mode_t)(mode & 07777)};
    rec->mtime = (struct timespec){(time_t)sec, nsec};
    rec->state = GW_PENDING;
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strcmp(state, state_names[i]) == 0)
            rec->state = (enum gw_state)i;
    if (f) {
        *f = (struct spool_flush){.size = size, .data_mtime = {(time_t)dsec, dnsec}};
        snprintf(f->boot_id, sizeof(f->boot_id), "%s", boot);
    }
    rec->key = aws_uri_decode(key, strlen(key), false, NULL);
    return rec->key ? 0 : -1;
}

/* Adds (or updates) the live record of rec->id, taking rec->key. */
static void live_put(struct live *l, struct spool_record *rec)
{
    struct spool_record *r = find_live(l, rec->id);
    if (r) { /* a new state of the same version: its upload stays */
        free(r->key);
        r->key = rec->key;
        r->seq = rec->seq, r->state = rec->state, r->mode = rec->mode, r->mtime = rec->mtime;
        return;
    }
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct spool_record *recs = realloc(l->recs, cap * sizeof(*recs));
        if (!recs) {
            free(rec->key);
            return;
        }
        l->recs = recs;
        l->cap = cap;
    }
    if ((l->count + 1) * 2 > l->index_cap && index_grow(l) != 0) {
        free(rec->key);
        return;
    }
    size_t *slot = index_slot(l, rec->id);
    if (*slot) { /* a removed id written again: reuse its place */
        record_clear(l, &l->recs[*slot - 1]);
        l->recs[*slot - 1] = *rec;
        return;
    }
    l->recs[l->count++] = *rec;
    *slot = l->count;
    attach_upload(l, &l->recs[l->count - 1]);
}

/* An "F" line: kept aside (the latest one per version) until its "C" or "D" line. */
static void replay_flushed(struct live *l, const char *line)
{
    struct flushed *n = calloc(1, sizeof(*n));
    if (!n || parse_record(line, "F", &n->rec, &n->f) != 0 || find_live(l, n->rec.id)) {
        if (n)
            free(n->rec.key);
        free(n);
        return;
    }
    drop_flushed(l, n->rec.id);
    n->next = l->flushed;
    l->flushed = n;
}

/* One line without its '\n'; ignored unless whole and intact. */
static void replay_line(struct live *l, char *line)
{
    char *sum = strrchr(line, ' ');
    if (!sum || strtoul(sum + 1, NULL, 16) != checksum(line, (size_t)(sum - line)))
        return;
    *sum = '\0';
    uint64_t id;
    if (sscanf(line, "D %" SCNu64, &id) == 1) {
        drop_flushed(l, id);
        struct spool_record *r = find_live(l, id);
        struct orphan **u = find_unattached(l, id), *o = *u;
        if (r) {
            record_clear(l, r);
        } else if (o) { /* a version dropped before its close */
            *u = o->next;
            o->next = l->orphans;
            l->orphans = o;
        }
        return;
    }
    if (line[0] == 'M') {
        replay_upload(l, line);
        return;
    }
    if (line[0] == 'F') {
        replay_flushed(l, line);
        return;
    }
    struct spool_record rec;
    if (parse_record(line, "C", &rec, NULL) != 0)
        return;
    drop_flushed(l, rec.id);
    live_put(l, &rec);
}

static int read_journal(struct spool *sp, struct live *l)
{
    FILE *f = fopen(sp->journal, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0)
        if (line[n - 1] == '\n') { /* the last line may be torn */
            line[n - 1] = '\0';
            replay_line(l, line);
        }
    free(line);
    fclose(f);
    return 0;
}

/* The live records (and their uploads) as journal lines into fd. */
static int write_live(int fd, const struct live *l)
{
    int rc = 0;
    for (size_t i = 0; i < l->count && rc == 0; i++) {
        const struct spool_record *r = &l->recs[i];
        if (!r->key)
            continue;
        char *line = record_line(r);
        rc = line ? write_line(fd, line) : -ENOMEM;
        free(line);
        if (rc == 0 && r->upload_id) {
            line = upload_line(r->id, r->upload_key, r->upload_id, r->part_size);
            rc = line ? write_line(fd, line) : -ENOMEM;
            free(line);
        }
    }
    for (const struct orphan *o = l->unattached; o && rc == 0; o = o->next) {
        char *line = upload_line(o->id, o->key, o->upload_id, o->part_size);
        rc = line ? write_line(fd, line) : -ENOMEM;
        free(line);
    }
    for (const struct flushed *f = l->flushed; f && rc == 0; f = f->next) {
        char *line = flushed_line(&f->rec, &f->f);
        rc = line ? write_line(fd, line) : -ENOMEM;
        free(line);
    }
    return rc;
}

/* The journal with only the live records, replacing the old one atomically; sp->journalfd is
 * the new one, open for appending. With the journal lock held for writing (or alone). */
static int rewrite_journal(struct spool *sp, const struct live *l)
{
    int fd = openat(sp->cachefd, "journal.new", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = write_live(fd, l);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && renameat(sp->cachefd, "journal.new", sp->cachefd, "journal") != 0)
        rc = -errno;
    if (rc == 0 && fsync(sp->cachefd) != 0)
        rc = -errno;
    int appender = rc == 0 ? openat(sp->cachefd, "journal", O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
    if (rc == 0 && appender < 0)
        rc = -errno;
    if (rc == 0) {
        if (sp->journalfd >= 0)
            close(sp->journalfd);
        sp->journalfd = appender;
    }
    return rc;
}

static void live_free(struct live *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->recs[i].key);
        free(l->recs[i].upload_key);
        free(l->recs[i].upload_id);
    }
    free(l->recs);
    free(l->index);
    while (l->flushed)
        drop_flushed(l, l->flushed->rec.id);
    struct orphan *lists[] = {l->orphans, l->unattached};
    for (size_t i = 0; i < 2; i++)
        while (lists[i]) {
            struct orphan *o = lists[i];
            lists[i] = o->next;
            orphan_free(o);
        }
}

int spool_compact(struct spool *sp, bool force)
{
    struct stat st;
    if (!force && (fstat(sp->journalfd, &st) != 0 || (uint64_t)st.st_size < sp->compact_at))
        return 0;
    pthread_rwlock_wrlock(&sp->journal_lock);
    struct live l = {0};
    /* the uploads of removed records were aborted when their data went: no orphans here */
    int rc = read_journal(sp, &l);
    if (rc == 0)
        rc = rewrite_journal(sp, &l);
    if (rc == 0 && fstat(sp->journalfd, &st) == 0)
        sp->compact_at =
            (uint64_t)st.st_size * 4 > COMPACT_MIN ? (uint64_t)st.st_size * 4 : COMPACT_MIN;
    pthread_rwlock_unlock(&sp->journal_lock);
    live_free(&l);
    return rc;
}

/* Data files of no live record were never committed: removed. */
static void sweep_data_files(struct spool *sp, struct live *l)
{
    int fd = dup(sp->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        char ext[8];
        if (sscanf(de->d_name, "%" SCNu64 ".%7s", &id, ext) != 2 || strcmp(ext, "data") != 0)
            continue;
        if (id >= sp->next_id)
            sp->next_id = id + 1;
        if (!find_live(l, id))
            unlinkat(sp->dirfd, de->d_name, 0);
    }
    closedir(d);
}

/* Versions closed (an "F" line) whose release never came: recovered when this is the same boot
 * and their data file is as it was at that close (see spool_write_flushed). */
static void promote_flushed(struct spool *sp, struct live *l)
{
    while (l->flushed) {
        struct flushed *f = l->flushed;
        l->flushed = f->next;
        char name[64];
        data_name(name, sizeof(name), f->rec.id);
        struct stat st;
        bool same = strcmp(sp->boot_id, "-") != 0 && strcmp(f->f.boot_id, sp->boot_id) == 0 &&
                    fstatat(sp->dirfd, name, &st, 0) == 0 && (uint64_t)st.st_size == f->f.size &&
                    st.st_mtim.tv_sec == f->f.data_mtime.tv_sec &&
                    st.st_mtim.tv_nsec == f->f.data_mtime.tv_nsec;
        if (same && f->rec.state != GW_LOCAL_ONLY) {
            live_put(l, &f->rec); /* takes the key */
            f->rec.key = NULL;
        }
        free(f->rec.key);
        free(f);
    }
}

int spool_scan(struct spool *sp, spool_record_fn fn, spool_orphan_fn orphan_fn, void *ctx,
               struct s3_error *err)
{
    struct live l = {0};
    int rc = read_journal(sp, &l);
    if (rc != 0) {
        s3_error_set(err, 0, "LocalIOError", false, "cannot read %s: %s", sp->journal,
                     strerror(-rc));
        return -1;
    }
    promote_flushed(sp, &l);
    for (size_t i = 0; i < l.count; i++)
        if (l.recs[i].id >= sp->next_id)
            sp->next_id = l.recs[i].id + 1;
    sweep_data_files(sp, &l);
    /* records whose data is gone (its "D" line lost in a crash) are dropped */
    for (size_t i = 0; i < l.count; i++) {
        struct spool_record *r = &l.recs[i];
        if (!r->key)
            continue;
        char name[64];
        data_name(name, sizeof(name), r->id);
        int fd = openat(sp->dirfd, name, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            record_clear(&l, r);
            continue;
        }
        fn(ctx, r, fd);
    }
    while (l.unattached) { /* their files were never closed: no writer survives a restart */
        struct orphan *o = l.unattached;
        l.unattached = o->next;
        o->next = l.orphans;
        l.orphans = o;
    }
    rc = rewrite_journal(sp, &l);
    for (struct orphan *o = l.orphans; o; o = o->next)
        orphan_fn(ctx, o->key, o->upload_id);
    live_free(&l);
    if (rc != 0) {
        s3_error_set(err, 0, "LocalIOError", false, "cannot write %s: %s", sp->journal,
                     strerror(-rc));
        return -1;
    }
    return 0;
}
