/* SigV4 signer tests.
 *
 * 1. The AWS SigV4 test suite (tests/data/aws-sigv4-test-suite, from aws-c-auth): every case
 *    folder is run twice, signing with the Authorization header and presigning with the query,
 *    and canonical request, string to sign, signature and the signed request must match exactly.
 *    Every folder found is a test; a folder with a missing file fails, and so does a suite with
 *    fewer than 30 cases, so nothing can pass by being skipped.
 * 2. S3 cases of our own (keys with spaces, '+', '%', UTF-8; S3 path rules; UNSIGNED-PAYLOAD),
 *    checked against values computed independently with Python's hmac/hashlib.
 * 3. Argument checking and the small helpers.
 *
 * How the suite maps onto our API (aws-c-auth's conventions, see the notes at suite_scope):
 *   - request.txt's request line is the wire form, e.g. "GET /example space/ HTTP/1.1";
 *   - the suite always double-encodes the path; "normalize" only switches normalisation;
 *   - the payload hash is always the SHA-256 of the body; "sign_body" adds the
 *     x-amz-content-sha256 header (header mode only);
 *   - X-Amz-Date (and X-Amz-Security-Token, unless omit_session_token) are headers the caller
 *     adds in header mode: our signer adds no header by itself;
 *   - omit_session_token: the token is sent but not signed, i.e. one signs without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "s3client.h"

#define SUITE_MIN_CASES 30
#define EMPTY_SHA256    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ------------------------------------------------------------------------------------------ */
/* Small helpers */

static char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    assert_non_null(p);
    return p;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Whole file, NUL-terminated (length in *len), or NULL when it cannot be read. */
