/* notices: the last step of a file's way (write -> spool -> upload -> resize -> notice): one
 * event per finished or failed file, handed to the notifier (which never blocks). */
#include "gateway_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void gw_request_id(uint64_t data_id, char *out, size_t len)
{
    snprintf(out, len, "v%" PRIx64, data_id);
}

double gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct notify_event base_event(struct gateway *gw, const char *key)
{
    const struct config *cfg = gw->cfg;
    return (struct notify_event){
        .bucket = cfg->s3.source_bucket,
        .key = key,
        .etag = "",
        .format = "",
        .destination_bucket = cfg->s3.destination_bucket,
        .reason = "",
        .action = "",
        .request_id = "",
        .origin = "",
        .time_ms = wall_ms(),
    };
}

void gw_notify_done(struct gateway *gw, const struct gw_job *job, const char *event)
{
    if (!notifier_enabled(gw->notifier))
        return;
    struct notify_event e = base_event(gw, job->key);
    e.status = NOTIFY_DONE;
    e.event = event;
    e.size = job->size;
    e.etag = job->etag;
    e.format = job->format ? job->format : "";
    e.width = job->width;
    e.height = job->height;
    e.renditions = job->made;
    e.rendition_count = job->made_count;
    e.request_id = job->request_id;
    e.elapsed_ms = job->started_ms > 0 ? gw_now_ms() - job->started_ms : 0;
    notifier_post(gw->notifier, &e);
}

void gw_notify_failed(struct gateway *gw, const struct gw_entry *e, const struct gw_job *job,
                      const char *event, const char *action)
{
    if (!notifier_enabled(gw->notifier))
        return;
    struct notify_event ev = base_event(gw, e->key);
    ev.status = NOTIFY_FAILED;
    ev.event = event;
    ev.reason = e->reason ? e->reason : "unknown";
    ev.action = action;
    ev.format = e->format ? e->format : "";
    struct stat st;
    if (job) {
        ev.size = job->size;
        ev.etag = job->etag;
        ev.width = job->width;
        ev.height = job->height;
        ev.request_id = job->request_id;
    }
    if (!ev.size && e->data && fstat(e->data->fd, &st) == 0)
        ev.size = (uint64_t)st.st_size;
    notifier_post(gw->notifier, &ev);
}
