/* vault.c - the HashiCorp Vault backend.
 *
 * KV version 1 and 2 and dynamic secrets (anything answering with a lease)
 * over the shared HTTP layer. One login token per backend, obtained with
 * the configured auth method, renewed at 2/3 of its TTL by maintain(), and
 * replaced by one fresh login when Vault rejects it. Wire reference: Vault's
 * HTTP API docs (auth login endpoints, the token self endpoints,
 * sys/internal/ui/mounts, the sys/leases endpoints), summarised in
 * docs/internals/backends.md.
 *
 * Secret hygiene: the token, role and secret ids and JWTs live in secret
 * memory; request headers and bodies that carry them are wiped after use
 * (curl's and jansson's heaps wipe on free, see secmem.c); error messages
 * carry Vault's "errors" text and paths, never a token or a value.
 */
#include "backends/vault/vault.h"
#include "backends/http/http.h"
#include "backends/http/json.h"
#include "lib/log.h"
#include "lib/secfile.h"
#include "backends/vault/vault_i.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VAULT_SECRET_FILE_MAX (64 * 1024)
#define VAULT_PATH_MAX 2048
#define VAULT_K8S_JWT "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define VAULT_LOGIN_RETRY_MAX_MS (60 * 1000LL)
#define VAULT_MAINTAIN_MAX_MS (60 * 1000LL)
#define VAULT_SHUTDOWN_MS (10 * 1000LL)       /* all revocations together */
#define VAULT_MAX_TTL_S (10LL * 366 * 86400)  /* clamp for TTLs a server sends */

enum auth_method { AUTH_TOKEN, AUTH_APPROLE, AUTH_KUBERNETES, AUTH_JWT };
static const char *const method_names[] = {"token", "approle", "kubernetes", "jwt"};

struct mount {
    char *path;                    /* "secret/", with the trailing slash */
    enum mount_kind kind;
    struct mount *next;
};

struct lease {
    char *key;                     /* the reference path it came from */
    char *id;
    unsigned long gen;             /* the token it was created under */
    bool renewable, current, exhausted;
    long long duration_ms, obtained_ms, expires_ms;   /* CLOCK_MONOTONIC */
    struct lease *next;
};

struct vault {
    char *name;                    /* backend name, for logs */
    struct http_client *http;
    char *ns_header;               /* "X-Vault-Namespace: ..." or NULL */
    enum auth_method method;
    char *auth_mount;              /* without slashes */
    char *token_file, *role, *role_id, *role_id_file, *secret_id_file, *jwt_file;
    char *env_token;               /* VAULT_TOKEN (secret memory) when no token_file */
    bool revoke_on_shutdown;
    struct mount *overrides;       /* from kv_versions; immutable */

    /* The login token: auth_lock serialises logins and renewals, so a
     * burst of fetches that find no token waits for one login. */
    pthread_mutex_t auth_lock;
    char *token;                   /* secret memory */
    unsigned long gen;             /* bumped at every new token */
    bool renewable, from_login;
    bool needs_lookup;             /* token method: TTL not known yet */
    long long ttl_ms, increment_s, obtained_ms;
    unsigned login_failures;
    /* The last failed login, answered to everyone who queued behind it
     * until its backoff passes, so an outage costs one login attempt per
     * backoff step rather than one per waiting fetch. */
    long long login_failed_ms;
    int login_failed_rc;
    char login_failed_err[384];

