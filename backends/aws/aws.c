/* aws.c - the AWS Secrets Manager backend.
 *
 * JSON 1.1 protocol over the shared HTTP layer, signed with SigV4
 * (aws_sign.c), credentials from the SDK chain (aws_creds.c). Values:
 * SecretString as is, SecretBinary base64-decoded to raw bytes. A cold start
 * uses BatchGetSecretValue (20 per call) and falls back to single calls; a
 * refresh asks DescribeSecret whether the version served is still the one
 * the reference names, and reads the value only when it is not.
 */
#include "backends/aws/aws.h"
#include "backends/aws/aws_creds.h"
#include "backends/aws/aws_i.h"
#include "backends/http/http.h"
#include "backends/http/json.h"
#include "lib/log.h"

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AWS_BATCH_MAX 20
#define AWS_BODY_MAX (64 * 1024)
#define AWS_CURRENT "AWSCURRENT"

struct seen {                       /* which version a reference was last served at */
    char *key;                      /* path + version/stage */
    char *version_id;
    struct seen *next;
};

struct aws {
    char *name;
    struct http_engine *http;
    json_t *conf;                   /* ours (incref): TLS settings for the lazy client */
    char *endpoint;                 /* config, or NULL */
    bool batch;
    struct aws_chain *chain;
    pthread_mutex_t lock;           /* everything below */
    char *region;
    struct http_client *sm;
    long long skew_s;
    bool batch_denied;
    struct seen *seen;
};

static const char *const aws_keys[] = {"region", "profile", "endpoint", "sts_endpoint", "batch",
                                       NULL};

/* ---- configuration ---- */

static int check_str(json_t *conf, const char *key, char *err, size_t errlen)
{
    const json_t *v = json_object_get(conf, key);
    if (v && (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 128 ||
              strpbrk(json_string_value(v), " \t\n/[]"))) {
        snprintf(err, errlen, "%s: expected a name such as \"%s\"", key,
                 strcmp(key, "region") == 0 ? "eu-west-1" : "prod");
        return -EINVAL;
    }
    return 0;
}

static int aws_validate(json_t *conf, char *err, size_t errlen)
{
    int rc = backend_conf_check_keys(conf, aws_keys, http_conf_keys, err, errlen);
    if (rc < 0 || (rc = check_str(conf, "region", err, errlen)) < 0 ||
        (rc = check_str(conf, "profile", err, errlen)) < 0)
        return rc;
    struct http_opts ho;
    if ((rc = http_opts_parse(conf, "endpoint", false, &ho, err, errlen)) < 0)
        return rc;
    http_opts_cleanup(&ho);
    const json_t *sts = json_object_get(conf, "sts_endpoint");
    if (sts) {
        json_t *tmp = json_pack("{s:O}", "sts_endpoint", sts);
        rc = tmp ? http_opts_parse(tmp, "sts_endpoint", true, &ho, err, errlen) : -ENOMEM;
        json_decref(tmp);
        if (rc < 0)
            return rc;
        http_opts_cleanup(&ho);
    }
    const json_t *b = json_object_get(conf, "batch");
    if (b && !json_is_boolean(b)) {
        snprintf(err, errlen, "batch: expected true or false");
        return -EINVAL;
    }
    return 0;
}

