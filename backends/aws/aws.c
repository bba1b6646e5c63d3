/* aws.c - the AWS Secrets Manager backend.
 *
 * JSON 1.1 protocol over the shared HTTP layer, signed with SigV4
 * (sign.c), credentials from the SDK chain (creds.c), config from conf.c. Values:
 * SecretString as is, SecretBinary base64-decoded to raw bytes. A cold start
 * uses BatchGetSecretValue (20 per call) and falls back to single calls; a
 * refresh asks DescribeSecret whether the version served is still the one
 * the reference names, and reads the value only when it is not.
 */
#include "backends/aws/aws.h"
#include "backends/aws/aws_i.h"
#include "backends/http/http.h"
#include "backends/http/json.h"
#include "lib/log.h"

#include <errno.h>
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
    struct http_opts http_opts;     /* ours (a copy): "endpoint" and TLS for the lazy client */
    bool batch;
    struct aws_clock clock;         /* shared with the chain's STS calls; atomic */
    struct aws_chain *chain;
    pthread_mutex_t lock;           /* protects everything below */
    /* region and sm are set once, under lock (ensure_client); callers read
     * them without it once ensure_client has returned 0: they never change. */
    char *region;
    struct http_client *sm;
    bool batch_denied;
    struct seen *seen;
};