    pthread_mutex_t mount_lock;    /* one KV-version probe at a time */
    pthread_mutex_t lock;          /* mounts and leases */
    struct mount *mounts;
    struct lease *leases;
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* A duration in seconds from Vault, bounded so arithmetic on it cannot
 * overflow whatever the server sends. */
static long long ttl_of(const json_t *v)
{
    json_int_t t = json_integer_value(v);
    return t < 0 ? 0 : t > VAULT_MAX_TTL_S ? VAULT_MAX_TTL_S : (long long)t;
}

static char *secstr_dup(const char *s, size_t n)
{
    char *p = secmem_alloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- configuration ---- */

static const char *const vault_keys[] = {"address", "namespace", "auth", "kv_versions",
                                         "revoke_on_shutdown", NULL};

static int auth_method_of(const json_t *auth, enum auth_method *m, char *err, size_t errlen)
{
    const json_t *v = json_object_get(auth, "method");
    if (!v) {
        snprintf(err, errlen, "auth.method: missing (token, approle, kubernetes or jwt)");
        return -EINVAL;
    }
    for (size_t i = 0; json_is_string(v) && i < 4; i++)
        if (strcmp(json_string_value(v), method_names[i]) == 0) {
            *m = (enum auth_method)i;
            return 0;
        }
    snprintf(err, errlen, "auth.method: expected one of token, approle, kubernetes, jwt");
    return -EINVAL;
}

static int check_file_key(const json_t *auth, const char *key, bool required, char *err,
                          size_t errlen)
{
    const json_t *v = json_object_get(auth, key);
    if (!v) {
        if (required)
            snprintf(err, errlen, "auth.%s: missing", key);
        return required ? -EINVAL : 0;
    }
    if (!json_is_string(v) || json_string_value(v)[0] != '/') {
        snprintf(err, errlen, "auth.%s: expected an absolute path", key);
        return -EINVAL;
    }
    if (access(json_string_value(v), R_OK) != 0) {
        snprintf(err, errlen, "auth.%s: %.200s: %s", key, json_string_value(v), strerror(errno));
        return -EINVAL;
    }
    return 0;
}

static int check_string_key(const json_t *o, const char *prefix, const char *key, bool required,
                            char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            snprintf(err, errlen, "%s%s: missing", prefix, key);
        return required ? -EINVAL : 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 256 ||
        strchr(json_string_value(v), '\n')) {
        snprintf(err, errlen, "%s%s: expected a non-empty string (at most 256 characters)",
                 prefix, key);
        return -EINVAL;
    }
    return 0;
}

static int validate_auth(json_t *auth, char *err, size_t errlen)
{
    static const char *const keys[][5] = {
        [AUTH_TOKEN] = {"method", "mount", "token_file", NULL},
        [AUTH_APPROLE] = {"method", "mount", "role_id", "role_id_file", "secret_id_file"},
        [AUTH_KUBERNETES] = {"method", "mount", "role", "jwt_file", NULL},
        [AUTH_JWT] = {"method", "mount", "role", "jwt_file", NULL},
    };
    enum auth_method m;
    const char *key;
    json_t *val;
    int rc;

    if (!json_is_object(auth)) {
        snprintf(err, errlen, "auth: expected an object with a \"method\"");
        return -EINVAL;
    }
    if ((rc = auth_method_of(auth, &m, err, errlen)) < 0)
        return rc;
    json_object_foreach(auth, key, val) {
        bool ok = false;
        for (size_t i = 0; i < 5 && keys[m][i]; i++)
            ok = ok || strcmp(key, keys[m][i]) == 0;
        if (!ok) {
            snprintf(err, errlen, "auth.%s: unknown key for the %s method", key, method_names[m]);
            return -EINVAL;
        }
    }
    const json_t *mount = json_object_get(auth, "mount");
    if (mount && (check_string_key(auth, "auth.", "mount", false, err, errlen) < 0 ||
                  json_string_value(mount)[0] == '/' ||
                  strstr(json_string_value(mount), ".."))) {
        snprintf(err, errlen, "auth.mount: expected the auth mount path, e.g. \"%s\"",
                 method_names[m]);
        return -EINVAL;
    }
    switch (m) {
    case AUTH_TOKEN:
        if (!json_object_get(auth, "token_file") && !getenv("VAULT_TOKEN")) {
            snprintf(err, errlen, "auth.token_file: missing, and VAULT_TOKEN is not set");
            return -EINVAL;
        }
        return check_file_key(auth, "token_file", false, err, errlen);
    case AUTH_APPROLE:
        if (!!json_object_get(auth, "role_id") == !!json_object_get(auth, "role_id_file")) {
            snprintf(err, errlen, "auth.role_id: give exactly one of role_id and role_id_file");
            return -EINVAL;
        }
        if ((rc = check_string_key(auth, "auth.", "role_id", false, err, errlen)) < 0 ||
            (rc = check_file_key(auth, "role_id_file", false, err, errlen)) < 0)
            return rc;
        return check_file_key(auth, "secret_id_file", false, err, errlen);
    case AUTH_KUBERNETES:
        if ((rc = check_string_key(auth, "auth.", "role", true, err, errlen)) < 0)
            return rc;
        if (!json_object_get(auth, "jwt_file") && access(VAULT_K8S_JWT, R_OK) != 0) {
            snprintf(err, errlen, "auth.jwt_file: missing, and the service account token %s "
                     "is not readable: %s", VAULT_K8S_JWT, strerror(errno));
            return -EINVAL;
        }
        return check_file_key(auth, "jwt_file", false, err, errlen);
    case AUTH_JWT:
        if ((rc = check_string_key(auth, "auth.", "role", false, err, errlen)) < 0)
            return rc;
        return check_file_key(auth, "jwt_file", true, err, errlen);
    }
    return 0;
}

static int validate_kv_versions(json_t *kv, char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    if (!json_is_object(kv)) {
        snprintf(err, errlen, "kv_versions: expected an object such as {\"secret\": 2}");
        return -EINVAL;
    }
    json_object_foreach(kv, key, val) {
        if (!key[0] || key[0] == '/' || strlen(key) > 256) {
            snprintf(err, errlen, "kv_versions.%s: expected a mount path like \"secret\"", key);
            return -EINVAL;
        }
        if (!json_is_integer(val) || (json_integer_value(val) != 1 && json_integer_value(val) != 2)) {
            snprintf(err, errlen, "kv_versions.%s: expected 1 or 2", key);
            return -EINVAL;
        }
    }
    return 0;
}

static int vault_validate(json_t *conf, char *err, size_t errlen)
{
    int rc = backend_conf_check_keys(conf, vault_keys, http_conf_keys, err, errlen);
    if (rc < 0)
        return rc;
    struct http_opts ho;
    if ((rc = http_opts_parse(conf, "address", true, &ho, err, errlen)) < 0)
        return rc;
    http_opts_cleanup(&ho);
    const json_t *ns = json_object_get(conf, "namespace");
    if (ns && (check_string_key(conf, "", "namespace", false, err, errlen) < 0 ||
               strspn(json_string_value(ns), "/") > 0)) {
        snprintf(err, errlen, "namespace: expected a namespace path such as \"team-a\"");
        return -EINVAL;
    }
    json_t *auth = json_object_get(conf, "auth");
    if (!auth) {
        snprintf(err, errlen, "auth: missing (e.g. {\"method\": \"token\", \"token_file\": ...})");
        return -EINVAL;
    }
    if ((rc = validate_auth(auth, err, errlen)) < 0)
        return rc;
    json_t *kv = json_object_get(conf, "kv_versions");
    if (kv && (rc = validate_kv_versions(kv, err, errlen)) < 0)
        return rc;
    const json_t *r = json_object_get(conf, "revoke_on_shutdown");
    if (r && !json_is_boolean(r)) {
        snprintf(err, errlen, "revoke_on_shutdown: expected true or false");
        return -EINVAL;
    }
    return 0;
}

static void mounts_free(struct mount *m)
{
    while (m) {
        struct mount *n = m->next;
        free(m->path);
        free(m);
        m = n;
    }
}

static void leases_free(struct lease *l)
{
    while (l) {
        struct lease *n = l->next;
        free(l->key);
        free(l->id);
        free(l);
        l = n;
    }
}

static void vault_destroy(void *ctx)
{
    struct vault *v = ctx;
    if (!v)
        return;
    http_client_free(v->http);
    free(v->name);
    free(v->ns_header);
    free(v->auth_mount);
    free(v->token_file);
    free(v->role);
    free(v->role_id);
    free(v->role_id_file);
    free(v->secret_id_file);
    free(v->jwt_file);
    secmem_free(v->env_token);
    secmem_free(v->token);
    mounts_free(v->overrides);
    mounts_free(v->mounts);
    leases_free(v->leases);
    pthread_mutex_destroy(&v->auth_lock);
    pthread_mutex_destroy(&v->mount_lock);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

static char *auth_str(const json_t *auth, const char *key, const char *dflt)
{
    const json_t *s = json_object_get(auth, key);
    if (s)
        return strdup(json_string_value(s));
    return dflt ? strdup(dflt) : NULL;
}

static int add_mount(struct mount **list, const char *path, size_t n, enum mount_kind kind)
{
    struct mount *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    while (n > 0 && path[n - 1] == '/')
        n--;
    if (asprintf(&m->path, "%.*s/", (int)n, path) < 0) {
        free(m);
        return -ENOMEM;
    }
    m->kind = kind;
    m->next = *list;
    *list = m;
    return 0;
}

/* The parsed config is, for now, the validated JSON object itself. */
static int vault_parse(json_t *json, void **conf, char *err, size_t errlen)
{
    int rc = vault_validate(json, err, errlen);
    if (rc == 0)
        *conf = json_incref(json);
    return rc;
}

static void vault_conf_free(void *conf)
{
    json_decref(conf);
}

static int vault_create(const struct backend_env *env, const void *parsed, void **ctx, char *err,
                        size_t errlen)
{
    json_t *conf = (json_t *)(uintptr_t)parsed;
    struct vault *v = calloc(1, sizeof(*v));
    const json_t *auth = json_object_get(conf, "auth");
    const json_t *ns = json_object_get(conf, "namespace");
    json_t *kv = json_object_get(conf, "kv_versions");
    const json_t *r = json_object_get(conf, "revoke_on_shutdown");
    const char *key;
    json_t *val;
    int rc = -ENOMEM;

    if (!v)
        return -ENOMEM;
    pthread_mutex_init(&v->auth_lock, NULL);
    pthread_mutex_init(&v->mount_lock, NULL);
    pthread_mutex_init(&v->lock, NULL);
    v->name = strdup(env->name);
    if (!v->name)
        goto fail;
    struct http_opts ho;
    rc = http_opts_parse(conf, "address", true, &ho, err, errlen);
    if (rc < 0)
        goto fail;
    rc = http_client_new(env->http, &ho, NULL, &v->http, err, errlen);
    http_opts_cleanup(&ho);
    if (rc < 0)
        goto fail;
    rc = -ENOMEM;
    if (ns && asprintf(&v->ns_header, "X-Vault-Namespace: %s", json_string_value(ns)) < 0) {
        v->ns_header = NULL;
        goto fail;
    }
    (void)auth_method_of(auth, &v->method, err, errlen);   /* validated */
    v->auth_mount = auth_str(auth, "mount", v->method == AUTH_TOKEN ? "token"
                                            : method_names[v->method]);
    if (!v->auth_mount)
        goto fail;
    while (strlen(v->auth_mount) > 1 && v->auth_mount[strlen(v->auth_mount) - 1] == '/')
        v->auth_mount[strlen(v->auth_mount) - 1] = '\0';
    v->token_file = auth_str(auth, "token_file", NULL);
    v->role = auth_str(auth, "role", NULL);
    v->role_id = auth_str(auth, "role_id", NULL);
    v->role_id_file = auth_str(auth, "role_id_file", NULL);
    v->secret_id_file = auth_str(auth, "secret_id_file", NULL);
    v->jwt_file = auth_str(auth, "jwt_file", v->method == AUTH_KUBERNETES ? VAULT_K8S_JWT : NULL);
    if (v->method == AUTH_TOKEN && !v->token_file) {
        /* The broker's own VAULT_TOKEN: copied into secret memory, then
         * wiped from the environment block so no child or /proc reader
         * sees it. */
        char *t = getenv("VAULT_TOKEN");
        if (!t || !*t) {
            snprintf(err, errlen, "auth.token_file: missing, and VAULT_TOKEN is not set");
            rc = -EINVAL;
            goto fail;
        }
        v->env_token = secstr_dup(t, strlen(t));
        if (!v->env_token)
            goto fail;
        secmem_wipe(t, strlen(t));
        unsetenv("VAULT_TOKEN");
    }
    v->revoke_on_shutdown = r ? json_is_true(r) : true;
    if (kv)
        json_object_foreach(kv, key, val)
            if (add_mount(&v->overrides, key, strlen(key),
                          json_integer_value(val) == 2 ? MOUNT_KV2 : MOUNT_KV1) < 0)
                goto fail;
    *ctx = v;
    return 0;
fail:
    vault_destroy(v);
    return rc;
}

/* ---- requests ---- */

/* Vault's {"errors": [...]} joined with "; ", or a description of the body. */
static void vault_errors(const struct http_response *r, char *out, size_t cap)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, &jerr);
    const json_t *errs = root ? json_object_get(root, "errors") : NULL;
    size_t o = 0;
    out[0] = '\0';
    if (json_is_array(errs)) {
        size_t i;
        json_t *e;
        json_array_foreach(errs, i, e)
            if (json_is_string(e) && o + 3 < cap)
                o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "; " : "",
                                      json_string_value(e));
    }
    if (!out[0])
        snprintf(out, cap, root ? "no error text" : "non-JSON body");
    json_decref(root);
    secmem_wipe(&jerr, sizeof(jerr));   /* jansson quotes the input */
}