static void aws_destroy(void *ctx)
{
    struct aws *a = ctx;
    if (!a)
        return;
    aws_chain_free(a->chain);
    http_client_free(a->sm);
    json_decref(a->conf);
    free(a->name);
    free(a->endpoint);
    free(a->region);
    while (a->seen) {
        struct seen *n = a->seen->next;
        free(a->seen->key);
        free(a->seen->version_id);
        free(a->seen);
        a->seen = n;
    }
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static const char *opt_str(json_t *conf, const char *key)
{
    return json_string_value(json_object_get(conf, key));
}

/* The parsed config is, for now, the validated JSON object itself. */
static int aws_parse(json_t *json, void **conf, char *err, size_t errlen)
{
    int rc = aws_validate(json, err, errlen);
    if (rc == 0)
        *conf = json_incref(json);
    return rc;
}

static void aws_conf_free(void *conf)
{
    json_decref(conf);
}

static int aws_create(const struct backend_env *env, const void *parsed, void **ctx, char *err,
                      size_t errlen)
{
    json_t *conf = (json_t *)(uintptr_t)parsed;
    struct aws *a = calloc(1, sizeof(*a));
    int rc = -ENOMEM;
    if (!a)
        return -ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    a->http = env->http;
    a->conf = json_incref(conf);
    a->name = strdup(env->name);
    a->endpoint = opt_str(conf, "endpoint") ? strdup(opt_str(conf, "endpoint")) : NULL;
    a->batch = !json_is_false(json_object_get(conf, "batch"));
    if (!a->name || (opt_str(conf, "endpoint") && !a->endpoint))
        goto fail;
    struct aws_chain_opts o = {
        .http = env->http, .profile = opt_str(conf, "profile"), .region = opt_str(conf, "region"),
        .sts_endpoint = opt_str(conf, "sts_endpoint"), .backend = env->name,
    };
    rc = aws_chain_new(&o, &a->chain, err, errlen);
    if (rc < 0)
        goto fail;
    *ctx = a;
    return 0;
fail:
    aws_destroy(a);
    return rc;
}

static int aws_check_ref(const struct secret_ref *ref, char *err, size_t errlen)
{
    size_t n = strlen(ref->path);
    if (n > 2048) {
        snprintf(err, errlen, "aws secret id too long");
        return -EINVAL;
    }
    if (strncmp(ref->path, "arn:", 4) == 0 && !strstr(ref->path, ":secretsmanager:")) {
        snprintf(err, errlen, "aws ARN '%.200s' is not a Secrets Manager ARN", ref->path);
        return -EINVAL;
    }
    const char *v = ref->version ? ref->version : ref->stage;
    if (v && (strlen(v) > 256 || strpbrk(v, "\"\\"))) {
        snprintf(err, errlen, "aws %s '%.64s' is not valid", ref->version ? "version id" : "stage",
                 v);
        return -EINVAL;
    }
    return 0;
}

/* ---- requests ---- */

/* The client, created at first use: the region may come from instance
 * metadata, which is network. lock held. */
static int ensure_client(struct aws *a, char *err, size_t errlen)
{
    char url[512];
    int rc;
    if (a->sm)
        return 0;
    if (!a->region && (rc = aws_chain_region(a->chain, &a->region, err, errlen)) < 0)
        return rc;
    if (!a->region[0] || strspn(a->region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
                             strlen(a->region)) {
        snprintf(err, errlen, "region '%.64s' is not a region name", a->region);
        free(a->region);
        a->region = NULL;
        return -EINVAL;
    }
    const char *e = a->endpoint ? a->endpoint : getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER");
    if (!e || !*e)
        e = getenv("AWS_ENDPOINT_URL");
    if (!e || !*e) {
        snprintf(url, sizeof(url), "https://secretsmanager.%s.amazonaws.com", a->region);
        e = url;
    }
    struct http_opts ho;
    rc = http_opts_parse(a->conf, "endpoint", false, &ho, err, errlen);
    if (rc < 0)
        return rc;
    rc = http_client_new(a->http, &ho, e, &a->sm, err, errlen);
    http_opts_cleanup(&ho);
    return rc;
}

/* AWS's error type ("ResourceNotFoundException") and message. */
UNITTEST_STATIC void aws_error(const struct http_response *r, char *type, size_t tcap, char *msg, size_t mcap)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, &jerr);
    secmem_wipe(&jerr, sizeof(jerr));
    const char *t = json_string_value(json_object_get(root, "__type"));
    const char *m = json_string_value(json_object_get(root, "message"));
    if (!m)
        m = json_string_value(json_object_get(root, "Message"));
    if (t && strchr(t, '#'))
        t = strchr(t, '#') + 1;
    snprintf(type, tcap, "%s", t ? t : "");
    snprintf(msg, mcap, "%s", m ? m : "");
    if (!root) {
        /* Authentication failures come as an XML ErrorResponse. */
        char *xc = aws_xml_text(&r->body, "Code"), *xm = aws_xml_text(&r->body, "Message");
        snprintf(type, tcap, "%s", xc ? xc : "");
        snprintf(msg, mcap, "%s", xm ? xm : xc ? "" : "body is neither JSON nor XML");
        secmem_free(xc);
        secmem_free(xm);
    }
    json_decref(root);
}

/* One Secrets Manager call. 0 with the response (any status), or a
 * transport/credentials error. A clock-skew rejection is retried once with
 * the server's clock, an expired-token rejection once with fresh
 * credentials. */
