/* Internals shared by the files of conf/ (not part of the public API). */
#ifndef S3IMGFS_CONF_INTERNAL_H
#define S3IMGFS_CONF_INTERNAL_H

#include "conf.h"

#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#define CONF_WHY_MAX 400

/* ------------------------------------------------------------------------------------------ */
/* Small helpers (util.c)                                                                       */

char *conf_strdup(const char *s);
char *conf_strndup(const char *s, size_t n);
/* malloc'd printf; NULL on ENOMEM. */
char *conf_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Frees a string after overwriting it (for secrets). */
void conf_free_secret(char *s);
bool conf_str_ieq(const char *a, const char *b);
/* `path` made absolute (a relative one is relative to `basedir`, or to the working directory
 * when basedir is NULL or itself relative) and tidied: repeated '/', "." segments and a trailing
 * '/' removed ("..", which may cross a symbolic link, is kept). malloc'd; NULL with errno set
 * when the working directory cannot be found or memory runs out. */
char *conf_path_absolute(const char *path, const char *basedir);

/* Identity of a file, to notice when it changed. */
struct conf_file_id {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    mode_t mode;
    struct timespec mtime, ctime;
};
void conf_file_id_from_stat(const struct stat *st, struct conf_file_id *id);
void conf_file_id_of_path(const char *path, struct conf_file_id *id);
bool conf_file_id_equal(const struct conf_file_id *a, const struct conf_file_id *b);

/* ------------------------------------------------------------------------------------------ */
/* INI reading on top of inih (ini.c)                                                           */

/* Called for each "[section]" line (section already trimmed). Return 0 to go on, -1 to stop
 * (having filled the error). */
typedef int (*conf_ini_section_fn)(void *ctx, const char *section, int line);
/* Called for each key = value (section "" before any section). Same return convention. */
typedef int (*conf_ini_key_fn)(void *ctx, const char *section, const char *key, const char *value,
                               int line);

enum conf_ini_mode {
    CONF_INI_STRICT, /* s3imgfs config: an indented line that continues a value is an error */
    CONF_INI_AWS     /* AWS shared files: such lines (nested settings) are skipped */
};

/* Parses an open file with inih, giving every callback its line number and lines of any
 * length. Returns 0, or -1 with errbuf = "PATH:LINE: ..." (or what a callback wrote). */
int conf_ini_parse(FILE *f, const char *path, enum conf_ini_mode mode,
                   conf_ini_section_fn on_section, conf_ini_key_fn on_key, void *ctx, char *errbuf,
                   size_t errlen);

/* ------------------------------------------------------------------------------------------ */
/* AWS shared files (aws_files.c)                                                               */

struct conf_kv {
    char *key; /* lowercased */
    char *value;
    int line;
};

/* One profile's settings in one AWS shared file. */
struct conf_aws_profile {
    char *path;
    bool config_style; /* ~/.aws/config: [profile NAME] / [default]; else [NAME] */
    bool file_exists;
    bool found; /* the profile's section is in the file */
    int section_line;
    struct conf_kv *kv;
    size_t count;
    struct conf_file_id id;
};

/* Reads `profile` from the file at path (missing file: file_exists = false, returns 0).
 * Returns -1 with err filled when it cannot be read or parsed. */
int conf_aws_profile_read(const char *path, bool config_style, const char *profile,
                          struct conf_aws_profile *out, char *err, size_t errlen);
const struct conf_kv *conf_aws_profile_get(const struct conf_aws_profile *p, const char *key);
void conf_aws_profile_clear(struct conf_aws_profile *p);
/* "[default]" / "[profile x]" / "[x]" as the profile's section is written in that file. */
void conf_aws_section_name(const struct conf_aws_profile *p, const char *profile, char *buf,
                           size_t len);
/* Static credentials of the profile: 1 = found (out and source filled), 0 = none,
 * -1 = incomplete (err filled). */
int conf_aws_profile_credentials(const struct conf_aws_profile *p, const char *profile,
                                 struct aws_credentials *out, char *source, size_t slen, char *err,
                                 size_t errlen);

/* ------------------------------------------------------------------------------------------ */
/* The loader and the key table (keys.c, load.c)                                                */

enum conf_origin_kind {
    CONF_ORIGIN_DEFAULT,
    CONF_ORIGIN_FILE,
    CONF_ORIGIN_OVERRIDE,
    CONF_ORIGIN_ENV,
    CONF_ORIGIN_PROFILE,
};