/* An HTTP status Vault answered with, as an error for the scheduler. */
static int status_error(const char *what, const struct http_response *r,
                        struct fetch_result *out, char *err, size_t errlen)
{
    char msg[512];
    vault_errors(r, msg, sizeof(msg));
    snprintf(err, errlen, "%s: HTTP %ld: %s", what, r->status, msg);
    if (out) {
        out->retryable = http_status_retryable(r->status);
        out->retry_after_ms = r->retry_after_ms > 0 ? r->retry_after_ms : 0;
    }
    if (r->status == 404)
        return -ENOENT;
    if (r->status == 403 || r->status == 401)
        return -EACCES;
    return http_status_retryable(r->status) ? -EAGAIN : -EINVAL;
}

/* Parse a JSON response body; *root is new. */
static int parse_body(const char *what, const struct http_response *r, json_t **root, char *err,
                      size_t errlen)
{
    *root = http_body_object(r);
    if (!*root) {
        snprintf(err, errlen, "%s: HTTP %ld with a body that is not a JSON object", what, r->status);
        return -EPROTO;
    }
    return 0;
}

/* The JSON object of a 200 answer, or the error for any other status. */
static int json_reply(const char *what, const struct http_response *r, struct fetch_result *out,
                      json_t **root, char *err, size_t errlen)
{
    *root = NULL;
    if (r->status != 200)
        return status_error(what, r, out, err, errlen);
    return parse_body(what, r, root, err, errlen);
}

static int dump_json(const json_t *v, struct secbuf *out, char *err, size_t errlen)
{
    size_t need = json_dumpb(v, NULL, 0, JSON_COMPACT);
    int rc;
    if (need == 0) {
        snprintf(err, errlen, "cannot encode JSON");
        return -EIO;
    }
    if ((rc = secbuf_reserve(out, need)) < 0) {
        snprintf(err, errlen, "value larger than %zu bytes (max_size)", out->max);
        return rc;
    }
    out->len = json_dumpb(v, (char *)out->data, need, JSON_COMPACT);
    return 0;
}

/* One plain request, no token logic. hdr_token may be NULL. */
static int raw_call(struct vault *v, const char *method, const char *path, const struct secbuf *body,
                    const char *hdr_token, struct http_response *resp, char *err, size_t errlen)
{
    const char *headers[5];
    size_t n = 0;
    char url[VAULT_PATH_MAX + 8];
    headers[n++] = "X-Vault-Request: true";
    if (v->ns_header)
        headers[n++] = v->ns_header;
    if (hdr_token)
        headers[n++] = hdr_token;
    if (body)
        headers[n++] = "Content-Type: application/json";
    headers[n] = NULL;
    if ((size_t)snprintf(url, sizeof(url), "/v1/%s", path) >= sizeof(url)) {
        snprintf(err, errlen, "path too long");
        return -ENAMETOOLONG;
    }
    struct http_request req = {
        .method = method, .path = url, .headers = headers,
        .body = body ? body->data : NULL, .body_len = body ? body->len : 0,
    };
    char msg[384] = "";
    int rc = http_perform(v->http, &req, resp, msg, sizeof(msg));
    if (rc < 0)
        snprintf(err, errlen, "%s %s: %s", method, path, msg);
    return rc;
}

/* Where the token self endpoints live: every token, whatever login made
 * it, belongs to the token auth method ("token" unless the token method's
 * own mount says otherwise). */
static const char *token_mount(const struct vault *v)
{
    return v->method == AUTH_TOKEN ? v->auth_mount : "token";
}

/* "X-Vault-Token: <t>" in secret memory. */
static char *token_header(const char *token)
{
    static const char prefix[] = "X-Vault-Token: ";
    size_t n = strlen(token);
    char *h = secmem_alloc(sizeof(prefix) + n);
    if (h) {
        memcpy(h, prefix, sizeof(prefix) - 1);
        memcpy(h + sizeof(prefix) - 1, token, n + 1);
    }
    return h;
}

static void log_backend(struct vault *v, enum log_level lvl, const char *error, const char *msg)
{
    struct log_fields lf = {.backend = v->name, .error = error};
    log_f(lvl, &lf, "%s", msg);
}

/* Install a new token; auth_lock held. tok is consumed. The old token is
 * left to expire, not revoked: Vault would revoke the leases created under
 * it, which may still be served (they are re-read before it expires). */
