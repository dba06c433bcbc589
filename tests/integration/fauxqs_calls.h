/* fauxqs_calls: SNS (Query protocol) and SQS (JSON protocol, the only one fauxqs speaks for SQS)
 * calls, for the tests' checks of what reached the local SNS/SQS server. A call that must
 * succeed fails the running cmocka test otherwise. */
#ifndef S3IMGFS_TEST_FAUXQS_CALLS_H
#define S3IMGFS_TEST_FAUXQS_CALLS_H

#include "s3client.h"

#define SNS_VERSION "2010-03-31"

/* An SQS call; returns aws_request_send's result (resp is always filled). */
int fauxqs_sqs_call(struct s3client *c, const char *endpoint, const char *action, const char *json,
                    struct aws_response *resp, struct s3_error *err);
/* An SQS call that must succeed (HTTP 200, a JSON answer): its body, malloc'd. */
char *fauxqs_sqs_ok(struct s3client *c, const char *endpoint, const char *action, const char *json);
/* An SNS call that must succeed (HTTP 200): the text of element `want` of its answer (malloc'd;
 * the test fails when it is missing), or NULL when want is NULL. */
char *fauxqs_sns_ok(struct s3client *c, const char *endpoint, const char *action,
                    const struct aws_header *params, size_t n, const char *want);

#endif