static void aws_destroy(void *ctx)
{
    struct aws *a = ctx;
    if (!a)
        return;
    aws_chain_free(a->chain);
    http_client_free(a->sm);
    http_opts_cleanup(&a->http_opts);
    free(a->name);
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

static int aws_create(const struct backend_env *env, const void *parsed, void **ctx, char *err,
                      size_t errlen)
{
    const struct aws_conf *conf = parsed;
    struct aws *a = calloc(1, sizeof(*a));
    int rc = -ENOMEM;
    if (!a)
        return -ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    a->http = env->http;
    a->batch = conf->batch;
    a->name = strdup(env->name);
    if (!a->name || http_opts_copy(&conf->http, &a->http_opts) < 0)
        goto fail;
    struct aws_chain_opts o = {
        .http = env->http, .profile = conf->profile, .region = conf->region,
        .sts_endpoint = conf->sts_endpoint, .backend = env->name, .clock = &a->clock,
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
 * metadata, which is network. a->lock held. */
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
    const char *e = a->http_opts.address ? a->http_opts.address
                                         : getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER");
    if (!e || !*e)
        e = getenv("AWS_ENDPOINT_URL");
    if (!e || !*e) {
        snprintf(url, sizeof(url), "https://secretsmanager.%s.amazonaws.com", a->region);
        e = url;
    }
    return http_client_new(a->http, &a->http_opts, e, &a->sm, err, errlen);
}

/* One Secrets Manager call. 0 with the response (any status), or a
 * transport/credentials error. A clock-skew rejection is retried once with
 * the server's clock (aws_signed_call), an expired-token rejection once
 * with fresh credentials; never both. */
static int sm_call(struct aws *a, const char *op, const struct secbuf *body,
                   struct http_response *resp, char *err, size_t errlen)
{
    char target[96];
    const struct aws_skew_log who = {.who = "aws", .backend = a->name};
    snprintf(target, sizeof(target), "secretsmanager.%s", op);
    for (int attempt = 0;; attempt++) {
        struct aws_creds cr = {0};
        char msg[384] = "";
        bool skew_retried = false;
        pthread_mutex_lock(&a->lock);
        int rc = ensure_client(a, msg, sizeof(msg));
        pthread_mutex_unlock(&a->lock);
        if (rc == 0)
            rc = aws_chain_get(a->chain, &cr, msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "%s", msg);
            return rc;
        }
        struct aws_call call = {
            .service = "secretsmanager", .region = a->region, .creds = &cr,
            .content_type = "application/x-amz-json-1.1", .target = target,
            .body = body->data, .body_len = body->len,
        };
        rc = aws_signed_call(a->sm, &call, &a->clock, &who, resp, &skew_retried, msg,
                             sizeof(msg));
        aws_creds_clear(&cr);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", op, msg);
            return rc;
        }
        if (attempt > 0 || skew_retried || (resp->status != 400 && resp->status != 403))
            return 0;
        char type[128], amsg[256];
        aws_error(resp, type, sizeof(type), amsg, sizeof(amsg));
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
int aws_take_value(const json_t *v, const struct secret_ref *ref, struct fetch_result *out,
                   char *err, size_t errlen)
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
    /* The version served, for /status: the answer's or the batch entry's
     * VersionId (a UUID); anything else is not shown. */
    const json_t *vid = json_object_get(v, "VersionId");
    if (json_is_string(vid))
        fetch_result_set_version(out, json_string_value(vid), json_string_length(vid));
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

/* ---- cold start: BatchGetSecretValue (the plan in batch.c) ---- */

/* One BatchGetSecretValue for the references of batch b: what it serves
 * lands in outs (done[i], seen), what it cannot is judged in *verdict, with
 * the error every reference gets when verdict->fail_all. */
static void send_batch(struct aws *a, const struct secret_ref *const *refs, size_t n,
                       const int *batch_of, int b, struct fetch_result *outs, int *rcs,
                       char (*errs)[BACKEND_ERR_MAX], bool *done,
                       struct aws_batch_verdict *verdict, struct fetch_result *batch_out,
                       int *batch_rc, char *batch_err)
{
    const json_t **served = calloc(n + 1, sizeof(*served));
    struct http_response r;
    struct secbuf body = {0};
    char err[BACKEND_ERR_MAX] = "";
    json_t *ids = json_array(), *req = json_object(), *root = NULL;
    for (size_t i = 0; i < n; i++)
        if (batch_of[i] == b)
            json_array_append_new(ids, json_string(refs[i]->path));
    json_object_set_new(req, "SecretIdList", ids);
    http_response_init(&r);
    int rc = served ? json_body(req, &body, err, sizeof(err)) : -ENOMEM;
    if (rc == 0)
        rc = sm_call(a, "BatchGetSecretValue", &body, &r, err, sizeof(err));
    if (rc == 0 && r.status == 200) {
        json_error_t jerr;
        root = json_loadb((const char *)r.body.data, r.body.len, 0, &jerr);
        secmem_wipe(&jerr, sizeof(jerr));
        for (size_t i = 0; i < n; i++)
            if (done[i])
                served[i] = root;   /* an earlier batch's: not to be taken again */
        aws_batch_take(root, refs, n, outs, rcs, errs, served);
        for (size_t i = 0; i < n; i++)
            if (served[i] && !done[i]) {
                done[i] = true;
                seen_set(a, refs[i], json_string_value(json_object_get(served[i], "VersionId")));
            }
    } else {
        if (rc < 0) {
            *batch_rc = rc;
            batch_out->retryable = http_errno_retryable(rc);
            snprintf(batch_err, BACKEND_ERR_MAX, "%s", err);
        } else {
            *batch_rc = status_error("BatchGetSecretValue", &r, batch_out, batch_err,
                                     BACKEND_ERR_MAX);
        }
        char type[128], msg[256];
        aws_error(&r, type, sizeof(type), msg, sizeof(msg));
        *verdict = aws_batch_judge(rc, batch_out->retryable, type);
        if (verdict->denied) {
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
    free(served);
}

/* One BatchGetSecretValue answers a chunk together: nothing to report
 * ready early. */
static void aws_fetch_many(void *ctx, const struct secret_ref *const *refs, size_t n,
                           struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX],
                           void (*ready)(void *arg, size_t i), void *arg)
{
    struct aws *a = ctx;
    (void)ready;
    (void)arg;
    int *batch_of = calloc(n + 1, sizeof(*batch_of));
    bool *done = calloc(n + 1, sizeof(*done));
    enum aws_fate *fate = calloc(n + 1, sizeof(*fate));
    struct aws_batch_verdict *verdicts = calloc(n + 1, sizeof(*verdicts));
    struct fetch_result *batch_outs = calloc(n + 1, sizeof(*batch_outs));
    int *batch_rcs = calloc(n + 1, sizeof(*batch_rcs));
    char (*batch_errs)[BACKEND_ERR_MAX] = calloc(n + 1, sizeof(*batch_errs));
    /* Without memory for the plan, everything goes one by one. */
    bool planned = batch_of && done && fate && verdicts && batch_outs && batch_rcs && batch_errs;

    if (planned) {
        pthread_mutex_lock(&a->lock);
        bool use_batch = a->batch && !a->batch_denied;
        pthread_mutex_unlock(&a->lock);
        size_t batches = aws_batch_plan(refs, n, AWS_BATCH_MAX, use_batch, batch_of);
        for (size_t b = 0; b < batches; b++) {
            pthread_mutex_lock(&a->lock);
            bool denied = a->batch_denied;
            pthread_mutex_unlock(&a->lock);
            if (!denied)   /* an earlier batch was refused: the rest one by one */
                send_batch(a, refs, n, batch_of, (int)b, outs, rcs, errs, done, &verdicts[b],
                           &batch_outs[b], &batch_rcs[b], batch_errs[b]);
        }
        aws_batch_fates(n, batch_of, done, verdicts, fate);
    }
    /* Whatever the batches did not deliver (errors, pinned versions, a
     * refused batch) goes one by one: that also yields the precise error.
     * A batch that failed for a transient reason (unreachable, throttled,
     * failing) gives its error to each of its references instead: single
     * calls would only multiply the load and the wait, and the scheduler
     * backs off. */
    for (size_t i = 0; i < n; i++) {
        enum aws_fate f = planned ? fate[i] : AWS_FATE_SINGLE;
        if (f == AWS_FATE_DONE)
            continue;
        if (f == AWS_FATE_BATCH_ERROR) {
            int b = batch_of[i];
            rcs[i] = batch_rcs[b];
            outs[i].retryable = batch_outs[b].retryable;
            outs[i].retry_after_ms = batch_outs[b].retry_after_ms;
            snprintf(errs[i], BACKEND_ERR_MAX, "%s", batch_errs[b]);
            continue;
        }
        rcs[i] = get_value(a, refs[i], &outs[i], errs[i], BACKEND_ERR_MAX);
    }
    free(batch_errs);
    free(batch_rcs);
    free(batch_outs);
    free(verdicts);
    free(fate);
    free(done);
    free(batch_of);
}

static void aws_auth_status(void *ctx, struct backend_auth *out)
{
    struct aws *a = ctx;
    aws_chain_status(a->chain, out);
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
    .auth_status = aws_auth_status,
};
