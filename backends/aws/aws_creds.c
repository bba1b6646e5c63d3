/* aws_creds.c - the AWS credential chain (see aws_creds.h for the order).
 *
 * Every credential string lands in secret memory straight from the file,
 * the process pipe or the HTTP response buffer it came in; the JSON and
 * XML it came wrapped in are parsed in wiped memory too.
 */
#include "backends/aws/aws_creds.h"
#include "backends/aws/aws_i.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/aws/ini.h"
#include "lib/secfile.h"

#define AWS_FILE_MAX (64 * 1024)
#define AWS_PROCESS_TIMEOUT_MS 30000
#define AWS_IMDS_DEFAULT "http://169.254.169.254"
#define AWS_ECS_HOST "http://169.254.170.2"
#define AWS_REFRESH_AHEAD_S (15 * 60)
#define AWS_RETRY_MAX_MS (60 * 1000LL)

extern char **environ;

enum source {
    SRC_NONE, SRC_ENV, SRC_WEB_IDENTITY, SRC_PROFILE, SRC_CONTAINER, SRC_IMDS,
};

struct aws_chain {
    struct http_engine *http;
    char *profile;                 /* NULL: AWS_PROFILE or "default", read at use */
    bool profile_explicit;
    char *region;                  /* resolved once */
    char *sts_endpoint;
    char *backend;
    pthread_mutex_t lock;          /* everything below */
    enum source src;
    char source_name[128];
    struct aws_creds creds;        /* current, may be empty */
    long long failed_ms;           /* last failure, for backoff */
    unsigned failures;
    int failed_rc;
    char failed_err[384];
    struct http_client *sts, *meta;
    long long skew_s;              /* STS's clock minus ours, once it told us */
    long long process_timeout_ms;
    bool refreshing;               /* one thread is fetching (lock released) */
    pthread_cond_t refreshed;
};

/* ---- small helpers ---- */

