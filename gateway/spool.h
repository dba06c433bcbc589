/* spool: the gateway's files on local disk (private to gateway/).
 *
 * cache_dir/spool/<id>.data   the bytes of one version of a file
 * cache_dir/spool/<id>.job    its journal record (written after the data is durable)
 * cache_dir/lock              flock'd by the running gateway
 *
 * A .data without a .job is a version that was never committed (the writer had not closed it
 * when the gateway stopped) and is removed at open. Records are replaced atomically (temporary
 * file + rename), so a record is always whole.
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
};

/* Creates cache_dir (0700) and cache_dir/spool, and locks cache_dir/lock. */
struct spool *spool_open(const char *cache_dir, struct s3_error *err);
void spool_close(struct spool *sp);

/* Calls fn for each record (the key is the callee's to keep: set rec->key to NULL to take it).
 * Removes uncommitted data files and stale temporaries. */
typedef void (*spool_record_fn)(void *ctx, struct spool_record *rec, int data_fd);
int spool_scan(struct spool *sp, spool_record_fn fn, void *ctx, struct s3_error *err);

/* A new, empty data file; its id in *id. Returns the fd (O_RDWR) or -errno. */
int spool_create(struct spool *sp, uint64_t *id);

/* Writes (replaces) the record of rec->id; with `durable`, fsyncs it (the folder is synced by
 * spool_sync_dir). Returns 0 or -errno. */
int spool_write_record(struct spool *sp, const struct spool_record *rec, bool durable);

int spool_sync_dir(struct spool *sp);

/* Removes the record, then the data of `id`. */
void spool_remove(struct spool *sp, uint64_t id);

/* Bytes free for the spool's filesystem (statvfs), or UINT64_MAX when unknown. */
uint64_t spool_free_bytes(struct spool *sp);

#endif
