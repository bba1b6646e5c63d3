/* test_gcp.c - the GCP Secret Manager provider's pure parts (gcp_i.h): its
 * config with Application Default Credentials, the credentials file
 * parser, references, the RS256 assertion (signed, then verified with the
 * key's public half and its claims decoded), the token services' answers,
 * AccessSecretVersion answers with CRC32C and Google's errors, and when a
 * token is due. No I/O but files in a temporary directory and one live
 * instance that makes no request. */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/gcp/gcp.h"
#include "backends/gcp/gcp_i.h"
#include "backends/http/http.h"
#include "broker/hardening.h"
#include "lib/crc32c.h"
#include "lib/ref.h"
#include "lib/secmem.h"
#include "ck_main.h"

#define VALUE "s3cr3t-db-passw0rd"
#define EMAIL "app@my-project.iam.gserviceaccount.com"
#define KID "0123456789abcdef0123456789abcdef01234567"
#define TOKEN_URI "https://127.0.0.1:8443/token"

static char dir[64];
static char paths[16][256];
static size_t n_paths;

static void clear_env(void)
{
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    unsetenv("CLOUDSDK_CONFIG");
    unsetenv("GCE_METADATA_HOST");
}

static void setup(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    clear_env();
    snprintf(dir, sizeof(dir), "/tmp/rs-test-gcp.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    setenv("HOME", dir, 1);   /* no well-known file unless a test writes one */
    n_paths = 0;
}

static void teardown(void)
{
    while (n_paths > 0)
        unlink(paths[--n_paths]);
    char d[300];
    snprintf(d, sizeof(d), "%s/.config/gcloud", dir);
    rmdir(d);
    snprintf(d, sizeof(d), "%s/.config", dir);
    rmdir(d);
    rmdir(dir);
}

/* Write content to dir/name; the path is returned (static storage). */
static const char *write_file(const char *name, const char *content)
{
    ck_assert_uint_lt(n_paths, 16);
    char *p = paths[n_paths++];
    snprintf(p, 256, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(content, f) >= 0, 1);
    fclose(f);
    return p;
}

/* A PEM (PKCS #8) of a new key: RSA of bits, or an EC key when bits is 0. */
static char *new_pem(int bits, EVP_PKEY **keep)
{
    EVP_PKEY *k = bits ? EVP_RSA_gen((unsigned)bits) : EVP_EC_gen("P-256");
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    long n = BIO_get_mem_data(b, &data);
    char *pem = strndup(data, (size_t)n);
    BIO_free(b);
    if (keep)
        *keep = k;
    else
        EVP_PKEY_free(k);
    return pem;
}

/* A service-account file's JSON (the PEM escaped by jansson). */
static char *sa_json(const char *pem, const char *extra_key, const char *extra_value)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
                          "project_id", "my-project", "private_key_id", KID, "private_key", pem,
                          "client_email", EMAIL, "client_id", "1234567890", "token_uri",
                          TOKEN_URI);
    if (extra_key)
        json_object_set_new(o, extra_key, extra_value ? json_string(extra_value) : json_null());
    size_t need = json_dumpb(o, NULL, 0, 0);
    char *s = calloc(1, need + 1);
    json_dumpb(o, s, need, 0);
    json_decref(o);
    return s;
}

/* gcp_parse of text: rc, err. */
static int parse(const char *text, struct gcp_conf **c, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    void *conf = NULL;
    ck_assert_msg(j != NULL, "bad test JSON: %s", text);
    err[0] = '\0';
    int rc = gcp_parse(j, &conf, err, errlen);
    json_decref(j);
    *c = conf;
    return rc;
}

static void response(struct http_response *r, long status, const char *body)
{
    http_response_init(r);
    r->status = status;
    secbuf_init(&r->body, 65536);
    ck_assert_int_eq(secbuf_append(&r->body, body, strlen(body)), 0);
}

/* ---- CRC32C ---- */

START_TEST(crc32c_vectors)
{
    /* backend-apis.md's vectors, and RFC 3720's 32 zero bytes */
    ck_assert_uint_eq(crc32c(0, "123456789", 9), 3808858755u);
    ck_assert_uint_eq(crc32c(0, "my secret data", 14), 4065306638u);
    ck_assert_uint_eq(crc32c(0, "hunter2", 7), 1736498283u);
    unsigned char zeros[32] = {0};
    ck_assert_uint_eq(crc32c(0, zeros, sizeof(zeros)), 0x8a9136aau);
    ck_assert_uint_eq(crc32c(0, "", 0), 0);
    /* part after part gives the whole */
    ck_assert_uint_eq(crc32c(crc32c(0, "1234", 4), "56789", 5), 3808858755u);
}
END_TEST

/* ---- config and Application Default Credentials ---- */

#define T "\"type\": \"gcp\""

