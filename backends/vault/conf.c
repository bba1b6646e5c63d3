/* conf.c - a "vault" backend object (docs/config.md), checked and turned
 * into struct vault_conf once: both `check` and `mount` come through here,
 * and nothing keeps the JSON. May stat the files it names; no network.
 */
#include "backends/vault/vault_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const vault_method_names[] = {"token", "approle", "kubernetes", "jwt"};

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
        if (strcmp(json_string_value(v), vault_method_names[i]) == 0) {
            *m = (enum auth_method)i;
            return 0;
        }
    snprintf(err, errlen, "auth.method: expected one of token, approle, kubernetes, jwt");
    return -EINVAL;
}

/* A short one-line string, copied into *out (NULL when absent). */
static int string_key(const json_t *o, const char *prefix, const char *key, bool required,
                      char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
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
    return (*out = strdup(json_string_value(v))) ? 0 : -ENOMEM;
}

/* A file the broker reads at each login: absolute and readable now. */
static int file_key(json_t *auth, const char *key, bool required, char **out, char *err,
                    size_t errlen)
{
    return backend_conf_path(auth, "auth.", key, CONF_PATH_READABLE | (required ? CONF_REQUIRED : 0),
                             out, err, errlen);
}

static int parse_auth(json_t *auth, struct vault_conf *c, char *err, size_t errlen)
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
    c->method = m;
    json_object_foreach(auth, key, val) {
        bool ok = false;
        for (size_t i = 0; i < 5 && keys[m][i]; i++)
            ok = ok || strcmp(key, keys[m][i]) == 0;
        if (!ok) {
            snprintf(err, errlen, "auth.%s: unknown key for the %s method", key,
                     vault_method_names[m]);
            return -EINVAL;
        }
    }
    if (json_object_get(auth, "mount")) {
        rc = string_key(auth, "auth.", "mount", false, &c->auth_mount, err, errlen);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0 || c->auth_mount[0] == '/' || strstr(c->auth_mount, "..")) {
            snprintf(err, errlen, "auth.mount: expected the auth mount path, e.g. \"%s\"",
                     vault_method_names[m]);
            return -EINVAL;
        }
    } else if (!(c->auth_mount = strdup(vault_method_names[m]))) {
        return -ENOMEM;
    }
    for (size_t n = strlen(c->auth_mount); n > 1 && c->auth_mount[n - 1] == '/'; n--)
        c->auth_mount[n - 1] = '\0';
    switch (m) {
    case AUTH_TOKEN:
        if (!json_object_get(auth, "token_file") && !getenv("VAULT_TOKEN")) {
            snprintf(err, errlen, "auth.token_file: missing, and VAULT_TOKEN is not set");
            return -EINVAL;
        }
        return file_key(auth, "token_file", false, &c->token_file, err, errlen);
    case AUTH_APPROLE:
        if (!!json_object_get(auth, "role_id") == !!json_object_get(auth, "role_id_file")) {
            snprintf(err, errlen, "auth.role_id: give exactly one of role_id and role_id_file");
            return -EINVAL;
        }
        if ((rc = string_key(auth, "auth.", "role_id", false, &c->role_id, err, errlen)) < 0 ||
            (rc = file_key(auth, "role_id_file", false, &c->role_id_file, err, errlen)) < 0)
            return rc;
        return file_key(auth, "secret_id_file", false, &c->secret_id_file, err, errlen);
    case AUTH_KUBERNETES:
        if ((rc = string_key(auth, "auth.", "role", true, &c->role, err, errlen)) < 0)
            return rc;
        if (!json_object_get(auth, "jwt_file") && access(VAULT_K8S_JWT, R_OK) != 0) {
            snprintf(err, errlen, "auth.jwt_file: missing, and the service account token %s "
                     "is not readable: %s", VAULT_K8S_JWT, strerror(errno));
            return -EINVAL;
        }
        if ((rc = file_key(auth, "jwt_file", false, &c->jwt_file, err, errlen)) < 0)
            return rc;
        if (!c->jwt_file && !(c->jwt_file = strdup(VAULT_K8S_JWT)))
            return -ENOMEM;
        return 0;
    case AUTH_JWT:
        if ((rc = string_key(auth, "auth.", "role", false, &c->role, err, errlen)) < 0)
            return rc;
        return file_key(auth, "jwt_file", true, &c->jwt_file, err, errlen);
    }
    return 0;
}

