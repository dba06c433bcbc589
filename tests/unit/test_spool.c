/* gateway/spool: the journal of committed versions and their multipart uploads, replayed at
 * open, and its compaction (in a temporary cache_dir); "F" lines of versions closed but not
 * released. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3client.h"
#include "spool.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/s3imgfs-spool-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* What a scan found. */
#define MAX_FOUND 64
struct found {
    struct spool_record recs[MAX_FOUND];
    size_t count;
    char *orphans[MAX_FOUND]; /* "key upload_id" */
    size_t orphan_count;
};

static void on_record(void *ctx, struct spool_record *rec, int fd)
{
    struct found *f = ctx;
    close(fd);
    assert_true(f->count < MAX_FOUND);
    struct spool_record *r = &f->recs[f->count++];
    *r = *rec;
    r->key = strdup(rec->key);
    r->upload_key = rec->upload_key ? strdup(rec->upload_key) : NULL;
    r->upload_id = rec->upload_id ? strdup(rec->upload_id) : NULL;
}

static void on_orphan(void *ctx, const char *key, const char *upload_id)
{
    struct found *f = ctx;
    assert_true(f->orphan_count < MAX_FOUND);
    char *s = NULL;
    assert_true(asprintf(&s, "%s %s", key, upload_id) > 0);
    f->orphans[f->orphan_count++] = s;
}

static void found_clear(struct found *f)
{
    for (size_t i = 0; i < f->count; i++) {
        free(f->recs[i].key);
        free(f->recs[i].upload_key);
        free(f->recs[i].upload_id);
    }
    for (size_t i = 0; i < f->orphan_count; i++)
        free(f->orphans[i]);
    memset(f, 0, sizeof(*f));
}

static struct spool *open_scanned(struct found *f)
{
    struct s3_error err;
    struct spool *sp = spool_open(dir, &err);
    if (!sp)
        fail_msg("spool_open: %s", err.message);
    memset(f, 0, sizeof(*f));
    if (spool_scan(sp, on_record, on_orphan, f, &err) != 0)
        fail_msg("spool_scan: %s", err.message);
    return sp;
}

static const struct spool_record *find(const struct found *f, const char *key)
{
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->recs[i].key, key) == 0)
            return &f->recs[i];
    return NULL;
}

/* A committed version of `key` (a data file and its "C" line); returns its id. */
static uint64_t commit(struct spool *sp, const char *key, enum gw_state state)
{
    uint64_t id;
    int fd = spool_create(sp, &id);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, key, strlen(key)), (ssize_t)strlen(key));
    close(fd);
    struct spool_record rec = {.id = id,
                               .seq = id,
                               .key = (char *)key,
                               .state = state,
                               .mode = 0640,
                               .mtime = {1700000000, 5}};
    assert_int_equal(spool_write_record(sp, &rec), 0);
    return id;
}

static void records_and_removals_survive_a_reopen(void **state)
{
    (void)state;
    struct found f;
    struct spool *sp = open_scanned(&f);
    assert_int_equal(f.count, 0);
    commit(sp, "a/one.jpg", GW_PENDING);
    uint64_t two = commit(sp, "a/two with space.txt", GW_PENDING);
    commit(sp, "b/three", GW_UPLOADED);
    spool_remove(sp, two);
    assert_int_equal(spool_sync(sp), 0);
    spool_close(sp);

    sp = open_scanned(&f);
    assert_int_equal(f.count, 2);
    const struct spool_record *one = find(&f, "a/one.jpg"), *three = find(&f, "b/three");
    assert_non_null(one);
    assert_non_null(three);
    assert_null(find(&f, "a/two with space.txt"));
    assert_int_equal(one->state, GW_PENDING);
    assert_int_equal(three->state, GW_UPLOADED);
    assert_int_equal(one->mode, 0640);
    assert_int_equal(one->mtime.tv_sec, 1700000000);
    assert_int_equal(one->mtime.tv_nsec, 5);
    assert_null(one->upload_id);
    assert_int_equal(f.orphan_count, 0);
    found_clear(&f);
    spool_close(sp);
}

/* "M" lines: the last upload of a live version is resumed; a completed one (cleared) is
 * forgotten; one replaced by another, or whose version was removed, is an orphan to abort. */
