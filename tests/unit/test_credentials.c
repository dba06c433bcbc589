/* conf: the environment and the AWS shared files (region, endpoint, profile, credentials and
 * their precedence), the secret-file check, and the credentials provider (refresh when the
 * file changes, thread safety, masking). */
#include "conf.h"
#include "conf_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Fixture (conf_test_util.c): a temporary home and a fake environment (empty: no credentials
 * anywhere)                                                                                   */

static int setup(void **state)
{
    (void)state;
    return conf_fixture_setup("creds");
}

static int teardown(void **state)
{
    return conf_fixture_teardown(state);
}

/* Sets the file's mtime `secs` seconds from now. */
static void touch_ahead(const char *rel, int secs)
{
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec += secs;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path_of(rel), ts, 0), 0);
}

static struct aws_credentials creds_of(const struct config *c)
{
    struct aws_credentials creds;
    struct s3_error err;
    assert_int_equal(conf_credentials_provider(c->credentials, &creds, &err), 0);
    return creds;
}

/* The provider's current access key id. */
static const char *access_key(const struct config *c)
{
    static struct aws_credentials creds;
    creds = creds_of(c);
    return creds.access_key_id;
}

static void env_creds(void)
{
    env_set("AWS_ACCESS_KEY_ID", "AKIAENVENVENV0000ENV");
    env_set("AWS_SECRET_ACCESS_KEY", "env-secret");
}

/* [s3] region, endpoint, profile or ca_file of c. */
static const char *s3_setting(const struct config *c, const char *key)
{
    if (strcmp(key, "region") == 0)
        return c->s3.region;
    if (strcmp(key, "endpoint") == 0)
        return c->s3.endpoint;
    if (strcmp(key, "profile") == 0)
        return c->s3.profile;
    if (strcmp(key, "ca_file") == 0)
        return c->s3.ca_file;
    fail_msg("s3_setting: no [s3] %s", key);
    return NULL;
}

/* Loads the default files (no config.ini) and checks [s3] key's value and, unless origin is
 * NULL, where it came from. */
static void expect_s3(const char *key, const char *value, const char *origin)
{
    struct config *c = must_load(NULL);
    assert_string_equal(s3_setting(c, key), value);
    if (origin)
        assert_string_equal(conf_origin(c, "s3", key), origin);
    conf_free(c);
}

/* Loads the default files (no config.ini) and checks the provider's access key id. */
static void expect_access_key(const char *want)
{
    struct config *c = must_load(NULL);
    assert_string_equal(access_key(c), want);
    conf_free(c);
}

#define CRED_FILE(ak, sk) "[default]\naws_access_key_id = " ak "\naws_secret_access_key = " sk "\n"

/* ------------------------------------------------------------------------------------------ */
/* Region, endpoint, profile                                                                    */

static void test_region_precedence(void **state)
{
    (void)state;
    env_creds();
    /* Default. */
    expect_s3("region", "us-east-1", "default");

    /* The profile's region in ~/.aws/config (not in ~/.aws/credentials). */
    write_file("home/.aws/credentials", 0600, "[default]\nregion = ca-central-1\n");
    write_file("home/.aws/config", 0600, "[default]\n\nregion = ap-east-1\n");
    char where[600];
    snprintf(where, sizeof(where), "%s/.aws/config:3 [default]", home);
    expect_s3("region", "ap-east-1", where);

    env_set("AWS_DEFAULT_REGION", "eu-west-2");
    expect_s3("region", "eu-west-2", "env AWS_DEFAULT_REGION");

    /* Empty variables count as not set. */
    env_set("AWS_REGION", "");
    expect_s3("region", "eu-west-2", NULL);

    env_set("AWS_REGION", "eu-west-3");
    expect_s3("region", "eu-west-3", "env AWS_REGION");

    struct config *c = load_ini("[s3]\nregion = eu-south-1\n");
    assert_string_equal(c->s3.region, "eu-south-1");
    assert_non_null(strstr(conf_origin(c, "s3", "region"), "config.ini:2"));
    conf_free(c);

    /* Bad values name where they came from. */
    env_set("AWS_REGION", "bad region");
    expect_error(NULL, "InvalidConfig", "env AWS_REGION = bad region: expected a region name");
    env_set("AWS_REGION", NULL);
    env_set("AWS_DEFAULT_REGION", NULL);
    write_file("home/.aws/config", 0600, "[default]\nregion = bad region\n");
    char needle[600];
    snprintf(needle, sizeof(needle),
             "%s/.aws/config:2: [default] region = bad region: expected a region name", home);
    expect_error(NULL, "InvalidConfig", needle);
}

