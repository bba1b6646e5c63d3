/* conf.c - an "azure" backend object (docs/config.md) checked and turned
 * into struct azure_conf once: `check` and `mount` both come through here,
 * and nothing keeps the JSON. Each auth key falls back to the variable the
 * Azure SDKs read for it (AZURE_TENANT_ID, AZURE_CLIENT_ID,
 * AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST),
 * resolved here so that `check` reports a missing one. May stat the files
 * it names; no network.
 */
#include "backends/azure/azure_i.h"
#include "lib/escape.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *const azure_method_names[] = {"client_secret", "workload_identity",
                                          "managed_identity", "default"};
#define N_METHODS 4

static const char *const azure_keys[] = {"vault_url", "auth", "challenge_resource", NULL};

/* The keys each method reads; default reads them all. */
static const char *const method_keys[N_METHODS][7] = {
    [AZURE_CLIENT_SECRET] = {"method", "tenant_id", "client_id", "client_secret_file",
                             "authority_host", NULL},
    [AZURE_WORKLOAD_IDENTITY] = {"method", "tenant_id", "client_id", "federated_token_file",
                                 "authority_host", NULL},
    [AZURE_MANAGED_IDENTITY] = {"method", "client_id", "imds_endpoint", NULL},
    [AZURE_DEFAULT] = {"method", "tenant_id", "client_id", "client_secret_file",
                       "federated_token_file", "authority_host", "imds_endpoint"},
};

/* An environment variable's value; NULL when unset or empty (the SDKs
 * treat an empty variable as unset). */
static const char *env_val(const char *v)
{
    return v && v[0] ? v : NULL;
}

/* A tenant or client id goes into a URL path or a form: letters, digits,
 * '-', '.' and '_' only (the SDKs' tenant check, plus '_'). */
static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AZURE_ID_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
            return false;
    return true;
}

/* auth.<key>, else the variable env (its value env_value): a copy in *out
 * (NULL when neither and not required). */
static int id_key(const json_t *auth, const char *key, const char *env, const char *env_value,
                  bool required, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(auth, key);
    const char *s = NULL;
    *out = NULL;
    if (v) {
        if (!json_is_string(v) || !id_ok(json_string_value(v))) {
            snprintf(err, errlen, "auth.%s: expected an id (letters, digits, '-', '.', '_'; at "
                     "most %d characters)", key, AZURE_ID_MAX);
            return -EINVAL;
        }
        s = json_string_value(v);
    } else if (env_value) {
        if (!id_ok(env_value)) {
            snprintf(err, errlen, "auth.%s: not set, and %s is not an id (letters, digits, '-', "
                     "'.', '_')", key, env);
            return -EINVAL;
        }
        s = env_value;
    } else if (required) {
        snprintf(err, errlen, "auth.%s: missing, and %s is not set", key, env);
        return -EINVAL;
    } else {
        return 0;
    }
    return (*out = strdup(s)) ? 0 : -ENOMEM;
}

/* authority_host, else AZURE_AUTHORITY_HOST, else the public cloud's. As
 * the SDKs do, a bare host gets https:// and plain http is refused: the
 * client secret or federated token goes there. */
static int authority_key(const json_t *auth, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(auth, "authority_host");
    const char *env = env_val(getenv("AZURE_AUTHORITY_HOST"));
    const char *s = v ? json_string_value(v) : env ? env : AZURE_DEFAULT_AUTHORITY;
    const char *from = v ? "auth.authority_host" : "auth.authority_host: AZURE_AUTHORITY_HOST";
    char msg[200], *url = NULL;
    *out = NULL;
    if (!s || !s[0] || strlen(s) >= AZURE_URL_MAX) {
        snprintf(err, errlen, "%s: expected an https URL such as \"%s\"", from,
                 AZURE_DEFAULT_AUTHORITY);
        return -EINVAL;
    }
    if (strncasecmp(s, "http://", 7) == 0) {
        snprintf(err, errlen, "%s: must be https (the client secret or federated token goes "
                 "there)", from);
        return -EINVAL;
    }
    if (asprintf(&url, "%s%s", strncasecmp(s, "https://", 8) == 0 ? "" : "https://", s) < 0)
        return -ENOMEM;
    for (size_t n = strlen(url); n > 8 && url[n - 1] == '/'; n--)
        url[n - 1] = '\0';
    if (http_url_check(url, msg, sizeof(msg)) < 0) {
        char shown[128];
        escape_str(shown, sizeof(shown), s, ESCAPE_SQUOTE);
        snprintf(err, errlen, "%s: '%s': %s", from, shown, msg);
        free(url);
        return -EINVAL;
    }
    *out = url;
    return 0;
}

