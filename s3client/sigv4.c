/* AWS Signature Version 4: canonical request, string to sign, signing key, signature.
 *
 * Everything here is pure: the caller supplies the time (scope->amz_date), the credentials and
 * the exact headers that will go on the wire, and gets strings back. The signer never adds a
 * header by itself. In particular a caller with temporary credentials must put
 * "x-amz-security-token" in req->headers (as it must put "x-amz-date", and for S3
 * "x-amz-content-sha256") before calling sigv4_sign: only the caller knows what it will send,
 * and a header that is signed but not sent, or sent but not signed, is a rejected request.
 * Presigning is different because there the signer builds the query, so it adds
 * X-Amz-Security-Token itself.
 *
 * Cost per request: one pass over each input plus one sort of the query parameters and one of
 * the headers; strings grow geometrically, so nothing is quadratic and nothing is truncated.
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SHA256_LEN      32
#define SHA256_HEX_LEN  64
/* The longest validity AWS accepts for a presigned request (7 days). */
#define PRESIGN_MAX_SECONDS 604800u

/* ------------------------------------------------------------------------------------------ */
/* Strings are built in a struct strbuf (internal.h): appends after an allocation failure are
 * ignored and the failure is remembered, so builders append freely and check once at the end. */

/* Appends s percent-encoded with the SigV4 rule (through uri.c, the one place that rule lives). */
static void append_encoded(struct strbuf *sb, const char *s, size_t n, bool keep_slash)
{
    if (sb->failed)
        return;
    char *enc = aws_uri_encode(s, n, keep_slash);
    if (!enc) {
        sb->failed = true;
        return;
    }
    strbuf_puts(sb, enc);
    free(enc);
}

/* ------------------------------------------------------------------------------------------ */
/* Crypto (OpenSSL 3: the one-shot EVP_Digest and HMAC calls are not deprecated). */

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0x0F];
    }
    out[2 * n] = '\0';
}

static bool sha256_hex(const char *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
    unsigned char md[SHA256_LEN];
    if (!EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL))
        return false;
    hex_encode(md, sizeof(md), out);
    return true;
}

static bool hmac_sha256(const void *key, size_t key_len, const char *data, size_t len,
                        unsigned char out[SHA256_LEN])
{
    unsigned int out_len = 0;
    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, len, out, &out_len) !=
               NULL &&
           out_len == SHA256_LEN;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
 * Each step reads the previous key from one buffer and writes the next into the other. */
static bool derive_signing_key(const struct aws_credentials *creds, const struct sigv4_scope *scope,
                               unsigned char key[SHA256_LEN])
{
    char secret[4 + sizeof(creds->secret_access_key)];
    size_t secret_len = strnlen(creds->secret_access_key, sizeof(creds->secret_access_key));
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, creds->secret_access_key, secret_len);

    unsigned char k_date[SHA256_LEN], k_region[SHA256_LEN];
    bool ok = hmac_sha256(secret, 4 + secret_len, scope->amz_date, 8, k_date) &&
              hmac_sha256(k_date, SHA256_LEN, scope->region, strlen(scope->region), k_region) &&
              hmac_sha256(k_region, SHA256_LEN, scope->service, strlen(scope->service), k_date) &&
              hmac_sha256(k_date, SHA256_LEN, "aws4_request", 12, key);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(k_date, sizeof(k_date));
    OPENSSL_cleanse(k_region, sizeof(k_region));
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Validation: a bad argument is a bug in the caller, reported rather than signed. */

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "YYYYMMDDTHHMMSSZ" */
static bool is_amz_date(const char *d)
{
    return d && strlen(d) == 16 && is_digits(d, 8) && d[8] == 'T' && is_digits(d + 9, 6) &&
           d[15] == 'Z';
}

static bool is_empty(const char *s)
{
    return !s || !*s;
}

