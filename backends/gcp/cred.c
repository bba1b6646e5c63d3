/* cred.c - a Google credentials file, as google-auth reads it.
 *
 *   service_account   client_email, private_key_id, private_key (PEM),
 *                     token_uri, project_id
 *   authorized_user   client_id, client_secret, refresh_token (gcloud's
 *                     application default credentials; token_uri when
 *                     present, else Google's)
 *   external_account  audience, subject_token_type, token_url,
 *                     credential_source.file (+ format), optional
 *                     service_account_impersonation_url
 *
 * The file is read into secret memory, parsed with jansson's wiping
 * allocator, and the credentials (private key, client secret, refresh
 * token) copied into secret memory; everything is wiped when the struct
 * is cleaned up. It is read again at every login, so a rotated key or a
 * new refresh token is picked up without a restart, and no key stays in
 * memory between logins. Messages name the file and the JSON path, never
 * what the file holds (jansson's own error text quotes the input: only
 * its line and column are shown).
 */
#include "backends/gcp/gcp_i.h"
#include "lib/escape.h"
#include "lib/secfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CRED_STR_MAX 4096        /* a plain string of the file (an email, a URL) */
#define CRED_SECRET_MAX (16 * 1024)  /* a PEM key, a client secret, a refresh token */

void gcp_cred_cleanup(struct gcp_cred *c)
{
    free(c->token_uri);
    free(c->project_id);
    free(c->client_email);
    free(c->private_key_id);
    secmem_free(c->private_key);
    free(c->client_id);
    free(c->account);
    secmem_free(c->client_secret);
    secmem_free(c->refresh_token);
    free(c->audience);
    free(c->subject_token_type);
    free(c->token_url);
    free(c->source_file);
    free(c->source_field);
    free(c->impersonation_url);
    memset(c, 0, sizeof(*c));
}

/* A printable one-line string (what goes into a URL, a form or a message). */
static bool plain_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* obj.key as a string: a copy in *out (secret memory when secret). 0, 1
 * when absent (not required) or -EINVAL with "<path>: <key>: <what>". */
static int str_key(const char *path, const json_t *obj, const char *prefix, const char *key,
                   bool required, bool secret, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    size_t n = json_string_length(v);
    *out = NULL;
    if (!v || (json_is_string(v) && n == 0 && !required)) {
        if (!required)
            return 1;
        snprintf(err, errlen, "%.200s: %s%s: missing", path, prefix, key);
        return -EINVAL;
    }
    if (!json_is_string(v) || n == 0) {
        snprintf(err, errlen, "%.200s: %s%s: expected a non-empty string", path, prefix, key);
        return -EINVAL;
    }
    if (n > (secret ? CRED_SECRET_MAX : CRED_STR_MAX) || memchr(json_string_value(v), '\0', n) ||
        (!secret && !plain_ok(json_string_value(v), n))) {
        snprintf(err, errlen, "%.200s: %s%s: too long or holds control characters", path, prefix,
                 key);
        return -EINVAL;
    }
    *out = secret ? secmem_strndup(json_string_value(v), n) : strndup(json_string_value(v), n);
    return *out ? 0 : -ENOMEM;
}

/* A URL a credential is sent to: https only. */
static int url_key(const char *path, const json_t *obj, const char *key, bool required,
                   const char *dflt, char **out, char *err, size_t errlen)
{
    char msg[200];
    int rc = str_key(path, obj, "", key, required, false, out, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        if (!dflt)
            return 0;
        return (*out = strdup(dflt)) ? 0 : -ENOMEM;
    }
    if (strlen(*out) >= GCP_URL_MAX || strncasecmp(*out, "https://", 8) != 0 ||
        http_url_check(*out, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "%.200s: %s: expected an https URL (a credential is sent there)",
                 path, key);
        return -EINVAL;
    }
    /* A scheme is case-insensitive (RFC 3986, 3.1): "HTTPS://" is accepted
     * above, and kept as "https://", so every later look at the URL (logs,
     * a comparison) sees one spelling. */
    memcpy(*out, "https", 5);
    return 0;
}