static void set_token(struct vault *v, char *tok, long long ttl_s, long long increment_s,
                      bool renewable, bool from_login)
{
    secmem_free(v->token);
    v->token = tok;
    v->gen++;
    v->ttl_ms = ttl_s > 0 ? ttl_s * 1000 : 0;
    v->increment_s = increment_s > 0 ? increment_s : ttl_s;
    v->renewable = renewable;
    v->from_login = from_login;
    v->obtained_ms = now_ms();
}

/* Body of a login request, in secret memory. */
static int login_body(struct vault *v, struct secbuf *body, char *err, size_t errlen)
{
    char *a = NULL, *b = NULL;
    json_t *o = json_object();
    int rc = 0;

    if (!o)
        return -ENOMEM;
    if (v->method == AUTH_APPROLE) {
        if (v->role_id_file)
            rc = secfile_token(v->role_id_file, VAULT_SECRET_FILE_MAX, &a, err, errlen);
        else
            a = secstr_dup(v->role_id, strlen(v->role_id));
        if (rc == 0 && !a)
            rc = -ENOMEM;
        if (rc == 0 && v->secret_id_file)
            rc = secfile_token(v->secret_id_file, VAULT_SECRET_FILE_MAX, &b, err, errlen);
        if (rc == 0 && (json_object_set_new(o, "role_id", json_string(a)) < 0 ||
                        (b && json_object_set_new(o, "secret_id", json_string(b)) < 0)))
            rc = -ENOMEM;
    } else {
        rc = secfile_token(v->jwt_file, VAULT_SECRET_FILE_MAX, &a, err, errlen);
        if (rc == 0 && (json_object_set_new(o, "jwt", json_string(a)) < 0 ||
                        (v->role && json_object_set_new(o, "role", json_string(v->role)) < 0)))
            rc = -ENOMEM;
    }
    if (rc == 0)
        rc = dump_json(o, body, err, errlen);
    secmem_free(a);
    secmem_free(b);
    json_decref(o);
    return rc;
}

/* A lookup-self answer: the token's remaining TTL (0: never expires), what
 * to renew it by and whether it is renewable. */
UNITTEST_STATIC int vault_lookup_answer(const struct http_response *r, long long *ttl,
                                        long long *increment, bool *renewable, char *err,
                                        size_t errlen)
{
    json_t *root = NULL;
    int rc = json_reply("token lookup", r, NULL, &root, err, errlen);
    if (rc == 0) {
        const json_t *d = json_object_get(root, "data");
        *ttl = ttl_of(json_object_get(d, "ttl"));
        /* Renew by what the token was created with (or its period), not
         * by what is left of it. */
        *increment = ttl_of(json_object_get(d, "period"));
        if (*increment == 0)
            *increment = ttl_of(json_object_get(d, "creation_ttl"));
        *renewable = json_is_true(json_object_get(d, "renewable"));
    }
    json_decref(root);
    return rc;
}

/* GET auth/token/lookup-self with hdr: the token's remaining TTL (0: never
 * expires) and whether it is renewable. */
static int lookup_self(struct vault *v, const char *hdr, long long *ttl, long long *increment,
                       bool *renewable, char *err, size_t errlen)
{
    struct http_response r;
    char path[VAULT_PATH_MAX];
    int rc;

    http_response_init(&r);
    snprintf(path, sizeof(path), "auth/%s/lookup-self", token_mount(v));
    rc = raw_call(v, "GET", path, NULL, hdr, &r, err, errlen);
    if (rc == 0)
        rc = vault_lookup_answer(&r, ttl, increment, renewable, err, errlen);
    http_response_cleanup(&r);
    return rc;
}

/* A login answer: *tok new (secret memory), with its TTL. */
UNITTEST_STATIC int vault_login_answer(const char *what, const struct http_response *r, char **tok,
                                       long long *ttl, bool *renewable, char *err, size_t errlen)
{
    json_t *root = NULL;
    int rc = json_reply(what, r, NULL, &root, err, errlen);
    if (rc < 0)
        goto out;
    const json_t *a = json_object_get(root, "auth");
    const json_t *ct = json_object_get(a, "client_token");
    if (!json_is_string(ct) || json_string_length(ct) == 0) {
        snprintf(err, errlen, "%s: no auth.client_token in the response", what);
        rc = -EPROTO;
        goto out;
    }
    rc = -ENOMEM;
    if (!(*tok = secstr_dup(json_string_value(ct), json_string_length(ct))))
        goto out;
    *ttl = ttl_of(json_object_get(a, "lease_duration"));
    *renewable = json_is_true(json_object_get(a, "renewable"));
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Get a new token with the configured method; auth_lock held. For the token
 * method this reads the file; with lookup it also asks Vault about the
 * token now, otherwise maintain() does so off the request path (the first
 * fetches need not wait a round trip for a TTL). */
static int login(struct vault *v, bool lookup, char *err, size_t errlen)
{
    struct http_response r;
    char path[VAULT_PATH_MAX], what[64];
    char *tok = NULL, *hdr = NULL;
    struct secbuf body;
    int rc;

    http_response_init(&r);
    secbuf_init(&body, VAULT_SECRET_FILE_MAX * 2);
    if (v->method == AUTH_TOKEN) {
        /* Re-read each time: an agent may have replaced the file. */
        long long ttl = 0, inc = 0;
        bool renewable = false;
        if (v->token_file)
            rc = secfile_token(v->token_file, VAULT_SECRET_FILE_MAX, &tok, err, errlen);
        else
            rc = (tok = secstr_dup(v->env_token, strlen(v->env_token))) ? 0 : -ENOMEM;
        if (rc < 0)
            goto out;
        if (lookup) {
            rc = -ENOMEM;
            if (!(hdr = token_header(tok)))
                goto out;
            if ((rc = lookup_self(v, hdr, &ttl, &inc, &renewable, err, errlen)) < 0)
                goto out;
        }
        set_token(v, tok, ttl, inc, renewable, false);
        v->needs_lookup = !lookup;
        tok = NULL;
        goto out;
    }
    if ((rc = login_body(v, &body, err, errlen)) < 0)
        goto out;
    snprintf(path, sizeof(path), "auth/%s/login", v->auth_mount);
    rc = raw_call(v, "POST", path, &body, NULL, &r, err, errlen);
    if (rc < 0)
        goto out;
    snprintf(what, sizeof(what), "%s login", method_names[v->method]);
    long long ttl = 0;
    bool renewable = false;
    if ((rc = vault_login_answer(what, &r, &tok, &ttl, &renewable, err, errlen)) < 0)
        goto out;
    set_token(v, tok, ttl, ttl, renewable, true);
    tok = NULL;
    rc = 0;
out:
    if (rc == 0) {
        v->login_failures = 0;
        v->login_failed_ms = 0;
        log_backend(v, LOG_INFO, NULL, v->method != AUTH_TOKEN ? "vault login"
                                       : lookup ? "vault token looked up" : "vault token loaded");
    } else {
        v->login_failures++;
        v->login_failed_ms = now_ms();
        v->login_failed_rc = rc;
        snprintf(v->login_failed_err, sizeof(v->login_failed_err), "%s", err);
    }
    secmem_free(tok);
    secmem_free(hdr);
    secbuf_cleanup(&body);
    http_response_cleanup(&r);
    return rc;
}

/* How long a failed login stands before the next attempt: 1 s doubling
 * to 60 s. auth_lock held. */
static long long login_backoff_ms(const struct vault *v)
{
    unsigned f = v->login_failures == 0 ? 0 : v->login_failures - 1;
    long long ms = 1000LL << (f > 6 ? 6 : f);
    return ms > VAULT_LOGIN_RETRY_MAX_MS ? VAULT_LOGIN_RETRY_MAX_MS : ms;
}

/* Log in unless a login failed within its backoff: then that failure is
 * the answer. auth_lock held. */
static int login_or_recent_failure(struct vault *v, bool lookup, char *err, size_t errlen)
{
    if (v->login_failed_ms && now_ms() - v->login_failed_ms < login_backoff_ms(v)) {
        snprintf(err, errlen, "%s", v->login_failed_err);
        return v->login_failed_rc;
    }
    return login(v, lookup, err, errlen);
}

/* A usable token header for a request: logs in when there is no token or
 * it has expired. *gen says which token it is. */
static int current_token(struct vault *v, char **hdr, unsigned long *gen, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&v->auth_lock);
    if (!v->token || (v->ttl_ms > 0 && now_ms() >= v->obtained_ms + v->ttl_ms - 1000))
        rc = login_or_recent_failure(v, false, err, errlen);
    if (rc == 0) {
        *hdr = token_header(v->token);
        *gen = v->gen;
        if (!*hdr)
            rc = -ENOMEM;
    }
    pthread_mutex_unlock(&v->auth_lock);
    return rc;
}