/* A header name becomes "name:" and "name;" in the canonical request, so it must be a token. */
static bool is_header_name(const char *name)
{
    if (is_empty(name))
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= ' ' || *p >= 0x7F || *p == ':' || *p == ';' || *p == ',')
            return false;
    return true;
}

static int check_request(const struct sigv4_request *req, const struct sigv4_scope *scope,
                         const struct aws_credentials *creds, struct s3_error *err)
{
    const char *what = NULL;
    if (!req || !scope || !creds)
        what = "a request, a scope and credentials are all required";
    else if (is_empty(req->method))
        what = "the request has no method";
    else if (!req->path || req->path[0] != '/')
        what = "the request path must start with '/'";
    else if (is_empty(req->payload_hash))
        what = "the request has no payload hash (use \"UNSIGNED-PAYLOAD\" for none)";
    else if (req->header_count && !req->headers)
        what = "header_count is set but headers is NULL";
    else if (is_empty(scope->region) || is_empty(scope->service))
        what = "the scope needs a region and a service";
    else if (!is_amz_date(scope->amz_date))
        what = "scope->amz_date must look like 20150830T123600Z";
    else if (is_empty(creds->access_key_id) || is_empty(creds->secret_access_key))
        what = "the credentials have no access key id or no secret key";
    if (what) {
        s3_error_set(err, 0, "InvalidArgument", false, "SigV4: %s", what);
        return -1;
    }
    for (size_t i = 0; i < req->header_count; i++) {
        const struct aws_header *h = &req->headers[i];
        if (!is_header_name(h->name) || !h->value) {
            s3_error_set(err, 0, "InvalidArgument", false,
                         "SigV4: header %zu has an invalid name or no value", i);
            return -1;
        }
    }
    return 0;
}

static int fail_oom(struct s3_error *err)
{
    s3_error_set(err, 0, "OutOfMemory", false, "SigV4: out of memory while signing");
    return -1;
}

static int fail_crypto(struct s3_error *err)
{
    s3_error_set(err, 0, "InternalError", false,
                 "SigV4: OpenSSL could not compute SHA-256/HMAC (check the OpenSSL configuration)");
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Canonical URI */

struct segment {
    const char *ptr;
    size_t len;
};

/* Removes empty, "." and ".." segments as RFC 3986 remove_dot_segments would (".." never climbs
 * above the root), keeping one trailing '/' when the path had one and something is left. */
static bool append_normalized_path(struct strbuf *out, const char *path)
{
    size_t max_segments = 1;
    for (const char *p = path; *p; p++)
        max_segments += *p == '/';
    struct segment *segs = malloc(max_segments * sizeof(*segs));
    if (!segs)
        return false;

    size_t depth = 0;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        const char *start = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - start);
        if (len == 0 || (len == 1 && start[0] == '.'))
            continue;
        if (len == 2 && start[0] == '.' && start[1] == '.') {
            depth -= depth > 0;
            continue;
        }
        segs[depth++] = (struct segment){start, len};
    }

    strbuf_putc(out, '/');
    for (size_t i = 0; i < depth; i++) {
        strbuf_append(out, segs[i].ptr, segs[i].len);
        if (i + 1 < depth)
            strbuf_putc(out, '/');
    }
    size_t path_len = strlen(path);
    if (depth > 0 && path[path_len - 1] == '/')
        strbuf_putc(out, '/');
    free(segs);
    return true;
}

/* S3 signs the path exactly as sent. Other services sign it normalised, and encode it once more
 * (a wire "%20" becomes "%2520"): that is what their servers recompute on their side. */