/* imds_endpoint: an http(s) URL, default the instance metadata service's. */
static int imds_key(const json_t *auth, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(auth, "imds_endpoint");
    const char *s = v ? json_string_value(v) : AZURE_DEFAULT_IMDS;
    char msg[200];
    *out = NULL;
    if (!s || strlen(s) >= AZURE_URL_MAX || http_url_check(s, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "auth.imds_endpoint: expected a URL such as \"%s\"",
                 AZURE_DEFAULT_IMDS);
        return -EINVAL;
    }
    if (!(*out = strdup(s)))
        return -ENOMEM;
    for (size_t n = strlen(*out); n > 8 && (*out)[n - 1] == '/'; n--)
        (*out)[n - 1] = '\0';
    return 0;
}

/* The secret files: client_secret_file (else AZURE_CLIENT_SECRET, the
 * secret itself) and federated_token_file (else the path in
 * AZURE_FEDERATED_TOKEN_FILE). A method that needs one insists on it here;
 * the default chain only notes what is there and says at login what was
 * missing. */
static int file_keys(json_t *auth, struct azure_conf *c, char *err, size_t errlen)
{
    bool need_secret = c->method == AZURE_CLIENT_SECRET;
    bool need_fed = c->method == AZURE_WORKLOAD_IDENTITY;
    const char *fed_env = env_val(getenv("AZURE_FEDERATED_TOKEN_FILE"));
    int rc;

    if (c->method == AZURE_CLIENT_SECRET || c->method == AZURE_DEFAULT) {
        if ((rc = backend_conf_path(auth, "auth.", "client_secret_file",
                                    CONF_PATH_FILE | CONF_PATH_READABLE, &c->client_secret_file,
                                    err, errlen)) < 0)
            return rc;
        c->secret_env = !c->client_secret_file && env_val(getenv("AZURE_CLIENT_SECRET"));
        if (need_secret && !c->client_secret_file && !c->secret_env) {
            snprintf(err, errlen, "auth.client_secret_file: missing, and AZURE_CLIENT_SECRET is "
                     "not set");
            return -EINVAL;
        }
    }
    if (c->method != AZURE_WORKLOAD_IDENTITY && c->method != AZURE_DEFAULT)
        return 0;
    if (json_object_get(auth, "federated_token_file") || !fed_env)
        rc = backend_conf_path(auth, "auth.", "federated_token_file",
                               CONF_PATH_FILE | CONF_PATH_READABLE |
                                   (need_fed ? CONF_REQUIRED : 0),
                               &c->federated_token_file, err, errlen);
    else
        rc = (c->federated_token_file = strdup(fed_env)) ? 0 : -ENOMEM;
    if (rc == -EINVAL && need_fed && !json_object_get(auth, "federated_token_file"))
        snprintf(err, errlen, "auth.federated_token_file: missing, and AZURE_FEDERATED_TOKEN_FILE "
                 "is not set");
    if (rc < 0 || !need_fed || json_object_get(auth, "federated_token_file"))
        return rc;
    /* Explicitly asked for: the variable's file must be there now, as a
     * configured one must. */
    char shown[256];
    escape_str(shown, sizeof(shown), fed_env, 0);
    if (fed_env[0] != '/') {
        snprintf(err, errlen, "auth.federated_token_file: not set, and AZURE_FEDERATED_TOKEN_FILE "
                 "(%s) is not an absolute path", shown);
        return -EINVAL;
    }
    if (access(fed_env, R_OK) != 0) {
        snprintf(err, errlen, "auth.federated_token_file: not set, and AZURE_FEDERATED_TOKEN_FILE "
                 "%s: %s", shown, strerror(errno));
        return -EINVAL;
    }
    return 0;
}