static int sm_call(struct aws *a, const char *op, const struct secbuf *body,
                   struct http_response *resp, char *err, size_t errlen)
{
    char target[96];
    snprintf(target, sizeof(target), "secretsmanager.%s", op);
    for (int attempt = 0;; attempt++) {
        struct aws_creds cr = {0};
        char msg[384] = "";
        pthread_mutex_lock(&a->lock);
        int rc = ensure_client(a, msg, sizeof(msg));
        long long skew = a->skew_s;
        pthread_mutex_unlock(&a->lock);
        if (rc == 0)
            rc = aws_chain_get(a->chain, &cr, msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "%s", msg);
            return rc;
        }
        struct aws_call call = {
            .service = "secretsmanager", .region = a->region, .creds = &cr, .skew_s = skew,
            .content_type = "application/x-amz-json-1.1", .target = target,
            .body = body->data, .body_len = body->len,
        };
        rc = aws_perform(a->sm, &call, resp, msg, sizeof(msg));
        aws_creds_clear(&cr);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", op, msg);
            return rc;
        }
        if (attempt > 0 || (resp->status != 400 && resp->status != 403))
            return 0;
        char type[128], amsg[256];
        aws_error(resp, type, sizeof(type), amsg, sizeof(amsg));
        if (aws_is_skew_error(type, amsg) && resp->date) {
            pthread_mutex_lock(&a->lock);
            a->skew_s = aws_skew_from(resp);
            skew = a->skew_s;
            pthread_mutex_unlock(&a->lock);
            struct log_fields lf = {.backend = a->name, .error = amsg};
            log_f(LOG_WARN, &lf, "aws rejected our clock; signing with the server's time "
                  "(%+llds)", skew);
            continue;
        }
        if (strcmp(type, "ExpiredTokenException") == 0) {
            aws_chain_invalidate(a->chain);
            continue;
        }
        return 0;
    }
}

/* An AWS error answer as a fetch error. */
static int status_error(const char *what, const struct http_response *r, struct fetch_result *out,
                        char *err, size_t errlen)
{
    char type[128], msg[256];
    aws_error(r, type, sizeof(type), msg, sizeof(msg));
    snprintf(err, errlen, "%s: HTTP %ld %s: %s", what, r->status, type[0] ? type : "error", msg);
    out->retryable = http_status_retryable(r->status) || strcmp(type, "ThrottlingException") == 0 ||
                     strcmp(type, "InternalServiceError") == 0 ||
                     strcmp(type, "RequestLimitExceeded") == 0;
    out->retry_after_ms = r->retry_after_ms > 0 ? r->retry_after_ms : 0;
    if (strcmp(type, "ResourceNotFoundException") == 0)
        return -ENOENT;
    /* Scheduled for deletion: gone for our purposes. */
    if (strcmp(type, "InvalidRequestException") == 0 &&
        (strstr(msg, "marked for deletion") || strstr(msg, "marked deleted") ||
         strstr(msg, "scheduled for deletion")))
        return -ENOENT;
    if (out->retryable)
        return -EAGAIN;
    return r->status == 403 || strcmp(type, "AccessDeniedException") == 0 ? -EACCES : -EINVAL;
}

static int json_body(json_t *o, struct secbuf *b, char *err, size_t errlen)
{
    int rc = http_json_body(o, AWS_BODY_MAX, b);
    if (rc < 0)
        snprintf(err, errlen, "request too large");
    return rc;
}

/* ---- the version a reference was last served at ---- */

static char *seen_key(const struct secret_ref *ref)
{
    char *k;
    if (asprintf(&k, "%s\n%s\n%s", ref->path, ref->version ? ref->version : "",
                 ref->stage ? ref->stage : "") < 0)
        return NULL;
    return k;
}

static char *seen_get(struct aws *a, const struct secret_ref *ref)
{
    char *k = seen_key(ref), *v = NULL;
    if (!k)
        return NULL;
    pthread_mutex_lock(&a->lock);
    for (struct seen *s = a->seen; s; s = s->next)
        if (strcmp(s->key, k) == 0 && s->version_id)
            v = strdup(s->version_id);
    pthread_mutex_unlock(&a->lock);
    free(k);
    return v;
}

static void seen_set(struct aws *a, const struct secret_ref *ref, const char *vid)
{
    char *k = seen_key(ref);
    if (!k)
        return;
    pthread_mutex_lock(&a->lock);
    struct seen *s = a->seen;
    while (s && strcmp(s->key, k) != 0)
        s = s->next;
    if (!s && (s = calloc(1, sizeof(*s)))) {
        s->key = k;
        k = NULL;
        s->next = a->seen;
        a->seen = s;
    }
    if (s) {
        free(s->version_id);
        s->version_id = vid ? strdup(vid) : NULL;
    }
    pthread_mutex_unlock(&a->lock);
    free(k);
}

