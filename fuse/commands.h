/* commands: `s3imgfs status` and `s3imgfs retry`, which talk to a running mount through its
 * /.s3imgfs files (docs/s3imgfs.md, "The queue"). */
#ifndef S3IMGFS_COMMANDS_H
#define S3IMGFS_COMMANDS_H

/* When argv[1] names a command and a mountpoint follows: runs it and returns the exit status
 * (0, 1 failure, 2 usage). Otherwise -1: argv is a mount. */
int commands_main(int argc, char **argv);

#endif