static int parse_service_account(const char *path, const json_t *root, struct gcp_cred *c,
                                 char *err, size_t errlen)
{
    int rc;
    if ((rc = str_key(path, root, "", "client_email", true, false, &c->client_email, err,
                      errlen)) < 0 ||
        (rc = str_key(path, root, "", "private_key_id", true, false, &c->private_key_id, err,
                      errlen)) < 0 ||
        (rc = str_key(path, root, "", "private_key", true, true, &c->private_key, err,
                      errlen)) < 0 ||
        (rc = str_key(path, root, "", "project_id", false, false, &c->project_id, err,
                      errlen)) < 0 ||
        (rc = url_key(path, root, "token_uri", false, GCP_DEFAULT_TOKEN_URI, &c->token_uri, err,
                      errlen)) < 0)
        return rc;
    if (!strstr(c->private_key, "-----BEGIN ")) {
        snprintf(err, errlen, "%.200s: private_key: not a PEM private key", path);
        return -EINVAL;
    }
    return 0;
}

static int parse_authorized_user(const char *path, const json_t *root, struct gcp_cred *c,
                                 char *err, size_t errlen)
{
    int rc;
    if ((rc = str_key(path, root, "", "client_id", true, false, &c->client_id, err,
                      errlen)) < 0 ||
        (rc = str_key(path, root, "", "client_secret", true, true, &c->client_secret, err,
                      errlen)) < 0 ||
        (rc = str_key(path, root, "", "refresh_token", true, true, &c->refresh_token, err,
                      errlen)) < 0 ||
        (rc = str_key(path, root, "", "account", false, false, &c->account, err, errlen)) < 0 ||
        (rc = url_key(path, root, "token_uri", false, GCP_DEFAULT_TOKEN_URI, &c->token_uri, err,
                      errlen)) < 0)
        return rc;
    return 0;
}

/* credential_source: only a file (with its format) is read; the other
 * kinds google-auth knows are refused by name. */
static int parse_source(const char *path, const json_t *root, struct gcp_cred *c, char *err,
                        size_t errlen)
{
    static const char *const unsupported[] = {"url", "executable", "environment_id", NULL};
    const json_t *src = json_object_get(root, "credential_source");
    int rc;
    if (!json_is_object(src)) {
        snprintf(err, errlen, "%.200s: credential_source: %s", path,
                 src ? "expected an object" : "missing");
        return -EINVAL;
    }
    for (size_t i = 0; unsupported[i]; i++)
        if (json_object_get(src, unsupported[i]) && !json_object_get(src, "file")) {
            snprintf(err, errlen, "%.200s: credential_source.%s: not supported (only "
                     "credential_source.file: have the token written to a file)", path,
                     unsupported[i]);
            return -EINVAL;
        }
    if ((rc = str_key(path, src, "credential_source.", "file", true, false, &c->source_file, err,
                      errlen)) < 0)
        return rc;
    if (c->source_file[0] != '/') {
        snprintf(err, errlen, "%.200s: credential_source.file: expected an absolute path", path);
        return -EINVAL;
    }
    const json_t *fmt = json_object_get(src, "format");
    if (!fmt)
        return 0;
    const json_t *type = json_object_get(fmt, "type");
    if (!json_is_object(fmt) || (type && !json_is_string(type))) {
        snprintf(err, errlen, "%.200s: credential_source.format: expected {\"type\": \"text\"} "
                 "or {\"type\": \"json\", \"subject_token_field_name\": ...}", path);
        return -EINVAL;
    }
    if (!type || strcmp(json_string_value(type), "text") == 0)
        return 0;
    if (strcmp(json_string_value(type), "json") != 0) {
        snprintf(err, errlen, "%.200s: credential_source.format.type: expected text or json",
                 path);
        return -EINVAL;
    }
    return str_key(path, fmt, "credential_source.format.", "subject_token_field_name", true,
                   false, &c->source_field, err, errlen);
}

static int parse_external_account(const char *path, const json_t *root, struct gcp_cred *c,
                                  char *err, size_t errlen)
{
    int rc;
    if ((rc = str_key(path, root, "", "audience", true, false, &c->audience, err, errlen)) < 0 ||
        (rc = str_key(path, root, "", "subject_token_type", true, false, &c->subject_token_type,
                      err, errlen)) < 0 ||
        (rc = url_key(path, root, "token_url", true, NULL, &c->token_url, err, errlen)) < 0 ||
        (rc = url_key(path, root, "service_account_impersonation_url", false, NULL,
                      &c->impersonation_url, err, errlen)) < 0)
        return rc;
    if (c->impersonation_url && !strstr(c->impersonation_url, ":generateAccessToken")) {
        snprintf(err, errlen, "%.200s: service_account_impersonation_url: expected "
                 "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
                 "EMAIL:generateAccessToken", path);
        return -EINVAL;
    }
    return parse_source(path, root, c, err, errlen);
}