/* ---- values ---- */

/* SecretString as is, SecretBinary decoded: from one GetSecretValue answer
 * or one entry of a batch answer. */
UNITTEST_STATIC int aws_take_value(const json_t *v, const struct secret_ref *ref,
                                   struct fetch_result *out, char *err, size_t errlen)
{
    const json_t *str = json_object_get(v, "SecretString");
    const json_t *bin = json_object_get(v, "SecretBinary");
    int rc;
    if (json_is_string(str)) {
        rc = secbuf_append(&out->value, json_string_value(str), json_string_length(str));
    } else if (json_is_string(bin)) {
        size_t cap = json_string_length(bin) / 4 * 3 + 3, n = 0;
        if (json_string_length(bin) / 4 * 3 > out->value.max + 2) {
            snprintf(err, errlen, "%.200s: value larger than %zu bytes (max_size)", ref->path,
                     out->value.max);
            out->retryable = false;
            return -E2BIG;
        }
        rc = secbuf_reserve(&out->value, cap < out->value.max ? cap : out->value.max);
        if (rc == 0 && sodium_base642bin(out->value.data, out->value.cap, json_string_value(bin),
                                         json_string_length(bin), NULL, &n, NULL,
                                         sodium_base64_VARIANT_ORIGINAL) != 0) {
            snprintf(err, errlen, "%.200s: SecretBinary is not valid base64", ref->path);
            out->retryable = false;
            return -EPROTO;
        }
        out->value.len = n;
    } else {
        snprintf(err, errlen, "%.200s: neither SecretString nor SecretBinary in the answer",
                 ref->path);
        return -EPROTO;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%.200s: value larger than %zu bytes (max_size)", ref->path,
                 out->value.max);
        out->retryable = false;
        return rc;
    }
    return 0;
}

/* The answer to a call about ref's secret: its JSON object in *root, or the
 * error (status, non-JSON). */
UNITTEST_STATIC int aws_answer_object(const char *op, const struct secret_ref *ref,
                                      const struct http_response *r, json_t **root,
                                      struct fetch_result *out, char *err, size_t errlen)
{
    *root = NULL;
    if (r->status != 200)
        return status_error(ref->path, r, out, err, errlen);
    *root = http_body_object(r);
    if (!*root) {
        snprintf(err, errlen, "%.200s: %s answered with a body that is not a JSON object",
                 ref->path, op);
        return -EPROTO;
    }
    return 0;
}

/* One call about ref's secret: req (consumed) sent as op; the answer's JSON
 * object in *root, or the error (status, transport, non-JSON). */
static int sm_json(struct aws *a, const char *op, const struct secret_ref *ref, json_t *req,
                   json_t **root, struct fetch_result *out, char *err, size_t errlen)
{
    struct http_response r;
    struct secbuf body = {0};
    int rc;
    *root = NULL;
    if (!req)
        return -ENOMEM;
    http_response_init(&r);
    rc = json_body(req, &body, err, errlen);
    if (rc == 0)
        rc = sm_call(a, op, &body, &r, err, errlen);
    if (rc < 0)
        out->retryable = http_errno_retryable(rc);
    else
        rc = aws_answer_object(op, ref, &r, root, out, err, errlen);
    json_decref(req);
    secbuf_cleanup(&body);
    http_response_cleanup(&r);
    return rc;
}

static int get_value(struct aws *a, const struct secret_ref *ref, struct fetch_result *out,
                     char *err, size_t errlen)
{
    json_t *req = json_pack("{s:s}", "SecretId", ref->path), *root = NULL;
    if (req && ref->version)
        json_object_set_new(req, "VersionId", json_string(ref->version));
    if (req && ref->stage)
        json_object_set_new(req, "VersionStage", json_string(ref->stage));
    int rc = sm_json(a, "GetSecretValue", ref, req, &root, out, err, errlen);
    if (rc == 0)
        rc = aws_take_value(root, ref, out, err, errlen);
    if (rc == 0)
        seen_set(a, ref, json_string_value(json_object_get(root, "VersionId")));
    json_decref(root);
    return rc;
}

/* A DescribeSecret answer: 0 and whether ref no longer names version
 * known, or an error (-ENOENT: gone). */
