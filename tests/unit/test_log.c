/* log: text and JSON lines written to a file in a temporary directory and read back (JSON parsed
 * with jansson, which rejects invalid UTF-8 and raw control characters), levels, cut lines, raw
 * lines, reopening after logrotate renamed the file, and whole lines from concurrent threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define FFFD     "\xef\xbf\xbd"
#define ELLIPSIS "\xe2\x80\xa6"

static char dir[64];
static char file[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/s3imgfs-log-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/s3imgfs.log", dir);
    return 0;
}

/* Back to stderr, text, info, so that no test depends on another's settings. */
static void restore_defaults(void)
{
    struct log_options o = {.level = LOG_LEVEL_INFO};
    assert_int_equal(log_open(&o, NULL, 0), 0);
}

static int teardown(void **state)
{
    (void)state;
    restore_defaults();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void open_log(const char *path, enum log_level level, bool json)
{
    struct log_options o = {.level = level, .json = json, .file = path, .ident = "test_log"};
    char err[512] = "";
    if (log_open(&o, err, sizeof(err)) != 0)
        fail_msg("log_open(%s): %s", path, err);
}

/* A file's lines, split in place; a missing file has none. */
struct lines {
    char *data;
    char **v;
    size_t n;
};

static void read_lines(const char *path, struct lines *l)
{
    *l = (struct lines){0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        assert_int_equal(errno, ENOENT);
        return;
    }
    size_t cap = 1 << 16, len = 0;
    l->data = malloc(cap + 1);
    size_t got;
    while ((got = fread(l->data + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            l->data = realloc(l->data, (cap *= 2) + 1);
    }
    fclose(f);
    l->data[len] = '\0';
    assert_true(len == 0 || l->data[len - 1] == '\n'); /* no torn last line */
    assert_int_equal(strlen(l->data), len);            /* no NUL bytes */
    for (size_t i = 0; i < len; i++)
        l->n += l->data[i] == '\n';
    l->v = calloc(l->n + 1, sizeof(*l->v));
    char *p = l->data;
    for (size_t i = 0; i < l->n; i++) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        l->v[i] = p;
        p = nl + 1;
    }
}

static void free_lines(struct lines *l)
{
    free(l->data);
    free(l->v);
}

/* 2026-11-26T23:50:03.123Z, within a minute of now. */
static void check_time(const char *t)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert_true(strlen(t) >= strlen(shape));
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd')
            assert_true(t[i] >= '0' && t[i] <= '9');
        else
            assert_int_equal(t[i], shape[i]);
    }
    struct tm tm = {0};
    assert_non_null(strptime(t, "%Y-%m-%dT%H:%M:%S", &tm));
    double age = difftime(time(NULL), timegm(&tm));
    assert_true(age >= -1 && age < 60);
}

/* The text after "<time> " must be `rest`. */
static void check_text_line(const char *line, const char *rest)
{
    check_time(line);
    assert_int_equal(line[24], ' ');
    assert_string_equal(line + 25, rest);
}

static json_t *parse(const char *line)
{
    json_error_t e;
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("not JSON (%s at %d): %s", e.text, e.position, line);
    assert_true(json_is_object(j));
    return j;
}

/* A string field, NULL when absent. */
static const char *optional(json_t *j, const char *name)
{
    json_t *v = json_object_get(j, name);
    if (!v)
        return NULL;
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static const char *field(json_t *j, const char *name)
{
    const char *v = optional(j, name);
    if (!v)
        fail_msg("no \"%s\" in the line", name);
    return v;
}

/* Parses a line and checks every field: key and request id absent when NULL. */
static void check_json_line(const char *line, const char *level, const char *msg, const char *key,
                            const char *rid)
{
    json_t *j = parse(line);
    check_time(field(j, "time"));
    assert_string_equal(field(j, "level"), level);
    assert_string_equal(field(j, "msg"), msg);
    if (key)
        assert_string_equal(field(j, "key"), key);
    else
        assert_null(optional(j, "key"));
    if (rid)
        assert_string_equal(field(j, "request_id"), rid);
    else
        assert_null(optional(j, "request_id"));
    assert_int_equal(json_object_size(j), 3 + (key != NULL) + (rid != NULL));
    json_decref(j);
}

static void text_lines_carry_time_level_key_and_request_id(void **state)
{
    (void)state;
    open_log(file, LOG_LEVEL_INFO, false);
    log_info("hello %d", 42);
    log_key_warn("photos/a b.jpg", "req-7", "upload failed: %s", "timeout");
    log_key_error("k.png", NULL, "gone");
    log_key_info(NULL, "r1", "no key");
    log_key_info(NULL, NULL, "neither");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 5);
    check_text_line(l.v[0], "info: hello 42");
    check_text_line(l.v[1], "warn: photos/a b.jpg: upload failed: timeout [req req-7]");
    check_text_line(l.v[2], "error: k.png: gone");
    check_text_line(l.v[3], "info: no key [req r1]");
    check_text_line(l.v[4], "info: neither");
    free_lines(&l);
}

