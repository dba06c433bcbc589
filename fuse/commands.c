/* commands: `s3imgfs status [-w] [--json] MOUNTPOINT` reads MOUNTPOINT/.s3imgfs/status and
 * prints it for people (a progress bar for a batch; with -w until the queue is empty);
 * `s3imgfs retry MOUNTPOINT [PATH...]` writes the paths to MOUNTPOINT/.s3imgfs/retry, which
 * queues their failed uploads again. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define BAR_WIDTH  30

/* ---- reading the status file ---- */

/* The parsed status of the mount at `mnt`, or NULL with a message on stderr. Free with
 * json_decref. */
static json_t *read_status(const char *mnt)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/.s3imgfs/status", mnt);
    json_error_t jerr;
    json_t *s = json_load_file(path, 0, &jerr);
    if (!s) {
        if (access(path, F_OK) != 0)
            fprintf(stderr, "s3imgfs: %s is not an s3imgfs mount (no %s: %s)\n", mnt, path,
                    strerror(errno));
        else
            fprintf(stderr, "s3imgfs: cannot read %s: %s\n", path, jerr.text);
    }
    return s;
}

static long long num(const json_t *obj, const char *name)
{
    return (long long)json_integer_value(json_object_get(obj, name));
}

static long long files_in(const json_t *s, const char *state)
{
    return num(json_object_get(s, "files"), state);
}

/* Files pending, uploading or resizing (images waiting for their renditions included). */
static long long active_files(const json_t *s)
{
    return files_in(s, "pending") + files_in(s, "uploading") + files_in(s, "resizing");
}

static const char *human_bytes(double bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (bytes >= 1024 && u + 1 < sizeof(units) / sizeof(units[0]))
        bytes /= 1024, u++;
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* ---- printing it ---- */

static void print_bar(FILE *out, long long done, long long active)
{
    long long total = done + active;
    int filled = total ? (int)(BAR_WIDTH * done / total) : BAR_WIDTH;
    fputs("  [", out);
    for (int i = 0; i < BAR_WIDTH; i++)
        fputc(i < filled ? '#' : '-', out);
    fprintf(out, "] %3lld%%  %lld of %lld files\n", total ? 100 * done / total : 100, done, total);
}

static void print_in_flight(FILE *out, const json_t *s)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(s, "in_flight"), i, t)
    {
        char a[32], b[32];
        fprintf(out, "  uploading %s  %s of %s\n", json_string_value(json_object_get(t, "key")),
                human_bytes((double)num(t, "sent"), a, sizeof(a)),
                human_bytes((double)num(t, "bytes"), b, sizeof(b)));
    }
}

static void print_failures(FILE *out, const json_t *s, const char *mnt)
{
    long long failed = files_in(s, "failed");
    if (failed == 0)
        return;
    fprintf(out, "  failed    %lld file%s, kept in the spool (try again: s3imgfs retry %s)\n",
            failed, failed == 1 ? "" : "s", mnt);
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(s, "last_failures"), i, f)
    {
        char when[16];
        time_t t = (time_t)num(f, "time");
        strftime(when, sizeof(when), "%H:%M:%S", localtime(&t));
        fprintf(out, "    %s  %s: %s\n", when, json_string_value(json_object_get(f, "key")),
                json_string_value(json_object_get(f, "reason")));
    }
}

static void print_status(FILE *out, const json_t *s, const char *mnt)
{
    char a[32], b[32];
    long long active = active_files(s);
    fprintf(out, "s3imgfs at %s, mounted %lld min ago\n", mnt,
            ((long long)time(NULL) - num(s, "started")) / 60);
    fprintf(out,
            "  queued    %lld file%s, %s not in S3 yet (pending %lld, uploading %lld, "
            "resizing %lld)\n",
            active, active == 1 ? "" : "s", human_bytes((double)num(s, "bytes_pending"), a, 32),
            files_in(s, "pending"), files_in(s, "uploading"), files_in(s, "resizing"));
    if (active)
        print_bar(out, num(s, "batch_done"), active);
    print_in_flight(out, s);
    fprintf(out,
            "  done      %lld uploads (%s, %s/s now), %lld renditions, %lld retries since the "
            "mount\n",
            num(s, "uploads_done"), human_bytes((double)num(s, "bytes_uploaded"), a, 32),
            human_bytes((double)num(s, "upload_rate"), b, 32), num(s, "renditions_done"),
            num(s, "retries"));
    print_failures(out, s, mnt);
}

/* ---- the commands ---- */