UNITTEST_STATIC int aws_describe_answer(const json_t *root, const struct secret_ref *ref,
                                        const char *known, bool *changed, char *err,
                                        size_t errlen)
{
    int rc = 0;
    json_t *map = json_object_get(root, "VersionIdsToStages");
    const json_t *deleted = json_object_get(root, "DeletedDate");
    if (deleted && !json_is_null(deleted)) {
        snprintf(err, errlen, "%.200s: scheduled for deletion", ref->path);
        rc = -ENOENT;
    } else if (!json_is_object(map)) {
        snprintf(err, errlen, "%.200s: DescribeSecret without VersionIdsToStages", ref->path);
        rc = -EPROTO;
    } else if (ref->version) {
        /* A version without staging labels is not listed here yet may
         * still exist (AWS calls it deprecated): read it to find out. */
        *changed = !json_object_get(map, ref->version);
    } else {
        const char *stage = ref->stage ? ref->stage : AWS_CURRENT, *vid;
        const json_t *stages;
        *changed = true;
        json_object_foreach(map, vid, stages) {
            size_t i;
            const json_t *st;
            json_array_foreach(stages, i, st)
                if (json_is_string(st) && strcmp(json_string_value(st), stage) == 0 &&
                    strcmp(vid, known) == 0)
                    *changed = false;
        }
    }
    return rc;
}

/* DescribeSecret: 0 and *changed, or an error (-ENOENT: gone). Metadata
 * only: no value crosses the wire. */
static int version_changed(struct aws *a, const struct secret_ref *ref, const char *known,
                           bool *changed, struct fetch_result *out, char *err, size_t errlen)
{
    json_t *root = NULL;
    int rc = sm_json(a, "DescribeSecret", ref, json_pack("{s:s}", "SecretId", ref->path), &root,
                     out, err, errlen);
    if (rc == 0)
        rc = aws_describe_answer(root, ref, known, changed, err, errlen);
    json_decref(root);
    return rc;
}

static int aws_fetch(void *ctx, const struct secret_ref *ref, struct fetch_result *out, char *err,
                     size_t errlen)
{
    struct aws *a = ctx;
    char *known = out->cached ? seen_get(a, ref) : NULL;
    int rc;
    if (known) {
        bool changed = true;
        rc = version_changed(a, ref, known, &changed, out, err, errlen);
        free(known);
        if (rc < 0 || !changed) {
            out->unchanged = rc == 0;
            return rc;
        }
    }
    return get_value(a, ref, out, err, errlen);
}

/* ---- cold start: BatchGetSecretValue ---- */

static bool names_secret(const struct secret_ref *ref, const json_t *v)
{
    const char *name = json_string_value(json_object_get(v, "Name"));
    const char *arn = json_string_value(json_object_get(v, "ARN"));
    if ((name && strcmp(ref->path, name) == 0) || (arn && strcmp(ref->path, arn) == 0))
        return true;
    /* A partial ARN names the secret whose ARN is exactly it plus "-" and
     * the six random characters: "...:secret:db" must not match
     * "...:secret:db-admin-AbCdEf". */
    size_t n = strlen(ref->path);
    return arn && strncmp(ref->path, "arn:", 4) == 0 && strlen(arn) == n + 7 &&
           strncmp(arn, ref->path, n) == 0 && arn[n] == '-';
}

/* Hand each entry of a BatchGetSecretValue answer to the references it
 * names; served[i] is the entry that gave refs[i] its value. */
UNITTEST_STATIC void aws_batch_take(const json_t *root, const struct secret_ref *const *refs,
                                    size_t n, struct fetch_result *outs, int *rcs,
                                    char (*errs)[BACKEND_ERR_MAX], const json_t **served)
{
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(root, "SecretValues"), k, v)
        for (size_t i = 0; i < n; i++)
            if (!served[i] && !refs[i]->version && !refs[i]->stage &&
                names_secret(refs[i], v)) {
                rcs[i] = aws_take_value(v, refs[i], &outs[i], errs[i], BACKEND_ERR_MAX);
                if (rcs[i] == 0)
                    served[i] = v;
                else
                    secbuf_cleanup(&outs[i].value);
            }
}