static void multipart_uploads_are_resumed_forgotten_or_orphaned(void **state)
{
    (void)state;
    struct found f;
    struct spool *sp = open_scanned(&f);
    uint64_t live = commit(sp, "live.bin", GW_UPLOADING);
    uint64_t done = commit(sp, "done.bin", GW_UPLOADING);
    uint64_t gone = commit(sp, "gone.bin", GW_UPLOADING);
    uint64_t redo = commit(sp, "redo.bin", GW_UPLOADING);
    assert_int_equal(spool_write_upload(sp, live, "live.bin", "u-live", 8u << 20), 0);
    assert_int_equal(spool_write_upload(sp, done, "done.bin", "u-done", 8u << 20), 0);
    assert_int_equal(spool_write_upload(sp, done, "done.bin", NULL, 0), 0);
    assert_int_equal(spool_write_upload(sp, gone, "gone.bin", "u-gone", 5u << 20), 0);
    spool_remove(sp, gone);
    assert_int_equal(spool_write_upload(sp, redo, "redo.bin", "u-redo-1", 5u << 20), 0);
    assert_int_equal(spool_write_upload(sp, redo, "redo.bin", "u-redo/2+x", 8u << 20), 0);
    /* a later state of the same version keeps its upload */
    struct spool_record again = {.id = live, .seq = live, .key = "live.bin", .state = GW_FAILED};
    assert_int_equal(spool_write_record(sp, &again), 0);
    spool_close(sp);

    for (int round = 0; round < 2; round++) { /* also after the rewrite of the first scan */
        sp = open_scanned(&f);
        assert_int_equal(f.count, 3);
        const struct spool_record *l = find(&f, "live.bin"), *d = find(&f, "done.bin"),
                                  *r = find(&f, "redo.bin");
        assert_non_null(l);
        assert_string_equal(l->upload_id, "u-live");
        assert_string_equal(l->upload_key, "live.bin");
        assert_int_equal(l->part_size, 8u << 20);
        assert_int_equal(l->state, GW_FAILED);
        assert_null(d->upload_id);
        assert_string_equal(r->upload_id, "u-redo/2+x");
        assert_int_equal(r->part_size, 8u << 20);
        if (round == 0) {
            assert_int_equal(f.orphan_count, 2);
            bool gone_seen = false, redo_seen = false;
            for (size_t i = 0; i < f.orphan_count; i++) {
                gone_seen |= strcmp(f.orphans[i], "gone.bin u-gone") == 0;
                redo_seen |= strcmp(f.orphans[i], "redo.bin u-redo-1") == 0;
            }
            assert_true(gone_seen && redo_seen);
        } else {
            assert_int_equal(f.orphan_count, 0); /* reported once */
        }
        found_clear(&f);
        spool_close(sp);
    }
}

/* A file whose parts went up while it was written: its "M" line comes before its "C" line. It
 * is resumed once committed; never committed, its upload is an orphan at the next open, but a
 * compaction meanwhile keeps it (the writer may still close it). */
static void uploads_started_before_the_commit(void **state)
{
    (void)state;
    struct found f;
    struct spool *sp = open_scanned(&f);
    uint64_t a, b;
    int fd = spool_create(sp, &a);
    close(fd);
    fd = spool_create(sp, &b);
    close(fd);
    assert_int_equal(spool_write_upload(sp, a, "early/a.bin", "u-a", 8u << 20), 0);
    assert_int_equal(spool_write_upload(sp, b, "early/b.bin", "u-b", 8u << 20), 0);
    struct spool_record rec = {.id = a, .seq = 1, .key = "early/a.bin", .state = GW_PENDING};
    assert_int_equal(spool_write_record(sp, &rec), 0);
    assert_int_equal(spool_compact(sp, true), 0);
    spool_close(sp);

    sp = open_scanned(&f);
    assert_int_equal(f.count, 1);
    assert_string_equal(f.recs[0].key, "early/a.bin");
    assert_string_equal(f.recs[0].upload_id, "u-a");
    assert_int_equal(f.orphan_count, 1);
    assert_string_equal(f.orphans[0], "early/b.bin u-b");
    found_clear(&f);
    spool_close(sp);
}

/* A version being written whose writer closed it: its data file with `text`, and its "F" line.
 * Returns the id; *fd_out keeps the data file open for more writes (or -1: closed). */
static uint64_t flushed(struct spool *sp, const char *key, const char *text, int *fd_out)
{
    uint64_t id;
    int fd = spool_create(sp, &id);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    struct spool_record rec = {
        .id = id, .seq = 100 + id, .key = (char *)key, .state = GW_PENDING, .mode = 0644};
    assert_int_equal(spool_write_flushed(sp, &rec, (uint64_t)st.st_size, &st.st_mtim), 0);
    if (fd_out)
        *fd_out = fd;
    else
        close(fd);
    return id;
}

static bool data_file_exists(uint64_t id)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/spool/%020llu.data", dir, (unsigned long long)id);
    return access(path, F_OK) == 0;
}

/* "F" lines: a version closed (FUSE's flush) whose release never came is recovered when its
 * data is as it was at that close; written to afterwards, it is dropped like an open file; a
 * later "C" or "D" line wins; a compaction keeps the line. */
