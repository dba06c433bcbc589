/* What the command-line tools share: exit codes and usage errors in one format. */
#ifndef S3IMGFS_TOOLS_CLI_H
#define S3IMGFS_TOOLS_CLI_H

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* Prints "PROG: message (try 'PROG --help')" on stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For getopt_long's '?' or ':' (with opterr = 0 and ':' leading the option string). */
int cli_bad_option(const char *prog, int opt, char **argv);

#endif
