/* conf.c - a "gcp" backend object (docs/config.md) checked and turned into
 * struct gcp_conf once: `check` and `mount` both come through here, and
 * nothing keeps the JSON.
 *
 * Credentials are found the way Google's Application Default Credentials
 * find them (google-auth's _default.py), decided here so that `check`
 * reports a missing or broken file:
 *   1. credentials_file
 *   2. GOOGLE_APPLICATION_CREDENTIALS (set but missing: an error, as in
 *      google-auth, not a fall-through)
 *   3. the well-known file gcloud writes: $CLOUDSDK_CONFIG/
 *      application_default_credentials.json, else $HOME/.config/gcloud/...
 *   4. the metadata server (metadata_url, else http://$GCE_METADATA_HOST,
 *      else http://metadata.google.internal); whether one answers is
 *      learnt at the first login, not here (no network in parse)
 * The file is read and checked here and again at every login; nothing of
 * it is kept but its type, who it is and its project_id.
 */
#include "backends/gcp/gcp_i.h"
#include "lib/escape.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *const gcp_source_names[] = {"service_account", "authorized_user", "external_account",
                                        "metadata server"};

static const char *const gcp_keys[] = {"endpoint", "project", "location", "credentials_file",
                                       "metadata_url", NULL};

/* An environment variable's value; NULL when unset or empty. */
static const char *env_val(const char *v)
{
    return v && v[0] ? v : NULL;
}

void gcp_conf_free(void *conf)
{
    struct gcp_conf *c = conf;
    if (!c)
        return;
    http_opts_cleanup(&c->http);
    free(c->project);
    free(c->location);
    free(c->cred_path);
    free(c->cred_from);
    free(c->identity);
    free(c->metadata_url);
    free(c);
}

static int string_key(json_t *json, const char *key, bool (*ok)(const char *), const char *rule,
                      char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(json, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v) || !ok(json_string_value(v))) {
        snprintf(err, errlen, "%s: expected %s", key, rule);
        return -EINVAL;
    }
    return (*out = strdup(json_string_value(v))) ? 0 : -ENOMEM;
}

/* endpoint: https only (a bearer token goes there); default the global
 * endpoint, or the regional one when a location is set. */