START_TEST(conf_metadata_default)
{
    struct gcp_conf *c = NULL;
    char err[512];
    ck_assert_msg(parse("{" T ", \"project\": \"my-project\"}", &c, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_int_eq(c->source, GCP_METADATA);
    ck_assert_ptr_null(c->cred_path);
    ck_assert_str_eq(c->http.address, GCP_DEFAULT_ENDPOINT);
    ck_assert_str_eq(c->metadata_url, GCP_DEFAULT_METADATA);
    ck_assert_str_eq(c->project, "my-project");
    ck_assert_ptr_null(c->location);
    ck_assert_str_eq(c->identity, "the metadata server's default service account");
    gcp_conf_free(c);

    /* GCE_METADATA_HOST names the host; a location picks the regional endpoint */
    setenv("GCE_METADATA_HOST", "169.254.169.254:8080", 1);
    ck_assert_msg(parse("{" T ", \"project\": \"123456789012\", \"location\": \"us-central1\"}",
                        &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->metadata_url, "http://169.254.169.254:8080");
    ck_assert_str_eq(c->http.address, "https://secretmanager.us-central1.rep.googleapis.com");
    ck_assert_str_eq(c->location, "us-central1");
    gcp_conf_free(c);
    /* metadata_url wins over it, https allowed, trailing '/' dropped */
    ck_assert_msg(parse("{" T ", \"metadata_url\": \"https://127.0.0.1:9443/\", \"endpoint\": "
                        "\"https://127.0.0.1:9443\"}", &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->metadata_url, "https://127.0.0.1:9443");
    ck_assert_str_eq(c->http.address, "https://127.0.0.1:9443");
    ck_assert_ptr_null(c->project);   /* refused per reference, at check_ref_conf */
    gcp_conf_free(c);
}
END_TEST

START_TEST(conf_adc_order)
{
    struct gcp_conf *c = NULL;
    char err[512], text[512], wk[300];
    char *pem = new_pem(2048, NULL);
    char *sa = sa_json(pem, NULL, NULL);
    const char *sa_path = write_file("sa.json", sa);
    const char *au_path = write_file("au.json", "{\"type\": \"authorized_user\", \"client_id\": "
                                     "\"cid.apps.googleusercontent.com\", \"client_secret\": "
                                     "\"GOCSPX-s3cr3t\", \"refresh_token\": \"1//0r3fr3sh\", "
                                     "\"account\": \"\"}");

    /* 1. credentials_file; the service account's project_id is the default */
    snprintf(text, sizeof(text), "{" T ", \"credentials_file\": \"%s\"}", sa_path);
    ck_assert_msg(parse(text, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(c->source, GCP_SERVICE_ACCOUNT);
    ck_assert_str_eq(c->cred_path, sa_path);
    ck_assert_str_eq(c->cred_from, "credentials_file");
    ck_assert_str_eq(c->identity, "service account " EMAIL);
    ck_assert_str_eq(c->project, "my-project");
    gcp_conf_free(c);
    /* the config's project wins */
    snprintf(text, sizeof(text), "{" T ", \"project\": \"other-project\", \"credentials_file\": "
             "\"%s\"}", sa_path);
    ck_assert_msg(parse(text, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->project, "other-project");
    gcp_conf_free(c);

    /* 3. the well-known file under HOME, then under CLOUDSDK_CONFIG */
    snprintf(wk, sizeof(wk), "%s/.config", dir);
    ck_assert_int_eq(mkdir(wk, 0700), 0);
    snprintf(wk, sizeof(wk), "%s/.config/gcloud", dir);
    ck_assert_int_eq(mkdir(wk, 0700), 0);
    const char *wk_path = write_file(".config/gcloud/" GCP_ADC_FILE, sa);
    ck_assert_msg(parse("{" T "}", &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(c->source, GCP_SERVICE_ACCOUNT);
    ck_assert_str_eq(c->cred_path, wk_path);
    ck_assert_str_eq(c->cred_from, "the well-known file (HOME)");
    gcp_conf_free(c);
    setenv("CLOUDSDK_CONFIG", "/nonexistent-gcloud-dir", 1);
    ck_assert_msg(parse("{" T "}", &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(c->source, GCP_METADATA);   /* CLOUDSDK_CONFIG replaces HOME's */
    gcp_conf_free(c);
    setenv("CLOUDSDK_CONFIG", wk, 1);
    ck_assert_msg(parse("{" T "}", &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->cred_from, "the well-known file (CLOUDSDK_CONFIG)");
    gcp_conf_free(c);

    /* 2. GOOGLE_APPLICATION_CREDENTIALS before the well-known file */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", au_path, 1);
    ck_assert_msg(parse("{" T ", \"project\": \"my-project\"}", &c, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_int_eq(c->source, GCP_AUTHORIZED_USER);
    ck_assert_str_eq(c->cred_from, "GOOGLE_APPLICATION_CREDENTIALS");
    ck_assert_str_eq(c->identity, "authorized user of OAuth client cid.apps.googleusercontent.com");
    gcp_conf_free(c);
    /* ... set but missing: an error, not the next step */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json", 1);
    ck_assert_int_eq(parse("{" T "}", &c, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "credentials_file: not set, and GOOGLE_APPLICATION_CREDENTIALS "
                          "/nonexistent/sa.json: No such file or directory");
    /* 1. credentials_file before both */
    snprintf(text, sizeof(text), "{" T ", \"credentials_file\": \"%s\"}", sa_path);
    ck_assert_msg(parse(text, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->cred_path, sa_path);
    gcp_conf_free(c);
    free(sa);
    free(pem);
}
END_TEST

START_TEST(conf_errors)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"{" T ", \"projekt\": \"p\"}", "projekt: unknown key"},
        {"{" T ", \"endpoint\": \"http://127.0.0.1:8080\"}",
         "endpoint: must be https (a bearer token never crosses plain http)"},
        {"{" T ", \"project\": \"My_Project\"}",
         "project: expected a project id (6 to 30 of a-z, 0-9, '-', starting with a letter) or a "
         "project number"},
        {"{" T ", \"project\": \"proj-\"}", NULL},
        {"{" T ", \"location\": \"US\"}", "location: expected a location such as \"us-central1\""},
        {"{" T ", \"metadata_url\": \"metadata\"}",
         "metadata_url: expected a URL such as \"http://metadata.google.internal\""},
        {"{" T ", \"credentials_file\": \"/nonexistent/sa.json\"}", NULL},
    };
    struct gcp_conf *c = NULL;
    char err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(parse(cases[i].text, &c, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_null(c);
        if (cases[i].err)
            ck_assert_msg(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0, "%zu: %s", i, err);
    }
    /* a key OpenSSL cannot use: at check time, naming the file */
    char text[512], *sa = sa_json("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
                                  NULL, NULL);
    const char *path = write_file("bad-key.json", sa);
    snprintf(text, sizeof(text), "{" T ", \"credentials_file\": \"%s\"}", path);
    ck_assert_int_eq(parse(text, &c, err, sizeof(err)), -EINVAL);
    char want[512];
    snprintf(want, sizeof(want), "credentials_file: %s: private_key: not an unencrypted PEM RSA "
             "private key", path);
    ck_assert_str_eq(err, want);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    ck_assert_int_eq(parse("{" T "}", &c, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "credentials_file: not set, and GOOGLE_APPLICATION_CREDENTIALS: "
             "%s: private_key: not an unencrypted PEM RSA private key", path);
    ck_assert_str_eq(err, want);
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    free(sa);
    setenv("GCE_METADATA_HOST", "bad host/x", 1);
    ck_assert_int_eq(parse("{" T "}", &c, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "metadata_url: not set, and GCE_METADATA_HOST ('bad host/x') is not a "
                          "host[:port]");
}
END_TEST

/* ---- the credentials file ---- */

/* gcp_cred_parse of text as file "f.json": rc, err. */
static int cred(const char *text, struct gcp_cred *c, char *err, size_t errlen)
{
    err[0] = '\0';
    int rc = gcp_cred_parse("f.json", text, strlen(text), c, err, errlen);
    ck_assert_ptr_null(strstr(err, "s3cr3t"));   /* never the file's content */
    ck_assert_ptr_null(strchr(err, '\n'));
    return rc;
}

START_TEST(cred_types)
{
    struct gcp_cred c;
    char err[512], ident[GCP_ID_MAX];
    ck_assert_int_eq(cred("{\"type\": \"authorized_user\", \"client_id\": \"cid\", \"client_secret\":"
                          " \"s3cr3t\", \"refresh_token\": \"1//s3cr3t\", \"account\": \"u@x.com\"}",
                          &c, err, sizeof(err)), 0);
    ck_assert_int_eq(c.type, GCP_AUTHORIZED_USER);
    ck_assert_str_eq(c.token_uri, GCP_DEFAULT_TOKEN_URI);   /* gcloud's file has none */
    ck_assert_str_eq(c.client_secret, "s3cr3t");
    gcp_cred_identity(&c, ident, sizeof(ident));
    ck_assert_str_eq(ident, "authorized user u@x.com");
    gcp_cred_cleanup(&c);
    /* The scheme in any case, kept in one (a fuzz_gcp finding). */
    ck_assert_int_eq(cred("{\"type\": \"authorized_user\", \"client_id\": \"cid\", \"client_secret\":"
                          " \"s3cr3t\", \"refresh_token\": \"1//s3cr3t\", \"token_uri\":"
                          " \"htTPs://oauth2.example.com/token\"}", &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.token_uri, "https://oauth2.example.com/token");
    gcp_cred_cleanup(&c);

    ck_assert_int_eq(cred("{\"type\": \"external_account\", \"audience\": \"//iam.googleapis.com/"
                          "projects/1/locations/global/workloadIdentityPools/p/providers/q\", "
                          "\"subject_token_type\": \"urn:ietf:params:oauth:token-type:jwt\", "
                          "\"token_url\": \"https://sts.googleapis.com/v1/token\", "
                          "\"service_account_impersonation_url\": \"https://iamcredentials."
                          "googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount."
                          "com:generateAccessToken\", \"credential_source\": {\"file\": "
                          "\"/var/run/token\", \"format\": {\"type\": \"json\", "
                          "\"subject_token_field_name\": \"access_token\"}}}", &c, err,
                          sizeof(err)), 0);
    ck_assert_int_eq(c.type, GCP_EXTERNAL_ACCOUNT);
    ck_assert_str_eq(c.source_file, "/var/run/token");
    ck_assert_str_eq(c.source_field, "access_token");
    gcp_cred_identity(&c, ident, sizeof(ident));
    ck_assert_str_eq(ident, "service account sa@p.iam.gserviceaccount.com impersonated by "
                            "workload identity //iam.googleapis.com/projects/1/locations/global/"
                            "workloadIdentityPools/p/providers/q");
    gcp_cred_cleanup(&c);
}
END_TEST

START_TEST(cred_errors)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"{\"type\": \"service_account\", \"private_key\": \"s3cr3t", "f.json: not JSON (line 1, "},
        {"[1]", "f.json: expected a JSON object"},
        {"{}", "f.json: type: missing (service_account, authorized_user or external_account)"},
        {"{\"type\": \"impersonated_service_account\"}",
         "f.json: type: 'impersonated_service_account' is not supported (service_account, "
         "authorized_user or external_account)"},
        {"{\"type\": \"service_account\", \"client_email\": \"a@b\", \"private_key_id\": \"k\"}",
         "f.json: private_key: missing"},
        {"{\"type\": \"service_account\", \"client_email\": \"a@b\", \"private_key_id\": \"k\", "
         "\"private_key\": \"s3cr3t\"}", "f.json: private_key: not a PEM private key"},
        {"{\"type\": \"service_account\", \"client_email\": \"a@b\", \"private_key_id\": \"k\", "
         "\"private_key\": \"-----BEGIN PRIVATE KEY-----\\ns3cr3t\", \"token_uri\": "
         "\"http://oauth2.googleapis.com/token\"}",
         "f.json: token_uri: expected an https URL (a credential is sent there)"},
        {"{\"type\": \"service_account\", \"client_email\": \"a\\nb\", \"private_key_id\": \"k\"}",
         "f.json: client_email: too long or holds control characters"},
        {"{\"type\": \"authorized_user\", \"client_id\": \"c\", \"client_secret\": 5}",
         "f.json: client_secret: expected a non-empty string"},
        {"{\"type\": \"external_account\", \"audience\": \"a\", \"subject_token_type\": \"t\", "
         "\"token_url\": \"https://sts.googleapis.com/v1/token\", \"credential_source\": "
         "{\"url\": \"http://169.254.169.254/token\"}}",
         "f.json: credential_source.url: not supported (only credential_source.file: have the "
         "token written to a file)"},
        {"{\"type\": \"external_account\", \"audience\": \"a\", \"subject_token_type\": \"t\", "
         "\"token_url\": \"https://sts.googleapis.com/v1/token\"}",
         "f.json: credential_source: missing"},
        {"{\"type\": \"external_account\", \"audience\": \"a\", \"subject_token_type\": \"t\", "
         "\"token_url\": \"https://sts.googleapis.com/v1/token\", \"credential_source\": "
         "{\"file\": \"token\"}}", "f.json: credential_source.file: expected an absolute path"},
        {"{\"type\": \"external_account\", \"audience\": \"a\", \"subject_token_type\": \"t\", "
         "\"token_url\": \"https://sts.googleapis.com/v1/token\", \"credential_source\": "
         "{\"file\": \"/t\", \"format\": {\"type\": \"xml\"}}}",
         "f.json: credential_source.format.type: expected text or json"},
        {"{\"type\": \"external_account\", \"audience\": \"a\", \"subject_token_type\": \"t\", "
         "\"token_url\": \"https://sts.googleapis.com/v1/token\", "
         "\"service_account_impersonation_url\": \"https://iam.example/x\", "
         "\"credential_source\": {\"file\": \"/t\"}}",
         "f.json: service_account_impersonation_url: expected https://iamcredentials."},
    };
    struct gcp_cred c;
    char err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(cred(cases[i].text, &c, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0, "%zu: %s", i, err);
        ck_assert_ptr_null(c.private_key);
    }
}
END_TEST

/* ---- references ---- */

static int name_of(const char *text, const char *project, const char *location,
                   struct gcp_name *n, char *err, size_t errlen)
{
    struct secret_ref ref;
    ck_assert_int_eq(ref_parse(text, &ref, err, errlen), 0);
    err[0] = '\0';
    int rc = gcp_name_parse(&ref, project, location, n, err, errlen);
    ref_cleanup(&ref);
    return rc;
}

START_TEST(refs)
{
    struct gcp_name n;
    char err[512], path[512];

    ck_assert_int_eq(name_of("g:db-password", "my-project", NULL, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(gcp_access_path(&n, path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/v1/projects/my-project/secrets/db-password/versions/latest:access");
    ck_assert_int_eq(name_of("g:DB_pass-1?version=12", "123456", "europe-west1", &n, err,
                             sizeof(err)), 0);
    ck_assert_int_eq(gcp_access_path(&n, path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/v1/projects/123456/locations/europe-west1/secrets/DB_pass-1/versions/"
                           "12:access");
    ck_assert_int_eq(name_of("g:x?version=latest#/a/b", NULL, NULL, &n, err, sizeof(err)), 0);
    ck_assert_str_eq(n.project, "");   /* check_ref_conf decides */
    /* full names: the reference's project and location, not the backend's */
    ck_assert_int_eq(name_of("g:projects/other-proj/secrets/s/versions/3#user", "my-project",
                             "us-east1", &n, err, sizeof(err)), 0);
    ck_assert_int_eq(gcp_access_path(&n, path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/v1/projects/other-proj/secrets/s/versions/3:access");
    ck_assert_int_eq(name_of("g:projects/42/locations/us-east1/secrets/s?version=7", NULL, NULL,
                             &n, err, sizeof(err)), 0);
    ck_assert_int_eq(gcp_access_path(&n, path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/v1/projects/42/locations/us-east1/secrets/s/versions/7:access");
    ck_assert_int_eq(name_of("g:projects/my-project/secrets/s", NULL, NULL, &n, err, sizeof(err)),
                     0);
    ck_assert_str_eq(n.version, "latest");

    static const struct {
        const char *text, *err;
    } bad[] = {
        {"g:a.b", "gcp secret id 'a.b': expected 1 to 255 letters, digits, '_' and '-'"},
        {"g:a/b", "gcp secret id 'a/b': expected SECRET or projects/P/[locations/L/]secrets/S"},
        {"g:s?version=0", "gcp version '0': expected a version number (1, 2, ...) or latest"},
        {"g:s?version=v1", "gcp version 'v1': expected"},
        {"g:s?version=12345678901234567890", "gcp version '12345678901234567890': expected"},
        {"g:projects/P/secrets/s", "gcp project 'P': expected a project id"},
        {"g:projects/0123/secrets/s", "gcp project '0123': expected"},
        {"g:projects/my-project/secret/s", "gcp resource name 'projects/my-project/secret/s'"},
        {"g:projects/my-project/secrets/s/versions", "gcp resource name"},
        {"g:projects/my-project/secrets/s/versions/2?version=3",
         "gcp reference names its version twice (/versions/ and ?version=)"},
        {"g:projects/my-project/locations/US/secrets/s", "gcp location 'US': expected"},
        {"g:projects/my-project/secrets/a%b", "gcp secret id 'a%b'"},
        {"g:projects//secrets/s", "gcp project '': expected"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(name_of(bad[i].text, "my-project", NULL, &n, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strncmp(err, bad[i].err, strlen(bad[i].err)) == 0, "%zu: %s", i, err);
    }
    char longid[300];
    memset(longid, 'a', sizeof(longid));
    memcpy(longid, "g:", 2);
    longid[2 + 256] = '\0';
    ck_assert_int_eq(name_of(longid, "my-project", NULL, &n, err, sizeof(err)), -EINVAL);
    longid[2 + 255] = '\0';
    ck_assert_int_eq(name_of(longid, "my-project", NULL, &n, err, sizeof(err)), 0);

    /* the project check against the parsed config */
    struct gcp_conf *c = NULL;
    struct secret_ref ref;
    ck_assert_msg(parse("{" T "}", &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ref_parse("g:db", &ref, err, sizeof(err)), 0);
    ck_assert_int_eq(backend_gcp_ops.check_ref(&ref, err, sizeof(err)), 0);
    ck_assert_int_eq(backend_gcp_ops.check_ref_conf(c, &ref, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "gcp secret 'db' names no project: set \"project\" in the backend (or "
                          "use a service account file with a project_id), or write "
                          "projects/PROJECT/secrets/db");
    ref_cleanup(&ref);
    ck_assert_int_eq(ref_parse("g:projects/123/secrets/db", &ref, err, sizeof(err)), 0);
    ck_assert_int_eq(backend_gcp_ops.check_ref_conf(c, &ref, err, sizeof(err)), 0);
    ref_cleanup(&ref);
    gcp_conf_free(c);
}
END_TEST

/* ---- the RS256 assertion ---- */

/* base64url-decode the n bytes at s into a new NUL-terminated buffer. */
static unsigned char *unb64(const char *s, size_t n, size_t *len)
{
    unsigned char *out = calloc(1, n + 1);
    ck_assert_int_eq(sodium_base642bin(out, n, s, n, NULL, len, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
    return out;
}

START_TEST(jwt_signed_and_verified)
{
    EVP_PKEY *key = NULL;
    char *pem = new_pem(2048, &key), *sa = sa_json(pem, NULL, NULL), *jwt = NULL, err[512];
    struct gcp_cred c;
    ck_assert_int_eq(gcp_cred_parse("sa.json", sa, strlen(sa), &c, err, sizeof(err)), 0);
    ck_assert_int_eq(gcp_jwt_assertion(&c, 1700000000, &jwt, err, sizeof(err)), 0);

    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    ck_assert_ptr_nonnull(d2);
    ck_assert_ptr_null(strchr(d2 + 1, '.'));
    ck_assert_ptr_null(strpbrk(jwt, "=+/"));   /* base64url without padding */
    size_t hl, cl, sl;
    unsigned char *h = unb64(jwt, (size_t)(d1 - jwt), &hl);
    unsigned char *cl_ = unb64(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
    unsigned char *sig = unb64(d2 + 1, strlen(d2 + 1), &sl);
    json_error_t je;
    json_t *hdr = json_loads((char *)h, 0, &je), *claims = json_loads((char *)cl_, 0, &je);
    ck_assert_ptr_nonnull(hdr);
    ck_assert_ptr_nonnull(claims);
    ck_assert_uint_eq(json_object_size(hdr), 3);
    ck_assert_str_eq(json_string_value(json_object_get(hdr, "alg")), "RS256");
    ck_assert_str_eq(json_string_value(json_object_get(hdr, "typ")), "JWT");
    ck_assert_str_eq(json_string_value(json_object_get(hdr, "kid")), KID);
    ck_assert_uint_eq(json_object_size(claims), 5);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "iss")), EMAIL);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "scope")), GCP_SCOPE);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "aud")), TOKEN_URI);
    ck_assert_int_eq(json_integer_value(json_object_get(claims, "iat")), 1700000000);
    ck_assert_int_eq(json_integer_value(json_object_get(claims, "exp")), 1700000000 + 3600);

    /* the signature verifies with the key's public half over header.claims */
    ck_assert_uint_eq(sl, 256);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    ck_assert_int_eq(EVP_DigestVerify(md, sig, sl, (const unsigned char *)jwt,
                                      (size_t)(d2 - jwt)), 1);
    /* and not over anything else */
    ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    ck_assert_int_ne(EVP_DigestVerify(md, sig, sl, (const unsigned char *)jwt,
                                      (size_t)(d2 - jwt) - 1), 1);
    EVP_MD_CTX_free(md);

    json_decref(hdr);
    json_decref(claims);
    free(h);
    free(cl_);
    free(sig);
    secmem_free(jwt);
    gcp_cred_cleanup(&c);
    EVP_PKEY_free(key);
    free(sa);
    free(pem);
}
END_TEST

START_TEST(jwt_refused_keys)
{
    static const int bits[] = {0, 1024};
    static const char *const errs[] = {"private_key: not an unencrypted PEM RSA private key",
                                       "private_key: an RSA key of 1024 bits (2048 to 8192 "
                                       "expected)"};
    char err[512], *jwt = NULL;
    for (size_t i = 0; i < 3; i++) {
        char *pem = i < 2 ? new_pem(bits[i], NULL)
                          : strdup("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END "
                                   "PRIVATE KEY-----\n");
        char *sa = sa_json(pem, NULL, NULL);
        struct gcp_cred c;
        ck_assert_int_eq(gcp_cred_parse("sa.json", sa, strlen(sa), &c, err, sizeof(err)), 0);
        ck_assert_int_eq(gcp_jwt_assertion(&c, 1700000000, &jwt, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_null(jwt);
        ck_assert_str_eq(err, errs[i < 2 ? i : 0]);
        gcp_cred_cleanup(&c);
        free(sa);
        free(pem);
    }
}
END_TEST

/* ---- the token services' answers ---- */

START_TEST(oauth_answers)
{
    struct http_response r;
    char err[512], *tok = NULL;
    long long ttl = -1;

    response(&r, 200, "{\"access_token\":\"ya29.s3cr3t-tok\",\"expires_in\":3599,"
                      "\"token_type\":\"Bearer\"}");
    ck_assert_int_eq(gcp_oauth_answer(&r, &tok, &ttl, err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "ya29.s3cr3t-tok");
    ck_assert_int_eq(ttl, 3599);
    secmem_free(tok);
    http_response_cleanup(&r);
    /* expires_in as a string (some metadata servers), no token_type */
    response(&r, 200, "{\"access_token\":\"t\",\"expires_in\":\"120\"}");
    ck_assert_int_eq(gcp_oauth_answer(&r, &tok, &ttl, err, sizeof(err)), 0);
    ck_assert_int_eq(ttl, 120);
    secmem_free(tok);
    http_response_cleanup(&r);

    static const struct {
        long status;
        const char *body, *err;
        int rc;
    } bad[] = {
        {400, "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}",
         "HTTP 400 invalid_grant: Invalid JWT Signature.", -EACCES},
        {401, "{\"error\":\"invalid_client\",\"error_description\":\"Unauthorized\"}",
         "HTTP 401 invalid_client: Unauthorized", -EACCES},
        {403, "{\"error\":{\"code\":403,\"message\":\"Permission 'iam.serviceAccounts."
              "getAccessToken' denied on resource (or it may not exist).\",\"status\":"
              "\"PERMISSION_DENIED\"}}",
         "HTTP 403 PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied on "
         "resource (or it may not exist).", -EACCES},
        {503, "{\"error\":\"temporarily_unavailable\",\"error_description\":\"x\\r\\ny\"}",
         "HTTP 503 temporarily_unavailable: x", -EAGAIN},
        {429, "<html>slow down</html>", "HTTP 429 (not a JSON answer)", -EAGAIN},
        {408, "", "HTTP 408 (not a JSON answer)", -EAGAIN},
        {404, "<html>", "HTTP 404 (not a JSON answer)", -EIO},
        {200, "[]", "HTTP 200 with a body that is not a JSON object", -EPROTO},
        {200, "{\"access_token\":\"t\"}", "no usable expires_in in the answer", -EPROTO},
        {200, "{\"access_token\":\"t\",\"expires_in\":0}", "no usable expires_in in the answer",
         -EPROTO},
        {200, "{\"access_token\":\"t\",\"expires_in\":\"1e3\"}",
         "no usable expires_in in the answer", -EPROTO},
        {200, "{\"expires_in\":3599}", "no access_token in the answer", -EPROTO},
        {200, "{\"access_token\":\"a\\r\\nX-Injected: 1\",\"expires_in\":3599}",
         "access_token holds characters a header cannot carry", -EPROTO},
        {200, "{\"access_token\":\"t\",\"expires_in\":3599,\"token_type\":\"MAC\"}",
         "token_type is not Bearer", -EPROTO},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        response(&r, bad[i].status, bad[i].body);
        ck_assert_int_eq(gcp_oauth_answer(&r, &tok, &ttl, err, sizeof(err)), bad[i].rc);
        ck_assert_ptr_null(tok);
        ck_assert_msg(strcmp(err, bad[i].err) == 0, "%zu: %s", i, err);
        http_response_cleanup(&r);
    }
}
END_TEST

START_TEST(iam_answers)
{
    struct http_response r;
    char err[512], *tok = NULL;
    long long ttl = -1, t;

    ck_assert_int_eq(gcp_rfc3339("2021-08-26T00:57:30Z", &t), 0);
    ck_assert_int_eq(t, 1629939450);
    ck_assert_int_eq(gcp_rfc3339("2021-08-26T00:57:30.123456789Z", &t), 0);
    ck_assert_int_eq(t, 1629939450);
    ck_assert_int_eq(gcp_rfc3339("2021-08-26T02:57:30+02:00", &t), 0);
    ck_assert_int_eq(t, 1629939450);
    ck_assert_int_eq(gcp_rfc3339("2021-08-25T23:57:30-01:00", &t), 0);
    ck_assert_int_eq(t, 1629939450);
    ck_assert_int_eq(gcp_rfc3339("2021-08-26 00:57:30Z", &t), -EINVAL);
    ck_assert_int_eq(gcp_rfc3339("2021-08-26T00:57:30", &t), -EINVAL);
    ck_assert_int_eq(gcp_rfc3339("2021-13-26T00:57:30Z", &t), -EINVAL);
    ck_assert_int_eq(gcp_rfc3339("2021-08-26T00:57:30.Z", &t), -EINVAL);
    ck_assert_int_eq(gcp_rfc3339("", &t), -EINVAL);

    response(&r, 200, "{\"accessToken\":\"ya29.imp-s3cr3t\",\"expireTime\":"
                      "\"2021-08-26T00:57:30Z\"}");
    ck_assert_int_eq(gcp_iam_answer(&r, 1629939450 - 3600, &tok, &ttl, err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "ya29.imp-s3cr3t");
    ck_assert_int_eq(ttl, 3600);
    secmem_free(tok);
    /* already past: a skewed clock, refused */
    ck_assert_int_eq(gcp_iam_answer(&r, 1629939450, &tok, &ttl, err, sizeof(err)), -EPROTO);
    ck_assert_str_eq(err, "the token's expireTime has passed (clock skew?)");
    http_response_cleanup(&r);
    response(&r, 200, "{\"accessToken\":\"t\",\"expireTime\":1629939450}");
    ck_assert_int_eq(gcp_iam_answer(&r, 0, &tok, &ttl, err, sizeof(err)), -EPROTO);
    ck_assert_str_eq(err, "no usable expireTime in the answer");
    http_response_cleanup(&r);
}
END_TEST

START_TEST(subject_tokens)
{
    struct secbuf b;
    char err[256], *tok = NULL;
    secbuf_init(&b, 4096);
    ck_assert_int_eq(secbuf_append(&b, "  eyJ.subj.s3cr3t\n", 18), 0);
    ck_assert_int_eq(gcp_subject_token(&b, NULL, &tok, err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "eyJ.subj.s3cr3t");
    secmem_free(tok);
    ck_assert_int_eq(gcp_subject_token(&b, "access_token", &tok, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "not a JSON object with a string access_token");
    secbuf_cleanup(&b);
    secbuf_init(&b, 4096);
    ck_assert_int_eq(secbuf_append(&b, "{\"access_token\": \"abc\"}", 23), 0);
    ck_assert_int_eq(gcp_subject_token(&b, "access_token", &tok, err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "abc");
    secmem_free(tok);
    secbuf_cleanup(&b);
    secbuf_init(&b, 4096);
    ck_assert_int_eq(secbuf_append(&b, " \n", 2), 0);
    ck_assert_int_eq(gcp_subject_token(&b, NULL, &tok, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "empty subject token");
    secbuf_cleanup(&b);
}
END_TEST

/* ---- AccessSecretVersion answers ---- */

/* gcp_access_answer for ref text (project my-project), identity "service
 * account A". */
static int answer(const char *text, long status, const char *body, struct fetch_result *out,
                  char *version, char *err, size_t errlen)
{
    struct gcp_name n;
    struct http_response r;
    ck_assert_int_eq(name_of(text, "my-project", NULL, &n, err, errlen), 0);
    response(&r, status, body);
    err[0] = '\0';
    int rc = gcp_access_answer(&n, &r, "service account A", out, version, err, errlen);
    ck_assert_ptr_null(strstr(err, VALUE));   /* no value in any message */
    ck_assert_ptr_null(strstr(err, "1736498283"));   /* nor its checksum */
    ck_assert_ptr_null(strchr(err, '\n'));
    http_response_cleanup(&r);
    return rc;
}

/* base64 of VALUE, and of "hunter2" with its CRC32C */
#define VALUE_B64 "czNjcjN0LWRiLXBhc3N3MHJk"
#define HUNTER2 "\"data\":\"aHVudGVyMg==\",\"dataCrc32c\":\"1736498283\""

START_TEST(access_values)
{
    struct fetch_result out;
    char err[512], ver[GCP_VERSION_MAX + 1];

    fetch_result_init(&out, 4096);
    ck_assert_int_eq(answer("g:db-password", 200, "{\"name\":\"projects/123456/secrets/"
                            "db-password/versions/7\",\"payload\":{" HUNTER2 "}}", &out, ver, err,
                            sizeof(err)), 0);
    ck_assert_uint_eq(out.value.len, 7);
    ck_assert_int_eq(memcmp(out.value.data, "hunter2", 7), 0);
    ck_assert_str_eq(ver, "7");
    ck_assert_str_eq(out.version, "7");   /* the version served, for /status */
    fetch_result_cleanup(&out);

    /* no checksum (versions older than the field), a number for it, an empty value */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(answer("g:db-password?version=3", 200, "{\"name\":\"projects/my-project/"
                            "secrets/db-password/versions/3\",\"payload\":{\"data\":\"" VALUE_B64
                            "\"}}", &out, ver, err, sizeof(err)), 0);
    ck_assert_uint_eq(out.value.len, strlen(VALUE));
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(answer("g:db-password", 200, "{\"name\":\"projects/1/secrets/db-password/"
                            "versions/1\",\"payload\":{\"data\":\"aHVudGVyMg==\",\"dataCrc32c\":"
                            "1736498283}}", &out, ver, err, sizeof(err)), 0);
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(answer("g:projects/p-12345/locations/us-east1/secrets/e", 200,
                            "{\"name\":\"projects/9/locations/us-east1/secrets/e/versions/2\","
                            "\"payload\":{}}", &out, ver, err, sizeof(err)), 0);
    ck_assert_uint_eq(out.value.len, 0);
    ck_assert_str_eq(ver, "2");
    ck_assert_str_eq(out.version, "2");
    fetch_result_cleanup(&out);

    /* a checksum that does not match: refused, nothing kept, retried */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(answer("g:db-password", 200, "{\"name\":\"projects/1/secrets/db-password/"
                            "versions/7\",\"payload\":{\"data\":\"aHVudGVyMw==\",\"dataCrc32c\":"
                            "\"1736498283\"}}", &out, ver, err, sizeof(err)), -EBADMSG);
    ck_assert_str_eq(err, "secret 'db-password' version 7: checksum mismatch (payload.dataCrc32c "
                          "does not match the data): value refused");
    ck_assert_uint_eq(out.value.len, 0);
    ck_assert_str_eq(out.version, "");   /* nothing served */
    ck_assert(out.retryable);
    fetch_result_cleanup(&out);

    static const struct {
        const char *ref, *body, *err;
        int rc;
    } bad[] = {
        {"g:db-password", "{\"name\":\"projects/1/secrets/other/versions/7\",\"payload\":{}}",
         "secret 'db-password': the answer's name does not name this secret and a version",
         -EPROTO},
        {"g:db-password", "{\"name\":\"projects/1/secrets/db-password/versions/latest\","
                          "\"payload\":{}}",
         "secret 'db-password': the answer's name does not name this secret and a version",
         -EPROTO},
        {"g:db-password?version=3", "{\"name\":\"projects/1/secrets/db-password/versions/4\","
                                    "\"payload\":{}}",
         "secret 'db-password' version 3: the answer is for version 4", -EPROTO},
        {"g:db-password", "{\"name\":\"projects/1/secrets/db-password/versions/4\"}",
         "secret 'db-password': no payload object in the answer", -EPROTO},
        {"g:db-password", "{\"name\":\"projects/1/secrets/db-password/versions/4\",\"payload\":"
                          "{\"data\":\"aHVudGVyMg==\",\"dataCrc32c\":\"-1\"}}",
         "secret 'db-password': payload.dataCrc32c is not a 32-bit number", -EPROTO},
        {"g:db-password", "{\"name\":\"projects/1/secrets/db-password/versions/4\",\"payload\":"
                          "{\"data\":\"aHVudGVyMg==\",\"dataCrc32c\":\"4294967296\"}}",
         "secret 'db-password': payload.dataCrc32c is not a 32-bit number", -EPROTO},
        {"g:db-password", "{\"name\":\"projects/1/secrets/db-password/versions/4\",\"payload\":"
                          "{\"data\":\"not base64!\"}}",
         "secret 'db-password': payload.data is not valid base64 (or larger than max_size)",
         -EPROTO},
        {"g:db-password", "{\"name\":\"projects/1/secrets/db-password/versions/4\",\"payload\":"
                          "{\"data\":7}}",
         "secret 'db-password': payload.data is not a string", -EPROTO},
        {"g:db-password", "<html>", "secret 'db-password': HTTP 200 with a body that is not a "
                                    "JSON object", -EPROTO},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fetch_result_init(&out, 4096);
        ck_assert_int_eq(answer(bad[i].ref, 200, bad[i].body, &out, ver, err, sizeof(err)),
                         bad[i].rc);
        ck_assert_msg(strcmp(err, bad[i].err) == 0, "%zu: %s", i, err);
        ck_assert_uint_eq(out.value.len, 0);
        fetch_result_cleanup(&out);
    }

    /* larger than max_size: permanent */
    fetch_result_init(&out, 4);
    ck_assert_int_eq(answer("g:db-password", 200, "{\"name\":\"projects/1/secrets/db-password/"
                            "versions/1\",\"payload\":{\"data\":\"" VALUE_B64 "\"}}", &out, ver,
                            err, sizeof(err)), -E2BIG);
    ck_assert_str_eq(err, "secret 'db-password': value larger than 4 bytes (max_size)");
    ck_assert(!out.retryable);
    fetch_result_cleanup(&out);
}
END_TEST

START_TEST(access_errors)
{
    struct fetch_result out;
    char err[512], ver[GCP_VERSION_MAX + 1];
    static const struct {
        const char *ref;
        long status;
        const char *body, *err;
        int rc;
        bool retryable;
    } cases[] = {
        {"g:db", 404, "{\"error\":{\"code\":404,\"message\":\"Secret [projects/1/secrets/db] not "
                      "found or has no versions.\",\"status\":\"NOT_FOUND\"}}",
         "secret 'db': not found (HTTP 404 NOT_FOUND: Secret [projects/1/secrets/db] not found or "
         "has no versions.)", -ENOENT, false},
        {"g:db", 404, "<!DOCTYPE html><html><title>Error 404 (Not Found)!!1</title>",
         "secret 'db': HTTP 404 without NOT_FOUND (is endpoint Secret Manager?)", -EIO, false},
        {"g:db?version=2", 400, "{\"error\":{\"code\":400,\"message\":\"Secret Version [projects/1/"
                                "secrets/db/versions/2] is in DISABLED state.\",\"status\":"
                                "\"FAILED_PRECONDITION\"}}",
         "secret 'db' version 2 is not accessible (HTTP 400 FAILED_PRECONDITION: Secret Version "
         "[projects/1/secrets/db/versions/2] is in DISABLED state.)", -EACCES, false},
        {"g:db", 403, "{\"error\":{\"code\":403,\"message\":\"Permission 'secretmanager.versions."
                      "access' denied for resource 'projects/my-project/secrets/db/versions/"
                      "latest' (or it may not exist).\",\"status\":\"PERMISSION_DENIED\"}}",
         "secret 'db': access denied to service account A (HTTP 403 PERMISSION_DENIED: Permission "
         "'secretmanager.versions.access' denied for resource 'projects/my-project/secrets/db/"
         "versions/latest' (or it may not exist).)", -EACCES, false},
        {"g:db", 403, "{\"error\":{\"code\":403,\"message\":\"Permission denied on resource\","
                      "\"status\":\"PERMISSION_DENIED\"}}",
         "secret 'db': access denied to service account A (HTTP 403 PERMISSION_DENIED: Permission "
         "denied on resource): needs the secretmanager.versions.access permission", -EACCES,
         false},
        {"g:db", 401, "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication "
                      "credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
         "secret 'db': access denied to service account A (HTTP 401 UNAUTHENTICATED: Request had "
         "invalid authentication credentials.): needs the secretmanager.versions.access "
         "permission", -EACCES, false},
        {"g:db", 503, "{\"error\":{\"code\":503,\"message\":\"The service is currently "
                      "unavailable.\",\"status\":\"UNAVAILABLE\"}}",
         "secret 'db': HTTP 503 UNAVAILABLE: The service is currently unavailable.", -EAGAIN,
         true},
        {"g:db", 429, "{\"error\":{\"code\":429,\"message\":\"Quota exceeded\",\"status\":"
                      "\"RESOURCE_EXHAUSTED\"}}",
         "secret 'db': HTTP 429 RESOURCE_EXHAUSTED: Quota exceeded", -EAGAIN, true},
        {"g:db", 400, "{\"error\":{\"code\":400,\"message\":\"bad \\u001b[31m\\nname\","
                      "\"status\":\"INVALID_ARGUMENT\"}}",
         "secret 'db': HTTP 400 INVALID_ARGUMENT: bad \\x1b[31m", -EINVAL, false},
        {"g:db", 501, "", "secret 'db': HTTP 501 error", -EIO, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fetch_result_init(&out, 4096);
        ck_assert_int_eq(answer(cases[i].ref, cases[i].status, cases[i].body, &out, ver, err,
                                sizeof(err)), cases[i].rc);
        ck_assert_msg(strcmp(err, cases[i].err) == 0, "%zu: %s", i, err);
        ck_assert_msg(out.retryable == cases[i].retryable, "%zu", i);
        fetch_result_cleanup(&out);
    }
}
END_TEST

START_TEST(due_rule)
{
    struct token_info t = {.gen = 1, .obtained_ms = 1000};
    t.life.ttl_ms = 3600 * 1000LL;
    ck_assert_int_eq(gcp_due_in(&t, 1000), 3375 * 1000LL);
    t.life.ttl_ms = 120 * 1000LL;
    ck_assert_int_eq(gcp_due_in(&t, 1000), 60 * 1000LL);
    t.life.ttl_ms = 0;
    ck_assert_int_eq(gcp_due_in(&t, 1000), LLONG_MAX);
}
END_TEST

/* ---- a live instance (no request made) ---- */

START_TEST(live_instance)
{
    struct http_engine *http = NULL;
    struct gcp_conf *c = NULL;
    struct backend_env env = {.name = "gcp", .max_value = 4096};
    char err[512], text[512];
    void *ctx = NULL;

    ck_assert_int_eq(http_engine_new(&http, err, sizeof(err)), 0);
    env.http = http;
    ck_assert_msg(parse("{" T ", \"project\": \"my-project\", \"tls_server_name\": "
                        "\"secretmanager.googleapis.com\", \"endpoint\": \"https://10.0.0.5\"}",
                        &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(backend_gcp_ops.create(&env, c, &ctx, err, sizeof(err)), 0);
    gcp_conf_free(c);
    struct gcp *g = ctx;
    ck_assert_ptr_nonnull(g->sm);
    ck_assert_ptr_nonnull(g->metadata);
    ck_assert_ptr_null(g->aux.tls_server_name);   /* names Secret Manager only */
    ck_assert_str_eq(g->project, "my-project");
    backend_gcp_ops.destroy(ctx);

    char *pem = new_pem(2048, NULL), *sa = sa_json(pem, NULL, NULL);
    snprintf(text, sizeof(text), "{" T ", \"credentials_file\": \"%s\"}",
             write_file("sa.json", sa));
    ck_assert_msg(parse(text, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(backend_gcp_ops.create(&env, c, &ctx, err, sizeof(err)), 0);
    gcp_conf_free(c);
    g = ctx;
    ck_assert_ptr_null(g->metadata);
    ck_assert_str_eq(g->identity, "service account " EMAIL);
    backend_gcp_ops.destroy(ctx);
    free(sa);
    free(pem);
    http_engine_free(http);
}
END_TEST

static Suite *gcp_suite(void)
{
    Suite *s = suite_create("gcp");
    TCase *tc = tcase_create("gcp");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, crc32c_vectors);
    tcase_add_test(tc, conf_metadata_default);
    tcase_add_test(tc, conf_adc_order);
    tcase_add_test(tc, conf_errors);
    tcase_add_test(tc, cred_types);
    tcase_add_test(tc, cred_errors);
    tcase_add_test(tc, refs);
    tcase_add_test(tc, jwt_signed_and_verified);
    tcase_add_test(tc, jwt_refused_keys);
    tcase_add_test(tc, oauth_answers);
    tcase_add_test(tc, iam_answers);
    tcase_add_test(tc, subject_tokens);
    tcase_add_test(tc, access_values);
    tcase_add_test(tc, access_errors);
    tcase_add_test(tc, due_rule);
    tcase_add_test(tc, live_instance);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(gcp_suite)
