/* The e-mail sink: one SMTP transaction per notice through libcurl. The mail is plain text in
 * UTF-8, 7-bit clean on the wire: the body quoted-printable (RFC 2045), the subject an RFC 2047
 * encoded word when it is not ASCII. libcurl does the SMTP dot-stuffing of lines that start
 * with '.' (and the final CRLF.CRLF) itself. */
#include "notify.h"
#include "textbuf.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 10000L
#define TOTAL_TIMEOUT_MS   30000L
/* RFC 2045: encoded lines are at most 76 characters (without CRLF). */
#define QP_LINE 76
/* RFC 5322 recommends header lines of at most 78 characters. */
#define HEADER_LINE 78
/* Bytes of UTF-8 per encoded word: 39 bytes are 52 base64 characters, so the word
 * "=?UTF-8?B?...?=" is 64 characters and "Subject: " plus one word stays under 76. */
#define WORD_BYTES 39

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init is not thread-safe on every libcurl: once, before the first handle. */
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- encoders (pure) ---- */

/* Body text as quoted-printable (RFC 2045 6.7): lines of at most 76 characters ending in CRLF
 * (soft breaks "=" where a line is longer), "=", control characters and every byte of a
 * non-ASCII character as =XX, a space or tab before a line end as =20/=09. LF and CRLF in the
 * text are line ends; the result always ends with CRLF. */
static void qp_encode(struct textbuf *b, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)text;
    size_t col = 0;
    while (*p) {
        if (*p == '\n' || (*p == '\r' && p[1] == '\n')) {
            textbuf_add(b, "\r\n", 2);
            col = 0;
            p += *p == '\r' ? 2 : 1;
            continue;
        }
        unsigned char c = *p;
        bool line_end = !p[1] || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
        char enc[3];
        size_t n;
        if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !line_end)) {
            enc[0] = (char)c;
            n = 1;
        } else {
            enc[0] = '=';
            enc[1] = hex[c >> 4];
            enc[2] = hex[c & 15];
            n = 3;
        }
        /* The last character of a line may use column 76; any other leaves room for the
         * soft break's "=". */
        if (col + n > (line_end ? QP_LINE : QP_LINE - 1)) {
            textbuf_add(b, "=\r\n", 3);
            col = 0;
        }
        textbuf_add(b, enc, n);
        col += n;
        p++;
    }
    if (col > 0)
        textbuf_add(b, "\r\n", 2);
}

/* Length of the UTF-8 character at p (1 for a byte that does not start a valid one). */
static size_t utf8_len(const unsigned char *p)
{
    size_t n = *p >= 0xf0 && *p < 0xf5 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 && *p < 0xe0 ? 2 : 1;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 1;
    return n;
}

/* The header "Subject: ..." with its CRLF. ASCII text is folded at spaces before column 78;
 * other text becomes RFC 2047 encoded words ("=?UTF-8?B?...?=", base64 of whole UTF-8
 * characters, at most WORD_BYTES each) on folded lines. Control characters become spaces. */