static int endpoint_key(json_t *json, struct gcp_conf *c, char *err, size_t errlen)
{
    int rc = http_opts_parse(json, "endpoint", false, &c->http, err, errlen);
    if (rc < 0) {
        memset(&c->http, 0, sizeof(c->http));   /* cleaned up by the parser */
        return rc;
    }
    if (c->http.plain) {
        snprintf(err, errlen, "endpoint: must be https (a bearer token never crosses plain "
                 "http)");
        return -EINVAL;
    }
    if (c->http.address)
        return 0;
    if (c->location)
        rc = asprintf(&c->http.address, "https://secretmanager.%s.rep.googleapis.com",
                      c->location);
    else
        rc = (c->http.address = strdup(GCP_DEFAULT_ENDPOINT)) ? 0 : -1;
    if (rc < 0) {
        c->http.address = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* metadata_url, else http://$GCE_METADATA_HOST, else the default. */
static int metadata_key(json_t *json, struct gcp_conf *c, char *err, size_t errlen)
{
    const json_t *v = json_object_get(json, "metadata_url");
    const char *host = env_val(getenv("GCE_METADATA_HOST"));
    char msg[200], shown[128];
    int rc;
    if (v) {
        if (!json_is_string(v) || json_string_length(v) >= GCP_URL_MAX ||
            http_url_check(json_string_value(v), msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "metadata_url: expected a URL such as \"%s\"",
                     GCP_DEFAULT_METADATA);
            return -EINVAL;
        }
        rc = (c->metadata_url = strdup(json_string_value(v))) ? 0 : -1;
    } else if (host) {
        rc = asprintf(&c->metadata_url, "http://%s", host);
        if (rc >= 0 && (strlen(c->metadata_url) >= GCP_URL_MAX ||
                        http_url_check(c->metadata_url, msg, sizeof(msg)) < 0)) {
            escape_str(shown, sizeof(shown), host, ESCAPE_SQUOTE);
            snprintf(err, errlen, "metadata_url: not set, and GCE_METADATA_HOST ('%s') is not a "
                     "host[:port]", shown);
            return -EINVAL;
        }
    } else {
        rc = (c->metadata_url = strdup(GCP_DEFAULT_METADATA)) ? 0 : -1;
    }
    if (rc < 0) {
        c->metadata_url = NULL;
        return -ENOMEM;
    }
    for (size_t n = strlen(c->metadata_url); n > 8 && c->metadata_url[n - 1] == '/'; n--)
        c->metadata_url[n - 1] = '\0';
    return 0;
}

/* The credentials file, in ADC's order: its path into c->cred_path and
 * where it came from into c->cred_from; both NULL: the metadata server. */
static int adc_path(json_t *json, struct gcp_conf *c, char *err, size_t errlen)
{
    const char *gac = env_val(getenv("GOOGLE_APPLICATION_CREDENTIALS"));
    const char *sdk = env_val(getenv("CLOUDSDK_CONFIG"));
    const char *home = env_val(getenv("HOME"));
    char shown[256];
    int rc;

    if (json_object_get(json, "credentials_file")) {
        if ((rc = backend_conf_path(json, "", "credentials_file",
                                    CONF_PATH_FILE | CONF_PATH_READABLE, &c->cred_path, err,
                                    errlen)) < 0)
            return rc;
        return (c->cred_from = strdup("credentials_file")) ? 0 : -ENOMEM;
    }
    if (gac) {
        escape_str(shown, sizeof(shown), gac, 0);
        if (gac[0] != '/') {
            snprintf(err, errlen, "credentials_file: not set, and GOOGLE_APPLICATION_CREDENTIALS "
                     "(%s) is not an absolute path", shown);
            return -EINVAL;
        }
        if (access(gac, R_OK) != 0) {
            snprintf(err, errlen, "credentials_file: not set, and GOOGLE_APPLICATION_CREDENTIALS "
                     "%s: %s", shown, strerror(errno));
            return -EINVAL;
        }
        if (!(c->cred_path = strdup(gac)) ||
            !(c->cred_from = strdup("GOOGLE_APPLICATION_CREDENTIALS")))
            return -ENOMEM;
        return 0;
    }
    char *wk = NULL;
    if (sdk)
        rc = asprintf(&wk, "%s/%s", sdk, GCP_ADC_FILE);
    else if (home)
        rc = asprintf(&wk, "%s/.config/gcloud/%s", home, GCP_ADC_FILE);
    else
        return 0;
    if (rc < 0)
        return -ENOMEM;
    if (access(wk, F_OK) != 0) {
        free(wk);
        return 0;
    }
    if (access(wk, R_OK) != 0) {
        escape_str(shown, sizeof(shown), wk, 0);
        snprintf(err, errlen, "credentials_file: not set, and the well-known file %s: %s", shown,
                 strerror(errno));
        free(wk);
        return -EINVAL;
    }
    c->cred_path = wk;
    if (asprintf(&c->cred_from, "the well-known file (%s)",
                 sdk ? "CLOUDSDK_CONFIG" : "HOME") < 0) {
        c->cred_from = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* Resolve the credentials and check the file: its type, who it is, its
 * project. */
static int credentials(json_t *json, struct gcp_conf *c, char *err, size_t errlen)
{
    struct gcp_cred cred;
    char msg[GCP_MSG_MAX], ident[GCP_ID_MAX];
    int rc = adc_path(json, c, err, errlen);
    if (rc < 0)
        return rc;
    if (!c->cred_path) {
        c->source = GCP_METADATA;
        cred.type = GCP_METADATA;
        gcp_cred_identity(&cred, ident, sizeof(ident));
        return (c->identity = strdup(ident)) ? 0 : -ENOMEM;
    }
    if ((rc = gcp_cred_load(c->cred_path, &cred, msg, sizeof(msg))) < 0) {
        if (strcmp(c->cred_from, "credentials_file") == 0)
            snprintf(err, errlen, "credentials_file: %s", msg);
        else
            snprintf(err, errlen, "credentials_file: not set, and %s: %s", c->cred_from, msg);
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    c->source = cred.type;
    gcp_cred_identity(&cred, ident, sizeof(ident));
    rc = (c->identity = strdup(ident)) ? 0 : -ENOMEM;
    if (rc == 0 && !c->project && cred.project_id && gcp_project_ok(cred.project_id) &&
        !(c->project = strdup(cred.project_id)))
        rc = -ENOMEM;
    gcp_cred_cleanup(&cred);
    return rc;
}

int gcp_parse(json_t *json, void **conf, char *err, size_t errlen)
{
    struct gcp_conf *c = calloc(1, sizeof(*c));
    int rc;

    if (!c)
        return -ENOMEM;
    if ((rc = backend_conf_check_keys(json, gcp_keys, http_conf_keys, err, errlen)) < 0 ||
        (rc = string_key(json, "location", gcp_location_ok, "a location such as \"us-central1\"",
                         &c->location, err, errlen)) < 0 ||
        (rc = endpoint_key(json, c, err, errlen)) < 0 ||
        (rc = string_key(json, "project", gcp_project_ok,
                         "a project id (6 to 30 of a-z, 0-9, '-', starting with a letter) or a "
                         "project number", &c->project, err, errlen)) < 0 ||
        (rc = metadata_key(json, c, err, errlen)) < 0 ||
        (rc = credentials(json, c, err, errlen)) < 0)
        goto out;
    *conf = c;
    c = NULL;
    rc = 0;
out:
    gcp_conf_free(c);
    return rc;
}