/* A file name with a newline must not start a forged line. */
static void text_lines_escape_control_characters(void **state)
{
    (void)state;
    open_log(file, LOG_LEVEL_INFO, false);
    log_key_info("a\nb.jpg", "r\r", "x\ty\x01z\x7f bad\xff h\xc3\xa9llo");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 1);
    check_text_line(l.v[0],
                    "info: a\\nb.jpg: x\\ty\\x01z\\x7f bad" FFFD " h\xc3\xa9llo [req r\\r]");
    free_lines(&l);
}

static void json_lines_have_the_fields_given(void **state)
{
    (void)state;
    open_log(file, LOG_LEVEL_DEBUG, true);
    log_info("hello %d", 42);
    log_key_warn("photos/a.jpg", "req-7", "upload failed");
    log_key_error("k.png", NULL, "gone");
    log_key_debug(NULL, "r1", "no key");
    log_debug("dbg");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 5);
    check_json_line(l.v[0], "info", "hello 42", NULL, NULL);
    check_json_line(l.v[1], "warn", "upload failed", "photos/a.jpg", "req-7");
    check_json_line(l.v[2], "error", "gone", "k.png", NULL);
    check_json_line(l.v[3], "debug", "no key", NULL, "r1");
    check_json_line(l.v[4], "debug", "dbg", NULL, NULL);
    /* The documented field order, for people reading the file. */
    assert_memory_equal(l.v[1], "{\"time\":\"", 9);
    assert_non_null(strstr(l.v[1],
                           "\",\"level\":\"warn\",\"msg\":\"upload failed\",\"key\":\"photos/"
                           "a.jpg\",\"request_id\":\"req-7\"}"));
    free_lines(&l);
}

static void json_escaping_round_trips(void **state)
{
    (void)state;
    const char *tricky = "say \"quote\" back\\slash new\nline\ttab \x01 ctl \x1f h\xc3\xa9llo "
                         "\xe2\x9c\x93 \xf0\x9f\x98\x80 /slash";
    open_log(file, LOG_LEVEL_INFO, true);
    log_key_info(tricky, tricky, "%s", tricky);
    log_key_info("bad\xff", "\xff", "bad\xff byte");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 2);
    check_json_line(l.v[0], "info", tricky, tricky, tricky);
    check_json_line(l.v[1], "info", "bad" FFFD " byte", "bad" FFFD, FFFD);
    /* Escaped, not raw: the line has no control bytes and shows the escapes. */
    for (const char *p = l.v[0]; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    assert_non_null(strstr(l.v[0], "say \\\"quote\\\" back\\\\slash new\\nline\\ttab \\u0001 ctl "
                                   "\\u001f h\xc3\xa9llo \xe2\x9c\x93"));
    free_lines(&l);
}

