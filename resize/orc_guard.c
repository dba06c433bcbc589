/* orc_guard: one thread at a time in ORC's code allocator.
 *
 * libvips runs its vertical reductions (vips_reducev, the transposed horizontal ones too) as
 * vector code that ORC compiles at run time, one program per operation, freed when the
 * operation is. ORC up to 0.4.33 (Debian 12's) keeps its executable memory in a list of chunks
 * that it splits and merges without holding its own lock (orccodemem.c, fixed upstream in
 * 0.4.34): two images resized at once corrupted the heap, and the gateway died of a SIGSEGV in
 * orc_code_allocate_codemem or of "corrupted double-linked list" in glibc.
 *
 * The fix from outside: this file defines orc_program_compile and orc_program_free, the two
 * entry points through which libvips reaches that list. A program's own definition comes first
 * in the dynamic linker's lookup, so libvips' calls land here, take one mutex and go on to
 * ORC's functions (dlsym RTLD_NEXT). Turning the vector code off instead would also be safe,
 * but makes every resize about 30% slower (measured on the bench corpus: 5.3 -> 7.6 CPU s).
 *
 * If the definitions here are not the ones libvips reaches (a program linked without exporting
 * them), resize_orc_guard_active says so, and resize_global_init turns the vector code off. */
#include "resize_internal.h"

#include <dlfcn.h>
#include <orc/orc.h>
#include <pthread.h>

typedef OrcCompileResult (*compile_fn)(OrcProgram *program);
typedef void (*free_fn)(OrcProgram *program);

static pthread_mutex_t g_orc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_resolve_once = PTHREAD_ONCE_INIT;
static compile_fn g_real_compile;
static free_fn g_real_free;

static void resolve_orc(void)
{
    /* A data pointer to a function pointer: POSIX guarantees dlsym's result converts. */
    *(void **)&g_real_compile = dlsym(RTLD_NEXT, "orc_program_compile");
    *(void **)&g_real_free = dlsym(RTLD_NEXT, "orc_program_free");
}

OrcCompileResult orc_program_compile(OrcProgram *program)
{
    pthread_once(&g_resolve_once, resolve_orc);
    if (!g_real_compile)
        return ORC_COMPILE_RESULT_UNKNOWN_COMPILE; /* no ORC: libvips then runs its C code */
    pthread_mutex_lock(&g_orc_lock);
    OrcCompileResult result = g_real_compile(program);
    pthread_mutex_unlock(&g_orc_lock);
    return result;
}

void orc_program_free(OrcProgram *program)
{
    pthread_once(&g_resolve_once, resolve_orc);
    if (!g_real_free)
        return;
    pthread_mutex_lock(&g_orc_lock);
    g_real_free(program);
    pthread_mutex_unlock(&g_orc_lock);
}

bool resize_orc_guard_active(void)
{
    void *reached = dlsym(RTLD_DEFAULT, "orc_program_compile");
    return reached == NULL || reached == (void *)orc_program_compile;
}