static char *read_file(const char *dir, const char *name, size_t *len)
{
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* A file every case must have: a missing one fails the case. */
static char *read_required(const char *dir, const char *name)
{
    char *text = read_file(dir, name, NULL);
    if (!text)
        fail_msg("%s/%s: cannot read (%s)", dir, name, strerror(errno));
    return text;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    assert_true(EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL));
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static struct aws_credentials make_creds(const char *akid, const char *secret, const char *token)
{
    struct aws_credentials c;
    memset(&c, 0, sizeof(c));
    snprintf(c.access_key_id, sizeof(c.access_key_id), "%s", akid);
    snprintf(c.secret_access_key, sizeof(c.secret_access_key), "%s", secret);
    snprintf(c.session_token, sizeof(c.session_token), "%s", token ? token : "");
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* request.txt: request line, header lines (a line starting with a space or tab continues the
 * previous header's value), a blank line, the body. */

#define MAX_HEADERS 64

struct http_request {
    char *method;
    char *path;  /* as on the request line */
    char *query; /* after '?', or NULL */
    struct aws_header headers[MAX_HEADERS];
    char *names[MAX_HEADERS]; /* owned copies behind headers[] */
    char *values[MAX_HEADERS];
    size_t header_count;
    const char *body; /* points into text */
    size_t body_len;
    char *text;
};

static void http_request_free(struct http_request *r)
{
    free(r->method);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->header_count; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->text);
    memset(r, 0, sizeof(*r));
}

/* Splits "METHOD TARGET HTTP/1.1"; the target may hold spaces ("/example space/"). */
static void parse_request_line(const char *line, size_t len, struct http_request *r)
{
    const char *sp1 = memchr(line, ' ', len);
    const char *sp2 = line + len;
    while (sp2 > line && sp2[-1] != ' ')
        sp2--;
    assert_non_null(sp1);
    assert_true(sp2 - 1 > sp1);
    r->method = xstrndup(line, (size_t)(sp1 - line));
    const char *target = sp1 + 1, *target_end = sp2 - 1;
    const char *q = memchr(target, '?', (size_t)(target_end - target));
    r->path = xstrndup(target, (size_t)((q ? q : target_end) - target));
    r->query = q ? xstrndup(q + 1, (size_t)(target_end - q - 1)) : NULL;
}

static void add_header(struct http_request *r, const char *name, size_t name_len, const char *value,
                       size_t value_len)
{
    assert_true(r->header_count < MAX_HEADERS);
    size_t i = r->header_count++;
    r->names[i] = xstrndup(name, name_len);
    r->values[i] = xstrndup(value, value_len);
    r->headers[i] = (struct aws_header){r->names[i], r->values[i]};
}

/* A folded line is appended as is, line break included: the signer must unfold it. */
static void continue_header(struct http_request *r, const char *line, size_t len)
{
    assert_true(r->header_count > 0);
    size_t i = r->header_count - 1;
    size_t old = strlen(r->values[i]);
    char *v = malloc(old + 1 + len + 1);
    assert_non_null(v);
    memcpy(v, r->values[i], old);
    v[old] = '\n';
    memcpy(v + old + 1, line, len);
    v[old + 1 + len] = '\0';
    free(r->values[i]);
    r->values[i] = v;
    r->headers[i].value = v;
}

static void parse_request(char *text, size_t text_len, struct http_request *r)
{
    memset(r, 0, sizeof(*r));
    r->text = text;
    const char *p = text, *end = text + text_len;
    bool first = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        size_t len = (size_t)(line_end - p);
        if (len && p[len - 1] == '\r')
            len--;
        if (first) {
            parse_request_line(p, len, r);
            first = false;
        } else if (len == 0) {
            p = next;
            break; /* blank line: the body follows */
        } else if (p[0] == ' ' || p[0] == '\t') {
            continue_header(r, p, len);
        } else {
            const char *colon = memchr(p, ':', len);
            assert_non_null(colon);
            add_header(r, p, (size_t)(colon - p), colon + 1, len - (size_t)(colon + 1 - p));
        }
        p = next;
    }
    assert_false(first);
    r->body = p;
    r->body_len = (size_t)(end - p);
}

/* ------------------------------------------------------------------------------------------ */
/* context.json: flat keys only, which is all the suite uses (keys are unique in a file). */

static const char *json_value(const char *json, const char *key)
{
    char quoted[128];
    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (!p)
        return NULL;
    p += strlen(quoted);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* A string value (no escapes in the suite), malloc'd, or NULL when absent. */
static char *json_string(const char *json, const char *key)
{
    const char *v = json_value(json, key);
    if (!v || *v != '"')
        return NULL;
    const char *end = strchr(v + 1, '"');
    assert_non_null(end);
    return xstrndup(v + 1, (size_t)(end - v - 1));
}

static char *json_string_required(const char *json, const char *key)
{
    char *s = json_string(json, key);
    if (!s)
        fail_msg("context.json has no string \"%s\"", key);
    return s;
}

static bool json_bool(const char *json, const char *key, bool fallback)
{
    const char *v = json_value(json, key);
    if (!v)
        return fallback;
    if (strncmp(v, "true", 4) == 0)
        return true;
    if (strncmp(v, "false", 5) == 0)
        return false;
    fail_msg("context.json: \"%s\" is not a boolean", key);
    return fallback;
}

static long json_number(const char *json, const char *key)
{
    const char *v = json_value(json, key);
    if (!v)
        fail_msg("context.json has no number \"%s\"", key);
    char *end;
    long n = strtol(v, &end, 10);
    assert_true(end > v);
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* One suite case, loaded */

struct suite_case {
    char *name;
    char *dir;
    char *test_name; /* "header/<name>" or "query/<name>" */
};

struct loaded_case {
    struct http_request req;
    struct aws_credentials creds;
    char *token; /* session token from context.json, NULL when none */
    char *region;
    char *service;
    char amz_date[17];
    bool normalize;
    bool sign_body;
    bool omit_session_token;
    long expires;
    char body_hash[65];
};

/* "2015-08-30T12:36:00Z" -> "20150830T123600Z", through sigv4_format_date. */
static void iso8601_to_amz_date(const char *iso, char out[17])
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    assert_int_equal(sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                     6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    sigv4_format_date(timegm(&tm), out);
}

static void load_case(const struct suite_case *sc, struct loaded_case *lc)
{
    memset(lc, 0, sizeof(*lc));
    size_t len = 0;
    char *request = read_file(sc->dir, "request.txt", &len);
    if (!request)
        fail_msg("%s/request.txt: cannot read", sc->dir);
    parse_request(request, len, &lc->req);

    char *ctx = read_required(sc->dir, "context.json");
    char *akid = json_string_required(ctx, "access_key_id");
    char *secret = json_string_required(ctx, "secret_access_key");
    char *timestamp = json_string_required(ctx, "timestamp");
    lc->token = json_string(ctx, "token");
    lc->region = json_string_required(ctx, "region");
    lc->service = json_string_required(ctx, "service");
    lc->normalize = json_bool(ctx, "normalize", true);
    lc->sign_body = json_bool(ctx, "sign_body", false);
    lc->omit_session_token = json_bool(ctx, "omit_session_token", false);
    lc->expires = json_number(ctx, "expiration_in_seconds");
    iso8601_to_amz_date(timestamp, lc->amz_date);

    /* Signing with the token means it is signed; omit_session_token means it is not. */
    const char *signed_token = lc->omit_session_token ? NULL : lc->token;
    lc->creds = make_creds(akid, secret, signed_token);
    sha256_hex(lc->req.body, lc->req.body_len, lc->body_hash);
    free(akid);
    free(secret);
    free(timestamp);
    free(ctx);
}

static void unload_case(struct loaded_case *lc)
{
    http_request_free(&lc->req);
    free(lc->token);
    free(lc->region);
    free(lc->service);
}

/* aws-c-auth signs the suite with use_double_uri_encode on in every case and
 * should_normalize_uri_path from "normalize"; request.txt holds the raw path (with a space,
 * with raw UTF-8), which double encoding turns into its single-encoded canonical form.
 * (Verified: with double_encode = normalize, get-space-unnormalized signs "/example space/".) */
static struct sigv4_scope suite_scope(const struct loaded_case *lc)
{
    struct sigv4_scope scope = {
        .region = lc->region,
        .service = lc->service,
        .amz_date = lc->amz_date,
        .normalize_path = lc->normalize,
        .double_encode = true,
    };
    return scope;
}

/* Value of the line starting with `prefix` in text, malloc'd. */
static char *line_value(const char *text, const char *prefix)
{
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len >= strlen(prefix) && strncmp(p, prefix, strlen(prefix)) == 0)
            return xstrndup(p + strlen(prefix), len - strlen(prefix));
        p = nl ? nl + 1 : NULL;
    }
    fail_msg("no line starting with \"%s\"", prefix);
    return NULL;
}

static void assert_file_equals(const struct suite_case *sc, const char *file, const char *actual)
{
    char *expected = read_required(sc->dir, file);
    if (strcmp(expected, actual) != 0) {
        print_error("%s/%s differs:\n--- expected\n%s\n--- actual\n%s\n", sc->name, file, expected,
                    actual);
        free(expected);
        fail();
    }
    free(expected);
}

static void test_suite_header(void **state)
{
    const struct suite_case *sc = *state;
    struct loaded_case lc;
    load_case(sc, &lc);

    /* The headers the caller would add before signing. */
    struct aws_header headers[MAX_HEADERS + 3];
    size_t n = lc.req.header_count;
    memcpy(headers, lc.req.headers, n * sizeof(headers[0]));
    headers[n++] = (struct aws_header){"X-Amz-Date", lc.amz_date};
    if (lc.creds.session_token[0])
        headers[n++] = (struct aws_header){"X-Amz-Security-Token", lc.creds.session_token};
    if (lc.sign_body)
        headers[n++] = (struct aws_header){"x-amz-content-sha256", lc.body_hash};

    struct sigv4_request req = {lc.req.method, lc.req.path, lc.req.query, headers, n, lc.body_hash};
    struct sigv4_scope scope = suite_scope(&lc);
    struct sigv4_signature sig;
    struct s3_error err;
    s3_error_clear(&err);
    int rc = sigv4_sign(&req, &scope, &lc.creds, &sig, &err);
    if (rc != 0)
        fail_msg("%s: sigv4_sign failed: %s: %s", sc->name, err.code, err.message);

    assert_file_equals(sc, "header-canonical-request.txt", sig.canonical_request);
    assert_file_equals(sc, "header-string-to-sign.txt", sig.string_to_sign);
    assert_file_equals(sc, "header-signature.txt", sig.signature);
    char *signed_request = read_required(sc->dir, "header-signed-request.txt");
    char *authorization = line_value(signed_request, "Authorization:");
    assert_string_equal(sig.authorization, authorization);
    free(authorization);
    free(signed_request);

    sigv4_signature_clear(&sig);
    unload_case(&lc);
}

/* The query of query-signed-request.txt's request line. With omit_session_token the token was
 * added after signing, so it is dropped here (we signed without it). */
static char *expected_presigned_query(const struct suite_case *sc, const struct loaded_case *lc)
{
    char *signed_request = read_required(sc->dir, "query-signed-request.txt");
    const char *q = strchr(signed_request, '?');
    const char *end = strstr(signed_request, " HTTP/1.1\n");
    assert_non_null(q);
    assert_non_null(end);
    assert_true(end > q);
    char *query = xstrndup(q + 1, (size_t)(end - q - 1));
    free(signed_request);

    if (lc->omit_session_token && lc->token) {
        char *tok = strstr(query, "&X-Amz-Security-Token=");
        assert_non_null(tok);
        char *after = strchr(tok + 1, '&');
        assert_non_null(after);
        memmove(tok, after, strlen(after) + 1);
    }
    return query;
}

static void test_suite_query(void **state)
{
    const struct suite_case *sc = *state;
    struct loaded_case lc;
    load_case(sc, &lc);

    struct sigv4_request req = {lc.req.method,  lc.req.path,         lc.req.query,
                                lc.req.headers, lc.req.header_count, lc.body_hash};
    struct sigv4_scope scope = suite_scope(&lc);
    struct sigv4_signature sig;
    struct s3_error err;
    s3_error_clear(&err);
    assert_true(lc.expires > 0);
    char *query = sigv4_presign_query(&req, &scope, &lc.creds, (unsigned)lc.expires, &sig, &err);
    if (!query)
        fail_msg("%s: sigv4_presign_query failed: %s: %s", sc->name, err.code, err.message);

    assert_file_equals(sc, "query-canonical-request.txt", sig.canonical_request);
    assert_file_equals(sc, "query-string-to-sign.txt", sig.string_to_sign);
    assert_file_equals(sc, "query-signature.txt", sig.signature);
    assert_null(sig.authorization);
    char *expected = expected_presigned_query(sc, &lc);
    assert_string_equal(query, expected);
    free(expected);

    free(query);
    sigv4_signature_clear(&sig);
    unload_case(&lc);
}

/* ------------------------------------------------------------------------------------------ */
/* Finding the cases */

struct suite {
    char *dir;
    struct suite_case *cases;
    size_t count;
};

static int compare_cases(const void *a, const void *b)
{
    return strcmp(((const struct suite_case *)a)->name, ((const struct suite_case *)b)->name);
}

/* Every sub-folder is a case, whatever it holds: a broken one must fail, not vanish. */
static void find_cases(struct suite *s, const char *testdata)
{
    memset(s, 0, sizeof(*s));
    if (!testdata)
        return;
    s->dir = path_join(testdata, "aws-sigv4-test-suite");
    DIR *d = opendir(s->dir);
    if (!d)
        return;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *dir = path_join(s->dir, e->d_name);
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            free(dir);
            continue;
        }
        if (s->count == cap) {
            cap = cap ? 2 * cap : 64;
            s->cases = realloc(s->cases, cap * sizeof(*s->cases));
            if (!s->cases)
                abort();
        }
        s->cases[s->count++] = (struct suite_case){strdup(e->d_name), dir, NULL};
    }
    closedir(d);
    if (s->count)
        qsort(s->cases, s->count, sizeof(*s->cases), compare_cases);
}