static void aws_fetch_many(void *ctx, const struct secret_ref *const *refs, size_t n,
                           struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX])
{
    struct aws *a = ctx;
    size_t batchable = 0;
    bool *done = calloc(n + 1, sizeof(*done));
    const json_t **served = calloc(n + 1, sizeof(*served));
    bool batch_failed = false;       /* transient: the singles would fail the same way */
    int batch_rc = 0;
    struct fetch_result batch_out = {0};
    char batch_err[BACKEND_ERR_MAX] = "";

    pthread_mutex_lock(&a->lock);
    bool use_batch = a->batch && !a->batch_denied;
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < n; i++)
        if (!refs[i]->version && !refs[i]->stage)
            batchable++;
    if (done && served && use_batch && batchable > 1) {
        struct http_response r;
        struct secbuf body;
        char err[BACKEND_ERR_MAX] = "";
        json_t *ids = json_array(), *req = json_object(), *root = NULL;
        for (size_t i = 0; i < n; i++)
            if (!refs[i]->version && !refs[i]->stage)
                json_array_append_new(ids, json_string(refs[i]->path));
        json_object_set_new(req, "SecretIdList", ids);
        http_response_init(&r);
        int rc = json_body(req, &body, err, sizeof(err));
        if (rc == 0)
            rc = sm_call(a, "BatchGetSecretValue", &body, &r, err, sizeof(err));
        if (rc == 0 && r.status == 200) {
            json_error_t jerr;
            root = json_loadb((const char *)r.body.data, r.body.len, 0, &jerr);
            secmem_wipe(&jerr, sizeof(jerr));
            aws_batch_take(root, refs, n, outs, rcs, errs, served);
            for (size_t i = 0; i < n; i++)
                if (served[i]) {
                    done[i] = true;
                    seen_set(a, refs[i],
                             json_string_value(json_object_get(served[i], "VersionId")));
                }
        } else {
            if (rc < 0) {
                batch_rc = rc;
                batch_out.retryable = http_errno_retryable(rc);
                snprintf(batch_err, sizeof(batch_err), "%s", err);
            } else {
                batch_rc = status_error("BatchGetSecretValue", &r, &batch_out, batch_err,
                                        sizeof(batch_err));
            }
            /* Unreachable, throttled, failing: twenty single calls would only
             * multiply the load and the wait. Every item gets this error and
             * the scheduler's backoff. A refusal is retried one by one below,
             * which also yields each item's precise error. */
            batch_failed = rc < 0 || batch_out.retryable;
            char type[128], msg[256];
            aws_error(&r, type, sizeof(type), msg, sizeof(msg));
            if (rc == 0 && (strcmp(type, "AccessDeniedException") == 0 ||
                            strcmp(type, "AccessDenied") == 0)) {
                /* Not allowed to batch: single calls from now on. */
                pthread_mutex_lock(&a->lock);
                a->batch_denied = true;
                pthread_mutex_unlock(&a->lock);
                struct log_fields lf = {.backend = a->name, .error = msg};
                log_f(LOG_WARN, &lf, "aws BatchGetSecretValue denied; fetching one by one");
            }
        }
        json_decref(root);
        json_decref(req);
        secbuf_cleanup(&body);
        http_response_cleanup(&r);
    }
    /* Whatever the batch did not deliver (errors, pinned versions, a
     * refused batch) goes one by one: that also yields the precise error. */
    for (size_t i = 0; i < n; i++) {
        if (done && done[i])
            continue;
        if (batch_failed && !refs[i]->version && !refs[i]->stage) {
            rcs[i] = batch_rc;
            outs[i].retryable = batch_out.retryable;
            outs[i].retry_after_ms = batch_out.retry_after_ms;
            snprintf(errs[i], BACKEND_ERR_MAX, "%s", batch_err);
            continue;
        }
        rcs[i] = get_value(a, refs[i], &outs[i], errs[i], BACKEND_ERR_MAX);
    }
    free(served);
    free(done);
}

/* "batch": false gives every secret its own worker and request. */
static size_t aws_batch_max(void *ctx)
{
    const struct aws *a = ctx;
    return a->batch ? AWS_BATCH_MAX : 0;
}

const struct backend_ops backend_aws_ops = {
    .type = "aws",
    .caps = BACKEND_CAP_VERSIONS | BACKEND_CAP_STAGES,
    .batch_max = aws_batch_max,
    .parse = aws_parse,
    .conf_free = aws_conf_free,
    .create = aws_create,
    .check_ref = aws_check_ref,
    .fetch = aws_fetch,
    .fetch_many = aws_fetch_many,
    .destroy = aws_destroy,
};
