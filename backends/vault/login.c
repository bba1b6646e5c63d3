/* login.c - Vault's auth methods: how to get a token. When to get one is
 * the token cache's business (backends/auth/token_cache.h), which calls
 * vault_login with its lock held.
 *
 * The role and secret ids and JWTs are read into secret memory for each
 * login and wiped after it; so is the request body that carries them.
 */
#include "backends/vault/vault_i.h"
#include "lib/secfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
            a = secmem_strndup(v->role_id, strlen(v->role_id));
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
        rc = vault_dump_json(o, body, err, errlen);
    secmem_free(a);
    secmem_free(b);
    json_decref(o);
    return rc;
}

/* A login answer: *tok new (secret memory), with its TTL. */
UNITTEST_STATIC int vault_login_answer(const char *what, const struct http_response *r, char **tok,
                                       long long *ttl, bool *renewable, char *err, size_t errlen)
{
    json_t *root = NULL;
    int rc = vault_json_reply(what, r, NULL, &root, err, errlen);
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
    if (!(*tok = secmem_strndup(json_string_value(ct), json_string_length(ct))))
        goto out;
    *ttl = vault_ttl_of(json_object_get(a, "lease_duration"));
    *renewable = json_is_true(json_object_get(a, "renewable"));
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* What is known of a new token's life: a TTL in seconds (0: none), what
 * to renew it by (0: its TTL). */
static struct token_life life_of(long long ttl_s, long long increment_s, bool renewable,
                                 unsigned flags)
{
    struct token_life l = {
        .ttl_ms = ttl_s > 0 ? ttl_s * 1000 : 0,
        .renew_ms = (increment_s > 0 ? increment_s : ttl_s) * 1000,
        .renewable = renewable,
        .flags = flags,
    };
    return l;
}

/* The token method: the token from its file (re-read each time: an agent
 * may have replaced it) or VAULT_TOKEN. When it replaces a token, it asks
 * Vault about the new one at once; otherwise maintain() does so off the
 * request path (the first fetches need not wait a round trip for a TTL). */
static int token_method(struct vault *v, bool lookup, char **tok, struct token_life *life,
                        char *err, size_t errlen)
{
    long long ttl = 0, inc = 0;
    bool renewable = false;
    char *hdr = NULL;
    int rc;

    if (v->token_file)
        rc = secfile_token(v->token_file, VAULT_SECRET_FILE_MAX, tok, err, errlen);
    else
        rc = (*tok = secmem_strndup(v->env_token, strlen(v->env_token))) ? 0 : -ENOMEM;
    if (rc == 0 && lookup) {
        rc = -ENOMEM;
        if ((hdr = vault_token_hdr(*tok)))
            rc = vault_lookup_self(v, hdr, &ttl, &inc, &renewable, err, errlen);
    }
    if (rc == 0)
        *life = life_of(ttl, inc, renewable, lookup ? 0 : VAULT_TOKEN_NEEDS_LOOKUP);
    secmem_free(hdr);
    return rc;
}

int vault_login(void *arg, enum token_login_why why, char **tok, struct token_life *life,
                char *err, size_t errlen)
{
    struct vault *v = arg;
    bool lookup = why == TOKEN_LOGIN_REPLACE;
    struct http_response r;
    char path[VAULT_PATH_MAX], what[64];
    struct secbuf body;
    long long ttl = 0;
    bool renewable = false;
    int rc;

    *tok = NULL;
    http_response_init(&r);
    secbuf_init(&body, VAULT_SECRET_FILE_MAX * 2);
    if (v->method == AUTH_TOKEN) {
        rc = token_method(v, lookup, tok, life, err, errlen);
        goto out;
    }
    if ((rc = login_body(v, &body, err, errlen)) < 0)
        goto out;
    snprintf(path, sizeof(path), "auth/%s/login", v->auth_mount);
    rc = vault_raw_call(v, "POST", path, &body, NULL, &r, err, errlen);
    if (rc < 0)
        goto out;
    snprintf(what, sizeof(what), "%s login", vault_method_names[v->method]);
    if ((rc = vault_login_answer(what, &r, tok, &ttl, &renewable, err, errlen)) < 0)
        goto out;
    *life = life_of(ttl, ttl, renewable, VAULT_TOKEN_FROM_LOGIN);
out:
    if (rc == 0)
        vault_log(v, LOG_INFO, NULL, v->method != AUTH_TOKEN ? "vault login"
                                     : lookup ? "vault token looked up" : "vault token loaded");
    else {
        secmem_free(*tok);
        *tok = NULL;
    }
    secbuf_cleanup(&body);
    http_response_cleanup(&r);
    return rc;
}