/* Each invalid byte becomes one U+FFFD; valid sequences around it are kept. */
static void json_replaces_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\xff", FFFD},
        {"a\xc0\xafz", "a" FFFD FFFD "z"},                    /* overlong '/' */
        {"\xe0\x80\xaf", FFFD FFFD FFFD},                     /* overlong in 3 bytes */
        {"\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD},            /* overlong in 4 bytes */
        {"\xf5\x80\xfe", FFFD FFFD FFFD},                     /* never in UTF-8 */
        {"\xed\xa0\x80", FFFD FFFD FFFD},                     /* a UTF-16 surrogate */
        {"\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD},            /* past U+10FFFF */
        {"x\xe2\x9c", "x" FFFD FFFD},                         /* cut at the end */
        {"\xe2\x9cz\xe2\x9c\x93", FFFD FFFD "z\xe2\x9c\x93"}, /* cut before a valid one */
        {"\x80\xbf", FFFD FFFD},                              /* lone continuations */
        {"\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"}, /* 4 bytes */
        {"\xed\x9f\xbf\xee\x80\x80", "\xed\x9f\xbf\xee\x80\x80"}, /* around the surrogates */
        {"del\x7f", "del\x7f"},
    };
    size_t count = sizeof(cases) / sizeof(cases[0]);
    open_log(file, LOG_LEVEL_INFO, true);
    for (size_t i = 0; i < count; i++)
        log_key_info(cases[i].in, NULL, "%s", cases[i].in);
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, count);
    for (size_t i = 0; i < count; i++)
        check_json_line(l.v[i], "info", cases[i].out, cases[i].out, NULL);
    free_lines(&l);
}

static int evaluated;

static int count_evaluation(void)
{
    return ++evaluated;
}

static void levels_filter(void **state)
{
    (void)state;
    open_log(file, LOG_LEVEL_WARN, true);
    assert_true(log_enabled(LOG_LEVEL_ERROR));
    assert_true(log_enabled(LOG_LEVEL_WARN));
    assert_false(log_enabled(LOG_LEVEL_INFO));
    assert_false(log_enabled(LOG_LEVEL_DEBUG));
    evaluated = 0;
    log_info("no");
    log_key_info("k", "r", "no");
    log_debug("no %d", count_evaluation());
    log_key_debug("k", "r", "no %d", count_evaluation());
    assert_int_equal(evaluated, 0); /* debug arguments cost nothing when off */
    log_warn("w");
    log_key_error("k", "r", "e");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 2);
    check_json_line(l.v[0], "warn", "w", NULL, NULL);
    check_json_line(l.v[1], "error", "e", "k", "r");
    free_lines(&l);

    open_log(file, LOG_LEVEL_ERROR, true);
    log_warn("no");
    log_error("yes");
    read_lines(file, &l);
    assert_int_equal(l.n, 3);
    check_json_line(l.v[2], "error", "yes", NULL, NULL);
    free_lines(&l);
}

static char *repeat(const char *s, size_t times)
{
    size_t n = strlen(s);
    char *r = malloc(n * times + 1);
    for (size_t i = 0; i < times; i++)
        memcpy(r + i * n, s, n);
    r[n * times] = '\0';
    return r;
}

/* A cut value is a prefix of the original, cut between characters, then an ellipsis. */
static void check_cut(const char *got, const char *full, size_t unit)
{
    size_t n = strlen(got);
    assert_true(n > strlen(ELLIPSIS));
    assert_string_equal(got + n - strlen(ELLIPSIS), ELLIPSIS);
    n -= strlen(ELLIPSIS);
    assert_true(n < strlen(full));
    assert_int_equal(n % unit, 0);
    assert_memory_equal(got, full, n);
}

static void long_json_messages_are_cut_and_stay_valid(void **state)
{
    (void)state;
    char *accents = repeat("\xc3\xa9", 5000);
    char *controls = repeat("\x01", 3000); /* six bytes each, escaped */
    char *key = repeat("k\xe2\x9c\x93", 1000);
    open_log(file, LOG_LEVEL_INFO, true);
    log_key_info("a.jpg", "r", "%s", accents);
    log_info("%s", controls);
    log_key_info(key, key, "short");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 3);
    for (size_t i = 0; i < l.n; i++)
        assert_true(strlen(l.v[i]) + 1 <= LOG_LINE_MAX);
    json_t *j = parse(l.v[0]);
    check_cut(field(j, "msg"), accents, 2);
    assert_string_equal(field(j, "key"), "a.jpg");
    assert_true(strlen(l.v[0]) + 1 > LOG_LINE_MAX - 8); /* the room was used */
    json_decref(j);
    j = parse(l.v[1]);
    check_cut(field(j, "msg"), controls, 1);
    json_decref(j);
    j = parse(l.v[2]);
    check_cut(field(j, "key"), key, 1);
    check_cut(field(j, "request_id"), key, 1);
    assert_string_equal(field(j, "msg"), "short"); /* a long key leaves room for the message */
    json_decref(j);
    free_lines(&l);
    free(accents);
    free(controls);
    free(key);
}

