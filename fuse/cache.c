/* cache: what the file system learned from S3, kept for a TTL: attributes (and "does not
 * exist"), and whole folder listings (so that `ls -l` of 10,000 names is one listing, not
 * 10,000 HEADs). Bounded: at most MAX_ATTRS attributes and MAX_LISTINGS listings. */
#include "fs_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ATTRS    200000
#define MAX_LISTINGS 64

struct attr_slot {
    char *id;
    struct fs_attr attr;
    double expires;
    struct attr_slot *next;
};

struct listing_slot {
    char *id;
    struct fs_listing listing;
    double expires;
};

struct fs_cache {
    pthread_mutex_t lock;
    unsigned attr_ttl, list_ttl, negative_ttl;
    struct attr_slot **attrs;
    size_t attr_buckets, attr_count;
    struct listing_slot listings[MAX_LISTINGS];
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t hash_id(const char *id, size_t buckets)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h % buckets);
}

struct fs_cache *fs_cache_new(unsigned attr_ttl, unsigned list_ttl, unsigned negative_ttl)
{
    struct fs_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->attr_buckets = 65536;
    c->attrs = calloc(c->attr_buckets, sizeof(*c->attrs));
    if (!c->attrs) {
        free(c);
        return NULL;
    }
    c->attr_ttl = attr_ttl;
    c->list_ttl = list_ttl;
    c->negative_ttl = negative_ttl;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void fs_listing_clear(struct fs_listing *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->entries[i].name);
    free(l->entries);
    l->entries = NULL;
    l->count = 0;
}

static void clear_attrs(struct fs_cache *c, bool only_expired)
{
    double now = now_s();
    for (size_t i = 0; i < c->attr_buckets; i++)
        for (struct attr_slot **p = &c->attrs[i]; *p;) {
            struct attr_slot *s = *p;
            if (only_expired && s->expires > now) {
                p = &s->next;
                continue;
            }
            *p = s->next;
            free(s->id);
            free(s);
            c->attr_count--;
        }
}