/* Vault answers 403 both for a dead token and for a path the token may not
 * read. Ask Vault about the token itself (lookup-self is in every token's
 * default policy): only a token Vault rejects there is worth a new login. */
static bool token_rejected(struct vault *v, const char *hdr)
{
    long long ttl, inc;
    bool renewable;
    char err[384];
    int rc = lookup_self(v, hdr, &ttl, &inc, &renewable, err, sizeof(err));
    return rc == -EACCES;
}

/* Vault rejected token gen: one fresh login, unless another thread already
 * replaced that token. */
static int relogin(struct vault *v, unsigned long gen, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&v->auth_lock);
    if (v->gen == gen) {
        log_backend(v, LOG_WARN, NULL, "vault token rejected, logging in again");
        rc = login_or_recent_failure(v, true, err, errlen);
    }
    pthread_mutex_unlock(&v->auth_lock);
    return rc;
}

/* An authenticated request: a 403 with a token Vault no longer accepts
 * gets one re-login and one retry. 0 with the response (any status), or a
 * transport / login error. */
static int call(struct vault *v, const char *method, const char *path, const struct secbuf *body,
                struct http_response *resp, char *err, size_t errlen)
{
    for (int attempt = 0;; attempt++) {
        char *hdr = NULL;
        unsigned long gen = 0;
        char msg[384] = "";
        int rc = current_token(v, &hdr, &gen, msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "%s %s: cannot log in: %s", method, path, msg);
            return rc;
        }
        rc = raw_call(v, method, path, body, hdr, resp, err, errlen);
        bool retry = rc == 0 && resp->status == 403 && attempt == 0 && token_rejected(v, hdr);
        secmem_free(hdr);
        if (!retry)
            return rc;
        if ((rc = relogin(v, gen, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "%s %s: HTTP 403, and logging in again failed: %s", method,
                     path, msg);
            return rc;
        }
    }
}

/* ---- token upkeep ---- */

/* A renew-self answer: 0 and the new TTL; 1 when Vault refused; <0 for a
 * transient status or a malformed answer. */
UNITTEST_STATIC int vault_renew_self_answer(const struct http_response *r, long long *ttl,
                                            bool *renewable, char *err, size_t errlen)
{
    json_t *root = NULL;
    if (r->status != 200 && !http_status_retryable(r->status)) {
        status_error("token renewal", r, NULL, err, errlen);
        return 1;
    }
    int rc = json_reply("token renewal", r, NULL, &root, err, errlen);
    if (rc == 0) {
        const json_t *a = json_object_get(root, "auth");
        *ttl = ttl_of(json_object_get(a, "lease_duration"));
        *renewable = json_is_true(json_object_get(a, "renewable"));
    }
    json_decref(root);
    return rc;
}

/* POST renew-self with hdr. 0 and the new TTL; 1 when Vault refused (the
 * token cannot be renewed: log in afresh); <0 on transport trouble or a
 * transient status (keep the token, try again soon). */
static int renew_self(struct vault *v, const char *hdr, long long increment, long long *ttl,
                      bool *renewable, char *err, size_t errlen)
{
    struct http_response r;
    struct secbuf body;
    char path[VAULT_PATH_MAX], inc[64];
    int n = snprintf(inc, sizeof(inc), "{\"increment\":\"%llds\"}", increment);
    int rc;

    http_response_init(&r);
    secbuf_init(&body, sizeof(inc));
    snprintf(path, sizeof(path), "auth/%s/renew-self", token_mount(v));
    rc = secbuf_append(&body, inc, (size_t)n);
    if (rc == 0)
        rc = raw_call(v, "POST", path, &body, hdr, &r, err, errlen);
    if (rc == 0)
        rc = vault_renew_self_answer(&r, ttl, renewable, err, errlen);
    secbuf_cleanup(&body);
    http_response_cleanup(&r);
    return rc;
}

/* Token upkeep, run by the scheduler: the first login, the token lookup,
 * renewal at 2/3 of the TTL, a fresh login when renewal is refused or the
 * token is not renewable. Network calls run without auth_lock held, so
 * fetches keep using the current token meanwhile. */
