/* schedule: the order in which s3imgfs-resize's workers take their inputs when several run at
 * once. The largest pictures go first, so that a batch does not end with one big file decoding
 * while the other workers have nothing left; and a worker takes a smaller input rather than one
 * whose decode would wait for the engine's memory budget (resize_decode_budget) while the
 * decodes already running hold it. Both come from each input's header (resize_probe), read
 * before the work starts.
 *
 * Thread-safe: any number of workers call schedule_take and schedule_done.
 */
#ifndef S3IMGFS_TOOLS_SCHEDULE_H
#define S3IMGFS_TOOLS_SCHEDULE_H

#include "resize.h"

#include <stddef.h>

struct schedule;

/* Reads the header of each of the `count` files (the first 64 KiB; a file that cannot be read
 * or judged is scheduled as a small one: its worker reports it). `opts` as for resize_fd.
 * NULL when out of memory. */
struct schedule *schedule_new(const char *const *paths, size_t count,
                              const struct resize_options *opts);
void schedule_free(struct schedule *s);

/* The index (into paths) of the input to work on next; SIZE_MAX when none is left. */
size_t schedule_take(struct schedule *s);
/* Input `index` is finished: the memory its decode was counted for is free again. */
void schedule_done(struct schedule *s, size_t index);

#endif
