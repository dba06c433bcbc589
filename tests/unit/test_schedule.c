/* The order in which s3imgfs-resize's workers take their inputs (tools/schedule.c): largest
 * first, a smaller one rather than a decode that would wait for the memory budget, every input
 * exactly once. Real image files, judged by the real engine. */
#include "schedule.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include <cmocka.h>

static char dir[] = "/tmp/s3imgfs-test-schedule-XXXXXX";

/* Paths by role; made once for the group. */
enum { BIG_A, BIG_B, MEDIUM, SMALL, TEXT, MISSING, N_FILES };
static char *paths[N_FILES];

static void write_image(const char *path, int w, int h, const char *options)
{
    VipsImage *im = NULL, *c = NULL;
    assert_int_equal(vips_black(&im, w, h, "bands", 3, NULL), 0);
    assert_int_equal(vips_linear1(im, &c, 1.0, 90.0, "uchar", TRUE, NULL), 0);
    char target[512];
    snprintf(target, sizeof(target), "%s%s", path, options);
    if (vips_image_write_to_file(c, target, NULL) != 0)
        fail_msg("write %s: %s", target, vips_error_buffer());
    g_object_unref(c);
    g_object_unref(im);
}

static struct resize_options options(const struct conf_size *sizes, size_t n)
{
    struct resize_options o;
    memset(&o, 0, sizeof(o));
    o.sizes = sizes;
    o.size_count = n;
    o.max_pixels = 100000000;
    o.max_file_bytes = 100u << 20;
    return o;
}

static const struct conf_size sizes[1] = {{.name = "m", .width = 640, .height = 640}};

static int group_setup(void **state)
{
    (void)state;
    struct resize_error err;
    if (VIPS_INIT("test_schedule") != 0 || resize_global_init(1, &err) != 0)
        return -1;
    if (!mkdtemp(dir))
        return -1;
    static const char *const names[N_FILES] = {"big-a.jpg", "big-b.jpg", "medium.png",
                                               "small.jpg", "notes.txt", "missing.jpg"};
    for (int i = 0; i < N_FILES; i++)
        if (asprintf(&paths[i], "%s/%s", dir, names[i]) < 0)
            return -1;
    /* progressive, 4:4:4: the decoder holds every coefficient, over half the budget each */
    write_image(paths[BIG_A], 3500, 3500, "[Q=90,interlace,subsample_mode=off]");
    write_image(paths[BIG_B], 3400, 3400, "[Q=90,interlace,subsample_mode=off]");
    write_image(paths[MEDIUM], 1200, 900, "");
    write_image(paths[SMALL], 300, 200, "");
    FILE *f = fopen(paths[TEXT], "w");
    if (!f)
        return -1;
    fputs("not a picture\n", f);
    fclose(f);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < N_FILES; i++) {
        unlink(paths[i]);
        free(paths[i]);
    }
    rmdir(dir);
    resize_global_shutdown();
    return 0;
}

/* Inputs in an order unrelated to their size, as a shell glob gives them. */
static const int given[N_FILES] = {SMALL, TEXT, BIG_B, MISSING, MEDIUM, BIG_A};

static struct schedule *make(void)
{
    const char *p[N_FILES];
    for (int i = 0; i < N_FILES; i++)
        p[i] = paths[given[i]];
    struct resize_options o = options(sizes, 1);
    struct schedule *s = schedule_new(p, N_FILES, &o);
    assert_non_null(s);
    return s;
}

static int role(size_t index)
{
    assert_true(index < N_FILES);
    return given[index];
}

/* One worker: largest first, then the rest; unreadable and non-images last. */
static void test_largest_first(void **state)
{
    (void)state;
    struct schedule *s = make();
    int want[] = {BIG_A, BIG_B, MEDIUM, SMALL};
    for (size_t i = 0; i < 4; i++) {
        size_t got = schedule_take(s);
        assert_int_equal(role(got), want[i]);
        schedule_done(s, got);
    }
    int rest[2] = {role(schedule_take(s)), role(schedule_take(s))}; /* in the order given */
    assert_int_equal(rest[0], TEXT);
    assert_int_equal(rest[1], MISSING);
    assert_int_equal(schedule_take(s), SIZE_MAX);
    assert_int_equal(schedule_take(s), SIZE_MAX);
    schedule_free(s);
}

/* Two workers: while the biggest decode runs, the second big one (which would wait for the
 * budget) is passed over for the medium and small ones, and taken once the first is done. */
static void test_budget(void **state)
{
    (void)state;
    struct schedule *s = make();
    size_t a = schedule_take(s);
    assert_int_equal(role(a), BIG_A);
    size_t b = schedule_take(s);
    assert_int_equal(role(b), MEDIUM);
    schedule_done(s, b);
    size_t c = schedule_take(s);
    assert_int_equal(role(c), SMALL);
    schedule_done(s, c);
    size_t d = schedule_take(s);
    assert_int_equal(role(d), TEXT); /* unknown: counted as nothing */
    schedule_done(s, d);
    size_t e = schedule_take(s);
    assert_int_equal(role(e), MISSING);
    /* only the other big one is left: taken even though it must wait (nothing else to do) */
    size_t f = schedule_take(s);
    assert_int_equal(role(f), BIG_B);
    schedule_done(s, a);
    schedule_done(s, e);
    schedule_done(s, f);
    assert_int_equal(schedule_take(s), SIZE_MAX);
    schedule_free(s);
}

/* Many threads: every input exactly once. */
struct taker {
    struct schedule *s;
    int seen[N_FILES];
};

static void *take_all(void *arg)
{
    struct taker *t = arg;
    for (size_t i; (i = schedule_take(t->s)) != SIZE_MAX;) {
        t->seen[i]++;
        schedule_done(t->s, i);
    }
    return NULL;
}

static void test_each_once(void **state)
{
    (void)state;
    for (int round = 0; round < 50; round++) {
        struct schedule *s = make();
        struct taker t[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            memset(&t[i], 0, sizeof(t[i]));
            t[i].s = s;
            assert_int_equal(pthread_create(&th[i], NULL, take_all, &t[i]), 0);
        }
        int total[N_FILES] = {0};
        for (int i = 0; i < 4; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            for (int k = 0; k < N_FILES; k++)
                total[k] += t[i].seen[k];
        }
        for (int k = 0; k < N_FILES; k++)
            assert_int_equal(total[k], 1);
        schedule_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_largest_first),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_each_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
