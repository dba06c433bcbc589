/* fuse/: the file system. The mountpoint shows the source bucket (under source_prefix);
 * MOUNTPOINT/<resized_dir>/ shows the destination bucket (under destination_prefix). Writes go
 * to the gateway's spool and are uploaded after close; reads of objects stream with ranged GETs.
 * docs/semantics.md says what each system call does.
 *
 * fs_new makes the state the callbacks share (private_data of the FUSE session);
 * fs_operations gives the callbacks. main.c is the program around them.
 */
#ifndef S3IMGFS_FS_H
#define S3IMGFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include "conf.h"
#include "gateway.h"
#include "s3client.h"

struct fs;

/* Borrows cfg and s3 (they must outlive the fs). */
struct fs *fs_new(const struct config *cfg, struct s3client *s3);
void fs_free(struct fs *fs);

/* The gateway's on_changed hook: forget what is cached about a source key. ctx = the fs. */
void fs_key_changed(void *ctx, const char *key, const struct gw_info *info);

/* Gives the fs its gateway (after gateway_new; borrowed). */
void fs_set_gateway(struct fs *fs, struct gateway *gw);

const struct fuse_operations *fs_operations(void);

#endif
