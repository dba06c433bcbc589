/* conf: the [notify] section (defaults, each key's valid and invalid values, the mail keys that
 * go together, the webhook secret's privacy rules) and the new [log] keys. */
#include "conf.h"
#include "conf_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    if (conf_fixture_setup("conf-notify") != 0)
        return -1;
    env_set("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE");
    env_set("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    return 0;
}

static int teardown(void **state)
{
    return conf_fixture_teardown(state);
}

static void test_defaults(void **state)
{
    (void)state;
    struct config *c = load_ini("");
    assert_true(c->notify.on_success);
    assert_true(c->notify.on_failure);
    assert_int_equal(c->notify.digest_seconds, 0);
    assert_int_equal(c->notify.digest_keys, 20);
    assert_string_equal(c->notify.sns_topic_arn, "");
    assert_string_equal(c->notify.sns_endpoint, "");
    assert_string_equal(c->notify.webhook_url, "");
    assert_string_equal(c->notify.webhook_secret, "");
    assert_string_equal(c->notify.smtp_url, "");
    assert_int_equal(c->notify.mail_to_count, 0);
    assert_non_null(c->notify.mail_to);
    assert_null(c->notify.mail_to[0]);
    assert_int_equal(c->log.format, CONF_LOG_TEXT);
    assert_string_equal(c->log.file, "");
    assert_int_equal(c->log.metrics_seconds, 0);
    conf_free(c);
}

static void test_all_set(void **state)
{
    (void)state;
    write_file("pw", 0600, "secret\n");
    struct config *c =
        load_ini("[notify]\n"
                 "on = failure\n"
                 "digest_seconds = 60\n"
                 "digest_keys = 5\n"
                 "sns_topic_arn = arn:aws:sns:eu-west-1:123456789012:img-notices\n"
                 "sns_endpoint = http://127.0.0.1:4566\n"
                 "webhook_url = https://hooks.example.com/s3imgfs?x=1\n"
                 "webhook_secret = s3cr3t\n"
                 "smtp_url = smtps://mail.example.com:465\n"
                 "smtp_user = robot\n"
                 "smtp_password_file = pw\n"
                 "mail_from = robot@example.com\n"
                 "mail_to = a@example.com, b@example.org\n"
                 "[log]\nformat = json\nfile = logs/s3imgfs.log\nmetrics_seconds = 60\n");
    assert_false(c->notify.on_success);
    assert_true(c->notify.on_failure);
    assert_int_equal(c->notify.digest_seconds, 60);
    assert_int_equal(c->notify.digest_keys, 5);
    assert_string_equal(c->notify.sns_topic_arn, "arn:aws:sns:eu-west-1:123456789012:img-notices");
    assert_string_equal(c->notify.sns_endpoint, "http://127.0.0.1:4566");
    assert_string_equal(c->notify.webhook_url, "https://hooks.example.com/s3imgfs?x=1");
    assert_string_equal(c->notify.webhook_secret, "s3cr3t");
    assert_string_equal(c->notify.smtp_url, "smtps://mail.example.com:465");
    assert_string_equal(c->notify.smtp_user, "robot");
    /* relative to the config file's folder */
    assert_string_equal(c->notify.smtp_password_file, path_of("pw"));
    assert_string_equal(c->notify.mail_from, "robot@example.com");
    assert_int_equal(c->notify.mail_to_count, 2);
    assert_string_equal(c->notify.mail_to[0], "a@example.com");
    assert_string_equal(c->notify.mail_to[1], "b@example.org");
    assert_null(c->notify.mail_to[2]);
    assert_int_equal(c->log.format, CONF_LOG_JSON);
    assert_string_equal(c->log.file, path_of("logs/s3imgfs.log"));
    assert_int_equal(c->log.metrics_seconds, 60);
    /* The dump masks the secret and shows the rest. */
    char *d = dump_of(c);
    assert_null(strstr(d, "s3cr3t"));
    assert_non_null(strstr(d, "webhook_secret = ********"));
    assert_non_null(strstr(d, "mail_to = a@example.com, b@example.org"));
    assert_non_null(strstr(d, "on = failure"));
    free(d);
    conf_free(c);
}

