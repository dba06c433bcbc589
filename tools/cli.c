#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

int cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try '%s --help')\n", prog);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_bad_option(const char *prog, int opt, char **argv)
{
    const char *text = argv[optind - 1];
    if (opt == ':')
        return cli_usage_error(prog, "the option %s needs a value", text);
    if (optopt)
        return cli_usage_error(prog, "unknown option -%c", optopt);
    return cli_usage_error(prog, "unknown option %s", text);
}