static bool append_canonical_path(struct strbuf *out, const char *path,
                                  const struct sigv4_scope *scope)
{
    if (!scope->normalize_path && !scope->double_encode) {
        strbuf_puts(out, path);
        return true;
    }
    struct strbuf normal = {0};
    const char *p = path;
    if (scope->normalize_path) {
        if (!append_normalized_path(&normal, path) || normal.failed) {
            strbuf_free(&normal);
            return false;
        }
        p = normal.data;
    }
    if (scope->double_encode)
        append_encoded(out, p, strlen(p), true);
    else
        strbuf_puts(out, p);
    strbuf_free(&normal);
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Canonical query: every name and value decoded then re-encoded with the SigV4 rule (so "%7e"
 * and "~", or a raw UTF-8 byte and its escape, sign the same), sorted by name then value.
 * A '+' stays a literal '+' (signed "%2B"), as Ceph RGW's verifier decodes it; a space must be
 * sent as %20, which is what aws_uri_encode produces, so our own requests never hold a '+'. */

struct query_param {
    char *name;  /* encoded, malloc'd */
    char *value; /* encoded, malloc'd; "" for a parameter without '=' */
};

static int compare_params(const void *a, const void *b)
{
    const struct query_param *pa = a, *pb = b;
    int c = strcmp(pa->name, pb->name);
    return c ? c : strcmp(pa->value, pb->value);
}

/* Returns the canonical (decoded, re-encoded) form of one name or value, malloc'd. */
static char *recode(const char *s, size_t len, struct s3_error *err)
{
    size_t dec_len = 0;
    char *dec = aws_uri_decode(s, len, false, &dec_len);
    if (!dec) {
        if (errno == EINVAL)
            s3_error_set(err, 0, "InvalidArgument", false,
                         "SigV4: the query has a malformed %%-escape near \"%.*s\"",
                         (int)(len < 40 ? len : 40), s);
        else
            fail_oom(err);
        return NULL;
    }
    char *enc = aws_uri_encode(dec, dec_len, false);
    free(dec);
    if (!enc)
        fail_oom(err);
    return enc;
}

static void free_params(struct query_param *params, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(params[i].name);
        free(params[i].value);
    }
    free(params);
}

/* Splits the wire query into *out (count in *count); returns 0, or -1 with err filled. */
static int parse_query(const char *query, struct query_param **out, size_t *count,
                       struct s3_error *err)
{
    size_t max = 1;
    for (const char *p = query; *p; p++)
        max += *p == '&';
    struct query_param *params = calloc(max, sizeof(*params));
    if (!params)
        return fail_oom(err);

    size_t n = 0;
    for (const char *p = query; *p;) {
        const char *end = strchrnul(p, '&');
        if (end > p) { /* "a=1&&b=2": an empty piece is no parameter */
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *value = eq ? eq + 1 : end;
            struct query_param *param = &params[n++];
            param->name = recode(p, (size_t)((eq ? eq : end) - p), err);
            if (param->name)
                param->value = recode(value, (size_t)(end - value), err);
            if (!param->value) {
                free_params(params, n);
                return -1;
            }
        }
        p = *end ? end + 1 : end;
    }
    *out = params;
    *count = n;
    return 0;
}

static int append_canonical_query(struct strbuf *out, const char *query, struct s3_error *err)
{
    if (is_empty(query))
        return 0;
    struct query_param *params = NULL;
    size_t count = 0;
    if (parse_query(query, &params, &count, err) < 0)
        return -1;
    qsort(params, count, sizeof(*params), compare_params);
    for (size_t i = 0; i < count; i++) {
        if (i)
            strbuf_putc(out, '&');
        strbuf_puts(out, params[i].name);
        strbuf_putc(out, '=');
        strbuf_puts(out, params[i].value);
    }
    free_params(params, count);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Canonical headers: lowercase names, sorted; values trimmed with inner whitespace runs
 * collapsed to one space (an obs-fold line break counts as whitespace, so a folded value signs
 * as one line); a name given several times signs once, its values joined by ',' in the order
 * given. */

struct header_ref {
    const struct aws_header *h;
    size_t order; /* position in req->headers: keeps repeated names in the caller's order */
};

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Same order as strcmp on the lowercased names, without lowercasing copies. */
static int ascii_casecmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && ascii_lower(*x) == ascii_lower(*y)) {
        x++;
        y++;
    }
    return (int)ascii_lower(*x) - (int)ascii_lower(*y);
}

