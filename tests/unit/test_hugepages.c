/* resize_exec_with_huge_pages: the program is run again once, malloc then advises huge pages
 * for what it maps, and the environment its children see is the caller's.
 *
 * Each case runs this program again ("--report", through posix_spawn with the environment the
 * case sets up), as a user would start s3imgfs; the child calls the function first thing, then
 * reports on one line what it sees: whether it was run again, GLIBC_TUNABLES and the marker
 * variables after the call, its name (/proc/self/comm: "exe" if it were left as the exec of
 * /proc/self/exe makes it), and whether the mapping of a fresh 16 MiB malloc block carries the
 * kernel's "hg" flag (madvise MADV_HUGEPAGE; /proc/self/smaps VmFlags).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "own_malloc.h"
#include "resize.h"

#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *g_self; /* this program, for the children */

/* VmFlags of the mapping that holds p contain "hg". */
static bool advised_huge(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f)
        return false;
    char line[512];
    bool inside = false, hg = false;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = a >= lo && a < hi;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            hg = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return hg;
}

static int report(char **argv)
{
    bool again = resize_exec_with_huge_pages(argv);
    const char *t = getenv("GLIBC_TUNABLES");
    const char *m = getenv("S3IMGFS_TUNABLES_BEFORE");
    if (!m)
        m = getenv("S3IMGFS_NAME_BEFORE");
    char name[17] = "";
    FILE *comm = fopen("/proc/self/comm", "re");
    if (comm) {
        if (!fgets(name, sizeof(name), comm))
            name[0] = '\0';
        fclose(comm);
    }
    name[strcspn(name, "\n")] = '\0';
    char *block = malloc(16 << 20);
    if (!block)
        return 1;
    memset(block, 1, 16 << 20);
    printf("again=%d hg=%d tunables=%s marker=%s name=%s\n", again, advised_huge(block),
           t ? t : "(unset)", m ? m : "(unset)", name);
    free(block);
    return 0;
}

/* The kernel gives huge pages on request ("madvise" or "always" selected). */
static bool kernel_offers(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
    char line[128] = "";
    if (!f)
        return false;
    bool ok =
        fgets(line, sizeof(line), f) && (strstr(line, "[madvise]") || strstr(line, "[always]"));
    fclose(f);
    return ok;
}

/* Runs "--report" with the environment minus GLIBC_TUNABLES, S3IMGFS_HUGEPAGES and
 * LD_PRELOAD, plus the given NAME=VALUE strings; its line into out. */
static void run_child(char *out, size_t cap, const char *set1, const char *set2)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + 3, sizeof(*env));
    assert_non_null(env);
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "GLIBC_TUNABLES=", 15) != 0 && strncmp(*e, "S3IMGFS_HUGEPAGES=", 18) != 0 &&
            strncmp(*e, "LD_PRELOAD=", 11) != 0)
            env[k++] = *e;
    if (set1)
        env[k++] = (char *)set1;
    if (set2)
        env[k++] = (char *)set2;

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {(char *)g_self, "--report", NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, g_self, &fa, NULL, argv, env), 0);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    assert_non_null(f);
    if (!fgets(out, (int)cap, f))
        out[0] = '\0';
    fclose(f);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    out[strcspn(out, "\n")] = '\0';
}

static void test_runs_again(void **state)
{
    (void)state;
    if (!kernel_offers())
        skip();
    char line[512];
    run_child(line, sizeof(line), NULL, NULL);
    char want[512];
    snprintf(want, sizeof(want),
             "again=1 hg=%d tunables=(unset) marker=(unset) name=test_hugepages", !OWN_MALLOC);
    assert_string_equal(line, want);
}

static void test_keeps_users_tunables(void **state)
{
    (void)state;
    if (!kernel_offers())
        skip();
    char line[512];
    run_child(line, sizeof(line), "GLIBC_TUNABLES=glibc.malloc.arena_max=3", NULL);
    char want[512];
    snprintf(want, sizeof(want),
             "again=1 hg=%d tunables=glibc.malloc.arena_max=3 marker=(unset) "
             "name=test_hugepages",
             !OWN_MALLOC);
    assert_string_equal(line, want);
}

static void test_turned_off(void **state)
{
    (void)state;
    char line[512];
    run_child(line, sizeof(line), "S3IMGFS_HUGEPAGES=0", NULL);
    assert_string_equal(line, "again=0 hg=0 tunables=(unset) marker=(unset) name=test_hugepages");
}

static void test_users_choice_wins(void **state)
{
    (void)state;
    char line[512];
    run_child(line, sizeof(line), "GLIBC_TUNABLES=glibc.malloc.hugetlb=0", NULL);
    assert_string_equal(line, "again=0 hg=0 tunables=glibc.malloc.hugetlb=0 marker=(unset) "
                              "name=test_hugepages");
}

static void test_not_under_valgrind(void **state)
{
    (void)state;
    char line[512];
    /* what valgrind puts in its client's environment (a library that does not exist here:
     * the loader only warns) */
    run_child(line, sizeof(line), "LD_PRELOAD=/nonexistent/vgpreload_core-amd64-linux.so", NULL);
    assert_non_null(strstr(line, "again=0 hg=0 "));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--report") == 0)
        return report(argv);
    g_self = "/proc/self/exe";
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        g_self = self;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_again),         cmocka_unit_test(test_keeps_users_tunables),
        cmocka_unit_test(test_turned_off),         cmocka_unit_test(test_users_choice_wins),
        cmocka_unit_test(test_not_under_valgrind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
