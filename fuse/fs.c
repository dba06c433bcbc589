/* fs: the FUSE callbacks. Each answers from local state (the gateway's spool, the caches)
 * where it can; only lookups of uncached names, reads of remote data and namespace changes
 * (unlink, rename, mkdir, rmdir) talk to S3 from a FUSE thread. Writes never do. */
#include "fs_internal.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define XATTR_STATUS     "user.s3imgfs.status"
#define XATTR_RENDITIONS "user.s3imgfs.renditions"

static struct fs *fs_of_context(void)
{
    return fuse_get_context()->private_data;
}

struct fs *fs_new(const struct config *cfg, struct s3client *s3)
{
    struct fs *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return NULL;
    fs->cfg = cfg;
    fs->s3 = s3;
    fs->uid = getuid();
    fs->gid = getgid();
    fs->cache =
        fs_cache_new(cfg->gateway.attr_ttl, cfg->gateway.list_ttl, cfg->gateway.negative_ttl);
    if (!fs->cache) {
        free(fs);
        return NULL;
    }
    return fs;
}

void fs_free(struct fs *fs)
{
    if (!fs)
        return;
    fs_cache_free(fs->cache);
    free(fs);
}

void fs_set_gateway(struct fs *fs, struct gateway *gw)
{
    fs->gw = gw;
}