static int compare_header_refs(const void *a, const void *b)
{
    const struct header_ref *ha = a, *hb = b;
    int c = ascii_casecmp(ha->h->name, hb->h->name);
    if (c)
        return c;
    return ha->order < hb->order ? -1 : ha->order > hb->order;
}

static void append_lowercase(struct strbuf *out, const char *s)
{
    size_t start = out->len;
    strbuf_puts(out, s);
    if (out->failed)
        return;
    for (size_t i = start; i < out->len; i++)
        out->data[i] = (char)ascii_lower((unsigned char)out->data[i]);
}

static bool is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void append_trimmed_value(struct strbuf *out, const char *v)
{
    bool first = true;
    while (*v) {
        while (is_lws(*v))
            v++;
        const char *word = v;
        while (*v && !is_lws(*v))
            v++;
        if (v == word)
            break;
        if (!first)
            strbuf_putc(out, ' ');
        strbuf_append(out, word, (size_t)(v - word));
        first = false;
    }
}

/* Fills `canon` with "name:value\n" lines and `names` with "name;name". */
static int build_headers(const struct sigv4_request *req, struct strbuf *canon,
                         struct strbuf *names, struct s3_error *err)
{
    size_t n = req->header_count;
    struct header_ref *refs = malloc((n ? n : 1) * sizeof(*refs));
    if (!refs)
        return fail_oom(err);
    for (size_t i = 0; i < n; i++)
        refs[i] = (struct header_ref){&req->headers[i], i};
    qsort(refs, n, sizeof(*refs), compare_header_refs);

    bool has_host = false;
    for (size_t i = 0; i < n; i++) {
        const char *name = refs[i].h->name;
        bool repeated = i > 0 && ascii_casecmp(name, refs[i - 1].h->name) == 0;
        if (repeated) {
            strbuf_putc(canon, ',');
        } else {
            if (i > 0) {
                strbuf_putc(canon, '\n');
                strbuf_putc(names, ';');
            }
            append_lowercase(canon, name);
            strbuf_putc(canon, ':');
            append_lowercase(names, name);
            has_host |= ascii_casecmp(name, "host") == 0;
        }
        append_trimmed_value(canon, refs[i].h->value);
    }
    if (n)
        strbuf_putc(canon, '\n');
    free(refs);

    if (!has_host) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "SigV4: the headers to sign must include \"host\"");
        return -1;
    }
    return canon->failed || names->failed ? fail_oom(err) : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Putting it together */

/* "20150830/us-east-1/service/aws4_request" */
static void append_credential_scope(struct strbuf *out, const struct sigv4_scope *scope)
{
    strbuf_append(out, scope->amz_date, 8);
    strbuf_putc(out, '/');
    strbuf_puts(out, scope->region);
    strbuf_putc(out, '/');
    strbuf_puts(out, scope->service);
    strbuf_puts(out, "/aws4_request");
}

/* METHOD \n PATH \n QUERY \n HEADER LINES \n SIGNED HEADERS \n PAYLOAD HASH */
static int build_canonical_request(const struct sigv4_request *req, const char *query,
                                   const struct sigv4_scope *scope, const struct strbuf *headers,
                                   const struct strbuf *names, struct strbuf *cr,
                                   struct s3_error *err)
{
    strbuf_puts(cr, req->method);
    strbuf_putc(cr, '\n');
    if (!append_canonical_path(cr, req->path, scope))
        return fail_oom(err);
    strbuf_putc(cr, '\n');
    if (append_canonical_query(cr, query, err) < 0)
        return -1;
    strbuf_putc(cr, '\n');
    strbuf_append(cr, headers->data, headers->len);
    strbuf_putc(cr, '\n');
    strbuf_append(cr, names->data, names->len);
    strbuf_putc(cr, '\n');
    strbuf_puts(cr, req->payload_hash);
    return cr->failed ? fail_oom(err) : 0;
}