static void test_endpoint_precedence(void **state)
{
    (void)state;
    env_creds();
    write_file("home/.aws/config", 0600,
               "[profile other]\nendpoint_url = http://other:1\n"
               "[default]\nendpoint_url = http://profile:9000\n");
    expect_s3("endpoint", "http://profile:9000", NULL);

    env_set("AWS_ENDPOINT_URL", "http://generic:9000");
    expect_s3("endpoint", "http://generic:9000", "env AWS_ENDPOINT_URL");

    env_set("AWS_ENDPOINT_URL_S3", "https://s3-specific:443/");
    expect_s3("endpoint", "https://s3-specific:443", "env AWS_ENDPOINT_URL_S3");

    struct config *c = load_ini("[s3]\nendpoint = http://ini:1234\n");
    assert_string_equal(c->s3.endpoint, "http://ini:1234");
    conf_free(c);

    env_set("AWS_ENDPOINT_URL_S3", "ftp://x");
    expect_error(NULL, "InvalidConfig",
                 "env AWS_ENDPOINT_URL_S3 = ftp://x: expected http://host[:port] or "
                 "https://host[:port] with no path");

    /* No endpoint anywhere: the regional AWS endpoint of the effective region. */
    env_set("AWS_ENDPOINT_URL_S3", NULL);
    env_set("AWS_ENDPOINT_URL", NULL);
    write_file("home/.aws/config", 0600, "[default]\nregion = eu-central-2\n");
    expect_s3("endpoint", "https://s3.eu-central-2.amazonaws.com", NULL);
    env_set("AWS_REGION", "cn-north-1");
    expect_s3("endpoint", "https://s3.cn-north-1.amazonaws.com.cn", NULL);
}

static void test_ca_bundle_fallbacks(void **state)
{
    (void)state;
    env_creds();
    const char *a = write_file("a.pem", 0644, "x\n");
    const char *b = write_file("b.pem", 0644, "x\n");
    char text[700];
    snprintf(text, sizeof(text), "[default]\nca_bundle = %s\n", a);
    write_file("home/.aws/config", 0600, text);
    expect_s3("ca_file", a, NULL);
    env_set("AWS_CA_BUNDLE", b);
    expect_s3("ca_file", b, "env AWS_CA_BUNDLE");
    snprintf(text, sizeof(text), "[s3]\nca_file = %s\n", a);
    struct config *c = load_ini(text);
    assert_string_equal(c->s3.ca_file, a);
    conf_free(c);
}

static void test_profile_selection(void **state)
{
    (void)state;
    write_file("home/.aws/credentials", 0600,
               "[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = d\n"
               "[envprof]\naws_access_key_id = AKIAENVPROF000000000\naws_secret_access_key = e\n"
               "[iniprof]\naws_access_key_id = AKIAINIPROF000000000\naws_secret_access_key = i\n");
    struct config *c = must_load(NULL);
    assert_string_equal(c->s3.profile, "default");
    assert_string_equal(access_key(c), "AKIADEFAULT000000000");
    conf_free(c);

    env_set("AWS_PROFILE", "envprof");
    c = must_load(NULL);
    assert_string_equal(c->s3.profile, "envprof");
    assert_string_equal(conf_origin(c, "s3", "profile"), "env AWS_PROFILE");
    assert_string_equal(access_key(c), "AKIAENVPROF000000000");
    conf_free(c);

    c = load_ini("[s3]\nprofile = iniprof\n");
    assert_string_equal(c->s3.profile, "iniprof");
    assert_string_equal(access_key(c), "AKIAINIPROF000000000");
    conf_free(c);

    /* A named profile that exists nowhere is an error, even with other credentials. */
    env_creds();
    env_set("AWS_PROFILE", "nope");
    char needle[900];
    snprintf(needle, sizeof(needle),
             "the AWS profile 'nope' (env AWS_PROFILE) is in neither %s/.aws/credentials nor "
             "%s/.aws/config",
             home, home);
    expect_error(NULL, "InvalidConfig", needle);
    /* ... but the default profile may be missing. */
    env_set("AWS_PROFILE", NULL);
    write_file("home/.aws/credentials", 0600, "[other]\n");
    c = must_load(NULL);
    conf_free(c);
    /* An empty profile section counts as existing. */
    env_set("AWS_PROFILE", "other");
    expect_access_key("AKIAENVENVENV0000ENV");
}

