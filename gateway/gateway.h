/* gateway: the pipeline behind the file system.
 *
 *   write -> spool -> upload -> resize -> renditions
 *
 * A file written through the mount lives in a local spool file until it is safely in S3. When
 * its last writer closes it, its data and a journal record are made durable (fsync, in that
 * order, batched across files) and it is queued for an upload worker; an uploaded image (with
 * [resize] mode = local) is queued for a resize worker, which derives every size from one decode
 * of the spool file and puts the renditions in the destination bucket. Only then is the spool
 * file removed. After a crash the journal is read at start and the work resumes.
 *
 * Files whose names match [gateway] temp_globs are held after close for temp_hold_seconds (an
 * editor's save renames them into place first); junk_globs are kept locally and never uploaded.
 *
 * Names are full S3 keys of the source bucket (with source_prefix). The gateway does no
 * listing and knows nothing of FUSE: the file system asks it about keys that have local data.
 *
 * Threads: every function is thread-safe. Network work runs on the gateway's own workers, except
 * gateway_open_write of an existing object without truncation, which downloads it first.
 */
#ifndef S3IMGFS_GATEWAY_H
#define S3IMGFS_GATEWAY_H

#include "conf.h"
#include "metrics.h"
#include "notify.h"
#include "s3client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum gw_state {
    GW_WRITING,    /* open for writing, not closed yet */
    GW_HELD,       /* a temporary name, waiting for a rename (temp_hold_seconds) */
    GW_LOCAL_ONLY, /* desktop junk: kept while mounted, never uploaded */
    GW_PENDING,    /* closed and durable in the spool, waiting for an upload worker */
    GW_UPLOADING,
    GW_UPLOADED, /* in S3; final for non-images and when resizing is not local */
    GW_RESIZING,
    GW_DONE,  /* in S3 with all its renditions */
    GW_FAILED /* see the reason; the data is kept */
};

/* The name of a state as the status attribute shows it ("pending", ...). */
const char *gw_state_name(enum gw_state state);

struct gateway;
struct gw_file; /* a reference to the local data of one key; see gateway_file_put */

/* Called (from a worker) when an object appeared in, changed in (info: its size and mtime) or
 * left (info NULL) the source bucket because of the gateway, so the file system can update
 * what it cached about `key`. */
struct gw_info;
typedef void (*gw_changed_fn)(void *ctx, const char *key, const struct gw_info *info);

struct gateway_options {
    const struct config *cfg; /* borrowed; must outlive the gateway */
    struct s3client *s3;      /* borrowed; thread-safe */
    gw_changed_fn on_changed; /* may be NULL */
    void *on_changed_ctx;
    struct notifier *notifier; /* borrowed; a notice per finished or failed file; may be NULL */
    struct metrics *metrics;   /* borrowed; counters and resize times; may be NULL */
};

/* Opens the spool under cfg->gateway.cache_dir (created 0700 if missing), takes its lock (one
 * gateway per cache_dir) and reads the journal. Starts no thread (call it before daemonizing).
 * Returns NULL and fills err ("LocalIOError" with the path and what to do) on failure. */
struct gateway *gateway_new(const struct gateway_options *opts, struct s3_error *err);

/* Sets (before gateway_start) the notifier that announces each finished or failed file. */
void gateway_set_notifier(struct gateway *gw, struct notifier *n);

/* Starts the workers and queues the work found in the journal. */
int gateway_start(struct gateway *gw, struct s3_error *err);

/* Stops the workers: transfers in flight finish or are abandoned at their next step; work not
 * done stays in the spool and resumes at the next start. Then frees everything. */
void gateway_free(struct gateway *gw);

/* ------------------------------------------------------------------------------------------ */
/* Local data                                                                                   */

/* Opens `key` for writing and returns a writer reference in *out. With `truncate` the data
 * starts empty; else it starts as the current local data, or the object's bytes (downloaded
 * now; a missing object gives an empty file). Returns 0, or a negative errno (err says why). */
int gateway_open_write(struct gateway *gw, const char *key, bool truncate, mode_t mode,
                       struct gw_file **out, struct s3_error *err);

/* The local data of `key` for reading, or NULL when the key has none. */
struct gw_file *gateway_open_read(struct gateway *gw, const char *key);

/* The spool file's descriptor: pread, pwrite, ftruncate and fstat it directly. */
int gateway_file_fd(const struct gw_file *f);

/* The caller changed the data through the descriptor: wrote [offset, offset + len), or
 * truncated it to `offset` (len 0). Sets the mtime; the parts of a big file written in order
 * start going up before its close (stream.c). */
void gateway_file_wrote(struct gateway *gw, struct gw_file *f, uint64_t offset, uint64_t len);

/* A write through f failed (err: errno): this version is incomplete and is not uploaded; at its
 * close the file keeps its previous content (the one before this writer, or S3's) and says
 * `failed: <reason>`. */
void gateway_file_write_failed(struct gateway *gw, struct gw_file *f, int err);

/* A close() of a writer of f (FUSE's flush; the last close is reported later, as a release):
 * records in the journal how the version is now, so that a gateway killed before that release
 * still uploads it at the next start when nothing was written after this close (see
 * spool_write_flushed). Cheap: no sync. Returns 0 or -errno. */
int gateway_file_flushed(struct gateway *gw, struct gw_file *f);

/* Makes the data durable in the spool (fsync) without uploading it. Returns 0 or -errno. */
int gateway_file_sync(struct gw_file *f);

/* Drops a reference from gateway_open_write or gateway_open_read. When the last writer of data
 * that changed lets go, the data is committed: made durable and queued (or held). Returns 0, or
 * a negative errno when it could not be made durable (the data is kept in the spool). */
