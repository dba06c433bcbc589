/* event: S3 event notifications in the forms that reach the function, reduced to records.
 *
 *   {"Records":[{"eventSource":"aws:s3", ...}]}      S3 -> Lambda (also S3 -> SQS body)
 *   {"Records":[{"eventSource":"minio:s3", ...}]}    MinIO's webhook ("EventName", "Key" too)
 *   {"Records":[{"eventSource":"ceph:s3", ...}]}     radosgw's HTTP push endpoint
 *   {"Records":[{"EventSource":"aws:sns","Sns":{"Message":"<S3 event as a string>"}}]}
 *   {"Records":[{"eventSource":"aws:sqs","body":"<S3 event or SNS envelope as a string>"}]}
 *   {"Type":"Notification","Message":"<S3 event as a string>"}      SNS HTTP(S) subscription
 *   {"source":"aws.s3","detail-type":"Object Created","detail":{...}}  EventBridge
 *   {"Service":"Amazon S3","Event":"s3:TestEvent",...}  sent when a notification is set up
 *
 * Object keys. S3 sends them form-URL-encoded ("red flower.jpg" -> "red+flower.jpg", '/' kept,
 * "%C3%A9" for UTF-8); so does EventBridge (AWS Lambda Powertools decodes detail.object.key
 * with unquote_plus as for the notification) and MinIO (Go's url.QueryEscape, which also
 * encodes '/' as %2F). radosgw does NOT encode them: its rgw_pubsub_s3_event dumps
 * object_key = the object's name as is, and radosgw 16.2 here sent the key
 * "dir a/my cat+é%41.jpg" verbatim (space, '+', raw UTF-8 and a literal "%41" untouched).
 * So "ceph:s3" keys are used as they are: decoding them would turn a real '+' into a space
 * and "%41" into "A", and fail on a lone '%'.
 *
 * Records that are not processed are kept with the reason (enum lambda_skip) so that the
 * response lists every record. s3:TestEvent becomes one record with LAMBDA_SKIP_TEST_EVENT
 * (bucket from its "Bucket", key "", event_name "s3:TestEvent"): no work, not an error.
 */
#include "lambda.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 4 /* wrappers inside wrappers (SQS body -> SNS envelope -> S3 event) */

struct parser {
    const struct config *cfg;
    struct lambda_event *ev;
    size_t cap;
    struct s3_error *err;
};

static int bad(struct parser *p, const char *fmt, const char *where, const char *what)
{
    char msg[400];
    snprintf(msg, sizeof(msg), fmt, where, what);
    s3_error_set(p->err, 0, "InvalidEvent", false, "not an S3 event notification: %s", msg);
    return -1;
}

static int nomem(struct parser *p)
{
    s3_error_set(p->err, 0, "OutOfMemory", false, "out of memory while reading the event");
    return -1;
}