static void test_on_values(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        bool success, failure;
    } ok[] = {{"success,failure", true, true},
              {"failure, success", true, true},
              {"failure", false, true},
              {"success", true, false},
              {"none", false, false}};
    for (size_t i = 0; i < COUNT(ok); i++) {
        char ini[128];
        snprintf(ini, sizeof(ini), "[notify]\non = %s\n", ok[i].value);
        struct config *c = load_ini(ini);
        assert_int_equal(c->notify.on_success, ok[i].success);
        assert_int_equal(c->notify.on_failure, ok[i].failure);
        conf_free(c);
    }
    expect_ini_error("[notify]\non = errors\n", "[notify] on = errors: expected success,failure");
    expect_ini_error("[notify]\non = none,failure\n", "none cannot be combined");
    expect_ini_error("[notify]\non = success,,failure\n", "expected success,failure");
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_ini_error("[notify]\nsns_topic_arn = my-topic\n", "expected a topic ARN such as");
    expect_ini_error("[notify]\nsns_topic_arn = arn:aws:s3:::bucket\n", "expected a topic ARN");
    expect_ini_error("[notify]\nsns_topic_arn = arn:aws:sns:eu-west-1::t\n",
                     "expected a topic ARN");
    expect_ini_error("[notify]\nsns_topic_arn = arn:aws:sns:eu-west-1:1:bad/name\n",
                     "a topic name has letters, digits");
    expect_ini_error("[notify]\nsns_endpoint = sns.example.com\n", "expected http://host");
    expect_ini_error("[notify]\nwebhook_url = ftp://x/y\n", "expected an http:// or https:// URL");
    expect_ini_error("[notify]\nwebhook_url = https://x/a b\n", "no spaces or control");
    expect_ini_error("[notify]\nsmtp_url = mail.example.com\n", "expected smtp://host[:port]");
    expect_ini_error("[notify]\nsmtp_url = smtp://mail:99999\n", "expected smtp://host[:port]");
    expect_ini_error("[notify]\nsmtp_url = smtp://u:p@mail\n", "expected smtp://host[:port]");
    expect_ini_error("[notify]\nsmtp_url = smtp://m\nmail_from = robot\nmail_to = a@b.c\n",
                     "mail_from = robot: 'robot' is not an e-mail address");
    expect_ini_error("[notify]\nsmtp_url = smtp://m\nmail_from = r@b.c\nmail_to = a@b.c,,d@e.f\n",
                     "entry 2 is empty (a stray comma? addresses go on one line)");
    expect_ini_error("[notify]\nsmtp_url = smtp://m\nmail_from = r@b.c\n"
                     "mail_to = Ann <a@b.c>\n",
                     "write the bare address");
    expect_ini_error("[notify]\ndigest_keys = 0\n", "expected an integer from 1 to 1000");
    expect_ini_error("[log]\nformat = xml\n", "expected one of text, json");
    expect_ini_error("[log]\nmetrics_seconds = 3601\n", "expected an integer from 0 to 3600");
}

static void test_mail_keys_together(void **state)
{
    (void)state;
    expect_ini_error("[notify]\nsmtp_url = smtp://127.0.0.1:2525\nmail_to = a@b.c\n",
                     "[notify] smtp_url is set (");
    expect_ini_error("[notify]\nsmtp_url = smtp://127.0.0.1:2525\nmail_from = a@b.c\n",
                     "but [notify] mail_to is not");
    expect_ini_error("[notify]\nmail_to = a@b.c\n",
                     "config.ini:2: [notify] mail_to is set but [notify] smtp_url is not");
    expect_ini_error("[notify]\nsmtp_user = robot\n", "but [notify] smtp_url is not");
}

/* The secret is for the owner's eyes: not as an option, not in a shared file, never echoed. */
static void test_webhook_secret_private(void **state)
{
    (void)state;
    const char *path = write_file("shared.ini", 0644, "[notify]\nwebhook_secret = s3cr3t\n");
    expect_error(path, "InvalidConfig", "is readable by group or others");
    const char *ovr[] = {"notify.webhook_secret=s3cr3t"};
    expect_error_opts(NULL, ovr, 1, "InvalidConfig", "secrets are not accepted as options");
    struct s3_error err = {0};
    struct config *c = load_opts(path, NULL, 0, &err);
    assert_null(c);
    assert_null(strstr(err.message, "s3cr3t"));
    /* From the environment it is fine. */
    env_set("S3IMGFS_WEBHOOK_SECRET", "from-env");
    c = load_ini("");
    assert_string_equal(c->notify.webhook_secret, "from-env");
    assert_string_equal(conf_origin(c, "notify", "webhook_secret"), "env S3IMGFS_WEBHOOK_SECRET");
    conf_free(c);
    env_set("S3IMGFS_WEBHOOK_SECRET", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_keys_together, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_secret_private, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