/* ------------------------------------------------------------------------------------------ */
/* Credentials                                                                                  */

static void test_credentials_precedence(void **state)
{
    (void)state;
    char where[600];
    /* 4. ~/.aws/config */
    write_file("home/.aws/config", 0600,
               "[default]\naws_access_key_id = AKIACONFIGFILE000000\n"
               "aws_secret_access_key = c\n");
    struct config *c = must_load(NULL);
    assert_string_equal(access_key(c), "AKIACONFIGFILE000000");
    snprintf(where, sizeof(where), "%s/.aws/config:2 [default]", home);
    assert_string_equal(conf_origin(c, "s3", "access_key_id"), where);
    assert_string_equal(conf_origin(c, "s3", "secret_access_key"), where);
    assert_string_equal(conf_origin(c, "s3", "session_token"), "not set");
    conf_free(c);

    /* 3. ~/.aws/credentials wins over ~/.aws/config */
    write_file("home/.aws/credentials", 0600,
               "# keys\n[default]\naws_access_key_id = AKIACREDFILE00000000\n"
               "aws_secret_access_key = f\naws_session_token = tok\n");
    c = must_load(NULL);
    struct aws_credentials k = creds_of(c);
    assert_string_equal(k.access_key_id, "AKIACREDFILE00000000");
    assert_string_equal(k.secret_access_key, "f");
    assert_string_equal(k.session_token, "tok");
    assert_int_equal(k.expiration, 0);
    snprintf(where, sizeof(where), "%s/.aws/credentials:3 [default]", home);
    assert_string_equal(conf_origin(c, "s3", "access_key_id"), where);
    assert_string_equal(conf_origin(c, "s3", "session_token"), where);
    conf_free(c);

    /* 2. The environment wins over the files. */
    env_creds();
    env_set("AWS_SESSION_TOKEN", "envtok");
    c = must_load(NULL);
    k = creds_of(c);
    assert_string_equal(k.access_key_id, "AKIAENVENVENV0000ENV");
    assert_string_equal(k.secret_access_key, "env-secret");
    assert_string_equal(k.session_token, "envtok");
    assert_string_equal(conf_origin(c, "s3", "access_key_id"), "env AWS_ACCESS_KEY_ID");
    assert_string_equal(conf_origin(c, "s3", "secret_access_key"), "env AWS_SECRET_ACCESS_KEY");
    assert_string_equal(conf_origin(c, "s3", "session_token"), "env AWS_SESSION_TOKEN");
    conf_free(c);

    /* 1. The INI file wins over everything. */
    c = load_ini("[s3]\naccess_key_id = AKIAINIFILE000000000\nsecret_access_key = ini-secret\n");
    k = creds_of(c);
    assert_string_equal(k.access_key_id, "AKIAINIFILE000000000");
    assert_string_equal(k.secret_access_key, "ini-secret");
    assert_string_equal(k.session_token, "");
    assert_non_null(strstr(conf_origin(c, "s3", "access_key_id"), "config.ini:2"));
    assert_non_null(strstr(conf_origin(c, "s3", "secret_access_key"), "config.ini:3"));
    conf_free(c);

    /* A session token alone in the environment does not count. */
    env_set("AWS_ACCESS_KEY_ID", NULL);
    env_set("AWS_SECRET_ACCESS_KEY", NULL);
    expect_access_key("AKIACREDFILE00000000");
}