static int status_usage(FILE *out)
{
    fprintf(out, "usage: s3imgfs status [-w] [--json] MOUNTPOINT\n"
                 "  -w, --wait   print again every second until nothing is queued; exit 1 if\n"
                 "               files failed\n"
                 "  --json       print the status file as it is\n");
    return out == stdout ? 0 : EXIT_USAGE;
}

static int status_main(int argc, char **argv)
{
    static const struct option longs[] = {{"wait", no_argument, NULL, 'w'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    bool wait = false, raw = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "+wh", longs, NULL)) != -1) {
        if (opt == 'w')
            wait = true;
        else if (opt == 'j')
            raw = true;
        else
            return status_usage(opt == 'h' ? stdout : stderr);
    }
    if (optind + 1 != argc)
        return status_usage(stderr);
    const char *mnt = argv[optind];
    bool tty = isatty(STDOUT_FILENO);
    for (;;) {
        json_t *s = read_status(mnt);
        if (!s)
            return 1;
        if (wait && tty)
            fputs("\033[H\033[J", stdout); /* redraw in place */
        if (raw)
            json_dumpf(s, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER), putchar('\n');
        else
            print_status(stdout, s, mnt);
        fflush(stdout);
        bool idle = active_files(s) == 0, failed = files_in(s, "failed") > 0;
        json_decref(s);
        if (!wait)
            return 0;
        if (idle)
            return failed ? 1 : 0;
        sleep(1);
    }
}

/* The path inside the mount `mnt_real` (a real path) that `arg` names, as "a/b" ("" for the
 * mountpoint itself), or NULL with a message. malloc'd. */
static char *path_in_mount(const char *mnt_real, const char *arg)
{
    char real[PATH_MAX];
    if (!realpath(arg, real)) {
        fprintf(stderr, "s3imgfs retry: %s: %s\n", arg, strerror(errno));
        return NULL;
    }
    size_t n = strlen(mnt_real);
    if (strncmp(real, mnt_real, n) != 0 || (real[n] != '\0' && real[n] != '/')) {
        fprintf(stderr, "s3imgfs retry: %s is not inside the mount %s\n", arg, mnt_real);
        return NULL;
    }
    return strdup(real[n] ? real + n + 1 : "");
}

/* Writes the lines to MOUNTPOINT/.s3imgfs/retry; the gateway acts on them at close. */
static int send_retry(const char *mnt_real, char **rel, size_t count)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/.s3imgfs/retry", mnt_real);
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0) {
        fprintf(stderr, "s3imgfs retry: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++)
        if (dprintf(fd, "%s\n", rel[i]) < 0)
            rc = -1;
    if (count == 0 && write(fd, "\n", 1) != 1)
        rc = -1;
    if (close(fd) != 0 || rc != 0) {
        fprintf(stderr, "s3imgfs retry: the mount refused the request: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int retry_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout, "usage: s3imgfs retry MOUNTPOINT [PATH...]\n"
                                            "Queues the failed uploads of the files (or of "
                                            "every file under the folders) again; all of\n"
                                            "them without PATH.\n");
        return argc < 2 ? EXIT_USAGE : 0;
    }
    char mnt[PATH_MAX];
    if (!realpath(argv[1], mnt)) {
        fprintf(stderr, "s3imgfs retry: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    json_t *before = read_status(mnt);
    if (!before)
        return 1;
    size_t count = (size_t)argc - 2;
    char **rel = calloc(count ? count : 1, sizeof(*rel));
    int rc = rel ? 0 : 1;
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (!(rel[i] = path_in_mount(mnt, argv[i + 2])))
            rc = 1;
    if (rc == 0 && send_retry(mnt, rel, count) != 0)
        rc = 1;
    json_t *after = rc == 0 ? read_status(mnt) : NULL;
    if (after) {
        long long n = num(after, "requeued") - num(before, "requeued");
        printf("%lld file%s queued again; follow them with: s3imgfs status -w %s\n", n,
               n == 1 ? "" : "s", argv[1]);
    }
    for (size_t i = 0; rel && i < count; i++)
        free(rel[i]);
    free(rel);
    json_decref(before);
    json_decref(after);
    return rc == 0 && !after ? 1 : rc;
}

int commands_main(int argc, char **argv)
{
    if (argc < 3 || argv[2][0] == '\0')
        return -1; /* "s3imgfs status" alone mounts a folder named status */
    if (strcmp(argv[1], "status") == 0)
        return status_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "retry") == 0)
        return retry_main(argc - 1, argv + 1);
    return -1;
}