static int parse_auth(json_t *auth, struct azure_conf *c, char *err, size_t errlen)
{
    const json_t *m = json_object_get(auth, "method");
    const char *key;
    json_t *val;
    int rc;
    size_t i;

    if (!json_is_object(auth)) {
        snprintf(err, errlen, "auth: expected an object with a \"method\"");
        return -EINVAL;
    }
    if (!m) {
        snprintf(err, errlen, "auth.method: missing (client_secret, workload_identity, "
                 "managed_identity or default)");
        return -EINVAL;
    }
    for (i = 0; json_is_string(m) && i < N_METHODS; i++)
        if (strcmp(json_string_value(m), azure_method_names[i]) == 0)
            break;
    if (!json_is_string(m) || i == N_METHODS) {
        snprintf(err, errlen, "auth.method: expected one of client_secret, workload_identity, "
                 "managed_identity, default");
        return -EINVAL;
    }
    c->method = (enum azure_method)i;
    json_object_foreach(auth, key, val) {
        bool ok = false;
        for (size_t k = 0; k < 7 && method_keys[c->method][k]; k++)
            ok = ok || strcmp(key, method_keys[c->method][k]) == 0;
        if (!ok) {
            snprintf(err, errlen, "auth.%s: unknown key for the %s method", key,
                     azure_method_names[c->method]);
            return -EINVAL;
        }
    }
    bool entra = c->method != AZURE_MANAGED_IDENTITY;
    bool needs_ids = c->method == AZURE_CLIENT_SECRET || c->method == AZURE_WORKLOAD_IDENTITY;
    if (entra && (rc = id_key(auth, "tenant_id", "AZURE_TENANT_ID",
                              env_val(getenv("AZURE_TENANT_ID")), needs_ids, &c->tenant_id, err,
                              errlen)) < 0)
        return rc;
    if ((rc = id_key(auth, "client_id", "AZURE_CLIENT_ID", env_val(getenv("AZURE_CLIENT_ID")),
                     needs_ids, &c->client_id, err, errlen)) < 0)
        return rc;
    if ((rc = file_keys(auth, c, err, errlen)) < 0)
        return rc;
    if (entra && (rc = authority_key(auth, &c->authority_host, err, errlen)) < 0)
        return rc;
    if ((c->method == AZURE_MANAGED_IDENTITY || c->method == AZURE_DEFAULT) &&
        (rc = imds_key(auth, &c->imds_endpoint, err, errlen)) < 0)
        return rc;
    return 0;
}

/* challenge_resource: the one resource, besides the vault's own domain and
 * its parents, that Key Vault's challenge may name for this vault_url. */
static int challenge_key(json_t *json, struct azure_conf *c, char *err, size_t errlen)
{
    const json_t *v = json_object_get(json, "challenge_resource");
    char msg[200];
    int rc = 0;
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= AZURE_URL_MAX ||
        (rc = azure_url_host(json_string_value(v), &c->challenge_host, msg, sizeof(msg))) == -EINVAL) {
        snprintf(err, errlen, "challenge_resource: expected the resource URL Key Vault's "
                 "challenge names, such as \"https://vault.azure.net\"");
        return -EINVAL;
    }
    return rc;
}

void azure_conf_free(void *conf)
{
    struct azure_conf *c = conf;
    if (!c)
        return;
    http_opts_cleanup(&c->http);
    free(c->challenge_host);
    free(c->tenant_id);
    free(c->client_id);
    free(c->client_secret_file);
    free(c->federated_token_file);
    free(c->authority_host);
    free(c->imds_endpoint);
    free(c);
}

int azure_parse(json_t *json, void **conf, char *err, size_t errlen)
{
    struct azure_conf *c = calloc(1, sizeof(*c));
    int rc;

    if (!c)
        return -ENOMEM;
    if ((rc = backend_conf_check_keys(json, azure_keys, http_conf_keys, err, errlen)) < 0)
        goto out;
    rc = -EINVAL;
    if (!json_object_get(json, "vault_url")) {
        snprintf(err, errlen, "vault_url: missing (e.g. \"https://myvault.vault.azure.net\")");
        goto out;
    }
    if ((rc = http_opts_parse(json, "vault_url", true, &c->http, err, errlen)) < 0) {
        memset(&c->http, 0, sizeof(c->http));   /* cleaned up by the parser */
        goto out;
    }
    if (c->http.plain) {
        snprintf(err, errlen, "vault_url: must be https (a bearer token never crosses plain "
                 "http)");
        rc = -EINVAL;
        goto out;
    }
    if ((rc = challenge_key(json, c, err, errlen)) < 0)
        goto out;
    json_t *auth = json_object_get(json, "auth");
    if (!auth) {
        snprintf(err, errlen, "auth: missing (e.g. {\"method\": \"default\"})");
        rc = -EINVAL;
        goto out;
    }
    if ((rc = parse_auth(auth, c, err, errlen)) < 0)
        goto out;
    *conf = c;
    c = NULL;
    rc = 0;
out:
    azure_conf_free(c);
    return rc;
}
