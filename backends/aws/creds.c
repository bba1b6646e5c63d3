/* creds.c - the AWS credential chain (see creds.h for the order): which
 * source to use, the current credentials, their refresh and its backoff.
 * Each source lives in its own file (aws_i.h lists them).
 *
 * Every credential string lands in secret memory straight from the file,
 * the process pipe or the HTTP response buffer it came in; the JSON and
 * XML it came wrapped in are parsed in wiped memory too.
 */
#include "backends/aws/creds.h"
#include "backends/aws/aws_i.h"
#include "lib/backoff.h"
#include "lib/clock.h"
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define AWS_PROCESS_TIMEOUT_MS 30000
#define AWS_REFRESH_AHEAD_S (15 * 60)

/* After a failed fetch the next waits 1 s, doubling up to 60 s: a hundred
 * waiting fetches must not all try again. */
static const struct backoff creds_backoff = {.base_ms = 1000, .max_ms = 60 * 1000LL};

/* ---- what the sources share ---- */

const char *aws_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

time_t aws_parse_time(const char *s)
{
    struct tm tm = {0};
    if (!s)
        return 0;
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return 0;
    return timegm(&tm);
}

const char *aws_profile_name(const struct aws_chain *c)
{
    if (c->profile)
        return c->profile;
    const char *p = aws_env("AWS_PROFILE");
    return p ? p : "default";
}

int aws_chain_client(struct aws_chain *c, struct http_client **slot, const char *url,
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

void aws_chain_region_now(struct aws_chain *c, char *buf, size_t cap)
{
    pthread_mutex_lock(&c->lock);
    snprintf(buf, cap, "%s", c->region ? c->region : "");
    pthread_mutex_unlock(&c->lock);
}

int aws_creds_from_json(const struct secbuf *body, const char *what, struct aws_creds *out,
                        char *err, size_t errlen)
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
        out->akid = secmem_strndup(a, strlen(a));
        out->secret = secmem_strndup(s, strlen(s));
        out->token = t && *t ? secmem_strndup(t, strlen(t)) : NULL;
        out->expiration = aws_parse_time(json_string_value(json_object_get(root, "Expiration")));
        out->obtained = time(NULL);
        if (!out->akid || !out->secret || (t && *t && !out->token))
            rc = -ENOMEM;
    }
    json_decref(root);
    return rc;
}

/* ---- the chain ---- */

/* Find the source and fetch from it; its name into source (for the log).
 * Runs without c->lock, on the one refreshing thread. */