void fs_cache_free(struct fs_cache *c)
{
    if (!c)
        return;
    clear_attrs(c, false);
    free(c->attrs);
    for (size_t i = 0; i < MAX_LISTINGS; i++) {
        free(c->listings[i].id);
        fs_listing_clear(&c->listings[i].listing);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static struct attr_slot *find_attr(struct fs_cache *c, const char *id)
{
    for (struct attr_slot *s = c->attrs[hash_id(id, c->attr_buckets)]; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

/* Expired entries are kept (for stale_ok readers: S3 unreachable) until evicted; a forgotten
 * one (expires 0) is never used again. */
static bool usable(double expires, bool stale_ok)
{
    return expires > now_s() || (stale_ok && expires != 0);
}

bool fs_cache_get_attr(struct fs_cache *c, const char *id, bool stale_ok, struct fs_attr *out)
{
    pthread_mutex_lock(&c->lock);
    struct attr_slot *s = find_attr(c, id);
    bool hit = s && usable(s->expires, stale_ok);
    if (hit)
        *out = s->attr;
    pthread_mutex_unlock(&c->lock);
    return hit;
}

static void put_attr_locked(struct fs_cache *c, const char *id, const struct fs_attr *attr,
                            double now)
{
    unsigned ttl = attr->exists ? c->attr_ttl : c->negative_ttl;
    if (ttl == 0)
        return;
    struct attr_slot *s = find_attr(c, id);
    if (!s) {
        if (c->attr_count >= MAX_ATTRS)
            clear_attrs(c, true);
        if (c->attr_count >= MAX_ATTRS)
            clear_attrs(c, false);
        s = calloc(1, sizeof(*s));
        if (!s || !(s->id = strdup(id))) {
            free(s);
            return;
        }
        size_t h = hash_id(id, c->attr_buckets);
        s->next = c->attrs[h];
        c->attrs[h] = s;
        c->attr_count++;
    }
    s->attr = *attr;
    s->expires = now + ttl;
}

void fs_cache_put_attr(struct fs_cache *c, const char *id, const struct fs_attr *attr)
{
    pthread_mutex_lock(&c->lock);
    put_attr_locked(c, id, attr, now_s());
    pthread_mutex_unlock(&c->lock);
}

static struct listing_slot *find_listing(struct fs_cache *c, const char *id, bool stale_ok)
{
    for (size_t i = 0; i < MAX_LISTINGS; i++)
        if (c->listings[i].id && strcmp(c->listings[i].id, id) == 0)
            return usable(c->listings[i].expires, stale_ok) ? &c->listings[i] : NULL;
    return NULL;
}

static int copy_listing(const struct fs_listing *from, struct fs_listing *to)
{
    to->count = 0;
    to->entries = malloc((from->count ? from->count : 1) * sizeof(*to->entries));
    if (!to->entries)
        return -1;
    for (size_t i = 0; i < from->count; i++) {
        to->entries[i] = from->entries[i];
        if (!(to->entries[i].name = strdup(from->entries[i].name))) {
            fs_listing_clear(to);
            return -1;
        }
        to->count++;
    }
    return 0;
}

bool fs_cache_get_listing(struct fs_cache *c, const char *id, bool stale_ok, struct fs_listing *out)
{
    pthread_mutex_lock(&c->lock);
    struct listing_slot *s = find_listing(c, id, stale_ok);
    bool hit = s && copy_listing(&s->listing, out) == 0;
    pthread_mutex_unlock(&c->lock);
    return hit;
}

static int compare_entry_name(const void *key, const void *elem)
{
    return strcmp(key, ((const struct fs_listing_entry *)elem)->name);
}

int fs_cache_lookup_in_listing(struct fs_cache *c, const char *dir_id, const char *name,
                               bool stale_ok, struct fs_attr *attr)
{
    pthread_mutex_lock(&c->lock);
    struct listing_slot *s = find_listing(c, dir_id, stale_ok);
    int rc = -1;
    if (s) {
        const struct fs_listing_entry *e =
            bsearch(name, s->listing.entries, s->listing.count, sizeof(*e), compare_entry_name);
        rc = e != NULL;
        if (e)
            *attr = e->attr;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const struct fs_listing_entry *)a)->name,
                  ((const struct fs_listing_entry *)b)->name);
}

void fs_cache_put_listing(struct fs_cache *c, const char *id, struct fs_listing *listing)
{
    if (listing->count) /* an empty listing may have no array (qsort wants one) */
        qsort(listing->entries, listing->count, sizeof(*listing->entries), compare_entries);
    struct fs_listing copy;
    if (c->list_ttl == 0 || copy_listing(listing, &copy) != 0)
        return;
    pthread_mutex_lock(&c->lock);
    double now = now_s();
    struct listing_slot *slot = NULL;
    for (size_t i = 0; i < MAX_LISTINGS && !slot; i++)
        if (c->listings[i].id && strcmp(c->listings[i].id, id) == 0)
            slot = &c->listings[i];
    for (size_t i = 0; i < MAX_LISTINGS && !slot; i++)
        if (!c->listings[i].id)
            slot = &c->listings[i];
    if (!slot) { /* the one that expires first goes */
        slot = &c->listings[0];
        for (size_t i = 1; i < MAX_LISTINGS; i++)
            if (c->listings[i].expires < slot->expires)
                slot = &c->listings[i];
    }
    free(slot->id);
    fs_listing_clear(&slot->listing);
    slot->id = strdup(id);
    slot->listing = copy;
    slot->expires = slot->id ? now + c->list_ttl : 0;
    pthread_mutex_unlock(&c->lock);
}

void fs_cache_forget_listing(struct fs_cache *c, const char *id)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < MAX_LISTINGS; i++)
        if (c->listings[i].id && strcmp(c->listings[i].id, id) == 0)
            c->listings[i].expires = 0;
    pthread_mutex_unlock(&c->lock);
}