static const char *str_member(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static enum lambda_skip decide(const struct config *cfg, const struct lambda_record *r)
{
    const char *src = cfg->s3.source_bucket;
    if (!starts_with(r->event_name, "ObjectCreated:"))
        return LAMBDA_SKIP_NOT_CREATE;
    bool in_source =
        (!*src || strcmp(r->bucket, src) == 0) && starts_with(r->key, cfg->s3.source_prefix);
    /* The function's own outputs: never resize them again. When the source shares the bucket,
     * conf_load made sure no output falls under source_prefix, so a key there is a source;
     * without a configured source bucket nothing under destination_prefix is. */
    if (strcmp(r->bucket, cfg->s3.destination_bucket) == 0 &&
        starts_with(r->key, cfg->s3.destination_prefix) && !(*src && in_source))
        return LAMBDA_SKIP_DESTINATION;
    return in_source ? LAMBDA_SKIP_NONE : LAMBDA_SKIP_OUTSIDE;
}

/* Takes over nothing: copies every string. */
static int add(struct parser *p, const char *bucket, const char *key, size_t key_len, uint64_t size,
               const char *etag, const char *event_name, enum lambda_skip skip)
{
    struct lambda_event *ev = p->ev;
    if (ev->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        struct lambda_record *r = realloc(ev->records, cap * sizeof(*r));
        if (!r)
            return nomem(p);
        ev->records = r;
        enum lambda_skip *s = realloc(ev->skip, cap * sizeof(*s));
        if (!s)
            return nomem(p);
        ev->skip = s;
        p->cap = cap;
    }
    size_t el = strlen(etag);
    if (el >= 2 && etag[0] == '"' && etag[el - 1] == '"') {
        etag++;
        el -= 2;
    }
    struct lambda_record r = {
        .bucket = strdup(bucket),
        .key = strndup(key, key_len),
        .size = size,
        .etag = strndup(etag, el),
        .event_name = strdup(event_name),
    };
    if (!r.bucket || !r.key || !r.etag || !r.event_name) {
        free(r.bucket);
        free(r.key);
        free(r.etag);
        free(r.event_name);
        return nomem(p);
    }
    ev->records[ev->count] = r;
    ev->skip[ev->count] = skip == LAMBDA_SKIP_NONE ? decide(p->cfg, &r) : skip;
    ev->count++;
    return 0;
}

/* The key as S3 means it: decoded unless the sender does not encode (radosgw). */
static int add_object(struct parser *p, const char *where, const char *bucket, const char *key,
                      bool encoded, json_t *size, const char *etag, const char *event_name)
{
    json_int_t n = json_is_integer(size) ? json_integer_value(size)
                   : json_is_real(size)  ? (json_int_t)json_real_value(size)
                                         : 0;
    if (!encoded)
        return add(p, bucket, key, strlen(key), n > 0 ? (uint64_t)n : 0, etag ? etag : "",
                   event_name, LAMBDA_SKIP_NONE);
    size_t len = 0;
    char *plain = aws_uri_decode(key, strlen(key), true, &len);
    if (!plain && errno == ENOMEM)
        return nomem(p);
    if (!plain || strlen(plain) != len) {
        free(plain);
        return bad(p,
                   "%s: the object key '%.200s' is not URL-encoded (a '%%' without two hex "
                   "digits, or %%00)",
                   where, key);
    }
    int rc = add(p, bucket, plain, len, n > 0 ? (uint64_t)n : 0, etag ? etag : "", event_name,
                 LAMBDA_SKIP_NONE);
    free(plain);
    return rc;
}

static int parse_doc(struct parser *p, json_t *doc, const char *where, int depth);

/* A JSON document carried as a string (SNS Message, SQS body). */
static int parse_string(struct parser *p, const char *text, const char *where, int depth)
{
    if (depth > MAX_DEPTH)
        return bad(p, "%s: wrappers nested too deep%s", where, "");
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc) {
        char what[300];
        snprintf(what, sizeof(what), "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return bad(p, "%s is not JSON (%s)", where, what);
    }
    int rc = parse_doc(p, doc, where, depth);
    json_decref(doc);
    return rc;
}

static int parse_record(struct parser *p, json_t *rec, const char *where, int depth)
{
    if (!json_is_object(rec))
        return bad(p, "%s is not an object%s", where, "");
    const char *source = str_member(rec, "eventSource");
    if (!source)
        source = str_member(rec, "EventSource"); /* SNS writes it so */
    if (!source)
        return bad(p, "%s has no eventSource%s", where, "");
    char inner[200];
    if (strcmp(source, "aws:sns") == 0) {
        const char *msg = str_member(json_object_get(rec, "Sns"), "Message");
        if (!msg)
            return bad(p, "%s: an SNS record without Sns.Message%s", where, "");
        snprintf(inner, sizeof(inner), "%.150s.Sns.Message", where);
        return parse_string(p, msg, inner, depth + 1);
    }
    if (strcmp(source, "aws:sqs") == 0) {
        const char *body = str_member(rec, "body");
        if (!body)
            return bad(p, "%s: an SQS record without body%s", where, "");
        snprintf(inner, sizeof(inner), "%.150s.body", where);
        return parse_string(p, body, inner, depth + 1);
    }
    bool ceph = strcmp(source, "ceph:s3") == 0;
    if (!ceph && strcmp(source, "aws:s3") != 0 && strcmp(source, "minio:s3") != 0)
        return bad(p,
                   "%s has eventSource '%.100s' (expected aws:s3, ceph:s3 or minio:s3, or an "
                   "SNS or SQS record carrying one)",
                   where, source);
    const char *version = str_member(rec, "eventVersion");
    if (version && !(strcmp(version, "2") == 0 || starts_with(version, "2.")))
        return bad(p, "%s has eventVersion '%.50s' (major version 2 is understood)", where,
                   version);
    const char *name = str_member(rec, "eventName");
    json_t *s3 = json_object_get(rec, "s3");
    json_t *object = json_object_get(s3, "object");
    const char *bucket = str_member(json_object_get(s3, "bucket"), "name");
    const char *key = str_member(object, "key");
    if (!name || !bucket || !key)
        return bad(p, "%s lacks %s", where,
                   !name     ? "eventName"
                   : !bucket ? "s3.bucket.name"
                             : "s3.object.key");
    if (starts_with(name, "s3:"))
        name += 3; /* MinIO, and radosgw's configuration names */
    const char *etag = str_member(object, "eTag");
    if (!etag)
        etag = str_member(object, "etag"); /* radosgw before 16 */
    return add_object(p, where, bucket, key, !ceph, json_object_get(object, "size"), etag, name);
}

static const char *created_how(const char *reason)
{
    static const char *const map[][2] = {{"PutObject", "Put"},
                                         {"POST Object", "Post"},
                                         {"CopyObject", "Copy"},
                                         {"CompleteMultipartUpload", "CompleteMultipartUpload"}};
    for (size_t i = 0; reason && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(reason, map[i][0]) == 0)
            return map[i][1];
    return reason && *reason ? reason : "Put";
}

static int parse_eventbridge(struct parser *p, json_t *doc, const char *where)
{
    const char *source = str_member(doc, "source");
    const char *type = str_member(doc, "detail-type");
    json_t *detail = json_object_get(doc, "detail");
    if (!source || strcmp(source, "aws.s3") != 0)
        return bad(p, "%s: an EventBridge event from '%.100s', not from aws.s3", where,
                   source ? source : "(no source)");
    if (!type || !json_is_object(detail))
        return bad(p, "%s: an EventBridge event without %s", where,
                   !type ? "detail-type" : "detail");
    json_t *object = json_object_get(detail, "object");
    const char *bucket = str_member(json_object_get(detail, "bucket"), "name");
    const char *key = str_member(object, "key");
    if (!bucket || !key)
        return bad(p, "%s: the EventBridge detail lacks %s", where,
                   !bucket ? "bucket.name" : "object.key");
    char name[160];
    if (strcmp(type, "Object Created") == 0)
        snprintf(name, sizeof(name), "ObjectCreated:%s", created_how(str_member(detail, "reason")));
    else
        snprintf(name, sizeof(name), "%s", type);
    return add_object(p, where, bucket, key, true, json_object_get(object, "size"),
                      str_member(object, "etag"), name);
}

static int parse_doc(struct parser *p, json_t *doc, const char *where, int depth)
{
    if (!json_is_object(doc))
        return bad(p, "%s is not a JSON object%s", where, "");
    json_t *records = json_object_get(doc, "Records");
    if (records) {
        if (!json_is_array(records))
            return bad(p, "%s: Records is not an array%s", where, "");
        for (size_t i = 0; i < json_array_size(records); i++) {
            char at[200];
            snprintf(at, sizeof(at), "%.150s%sRecords[%zu]", where, *where ? "." : "", i);
            if (parse_record(p, json_array_get(records, i), at, depth) != 0)
                return -1;
        }
        return 0;
    }
    const char *event = str_member(doc, "Event");
    if (event && strcmp(event, "s3:TestEvent") == 0) {
        const char *bucket = str_member(doc, "Bucket");
        return add(p, bucket ? bucket : "", "", 0, 0, "", "s3:TestEvent", LAMBDA_SKIP_TEST_EVENT);
    }
    if (json_object_get(doc, "detail-type") || json_object_get(doc, "detail"))
        return parse_eventbridge(p, doc, *where ? where : "the event");
    const char *type = str_member(doc, "Type");
    const char *message = str_member(doc, "Message");
    if (type && strcmp(type, "Notification") == 0 && message) {
        char inner[200];
        snprintf(inner, sizeof(inner), "%.150s%sMessage", where, *where ? "." : "");
        return parse_string(p, message, inner, depth + 1);
    }
    if (type)
        return bad(p, "%s is an SNS '%.60s' message, not a notification", *where ? where : "it",
                   type);
    return bad(p, "%s has no Records, detail or Event member", *where ? where : "the document", "");
}

int lambda_event_parse(const struct config *cfg, const char *json, size_t len,
                       struct lambda_event *out, struct s3_error *err)
{
    memset(out, 0, sizeof(*out));
    struct parser p = {cfg, out, 0, err};
    if (!cfg || (!json && len)) {
        s3_error_set(err, 0, "InvalidArgument", false, "lambda_event_parse: no config or event");
        return -1;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(json ? json : "", len, 0, &jerr);
    if (!doc) {
        char what[300];
        snprintf(what, sizeof(what), "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        bad(&p, "%sthe body is not JSON (%s)", "", what);
        return -1;
    }
    int rc = parse_doc(&p, doc, "", 0);
    json_decref(doc);
    if (rc != 0)
        lambda_event_free(out);
    return rc;
}

void lambda_event_free(struct lambda_event *ev)
{
    if (!ev)
        return;
    for (size_t i = 0; i < ev->count; i++) {
        free(ev->records[i].bucket);
        free(ev->records[i].key);
        free(ev->records[i].etag);
        free(ev->records[i].event_name);
    }
    free(ev->records);
    free(ev->skip);
    memset(ev, 0, sizeof(*ev));
}

const char *lambda_skip_name(enum lambda_skip skip)
{
    switch (skip) {
    case LAMBDA_SKIP_NONE:
        return "none";
    case LAMBDA_SKIP_TEST_EVENT:
        return "test event";
    case LAMBDA_SKIP_NOT_CREATE:
        return "not a create";
    case LAMBDA_SKIP_DESTINATION:
        return "destination";
    case LAMBDA_SKIP_OUTSIDE:
        return "outside";
    }
    return "?";
}