void fs_key_changed(void *ctx, const char *key, const struct gw_info *info)
{
    struct fs *fs = ctx;
    struct fs_attr a = {.exists = true};
    if (info)
        a.size = info->size, a.mtime = info->mtime;
    fs_cache_note(fs->cache, fs->cfg->s3.source_bucket, key, info ? &a : NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */

static char *cache_id(const char *bucket, const char *key)
{
    char *id = NULL;
    return asprintf(&id, "%s\n%s", bucket, key) < 0 ? NULL : id;
}

static int errno_of(const struct s3_error *err)
{
    if (strcmp(err->code, "NoSuchKey") == 0 || strcmp(err->code, "NotFound") == 0 ||
        err->http_status == 404)
        return -ENOENT;
    if (strcmp(err->code, "AccessDenied") == 0 || err->http_status == 403)
        return -EACCES;
    if (strcmp(err->code, "OutOfMemory") == 0)
        return -ENOMEM;
    return -EIO;
}

/* ---- S3 unreachable: answer from the caches for a while (docs/semantics.md, "Outages") ---- */

#define OFFLINE_RETRY_MS 5000

static long long monotonic_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static bool s3_offline(struct fs *fs)
{
    return fs->offline_until_ms > monotonic_ms();
}

/* After a lookup's or a listing's request: a failure that retries could not fix (no answer,
 * 5xx) makes the mount answer from its caches for OFFLINE_RETRY_MS; a success ends that. */
static void note_reachability(struct fs *fs, const struct s3_error *err)
{
    long long was = fs->offline_until_ms;
    if (err && err->retryable) {
        if (!was)
            log_warn("S3 is unreachable (%s): lookups and listings answer from the cache and "
                     "new files are written to the spool until it is back",
                     err->message);
        fs->offline_until_ms = monotonic_ms() + OFFLINE_RETRY_MS;
    } else if (!err && was) {
        fs->offline_until_ms = 0;
        log_info("S3 answers again: lookups and listings use it again");
    }
}

static void fill_stat(const struct fs *fs, const struct fs_attr *a, mode_t mode, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_nlink = a->is_dir ? 2 : 1;
    st->st_mode = a->is_dir ? S_IFDIR | 0755 : S_IFREG | (mode ? mode : 0644);
    st->st_size = (off_t)a->size;
    st->st_blksize = 1 << 20;
    st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
    st->st_mtim = st->st_ctim = st->st_atim = a->mtime;
}

static struct timespec mtime_of(const struct s3_object_info *info)
{
    struct timespec t = {info->last_modified, 0};
    const char *m = s3_object_info_meta(info, "mtime");
    long long sec;
    long nsec = 0;
    if (m && sscanf(m, "%lld.%ld", &sec, &nsec) >= 1 && sec > 0)
        t = (struct timespec){(time_t)sec, nsec >= 0 && nsec < 1000000000 ? nsec : 0};
    return t;
}

/* The last component of a key ("a/b.jpg" -> "b.jpg") and its folder ("a/"). */
static const char *base_name(const char *key)
{
    const char *slash = strrchr(key, '/');
    return slash ? slash + 1 : key;
}

static char *folder_id(const char *bucket, const char *key)
{
    const char *base = base_name(key);
    char *id = NULL;
    return asprintf(&id, "%s\n%.*s", bucket, (int)(base - key), key) < 0 ? NULL : id;
}

/* Is there anything under `prefix` in S3 (a marker or keys)? 1 yes, 0 no, -errno. */
static int remote_folder_exists(struct fs *fs, const char *bucket, const char *prefix,
                                struct s3_error *err)
{
    struct s3_list_options opts = {.prefix = prefix, .max_keys = 1};
    struct s3_list_page page = {0};
    if (s3_list_page(fs->s3, bucket, &opts, &page, err) != 0)
        return errno_of(err);
    int found = page.object_count > 0 || page.prefix_count > 0;
    s3_list_page_clear(&page);
    return found;
}

/* What S3 says a path is: HEAD, then a one-key listing for a folder. */
static int remote_lookup(struct fs *fs, const struct fs_path *p, struct fs_attr *a)
{
    struct s3_object_info oi = {0};
    struct s3_error err = {0};
    int rc = 0;
    if (s3_head_object(fs->s3, p->bucket, p->key, &oi, &err) == 0) {
        *a = (struct fs_attr){true, false, oi.size, mtime_of(&oi)};
    } else if ((rc = errno_of(&err)) == -ENOENT) {
        s3_error_clear(&err);
        rc = remote_folder_exists(fs, p->bucket, p->prefix, &err);
        if (rc >= 0) {
            a->exists = rc == 1;
            a->is_dir = a->exists;
            clock_gettime(CLOCK_REALTIME, &a->mtime);
            rc = 0;
        }
    }
    s3_object_info_clear(&oi);
    note_reachability(fs, rc == 0 ? NULL : &err);
    return rc;
}

/* What a path is: from the spool, the caches, or S3 (remote_lookup). */
static int lookup(struct fs *fs, const struct fs_path *p, struct fs_attr *a, mode_t *mode)
{
    *mode = 0;
    memset(a, 0, sizeof(*a));
    if (p->area == AREA_CONTROL)
        return control_lookup(fs, p, a, mode);
    if (p->is_root) {
        *a = (struct fs_attr){.exists = true, .is_dir = true};
        clock_gettime(CLOCK_REALTIME, &a->mtime);
        return 0;
    }
    struct gw_info info;
    if (p->area == AREA_SOURCE && fs->gw && gateway_lookup(fs->gw, p->key, &info)) {
        *a = (struct fs_attr){true, false, info.size, info.mtime};
        *mode = info.mode;
        return 0;
    }
    char *id = cache_id(p->bucket, p->key);
    char *dir = folder_id(p->bucket, p->key);
    if (!id || !dir) {
        free(id), free(dir);
        return -ENOMEM;
    }
    int rc = 0;
    if (fs_cache_get_attr(fs->cache, id, false, a) ||
        fs_cache_lookup_in_listing(fs->cache, dir, base_name(p->key), false, a) >= 0)
        goto out;
    if (!s3_offline(fs)) {
        rc = remote_lookup(fs, p, a);
        if (rc == 0)
            fs_cache_put_attr(fs->cache, id, a);
    }
    if (s3_offline(fs)) {
        /* What was last known; else "no such file", so that new files can be written during
         * an outage (fs_create then refuses to guess for writes that keep old bytes). */
        rc = 0;
        if (!fs_cache_get_attr(fs->cache, id, true, a) &&
            fs_cache_lookup_in_listing(fs->cache, dir, base_name(p->key), true, a) < 0)
            a->exists = false;
    }
out:
    /* a folder that only exists in the spool (files written, none uploaded yet) */
    if (rc == 0 && !a->exists && p->area == AREA_SOURCE && fs->gw &&
        gateway_has_local_under(fs->gw, p->prefix)) {
        *a = (struct fs_attr){.exists = true, .is_dir = true};
        clock_gettime(CLOCK_REALTIME, &a->mtime);
    }
    free(id);
    free(dir);
    if (rc == 0 && !a->exists)
        rc = -ENOENT;
    return rc;
}

/* Can names be made or written here? The resized area is read-only (EROFS), the control
 * files are fixed (EACCES). */
static int changeable(const struct fs_path *p)
{
    if (p->area == AREA_RESIZED)
        return -EROFS;
    return p->area == AREA_CONTROL ? -EACCES : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Attributes                                                                                   */

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    struct fs *fs = fs_of_context();
    cfg->entry_timeout = fs->cfg->gateway.attr_ttl;
    cfg->attr_timeout = fs->cfg->gateway.attr_ttl;
    cfg->negative_timeout = fs->cfg->gateway.negative_ttl;
    cfg->hard_remove = 1;
    cfg->use_ino = 0;
    cfg->nullpath_ok = 0;
    conn->want |= conn->capable & FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want |= conn->capable & FUSE_CAP_READDIRPLUS;
    conn->max_write = 1 << 20;
    conn->max_readahead = 1 << 20;
    return fs;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    struct fs_attr a;
    mode_t mode = 0;
    if (rc == 0 && (rc = lookup(fs, &p, &a, &mode)) == 0)
        fill_stat(fs, &a, mode, st);
    fs_path_clear(&p);
    return rc;
}

static int fs_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    memset(st, 0, sizeof(*st));
    st->f_bsize = st->f_frsize = 4096;
    st->f_blocks = st->f_bfree = st->f_bavail = (fsblkcnt_t)1 << 40; /* 4 PiB: no quota */
    st->f_files = st->f_ffree = st->f_favail = (fsfilcnt_t)1 << 32;
    st->f_namemax = 1024;
    return 0;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    (void)path, (void)mode, (void)fi;
    return 0; /* accepted and not kept (docs/semantics.md) */
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    (void)path, (void)fi;
    struct fs *fs = fs_of_context();
    if ((uid != (uid_t)-1 && uid != fs->uid) || (gid != (gid_t)-1 && gid != fs->gid))
        return -EPERM;
    return 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    (void)fi;
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    if (rc == 0 && p.area == AREA_SOURCE && tv && tv[1].tv_nsec != UTIME_OMIT) {
        struct timespec t = tv[1];
        if (t.tv_nsec == UTIME_NOW)
            clock_gettime(CLOCK_REALTIME, &t);
        gateway_set_mtime(fs->gw, p.key, &t); /* objects already in S3 keep theirs */
        gateway_retry(fs->gw, p.key, false);  /* `touch` of a failed file: try it again */
    }
    fs_path_clear(&p);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Folders                                                                                      */

struct list_ctx {
    struct fs_listing listing;
    size_t cap;
    const char *prefix;
    const char *hide;    /* the resized folder's name at the source root, or NULL */
    struct timespec now; /* the time shown for folders (S3 keeps none) */
};

static int add_entry(struct list_ctx *l, const char *name, size_t len, const struct fs_attr *a)
{
    if (len == 0 || (l->hide && strlen(l->hide) == len && strncmp(name, l->hide, len) == 0))
        return 0;
    if (l->hide && len == strlen(CONTROL_DIR + 1) && strncmp(name, CONTROL_DIR + 1, len) == 0)
        return 0; /* the control folder wins over a real one */
    if (l->listing.count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct fs_listing_entry *e = realloc(l->listing.entries, cap * sizeof(*e));
        if (!e)
            return -1;
        l->listing.entries = e;
        l->cap = cap;
    }
    char *copy = strndup(name, len);
    if (!copy)
        return -1;
    l->listing.entries[l->listing.count++] = (struct fs_listing_entry){copy, *a};
    return 0;
}

static int on_page(void *ctx, const struct s3_list_page *page)
{
    struct list_ctx *l = ctx;
    size_t plen = strlen(l->prefix);
    for (size_t i = 0; i < page->prefix_count; i++) {
        const char *name = page->common_prefixes[i] + plen;
        struct fs_attr a = {.exists = true, .is_dir = true, .mtime = l->now};
        if (add_entry(l, name, strlen(name) - 1, &a) != 0)
            return -1;
    }
    for (size_t i = 0; i < page->object_count; i++) {
        const struct s3_list_object *o = &page->objects[i];
        const char *name = o->key + plen;
        size_t len = strlen(name);
        bool marker = len > 0 && name[len - 1] == '/';
        struct fs_attr a = {true, marker, o->size, {o->last_modified, 0}};
        if (add_entry(l, name, marker ? len - 1 : len, &a) != 0)
            return -1;
    }
    return 0;
}

/* The folder's entries in S3 (a fresh cached listing, or a new one). */
static int remote_listing(struct fs *fs, const struct fs_path *p, struct fs_listing *out)
{
    char *id = cache_id(p->bucket, p->prefix);
    if (!id)
        return -ENOMEM;
    if (fs_cache_get_listing(fs->cache, id, false, out) ||
        (s3_offline(fs) && fs_cache_get_listing(fs->cache, id, true, out))) {
        free(id);
        return 0;
    }
    struct list_ctx l = {.prefix = p->prefix};
    clock_gettime(CLOCK_REALTIME, &l.now);
    if (p->area == AREA_SOURCE && p->is_root)
        l.hide = fs->cfg->gateway.resized_dir; /* the virtual folder wins over a real one */
    struct s3_list_options opts = {.prefix = p->prefix, .delimiter = "/"};
    struct s3_error err = {0};
    if (s3_list_all(fs->s3, p->bucket, &opts, on_page, &l, &err) != 0) {
        fs_listing_clear(&l.listing);
        note_reachability(fs, &err);
        bool stale = s3_offline(fs) && fs_cache_get_listing(fs->cache, id, true, out);
        free(id);
        if (stale)
            return 0;
        log_warn("listing s3://%s/%s failed: %s", p->bucket, p->prefix, err.message);
        return errno_of(&err);
    }
    note_reachability(fs, NULL);
    fs_cache_put_listing(fs->cache, id, &l.listing); /* also sorts ours */
    free(id);
    *out = l.listing;
    return 0;
}

struct fill_ctx {
    struct fs *fs;
    void *buf;
    fuse_fill_dir_t filler;
    enum fuse_readdir_flags flags;
    struct fs_listing *remote; /* sorted: local names shadow remote ones */
};

static int compare_name(const void *key, const void *elem)
{
    return strcmp(key, ((const struct fs_listing_entry *)elem)->name);
}

static int fill_local(void *ctx, const char *name, const struct gw_info *info)
{
    struct fill_ctx *f = ctx;
    size_t len = strlen(name);
    bool is_dir = name[len - 1] == '/';
    char *plain = strndup(name, is_dir ? len - 1 : len);
    if (!plain)
        return 1;
    struct fs_listing_entry *remote =
        bsearch(plain, f->remote->entries, f->remote->count, sizeof(*remote), compare_name);
    int stop = 0;
    if (remote && !is_dir) {
        remote->attr.size = info->size; /* the local version is the one shown */
        remote->attr.mtime = info->mtime;
    } else if (!remote) {
        struct fs_attr a = {true, is_dir, is_dir ? 0 : info->size, info->mtime};
        struct stat st;
        fill_stat(f->fs, &a, is_dir ? 0 : info->mode, &st);
        stop = f->filler(f->buf, plain, &st, 0, FUSE_FILL_DIR_PLUS);
    }
    free(plain);
    return stop;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)offset, (void)fi;
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    struct fs_listing listing = {0};
    if (rc == 0 && p.area == AREA_CONTROL) {
        filler(buf, ".", NULL, 0, 0);
        filler(buf, "..", NULL, 0, 0);
        control_list(buf, filler);
        fs_path_clear(&p);
        return 0;
    }
    if (rc == 0)
        rc = remote_listing(fs, &p, &listing);
    if (rc != 0) {
        fs_path_clear(&p);
        return rc;
    }
    filler(buf, ".", NULL, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    struct fill_ctx f = {fs, buf, filler, flags, &listing};
    if (p.area == AREA_SOURCE && fs->gw)
        gateway_list_local(fs->gw, p.prefix, fill_local, &f);
    if (p.area == AREA_SOURCE && p.is_root) {
        struct fs_attr a = {.exists = true, .is_dir = true};
        struct stat st;
        clock_gettime(CLOCK_REALTIME, &a.mtime);
        fill_stat(fs, &a, 0, &st);
        filler(buf, fs->cfg->gateway.resized_dir, &st, 0, FUSE_FILL_DIR_PLUS);
        filler(buf, CONTROL_DIR + 1, &st, 0, FUSE_FILL_DIR_PLUS);
    }
    for (size_t i = 0; i < listing.count; i++) {
        struct stat st;
        fill_stat(fs, &listing.entries[i].attr, 0, &st);
        if (filler(buf, listing.entries[i].name, &st, 0, FUSE_FILL_DIR_PLUS))
            break;
    }
    fs_listing_clear(&listing);
    fs_path_clear(&p);
    return 0;
}

static int fs_mkdir(const char *path, mode_t mode)
{
    (void)mode;
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    if (rc == 0)
        rc = changeable(&p);
    if (rc == 0) {
        struct s3_put_options put = {.content_type = "application/x-directory",
                                     .sse = conf_sse_name(fs->cfg->s3.sse)};
        struct s3_body body = s3_body_mem("", 0);
        struct s3_error err = {0};
        if (s3_put_object(fs->s3, p.bucket, p.prefix, &body, &put, NULL, &err) != 0) {
            log_warn("mkdir %s: %s", path, err.message);
            rc = errno_of(&err);
            fs_cache_forget(fs->cache, p.bucket, p.key);
        } else {
            struct fs_attr a = {.exists = true, .is_dir = true};
            clock_gettime(CLOCK_REALTIME, &a.mtime);
            fs_cache_note(fs->cache, p.bucket, p.prefix, &a);
            char *id = cache_id(p.bucket, p.prefix);
            if (id)
                fs_cache_seed_empty(fs->cache, id); /* new: nothing in it to ask S3 about */
            free(id);
        }
    }
    fs_path_clear(&p);
    return rc;
}

/* Is the folder empty (but for its marker)? 0 yes, -ENOTEMPTY, or -errno. */
static int folder_empty(struct fs *fs, const struct fs_path *p)
{
    if (p->area == AREA_SOURCE && fs->gw && gateway_has_local_under(fs->gw, p->prefix))
        return -ENOTEMPTY;
    struct s3_list_options opts = {.prefix = p->prefix, .delimiter = "/", .max_keys = 2};
    struct s3_list_page page = {0};
    struct s3_error err = {0};
    if (s3_list_page(fs->s3, p->bucket, &opts, &page, &err) != 0)
        return errno_of(&err);
    bool other = page.prefix_count > 0;
    for (size_t i = 0; i < page.object_count; i++)
        other |= strcmp(page.objects[i].key, p->prefix) != 0;
    s3_list_page_clear(&page);
    return other ? -ENOTEMPTY : 0;
}

static int fs_rmdir(const char *path)
{
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    if (rc == 0 && p.is_root)
        rc = p.area == AREA_CONTROL ? -EACCES : -EBUSY;
    if (rc == 0 && p.area == AREA_CONTROL)
        rc = -ENOTDIR;
    if (rc == 0 && (rc = folder_empty(fs, &p)) == 0) {
        struct s3_error err = {0};
        if (s3_delete_object(fs->s3, p.bucket, p.prefix, &err) != 0)
            rc = errno_of(&err);
        fs_cache_note(fs->cache, p.bucket, p.prefix, NULL);
        char *id = cache_id(p.bucket, p.prefix);
        if (id)
            fs_cache_forget_listing(fs->cache, id);
        free(id);
    }
    fs_path_clear(&p);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                        */

enum handle_kind { HANDLE_SPOOL, HANDLE_REMOTE, HANDLE_CONTROL };

struct handle {
    enum handle_kind kind;
    struct gw_file *file;         /* HANDLE_SPOOL */
    struct fs_reader *reader;     /* HANDLE_REMOTE */
    struct control_file *control; /* HANDLE_CONTROL */
    bool writer;
    bool uploaded_at_flush; /* sync_upload: this version went up at a close(); a later write
                               starts a new one */
    char *key;
};

static struct handle *handle_of(struct fuse_file_info *fi)
{
    return (struct handle *)(uintptr_t)fi->fh;
}

static int open_writer(struct fs *fs, const struct fs_path *p, bool truncate, mode_t mode,
                       struct fuse_file_info *fi)
{
    struct handle *h = calloc(1, sizeof(*h));
    if (!h || !(h->key = strdup(p->key))) {
        free(h);
        return -ENOMEM;
    }
    struct s3_error err = {0};
    int rc = gateway_open_write(fs->gw, p->key, truncate, mode, &h->file, &err);
    if (rc != 0) {
        log_key_warn(p->key, NULL, "open for writing: %s", err.message);
        free(h->key);
        free(h);
        return rc == -EIO ? errno_of(&err) : rc;
    }
    h->kind = HANDLE_SPOOL;
    h->writer = true;
    fi->fh = (uint64_t)(uintptr_t)h;
    return 0; /* the spool answers for the key from now on: no cache to update */
}

/* The kernel creates after a lookup answered "no such file". That answer may have been a guess
 * (S3 unreachable, see lookup): an open that keeps existing bytes (no O_TRUNC, no O_EXCL) then
 * starts from the object if S3 has one, and fails with EIO while S3 cannot tell. */
static bool create_truncates(struct fs *fs, const struct fs_path *p, int flags)
{
    if (flags & (O_TRUNC | O_EXCL))
        return true;
    char *id = cache_id(p->bucket, p->key);
    char *dir = folder_id(p->bucket, p->key);
    struct fs_attr a;
    bool known_absent =
        id && dir &&
        ((fs_cache_get_attr(fs->cache, id, false, &a) && !a.exists) ||
         fs_cache_lookup_in_listing(fs->cache, dir, base_name(p->key), false, &a) == 0);
    free(id);
    free(dir);
    return known_absent;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    if (rc == 0)
        rc = changeable(&p);
    if (rc == 0 && gateway_spool_full(fs->gw))
        rc = -ENOSPC;
    if (rc == 0)
        rc = open_writer(fs, &p, create_truncates(fs, &p, fi->flags), mode, fi);
    fs_path_clear(&p);
    return rc;
}

static int open_control(struct fs *fs, const struct fs_path *p, bool write,
                        struct fuse_file_info *fi)
{
    struct handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    int rc = control_open(fs, p, write, &h->control);
    if (rc != 0) {
        free(h);
        return rc;
    }
    h->kind = HANDLE_CONTROL;
    fi->direct_io = 1; /* a new snapshot at each open, never the page cache's */
    fi->fh = (uint64_t)(uintptr_t)h;
    return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    if (rc != 0)
        return rc;
    bool write = (fi->flags & O_ACCMODE) != O_RDONLY;
    if (p.area == AREA_CONTROL) {
        rc = open_control(fs, &p, write, fi);
    } else if (write && p.area == AREA_RESIZED) {
        rc = -EROFS;
    } else if (write) {
        rc = open_writer(fs, &p, (fi->flags & O_TRUNC) != 0, 0644, fi);
    } else {
        struct handle *h = calloc(1, sizeof(*h));
        struct fs_attr a;
        mode_t mode;
        if (!h || !(h->key = strdup(p.key)))
            rc = -ENOMEM;
        else if (p.area == AREA_SOURCE && (h->file = gateway_open_read(fs->gw, p.key)))
            h->kind = HANDLE_SPOOL;
        else if ((rc = lookup(fs, &p, &a, &mode)) == 0) {
            h->kind = HANDLE_REMOTE;
            h->reader = fs_reader_new(fs->s3, p.bucket, p.key, a.size,
                                      (size_t)fs->cfg->gateway.read_ahead_kb << 10);
            if (!h->reader)
                rc = -ENOMEM;
        }
        if (rc == 0)
            fi->fh = (uint64_t)(uintptr_t)h;
        else if (h)
            free(h->key), free(h);
    }
    fs_path_clear(&p);
    return rc;
}

static int fs_read(const char *path, char *buf, size_t size, off_t offset,
                   struct fuse_file_info *fi)
{
    (void)path;
    struct handle *h = handle_of(fi);
    if (h->kind == HANDLE_REMOTE)
        return fs_reader_read(h->reader, buf, size, (uint64_t)offset);
    if (h->kind == HANDLE_CONTROL)
        return control_read(h->control, buf, size, offset);
    ssize_t n = pread(gateway_file_fd(h->file), buf, size, offset);
    return n < 0 ? -errno : (int)n;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t offset,
                    struct fuse_file_info *fi)
{
    (void)path;
    struct fs *fs = fs_of_context();
    struct handle *h = handle_of(fi);
    if (h->kind == HANDLE_CONTROL)
        return control_write(h->control, buf, size, offset);
    if (!h->writer)
        return -EBADF;
    if (gateway_spool_full(fs->gw)) {
        gateway_file_write_failed(fs->gw, h->file, ENOSPC);
        return -ENOSPC; /* [gateway] cache_max_mb: refused rather than blocked (semantics.md) */
    }
    if (h->uploaded_at_flush) { /* written again through a duplicate after a close() */
        struct gw_file *again = NULL;
        struct s3_error err = {0};
        int rc = gateway_open_write(fs->gw, h->key, false, 0644, &again, &err);
        if (rc != 0)
            return rc;
        gateway_file_put(fs->gw, h->file);
        h->file = again;
        h->uploaded_at_flush = false;
    }
    ssize_t n = pwrite(gateway_file_fd(h->file), buf, size, offset);
    if (n < 0) {
        int err = errno;
        gateway_file_write_failed(fs->gw, h->file, err);
        return -err;
    }
    gateway_file_wrote(fs->gw, h->file, (uint64_t)offset, (uint64_t)n);
    return (int)n;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of_context();
    struct handle *h = fi ? handle_of(fi) : NULL;
    if (h && h->writer) {
        if (ftruncate(gateway_file_fd(h->file), size) != 0)
            return -errno;
        gateway_file_wrote(fs->gw, h->file, (uint64_t)size, 0);
        return 0;
    }
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    if (rc == 0)
        rc = changeable(&p);
    struct gw_file *f = NULL;
    struct s3_error err = {0};
    if (rc == 0 && (rc = gateway_open_write(fs->gw, p.key, size == 0, 0644, &f, &err)) == 0) {
        if (ftruncate(gateway_file_fd(f), size) != 0)
            rc = -errno;
        gateway_file_wrote(fs->gw, f, (uint64_t)size, 0);
        gateway_file_put(fs->gw, f);
    }
    if (rc == 0)
        fs_cache_forget(fs->cache, p.bucket, p.key);
    fs_path_clear(&p);
    return rc;
}

/* Each close(): the gateway records the version as it is (it survives a crash before the
 * release that follows); with [gateway] sync_upload, the last writer's close waits for the
 * upload and reports a failure as EIO. */
static int fs_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    struct fs *fs = fs_of_context();
    struct handle *h = handle_of(fi);
    if (h->kind == HANDLE_CONTROL)
        return control_flush(fs, h->control);
    if (h->kind == HANDLE_SPOOL && h->writer && !fs->cfg->gateway.sync_upload)
        gateway_file_flushed(fs->gw, h->file);
    if (!fs->cfg->gateway.sync_upload || !h->writer || h->kind != HANDLE_SPOOL)
        return 0;
    struct s3_error err = {0};
    int rc = gateway_file_upload_now(fs->gw, h->file, &err);
    h->uploaded_at_flush = true;
    if (rc != 0)
        log_error("close: %s", err.message);
    return rc;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path, (void)datasync;
    struct handle *h = handle_of(fi);
    return h->kind == HANDLE_SPOOL ? gateway_file_sync(h->file) : 0;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    struct fs *fs = fs_of_context();
    struct handle *h = handle_of(fi);
    int rc = 0;
    if (h->kind == HANDLE_SPOOL)
        rc = gateway_file_put(fs->gw, h->file);
    else if (h->kind == HANDLE_CONTROL)
        control_close(h->control);
    else
        fs_reader_free(h->reader);
    free(h->key);
    free(h);
    return rc;
}

static int fs_unlink(const char *path)
{
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    if (rc == 0 && p.area == AREA_CONTROL)
        rc = p.is_root ? -EISDIR : -EACCES;
    if (rc != 0) {
        fs_path_clear(&p);
        return rc;
    }
    if (p.area == AREA_SOURCE)
        gateway_unlink_local(fs->gw, p.key);
    struct s3_error err = {0};
    if (s3_delete_object(fs->s3, p.bucket, p.key, &err) != 0) {
        log_warn("rm %s: %s", path, err.message);
        rc = errno_of(&err);
    } else if (p.area == AREA_SOURCE) {
        gateway_delete_renditions(fs->gw, p.key);
    }
    fs_cache_note(fs->cache, p.bucket, p.key, NULL);
    fs_path_clear(&p);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Rename                                                                                       */

static int rename_remote_object(struct fs *fs, const char *bucket, const char *from, const char *to)
{
    struct s3_error err = {0};
    struct s3_copy_options copy = {0};
    if (s3_copy(fs->s3, bucket, from, bucket, to, &copy, NULL, &err) != 0 ||
        s3_delete_object(fs->s3, bucket, from, &err) != 0) {
        log_key_warn(from, NULL, "mv to %s: %s", to, err.message);
        return errno_of(&err);
    }
    return 0;
}

struct rename_ctx {
    struct fs *fs;
    const char *from_prefix, *to_prefix;
    int rc;
};

static int rename_page(void *ctx, const struct s3_list_page *page)
{
    struct rename_ctx *r = ctx;
    size_t flen = strlen(r->from_prefix);
    for (size_t i = 0; i < page->object_count && r->rc == 0; i++) {
        const char *key = page->objects[i].key;
        char *to = NULL;
        if (asprintf(&to, "%s%s", r->to_prefix, key + flen) < 0)
            return r->rc = -ENOMEM;
        r->rc = rename_remote_object(r->fs, r->fs->cfg->s3.source_bucket, key, to);
        if (r->rc == 0 && to[strlen(to) - 1] != '/') {
            gateway_rename_renditions(r->fs->gw, key, to);
            gateway_renamed(r->fs->gw, key, to);
        }
        fs_cache_forget(r->fs->cache, r->fs->cfg->s3.source_bucket, key);
        free(to);
    }
    return r->rc;
}

struct local_rename {
    char **names;
    size_t count, cap;
};

static int collect_local(void *ctx, const char *name, const struct gw_info *info)
{
    (void)info;
    struct local_rename *l = ctx;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **n = realloc(l->names, cap * sizeof(*n));
        if (!n)
            return 1;
        l->names = n;
        l->cap = cap;
    }
    l->names[l->count] = strdup(name);
    if (l->names[l->count])
        l->count++;
    return 0;
}

/* Local files directly in the folder, then deeper ones, folder by folder. */
static void rename_local_tree(struct fs *fs, const char *from_prefix, const char *to_prefix)
{
    struct local_rename l = {0};
    gateway_list_local(fs->gw, from_prefix, collect_local, &l);
    for (size_t i = 0; i < l.count; i++) {
        char *from = NULL, *to = NULL;
        if (asprintf(&from, "%s%s", from_prefix, l.names[i]) >= 0 &&
            asprintf(&to, "%s%s", to_prefix, l.names[i]) >= 0) {
            if (from[strlen(from) - 1] == '/')
                rename_local_tree(fs, from, to);
            else
                gateway_rename_local(fs->gw, from, to);
        }
        free(from);
        free(to);
        free(l.names[i]);
    }
    free(l.names);
}

static int rename_folder(struct fs *fs, const struct fs_path *from, const struct fs_path *to)
{
    if (strncmp(to->prefix, from->prefix, strlen(from->prefix)) == 0)
        return -EINVAL; /* into itself */
    rename_local_tree(fs, from->prefix, to->prefix);
    struct rename_ctx r = {fs, from->prefix, to->prefix, 0};
    struct s3_list_options opts = {.prefix = from->prefix};
    struct s3_error err = {0};
    if (s3_list_all(fs->s3, from->bucket, &opts, rename_page, &r, &err) != 0)
        return errno_of(&err);
    return r.rc;
}

static int fs_rename(const char *from_path, const char *to_path, unsigned int flags)
{
    struct fs *fs = fs_of_context();
    if (flags & RENAME_EXCHANGE)
        return -EINVAL;
    struct fs_path from, to;
    int rc = fs_path_parse(fs->cfg, from_path, &from);
    if (rc != 0)
        return rc;
    if ((rc = fs_path_parse(fs->cfg, to_path, &to)) != 0) {
        fs_path_clear(&from);
        return rc;
    }
    struct fs_attr a, b;
    mode_t mode;
    if (from.area == AREA_CONTROL || to.area == AREA_CONTROL)
        rc = -EACCES;
    else if (from.area == AREA_RESIZED || to.area == AREA_RESIZED || from.is_root)
        rc = -EROFS;
    else if ((rc = lookup(fs, &from, &a, &mode)) == 0) {
        int exists = lookup(fs, &to, &b, &mode);
        if (exists == 0 && (flags & RENAME_NOREPLACE))
            rc = -EEXIST;
        else if (exists == 0 && b.is_dir && !a.is_dir)
            rc = -EISDIR;
        else if (exists == 0 && !b.is_dir && a.is_dir)
            rc = -ENOTDIR;
        else if (exists == 0 && b.is_dir && (rc = folder_empty(fs, &to)) != 0)
            ;
        else if (a.is_dir)
            rc = rename_folder(fs, &from, &to);
        else if (gateway_rename_local(fs->gw, from.key, to.key) == 0)
            rc = 0;
        else {
            gateway_unlink_local(fs->gw, to.key);
            rc = rename_remote_object(fs, from.bucket, from.key, to.key);
            if (rc == 0) {
                gateway_rename_renditions(fs->gw, from.key, to.key);
                gateway_renamed(fs->gw, from.key, to.key);
            }
        }
    }
    fs_cache_forget(fs->cache, from.bucket, from.key);
    fs_cache_forget(fs->cache, to.bucket, to.key);
    fs_cache_forget(fs->cache, from.bucket, from.prefix);
    fs_cache_forget(fs->cache, to.bucket, to.prefix);
    fs_path_clear(&from);
    fs_path_clear(&to);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Extended attributes, links                                                                   */

static int reply_xattr(const char *value, char *out, size_t size)
{
    size_t len = strlen(value);
    if (size == 0)
        return (int)len;
    if (size < len)
        return -ERANGE;
    memcpy(out, value, len);
    return (int)len;
}

static int fs_getxattr(const char *path, const char *name, char *value, size_t size)
{
    struct fs *fs = fs_of_context();
    if (strcmp(name, XATTR_STATUS) != 0 && strcmp(name, XATTR_RENDITIONS) != 0)
        return -ENODATA;
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    struct fs_attr a;
    mode_t mode;
    if (rc == 0 && (p.area != AREA_SOURCE || p.is_root))
        rc = -ENODATA;
    if (rc == 0 && (rc = lookup(fs, &p, &a, &mode)) == 0 && a.is_dir)
        rc = -ENODATA;
    if (rc == 0 && strcmp(name, XATTR_STATUS) == 0) {
        char status[1200];
        if (!gateway_status(fs->gw, p.key, status, sizeof(status)))
            snprintf(status, sizeof(status), "uploaded");
        rc = reply_xattr(status, value, size);
    } else if (rc == 0) {
        char *keys = gateway_rendition_keys(fs->gw, p.key);
        rc = reply_xattr(keys ? keys : "", value, size);
        free(keys);
    }
    fs_path_clear(&p);
    return rc;
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
    struct fs *fs = fs_of_context();
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    bool source_file = rc == 0 && p.area == AREA_SOURCE && !p.is_root;
    fs_path_clear(&p);
    if (rc != 0)
        return rc;
    if (!source_file)
        return 0;
    /* each name ends with a NUL; the literal's own final NUL is not part of the list (the
     * kernel refuses an empty name with EIO) */
    static const char names[] = XATTR_STATUS "\0" XATTR_RENDITIONS "\0";
    size_t len = sizeof(names) - 1;
    if (size == 0)
        return (int)len;
    if (size < len)
        return -ERANGE;
    memcpy(list, names, len);
    return (int)len;
}

static int fs_setxattr(const char *path, const char *name, const char *value, size_t size,
                       int flags)
{
    (void)path, (void)name, (void)value, (void)size, (void)flags;
    return -ENOTSUP;
}

static int fs_removexattr(const char *path, const char *name)
{
    (void)path, (void)name;
    return -ENOTSUP;
}

static int fs_symlink(const char *target, const char *path)
{
    (void)target, (void)path;
    return -ENOTSUP;
}

static int fs_link(const char *from, const char *to)
{
    (void)from, (void)to;
    return -ENOTSUP;
}

static const struct fuse_operations operations = {
    .init = fs_init,
    .getattr = fs_getattr,
    .statfs = fs_statfs,
    .chmod = fs_chmod,
    .chown = fs_chown,
    .utimens = fs_utimens,
    .readdir = fs_readdir,
    .mkdir = fs_mkdir,
    .rmdir = fs_rmdir,
    .create = fs_create,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .truncate = fs_truncate,
    .flush = fs_flush,
    .fsync = fs_fsync,
    .release = fs_release,
    .unlink = fs_unlink,
    .rename = fs_rename,
    .getxattr = fs_getxattr,
    .listxattr = fs_listxattr,
    .setxattr = fs_setxattr,
    .removexattr = fs_removexattr,
    .symlink = fs_symlink,
    .link = fs_link,
};

const struct fuse_operations *fs_operations(void)
{
    return &operations;
}