static void test_shared_file_variables(void **state)
{
    (void)state;
    write_file("home/.aws/credentials", 0600, CRED_FILE("AKIAHOMECREDS0000000", "h"));
    write_file("elsewhere/creds", 0600, CRED_FILE("AKIAELSEWHERE0000000", "e"));
    write_file("elsewhere/config", 0600,
               "[default]\nregion = me-south-1\n"
               "[profile p2]\naws_access_key_id = AKIAELSECONFIG000000\n"
               "aws_secret_access_key = x\n");
    write_file("home/alt/creds", 0600, CRED_FILE("AKIATILDE00000000000", "t"));

    env_set("AWS_SHARED_CREDENTIALS_FILE", path_of("elsewhere/creds"));
    struct config *c = must_load(NULL);
    assert_string_equal(access_key(c), "AKIAELSEWHERE0000000");
    assert_string_equal(c->s3.region, "us-east-1"); /* ~/.aws/config has none */
    conf_free(c);

    env_set("AWS_CONFIG_FILE", path_of("elsewhere/config"));
    c = must_load(NULL);
    assert_string_equal(c->s3.region, "me-south-1");
    conf_free(c);

    /* Credentials only in the config file named by AWS_CONFIG_FILE. */
    env_set("AWS_PROFILE", "p2");
    expect_access_key("AKIAELSECONFIG000000");
    env_set("AWS_PROFILE", NULL);

    /* "~/" is the home directory. */
    env_set("AWS_SHARED_CREDENTIALS_FILE", "~/alt/creds");
    expect_access_key("AKIATILDE00000000000");

    /* A file that does not exist counts as empty. */
    env_set("AWS_SHARED_CREDENTIALS_FILE", path_of("missing"));
    env_set("AWS_CONFIG_FILE", path_of("missing2"));
    expect_error(NULL, "NoCredentials", "no AWS credentials found");
}

/* Programs that never sign (s3imgfs-resize) load the config on a machine without credentials. */
static void test_load_without_credentials(void **state)
{
    (void)state;
    env_set("AWS_SHARED_CREDENTIALS_FILE", path_of("missing"));
    env_set("AWS_CONFIG_FILE", path_of("missing2"));
    expect_error(NULL, "NoCredentials", "no AWS credentials found");

    struct conf_options o = {.getenv = fake_getenv, .home = home, .no_credentials = true};
    struct s3_error err;
    struct config *cfg = conf_load(&o, &err);
    assert_non_null(cfg);
    assert_null(cfg->credentials);
    assert_string_equal(cfg->resize.key_template, "{size}/{key}");
    char *dump = dump_of(cfg); /* must not touch the missing provider */
    assert_non_null(strstr(dump, "key_template"));
    free(dump);
    conf_free(cfg);

    /* Credentials in a readable file are still refused. */
    const char *path =
        write_file("open.ini", 0644, "[s3]\naccess_key_id = AKIAOPEN\nsecret_access_key = x\n");
    o.path = path;
    assert_null(conf_load(&o, &err));
    assert_non_null(strstr(err.message, "chmod 600"));
}

static void test_profile_sections(void **state)
{
    (void)state;
    /* In ~/.aws/config a named profile is [profile NAME]; a plain [NAME] is not it. */
    write_file("home/.aws/config", 0600,
               "[x]\naws_access_key_id = AKIAWRONGSECTION0000\naws_secret_access_key = w\n"
               "[profile   x]\naws_access_key_id = AKIAPROFILEX00000000\n"
               "aws_secret_access_key = p\nregion = us-west-2\n");
    env_set("AWS_PROFILE", "x");
    struct config *c = must_load(NULL);
    assert_string_equal(access_key(c), "AKIAPROFILEX00000000");
    assert_string_equal(c->s3.region, "us-west-2");
    char where[600];
    snprintf(where, sizeof(where), "%s/.aws/config:7 [profile x]", home);
    assert_string_equal(conf_origin(c, "s3", "region"), where);
    conf_free(c);

    /* In ~/.aws/credentials it is [NAME]; [profile NAME] there is another name. */
    write_file("home/.aws/credentials", 0600,
               "[profile x]\naws_access_key_id = AKIAWRONGCREDS000000\naws_secret_access_key = w\n"
               "[x]\naws_access_key_id = AKIACREDSX0000000000\naws_secret_access_key = p\n");
    expect_access_key("AKIACREDSX0000000000");

    /* [default] and [profile default] are the default profile in ~/.aws/config. */
    env_set("AWS_PROFILE", NULL);
    write_file("home/.aws/credentials", 0600, "");
    write_file("home/.aws/config", 0600,
               "[default]\naws_access_key_id = AKIADEFAULTSECTION00\naws_secret_access_key = s\n");
    expect_access_key("AKIADEFAULTSECTION00");
    write_file("home/.aws/config", 0600,
               "[profile default]\naws_access_key_id = AKIAPROFILEDEFAULT00\n"
               "aws_secret_access_key = s\n");
    expect_access_key("AKIAPROFILEDEFAULT00");
}