static int fetch(struct aws_chain *c, struct aws_creds *out, char *source, size_t scap,
                 const char **method, char *err, size_t errlen)
{
    const char *wif = aws_env("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = aws_env("AWS_ROLE_ARN");
    struct aws_files f;
    int rc;

    /* An explicit profile skips the environment, as with the CLI's --profile. */
    if (!c->profile_explicit && (rc = aws_env_creds(out)) != 1) {
        snprintf(source, scap, "environment");
        *method = "env";
        return rc;
    }
    if (!c->profile_explicit && wif && role) {
        snprintf(source, scap, "web identity");
        *method = "web_identity";
        return aws_web_identity(c, wif, role, aws_env("AWS_ROLE_SESSION_NAME"), out, err, errlen);
    }
    if ((rc = aws_files_load(&f, err, errlen)) < 0)
        return rc;
    const char *profile = aws_profile_name(c);
    if (aws_profile_exists(&f, profile)) {
        snprintf(source, scap, "profile %.100s", profile);
        *method = "profile";
        rc = aws_profile_creds(c, &f, profile, 0, out, err, errlen);
        if (rc == 1) {
            snprintf(err, errlen, "profile %s (%s, %s) has no credentials", profile, f.creds_path,
                     f.config_path);
            rc = -EINVAL;
        }
        aws_files_free(&f);
        return rc;
    }
    aws_files_free(&f);
    if (c->profile || aws_env("AWS_PROFILE")) {
        snprintf(err, errlen, "profile %s not found in %s or %s", profile, f.creds_path,
                 f.config_path);
        return -EINVAL;
    }
    if (aws_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
        aws_env("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        snprintf(source, scap, "container");
        *method = "container";
        return aws_container_creds(c, out, err, errlen);
    }
    const char *off = aws_env("AWS_EC2_METADATA_DISABLED");
    if (off && strcasecmp(off, "true") == 0) {
        snprintf(err, errlen, "no credentials: not in the environment, no web identity, no "
                 "profile '%s', no container endpoint, and instance metadata is disabled", profile);
        return -ENOENT;
    }
    snprintf(source, scap, "instance metadata");
    *method = "imds";
    rc = aws_imds_creds(c, out, err, errlen);
    if (rc < 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", err);
        snprintf(err, errlen, "no credentials: not in the environment, no web identity, no "
                 "profile '%s', no container endpoint; instance metadata: %s", profile, msg);
    }
    return rc;
}

/* Expiration is the server's clock: compare with ours corrected by the skew
 * the servers told us about. */
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

/* Credentials usable for a request now (server time). c->lock held. */
static bool usable(const struct aws_chain *c)
{
    return c->creds.akid &&
           (!c->creds.expiration || time(NULL) + c->clock->skew_s < c->creds.expiration);
}

/* Publish the state for aws_chain_status: OK with the credentials held,
 * FAILING after a failed fetch (with the end of those still held, as the
 * token cache does), PENDING with none and no failure. Expiration is on
 * the server's clock: ours is behind it by the skew. c->lock held. */
static void publish(struct aws_chain *c)
{
    enum backend_auth_state st = c->failed_ms ? BACKEND_AUTH_FAILING
                                 : c->creds.akid ? BACKEND_AUTH_OK : BACKEND_AUTH_PENDING;
    long long end = 0;
    if (c->creds.akid && c->creds.expiration)
        end = ((long long)c->creds.expiration - c->clock->skew_s) * 1000;
    auth_state_set(&c->status, st, end);
}

void aws_chain_status(struct aws_chain *c, struct backend_auth *out)
{
    const char *m = c->method;
    auth_state_read(&c->status, out);
    snprintf(out->method, sizeof(out->method), "%s", m ? m : "");
}

int aws_chain_get(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    while (needs_refresh(&c->creds, c->clock->skew_s)) {
        if (c->refreshing) {
            /* One fetch at a time; the others go on with what is there. */
            if (usable(c))
                break;
            pthread_cond_wait(&c->refreshed, &c->lock);
            continue;
        }
        if (c->failed_ms &&
            clock_mono_ms() - c->failed_ms < backoff_ceiling(&creds_backoff, c->failures, 0)) {
            if (!usable(c)) {
                snprintf(err, errlen, "%s", c->failed_err);
                rc = c->failed_rc;
            }
            break;
        }
        /* The fetch runs without the lock: requests keep signing with the
         * current credentials while they are valid. */
        struct aws_creds fresh = {0};
        char source[sizeof(c->source_name)] = "";
        const char *method = NULL;
        c->refreshing = true;
        pthread_mutex_unlock(&c->lock);
        rc = fetch(c, &fresh, source, sizeof(source), &method, err, errlen);
        pthread_mutex_lock(&c->lock);
        c->refreshing = false;
        pthread_cond_broadcast(&c->refreshed);
        if (source[0])
            memcpy(c->source_name, source, sizeof(source));
        if (method)
            c->method = method;
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
            c->failed_ms = clock_mono_ms();
            c->failed_rc = rc;
            snprintf(c->failed_err, sizeof(c->failed_err), "%s", err);
            struct log_fields lf = {.backend = c->backend, .error = err};
            log_f(usable(c) ? LOG_WARN : LOG_ERROR, &lf, "aws credentials refresh failed");
            if (usable(c))
                rc = 0;   /* the current ones are still good for a while */
        }
        publish(c);
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
    publish(c);
    pthread_mutex_unlock(&c->lock);
}

const char *aws_chain_source(struct aws_chain *c)
{
    return c->source_name;
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
    c->clock = o->clock ? o->clock : &c->own_clock;
    auth_state_set(&c->status, BACKEND_AUTH_PENDING, 0);
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
