/* Private to fuse/: paths and keys, the metadata caches, remote readers. */
#ifndef S3IMGFS_FS_INTERNAL_H
#define S3IMGFS_FS_INTERNAL_H

#include "fs.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* ---- paths.c: the one mapping of paths to keys ---- */

enum fs_area {
    AREA_SOURCE,
    AREA_RESIZED,
    AREA_CONTROL /* "/.s3imgfs": the gateway's own files (control.c) */
};

#define CONTROL_DIR "/.s3imgfs"

struct fs_path {
    enum fs_area area;
    const char *bucket;
    char *key;    /* the path as an object key: "<prefix>a/b.jpg"; for an area's root, "" */
    char *prefix; /* the path as a folder: "<prefix>a/b.jpg/", or the area's prefix */
    bool is_root; /* "/" or "/<resized_dir>" */
};

/* Returns 0, or -ENAMETOOLONG / -ENOMEM / -EINVAL (a name S3 cannot hold). */
int fs_path_parse(const struct config *cfg, const char *path, struct fs_path *out);
void fs_path_clear(struct fs_path *p);

/* ---- cache.c: attributes, negative entries and folder listings, with TTLs ---- */

struct fs_attr {
    bool exists;
    bool is_dir;
    uint64_t size;
    struct timespec mtime;
};

struct fs_listing_entry {
    char *name; /* without trailing '/' */
    struct fs_attr attr;
};

struct fs_listing {
    struct fs_listing_entry *entries; /* sorted by name */
    size_t count;
};

struct fs_cache;
struct fs_cache *fs_cache_new(unsigned attr_ttl, unsigned list_ttl, unsigned negative_ttl);
void fs_cache_free(struct fs_cache *c);

/* `id` is bucket + "\n" + key. The getters want fresh entries, or with stale_ok also expired
 * ones (not those forgotten after a change): what was last known, for when S3 is unreachable. */
bool fs_cache_get_attr(struct fs_cache *c, const char *id, bool stale_ok, struct fs_attr *out);
void fs_cache_put_attr(struct fs_cache *c, const char *id, const struct fs_attr *attr);
/* A listing of folder `id` (bucket + "\n" + prefix): a copy into *out (free with
 * fs_listing_clear); false when none. */
bool fs_cache_get_listing(struct fs_cache *c, const char *id, bool stale_ok,
                          struct fs_listing *out);
/* Looks up `name` in a listing of `dir_id`: 1 found (attr filled), 0 absent, -1 no listing. */
int fs_cache_lookup_in_listing(struct fs_cache *c, const char *dir_id, const char *name,
                               bool stale_ok, struct fs_attr *attr);
/* Sorts *listing by name (the caller's copy too: readdir merges by binary search) and keeps a
 * copy of it for list_ttl seconds. */
void fs_cache_put_listing(struct fs_cache *c, const char *id, struct fs_listing *listing);
/* Forgets the attribute of the key and the listings of its folder and the folders above. */
void fs_cache_forget(struct fs_cache *c, const char *bucket, const char *key);
void fs_cache_forget_listing(struct fs_cache *c, const char *id);
void fs_listing_clear(struct fs_listing *l);
/* What the file system itself did to `key` (attr: it exists now with these attributes; NULL:
 * it is gone): the attribute and the cached listings of its folders are updated in place, so
 * a copy of many files into a folder does not make every lookup ask S3 again. A key ending in
 * '/' is a folder marker. */
void fs_cache_note(struct fs_cache *c, const char *bucket, const char *key,
                   const struct fs_attr *attr);
/* Caches an empty listing for a folder just made (id: bucket + "\n" + prefix). */
void fs_cache_seed_empty(struct fs_cache *c, const char *id);

/* ---- reader.c: sequential reads of an object with growing read-ahead ---- */

struct fs_reader;
struct fs_reader *fs_reader_new(struct s3client *s3, const char *bucket, const char *key,
                                uint64_t size, size_t max_window);
/* Returns bytes read (0 at the end) or -errno. */
int fs_reader_read(struct fs_reader *r, char *buf, size_t len, uint64_t offset);
void fs_reader_free(struct fs_reader *r);

/* ---- control.c: the /.s3imgfs area (status, retry) ---- */

struct control_file;
int control_lookup(struct fs *fs, const struct fs_path *p, struct fs_attr *a, mode_t *mode);
void control_list(void *buf, fuse_fill_dir_t filler);
/* -EACCES when opened the wrong way (status is read-only, retry write-only). */
int control_open(struct fs *fs, const struct fs_path *p, bool write, struct control_file **out);
int control_read(struct control_file *f, char *buf, size_t size, off_t offset);
int control_write(struct control_file *f, const char *buf, size_t size, off_t offset);
/* Acts on what was written (retry); 0 or -errno for close() to report. */
int control_flush(struct fs *fs, struct control_file *f);
void control_close(struct control_file *f);

/* ---- fs.c ---- */

struct fs {
    const struct config *cfg;
    struct s3client *s3;
    struct gateway *gw;
    struct fs_cache *cache;
    uid_t uid;
    gid_t gid;
    /* S3 did not answer a lookup or a listing (after the client's retries): until this time
     * (CLOCK_MONOTONIC, ms) lookups and listings answer from what is cached, stale or not,
     * without waiting on the network again. 0: reachable. */
    _Atomic long long offline_until_ms;
};

#endif
