/* resize_exec_with_huge_pages: the program run again, once, with malloc on huge pages.
 *
 * Why: resizing is memory-hungry in a way malloc serves badly with 4 KiB pages. Each photo
 * brings blocks of megabytes (a progressive JPEG's coefficients, the decoded and transposed
 * pictures) that are mapped, touched once, and unmapped; every 4 KiB of them costs a page fault.
 * In a virtual machine (Firecracker, as on AWS Lambda; most clouds) a fault costs several
 * microseconds: on the bench corpus (38 photos, -j 2) s3imgfs-resize took about 320,000 faults
 * and spent 2.8 of its 8 CPU seconds in the kernel. glibc can ask the kernel for 2 MiB pages for
 * the memory malloc maps (madvise MADV_HUGEPAGE), but only when glibc.malloc.hugetlb=1 is in
 * GLIBC_TUNABLES as the process starts: it is read once, before main. Hence one exec of the
 * program itself, with the same arguments. Measured: docs/resize.md (Memory).
 */
#include "resize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <unistd.h>

#define TUNABLE "glibc.malloc.hugetlb=1"
/* Set in the program run again: what GLIBC_TUNABLES was before ("=" and the value, or "" when
 * it was not set), so that it is put back and children see the caller's environment. */
#define BEFORE_VAR "S3IMGFS_TUNABLES_BEFORE"
/* And the process's name: the kernel names it after the file executed, "exe" for
 * /proc/self/exe, where ps, top, pgrep and killall look for "s3imgfs". */
#define NAME_VAR "S3IMGFS_NAME_BEFORE"

/* "madvise" or "always" selected (the brackets) in the kernel's setting: huge pages are given
 * on request. "never", or no such file (not Linux, no THP): not. */
static bool kernel_gives_huge_pages(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
    if (!f)
        return false;
    char line[128] = "";
    bool ok = fgets(line, sizeof(line), f) &&
              (strstr(line, "[madvise]") != NULL || strstr(line, "[always]") != NULL);
    fclose(f);
    return ok;
}

static bool wanted(void)
{
    const char *opt = getenv("S3IMGFS_HUGEPAGES");
    if (opt && strcmp(opt, "0") == 0)
        return false;
    /* The user's own say on malloc's huge pages wins. */
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (tunables && strstr(tunables, "glibc.malloc.hugetlb"))
        return false;
    /* Set-user-ID: the loader ignores GLIBC_TUNABLES anyway. */
    if (getauxval(AT_SECURE))
        return false;
    /* Under valgrind the exec would run the program without it. */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        return false;
    return kernel_gives_huge_pages();
}

/* In the program run again: GLIBC_TUNABLES as it was (glibc has read it already), and the
 * process's name. */
static void restore_environment(const char *before)
{
    if (before[0] == '=')
        setenv("GLIBC_TUNABLES", before + 1, 1);
    else
        unsetenv("GLIBC_TUNABLES");
    unsetenv(BEFORE_VAR);
    const char *name = getenv(NAME_VAR);
    if (name && name[0])
        prctl(PR_SET_NAME, name, 0, 0, 0);
    unsetenv(NAME_VAR);
}

bool resize_exec_with_huge_pages(char **argv)
{
    const char *before = getenv(BEFORE_VAR);
    if (before) {
        restore_environment(before);
        return true;
    }
#ifdef __GLIBC__
    if (!wanted())
        return false;
    const char *tunables = getenv("GLIBC_TUNABLES");
    size_t n = (tunables ? strlen(tunables) : 0) + sizeof(TUNABLE) + 2;
    char *with = malloc(n);
    char *mark = malloc(n);
    if (!with || !mark) {
        free(with);
        free(mark);
        return false;
    }
    if (tunables && tunables[0]) {
        snprintf(with, n, "%s:%s", tunables, TUNABLE);
        snprintf(mark, n, "=%s", tunables);
    } else {
        snprintf(with, n, "%s", TUNABLE);
        snprintf(mark, n, "%s", tunables ? "=" : "");
    }
    char name[17] = "";
    prctl(PR_GET_NAME, name, 0, 0, 0);
    if (setenv(BEFORE_VAR, mark, 1) == 0 && setenv(NAME_VAR, name, 1) == 0 &&
        setenv("GLIBC_TUNABLES", with, 1) == 0)
        execv("/proc/self/exe", argv);
    /* Not run again (no /proc, the program file replaced since it started): go on as we are,
     * with the environment as it was. */
    restore_environment(mark);
    free(with);
    free(mark);
#else
    (void)argv;
#endif
    return false;
}
