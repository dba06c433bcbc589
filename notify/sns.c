/* The SNS sink: one Publish (Query protocol, signed by s3client) per message, with
 * MessageStructure=json so that every protocol subscribed to the topic gets its own rendering
 * ("default" for machines, "email" for people, "sms"), and the message attributes status,
 * bucket and event for subscription filter policies. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNS_VERSION "2010-03-31"

/* What the user should do about the errors SNS answers most, or NULL. */
static const char *sns_advice(const char *code)
{
    if (strcmp(code, "NotFound") == 0 || strcmp(code, "NotFoundException") == 0)
        return "the topic does not exist in this account and region (check [notify] "
               "sns_topic_arn, and sns_endpoint if set)";
    if (strcmp(code, "AuthorizationError") == 0 || strcmp(code, "AccessDenied") == 0 ||
        strcmp(code, "AccessDeniedException") == 0)
        return "the credentials lack sns:Publish on the topic (allow it in the IAM policy, and "
               "in the topic's access policy when the topic belongs to another account)";
    if (strcmp(code, "InvalidParameter") == 0 || strcmp(code, "InvalidParameterValue") == 0 ||
        strcmp(code, "ParameterValueInvalid") == 0)
        return "SNS refused the message as invalid (a topic ARN of the wrong form, or a subject "
               "or message SNS does not accept: check [notify] sns_topic_arn, else report it)";
    if (strncmp(code, "KMS", 3) == 0)
        return "the topic is encrypted with a KMS key these credentials cannot use (allow "
               "kms:GenerateDataKey and kms:Decrypt on the key)";
    return NULL;
}

/* Rewrites the error of a failed Publish so that it names the topic and, for the common
 * codes, says what to do. Code, status, request ID and retryable stay as aws_query_call set
 * them. */
static void explain(const char *topic_arn, const struct aws_response *resp, struct s3_error *err)
{
    /* s3_error_set writes into err: copy what it reads first. */
    char code[sizeof(err->code)], original[sizeof(err->message)];
    snprintf(code, sizeof(code), "%s", err->code);
    snprintf(original, sizeof(original), "%s", err->message);
    const char *advice = sns_advice(code);
    if (!advice || !resp->body) {
        s3_error_set(err, err->http_status, code, err->retryable, "SNS Publish to %s: %s",
                     topic_arn, original);
        return;
    }
    char *server = aws_xml_find_text(resp->body, resp->body_len, "Message");
    s3_error_set(err, err->http_status, code, err->retryable,
                 "SNS Publish to %s: %s (HTTP %ld %s%s%s)", topic_arn, advice, err->http_status,
                 code, server && *server ? ": " : "", server ? server : "");
    free(server);
}

int notify_sns_publish(struct s3client *s3, const char *endpoint, const char *topic_arn,
                       const struct notify_message *m, char *message_id, size_t message_id_len,
                       struct s3_error *err)
{
    struct s3_error local;
    if (!err)
        err = &local;
    s3_error_clear(err);
    if (message_id && message_id_len)
        message_id[0] = '\0';
    if (!topic_arn || !*topic_arn) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "SNS Publish: no topic ARN (set [notify] sns_topic_arn)");
        return -1;
    }
    char *structured = notify_sns_structured(m, NOTIFY_MAX_MESSAGE);
    if (!structured) {
        s3_error_set(err, 0, "OutOfMemory", true, "SNS Publish to %s: out of memory", topic_arn);
        return -1;
    }

    /* Every attribute is a String; SNS rejects an empty value, so those are left out and the
     * entries numbered without gaps. */
    static const char *const attr_names[] = {"status", "bucket", "event"};
    const char *attr_values[] = {m->status, m->bucket, m->event};
    char names[3][40], types[3][48], values[3][48];
    struct aws_header params[5 + 3 * 3];
    size_t n = 0, entry = 0;
    params[n++] = (struct aws_header){"TopicArn", topic_arn};
    if (m->subject && *m->subject)
        params[n++] = (struct aws_header){"Subject", m->subject};
    params[n++] = (struct aws_header){"MessageStructure", "json"};
    params[n++] = (struct aws_header){"Message", structured};
    for (size_t i = 0; i < 3; i++) {
        if (!attr_values[i] || !*attr_values[i])
            continue;
        entry++;
        snprintf(names[i], sizeof(names[i]), "MessageAttributes.entry.%zu.Name", entry);
        snprintf(types[i], sizeof(types[i]), "MessageAttributes.entry.%zu.Value.DataType", entry);
        snprintf(values[i], sizeof(values[i]), "MessageAttributes.entry.%zu.Value.StringValue",
                 entry);
        params[n++] = (struct aws_header){names[i], attr_names[i]};
        params[n++] = (struct aws_header){types[i], "String"};
        params[n++] = (struct aws_header){values[i], attr_values[i]};
    }

    struct aws_response resp;
    int rc = aws_query_call(s3, "sns", endpoint, "Publish", SNS_VERSION, params, n, &resp, err);
    free(structured);
    if (rc != 0) {
        explain(topic_arn, &resp, err);
        aws_response_clear(&resp);
        return -1;
    }
    char *id = aws_xml_find_text(resp.body, resp.body_len, "MessageId");
    if (!id) {
        /* A 200 without a MessageId is not SNS (a proxy, a wrong endpoint): not delivered. */
        s3_error_set(err, resp.status, "BadResponse", false,
                     "SNS Publish to %s: the answer (HTTP %ld) has no MessageId: is [notify] "
                     "sns_endpoint an SNS endpoint?",
                     topic_arn, resp.status);
        aws_response_clear(&resp);
        return -1;
    }
    if (message_id && message_id_len)
        snprintf(message_id, message_id_len, "%s", id);
    free(id);
    aws_response_clear(&resp);
    return 0;
}