static void flushed_versions_are_recovered_when_unchanged(void **state)
{
    (void)state;
    struct found f;
    struct spool *sp = open_scanned(&f);
    flushed(sp, "closed.jpg", "closed bytes", NULL);
    int fd;
    uint64_t grown = flushed(sp, "written-after.jpg", "first", &fd);
    assert_int_equal(write(fd, " and more", 9), 9); /* after the close: a writer goes on */
    close(fd);
    uint64_t later = flushed(sp, "released.jpg", "v1", NULL);
    struct spool_record rec = {.id = later, .seq = 500, .key = "released.jpg", .state = GW_DONE};
    assert_int_equal(spool_write_record(sp, &rec), 0);
    uint64_t gone = flushed(sp, "removed.jpg", "x", NULL);
    spool_remove(sp, gone);
    assert_int_equal(spool_compact(sp, true), 0); /* the "F" lines survive a compaction */
    spool_close(sp);

    sp = open_scanned(&f);
    assert_int_equal(f.count, 2);
    const struct spool_record *c = find(&f, "closed.jpg"), *r = find(&f, "released.jpg");
    assert_non_null(c);
    assert_int_equal(c->state, GW_PENDING);
    assert_int_equal(c->mode, 0644);
    assert_non_null(r);
    assert_int_equal(r->state, GW_DONE);
    assert_int_equal(r->seq, 500);
    assert_null(find(&f, "written-after.jpg"));
    assert_false(data_file_exists(grown)); /* swept like any uncommitted file */
    found_clear(&f);
    spool_close(sp);
}

/* FNV-1a, as the journal's line checksum. */
static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* After a reboot the page cache is gone: an unsynced version may not be on disk, so an "F"
 * line from another boot recovers nothing. */
static void flushed_versions_of_another_boot_are_dropped(void **state)
{
    (void)state;
    struct found f;
    struct spool *sp = open_scanned(&f);
    uint64_t id = flushed(sp, "before-reboot.jpg", "bytes", NULL);
    spool_close(sp);
    /* rewrite the line with another boot id (and a valid checksum) */
    char path[128], line[1024], body[1200];
    snprintf(path, sizeof(path), "%s/journal", dir);
    FILE *j = fopen(path, "r");
    assert_non_null(j);
    assert_non_null(fgets(line, sizeof(line), j));
    fclose(j);
    char *sum = strrchr(line, ' ');
    *sum = '\0';
    char *key = strrchr(line, ' ');
    *key++ = '\0';
    char *boot = strrchr(line, ' ');
    *boot = '\0';
    snprintf(body, sizeof(body), "%s 00000000-0000-0000-0000-000000000000 %s", line, key);
    j = fopen(path, "w");
    fprintf(j, "%s %08x\n", body, (unsigned)fnv(body, strlen(body)));
    fclose(j);

    sp = open_scanned(&f);
    assert_int_equal(f.count, 0);
    assert_false(data_file_exists(id));
    found_clear(&f);
    spool_close(sp);
}

static off_t journal_size(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/journal", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void compaction_keeps_live_records_and_appends_go_on(void **state)
{
    (void)state;
    struct found f;
    struct spool *sp = open_scanned(&f);
    char key[64];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "churn/file-%04d.jpg", i);
        uint64_t id = commit(sp, key, GW_PENDING);
        if (i % 100 != 0)
            spool_remove(sp, id);
        else
            assert_int_equal(spool_write_upload(sp, id, key, "u-keep", 5u << 20), 0);
    }
    assert_int_equal(spool_compact(sp, false), 0); /* small: left alone */
    off_t before = journal_size();
    assert_int_equal(spool_compact(sp, true), 0);
    off_t after = journal_size();
    assert_true(after * 20 < before);
    commit(sp, "after/compaction", GW_PENDING); /* appends go to the new journal */
    assert_int_equal(spool_sync(sp), 0);
    spool_close(sp);

    sp = open_scanned(&f);
    assert_int_equal(f.count, 21);
    assert_non_null(find(&f, "after/compaction"));
    const struct spool_record *r = find(&f, "churn/file-1900.jpg");
    assert_non_null(r);
    assert_string_equal(r->upload_id, "u-keep");
    assert_null(find(&f, "churn/file-1901.jpg"));
    assert_int_equal(f.orphan_count, 0);
    found_clear(&f);
    spool_close(sp);
}

static void a_torn_last_line_is_ignored(void **state)
{
    (void)state;
    struct found f;
    struct spool *sp = open_scanned(&f);
    commit(sp, "whole", GW_PENDING);
    spool_close(sp);
    char path[128];
    snprintf(path, sizeof(path), "%s/journal", dir);
    FILE *j = fopen(path, "a");
    assert_non_null(j);
    fputs("C 99 99 pending 644 1.0 torn", j); /* no checksum, no newline: a crash mid-write */
    fclose(j);
    sp = open_scanned(&f);
    assert_int_equal(f.count, 1);
    assert_non_null(find(&f, "whole"));
    found_clear(&f);
    spool_close(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(records_and_removals_survive_a_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(multipart_uploads_are_resumed_forgotten_or_orphaned, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(uploads_started_before_the_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(compaction_keeps_live_records_and_appends_go_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_torn_last_line_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(flushed_versions_are_recovered_when_unchanged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(flushed_versions_of_another_boot_are_dropped, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