static void subject_header(struct textbuf *b, const char *subject)
{
    char *s = strdup(subject ? subject : "");
    if (!s) {
        b->failed = true;
        return;
    }
    bool ascii = strstr(s, "=?") == NULL; /* would read as an encoded word */
    for (unsigned char *p = (unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
        if (*p >= 0x80)
            ascii = false;
    }
    textbuf_str(b, "Subject:");
    size_t col = strlen("Subject:");
    if (ascii) {
        /* Words, each with the spaces before it; a fold goes before the spaces. */
        const char *p = s;
        if (!*p)
            textbuf_str(b, " ");
        while (*p) {
            size_t spaces = strspn(p, " ");
            size_t word = strcspn(p + spaces, " ");
            if (spaces == 0) { /* the first word */
                textbuf_str(b, " ");
                col++;
            } else if (col > 1 && col + spaces + word > HEADER_LINE) {
                textbuf_str(b, "\r\n");
                col = 0;
            }
            textbuf_add(b, p, spaces + word);
            col += spaces + word;
            p += spaces + word;
        }
    } else {
        const unsigned char *p = (const unsigned char *)s;
        while (*p) {
            size_t n = 0, c;
            while (p[n] && n + (c = utf8_len(p + n)) <= WORD_BYTES)
                n += c;
            unsigned char b64[4 * ((WORD_BYTES + 2) / 3) + 1];
            EVP_EncodeBlock(b64, p, (int)n);
            textbuf_printf(b, "%s=?UTF-8?B?%s?=", p == (const unsigned char *)s ? " " : "\r\n ",
                           (const char *)b64);
            p += n;
        }
    }
    textbuf_str(b, "\r\n");
    free(s);
}

/* ---- the mail ---- */

/* s without control characters (which would end a header line), or NULL. */
static bool header_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* The address of "Name <addr>" or "addr", as "<addr>" for MAIL FROM and RCPT TO. */
static void envelope_address(const char *s, char *out, size_t out_len)
{
    const char *lt = strrchr(s, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt) {
        snprintf(out, out_len, "%.*s", (int)(gt - lt + 1), lt);
        return;
    }
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        n--;
    snprintf(out, out_len, "<%.*s>", (int)n, s);
}

/* A header whose value is a list: "To: a, b", folded after a comma before column 78. */
static void list_header(struct textbuf *b, const char *name, const char *const *items, size_t count)
{
    textbuf_printf(b, "%s:", name);
    size_t col = strlen(name) + 1;
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen(items[i]) + (i + 1 < count ? 1 : 0);
        if (i > 0 && col + 1 + n > HEADER_LINE) {
            textbuf_str(b, "\r\n");
            col = 0;
        }
        textbuf_printf(b, " %s%s", items[i], i + 1 < count ? "," : "");
        col += 1 + n;
    }
    textbuf_str(b, "\r\n");
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char r[32];
    if (bytes > sizeof(r))
        bytes = sizeof(r);
    if (RAND_bytes(r, (int)bytes) != 1) { /* unique enough: time and address */
        unsigned long long t = (unsigned long long)time(NULL) ^ (unsigned long long)(size_t)out;
        for (size_t i = 0; i < bytes; i++)
            r[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)(i * 37);
    }
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* RFC 5322 date-time, in UTC: "Thu, 01 Jan 2026 00:00:00 +0000" (names not localised). */
static void rfc5322_date(time_t t, char *out, size_t out_len)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, out_len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

static void build_mail(struct textbuf *b, const char *from, const char *const *to, size_t to_count,
                       const struct notify_message *m)
{
    char date[64], id[33];
    rfc5322_date(time(NULL), date, sizeof(date));
    random_hex(id, 16);
    textbuf_printf(b, "Date: %s\r\n", date);
    textbuf_printf(b, "From: %s\r\n", from);
    list_header(b, "To", to, to_count);
    subject_header(b, m->subject);
    textbuf_printf(b, "Message-ID: <%s@s3imgfs>\r\n", id);
    textbuf_str(b, "MIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: quoted-printable\r\n"
                   "Auto-Submitted: auto-generated\r\n");
    /* Header values from the message: short tokens, made safe all the same. */
    const char *extra[2][2] = {{"X-S3imgfs-Status", m->status}, {"X-S3imgfs-Event", m->event}};
    for (size_t i = 0; i < 2; i++) {
        textbuf_printf(b, "%s: ", extra[i][0]);
        for (const char *p = extra[i][1] ? extra[i][1] : ""; *p; p++)
            textbuf_add(b, (unsigned char)*p < 0x20 || *p == 0x7f ? " " : p, 1);
        textbuf_str(b, "\r\n");
    }
    textbuf_str(b, "\r\n");
    qp_encode(b, m->text ? m->text : "");
}

/* ---- the transfer ---- */

struct upload {
    const char *data;
    size_t len, pos;
};

static size_t on_read(char *out, size_t size, size_t nmemb, void *ctx)
{
    struct upload *u = ctx;
    size_t n = size * nmemb, left = u->len - u->pos;
    if (n > left)
        n = left;
    memcpy(out, u->data + u->pos, n);
    u->pos += n;
    return n;
}

/* The server's replies reach the header callback one line at a time: the last error reply
 * (4xx, 5xx) is kept for the error message. */
struct replies {
    char last[256];
    bool error;
};

static size_t on_reply(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct replies *r = ctx;
    size_t n = size * nmemb, len = n;
    while (len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (len >= 3 && (data[0] == '4' || data[0] == '5')) {
        if (len >= sizeof(r->last))
            len = sizeof(r->last) - 1;
        for (size_t i = 0; i < len; i++)
            r->last[i] = (unsigned char)data[i] < 0x20 || data[i] == 0x7f ? ' ' : data[i];
        r->last[len] = '\0';
        r->error = true;
    }
    return n;
}

/* url for messages: without user info (which may hold a password). */
static void url_for_message(const char *url, char *out, size_t out_len)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    size_t authority = strcspn(host, "/?#");
    const char *at = memchr(host, '@', authority);
    const char *rest = at ? at + 1 : host;
    snprintf(out, out_len, "%.*s%.*s", (int)(host - url), url, (int)strcspn(rest, "?#"), rest);
}

static const char *smtp_hint(CURLcode rc)
{
    switch (rc) {
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
        return " (check [notify] smtp_user and the password in smtp_password_file)";
    case CURLE_USE_SSL_FAILED:
        return " (the server offers no STARTTLS, which s3imgfs requires with smtp_user: use a "
               "server with TLS, or smtps://)";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return " (is the mail server up, and [notify] smtp_url right?)";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return " (the server's certificate is not trusted: set [s3] ca_file to its CA bundle)";
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return " ([notify] smtp_url must be smtp:// or smtps://)";
    default:
        return "";
    }
}

static bool smtp_retryable(CURLcode rc, long reply)
{
    if (reply >= 500)
        return false; /* the server refuses for good */
    switch (rc) {
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
    case CURLE_USE_SSL_FAILED:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return false;
    default:
        return true;
    }
}

int notify_smtp_send(const char *url, const char *user, const char *password, const char *ca_file,
                     const char *from, const char *const *to, size_t to_count,
                     const struct notify_message *m, struct s3_error *err)
{
    struct s3_error local;
    if (!err)
        err = &local;
    s3_error_clear(err);
    if (!url || !*url || !from || !*from || !to_count) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "SMTP: set [notify] smtp_url, mail_from and mail_to");
        return -1;
    }
    char shown[512];
    url_for_message(url, shown, sizeof(shown));
    if (!header_safe(from)) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "SMTP %s: mail_from holds a control character", shown);
        return -1;
    }
    for (size_t i = 0; i < to_count; i++)
        if (!to[i] || !*to[i] || !header_safe(to[i])) {
            s3_error_set(err, 0, "InvalidArgument", false,
                         "SMTP %s: recipient %zu of mail_to is empty or holds a control "
                         "character",
                         shown, i + 1);
            return -1;
        }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        s3_error_set(err, 0, "SmtpFailed", false, "SMTP %s: libcurl: %s", shown,
                     curl_easy_strerror(curl_init_rc));
        return -1;
    }

    struct textbuf mail = {0};
    build_mail(&mail, from, to, to_count, m);
    char mail_from[320];
    envelope_address(from, mail_from, sizeof(mail_from));
    struct curl_slist *rcpt = NULL, *l;
    bool oom = mail.failed;
    for (size_t i = 0; i < to_count && !oom; i++) {
        char addr[320];
        envelope_address(to[i], addr, sizeof(addr));
        if (!(l = curl_slist_append(rcpt, addr)))
            oom = true;
        else
            rcpt = l;
    }
    CURL *h = oom ? NULL : curl_easy_init();
    if (!h) {
        curl_slist_free_all(rcpt);
        free(mail.data);
        s3_error_set(err, 0, "OutOfMemory", true, "SMTP %s: out of memory", shown);
        return -1;
    }

    bool tls_required = (user && *user) || strncasecmp(url, "smtps://", 8) == 0;
    struct upload up = {.data = mail.data, .len = mail.len};
    struct replies replies = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
    curl_easy_setopt(h, CURLOPT_USE_SSL, (long)(tls_required ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file && *ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    if (user && *user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, user);
        if (password)
            curl_easy_setopt(h, CURLOPT_PASSWORD, password);
    }
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, mail_from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)mail.len);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_reply);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &replies);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(h);
    long reply = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply);
    curl_easy_cleanup(h);
    curl_slist_free_all(rcpt);
    free(mail.data);
    if (rc != CURLE_OK) {
        s3_error_set(err, 0, "SmtpFailed", smtp_retryable(rc, reply), "SMTP %s: %s%s%s%s", shown,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc), smtp_hint(rc),
                     replies.error ? "; the server said: " : "", replies.error ? replies.last : "");
        return -1;
    }
    return 0;
}