static long long vault_maintain(void *ctx)
{
    struct vault *v = ctx;
    char err[512] = "";
    long long next, ttl = 0, inc = 0, soon = 0;
    bool renewable = false;
    int rc = 0;

    pthread_mutex_lock(&v->auth_lock);
    if (!v->token)
        rc = login_or_recent_failure(v, false, err, sizeof(err));
    unsigned long gen = v->gen;
    bool lookup = rc == 0 && v->needs_lookup;
    bool due = rc == 0 && !lookup && v->ttl_ms > 0 &&
               now_ms() >= v->obtained_ms + v->ttl_ms * 2 / 3;
    bool renew = due && v->renewable;
    long long increment = v->increment_s;
    char *hdr = (lookup || renew) ? token_header(v->token) : NULL;
    pthread_mutex_unlock(&v->auth_lock);

    if ((lookup || renew) && !hdr)
        rc = -ENOMEM;
    else if (lookup)
        rc = lookup_self(v, hdr, &ttl, &inc, &renewable, err, sizeof(err));
    else if (renew)
        rc = renew_self(v, hdr, increment, &ttl, &renewable, err, sizeof(err));
    secmem_free(hdr);

    pthread_mutex_lock(&v->auth_lock);
    if (gen != v->gen) {
        rc = 0;   /* someone installed a new token meanwhile: plan for that one */
    } else if (lookup && rc == 0) {
        v->ttl_ms = ttl * 1000;
        v->increment_s = inc > 0 ? inc : ttl;
        v->renewable = renewable;
        v->obtained_ms = now_ms();
        v->needs_lookup = false;
        log_backend(v, LOG_INFO, NULL, "vault token looked up");
    } else if (renew && rc == 0) {
        /* A renewal capped by the token's max TTL is respected: renew
         * again at 2/3 of what was granted; a grant too short to be worth
         * renewing leads to a fresh login next time. */
        v->ttl_ms = ttl * 1000;
        v->obtained_ms = now_ms();
        v->renewable = renewable && ttl >= 3;
        log_backend(v, LOG_INFO, NULL, "vault token renewed");
    } else if ((renew && rc == 1) || (due && !renew)) {
        if (renew)
            log_backend(v, LOG_WARN, err, "vault token renewal refused, logging in again");
        rc = login_or_recent_failure(v, true, err, sizeof(err));
    } else if (renew && rc < 0) {
        /* Transient: keep the token; try again soon, and log in afresh
         * only once it is about to expire. */
        long long left = v->obtained_ms + v->ttl_ms - now_ms();
        log_backend(v, LOG_WARN, err, "vault token renewal failed, will retry");
        if (left < 5000) {
            rc = login_or_recent_failure(v, true, err, sizeof(err));
        } else {
            rc = 0;
            soon = left / 4 < 30000 ? left / 4 : 30000;
        }
    }
    if (rc < 0) {
        log_backend(v, LOG_ERROR, err, lookup ? "vault token lookup failed" : "vault login failed");
        next = login_backoff_ms(v);
    } else {
        /* At most a minute between checks: a re-login after a 403 may have
         * brought a token with a shorter TTL than the one planned for. */
        next = soon > 0 ? soon : VAULT_MAINTAIN_MAX_MS;
        if (!soon && v->ttl_ms > 0 && v->obtained_ms + v->ttl_ms * 2 / 3 - now_ms() < next)
            next = v->obtained_ms + v->ttl_ms * 2 / 3 - now_ms();
        if (next < 100)
            next = 100;
    }
    pthread_mutex_unlock(&v->auth_lock);
    return next;
}

/* ---- mounts ---- */

static const struct mount *match_mount(const struct mount *list, const char *path)
{
    const struct mount *best = NULL;
    for (const struct mount *m = list; m; m = m->next) {
        size_t n = strlen(m->path);
        if (strncmp(path, m->path, n) == 0 && (!best || n > strlen(best->path)))
            best = m;
    }
    return best;
}

/* A sys/internal/ui/mounts/<path> answer: the mount serving path, as *mp
 * and *mplen (borrowed from path, or from *root, which is new). */
UNITTEST_STATIC int vault_mount_answer(const struct http_response *r, const char *path,
                                       struct fetch_result *out, json_t **root, const char **mp,
                                       size_t *mplen, enum mount_kind *kind, char *err,
                                       size_t errlen)
{
    int rc;
    *root = NULL;
    if (r->status == 403) {
        char msg[300];
        vault_errors(r, msg, sizeof(msg));
        snprintf(err, errlen, "cannot tell which KV version serves '%.200s' (%s); set "
                 "kv_versions in the backend config", path, msg);
        out->retryable = false;
        return -EACCES;
    }
    if (r->status == 404) {
        /* Vault before 0.10 has no such endpoint: KV version 1, as the CLI
         * assumes. The mount is the first path segment. */
        const char *slash = strchr(path, '/');
        *kind = MOUNT_KV1;
        *mp = path;
        *mplen = slash ? (size_t)(slash - path) : strlen(path);
        return 0;
    }
    if (r->status != 200) {
        rc = status_error("KV version probe", r, out, err, errlen);
        return rc == -ENOENT ? -EIO : rc;
    }
    if ((rc = parse_body("KV version probe", r, root, err, errlen)) < 0)
        return rc;
    const json_t *d = json_object_get(*root, "data");
    const char *m = json_string_value(json_object_get(d, "path"));
    const char *type = json_string_value(json_object_get(d, "type"));
    const char *ver = json_string_value(json_object_get(json_object_get(d, "options"),
                                                        "version"));
    if (!m || !type || strncmp(path, m, strlen(m)) != 0) {
        snprintf(err, errlen, "KV version probe: unexpected answer for '%.200s'", path);
        return -EPROTO;
    }
    if (strcmp(type, "kv") == 0 || strcmp(type, "generic") == 0)
        *kind = ver && strcmp(ver, "2") == 0 ? MOUNT_KV2 : MOUNT_KV1;
    else
        *kind = MOUNT_OTHER;
    *mp = m;
    *mplen = strlen(m);
    return 0;
}

/* Copy of the mount serving path, from config, cache or a probe of
 * sys/internal/ui/mounts (what the Vault CLI does for `vault kv`). */
static int mount_for(struct vault *v, const char *path, struct fetch_result *out, char **mpath,
                     enum mount_kind *kind, char *err, size_t errlen)
{
    const struct mount *m = match_mount(v->overrides, path);
    int rc = 0;
    if (m) {
        *kind = m->kind;
        return (*mpath = strdup(m->path)) ? 0 : -ENOMEM;
    }
    pthread_mutex_lock(&v->lock);   /* the common case: known already */
    m = match_mount(v->mounts, path);
    if (m) {
        *kind = m->kind;
        *mpath = strdup(m->path);
    }
    pthread_mutex_unlock(&v->lock);
    if (m)
        return *mpath ? 0 : -ENOMEM;
    pthread_mutex_lock(&v->mount_lock);
    pthread_mutex_lock(&v->lock);
    m = match_mount(v->mounts, path);
    if (m) {
        *kind = m->kind;
        *mpath = strdup(m->path);
    }
    pthread_mutex_unlock(&v->lock);
    if (m) {
        pthread_mutex_unlock(&v->mount_lock);
        return *mpath ? 0 : -ENOMEM;
    }

    struct http_response r;
    char probe[VAULT_PATH_MAX + 32], esc[VAULT_PATH_MAX];
    json_t *root = NULL;
    http_response_init(&r);
    if (http_escape_path(path, esc, sizeof(esc)) < 0) {
        snprintf(err, errlen, "path too long");
        rc = -ENAMETOOLONG;
        goto out;
    }
    snprintf(probe, sizeof(probe), "sys/internal/ui/mounts/%s", esc);
    rc = call(v, "GET", probe, NULL, &r, err, errlen);
    if (rc < 0) {
        out->retryable = http_errno_retryable(rc);
        goto out;
    }
    const char *mp = NULL;
    size_t mplen = 0;
    if ((rc = vault_mount_answer(&r, path, out, &root, &mp, &mplen, kind, err, errlen)) < 0)
        goto out;
    pthread_mutex_lock(&v->lock);
    rc = add_mount(&v->mounts, mp, mplen, *kind);
    pthread_mutex_unlock(&v->lock);
    if (rc == 0) {
        pthread_mutex_lock(&v->lock);
        m = match_mount(v->mounts, path);
        *mpath = m ? strdup(m->path) : NULL;
        pthread_mutex_unlock(&v->lock);
        rc = *mpath ? 0 : -ENOMEM;
    }
out:
    json_decref(root);
    http_response_cleanup(&r);
    pthread_mutex_unlock(&v->mount_lock);
    return rc;
}

/* ---- leases ---- */