static void test_aws_file_syntax(void **state)
{
    (void)state;
    /* Keys are case-insensitive; nested settings (indented under "s3 =") are not the
     * profile's; comments; a session token far longer than inih's line buffer. */
    char token[2100];
    for (int i = 0; i < 2000; i++)
        token[i] = (char)('A' + i % 26);
    token[2000] = '\0';
    char text[3000];
    snprintf(text, sizeof(text),
             "; comment\n[default]\nAWS_ACCESS_KEY_ID = AKIAUPPERCASE0000000\n"
             "Aws_Secret_Access_Key=upper\naws_session_token = %s\n",
             token);
    write_file("home/.aws/credentials", 0600, text);
    write_file("home/.aws/config", 0600,
               "[default]\n"
               "s3 =\n"
               "  endpoint_url = http://nested:1\n"
               "  addressing_style = path\n"
               "region = af-south-1\n");
    struct config *c = must_load(NULL);
    struct aws_credentials k = creds_of(c);
    assert_string_equal(k.access_key_id, "AKIAUPPERCASE0000000");
    assert_string_equal(k.secret_access_key, "upper");
    assert_string_equal(k.session_token, token);
    assert_string_equal(c->s3.endpoint, "https://s3.af-south-1.amazonaws.com");
    assert_string_equal(c->s3.region, "af-south-1");
    conf_free(c);

    /* Long profile names (inih keeps only 50 bytes of a section name). */
    static const char longname[] = "a-profile-name-that-is-longer-than-fifty-characters-for-sure";
    snprintf(text, sizeof(text),
             "[profile %s]\naws_access_key_id = AKIALONGPROFILE00000\n"
             "aws_secret_access_key = l\n",
             longname);
    write_file("home/.aws/config", 0600, text);
    env_set("AWS_PROFILE", longname);
    expect_access_key("AKIALONGPROFILE00000");
    env_set("AWS_PROFILE", NULL);

    /* Empty values count as missing. */
    write_file("home/.aws/credentials", 0600,
               "[default]\naws_access_key_id =\naws_secret_access_key =\n");
    expect_error(NULL, "NoCredentials", "no AWS credentials found");

    /* A broken AWS file is an error that names its line. */
    write_file("home/.aws/credentials", 0600, "[default]\nthis is not ini\n");
    char needle[600];
    snprintf(needle, sizeof(needle), "%s/.aws/credentials:2: expected 'key = value'", home);
    expect_error(NULL, "InvalidConfig", needle);
}