/* ALGORITHM \n AMZ-DATE \n CREDENTIAL SCOPE \n hex(SHA-256(canonical request)) */
static int build_string_to_sign(const struct sigv4_scope *scope, const struct strbuf *cr,
                                struct strbuf *sts, struct s3_error *err)
{
    char cr_hash[SHA256_HEX_LEN + 1];
    if (!sha256_hex(cr->data, cr->len, cr_hash))
        return fail_crypto(err);
    strbuf_puts(sts, SIGV4_ALGORITHM "\n");
    strbuf_puts(sts, scope->amz_date);
    strbuf_putc(sts, '\n');
    append_credential_scope(sts, scope);
    strbuf_putc(sts, '\n');
    strbuf_puts(sts, cr_hash);
    return sts->failed ? fail_oom(err) : 0;
}

static int compute_signature(const struct aws_credentials *creds, const struct sigv4_scope *scope,
                             const struct strbuf *sts, char out[SHA256_HEX_LEN + 1],
                             struct s3_error *err)
{
    unsigned char key[SHA256_LEN], mac[SHA256_LEN];
    bool ok = derive_signing_key(creds, scope, key) &&
              hmac_sha256(key, sizeof(key), sts->data, sts->len, mac);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok)
        return fail_crypto(err);
    hex_encode(mac, sizeof(mac), out);
    return 0;
}

/* Signs a request whose wire query is `query`, given its canonical header lines and signed
 * header names. On success `out` owns canonical_request, string_to_sign and signed_headers
 * (the latter taken from `names`). */
static int sign_canonical(const struct sigv4_request *req, const char *query,
                          const struct sigv4_scope *scope, const struct aws_credentials *creds,
                          const struct strbuf *headers, struct strbuf *names,
                          struct sigv4_signature *out, struct s3_error *err)
{
    struct strbuf cr = {0}, sts = {0};
    int rc = build_canonical_request(req, query, scope, headers, names, &cr, err);
    if (rc == 0)
        rc = build_string_to_sign(scope, &cr, &sts, err);
    if (rc == 0)
        rc = compute_signature(creds, scope, &sts, out->signature, err);
    if (rc == 0) {
        out->canonical_request = strbuf_take(&cr);
        out->string_to_sign = strbuf_take(&sts);
        out->signed_headers = strbuf_take(names);
        if (!out->canonical_request || !out->string_to_sign || !out->signed_headers)
            rc = fail_oom(err);
    }
    strbuf_free(&cr);
    strbuf_free(&sts);
    return rc;
}