/* Vault revokes a token's leases when the token goes. How long the value of
 * a lease made under the current token may be planned for: 85% of what is
 * left of the token, or limit when the token does not expire. */
static long long token_bound_ms(struct vault *v, long long limit)
{
    pthread_mutex_lock(&v->auth_lock);
    bool expires = v->ttl_ms > 0;
    long long left = expires ? v->obtained_ms + v->ttl_ms - now_ms() : 0;
    pthread_mutex_unlock(&v->auth_lock);
    if (!expires)
        return limit;
    left = left * 85 / 100;
    if (left < 1000)
        left = 1000;
    return left < limit ? left : limit;
}

static unsigned long token_gen(struct vault *v)
{
    pthread_mutex_lock(&v->auth_lock);
    unsigned long g = v->gen;
    pthread_mutex_unlock(&v->auth_lock);
    return g;
}

static struct lease *find_lease(struct vault *v, const char *key)
{
    for (struct lease *l = v->leases; l; l = l->next)
        if (l->current && strcmp(l->key, key) == 0)
            return l;
    return NULL;
}

/* A sys/leases/renew answer: 0 and the seconds granted; 1 when the lease
 * is expired, revoked or past its max TTL (read anew); or an error. */
UNITTEST_STATIC int vault_lease_renew_answer(const struct http_response *r,
                                             struct fetch_result *out, long long *granted,
                                             char *err, size_t errlen)
{
    json_t *root = NULL;
    int rc;
    if (r->status == 400)
        return 1;
    if (r->status != 200)
        return status_error("lease renewal", r, out, err, errlen);
    rc = parse_body("lease renewal", r, &root, err, errlen);
    if (rc == 0)
        *granted = ttl_of(json_object_get(root, "lease_duration"));
    json_decref(root);
    return rc;
}

/* Renew the current lease of key. 0 with *valid_ms set: the value already
 * served stays valid; 1: no usable lease, read anew; <0: error. */
static int renew_lease(struct vault *v, const char *key, struct fetch_result *out, char *err,
                       size_t errlen)
{
    char *id = NULL;
    long long asked = 0;
    unsigned long gen = token_gen(v);
    pthread_mutex_lock(&v->lock);
    struct lease *l = find_lease(v, key);
    /* A lease from an earlier token dies with that token: read anew. */
    if (l && l->renewable && !l->exhausted && now_ms() < l->expires_ms && l->gen == gen) {
        id = strdup(l->id);
        asked = l->duration_ms / 1000;
    }
    pthread_mutex_unlock(&v->lock);
    if (!id)
        return 1;

    struct http_response r;
    struct secbuf body;
    json_t *req = json_pack("{s:s, s:I}", "lease_id", id, "increment", (json_int_t)asked);
    long long granted = 0;
    int rc;
    http_response_init(&r);
    secbuf_init(&body, 8192);
    rc = req ? dump_json(req, &body, err, errlen) : -ENOMEM;
    if (rc == 0)
        rc = call(v, "POST", "sys/leases/renew", &body, &r, err, errlen);
    if (rc == 0)
        rc = vault_lease_renew_answer(&r, out, &granted, err, errlen);
    if (rc == 0) {
        long long t = now_ms();
        pthread_mutex_lock(&v->lock);
        l = find_lease(v, key);
        if (l && strcmp(l->id, id) == 0) {
            l->obtained_ms = t;
            l->expires_ms = t + granted * 1000;
            /* Less than asked: the lease is at its max TTL. Respect the
             * grant and fetch new credentials before it runs out. */
            if (granted < asked) {
                l->exhausted = true;
                out->valid_ms = granted * 850;
            } else {
                l->duration_ms = granted * 1000;
                out->valid_ms = granted * 2000 / 3;
            }
        }
        pthread_mutex_unlock(&v->lock);
        out->unchanged = true;
        out->valid_ms = token_bound_ms(v, out->valid_ms);
        struct log_fields lf = {.backend = v->name, .path = key};
        log_f(LOG_INFO, &lf, "vault lease renewed");
    }
    if (out->valid_ms <= 0 && rc == 0)
        out->valid_ms = 1000;
    json_decref(req);
    secbuf_cleanup(&body);
    http_response_cleanup(&r);
    free(id);
    return rc;
}

/* The lease of a read answer: 0 with its id (borrowed from root), duration
 * and renewability; 1 when the answer carries none. */
UNITTEST_STATIC int vault_lease_of(const json_t *root, const char **id, long long *dur,
                                   bool *renewable)
{
    *id = json_string_value(json_object_get(root, "lease_id"));
    *dur = ttl_of(json_object_get(root, "lease_duration"));
    *renewable = json_is_true(json_object_get(root, "renewable"));
    return !*id || !**id || *dur <= 0 ? 1 : 0;
}

/* A new lease for key replaces the current one; the old one stays listed
 * (for revocation at shutdown) until it expires. */
static int record_lease(struct vault *v, const char *key, const json_t *root,
                        struct fetch_result *out)
{
    const char *id;
    long long dur;
    bool renewable;
    long long t = now_ms();
    if (vault_lease_of(root, &id, &dur, &renewable) != 0)
        return 0;
    struct lease *l = calloc(1, sizeof(*l));
    if (!l || !(l->key = strdup(key)) || !(l->id = strdup(id))) {
        if (l)
            free(l->key);
        free(l);
        return -ENOMEM;
    }
    l->renewable = renewable;
    l->current = true;
    l->gen = token_gen(v);
    l->duration_ms = dur * 1000;
    l->obtained_ms = t;
    l->expires_ms = t + dur * 1000;
    pthread_mutex_lock(&v->lock);
    for (struct lease **pp = &v->leases; *pp;) {
        struct lease *o = *pp;
        if (o->current && strcmp(o->key, key) == 0)
            o->current = false;
        if (!o->current && o->expires_ms <= t) {   /* gone at Vault anyway */
            *pp = o->next;
            free(o->key);
            free(o->id);
            free(o);
            continue;
        }
        pp = &o->next;
    }
    l->next = v->leases;
    v->leases = l;
    pthread_mutex_unlock(&v->lock);
    out->valid_ms = token_bound_ms(v, renewable ? dur * 2000 / 3 : dur * 850);
    return 0;
}

/* ---- fetch ---- */

static int vault_check_ref(const struct secret_ref *ref, char *err, size_t errlen)
{
    const char *p = ref->path;
    if (p[0] == '/' || p[strlen(p) - 1] == '/' || strstr(p, "//")) {
        snprintf(err, errlen, "vault path '%.200s': expected <mount>/<path> without leading, "
                 "trailing or doubled '/'", p);
        return -EINVAL;
    }
    if (!strchr(p, '/')) {
        snprintf(err, errlen, "vault path '%.200s': expected <mount>/<path>", p);
        return -EINVAL;
    }
    for (const char *s = p; s; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL)
        if ((s[0] == '.' && (s[1] == '/' || s[1] == '\0')) ||
            (s[0] == '.' && s[1] == '.' && (s[2] == '/' || s[2] == '\0'))) {
            snprintf(err, errlen, "vault path '%.200s': '.' and '..' segments are not allowed", p);
            return -EINVAL;
        }
    if (strlen(p) > VAULT_PATH_MAX / 2) {
        snprintf(err, errlen, "vault path too long");
        return -EINVAL;
    }
    if (ref->version) {
        const char *d = ref->version;
        if (!*d || strspn(d, "0123456789") != strlen(d) || d[0] == '0' || strlen(d) > 9) {
            snprintf(err, errlen, "vault ?version= must be a positive integer, got '%.32s'", d);
            return -EINVAL;
        }
    }
    return 0;
}

