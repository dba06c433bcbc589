/* schedule: largest first, within the decode memory budget (see schedule.h). */
#include "schedule.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD_BYTES (64u << 10) /* a JPEG's EXIF block is at most 64 KiB; most headers far less */

struct item {
    size_t index;
    uint64_t pixels;       /* the work it is, roughly; 0 when unknown */
    uint64_t decode_bytes; /* memory its decode holds; 0 when unknown */
    bool taken;
};

struct schedule {
    pthread_mutex_t lock;
    struct item *items; /* largest first */
    size_t count;
    size_t first_open; /* items before it are all taken */
    uint64_t running;  /* decode_bytes of the inputs taken and not done */
    uint64_t budget;
    uint64_t *need_of; /* by input index: what schedule_done gives back */
};

/* What the header says; zeros when it says nothing. */
static void judge(const char *path, const struct resize_options *opts, struct item *it,
                  unsigned char *head)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? pread(fd, head, HEAD_BYTES, 0) : -1;
    close(fd);
    if (n <= 0)
        return;
    struct resize_source_info info;
    struct resize_error err;
    if (resize_probe(head, (size_t)n, (uint64_t)st.st_size, opts, &info, &err) != RESIZE_OK)
        return;
    it->pixels = (uint64_t)info.width * (uint64_t)info.height;
    it->decode_bytes = info.decode_bytes;
}

static int larger_first(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->pixels != y->pixels)
        return x->pixels > y->pixels ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* then in the order given */
}

struct schedule *schedule_new(const char *const *paths, size_t count,
                              const struct resize_options *opts)
{
    struct schedule *s = calloc(1, sizeof(*s));
    unsigned char *head = malloc(HEAD_BYTES);
    if (!s || !head || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        free(head);
        return NULL;
    }
    s->items = calloc(count ? count : 1, sizeof(*s->items));
    s->need_of = calloc(count ? count : 1, sizeof(*s->need_of));
    if (!s->items || !s->need_of) {
        free(head);
        schedule_free(s);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        s->items[i].index = i;
        judge(paths[i], opts, &s->items[i], head);
    }
    free(head);
    qsort(s->items, count, sizeof(*s->items), larger_first);
    s->count = count;
    s->budget = resize_decode_budget();
    return s;
}

void schedule_free(struct schedule *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->items);
    free(s->need_of);
    free(s);
}

/* The largest open item whose decode fits beside those running; when none does, the largest
 * (it will wait for the budget whatever is chosen). */
static struct item *choose(struct schedule *s)
{
    struct item *first = NULL;
    for (size_t i = s->first_open; i < s->count; i++) {
        struct item *it = &s->items[i];
        if (it->taken)
            continue;
        if (!first)
            first = it;
        if (s->running == 0 || s->running + it->decode_bytes <= s->budget)
            return it;
    }
    return first;
}

size_t schedule_take(struct schedule *s)
{
    pthread_mutex_lock(&s->lock);
    struct item *it = choose(s);
    size_t index = SIZE_MAX;
    if (it) {
        it->taken = true;
        s->running += it->decode_bytes;
        s->need_of[it->index] = it->decode_bytes;
        index = it->index;
        while (s->first_open < s->count && s->items[s->first_open].taken)
            s->first_open++;
    }
    pthread_mutex_unlock(&s->lock);
    return index;
}

void schedule_done(struct schedule *s, size_t index)
{
    pthread_mutex_lock(&s->lock);
    s->running -= s->need_of[index];
    s->need_of[index] = 0;
    pthread_mutex_unlock(&s->lock);
}