static void long_text_messages_are_cut_between_characters(void **state)
{
    (void)state;
    char *checks = repeat("\xe2\x9c\x93", 3000);
    open_log(file, LOG_LEVEL_INFO, false);
    log_key_info("a.jpg", "r9", "%s", checks);
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 1);
    assert_true(strlen(l.v[0]) + 1 <= LOG_LINE_MAX);
    const char *msg = l.v[0] + strlen("2026-11-26T23:50:03.123Z info: a.jpg: ");
    char *end = strstr(l.v[0], " [req r9]");
    assert_non_null(end);
    assert_string_equal(end, " [req r9]"); /* the request id survives the cut */
    *end = '\0';
    check_cut(msg, checks, 3);
    free_lines(&l);
    free(checks);
}

static void raw_lines_ignore_level_and_format(void **state)
{
    (void)state;
    const char *emf = "{\"_aws\":{\"Timestamp\":1,\"CloudWatchMetrics\":[]},\"uploads\":3}";
    open_log(file, LOG_LEVEL_ERROR, true);
    log_line_raw(emf);
    open_log(file, LOG_LEVEL_ERROR, false);
    char with_newline[128];
    snprintf(with_newline, sizeof(with_newline), "%s\n", emf);
    log_line_raw(with_newline);
    log_line_raw("");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[0], emf);
    assert_string_equal(l.v[1], emf);
    assert_string_equal(l.v[2], "");
    json_decref(parse(l.v[0]));
    free_lines(&l);
}

static void a_file_wins_over_syslog(void **state)
{
    (void)state;
    struct log_options o = {
        .level = LOG_LEVEL_INFO, .file = file, .use_syslog = true, .ident = "test_log"};
    assert_int_equal(log_open(&o, NULL, 0), 0);
    log_info("in the file");
    log_line_raw("raw too");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 2);
    check_text_line(l.v[0], "info: in the file");
    assert_string_equal(l.v[1], "raw too");
    free_lines(&l);
}

/* log_setup, as before this module grew files: text to stderr. */
static void log_setup_writes_text_to_stderr(void **state)
{
    (void)state;
    open_log(file, LOG_LEVEL_INFO, true);
    char captured[128];
    snprintf(captured, sizeof(captured), "%s/stderr", dir);
    int saved = dup(STDERR_FILENO);
    int cfd = open(captured, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && cfd >= 0);
    assert_int_equal(dup2(cfd, STDERR_FILENO), STDERR_FILENO);
    log_setup(LOG_LEVEL_WARN, false, "test_log");
    log_info("filtered");
    log_key_warn("k", NULL, "to stderr");
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    close(cfd);
    struct lines l;
    read_lines(captured, &l);
    assert_int_equal(l.n, 1);
    check_text_line(l.v[0], "warn: k: to stderr");
    free_lines(&l);
    read_lines(file, &l);
    assert_int_equal(l.n, 0);
    free_lines(&l);
}

static void log_open_again_switches_files(void **state)
{
    (void)state;
    char other[160];
    snprintf(other, sizeof(other), "%s/other.log", dir);
    open_log(file, LOG_LEVEL_INFO, false);
    log_info("first");
    open_log(other, LOG_LEVEL_INFO, true);
    log_info("second");
    struct stat st;
    assert_int_equal(stat(other, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0640 & ~mask);
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 1);
    check_text_line(l.v[0], "info: first");
    free_lines(&l);
    read_lines(other, &l);
    assert_int_equal(l.n, 1);
    check_json_line(l.v[0], "info", "second", NULL, NULL);
    free_lines(&l);
}

/* What logrotate does: rename, then SIGHUP. */
static void reopen_follows_the_path(void **state)
{
    (void)state;
    char rotated[160];
    snprintf(rotated, sizeof(rotated), "%s.1", file);
    open_log(file, LOG_LEVEL_INFO, false);
    log_info("before");
    assert_int_equal(rename(file, rotated), 0);
    log_info("still the old file until asked");
    log_reopen_request();
    log_info("after");
    log_line_raw("raw after");
    struct lines l;
    read_lines(rotated, &l);
    assert_int_equal(l.n, 2);
    check_text_line(l.v[0], "info: before");
    check_text_line(l.v[1], "info: still the old file until asked");
    free_lines(&l);
    read_lines(file, &l);
    assert_int_equal(l.n, 2);
    check_text_line(l.v[0], "info: after");
    assert_string_equal(l.v[1], "raw after");
    free_lines(&l);

    /* A raw line alone also reopens. */
    assert_int_equal(rename(file, rotated), 0);
    log_reopen_request();
    log_line_raw("raw first");
    read_lines(file, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0], "raw first");
    free_lines(&l);
}