/* A read of path (KV or a dynamic secret): the data object as compact JSON
 * into out->value; *root (new) still holds the lease fields. */
UNITTEST_STATIC int vault_read_answer(const char *path, const struct http_response *r, bool kv2,
                                      struct fetch_result *out, json_t **root, char *err,
                                      size_t errlen)
{
    int rc = json_reply(path, r, out, root, err, errlen);
    if (rc < 0)
        return rc;
    const json_t *data = json_object_get(*root, "data");
    if (kv2)
        data = json_object_get(data, "data");
    if (json_is_null(data) || !data) {
        snprintf(err, errlen, "%.200s: no data (deleted version)", path);
        return -ENOENT;
    }
    if (!json_is_object(data)) {
        snprintf(err, errlen, "%.200s: data is not a JSON object", path);
        return -EPROTO;
    }
    if ((rc = dump_json(data, &out->value, err, errlen)) < 0) {
        out->retryable = false;
        return rc;
    }
    return 0;
}

static int vault_fetch(void *ctx, const struct secret_ref *ref, struct fetch_result *out,
                       char *err, size_t errlen)
{
    struct vault *v = ctx;
    enum mount_kind kind = MOUNT_KV1;
    char *mpath = NULL, esc[VAULT_PATH_MAX], path[2 * VAULT_PATH_MAX + 64];
    struct http_response r;
    json_t *root = NULL;
    int rc;

    http_response_init(&r);
    rc = mount_for(v, ref->path, out, &mpath, &kind, err, errlen);
    if (rc < 0)
        goto out;
    if (ref->version && kind != MOUNT_KV2) {
        snprintf(err, errlen, "?version= needs a KV version 2 mount; %s is %s", mpath,
                 kind == MOUNT_KV1 ? "KV version 1" : "not a KV mount");
        out->retryable = false;
        rc = -EINVAL;
        goto out;
    }
    if (kind == MOUNT_OTHER && out->cached) {
        rc = renew_lease(v, ref->path, out, err, errlen);
        if (rc <= 0)
            goto out;
    }
    if (kind == MOUNT_KV2) {
        char rest[VAULT_PATH_MAX];
        if (http_escape_path(ref->path + strlen(mpath), rest, sizeof(rest)) < 0 ||
            http_escape_path(mpath, esc, sizeof(esc)) < 0)
            goto toolong;
        snprintf(path, sizeof(path), "%sdata/%s%s%s", esc, rest, ref->version ? "?version=" : "",
                 ref->version ? ref->version : "");
    } else {
        if (http_escape_path(ref->path, path, sizeof(path)) < 0)
            goto toolong;
    }
    rc = call(v, "GET", path, NULL, &r, err, errlen);
    if (rc < 0) {
        out->retryable = http_errno_retryable(rc);
        goto out;
    }
    if ((rc = vault_read_answer(ref->path, &r, kind == MOUNT_KV2, out, &root, err, errlen)) < 0)
        goto out;
    if (kind == MOUNT_OTHER)
        rc = record_lease(v, ref->path, root, out);
    goto out;
toolong:
    snprintf(err, errlen, "path too long");
    out->retryable = false;
    rc = -ENAMETOOLONG;
out:
    json_decref(root);
    http_response_cleanup(&r);
    free(mpath);
    return rc;
}

/* ---- shutdown ---- */

/* Revoke every live lease, then the token we logged in for, with the token
 * we hold: no login at shutdown (a token that is gone took its leases with
 * it). Stops at the first transport failure and after VAULT_SHUTDOWN_MS,
 * so an unreachable Vault costs one request timeout, not one per lease. */
static void vault_shutdown(void *ctx)
{
    struct vault *v = ctx;
    char err[512] = "";
    size_t revoked = 0, failed = 0;
    long long deadline = now_ms() + VAULT_SHUTDOWN_MS;
    bool reachable = true;

    if (!v->revoke_on_shutdown)
        return;
    pthread_mutex_lock(&v->auth_lock);
    bool live = v->token && (v->ttl_ms == 0 || now_ms() < v->obtained_ms + v->ttl_ms);
    char *hdr = live ? token_header(v->token) : NULL;
    bool from_login = v->from_login;
    pthread_mutex_unlock(&v->auth_lock);
    if (!hdr)
        return;

    while (reachable && now_ms() < deadline) {
        char *id = NULL;
        long long t = now_ms();
        pthread_mutex_lock(&v->lock);
        while (v->leases && !id) {
            struct lease *l = v->leases;
            v->leases = l->next;
            if (l->expires_ms > t) {
                id = l->id;
                l->id = NULL;
            }
            free(l->key);
            free(l->id);
            free(l);
        }
        pthread_mutex_unlock(&v->lock);
        if (!id)
            break;
        struct http_response r;
        struct secbuf body;
        json_t *req = json_pack("{s:s}", "lease_id", id);
        http_response_init(&r);
        secbuf_init(&body, 8192);
        int rc = req ? dump_json(req, &body, err, sizeof(err)) : -ENOMEM;
        if (rc == 0) {
            rc = raw_call(v, "POST", "sys/leases/revoke", &body, hdr, &r, err, sizeof(err));
            reachable = rc == 0;
        }
        if (rc == 0 && r.status != 204 && r.status != 200)
            rc = status_error("lease revocation", &r, NULL, err, sizeof(err));
        if (rc == 0) {
            revoked++;
        } else {
            failed++;
            log_backend(v, LOG_WARN, err, "vault lease revocation failed");
        }
        json_decref(req);
        secbuf_cleanup(&body);
        http_response_cleanup(&r);
        free(id);
    }
    if (revoked || failed) {
        struct log_fields lf = {.backend = v->name};
        log_f(failed ? LOG_WARN : LOG_INFO, &lf, "vault leases revoked: %zu, failed: %zu",
              revoked, failed);
    }
    /* A token we logged in for is ours to give back; a token from a file
     * belongs to whoever wrote the file. */
    if (from_login && reachable && now_ms() < deadline) {
        struct http_response r;
        char path[VAULT_PATH_MAX];
        http_response_init(&r);
        snprintf(path, sizeof(path), "auth/%s/revoke-self", token_mount(v));
        if (raw_call(v, "POST", path, NULL, hdr, &r, err, sizeof(err)) == 0 && r.status / 100 == 2)
            log_backend(v, LOG_INFO, NULL, "vault token revoked");
        http_response_cleanup(&r);
    }
    secmem_free(hdr);
}

const struct backend_ops backend_vault_ops = {
    .type = "vault",
    .caps = BACKEND_CAP_VERSIONS,
    .parse = vault_parse,
    .conf_free = vault_conf_free,
    .create = vault_create,
    .check_ref = vault_check_ref,
    .fetch = vault_fetch,
    .maintain = vault_maintain,
    .shutdown = vault_shutdown,
    .destroy = vault_destroy,
};