static void test_incomplete_credentials(void **state)
{
    (void)state;
    env_set("AWS_ACCESS_KEY_ID", "AKIAONLYKEY000000000");
    expect_error(NULL, "InvalidConfig",
                 "env AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both (or "
                 "neither)");
    env_set("AWS_ACCESS_KEY_ID", NULL);
    env_set("AWS_SECRET_ACCESS_KEY", "only-secret");
    expect_error(NULL, "InvalidConfig",
                 "env AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    env_set("AWS_SECRET_ACCESS_KEY", NULL);

    expect_ini_error("[s3]\naccess_key_id = AKIAONLYKEY000000000\n",
                     "config.ini:2: [s3] access_key_id is set but [s3] secret_access_key is "
                     "not; set both access_key_id and secret_access_key");
    expect_ini_error("[s3]\nsecret_access_key = s\n",
                     "config.ini:2: [s3] secret_access_key is set but [s3] access_key_id is not");
    expect_ini_error("[s3]\n\nsession_token = t\n",
                     "config.ini:3: [s3] session_token is set but [s3] access_key_id is not");

    write_file("home/.aws/credentials", 0600, "[default]\n\naws_access_key_id = AKIAX\n");
    char needle[600];
    snprintf(needle, sizeof(needle),
             "%s/.aws/credentials:3: [default] has aws_access_key_id but no "
             "aws_secret_access_key; set both",
             home);
    expect_error(NULL, "InvalidConfig", needle);

    write_file("home/.aws/credentials", 0600, "");
    write_file("home/.aws/config", 0600, "[default]\naws_secret_access_key = s\n");
    snprintf(needle, sizeof(needle),
             "%s/.aws/config:2: [default] has aws_secret_access_key but no aws_access_key_id; "
             "set both",
             home);
    expect_error(NULL, "InvalidConfig", needle);
}

static void test_secrets_need_private_file(void **state)
{
    (void)state;
    static const char text[] = "[s3]\naccess_key_id = AKIAPRIVATE000000000\n"
                               "secret_access_key = SuperSecretValue\n";
    static const mode_t refused[] = {0644, 0640, 0604, 0660, 0444};
    for (size_t i = 0; i < COUNT(refused); i++) {
        const char *p = write_file("config.ini", refused[i], text);
        char needle[1200];
        snprintf(needle, sizeof(needle),
                 "%s:2: [s3] access_key_id = (hidden): %s is readable by group or others, so it "
                 "must not hold credentials: run chmod 600 %s (or move them to "
                 "~/.aws/credentials)",
                 p, p, p);
        expect_error(p, "InvalidConfig", needle);
        struct s3_error err;
        assert_null(load_opts(p, NULL, 0, &err));
        assert_null(strstr(err.message, "AKIAPRIVATE"));
    }
    write_file("config.ini", 0644, "[s3]\nsecret_access_key = SuperSecretValue\n");
    struct s3_error err;
    assert_null(load_opts(path_of("config.ini"), NULL, 0, &err));
    assert_non_null(strstr(err.message, "[s3] secret_access_key = (hidden): "));
    assert_null(strstr(err.message, "SuperSecret"));

    static const mode_t accepted[] = {0600, 0400, 0700};
    for (size_t i = 0; i < COUNT(accepted); i++) {
        struct config *c = must_load(write_file("config.ini", accepted[i], text));
        assert_string_equal(access_key(c), "AKIAPRIVATE000000000");
        conf_free(c);
    }
    /* A readable file without credentials is fine; empty credential keys are not set. */
    env_creds();
    struct config *c = must_load(write_file("config.ini", 0644, "[s3]\nregion = eu-west-1\n"));
    conf_free(c);
    c = must_load(write_file("config.ini", 0644,
                             "[s3]\naccess_key_id =\nsecret_access_key =\nsession_token =\n"));
    assert_string_equal(access_key(c), "AKIAENVENVENV0000ENV");
    conf_free(c);

    /* Too long: the message does not show the value either. */
    char longer[400];
    snprintf(longer, sizeof(longer), "[s3]\naccess_key_id = AKIA%0200d\n", 7);
    const char *p = write_file("config.ini", 0600, longer);
    assert_null(load_opts(p, NULL, 0, &err));
    assert_non_null(strstr(err.message, "[s3] access_key_id = (hidden): expected at most 127 "
                                        "characters"));
    assert_null(strstr(err.message, "0000007"));
}

static void test_no_credentials(void **state)
{
    (void)state;
    char needle[1200];
    snprintf(needle, sizeof(needle),
             "no AWS credentials found: looked for [s3] access_key_id (no config file), env "
             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, [default] in %s/.aws/credentials "
             "(missing file), [default] in %s/.aws/config (missing file)",
             home, home);
    expect_error(NULL, "NoCredentials", needle);

    const char *ini = write_file("config.ini", 0600, "[s3]\nprofile = sso\n");
    write_file("home/.aws/credentials", 0600, "[other]\n");
    write_file("home/.aws/config", 0600, "[profile sso]\nregion = eu-west-1\nsso_session = corp\n");
    snprintf(needle, sizeof(needle),
             "no AWS credentials found: looked for [s3] access_key_id in %s, env "
             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, [sso] in %s/.aws/credentials (no "
             "such section), [profile sso] in %s/.aws/config (no aws_access_key_id); [profile "
             "sso] uses sso_session (line 3), which s3imgfs does not support: give the profile "
             "static keys",
             ini, home, home);
    expect_error(ini, "NoCredentials", needle);
}

/* ------------------------------------------------------------------------------------------ */
/* The provider                                                                                 */

static void test_refresh_credentials_file(void **state)
{
    (void)state;
    write_file("home/.aws/credentials", 0600, CRED_FILE("AKIAROTATION00000001", "s1"));
    struct config *c = must_load(NULL);
    assert_string_equal(access_key(c), "AKIAROTATION00000001");
    assert_string_equal(access_key(c), "AKIAROTATION00000001");

    /* Replaced by rename (a new inode). */
    replace_file("home/.aws/credentials", CRED_FILE("AKIAROTATION00000002", "s2"));
    struct aws_credentials k = creds_of(c);
    assert_string_equal(k.access_key_id, "AKIAROTATION00000002");
    assert_string_equal(k.secret_access_key, "s2");

    /* Rewritten in place with the same size: the mtime tells. */
    write_file("home/.aws/credentials", 0600, CRED_FILE("AKIAROTATION00000003", "s3"));
    touch_ahead("home/.aws/credentials", 5);
    assert_string_equal(access_key(c), "AKIAROTATION00000003");

    /* Half-written: the previous credentials stay in use... */
    write_file("home/.aws/credentials", 0600, "[default]\naws_access_key_id = AKIAHALF\n");
    touch_ahead("home/.aws/credentials", 10);
    assert_string_equal(access_key(c), "AKIAROTATION00000003");
    assert_string_equal(access_key(c), "AKIAROTATION00000003");
    /* ... until the file is complete again. */
    write_file("home/.aws/credentials", 0600, CRED_FILE("AKIAROTATION00000004", "s4"));
    touch_ahead("home/.aws/credentials", 15);
    assert_string_equal(access_key(c), "AKIAROTATION00000004");

    /* Removed: still the last good ones. */
    assert_int_equal(unlink(path_of("home/.aws/credentials")), 0);
    assert_string_equal(access_key(c), "AKIAROTATION00000004");
    /* Now the config file's profile holds them: both files are watched. */
    write_file("home/.aws/config", 0600,
               "[default]\naws_access_key_id = AKIAROTATION00000005\naws_secret_access_key = s\n");
    assert_string_equal(access_key(c), "AKIAROTATION00000005");
    conf_free(c);
}

static void test_refresh_ini_file(void **state)
{
    (void)state;
    struct config *c = load_ini("[s3]\naccess_key_id = AKIAINIROTATE0000001\n"
                                "secret_access_key = s1\n");
    assert_string_equal(access_key(c), "AKIAINIROTATE0000001");
    replace_file("config.ini", "[s3]\naccess_key_id = AKIAINIROTATE0000002\n"
                               "secret_access_key = s2\nsession_token = t2\n");
    struct aws_credentials k = creds_of(c);
    assert_string_equal(k.access_key_id, "AKIAINIROTATE0000002");
    assert_string_equal(k.session_token, "t2");
    /* A file others can read is not used. */
    write_file("config.ini", 0644,
               "[s3]\naccess_key_id = AKIAINIROTATE0000003\n"
               "secret_access_key = s3\n");
    touch_ahead("config.ini", 5);
    assert_string_equal(access_key(c), "AKIAINIROTATE0000002");
    assert_int_equal(chmod(path_of("config.ini"), 0600), 0);
    assert_string_equal(access_key(c), "AKIAINIROTATE0000003");
    conf_free(c);
}

/* The file is found again after the working directory changed (a daemon does chdir("/")). */
static void test_refresh_relative_path(void **state)
{
    (void)state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    write_file("config.ini", 0600,
               "[s3]\naccess_key_id = AKIARELATIVE00000001\n"
               "secret_access_key = s1\n");
    assert_int_equal(chdir(tmpdir), 0);
    struct config *c = must_load("config.ini");
    assert_int_equal(chdir("/"), 0);
    replace_file("config.ini", "[s3]\naccess_key_id = AKIARELATIVE00000002\n"
                               "secret_access_key = s2\n");
    const char *now = access_key(c);
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(now, "AKIARELATIVE00000002");
    conf_free(c);
}

static void test_env_credentials_are_static(void **state)
{
    (void)state;
    env_creds();
    struct config *c = must_load(NULL);
    assert_string_equal(access_key(c), "AKIAENVENVENV0000ENV");
    env_set("AWS_ACCESS_KEY_ID", "AKIACHANGED000000000");
    assert_string_equal(access_key(c), "AKIAENVENVENV0000ENV");
    conf_free(c);

    struct aws_credentials k;
    struct s3_error err;
    assert_int_equal(conf_credentials_provider(NULL, &k, &err), -1);
    assert_string_equal(err.code, "InvalidArgument");
}

struct reader_arg {
    const struct config *c;
    int mismatches;
    int calls;
};

static void *reader_thread(void *p)
{
    struct reader_arg *a = p;
    for (int i = 0; i < 3000; i++) {
        struct aws_credentials k;
        struct s3_error err;
        if (conf_credentials_provider(a->c->credentials, &k, &err) != 0) {
            a->mismatches++;
            continue;
        }
        /* The key and the secret always belong together. */
        if (strcmp(k.access_key_id + 16, k.secret_access_key + 6) != 0)
            a->mismatches++;
        a->calls++;
    }
    return NULL;
}

static void test_provider_threads(void **state)
{
    (void)state;
    write_file("home/.aws/credentials", 0600, CRED_FILE("AKIAROTATING00000000", "secret0000"));
    struct config *c = must_load(NULL);
    struct reader_arg args[6];
    pthread_t threads[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (struct reader_arg){c, 0, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, reader_thread, &args[i]), 0);
    }
    for (int n = 1; n <= 60; n++) {
        char text[200];
        snprintf(text, sizeof(text),
                 "[default]\naws_access_key_id = AKIAROTATING0000%04d\n"
                 "aws_secret_access_key = secret%04d\n",
                 n, n);
        replace_file("home/.aws/credentials", text);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].mismatches, 0);
        assert_int_equal(args[i].calls, 3000);
    }
    assert_string_equal(access_key(c), "AKIAROTATING00000060");
    conf_free(c);
}