static void a_failed_reopen_keeps_the_old_file_and_warns_once(void **state)
{
    (void)state;
    char sub[128], moved[128], path[160], moved_path[160];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    snprintf(moved, sizeof(moved), "%s/moved", dir);
    snprintf(path, sizeof(path), "%s/s3imgfs.log", sub);
    snprintf(moved_path, sizeof(moved_path), "%s/s3imgfs.log", moved);
    assert_int_equal(mkdir(sub, 0700), 0);
    open_log(path, LOG_LEVEL_INFO, true);
    log_info("before");
    assert_int_equal(rename(sub, moved), 0); /* the path now leads nowhere */
    log_reopen_request();
    log_key_info("a.jpg", "r1", "after");
    log_info("later");
    struct lines l;
    read_lines(moved_path, &l);
    assert_int_equal(l.n, 4);
    check_json_line(l.v[0], "info", "before", NULL, NULL);
    json_t *j = parse(l.v[1]);
    assert_string_equal(field(j, "level"), "warn");
    assert_non_null(strstr(field(j, "msg"), path));
    assert_non_null(strstr(field(j, "msg"), strerror(ENOENT)));
    json_decref(j);
    check_json_line(l.v[2], "info", "after", "a.jpg", "r1");
    check_json_line(l.v[3], "info", "later", NULL, NULL);
    free_lines(&l);

    /* Once the directory is back, the next request succeeds. */
    assert_int_equal(mkdir(sub, 0700), 0);
    log_reopen_request();
    log_info("back");
    read_lines(path, &l);
    assert_int_equal(l.n, 1);
    check_json_line(l.v[0], "info", "back", NULL, NULL);
    free_lines(&l);
}

static void open_failure_names_the_path_and_changes_nothing(void **state)
{
    (void)state;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/s3imgfs.log", dir);
    open_log(file, LOG_LEVEL_INFO, false);
    struct log_options o = {.level = LOG_LEVEL_DEBUG, .json = true, .file = missing};
    char err[512] = "";
    assert_int_equal(log_open(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, strerror(ENOENT)));
    assert_non_null(strstr(err, "[log] file"));
    assert_int_equal(log_open(&o, NULL, 0), -1); /* no room for a message is fine */
    char tiny[8];
    assert_int_equal(log_open(&o, tiny, sizeof(tiny)), -1);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    assert_false(log_enabled(LOG_LEVEL_DEBUG)); /* the old level, format and file remain */
    log_info("still here");
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 1);
    check_text_line(l.v[0], "info: still here");
    free_lines(&l);
}

#define THREADS          4
#define LINES_PER_THREAD 2000

static void *log_lines(void *arg)
{
    int t = (int)(intptr_t)arg;
    char *filler = repeat("\xc3\xa9\"\\\n", 1000); /* long and escaped: cut near the limit */
    for (int i = 0; i < LINES_PER_THREAD; i++) {
        char key[32], rid[32];
        snprintf(key, sizeof(key), "t%d/%d.jpg", t, i);
        snprintf(rid, sizeof(rid), "r%d-%d", t, i);
        log_key_info(key, rid, "%d %d %s", t, i, i % 10 == 0 ? filler : "short");
    }
    free(filler);
    return NULL;
}

/* Each line names its thread and number: every one must come back once, whole. */
static void count_lines(const char *path, int seen[THREADS][LINES_PER_THREAD], size_t *total)
{
    struct lines l;
    read_lines(path, &l);
    for (size_t k = 0; k < l.n; k++) {
        json_t *j = parse(l.v[k]);
        int t, i;
        assert_int_equal(sscanf(field(j, "msg"), "%d %d", &t, &i), 2);
        assert_true(t >= 0 && t < THREADS && i >= 0 && i < LINES_PER_THREAD);
        char key[32];
        snprintf(key, sizeof(key), "t%d/%d.jpg", t, i);
        assert_string_equal(field(j, "key"), key);
        seen[t][i]++;
        json_decref(j);
    }
    *total += l.n;
    free_lines(&l);
}