int sigv4_sign(const struct sigv4_request *req, const struct sigv4_scope *scope,
               const struct aws_credentials *creds, struct sigv4_signature *out,
               struct s3_error *err)
{
    if (!out) {
        s3_error_set(err, 0, "InvalidArgument", false, "SigV4: no output given");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (check_request(req, scope, creds, err) < 0)
        return -1;

    struct strbuf headers = {0}, names = {0};
    int rc = build_headers(req, &headers, &names, err);
    if (rc == 0)
        rc = sign_canonical(req, req->query, scope, creds, &headers, &names, out, err);
    strbuf_free(&headers);
    strbuf_free(&names);

    if (rc == 0) {
        struct strbuf auth = {0};
        strbuf_puts(&auth, SIGV4_ALGORITHM " Credential=");
        strbuf_puts(&auth, creds->access_key_id);
        strbuf_putc(&auth, '/');
        append_credential_scope(&auth, scope);
        strbuf_puts(&auth, ", SignedHeaders=");
        strbuf_puts(&auth, out->signed_headers);
        strbuf_puts(&auth, ", Signature=");
        strbuf_puts(&auth, out->signature);
        out->authorization = strbuf_take(&auth);
        if (!out->authorization)
            rc = fail_oom(err);
    }
    if (rc < 0)
        sigv4_signature_clear(out);
    return rc;
}

/* The request's query followed by the X-Amz-* parameters, in the order AWS's own signers send
 * them (the order does not matter to the server: the canonical query is sorted). */
static void append_presign_params(struct strbuf *q, const struct sigv4_request *req,
                                  const struct sigv4_scope *scope,
                                  const struct aws_credentials *creds, unsigned expires,
                                  const struct strbuf *names)
{
    if (!is_empty(req->query)) {
        strbuf_puts(q, req->query);
        strbuf_putc(q, '&');
    }
    struct strbuf credential = {0};
    strbuf_puts(&credential, creds->access_key_id);
    strbuf_putc(&credential, '/');
    append_credential_scope(&credential, scope);
    if (credential.failed)
        q->failed = true;

    char expires_text[16];
    snprintf(expires_text, sizeof(expires_text), "%u", expires);

    strbuf_puts(q, "X-Amz-Algorithm=" SIGV4_ALGORITHM "&X-Amz-Credential=");
    append_encoded(q, credential.data, credential.len, false);
    strbuf_puts(q, "&X-Amz-Date=");
    strbuf_puts(q, scope->amz_date);
    strbuf_puts(q, "&X-Amz-SignedHeaders=");
    append_encoded(q, names->data, names->len, false);
    strbuf_puts(q, "&X-Amz-Expires=");
    strbuf_puts(q, expires_text);
    if (creds->session_token[0]) {
        strbuf_puts(q, "&X-Amz-Security-Token=");
        append_encoded(q, creds->session_token,
                       strnlen(creds->session_token, sizeof(creds->session_token)), false);
    }
    strbuf_free(&credential);
}

char *sigv4_presign_query(const struct sigv4_request *req, const struct sigv4_scope *scope,
                          const struct aws_credentials *creds, unsigned expires_seconds,
                          struct sigv4_signature *out, struct s3_error *err)
{
    struct sigv4_signature local;
    struct sigv4_signature *sig = out ? out : &local;
    memset(sig, 0, sizeof(*sig));
    if (check_request(req, scope, creds, err) < 0)
        return NULL;
    if (expires_seconds == 0 || expires_seconds > PRESIGN_MAX_SECONDS) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "SigV4: a presigned URL must expire within 1 to %u seconds, not %u",
                     PRESIGN_MAX_SECONDS, expires_seconds);
        return NULL;
    }

    struct strbuf headers = {0}, names = {0}, query = {0};
    int rc = build_headers(req, &headers, &names, err);
    if (rc == 0) {
        append_presign_params(&query, req, scope, creds, expires_seconds, &names);
        rc = query.failed ? fail_oom(err) : 0;
    }
    if (rc == 0)
        rc = sign_canonical(req, query.data, scope, creds, &headers, &names, sig, err);
    strbuf_free(&headers);
    strbuf_free(&names);

    char *result = NULL;
    if (rc == 0) {
        strbuf_puts(&query, "&X-Amz-Signature=");
        strbuf_puts(&query, sig->signature);
        result = strbuf_take(&query);
        if (!result)
            fail_oom(err);
    }
    strbuf_free(&query);
    if (!result || sig == &local)
        sigv4_signature_clear(sig);
    return result;
}

void sigv4_signature_clear(struct sigv4_signature *sig)
{
    if (!sig)
        return;
    free(sig->canonical_request);
    free(sig->string_to_sign);
    free(sig->signed_headers);
    free(sig->authorization);
    memset(sig, 0, sizeof(*sig));
}

/* A time that gmtime cannot represent in 4-digit years yields "", which sigv4_sign rejects. */
void sigv4_format_date(time_t t, char out[17])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        out[0] = '\0';
}

int aws_credentials_static(void *ctx, struct aws_credentials *out, struct s3_error *err)
{
    const struct aws_credentials *creds = ctx;
    if (!creds || !out || !creds->access_key_id[0] || !creds->secret_access_key[0]) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "no AWS credentials configured (an access key id and a secret key are "
                     "needed)");
        return -1;
    }
    *out = *creds;
    return 0;
}