int gateway_file_put(struct gateway *gw, struct gw_file *f);

/* [gateway] sync_upload: commits the data of the last writer now (as its close would) and
 * waits until it is in S3. Returns 0 (also when another writer still has the file open: its
 * close uploads it), or -EIO with err saying why: a permanent failure, a transient one (the
 * file is retried in the background) or an unmount. The data stays in the spool either way.
 * Writes through f after this are not allowed (open the file again). */
int gateway_file_upload_now(struct gateway *gw, struct gw_file *f, struct s3_error *err);

/* ------------------------------------------------------------------------------------------ */
/* What the file system asks                                                                    */

struct gw_info {
    uint64_t size;
    struct timespec mtime;
    mode_t mode;
    enum gw_state state;
};

/* True (and *info filled; may be NULL) when `key` has local data. */
bool gateway_lookup(struct gateway *gw, const char *key, struct gw_info *info);

/* Calls fn for each key with local data directly inside the folder `dir_prefix` ("" or "a/b/";
 * a full key prefix) with the rest of the key as name. Keys deeper down are reported once per
 * subfolder as a name ending in '/'. Return non-zero from fn to stop. */
typedef int (*gw_list_fn)(void *ctx, const char *name, const struct gw_info *info);
void gateway_list_local(struct gateway *gw, const char *dir_prefix, gw_list_fn fn, void *ctx);

/* True when any key with local data is inside the folder `prefix` ("a/b/", ending in /). */
bool gateway_has_local_under(struct gateway *gw, const char *prefix);

/* The status attribute of `key` ("pending", "done", "failed: <reason>") into buf. Returns false
 * when the gateway has no record of the key (nothing written through this mount lately). */
bool gateway_status(struct gateway *gw, const char *key, char *buf, size_t len);

/* Sets the modification time kept with local data (utimens before the upload). Returns false
 * when the key has no local data. */
bool gateway_set_mtime(struct gateway *gw, const char *key, const struct timespec *mtime);

/* Tries again, now: files whose upload failed for good (`failed: ...`; the reason may be gone:
 * a key fixed in the credentials file) and files waiting for their next transient retry. `key`
 * is one file, or with `subtree` every file under the folder `key` ("" or "a/b/": all). A
 * failed resize is not retried (the upload succeeded and its data left the spool: write the
 * file again). Returns how many files were queued. */
size_t gateway_retry(struct gateway *gw, const char *key, bool subtree);

/* Tries again, now: files whose upload failed for good (`failed: ...`; the cause may be gone: a
 * key fixed in the credentials file) and files waiting for their next transient retry. `key`
 * is one file, or with `subtree` every file under the folder `key` ("" or "a/b/": all). A
 * failed resize is not retried (the upload succeeded and its data left the spool: write the
 * file again). Returns how many files were queued. */
size_t gateway_retry(struct gateway *gw, const char *key, bool subtree);

/* ------------------------------------------------------------------------------------------ */
/* Namespace changes                                                                            */

/* Renames the local data of `from` to `to` (any local data of `to` is dropped). When `from`
 * was being uploaded, the object under `from` is deleted once that upload ends and the data is
 * uploaded again under `to`. Returns 0, or -ENOENT when `from` has no local data. */
int gateway_rename_local(struct gateway *gw, const char *from, const char *to);

/* `from` was renamed to `to` in S3 (no local data): the status the gateway remembers of `from`
 * now belongs to `to`. */
void gateway_renamed(struct gateway *gw, const char *from, const char *to);

/* Drops the local data of `key` (unlink). An upload in flight is deleted from S3 when it ends.
 * Returns 0, or -ENOENT when the key had no local data. */
int gateway_unlink_local(struct gateway *gw, const char *key);

/* Queues the deletion of every rendition key `key` may have (each size, each output format). */
void gateway_delete_renditions(struct gateway *gw, const char *key);

/* Queues moving the renditions of `from` to the keys of `to` (copy, then delete). */
void gateway_rename_renditions(struct gateway *gw, const char *from, const char *to);

/* The rendition keys of `key` (full destination keys, one per size, for the format the source
 * has or would have), as one string with one key per line, malloc'd; NULL when none. */
char *gateway_rendition_keys(struct gateway *gw, const char *key);

/* True when new data must be refused (ENOSPC): the spool holds [gateway] cache_max_mb or more,
 * or its disk has less than 64 MiB free. Updated every second; cheap. */
bool gateway_spool_full(struct gateway *gw);

/* ------------------------------------------------------------------------------------------ */
/* The queue, for the status file                                                               */

struct gw_stats {
    size_t count[GW_FAILED + 1]; /* entries per state */
    size_t resize_waiting;       /* of count[GW_UPLOADED]: images waiting for a resize worker
                                    (the others are finished) */
    uint64_t bytes_pending;      /* spool bytes not yet in S3 */
    uint64_t uploads_done, renditions_done, failures, retries;
    uint64_t bytes_uploaded;
};
void gateway_stats(struct gateway *gw, struct gw_stats *out);

/* The queue as JSON (what MOUNTPOINT/.s3imgfs/status shows): files per state, bytes pending,
 * totals since the mount, and the last failures with their reasons. malloc'd; NULL on ENOMEM. */
char *gateway_status_json(struct gateway *gw);

/* The metrics (what MOUNTPOINT/.s3imgfs/metrics shows) as Prometheus text: the counters and
 * resize times of gateway_options.metrics plus the queue's gauges (docs/monitoring.md).
 * malloc'd; NULL on ENOMEM; "" without metrics. */
char *gateway_metrics_text(struct gateway *gw);

#endif