/* Rotates the file again and again while the writers run, so that swapping the file is raced
 * too; returns how many rotated files there are. */
static int rotate_until_done(pthread_t th[THREADS])
{
    int rotations = 0;
    for (int t = 0; t < THREADS;) {
        char rotated[160];
        snprintf(rotated, sizeof(rotated), "%s.%d", file, rotations);
        if (rename(file, rotated) == 0) { /* fails until a line has reopened the file */
            rotations++;
            log_reopen_request();
        }
        usleep(500);
        while (t < THREADS && pthread_tryjoin_np(th[t], NULL) == 0)
            t++;
    }
    return rotations;
}

static void concurrent_threads_write_whole_lines(void **state)
{
    (void)state;
    static int seen[THREADS][LINES_PER_THREAD];
    memset(seen, 0, sizeof(seen));
    open_log(file, LOG_LEVEL_INFO, true);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, log_lines, (void *)(intptr_t)t), 0);
    int rotations = rotate_until_done(th);
    assert_true(rotations > 1);
    size_t total = 0;
    for (int r = 0; r < rotations; r++) {
        char rotated[160];
        snprintf(rotated, sizeof(rotated), "%s.%d", file, r);
        count_lines(rotated, seen, &total);
    }
    count_lines(file, seen, &total);
    assert_int_equal(total, THREADS * LINES_PER_THREAD);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < LINES_PER_THREAD; i++)
            assert_int_equal(seen[t][i], 1);
}

#define NOT_INSTALLED 77 /* the child's exit status when log_report_crashes declined */

static void *crash_in_thread(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "crasher");
    int *volatile bad = (int *)16;
    *bad = 1;
    return NULL;
}

/* A child that logs a line, then crashes in a thread named "crasher"; the test skips when the
 * report is not installed, and otherwise checks that the child died of the signal. */
enum crash_log { CRASH_LOG_TEXT, CRASH_LOG_JSON, CRASH_LOG_SYSLOG };

static void crash_a_child(enum crash_log to)
{
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        if (to == CRASH_LOG_SYSLOG) {
            char err_path[160];
            snprintf(err_path, sizeof(err_path), "%s.stderr", file);
            int err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (err_fd < 0 || dup2(err_fd, STDERR_FILENO) < 0)
                _exit(1);
            struct log_options o = {.level = LOG_LEVEL_INFO, .use_syslog = true, .ident = "t"};
            char err[256];
            if (log_open(&o, err, sizeof(err)) != 0)
                _exit(1);
        } else {
            open_log(file, LOG_LEVEL_INFO, to == CRASH_LOG_JSON);
        }
        if (!log_report_crashes("NOTE: what was kept.", to == CRASH_LOG_SYSLOG ? file : NULL))
            _exit(NOT_INSTALLED);
        log_info("before the crash");
        pthread_t th;
        pthread_create(&th, NULL, crash_in_thread, NULL);
        pthread_join(th, NULL);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (WIFEXITED(status) && WEXITSTATUS(status) == NOT_INSTALLED)
        skip(); /* a sanitizer build: the sanitizer reports crashes itself */
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* A crash in a thread: the process still dies of the signal (the default action follows the
 * report), and the log file holds the report: signal, address, thread name, the caller's note,
 * then the stack. */
static void a_crash_leaves_a_report_in_the_log(void **state)
{
    (void)state;
    crash_a_child(CRASH_LOG_TEXT);
    struct lines l;
    read_lines(file, &l);
    assert_true(l.n >= 4);
    assert_non_null(strstr(l.v[0], "before the crash"));
    assert_true(strncmp(l.v[1], "fatal: crashed on SIGSEGV", 25) == 0);
    assert_non_null(strstr(l.v[1], " at address 0x10 "));
    assert_non_null(strstr(l.v[1], "(crasher)"));
    assert_non_null(strstr(l.v[1], "NOTE: what was kept. Please report it with the stack"));
    size_t frames_in_test = 0;
    for (size_t i = 2; i < l.n; i++) {
        assert_non_null(strstr(l.v[i], "[0x")); /* one frame per line */
        frames_in_test += strstr(l.v[i], "test_log(") != NULL;
    }
    assert_true(frames_in_test >= 1);
    free_lines(&l);
}

/* Logging to syslog, which a signal handler cannot use: the report goes to the spare file,
 * private, and a second crash adds its report after the first; stderr gets it too. */
static void a_crash_with_syslog_goes_to_the_spare_file(void **state)
{
    (void)state;
    crash_a_child(CRASH_LOG_SYSLOG);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    crash_a_child(CRASH_LOG_SYSLOG);
    struct lines l;
    read_lines(file, &l);
    size_t reports = 0, frames = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (strncmp(l.v[i], "fatal: crashed on SIGSEGV", 25) == 0) {
            reports++;
            assert_non_null(strstr(l.v[i], "(crasher)"));
        } else {
            assert_non_null(strstr(l.v[i], "[0x")); /* a frame */
            frames++;
        }
    }
    assert_int_equal(reports, 2);
    assert_true(frames >= 4);
    assert_true(strncmp(l.v[0], "fatal: crashed on", 17) == 0); /* nothing but reports */
    free_lines(&l);
    char err_path[160];
    snprintf(err_path, sizeof(err_path), "%s.stderr", file);
    read_lines(err_path, &l); /* the second child's */
    assert_true(l.n >= 3);
    assert_true(strncmp(l.v[0], "fatal: crashed on SIGSEGV", 25) == 0);
    assert_non_null(strstr(l.v[1], "[0x"));
    free_lines(&l);
}