static void test_dump_masks_file_credentials(void **state)
{
    (void)state;
    write_file("home/.aws/credentials", 0600,
               "[default]\naws_access_key_id = AKIAFILEKEY00000WXYZ\n"
               "aws_secret_access_key = TopSecretFromFile\naws_session_token = TokenFromFile\n");
    struct config *c = must_load(NULL);
    char *out = dump_of(c);
    char line[900];
    snprintf(line, sizeof(line),
             "access_key_id = ****************WXYZ  ; %s/.aws/credentials:2 [default]\n", home);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line),
             "secret_access_key = ********  ; %s/.aws/credentials:2 [default]\n", home);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "session_token = ********  ; "));
    assert_null(strstr(out, "AKIAFILEKEY"));
    assert_null(strstr(out, "TopSecret"));
    assert_null(strstr(out, "TokenFromFile"));
    free(out);
    conf_free(c);

    /* From the INI file: its lines. Short keys are masked entirely. */
    const char *p = write_file("config.ini", 0600,
                               "[s3]\naccess_key_id = AKIA1234\nsecret_access_key = IniSecret\n");
    c = must_load(p);
    out = dump_of(c);
    snprintf(line, sizeof(line), "access_key_id = ****************  ; %s:2\n", p);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line), "secret_access_key = ********  ; %s:3\n", p);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "session_token =   ; not set\n"));
    assert_null(strstr(out, "AKIA1234"));
    assert_null(strstr(out, "IniSecret"));
    free(out);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_region_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_bundle_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_file_variables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aws_file_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_need_private_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_credentials_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_ini_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_relative_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_credentials_are_static, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_masks_file_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_without_credentials, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
