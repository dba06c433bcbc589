/* spool: the gateway's files on local disk (private to gateway/).
 *
 * cache_dir/spool/<id>.data   the bytes of one version of a file
 * cache_dir/journal           one line per event, appended: "C" records a committed version
 *                             (key, state, mode, mtime), "D" says it is gone; each line ends
 *                             with a checksum, so a line torn by a crash is ignored
 * cache_dir/lock              flock'd by the running gateway
 *
 * A data file is committed once its "C" line is durable (its bytes were synced first). One
 * journal instead of a record file per version: a file costs one inode, not three, which is
 * what made small-file ingest slow on ext4. At open the journal is replayed, data files of no
 * live record are removed (never committed) and the journal is rewritten with the live
 * records only; while running, spool_compact does the same when it has grown. "M" lines
 * record the multipart upload a version's bytes are going up in.
 */
#ifndef S3IMGFS_GATEWAY_SPOOL_H
#define S3IMGFS_GATEWAY_SPOOL_H

#include "gateway.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct spool;

struct spool_record {
    uint64_t id;
    uint64_t seq;        /* commit order: a later record of the same key wins */
    char *key;           /* malloc'd */
    enum gw_state state; /* as last recorded */
    mode_t mode;
    struct timespec mtime;
    /* The multipart upload the bytes were going up in ("M" line; upload_key, upload_id
     * malloc'd, NULL when none). */
    char *upload_key, *upload_id;
    uint64_t part_size;
};

/* Creates cache_dir (0700) and cache_dir/spool, and locks cache_dir/lock. */
struct spool *spool_open(const char *cache_dir, struct s3_error *err);
void spool_close(struct spool *sp);

/* Calls fn for each record (its strings are the callee's to keep: set them to NULL to take
 * them). Removes uncommitted data files and stale temporaries. Multipart uploads of data that
 * is gone (the file was rewritten or removed before they completed) go to orphan_fn, which
 * should abort them. */
typedef void (*spool_record_fn)(void *ctx, struct spool_record *rec, int data_fd);
typedef void (*spool_orphan_fn)(void *ctx, const char *key, const char *upload_id);
int spool_scan(struct spool *sp, spool_record_fn fn, spool_orphan_fn orphan_fn, void *ctx,
               struct s3_error *err);

/* A new, empty data file; its id in *id. Returns the fd (O_RDWR) or -errno. */
int spool_create(struct spool *sp, uint64_t *id);

/* Appends the record of rec->id (replacing earlier ones of that id at the next replay).
 * Durable only after spool_sync. Returns 0 or -errno. */
int spool_write_record(struct spool *sp, const struct spool_record *rec);

/* How a version's data file was when one of its writers was closed (an "F" line). */
struct spool_flush {
    uint64_t size;
    struct timespec data_mtime;
    char boot_id[40];
};

/* Appends an "F" line (not synced): a close() of a writer of rec's version, whose data file
 * then had `size` bytes and `data_mtime`. The kernel reports the last close (FUSE's release)
 * only after close() returned; a gateway killed in between would drop the version. So at the
 * next open, a version with an "F" line and no later record is recovered as rec->state when
 * the machine has not rebooted since (the page cache kept its bytes, even unsynced) and its
 * data file is still exactly that size and mtime (nothing was written after that close); else
 * it is dropped, as a file still open for writing is. Returns 0 or -errno. */
int spool_write_flushed(struct spool *sp, const struct spool_record *rec, uint64_t size,
                        const struct timespec *data_mtime);

/* Appends an "M" line: the bytes of `id` are going up in multipart upload `upload_id` of `key`
 * with parts of part_size (upload_id NULL: in none any more). Returns 0 or -errno. */
int spool_write_upload(struct spool *sp, uint64_t id, const char *key, const char *upload_id,
                       uint64_t part_size);

/* Rewrites the journal with only its live records when it has grown past 16 MiB and 4 times
 * its size after the last rewrite (or always, with force), so a long-running gateway's journal
 * stays small. Appends wait meanwhile. Returns 0 or -errno (the old journal is kept). */
int spool_compact(struct spool *sp, bool force);

/* Makes the journal and the folder of data files durable (data files are synced by their
 * owners). Returns 0 or -errno. */
int spool_sync(struct spool *sp);

/* Removes the data of `id` and appends its "D" line. */
void spool_remove(struct spool *sp, uint64_t id);

/* True when the spool's disk has less free than min(64 MiB, a 16th of its size): new writes
 * are then refused (ENOSPC). */
bool spool_disk_low(struct spool *sp);

#endif