static void test_suite_has_enough_cases(void **state)
{
    const struct suite *s = *state;
    if (s->count < SUITE_MIN_CASES)
        fail_msg("found %zu SigV4 suite cases in %s, expected at least %d (is S3IMGFS_TESTDATA "
                 "set?)",
                 s->count, s->dir ? s->dir : "(no test data directory)", SUITE_MIN_CASES);
}

/* ------------------------------------------------------------------------------------------ */
/* S3 cases of our own */

#define DOC_AKID   "AKIAIOSFODNN7EXAMPLE"
#define DOC_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

/* The "GET Object" example of the S3 SigV4 documentation (sig-v4-header-based-auth.html). */
static void test_s3_doc_get_object(void **state)
{
    (void)state;
    struct aws_credentials creds = make_creds(DOC_AKID, DOC_SECRET, NULL);
    struct aws_header headers[] = {
        {"Host", "examplebucket.s3.amazonaws.com"},
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256", EMPTY_SHA256},
        {"x-amz-date", "20130524T000000Z"},
    };
    struct sigv4_request req = {"GET", "/test.txt", NULL, headers, 4, EMPTY_SHA256};
    struct sigv4_scope scope = {"us-east-1", "s3", "20130524T000000Z", false, false};
    struct sigv4_signature sig;
    assert_int_equal(sigv4_sign(&req, &scope, &creds, &sig, NULL), 0);
    assert_string_equal(sig.signature,
                        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    assert_string_equal(sig.signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
    sigv4_signature_clear(&sig);
}

/* The presigned URL example of the same documentation (sigv4-query-string-auth.html). */
static void test_s3_doc_presigned_url(void **state)
{
    (void)state;
    struct aws_credentials creds = make_creds(DOC_AKID, DOC_SECRET, NULL);
    struct aws_header headers[] = {{"Host", "examplebucket.s3.amazonaws.com"}};
    struct sigv4_request req = {"GET", "/test.txt", NULL, headers, 1, "UNSIGNED-PAYLOAD"};
    struct sigv4_scope scope = {"us-east-1", "s3", "20130524T000000Z", false, false};
    char *q = sigv4_presign_query(&req, &scope, &creds, 86400, NULL, NULL);
    assert_non_null(q);
    assert_string_equal(q, "X-Amz-Algorithm=AWS4-HMAC-SHA256"
                           "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
                           "aws4_request"
                           "&X-Amz-Date=20130524T000000Z&X-Amz-SignedHeaders=host"
                           "&X-Amz-Expires=86400"
                           "&X-Amz-Signature="
                           "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    free(q);
}

/* An S3 GET of an awkward key, signed the S3 way (path as sent, no normalisation, no second
 * encoding, UNSIGNED-PAYLOAD). Expected values computed with Python's standard library from a
 * canonical request written by hand:
 *
 *   import hashlib, hmac
 *   cr = ("GET\n"
 *         "/photos/my%20summer%2B2024/100%25/%C3%BCn%C3%AFcode%20%E2%98%83.jpg\n"
 *         "response-content-type=image%2Fjpeg&versionId=3%2Fab%2Bc&x-id=GetObject\n"
 *         "host:my-bucket.s3.eu-west-1.amazonaws.com\n"
 *         "range:bytes=0-1023\n"
 *         "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
 *         "x-amz-date:20240229T235959Z\n"
 *         "\n"
 *         "host;range;x-amz-content-sha256;x-amz-date\n"
 *         "UNSIGNED-PAYLOAD")
 *   k = hmac.new(b"AWS4" + SECRET.encode(), b"20240229", hashlib.sha256).digest()
 *   for part in ("eu-west-1", "s3", "aws4_request"):
 *       k = hmac.new(k, part.encode(), hashlib.sha256).digest()
 *   sts = ("AWS4-HMAC-SHA256\n20240229T235959Z\n20240229/eu-west-1/s3/aws4_request\n"
 *          + hashlib.sha256(cr.encode()).hexdigest())
 *   print(hmac.new(k, sts.encode(), hashlib.sha256).hexdigest())
 */
/* "photos/my summer+2024/100%/ünïcode ☃.jpg" */
static const char AWKWARD_KEY[] = "photos/my summer+2024/100%/\xc3\xbc"
                                  "n\xc3\xaf"
                                  "code \xe2\x98\x83.jpg";
static const char AWKWARD_PATH[] =
    "/photos/my%20summer%2B2024/100%25/%C3%BCn%C3%AFcode%20%E2%98%83.jpg";
static const char AWKWARD_STS_HASH[] =
    "43333c41b663620e0766f1b637aac72f22a467af84bf73407ed50e363ac37a6d";
static const char AWKWARD_SIGNATURE[] =
    "719c20de410932f9accf99e73cf460d7c098de225ac4d41262191c01b557bc75";

static void test_s3_awkward_key(void **state)
{
    (void)state;
    char *key = aws_uri_encode(AWKWARD_KEY, strlen(AWKWARD_KEY), true);
    assert_non_null(key);
    char path[512];
    snprintf(path, sizeof(path), "/%s", key);
    free(key);
    assert_string_equal(path, AWKWARD_PATH);

    struct aws_credentials creds = make_creds(DOC_AKID, DOC_SECRET, NULL);
    /* Mixed case and order on purpose: the signer sorts and lowercases. */
    struct aws_header headers[] = {
        {"X-Amz-Date", "20240229T235959Z"},
        {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"},
        {"RANGE", "  bytes=0-1023 "},
        {"Host", "my-bucket.s3.eu-west-1.amazonaws.com"},
    };
    struct sigv4_request req = {
        "GET",   path, "x-id=GetObject&versionId=3%2Fab%2Bc&response-content-type=image%2Fjpeg",
        headers, 4,    "UNSIGNED-PAYLOAD"};
    struct sigv4_scope scope = {"eu-west-1", "s3", "20240229T235959Z", false, false};
    struct sigv4_signature sig;
    struct s3_error err;
    assert_int_equal(sigv4_sign(&req, &scope, &creds, &sig, &err), 0);
    assert_string_equal(sig.canonical_request,
                        "GET\n"
                        "/photos/my%20summer%2B2024/100%25/%C3%BCn%C3%AFcode%20%E2%98%83.jpg\n"
                        "response-content-type=image%2Fjpeg&versionId=3%2Fab%2Bc&x-id=GetObject\n"
                        "host:my-bucket.s3.eu-west-1.amazonaws.com\n"
                        "range:bytes=0-1023\n"
                        "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
                        "x-amz-date:20240229T235959Z\n"
                        "\n"
                        "host;range;x-amz-content-sha256;x-amz-date\n"
                        "UNSIGNED-PAYLOAD");
    assert_non_null(strstr(sig.string_to_sign, AWKWARD_STS_HASH));
    assert_string_equal(sig.signature, AWKWARD_SIGNATURE);
    assert_string_equal(
        sig.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240229/eu-west-1/s3/"
        "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=719c20de410932f9accf99e73cf460d7c098de225ac4d41262191c01b557bc75");
    sigv4_signature_clear(&sig);
}

/* S3 keys may hold "." and ".." segments and "//": S3 signs them as sent; other services
 * normalise and encode once more. */
static char *canonical_path_of(const char *path, bool normalize, bool double_encode)
{
    struct aws_credentials creds = make_creds("AKID", "SECRET", NULL);
    struct aws_header headers[] = {{"host", "h"}};
    struct sigv4_request req = {"GET", path, NULL, headers, 1, "UNSIGNED-PAYLOAD"};
    struct sigv4_scope scope = {"r", "s3", "20200101T000000Z", normalize, double_encode};
    struct sigv4_signature sig;
    assert_int_equal(sigv4_sign(&req, &scope, &creds, &sig, NULL), 0);
    char *line = sig.canonical_request + strlen("GET\n");
    char *result = xstrndup(line, strcspn(line, "\n"));
    sigv4_signature_clear(&sig);
    return result;
}

static void test_path_rules(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        bool normalize, double_encode;
        const char *canonical;
    } cases[] = {
        {"/a/./b//c/../d%20e/", false, false, "/a/./b//c/../d%20e/"},
        {"/a/./b//c/../d%20e/", true, true, "/a/b/d%2520e/"},
        {"/a/./b//c/../d%20e/", true, false, "/a/b/d%20e/"},
        {"/a/./b//c/../d%20e/", false, true, "/a/./b//c/../d%2520e/"},
        {"/../../x", true, true, "/x"},
        {"/x/..", true, true, "/"},
        {"/", true, true, "/"},
        {"/", false, false, "/"},
        {"/key+with%2Bplus", false, false, "/key+with%2Bplus"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = canonical_path_of(cases[i].path, cases[i].normalize, cases[i].double_encode);
        assert_string_equal(got, cases[i].canonical);
        free(got);
    }
}

static char *canonical_query_of(const char *query)
{
    struct aws_credentials creds = make_creds("AKID", "SECRET", NULL);
    struct aws_header headers[] = {{"host", "h"}};
    struct sigv4_request req = {"GET", "/", query, headers, 1, "UNSIGNED-PAYLOAD"};
    struct sigv4_scope scope = {"r", "s3", "20200101T000000Z", false, false};
    struct sigv4_signature sig;
    assert_int_equal(sigv4_sign(&req, &scope, &creds, &sig, NULL), 0);
    char *line = strchr(sig.canonical_request + strlen("GET\n"), '\n') + 1;
    char *result = xstrndup(line, strcspn(line, "\n"));
    sigv4_signature_clear(&sig);
    return result;
}

static void test_query_rules(void **state)
{
    (void)state;
    static const struct {
        const char *query, *canonical;
    } cases[] = {
        {"", ""},
        {"uploads", "uploads="},              /* no '=': empty value */
        {"b=2&a=1&a=0", "a=0&a=1&b=2"},       /* by name, then value */
        {"a=%7e%2f&c=~/", "a=~%2F&c=~%2F"},   /* decoded, re-encoded */
        {"p=a+b&q=a%20b", "p=a%2Bb&q=a%20b"}, /* '+' is a literal plus */
        {"a=1&&b=&=x", "=x&a=1&b="},          /* empty pieces are dropped */
        {"prefix=%C3%BC&delimiter=/", "delimiter=%2F&prefix=%C3%BC"},
        {"Z=1&a=1&_=1", "Z=1&_=1&a=1"}, /* byte order, not case order */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = canonical_query_of(cases[i].query);
        assert_string_equal(got, cases[i].canonical);
        free(got);
    }
}

/* Header rules beyond the suite: tabs, several spaces, a repeated name given in mixed case. */
static void test_header_rules(void **state)
{
    (void)state;
    struct aws_credentials creds = make_creds("AKID", "SECRET", NULL);
    struct aws_header headers[] = {
        {"X-B", "\t two \t  words\t"}, {"host", "h"}, {"x-a", "1"}, {"X-A", " 2 "}, {"x-c", ""},
    };
    struct sigv4_request req = {"PUT", "/", NULL, headers, 5, EMPTY_SHA256};
    struct sigv4_scope scope = {"r", "s3", "20200101T000000Z", false, false};
    struct sigv4_signature sig;
    assert_int_equal(sigv4_sign(&req, &scope, &creds, &sig, NULL), 0);
    assert_string_equal(sig.canonical_request, "PUT\n/\n\n"
                                               "host:h\n"
                                               "x-a:1,2\n"
                                               "x-b:two words\n"
                                               "x-c:\n"
                                               "\n"
                                               "host;x-a;x-b;x-c\n" EMPTY_SHA256);
    sigv4_signature_clear(&sig);
}

/* Presigning with temporary credentials puts the token in the signed query. Expected signature
 * from the same Python recipe as above, with the canonical request
 *   "GET\n/test.txt\n"
 *   "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
 *   "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
 *   "&X-Amz-Security-Token=FQoG%2Fsome%2Btoken%3D%3D&X-Amz-SignedHeaders=host\n"
 *   "host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
 */
static void test_presign_session_token(void **state)
{
    (void)state;
    struct aws_credentials creds = make_creds(DOC_AKID, DOC_SECRET, "FQoG/some+token==");
    struct aws_header headers[] = {{"Host", "examplebucket.s3.amazonaws.com"}};
    struct sigv4_request req = {"GET", "/test.txt", "", headers, 1, "UNSIGNED-PAYLOAD"};
    struct sigv4_scope scope = {"us-east-1", "s3", "20130524T000000Z", false, false};
    struct sigv4_signature sig;
    char *q = sigv4_presign_query(&req, &scope, &creds, 86400, &sig, NULL);
    assert_non_null(q);
    assert_non_null(strstr(q, "&X-Amz-Security-Token=FQoG%2Fsome%2Btoken%3D%3D&X-Amz-Signature="));
    assert_non_null(
        strstr(sig.canonical_request, "&X-Amz-Security-Token=FQoG%2Fsome%2Btoken%3D%3D&"));
    assert_string_equal(sig.signature,
                        "1dce28cf55d348d9376e555e4e54fee008c53e62d3eaf5ef0af6c162a0f193cc");
    assert_null(sig.authorization);
    free(q);
    sigv4_signature_clear(&sig);

    /* Without a token there is no token parameter. */
    creds.session_token[0] = '\0';
    q = sigv4_presign_query(&req, &scope, &creds, 86400, NULL, NULL);
    assert_non_null(q);
    assert_null(strstr(q, "X-Amz-Security-Token"));
    free(q);
}

/* The request's own query comes first, kept as given; the X-Amz-* parameters follow. */
static void test_presign_keeps_query(void **state)
{
    (void)state;
    struct aws_credentials creds = make_creds(DOC_AKID, DOC_SECRET, NULL);
    struct aws_header headers[] = {{"Host", "b.s3.amazonaws.com"}};
    struct sigv4_request req = {"GET", "/k", "versionId=a%2Fb", headers, 1, "UNSIGNED-PAYLOAD"};
    struct sigv4_scope scope = {"us-east-1", "s3", "20130524T000000Z", false, false};
    char *q = sigv4_presign_query(&req, &scope, &creds, 60, NULL, NULL);
    assert_non_null(q);
    assert_true(strncmp(q, "versionId=a%2Fb&X-Amz-Algorithm=", 32) == 0);
    free(q);
}

/* Long inputs: no truncation, and no quadratic blow-up (this runs in well under a second). */
static void test_long_inputs(void **state)
{
    (void)state;
    enum { KEY_LEN = 200000, PARAMS = 20000 };
    char *path = malloc(KEY_LEN + 2);
    assert_non_null(path);
    path[0] = '/';
    for (size_t i = 1; i <= KEY_LEN; i++)
        path[i] = (char)('a' + i % 26);
    path[KEY_LEN + 1] = '\0';

    char *query = malloc((size_t)PARAMS * 16);
    assert_non_null(query);
    size_t off = 0;
    for (int i = PARAMS - 1; i >= 0; i--) /* reverse order: the signer must sort */
        off += (size_t)sprintf(query + off, "%sp%05d=%d", off ? "&" : "", i, i);

    struct aws_credentials creds = make_creds("AKID", "SECRET", NULL);
    struct aws_header headers[] = {{"host", "h"}};
    struct sigv4_request req = {"GET", path, query, headers, 1, "UNSIGNED-PAYLOAD"};
    struct sigv4_scope scope = {"r", "s3", "20200101T000000Z", false, false};
    struct sigv4_signature sig;
    assert_int_equal(sigv4_sign(&req, &scope, &creds, &sig, NULL), 0);
    assert_true(strncmp(sig.canonical_request + 4, path, KEY_LEN + 1) == 0);
    const char *q = sig.canonical_request + 4 + KEY_LEN + 2;
    assert_true(strncmp(q, "p00000=0&p00001=1&", 18) == 0);
    assert_non_null(strstr(q, "&p19999=19999\n"));
    sigv4_signature_clear(&sig);

    char *presigned = sigv4_presign_query(&req, &scope, &creds, 60, NULL, NULL);
    assert_non_null(presigned);
    assert_true(strncmp(presigned, query, strlen(query)) == 0);
    free(presigned);
    free(query);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* Errors and helpers */

static void expect_sign_error(const struct sigv4_request *req, const struct sigv4_scope *scope,
                              const struct aws_credentials *creds, const char *code)
{
    struct sigv4_signature sig;
    struct s3_error err;
    s3_error_clear(&err);
    assert_int_equal(sigv4_sign(req, scope, creds, &sig, &err), -1);
    assert_string_equal(err.code, code);
    assert_true(err.message[0] != '\0');
    /* Nothing is left allocated: clearing again is harmless. */
    assert_null(sig.canonical_request);
    assert_null(sig.authorization);
    sigv4_signature_clear(&sig);
}

static void test_sign_errors(void **state)
{
    (void)state;
    struct aws_credentials creds = make_creds("AKID", "SECRET", NULL);
    struct aws_credentials no_creds = make_creds("", "", NULL);
    struct aws_header host[] = {{"Host", "h"}};
    struct aws_header no_host[] = {{"x-amz-date", "20200101T000000Z"}};
    struct aws_header bad_name[] = {{"Host", "h"}, {"bad name", "v"}};
    struct sigv4_scope scope = {"r", "s3", "20200101T000000Z", false, false};
    struct sigv4_scope bad_date = {"r", "s3", "2020-01-01T00:00:00Z", false, false};
    struct sigv4_scope no_region = {"", "s3", "20200101T000000Z", false, false};

    struct sigv4_request ok = {"GET", "/", NULL, host, 1, "UNSIGNED-PAYLOAD"};
    struct sigv4_request r;

    r = ok;
    r.headers = no_host;
    expect_sign_error(&r, &scope, &creds, "InvalidArgument");
    r = ok;
    r.headers = bad_name;
    r.header_count = 2;
    expect_sign_error(&r, &scope, &creds, "InvalidArgument");
    r = ok;
    r.query = "a=%zz";
    expect_sign_error(&r, &scope, &creds, "InvalidArgument");
    r = ok;
    r.query = "a=1&b=%4";
    expect_sign_error(&r, &scope, &creds, "InvalidArgument");
    r = ok;
    r.path = "no-slash";
    expect_sign_error(&r, &scope, &creds, "InvalidArgument");
    r = ok;
    r.payload_hash = NULL;
    expect_sign_error(&r, &scope, &creds, "InvalidArgument");
    expect_sign_error(&ok, &bad_date, &creds, "InvalidArgument");
    expect_sign_error(&ok, &no_region, &creds, "InvalidArgument");
    expect_sign_error(&ok, &scope, &no_creds, "InvalidArgument");
    expect_sign_error(NULL, &scope, &creds, "InvalidArgument");

    struct s3_error err;
    s3_error_clear(&err);
    assert_null(sigv4_presign_query(&ok, &scope, &creds, 0, NULL, &err));
    assert_string_equal(err.code, "InvalidArgument");
    assert_null(sigv4_presign_query(&ok, &scope, &creds, 604801, NULL, &err));
    struct sigv4_signature sig;
    r = ok;
    r.query = "%";
    assert_null(sigv4_presign_query(&r, &scope, &creds, 60, &sig, &err));
    assert_null(sig.canonical_request);
    /* A NULL err is allowed. */
    assert_null(sigv4_presign_query(&r, &scope, &creds, 60, NULL, NULL));
}

static void test_format_date(void **state)
{
    (void)state;
    char d[17];
    sigv4_format_date(0, d);
    assert_string_equal(d, "19700101T000000Z");
    sigv4_format_date(1440938160, d);
    assert_string_equal(d, "20150830T123600Z");
    sigv4_format_date(951868799, d); /* 2000-02-29 23:59:59 */
    assert_string_equal(d, "20000229T235959Z");
}

static void test_credentials_static(void **state)
{
    (void)state;
    struct aws_credentials src = make_creds("AKID", "SECRET", "TOKEN");
    src.expiration = 1234;
    struct aws_credentials out;
    struct s3_error err;
    assert_int_equal(aws_credentials_static(&src, &out, &err), 0);
    assert_memory_equal(&out, &src, sizeof(out));

    struct aws_credentials empty = make_creds("", "", NULL);
    assert_int_equal(aws_credentials_static(&empty, &out, &err), -1);
    assert_string_equal(err.code, "InvalidArgument");
    assert_int_equal(aws_credentials_static(NULL, &out, NULL), -1);
}

/* ------------------------------------------------------------------------------------------ */

static const struct CMUnitTest fixed_tests[] = {
    cmocka_unit_test(test_s3_doc_get_object),     cmocka_unit_test(test_s3_doc_presigned_url),
    cmocka_unit_test(test_s3_awkward_key),        cmocka_unit_test(test_path_rules),
    cmocka_unit_test(test_query_rules),           cmocka_unit_test(test_header_rules),
    cmocka_unit_test(test_presign_session_token), cmocka_unit_test(test_presign_keeps_query),
    cmocka_unit_test(test_long_inputs),           cmocka_unit_test(test_sign_errors),
    cmocka_unit_test(test_format_date),           cmocka_unit_test(test_credentials_static),
};

int main(int argc, char **argv)
{
    const char *testdata = getenv("S3IMGFS_TESTDATA");
    if (!testdata || !*testdata)
        testdata = argc > 1 ? argv[1] : NULL;

    struct suite suite;
    find_cases(&suite, testdata);

    size_t n_fixed = sizeof(fixed_tests) / sizeof(fixed_tests[0]);
    size_t n = n_fixed + 1 + 2 * suite.count;
    struct CMUnitTest *tests = calloc(n, sizeof(*tests));
    if (!tests)
        return 1;
    memcpy(tests, fixed_tests, sizeof(fixed_tests));
    size_t t = n_fixed;
    tests[t++] = (struct CMUnitTest){.name = "suite_has_enough_cases",
                                     .test_func = test_suite_has_enough_cases,
                                     .initial_state = &suite};

    /* Two tests per case, named after the folder, so a failure says which case and mode. */
    struct suite_case *named = calloc(2 * suite.count + 1, sizeof(*named));
    if (!named)
        return 1;
    for (size_t i = 0; i < suite.count; i++) {
        for (int mode = 0; mode < 2; mode++) {
            struct suite_case *sc = &named[2 * i + (size_t)mode];
            *sc = suite.cases[i];
            size_t len = strlen(sc->name) + 8;
            sc->test_name = malloc(len);
            if (!sc->test_name)
                return 1;
            snprintf(sc->test_name, len, "%s/%s", mode ? "query" : "header", sc->name);
            tests[t++] = (struct CMUnitTest){
                .name = sc->test_name,
                .test_func = mode ? test_suite_query : test_suite_header,
                .initial_state = sc,
            };
        }
    }

    int failed = _cmocka_run_group_tests("sigv4", tests, t, NULL, NULL);

    for (size_t i = 0; i < 2 * suite.count; i++)
        free(named[i].test_name);
    for (size_t i = 0; i < suite.count; i++) {
        free(suite.cases[i].name);
        free(suite.cases[i].dir);
    }
    free(named);
    free(suite.cases);
    free(suite.dir);
    free(tests);
    return failed;
}