UNITTEST_STATIC int gcp_cred_parse(const char *path, const char *data, size_t len,
                                   struct gcp_cred *c, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -EINVAL;

    memset(c, 0, sizeof(*c));
    if (!root || !json_is_object(root)) {
        if (root)
            snprintf(err, errlen, "%.200s: expected a JSON object", path);
        else
            snprintf(err, errlen, "%.200s: not JSON (line %d, column %d)", path, jerr.line,
                     jerr.column);
        secmem_wipe(&jerr, sizeof(jerr));   /* its text quotes the file */
        json_decref(root);
        return -EINVAL;
    }
    const json_t *t = json_object_get(root, "type");
    const char *type = json_string_value(t);
    char shown[64];
    if (!type) {
        snprintf(err, errlen, "%.200s: type: %s (service_account, authorized_user or "
                 "external_account)", path, t ? "expected a string" : "missing");
    } else if (strcmp(type, "service_account") == 0) {
        c->type = GCP_SERVICE_ACCOUNT;
        rc = parse_service_account(path, root, c, err, errlen);
    } else if (strcmp(type, "authorized_user") == 0) {
        c->type = GCP_AUTHORIZED_USER;
        rc = parse_authorized_user(path, root, c, err, errlen);
    } else if (strcmp(type, "external_account") == 0) {
        c->type = GCP_EXTERNAL_ACCOUNT;
        rc = parse_external_account(path, root, c, err, errlen);
    } else if (strlen(type) < sizeof(shown) &&
               strspn(type, "abcdefghijklmnopqrstuvwxyz_") == strlen(type)) {
        /* Named when it looks like a type (impersonated_service_account,
         * gdch_service_account): anything else may be a pasted secret. */
        snprintf(shown, sizeof(shown), "%s", type);
        snprintf(err, errlen, "%.200s: type: '%s' is not supported (service_account, "
                 "authorized_user or external_account)", path, shown);
    } else {
        snprintf(err, errlen, "%.200s: type: not supported (service_account, authorized_user or "
                 "external_account)", path);
    }
    json_decref(root);
    if (rc < 0)
        gcp_cred_cleanup(c);
    return rc;
}

int gcp_cred_load(const char *path, struct gcp_cred *c, char *err, size_t errlen)
{
    struct secbuf b;
    int rc = secfile_read(path, GCP_CRED_MAX, &b, err, errlen);
    if (rc < 0)
        return rc;
    rc = gcp_cred_parse(path, (const char *)b.data, b.len, c, err, errlen);
    secbuf_cleanup(&b);
    return rc;
}

/* The account an impersonation URL names ("...serviceAccounts/EMAIL:gen...")
 * into out; "" when it cannot be read. */
static void impersonated(const char *url, char *out, size_t cap)
{
    const char *s = strstr(url, "/serviceAccounts/");
    const char *e = s ? strstr(s, ":generateAccessToken") : NULL;
    out[0] = '\0';
    if (s && e) {
        s += strlen("/serviceAccounts/");
        escape_bytes(out, cap, s, (size_t)(e - s), 0);
    }
}

void gcp_cred_identity(const struct gcp_cred *c, char *out, size_t cap)
{
    char who[GCP_ID_MAX];
    switch (c->type) {
    case GCP_SERVICE_ACCOUNT:
        snprintf(out, cap, "service account %s", c->client_email);
        break;
    case GCP_AUTHORIZED_USER:
        if (c->account)
            snprintf(out, cap, "authorized user %s", c->account);
        else
            snprintf(out, cap, "authorized user of OAuth client %s", c->client_id);
        break;
    case GCP_EXTERNAL_ACCOUNT:
        if (c->impersonation_url) {
            impersonated(c->impersonation_url, who, sizeof(who));
            snprintf(out, cap, "service account %s impersonated by workload identity %s", who,
                     c->audience);
        } else {
            snprintf(out, cap, "workload identity %s", c->audience);
        }
        break;
    case GCP_METADATA:
        snprintf(out, cap, "the metadata server's default service account");
        break;
    }
}