struct conf_origin {
    enum conf_origin_kind kind;
    char *where; /* for conf_dump: "path:12", "option -o s3.region", "env AWS_REGION", ... */
    char *label; /* for errors: "path:12: [s3] region", "env AWS_REGION", ... */
};

struct conf_private {
    struct conf_origin *origins; /* one per key of the table */
    char *config_path;           /* the INI file that was read, NULL when none */
};

/* Credentials found in the INI file. */
enum { CONF_CRED_ACCESS_KEY, CONF_CRED_SECRET_KEY, CONF_CRED_TOKEN, CONF_CRED_COUNT };

struct conf_loader {
    struct config *cfg;
    const struct conf_options *opts;
    struct s3_error *err; /* never NULL */
    conf_getenv_fn getenv;
    void *getenv_ctx;
    char *home;      /* NULL when unknown */
    int *file_lines; /* per key: line where the INI file set it, 0 = not set there */
    struct conf_file_id file_id;
    /* About the value being applied. */
    enum conf_origin_kind kind;
    const char *basedir;   /* relative paths are relative to it; NULL = working directory */
    bool file_is_private;  /* the INI file is not readable by group or others */
    const char *file_path; /* the INI file being read */
    char *file_dir;        /* its directory */
    /* Credentials from the INI file. */
    char *ini_creds[CONF_CRED_COUNT];
    /* Where the credentials came from when not from the INI file: "env" or a file:line. */
    const char *cred_source;
    char cred_where[600];
};

struct conf_row;
typedef int (*conf_parse_fn)(struct conf_loader *L, const struct conf_row *r, const char *value,
                             char *why, size_t whylen);
typedef void (*conf_format_fn)(const struct config *cfg, const struct conf_row *r, FILE *out);

enum conf_row_kind {
    CONF_ROW_OTHER,  /* no memory owned, or freed by conf_free explicitly */
    CONF_ROW_STRING, /* const char * field, owned */
    CONF_ROW_GLOBS,  /* const char *const * field (one block: the NULL-terminated array, then
                        the strings), owned; its count is at *(const size_t *)arg */
};

struct conf_row {
    struct conf_key_info info;
    conf_parse_fn parse;
    conf_format_fn format;
    enum conf_row_kind kind;
    size_t offset;   /* of the field in struct config */
    const void *arg; /* for the parser: choices, ranges */
    int cred;        /* 1 + CONF_CRED_* for credential keys, else 0 */
};

extern const struct conf_row conf_rows[];
extern const size_t conf_row_count;
extern const char *const conf_sections[];

/* The row of section.key, or NULL. */
const struct conf_row *conf_row_find(const char *section, const char *key);
size_t conf_row_index(const struct conf_row *r);
bool conf_section_known(const char *section);
/* Appends "a, b, c" (the keys of a section) to buf. */
void conf_section_keys(const char *section, char *buf, size_t len);

/* Size list grammar (sizes.c). Returns 0, or -1 with why filled (naming the entry). */
int conf_sizes_parse(const char *spec, struct conf_size **out, size_t *count, char *why,
                     size_t whylen);
void conf_sizes_format(const struct conf_size *sizes, size_t count, FILE *out);

/* Key template check (keys.c): 0, or -1 with why. */
int conf_template_check(const char *tpl, char *why, size_t whylen);

/* ------------------------------------------------------------------------------------------ */
/* Credentials (credentials.c)                                                                  */

enum conf_cred_kind { CONF_CREDS_STATIC, CONF_CREDS_INI, CONF_CREDS_AWS_FILES };

/* Creates the provider (takes copies). INI: path1 = the INI file; AWS files: path1 = the
 * credentials file, path2 = the config file; ids = their identities when read. */
struct conf_credentials *conf_credentials_new(enum conf_cred_kind kind,
                                              const struct aws_credentials *creds,
                                              const char *path1, const char *path2,
                                              const char *profile, const struct conf_file_id *id1,
                                              const struct conf_file_id *id2);
void conf_credentials_free(struct conf_credentials *c);
/* The access key id masked as the AWS CLI does ("****************ABCD"), and whether there is
 * a session token, from the credentials in use now. */
void conf_credentials_describe(struct conf_credentials *c, char *masked_key, size_t mlen,
                               bool *has_token);
/* Reads the [s3] credential keys of an INI file (refresh). 1 found, 0 none, -1 error. */
int conf_ini_credentials_read(const char *path, struct aws_credentials *out,
                              struct conf_file_id *id, char *err, size_t errlen);

#endif