/* In a JSON log the report is one more JSON line, an event like the others: time, level
 * "fatal", the same message, and the frames in "stack". */
static void a_crash_in_a_json_log_is_one_json_line(void **state)
{
    (void)state;
    crash_a_child(CRASH_LOG_JSON);
    struct lines l;
    read_lines(file, &l);
    assert_int_equal(l.n, 2);
    check_json_line(l.v[0], "info", "before the crash", NULL, NULL);
    json_t *j = parse(l.v[1]);
    check_time(field(j, "time"));
    assert_string_equal(field(j, "level"), "fatal");
    const char *msg = field(j, "msg");
    assert_true(strncmp(msg, "crashed on SIGSEGV", 18) == 0);
    assert_non_null(strstr(msg, " at address 0x10 "));
    assert_non_null(strstr(msg, "(crasher)"));
    assert_non_null(strstr(msg, "NOTE: what was kept. Please report it with the stack"));
    assert_null(strchr(msg, '\n'));
    json_t *stack = json_object_get(j, "stack");
    assert_true(json_is_array(stack));
    assert_true(json_array_size(stack) >= 2);
    size_t frames_in_test = 0, frames_in_libc = 0;
    for (size_t i = 0; i < json_array_size(stack); i++) {
        const char *frame = json_string_value(json_array_get(stack, i));
        assert_non_null(frame);
        assert_non_null(strstr(frame, "[0x"));
        frames_in_test += strstr(frame, "test_log(") != NULL;
        frames_in_libc += strstr(frame, "libc.so.6(") != NULL; /* the thread's start */
    }
    assert_true(frames_in_test >= 1);
    assert_true(frames_in_libc >= 1);
    json_decref(j);
    free_lines(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(text_lines_carry_time_level_key_and_request_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(text_lines_escape_control_characters, setup, teardown),
        cmocka_unit_test_setup_teardown(json_lines_have_the_fields_given, setup, teardown),
        cmocka_unit_test_setup_teardown(json_escaping_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(json_replaces_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(levels_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(long_json_messages_are_cut_and_stay_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(long_text_messages_are_cut_between_characters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(raw_lines_ignore_level_and_format, setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_wins_over_syslog, setup, teardown),
        cmocka_unit_test_setup_teardown(log_setup_writes_text_to_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(log_open_again_switches_files, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_follows_the_path, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_reopen_keeps_the_old_file_and_warns_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(open_failure_names_the_path_and_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(concurrent_threads_write_whole_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(a_crash_leaves_a_report_in_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(a_crash_in_a_json_log_is_one_json_line, setup, teardown),
        cmocka_unit_test_setup_teardown(a_crash_with_syslog_goes_to_the_spare_file, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