void fs_cache_forget(struct fs_cache *c, const char *bucket, const char *key)
{
    size_t blen = strlen(bucket), klen = strlen(key);
    char *id = malloc(blen + klen + 2);
    if (!id)
        return;
    memcpy(id, bucket, blen);
    id[blen] = '\n';
    memcpy(id + blen + 1, key, klen + 1);
    pthread_mutex_lock(&c->lock);
    struct attr_slot *s = find_attr(c, id);
    if (s)
        s->expires = 0;
    /* the listings of its folder and of every folder above (a new key can make a folder
     * appear in its parent) */
    char *rel = id + blen + 1;
    for (;;) {
        char *slash = strrchr(rel, '/');
        if (slash && slash[1] == '\0') { /* already a folder: go one up */
            *slash = '\0';
            slash = strrchr(rel, '/');
        }
        if (slash)
            slash[1] = '\0';
        else
            rel[0] = '\0';
        for (size_t i = 0; i < MAX_LISTINGS; i++)
            if (c->listings[i].id && strcmp(c->listings[i].id, id) == 0)
                c->listings[i].expires = 0;
        if (!rel[0])
            break;
    }
    pthread_mutex_unlock(&c->lock);
    free(id);
}

/* With the lock held: the kept listing of folder `id` (fresh or stale), or NULL. */
static struct fs_listing *kept_listing(struct fs_cache *c, const char *id)
{
    struct listing_slot *s = find_listing(c, id, true);
    return s ? &s->listing : NULL;
}

/* Inserts or updates (attr) or removes (attr NULL) `name` in a listing, keeping it sorted. */
static void listing_set(struct fs_listing *l, const char *name, const struct fs_attr *attr)
{
    size_t lo = 0, hi = l->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(name, l->entries[mid].name);
        if (cmp == 0) {
            if (attr) {
                l->entries[mid].attr = *attr;
            } else {
                free(l->entries[mid].name);
                memmove(&l->entries[mid], &l->entries[mid + 1],
                        (l->count - mid - 1) * sizeof(*l->entries));
                l->count--;
            }
            return;
        }
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (!attr)
        return;
    struct fs_listing_entry *e = realloc(l->entries, (l->count + 1) * sizeof(*e));
    char *copy = strdup(name);
    if (!e || !copy) {
        if (e)
            l->entries = e;
        free(copy);
        return;
    }
    l->entries = e;
    memmove(&e[lo + 1], &e[lo], (l->count - lo) * sizeof(*e));
    e[lo] = (struct fs_listing_entry){copy, *attr};
    l->count++;
}

static char *folder_id_of(const char *bucket, const char *rel, size_t len)
{
    char *id = NULL;
    return asprintf(&id, "%s\n%.*s", bucket, (int)len, rel) < 0 ? NULL : id;
}

static void forget_listing_locked(struct fs_cache *c, const char *id)
{
    for (size_t i = 0; i < MAX_LISTINGS; i++)
        if (c->listings[i].id && strcmp(c->listings[i].id, id) == 0)
            c->listings[i].expires = 0;
}

void fs_cache_note(struct fs_cache *c, const char *bucket, const char *key,
                   const struct fs_attr *attr)
{
    char *rel = strdup(key);
    if (!rel)
        return;
    size_t end = strlen(rel);
    bool marker = end > 0 && rel[end - 1] == '/';
    if (marker)
        rel[--end] = '\0';
    struct fs_attr gone = {0};
    struct fs_attr entry = attr ? *attr : gone;
    entry.is_dir |= marker;
    char *id = folder_id_of(bucket, rel, end);
    pthread_mutex_lock(&c->lock);
    if (id)
        put_attr_locked(c, id, attr ? &entry : &gone, now_s());
    free(id);
    /* The name in its folder's listing; a new name also makes its folders appear in the
     * listings above; a removed one may empty folders above it (S3 then has no such folder):
     * those listings are asked again. */
    for (bool first = true;; first = false) {
        size_t cut = end;
        while (cut > 0 && rel[cut - 1] != '/')
            cut--;
        char *dir = folder_id_of(bucket, rel, cut);
        char *name = strndup(rel + cut, end - cut);
        struct fs_listing *l = dir ? kept_listing(c, dir) : NULL;
        if (l && name && (attr || first))
            listing_set(l, name, attr ? &entry : NULL);
        else if (dir && !attr)
            forget_listing_locked(c, dir);
        free(dir);
        free(name);
        if (cut == 0)
            break;
        end = cut - 1;
        entry = (struct fs_attr){.exists = true, .is_dir = true, .mtime = entry.mtime};
    }
    pthread_mutex_unlock(&c->lock);
    free(rel);
}

void fs_cache_seed_empty(struct fs_cache *c, const char *id)
{
    struct fs_listing empty = {0};
    fs_cache_put_listing(c, id, &empty);
}