char *aws_secstr(const char *s, size_t n)
{
    char *p = secmem_alloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void aws_creds_clear(struct aws_creds *c)
{
    secmem_free(c->akid);
    secmem_free(c->secret);
    secmem_free(c->token);
    memset(c, 0, sizeof(*c));
}

int aws_creds_copy(struct aws_creds *dst, const struct aws_creds *src)
{
    aws_creds_clear(dst);
    dst->akid = src->akid ? aws_secstr(src->akid, strlen(src->akid)) : NULL;
    dst->secret = src->secret ? aws_secstr(src->secret, strlen(src->secret)) : NULL;
    dst->token = src->token ? aws_secstr(src->token, strlen(src->token)) : NULL;
    dst->expiration = src->expiration;
    dst->obtained = src->obtained;
    if ((src->akid && !dst->akid) || (src->secret && !dst->secret) || (src->token && !dst->token)) {
        aws_creds_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

static long long mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* "2026-11-29T10:15:00Z" (RFC 3339, UTC, optional fraction). */
static time_t parse_time(const char *s)
{
    struct tm tm = {0};
    if (!s)
        return 0;
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return 0;
    return timegm(&tm);
}

/* application/x-www-form-urlencoded value, appended to b. */
static int form_append(struct secbuf *b, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    if (b->len)
        rc = secbuf_append(b, "&", 1);
    if (rc == 0)
        rc = secbuf_append(b, key, strlen(key));
    if (rc == 0)
        rc = secbuf_append(b, "=", 1);
    for (const unsigned char *p = (const unsigned char *)value; rc == 0 && *p; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        rc = keep ? secbuf_append(b, p, 1) : secbuf_append(b, e, 3);
    }
    return rc;
}

/* {"AccessKeyId", "SecretAccessKey", "Token" or "SessionToken", "Expiration"}:
 * container, IMDS and credential_process answers. */
UNITTEST_STATIC int aws_creds_from_json(const struct secbuf *body, const char *what,
                                        struct aws_creds *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body->data, body->len, 0, &jerr);
    secmem_wipe(&jerr, sizeof(jerr));
    int rc = 0;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: the answer is not a JSON object", what);
        json_decref(root);
        return -EPROTO;
    }
    const char *a = json_string_value(json_object_get(root, "AccessKeyId"));
    const char *s = json_string_value(json_object_get(root, "SecretAccessKey"));
    const char *t = json_string_value(json_object_get(root, "Token"));
    if (!t)
        t = json_string_value(json_object_get(root, "SessionToken"));
    const char *code = json_string_value(json_object_get(root, "Code"));
    if (code && strcmp(code, "Success") != 0) {
        snprintf(err, errlen, "%s: Code %.64s", what, code);
        rc = -EACCES;
    } else if (!a || !s || !*a || !*s) {
        snprintf(err, errlen, "%s: no AccessKeyId/SecretAccessKey in the answer", what);
        rc = -EPROTO;
    } else {
        aws_creds_clear(out);
        out->akid = aws_secstr(a, strlen(a));
        out->secret = aws_secstr(s, strlen(s));
        out->token = t && *t ? aws_secstr(t, strlen(t)) : NULL;
        out->expiration = parse_time(json_string_value(json_object_get(root, "Expiration")));
        out->obtained = time(NULL);
        if (!out->akid || !out->secret || (t && *t && !out->token))
            rc = -ENOMEM;
    }
    json_decref(root);
    return rc;
}

/* ---- HTTP-based sources ---- */

static int client_for(struct aws_chain *c, struct http_client **slot, const char *url,
                      long long connect_ms, long long total_ms, char *err, size_t errlen)
{
    http_client_free(*slot);
    *slot = NULL;
    struct http_opts ho;
    http_opts_default(&ho);
    int rc = http_client_new(c->http, &ho, url, slot, err, errlen);
    if (rc == 0 && connect_ms > 0)
        http_client_set_timeouts(*slot, connect_ms, total_ms);
    return rc;
}

static const char *sts_url(struct aws_chain *c, const char *region, char *buf, size_t cap)
{
    const char *e = c->sts_endpoint ? c->sts_endpoint : env("AWS_ENDPOINT_URL_STS");
    if (!e)
        e = env("AWS_ENDPOINT_URL");
    if (e)
        return e;
    if (region[0])
        snprintf(buf, cap, "https://sts.%s.amazonaws.com", region);
    else
        snprintf(buf, cap, "https://sts.amazonaws.com");
    return buf;
}

/* An STS answer: the credentials of a 200, or STS's error. */
UNITTEST_STATIC int aws_sts_answer(const struct http_response *r, const char *what,
                                   struct aws_creds *out, char *err, size_t errlen)
{
    int rc = 0;
    if (r->status != 200) {
        char *code = aws_xml_text(&r->body, "Code"), *m = aws_xml_text(&r->body, "Message");
        snprintf(err, errlen, "%s: HTTP %ld: %.64s: %.200s", what, r->status,
                 code ? code : "error", m ? m : "");
        secmem_free(code);
        secmem_free(m);
        rc = r->status == 403 || r->status == 400 ? -EACCES : -EAGAIN;
    } else {
        aws_creds_clear(out);
        out->akid = aws_xml_text(&r->body, "AccessKeyId");
        out->secret = aws_xml_text(&r->body, "SecretAccessKey");
        out->token = aws_xml_text(&r->body, "SessionToken");
        char *exp = aws_xml_text(&r->body, "Expiration");
        out->expiration = parse_time(exp);
        out->obtained = time(NULL);
        secmem_free(exp);
        if (!out->akid || !out->secret || !out->token) {
            snprintf(err, errlen, "%s: no Credentials in the answer", what);
            aws_creds_clear(out);
            rc = -EPROTO;
        }
    }
    return rc;
}

/* STS AssumeRole / AssumeRoleWithWebIdentity: form body in, XML out. */
static int sts_call(struct aws_chain *c, const struct secbuf *form, const struct aws_creds *signer,
                    const char *what, struct aws_creds *out, char *err, size_t errlen)
{
    char buf[256], msg[384] = "", region[64];
    struct http_response r;
    pthread_mutex_lock(&c->lock);
    long long skew0 = c->skew_s;
    snprintf(region, sizeof(region), "%s", c->region ? c->region : "");
    pthread_mutex_unlock(&c->lock);
    int rc = client_for(c, &c->sts, sts_url(c, region, buf, sizeof(buf)), 0, 0, err, errlen);
    if (rc < 0)
        return rc;
    struct aws_call call = {
        .service = "sts", .region = region[0] ? region : "us-east-1", .creds = signer,
        .skew_s = skew0, .content_type = "application/x-www-form-urlencoded; charset=utf-8",
        .body = form->data, .body_len = form->len,
    };
    http_response_init(&r);
    rc = aws_perform(c->sts, &call, &r, msg, sizeof(msg));
    if (rc == 0 && signer && (r.status == 400 || r.status == 403) && r.date) {
        /* Signed outside STS's clock window: once more with its time. */
        char *code = aws_xml_text(&r.body, "Code"), *m = aws_xml_text(&r.body, "Message");
        bool skew = aws_is_skew_error(code ? code : "", m ? m : "");
        secmem_free(code);
        secmem_free(m);
        if (skew) {
            call.skew_s = aws_skew_from(&r);
            pthread_mutex_lock(&c->lock);
            c->skew_s = call.skew_s;
            pthread_mutex_unlock(&c->lock);
            struct log_fields lf = {.backend = c->backend};
            log_f(LOG_WARN, &lf, "aws STS rejected our clock; signing with the server's time "
                  "(%+llds)", call.skew_s);
            rc = aws_perform(c->sts, &call, &r, msg, sizeof(msg));
        }
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", what, msg);
    else
        rc = aws_sts_answer(&r, what, out, err, errlen);
    http_response_cleanup(&r);
    return rc;
}

/* The fields every STS role call has; session defaults to
 * runsecrets-<pid>, as the SDKs default to a generated name. */
static int sts_form(struct secbuf *form, const char *action, const char *role_arn,
                    const char *session)
{
    char sess[64];
    if (!session) {
        snprintf(sess, sizeof(sess), "runsecrets-%ld", (long)getpid());
        session = sess;
    }
    int rc = form_append(form, "Action", action);
    if (rc == 0)
        rc = form_append(form, "Version", "2011-06-15");
    if (rc == 0)
        rc = form_append(form, "RoleArn", role_arn);
    if (rc == 0)
        rc = form_append(form, "RoleSessionName", session);
    return rc;
}

static int web_identity(struct aws_chain *c, const char *token_file, const char *role_arn,
                        const char *session, struct aws_creds *out, char *err, size_t errlen)
{
    char *jwt = NULL, msg[300] = "";
    struct secbuf form;
    int rc = secfile_token(token_file, AWS_FILE_MAX, &jwt, msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errlen, "web identity token: %s", msg);
        return rc;
    }
    secbuf_init(&form, 2 * AWS_FILE_MAX);
    rc = sts_form(&form, "AssumeRoleWithWebIdentity", role_arn, session);
    if (rc == 0)
        rc = form_append(&form, "WebIdentityToken", jwt);
    secmem_free(jwt);
    if (rc == 0)
        rc = sts_call(c, &form, NULL, "STS AssumeRoleWithWebIdentity", out, err, errlen);
    secbuf_cleanup(&form);
    return rc;
}

static int assume_role(struct aws_chain *c, const struct aws_creds *source, const char *role_arn,
                       const char *session, const char *external_id, const char *duration,
                       struct aws_creds *out, char *err, size_t errlen)
{
    struct secbuf form;
    int rc;
    secbuf_init(&form, 16 * 1024);
    rc = sts_form(&form, "AssumeRole", role_arn, session);
    if (rc == 0 && external_id)
        rc = form_append(&form, "ExternalId", external_id);
    if (rc == 0 && duration)
        rc = form_append(&form, "DurationSeconds", duration);
    if (rc == 0)
        rc = sts_call(c, &form, source, "STS AssumeRole", out, err, errlen);
    secbuf_cleanup(&form);
    return rc;
}

static bool full_uri_allowed(const char *uri)
{
    static const char *const hosts[] = {"127.", "[::1]", "localhost", "169.254.170.2",
                                        "169.254.170.23", "[fd00:ec2::23]", NULL};
    if (strncmp(uri, "https://", 8) == 0)
        return true;
    if (strncmp(uri, "http://", 7) != 0)
        return false;
    const char *h = uri + 7;
    size_t hl = strcspn(h, ":/");
    if (h[0] == '[')
        hl = strcspn(h, "]") + 1;
    for (size_t i = 0; hosts[i]; i++) {
        size_t n = strlen(hosts[i]);
        if (hosts[i][n - 1] == '.' ? strncmp(h, hosts[i], n) == 0
                                   : (hl == n && strncmp(h, hosts[i], n) == 0))
            return true;
    }
    return false;
}

static int container(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
{
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *tfile = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char url[2048], *auth = NULL, *hdr = NULL, msg[384] = "";
    struct http_response r;
    int rc;

    if (rel) {
        snprintf(url, sizeof(url), "%s%s", AWS_ECS_HOST, rel);
    } else if (!full_uri_allowed(full)) {
        /* The SDKs' rule: the authorization token goes over plain http only
         * to the container agents' addresses or loopback. */
        snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI %.200s: plain http is allowed "
                 "only to loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23", full);
        return -EINVAL;
    } else {
        snprintf(url, sizeof(url), "%s", full);
    }
    if (tfile) {
        if ((rc = secfile_token(tfile, AWS_FILE_MAX, &auth, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "container credentials token: %s", msg);
            return rc;
        }
    } else if (tok) {
        auth = aws_secstr(tok, strlen(tok));
    }
    if (auth) {
        size_t n = strlen(auth) + 32;
        hdr = secmem_alloc(n);
        if (hdr)
            snprintf(hdr, n, "Authorization: %s", auth);
        secmem_free(auth);
        if (!hdr)
            return -ENOMEM;
    }
    rc = client_for(c, &c->meta, url, 2000, 5000, err, errlen);
    if (rc < 0) {
        secmem_free(hdr);
        return rc;
    }
    const char *headers[] = {hdr, NULL};
    struct http_request req = {.method = "GET", .path = "", .headers = hdr ? headers : NULL};
    http_response_init(&r);
    rc = http_perform(c->meta, &req, &r, msg, sizeof(msg));
    secmem_free(hdr);
    if (rc < 0)
        snprintf(err, errlen, "container credentials endpoint: %s", msg);
    else if (r.status != 200) {
        snprintf(err, errlen, "container credentials endpoint: HTTP %ld", r.status);
        rc = r.status >= 500 ? -EAGAIN : -EACCES;
    } else {
        rc = aws_creds_from_json(&r.body, "container credentials endpoint", out, err, errlen);
    }
    http_response_cleanup(&r);
    return rc;
}

/* IMDSv2: a session token (PUT), then the call. path after the host. */
static int imds_get(struct aws_chain *c, struct http_client **slot, const char *path,
                    struct http_response *r, char *err, size_t errlen)
{
    const char *base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char url[512], msg[384] = "";
    struct http_response t;
    int rc;

    snprintf(url, sizeof(url), "%s", base ? base : AWS_IMDS_DEFAULT);
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    /* Short: off EC2 the address does not answer, and the SDKs wait 1 s. */
    rc = client_for(c, slot, url, 1000, 2000, err, errlen);
    if (rc < 0)
        return rc;
    static const char *const put_hdrs[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    struct http_request put = {.method = "PUT", .path = "/latest/api/token", .headers = put_hdrs};
    http_response_init(&t);
    rc = http_perform(*slot, &put, &t, msg, sizeof(msg));
    if (rc < 0 || t.status != 200 || t.body.len == 0) {
        if (rc == 0)
            snprintf(msg, sizeof(msg), "HTTP %ld%s for the session token (IMDSv2 only)", t.status,
                     t.status == 200 ? " with an empty body" : "");
        snprintf(err, errlen, "instance metadata %s: %s", url, msg);
        http_response_cleanup(&t);
        return rc < 0 ? rc : -EACCES;
    }
    size_t hl = strlen("X-aws-ec2-metadata-token: ") + t.body.len + 1;
    char *hdr = secmem_alloc(hl);
    if (!hdr) {
        http_response_cleanup(&t);
        return -ENOMEM;
    }
    snprintf(hdr, hl, "X-aws-ec2-metadata-token: %.*s", (int)t.body.len, (const char *)t.body.data);
    http_response_cleanup(&t);
    const char *hdrs[] = {hdr, NULL};
    struct http_request get = {.method = "GET", .path = path, .headers = hdrs};
    rc = http_perform(*slot, &get, r, msg, sizeof(msg));
    secmem_free(hdr);
    if (rc < 0)
        snprintf(err, errlen, "instance metadata %s: %s", path, msg);
    else if (r->status != 200) {
        snprintf(err, errlen, "instance metadata %s: HTTP %ld", path, r->status);
        rc = r->status == 404 ? -ENOENT : -EAGAIN;
    }
    return rc;
}

/* The role name: the first line of the listing (not NUL-terminated),
 * bounded by its length. 0, -ENOENT when there is none that fits, or
 * -EPROTO when it is not an IAM role name: it goes into the next URL. */
UNITTEST_STATIC int aws_imds_role(const struct secbuf *body, char *role, size_t cap)
{
    size_t n = 0;
    while (n < body->len && body->data[n] != '\r' && body->data[n] != '\n')
        n++;
    if (n == 0 || n >= cap)
        return -ENOENT;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = body->data[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("+=,.@_-", c)) || c == '\0')
            return -EPROTO;
    }
    memcpy(role, body->data, n);
    role[n] = '\0';
    return 0;
}

static int imds(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
{
    static const char base[] = "/latest/meta-data/iam/security-credentials/";
    struct http_response r;
    char path[512], role[256];
    http_response_init(&r);
    int rc = imds_get(c, &c->meta, base, &r, err, errlen);
    if (rc == 0) {
        rc = aws_imds_role(&r.body, role, sizeof(role));
        if (rc == -EPROTO) {
            snprintf(err, errlen, "instance metadata: the role listing does not hold an IAM "
                     "role name");
        } else if (rc < 0) {
            snprintf(err, errlen, "instance metadata: no IAM role attached to this instance");
        } else {
            snprintf(path, sizeof(path), "%s%s", base, role);
            rc = imds_get(c, &c->meta, path, &r, err, errlen);
            if (rc == 0)
                rc = aws_creds_from_json(&r.body, "instance metadata", out, err, errlen);
        }
    }
    http_response_cleanup(&r);
    return rc;
}

/* ---- credential_process ---- */

/* Run cmd with /bin/sh -c in its own process group, stdin /dev/null, no
 * inherited descriptors but stdout/stderr; its stdout (the credentials)
 * read into secret memory. Everything, exit included, within timeout_ms:
 * past it the whole group is killed. */
static int run_process(const char *cmd, long long timeout_ms, struct aws_creds *out, char *err,
                       size_t errlen)
{
    int pfd[2];
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    char sh[] = "/bin/sh", dash_c[] = "-c";
    char *cmd_copy = strdup(cmd);
    char *argv[] = {sh, dash_c, cmd_copy, NULL};
    struct secbuf b;
    int rc = 0, status = 0;
    bool exited = false, eof = false;

    if (!cmd_copy)
        return -ENOMEM;
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(cmd_copy);
        return -errno;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&attr);
    /* The child starts with default signal actions and nothing blocked:
     * an ignored signal would otherwise survive the exec (the broker ignores
     * PIPE, USR1, ALRM...), and the calling thread blocks every signal. */
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    free(cmd_copy);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        snprintf(err, errlen, "credential_process: cannot start /bin/sh: %s", strerror(rc));
        return -rc;
    }
    secbuf_init(&b, AWS_FILE_MAX);
    long long deadline = mono_ms() + timeout_ms;
    while (!exited || !eof) {
        long long left = deadline - mono_ms();
        if (left <= 0) {
            snprintf(err, errlen, "credential_process: no answer within %lld s",
                     (timeout_ms + 999) / 1000);
            rc = -ETIMEDOUT;
            break;
        }
        if (!eof) {
            struct pollfd p = {.fd = pfd[0], .events = POLLIN};
            if (poll(&p, 1, (int)(left < 100 ? left : 100)) > 0) {
                char chunk[4096];
                ssize_t n = read(pfd[0], chunk, sizeof(chunk));
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                    eof = true;
                if (n > 0) {
                    rc = secbuf_append(&b, chunk, (size_t)n);
                    secmem_wipe(chunk, sizeof(chunk));
                    if (rc < 0) {
                        snprintf(err, errlen, "credential_process: output larger than %d bytes",
                                 AWS_FILE_MAX);
                        break;
                    }
                }
            }
        } else {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (!exited) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            exited = w == pid || (w < 0 && errno != EINTR);
        }
    }
    close(pfd[0]);
    if (!exited) {
        kill(-pid, SIGKILL);   /* the group: grandchildren too */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        snprintf(err, errlen, "credential_process: exited with %s %d",
                 WIFEXITED(status) ? "status" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        rc = -EIO;
    }
    if (rc == 0)
        rc = aws_creds_from_json(&b, "credential_process", out, err, errlen);
    secbuf_cleanup(&b);
    return rc;
}

/* ---- shared files ---- */

struct files {
    struct ini *creds, *config;
    char creds_path[512], config_path[512];
};

static int files_load(struct files *f, char *err, size_t errlen)
{
    const char *home = env("HOME");
    const char *cp = env("AWS_SHARED_CREDENTIALS_FILE");
    const char *fp = env("AWS_CONFIG_FILE");
    int rc;
    memset(f, 0, sizeof(*f));
    snprintf(f->creds_path, sizeof(f->creds_path), "%s%s", cp ? cp : home ? home : "/root",
             cp ? "" : "/.aws/credentials");
    snprintf(f->config_path, sizeof(f->config_path), "%s%s", fp ? fp : home ? home : "/root",
             fp ? "" : "/.aws/config");
    rc = ini_load(f->creds_path, &f->creds, err, errlen);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    rc = ini_load(f->config_path, &f->config, err, errlen);
    if (rc < 0 && rc != -ENOENT) {
        ini_free(f->creds);
        return rc;
    }
    return 0;
}

static void files_free(struct files *f)
{
    ini_free(f->creds);
    ini_free(f->config);
}

/* The config file names profiles "profile X", except "default". */
static const char *config_get(const struct files *f, const char *profile, const char *key)
{
    char sec[300];
    if (strcmp(profile, "default") == 0) {
        const char *v = ini_get(f->config, "default", key);
        if (v)
            return v;
    }
    snprintf(sec, sizeof(sec), "profile %s", profile);
    return ini_get(f->config, sec, key);
}

static bool profile_exists(const struct files *f, const char *profile)
{
    char sec[300];
    snprintf(sec, sizeof(sec), "profile %s", profile);
    return ini_has_section(f->creds, profile) || ini_has_section(f->config, sec) ||
           (strcmp(profile, "default") == 0 && ini_has_section(f->config, "default"));
}

static int static_keys(const struct files *f, const char *profile, struct aws_creds *out)
{
    const struct ini *src = f->creds;
    const char *a = ini_get(f->creds, profile, "aws_access_key_id");
    if (!a) {
        a = config_get(f, profile, "aws_access_key_id");
        src = NULL;
    }
    if (!a)
        return 1;   /* none here */
    const char *s = src ? ini_get(src, profile, "aws_secret_access_key")
                        : config_get(f, profile, "aws_secret_access_key");
    const char *t = src ? ini_get(src, profile, "aws_session_token")
                        : config_get(f, profile, "aws_session_token");
    if (!s)
        return -EINVAL;
    aws_creds_clear(out);
    out->akid = aws_secstr(a, strlen(a));
    out->secret = aws_secstr(s, strlen(s));
    out->token = t ? aws_secstr(t, strlen(t)) : NULL;
    out->obtained = time(NULL);
    return out->akid && out->secret && (!t || out->token) ? 0 : -ENOMEM;
}

/* Credentials of profile, following role_arn/source_profile at most depth
 * deep. 1 when the profile offers none. */
static int profile_creds(struct aws_chain *c, const struct files *f, const char *profile, int depth,
                         struct aws_creds *out, char *err, size_t errlen)
{
    const char *role = config_get(f, profile, "role_arn");
    int rc;
    if (role) {
        const char *srcp = config_get(f, profile, "source_profile");
        const char *wif = config_get(f, profile, "web_identity_token_file");
        if (wif)
            return web_identity(c, wif, role, config_get(f, profile, "role_session_name"), out,
                                err, errlen);
        if (!srcp) {
            snprintf(err, errlen, "profile %s: role_arn needs source_profile (credential_source "
                     "is not supported)", profile);
            return -EINVAL;
        }
        if (depth >= 4) {
            snprintf(err, errlen, "profile %s: source_profile chain too deep", profile);
            return -EINVAL;
        }
        struct aws_creds src = {0};
        /* A profile that is its own source uses its own static keys. */
        rc = strcmp(srcp, profile) == 0 ? static_keys(f, srcp, &src)
                                        : profile_creds(c, f, srcp, depth + 1, &src, err, errlen);
        if (rc == 1) {
            snprintf(err, errlen, "profile %s: source_profile %s has no credentials", profile, srcp);
            rc = -EINVAL;
        }
        if (rc == 0)
            rc = assume_role(c, &src, role, config_get(f, profile, "role_session_name"),
                             config_get(f, profile, "external_id"),
                             config_get(f, profile, "duration_seconds"), out, err, errlen);
        aws_creds_clear(&src);
        return rc;
    }
    /* botocore's order: credentials-file keys, credential_process, then
     * keys in the config file. */
    const char *proc = config_get(f, profile, "credential_process");
    if (proc && !ini_get(f->creds, profile, "aws_access_key_id"))
        return run_process(proc, c->process_timeout_ms, out, err, errlen);
    rc = static_keys(f, profile, out);
    if (rc == -EINVAL)
        snprintf(err, errlen, "profile %s: aws_access_key_id without aws_secret_access_key",
                 profile);
    return rc;
}

/* ---- the chain ---- */

static const char *profile_name(const struct aws_chain *c)
{
    if (c->profile)
        return c->profile;
    const char *p = env("AWS_PROFILE");
    return p ? p : "default";
}

/* Find the source and fetch from it. lock held. */
static int fetch(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
{
    const char *akid = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    const char *wif = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = env("AWS_ROLE_ARN");
    struct files f;
    int rc;

    /* An explicit profile skips the environment, as with the CLI's --profile. */
    if (!c->profile_explicit && akid && secret) {
        const char *tok = env("AWS_SESSION_TOKEN");
        c->src = SRC_ENV;
        snprintf(c->source_name, sizeof(c->source_name), "environment");
        aws_creds_clear(out);
        out->akid = aws_secstr(akid, strlen(akid));
        out->secret = aws_secstr(secret, strlen(secret));
        out->token = tok ? aws_secstr(tok, strlen(tok)) : NULL;
        out->obtained = time(NULL);
        return out->akid && out->secret && (!tok || out->token) ? 0 : -ENOMEM;
    }
    if (!c->profile_explicit && wif && role) {
        c->src = SRC_WEB_IDENTITY;
        snprintf(c->source_name, sizeof(c->source_name), "web identity");
        return web_identity(c, wif, role, env("AWS_ROLE_SESSION_NAME"), out, err, errlen);
    }
    if ((rc = files_load(&f, err, errlen)) < 0)
        return rc;
    const char *profile = profile_name(c);
    if (profile_exists(&f, profile)) {
        c->src = SRC_PROFILE;
        snprintf(c->source_name, sizeof(c->source_name), "profile %.100s", profile);
        rc = profile_creds(c, &f, profile, 0, out, err, errlen);
        if (rc == 1) {
            snprintf(err, errlen, "profile %s (%s, %s) has no credentials", profile, f.creds_path,
                     f.config_path);
            rc = -EINVAL;
        }
        files_free(&f);
        return rc;
    }
    files_free(&f);
    if (c->profile || env("AWS_PROFILE")) {
        snprintf(err, errlen, "profile %s not found in %s or %s", profile, f.creds_path,
                 f.config_path);
        return -EINVAL;
    }
    if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || env("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        c->src = SRC_CONTAINER;
        snprintf(c->source_name, sizeof(c->source_name), "container");
        return container(c, out, err, errlen);
    }
    const char *off = env("AWS_EC2_METADATA_DISABLED");
    if (off && strcasecmp(off, "true") == 0) {
        snprintf(err, errlen, "no credentials: not in the environment, no web identity, no "
                 "profile '%s', no container endpoint, and instance metadata is disabled", profile);
        return -ENOENT;
    }
    c->src = SRC_IMDS;
    snprintf(c->source_name, sizeof(c->source_name), "instance metadata");
    rc = imds(c, out, err, errlen);
    if (rc < 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", err);
        snprintf(err, errlen, "no credentials: not in the environment, no web identity, no "
                 "profile '%s', no container endpoint; instance metadata: %s", profile, msg);
    }
    return rc;
}

/* Expiration is the server's clock: compare with ours corrected by the skew
 * STS told us about. */
static bool needs_refresh(const struct aws_creds *cr, long long skew_s)
{
    if (!cr->akid)
        return true;
    if (!cr->expiration)
        return false;
    time_t now = time(NULL) + (time_t)skew_s;
    time_t life = cr->expiration - cr->obtained;
    time_t ahead = life / 4 < AWS_REFRESH_AHEAD_S ? life / 4 : AWS_REFRESH_AHEAD_S;
    return now >= cr->expiration - ahead;
}

/* Credentials usable for a request now (server time). lock held. */
static bool usable(const struct aws_chain *c)
{
    return c->creds.akid &&
           (!c->creds.expiration || time(NULL) + c->skew_s < c->creds.expiration);
}

int aws_chain_get(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    while (needs_refresh(&c->creds, c->skew_s)) {
        if (c->refreshing) {
            /* One fetch at a time; the others go on with what is there. */
            if (usable(c))
                break;
            pthread_cond_wait(&c->refreshed, &c->lock);
            continue;
        }
        unsigned f = c->failures ? c->failures - 1 : 0;
        long long backoff = 1000LL << (f > 6 ? 6 : f);
        if (backoff > AWS_RETRY_MAX_MS)
            backoff = AWS_RETRY_MAX_MS;
        if (c->failed_ms && mono_ms() - c->failed_ms < backoff) {
            if (!usable(c)) {
                snprintf(err, errlen, "%s", c->failed_err);
                rc = c->failed_rc;
            }
            break;
        }
        /* The fetch runs without the lock: requests keep signing with the
         * current credentials while they are valid. */
        struct aws_creds fresh = {0};
        c->refreshing = true;
        pthread_mutex_unlock(&c->lock);
        rc = fetch(c, &fresh, err, errlen);
        pthread_mutex_lock(&c->lock);
        c->refreshing = false;
        pthread_cond_broadcast(&c->refreshed);
        if (rc == 0) {
            aws_creds_clear(&c->creds);
            c->creds = fresh;
            c->failures = 0;
            c->failed_ms = 0;
            struct log_fields lf = {.backend = c->backend};
            log_f(LOG_INFO, &lf, "aws credentials from %s", c->source_name);
        } else {
            aws_creds_clear(&fresh);
            c->failures++;
            c->failed_ms = mono_ms();
            c->failed_rc = rc;
            snprintf(c->failed_err, sizeof(c->failed_err), "%s", err);
            struct log_fields lf = {.backend = c->backend, .error = err};
            log_f(usable(c) ? LOG_WARN : LOG_ERROR, &lf, "aws credentials refresh failed");
            if (usable(c))
                rc = 0;   /* the current ones are still good for a while */
        }
        break;
    }
    if (rc == 0)
        rc = aws_creds_copy(out, &c->creds);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void aws_chain_invalidate(struct aws_chain *c)
{
    pthread_mutex_lock(&c->lock);
    aws_creds_clear(&c->creds);
    c->failed_ms = 0;
    pthread_mutex_unlock(&c->lock);
}

const char *aws_chain_source(struct aws_chain *c)
{
    return c->source_name;
}

static int region_lookup(struct aws_chain *c, char **out, char *err, size_t errlen);

int aws_chain_region(struct aws_chain *c, char **out, char *err, size_t errlen)
{
    /* Remembered for STS too: its regional endpoint and signing region. */
    int rc = region_lookup(c, out, err, errlen);
    if (rc == 0) {
        pthread_mutex_lock(&c->lock);
        if (!c->region)
            c->region = strdup(*out);
        pthread_mutex_unlock(&c->lock);
    }
    return rc;
}

static int region_lookup(struct aws_chain *c, char **out, char *err, size_t errlen)
{
    const char *r = c->region ? c->region : env("AWS_REGION");
    struct files f;
    int rc;
    if (!r)
        r = env("AWS_DEFAULT_REGION");
    if (r)
        return (*out = strdup(r)) ? 0 : -ENOMEM;
    if (files_load(&f, err, errlen) == 0) {
        r = config_get(&f, profile_name(c), "region");
        *out = r ? strdup(r) : NULL;
        files_free(&f);
        if (r)
            return *out ? 0 : -ENOMEM;
    }
    const char *off = env("AWS_EC2_METADATA_DISABLED");
    if (off && strcasecmp(off, "true") == 0) {
        snprintf(err, errlen, "no region: set \"region\" in the backend, AWS_REGION, or the "
                 "profile's region");
        return -EINVAL;
    }
    struct http_response resp;
    char msg[400] = "";
    http_response_init(&resp);
    struct http_client *own = NULL;   /* not c->meta: a refresh may be using it */
    rc = imds_get(c, &own, "/latest/meta-data/placement/region", &resp, msg, sizeof(msg));
    http_client_free(own);
    if (rc == 0 && resp.body.len > 0 && resp.body.len < 64) {
        *out = strndup((const char *)resp.body.data, resp.body.len);
        rc = *out ? 0 : -ENOMEM;
    } else {
        snprintf(err, errlen, "no region: set \"region\" in the backend, AWS_REGION, or the "
                 "profile's region (instance metadata: %s)", msg[0] ? msg : "no answer");
        rc = rc < 0 ? rc : -EINVAL;
    }
    http_response_cleanup(&resp);
    return rc;
}

int aws_chain_new(const struct aws_chain_opts *o, struct aws_chain **out, char *err, size_t errlen)
{
    struct aws_chain *c = calloc(1, sizeof(*c));
    (void)err;
    (void)errlen;
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->refreshed, NULL);
    c->http = o->http;
    c->process_timeout_ms = o->process_timeout_ms > 0 ? o->process_timeout_ms
                                                      : AWS_PROCESS_TIMEOUT_MS;
    c->profile = o->profile ? strdup(o->profile) : NULL;
    c->profile_explicit = o->profile != NULL;
    c->region = o->region ? strdup(o->region) : NULL;
    c->sts_endpoint = o->sts_endpoint ? strdup(o->sts_endpoint) : NULL;
    c->backend = strdup(o->backend ? o->backend : "aws");
    if ((o->profile && !c->profile) || (o->region && !c->region) ||
        (o->sts_endpoint && !c->sts_endpoint) || !c->backend) {
        aws_chain_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void aws_chain_free(struct aws_chain *c)
{
    if (!c)
        return;
    aws_creds_clear(&c->creds);
    http_client_free(c->sts);
    http_client_free(c->meta);
    free(c->profile);
    free(c->region);
    free(c->sts_endpoint);
    free(c->backend);
    pthread_cond_destroy(&c->refreshed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