static int parse_kv_versions(json_t *kv, struct vault_conf *c, char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    if (!json_is_object(kv)) {
        snprintf(err, errlen, "kv_versions: expected an object such as {\"secret\": 2}");
        return -EINVAL;
    }
    if (json_object_size(kv) && !(c->kv = calloc(json_object_size(kv), sizeof(*c->kv))))
        return -ENOMEM;
    json_object_foreach(kv, key, val) {
        if (!key[0] || key[0] == '/' || strlen(key) > 256) {
            snprintf(err, errlen, "kv_versions.%s: expected a mount path like \"secret\"", key);
            return -EINVAL;
        }
        if (!json_is_integer(val) || (json_integer_value(val) != 1 && json_integer_value(val) != 2)) {
            snprintf(err, errlen, "kv_versions.%s: expected 1 or 2", key);
            return -EINVAL;
        }
        if (!(c->kv[c->n_kv].mount = strdup(key)))
            return -ENOMEM;
        c->kv[c->n_kv++].kind = json_integer_value(val) == 2 ? MOUNT_KV2 : MOUNT_KV1;
    }
    return 0;
}

void vault_conf_free(void *conf)
{
    struct vault_conf *c = conf;
    if (!c)
        return;
    http_opts_cleanup(&c->http);
    free(c->ns);
    free(c->auth_mount);
    free(c->token_file);
    free(c->role);
    free(c->role_id);
    free(c->role_id_file);
    free(c->secret_id_file);
    free(c->jwt_file);
    for (size_t i = 0; i < c->n_kv; i++)
        free(c->kv[i].mount);
    free(c->kv);
    free(c);
}

int vault_parse(json_t *json, void **conf, char *err, size_t errlen)
{
    struct vault_conf *c = calloc(1, sizeof(*c));
    int rc = -ENOMEM;

    if (!c)
        return -ENOMEM;
    if ((rc = backend_conf_check_keys(json, vault_keys, http_conf_keys, err, errlen)) < 0)
        goto out;
    if ((rc = http_opts_parse(json, "address", true, &c->http, err, errlen)) < 0) {
        memset(&c->http, 0, sizeof(c->http));   /* cleaned up by the parser */
        goto out;
    }
    if (json_object_get(json, "namespace")) {
        rc = string_key(json, "", "namespace", false, &c->ns, err, errlen);
        if (rc == -ENOMEM)
            goto out;
        if (rc < 0 || strspn(c->ns, "/") > 0) {
            snprintf(err, errlen, "namespace: expected a namespace path such as \"team-a\"");
            rc = -EINVAL;
            goto out;
        }
    }
    json_t *auth = json_object_get(json, "auth");
    if (!auth) {
        snprintf(err, errlen, "auth: missing (e.g. {\"method\": \"token\", \"token_file\": ...})");
        rc = -EINVAL;
        goto out;
    }
    if ((rc = parse_auth(auth, c, err, errlen)) < 0)
        goto out;
    json_t *kv = json_object_get(json, "kv_versions");
    if (kv && (rc = parse_kv_versions(kv, c, err, errlen)) < 0)
        goto out;
    const json_t *r = json_object_get(json, "revoke_on_shutdown");
    if (r && !json_is_boolean(r)) {
        snprintf(err, errlen, "revoke_on_shutdown: expected true or false");
        rc = -EINVAL;
        goto out;
    }
    c->revoke_on_shutdown = r ? json_is_true(r) : true;
    *conf = c;
    c = NULL;
    rc = 0;
out:
    vault_conf_free(c);
    return rc;
}
