/* test_azure.c - the Azure Key Vault provider's pure parts (azure_i.h):
 * its config with the environment fallbacks, reference checks, the
 * WWW-Authenticate parser and the resource rule, Entra's and IMDS's token
 * answers, Get Secret answers with each attribute case and Key Vault's
 * errors, and when a token is due. No I/O but one live instance that
 * makes no request. */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/azure/azure.h"
#include "backends/azure/azure_i.h"
#include "backends/http/http.h"
#include "lib/ref.h"
#include "lib/secmem.h"
#include "ck_helpers.h"
#include "ck_main.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
#define VER "4387e9f3d6e14c459867679a90fd0f79"
#define VALUE "s3cr3t-db-passw0rd"

static char secret_file[64];

static void clear_env(void)
{
    unsetenv("AZURE_TENANT_ID");
    unsetenv("AZURE_CLIENT_ID");
    unsetenv("AZURE_CLIENT_SECRET");
    unsetenv("AZURE_FEDERATED_TOKEN_FILE");
    unsetenv("AZURE_AUTHORITY_HOST");
}

static void setup(void)
{
    ckh_setup_hardening();
    clear_env();
    snprintf(secret_file, sizeof(secret_file), "/tmp/rs-test-azure.XXXXXX");
    int fd = mkstemp(secret_file);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "client-s3cr3t\n", 14), 14);
    close(fd);
}

static void teardown(void)
{
    unlink(secret_file);
}

/* azure_parse of text (with %s for the secret file, if any): rc, err. */
static int parse(const char *text, struct azure_conf **c, char *err, size_t errlen)
{
    char buf[2048];
    const char *at = strstr(text, "%s");
    if (at)
        snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - text), text, secret_file, at + 2);
    else
        snprintf(buf, sizeof(buf), "%s", text);
    void *conf = NULL;
    int rc = ckh_parse(azure_parse, buf, &conf, err, errlen);
    *c = conf;
    return rc;
}

#define URL "\"type\": \"azure\", \"vault_url\": \"https://myvault.vault.azure.net\""

/* ---- config ---- */

START_TEST(conf_methods)
{
    struct azure_conf *c = NULL;
    char err[512];

    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \""
                        TENANT "\", \"client_id\": \"" CLIENT "\", \"client_secret_file\": \"%s\"}}",
                        &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(c->method, AZURE_CLIENT_SECRET);
    ck_assert_str_eq(c->tenant_id, TENANT);
    ck_assert_str_eq(c->client_id, CLIENT);
    ck_assert_str_eq(c->client_secret_file, secret_file);
    ck_assert(!c->secret_env);
    ck_assert_str_eq(c->authority_host, "https://login.microsoftonline.com");
    ck_assert_ptr_null(c->imds_endpoint);
    ck_assert_ptr_null(c->challenge_host);
    ck_assert_str_eq(c->http.address, "https://myvault.vault.azure.net");
    azure_conf_free(c);

    ck_assert_msg(parse("{" URL ", \"challenge_resource\": \"https://Vault.Azure.NET/\", \"auth\": "
                        "{\"method\": \"workload_identity\", \"tenant_id\": \"contoso.onmicrosoft.com\", "
                        "\"client_id\": \"" CLIENT "\", \"federated_token_file\": \"%s\", "
                        "\"authority_host\": \"login.microsoftonline.us/\"}}", &c, err,
                        sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(c->method, AZURE_WORKLOAD_IDENTITY);
    ck_assert_str_eq(c->tenant_id, "contoso.onmicrosoft.com");
    ck_assert_str_eq(c->federated_token_file, secret_file);
    ck_assert_str_eq(c->authority_host, "https://login.microsoftonline.us");   /* https added */
    ck_assert_str_eq(c->challenge_host, "vault.azure.net");
    azure_conf_free(c);

    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"managed_identity\"}}", &c, err,
                        sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(c->method, AZURE_MANAGED_IDENTITY);
    ck_assert_ptr_null(c->client_id);   /* system-assigned */
    ck_assert_ptr_null(c->tenant_id);
    ck_assert_ptr_null(c->authority_host);
    ck_assert_str_eq(c->imds_endpoint, "http://169.254.169.254/metadata/identity/oauth2/token");
    azure_conf_free(c);

    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"managed_identity\", \"client_id\": \""
                        CLIENT "\", \"imds_endpoint\": \"https://127.0.0.1:8443/metadata/identity/"
                        "oauth2/token\"}}", &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->client_id, CLIENT);
    ck_assert_str_eq(c->imds_endpoint, "https://127.0.0.1:8443/metadata/identity/oauth2/token");
    azure_conf_free(c);

    /* default with nothing set: only managed identity can work */
    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"default\"}}", &c, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_int_eq(c->method, AZURE_DEFAULT);
    ck_assert_ptr_null(c->tenant_id);
    ck_assert_ptr_null(c->client_id);
    ck_assert_ptr_null(c->client_secret_file);
    ck_assert(!c->secret_env);
    ck_assert_ptr_null(c->federated_token_file);
    ck_assert_str_eq(c->authority_host, "https://login.microsoftonline.com");
    ck_assert_ptr_nonnull(c->imds_endpoint);
    azure_conf_free(c);
}
END_TEST

/* Each key falls back to the variable the SDKs read; the config wins. */
START_TEST(conf_env_fallbacks)
{
    struct azure_conf *c = NULL;
    char err[512];

    setenv("AZURE_TENANT_ID", TENANT, 1);
    setenv("AZURE_CLIENT_ID", CLIENT, 1);
    setenv("AZURE_CLIENT_SECRET", "env-s3cr3t", 1);
    setenv("AZURE_AUTHORITY_HOST", "https://login.chinacloudapi.cn/", 1);
    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"client_secret\"}}", &c, err,
                        sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->tenant_id, TENANT);
    ck_assert_str_eq(c->client_id, CLIENT);
    ck_assert_ptr_null(c->client_secret_file);
    ck_assert(c->secret_env);
    ck_assert_str_eq(c->authority_host, "https://login.chinacloudapi.cn");
    azure_conf_free(c);

    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \"t2\", "
                        "\"client_secret_file\": \"%s\", \"authority_host\": "
                        "\"https://login.microsoftonline.com\"}}", &c, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(c->tenant_id, "t2");
    ck_assert_str_eq(c->client_secret_file, secret_file);
    ck_assert(!c->secret_env);
    ck_assert_str_eq(c->authority_host, "https://login.microsoftonline.com");
    azure_conf_free(c);

    /* managed identity: AZURE_CLIENT_ID names a user-assigned identity,
     * as DefaultAzureCredential reads it */
    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"managed_identity\"}}", &c, err,
                        sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->client_id, CLIENT);
    azure_conf_free(c);

    setenv("AZURE_FEDERATED_TOKEN_FILE", secret_file, 1);
    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"workload_identity\"}}", &c, err,
                        sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c->federated_token_file, secret_file);
    azure_conf_free(c);

    ck_assert_msg(parse("{" URL ", \"auth\": {\"method\": \"default\"}}", &c, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(c->tenant_id, TENANT);
    ck_assert(c->secret_env);
    ck_assert_str_eq(c->federated_token_file, secret_file);
    azure_conf_free(c);

    /* an empty variable counts as unset */
    setenv("AZURE_TENANT_ID", "", 1);
    ck_assert_int_eq(parse("{" URL ", \"auth\": {\"method\": \"client_secret\"}}", &c, err,
                           sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "auth.tenant_id: missing, and AZURE_TENANT_ID is not set");
}
END_TEST

START_TEST(conf_errors)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"{\"type\": \"azure\", \"auth\": {\"method\": \"default\"}}",
         "vault_url: missing (e.g. \"https://myvault.vault.azure.net\")"},
        {"{\"type\": \"azure\", \"vault_url\": \"http://127.0.0.1:1\", \"auth\": {\"method\": "
         "\"default\"}}",
         "vault_url: must be https (a bearer token never crosses plain http)"},
        {"{\"type\": \"azure\", \"vault_url\": \"ftp://x\"}", "vault_url: scheme must be https or http"},
        {"{" URL "}", "auth: missing (e.g. {\"method\": \"default\"})"},
        {"{" URL ", \"auth\": {}}",
         "auth.method: missing (client_secret, workload_identity, managed_identity or default)"},
        {"{" URL ", \"auth\": {\"method\": \"cert\"}}",
         "auth.method: expected one of client_secret, workload_identity, managed_identity, default"},
        {"{" URL ", \"auth\": {\"method\": \"managed_identity\", \"tenant_id\": \"t\"}}",
         "auth.tenant_id: unknown key for the managed_identity method"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\", \"federated_token_file\": \"/x\"}}",
         "auth.federated_token_file: unknown key for the client_secret method"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\"}}",
         "auth.tenant_id: missing, and AZURE_TENANT_ID is not set"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \"t\"}}",
         "auth.client_id: missing, and AZURE_CLIENT_ID is not set"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \"t\", \"client_id\": "
         "\"c\"}}",
         "auth.client_secret_file: missing, and AZURE_CLIENT_SECRET is not set"},
        {"{" URL ", \"auth\": {\"method\": \"workload_identity\", \"tenant_id\": \"t\", "
         "\"client_id\": \"c\"}}",
         "auth.federated_token_file: missing, and AZURE_FEDERATED_TOKEN_FILE is not set"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \"t/../x\", "
         "\"client_id\": \"c\", \"client_secret_file\": \"%s\"}}",
         "auth.tenant_id: expected an id (letters, digits, '-', '.', '_'; at most 253 characters)"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \"t\", "
         "\"client_id\": \"c\", \"client_secret_file\": \"/nonexistent/s\"}}",
         "auth.client_secret_file: /nonexistent/s: No such file or directory"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \"t\", "
         "\"client_id\": \"c\", \"client_secret_file\": \"/dev/null\"}}",
         "auth.client_secret_file: /dev/null: not a regular file"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \"t\", "
         "\"client_id\": \"c\", \"client_secret_file\": \"%s\", \"authority_host\": "
         "\"http://login.microsoftonline.com\"}}",
         "auth.authority_host: must be https (the client secret or federated token goes there)"},
        {"{" URL ", \"auth\": {\"method\": \"client_secret\", \"tenant_id\": \"t\", "
         "\"client_id\": \"c\", \"client_secret_file\": \"%s\", \"authority_host\": 5}}",
         "auth.authority_host: expected an https URL such as \"https://login.microsoftonline.com\""},
        {"{" URL ", \"auth\": {\"method\": \"managed_identity\", \"imds_endpoint\": \"169.254\"}}",
         "auth.imds_endpoint: expected a URL such as "
         "\"http://169.254.169.254/metadata/identity/oauth2/token\""},
        {"{" URL ", \"challenge_resource\": \"vault.azure.net\", \"auth\": {\"method\": "
         "\"default\"}}",
         "challenge_resource: expected the resource URL Key Vault's challenge names, such as "
         "\"https://vault.azure.net\""},
        {"{" URL ", \"resource\": \"x\", \"auth\": {\"method\": \"default\"}}",
         "resource: unknown key"},
    };
    struct azure_conf *c = NULL;
    char err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(parse(cases[i].text, &c, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_null(c);
        ck_assert_msg(strcmp(err, cases[i].err) == 0, "case %zu:\n got: %s\nwant: %s", i, err,
                      cases[i].err);
    }
    setenv("AZURE_AUTHORITY_HOST", "http://login.example", 1);
    ck_assert_int_eq(parse("{" URL ", \"auth\": {\"method\": \"default\"}}", &c, err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, "auth.authority_host: AZURE_AUTHORITY_HOST: must be https (the client "
                          "secret or federated token goes there)");
    unsetenv("AZURE_AUTHORITY_HOST");
    setenv("AZURE_FEDERATED_TOKEN_FILE", "relative/token", 1);
    ck_assert_int_eq(parse("{" URL ", \"auth\": {\"method\": \"workload_identity\", \"tenant_id\": "
                           "\"t\", \"client_id\": \"c\"}}", &c, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "auth.federated_token_file: not set, and AZURE_FEDERATED_TOKEN_FILE "
                          "(relative/token) is not an absolute path");
    setenv("AZURE_CLIENT_ID", "bad id", 1);
    ck_assert_int_eq(parse("{" URL ", \"auth\": {\"method\": \"managed_identity\"}}", &c, err,
                           sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "auth.client_id: not set, and AZURE_CLIENT_ID is not an id (letters, "
                          "digits, '-', '.', '_')");
}
END_TEST

/* ---- references ---- */

static int check_ref(const char *s, char *err, size_t errlen)
{
    struct secret_ref ref;
    ck_assert_int_eq(ref_parse(s, &ref, err, errlen), 0);
    err[0] = '\0';
    int rc = backend_azure_ops.check_ref(&ref, err, errlen);
    ref_cleanup(&ref);
    return rc;
}

START_TEST(refs)
{
    char err[256], name[200];
    ck_assert_int_eq(check_ref("kv:db-password", err, sizeof(err)), 0);
    ck_assert_int_eq(check_ref("kv:A-1?version=" VER, err, sizeof(err)), 0);
    ck_assert_int_eq(check_ref("kv:a?version=4387E9F3D6E14C459867679A90FD0F79#user", err,
                               sizeof(err)), 0);
    memcpy(name, "kv:", 3);
    memset(name + 3, 'a', 128);
    name[3 + 127] = '\0';   /* 127 characters: the longest name */
    ck_assert_int_eq(check_ref(name, err, sizeof(err)), 0);
    name[3 + 127] = 'a';
    name[3 + 128] = '\0';
    ck_assert_int_eq(check_ref(name, err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(check_ref("kv:db_password", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "azure secret name 'db_password': expected 1 to 127 letters, digits and "
                          "'-'");
    ck_assert_int_eq(check_ref("kv:a/b", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(check_ref("kv:a.b", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(check_ref("kv:caf\xc3\xa9", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(check_ref("kv:a?version=3", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "azure ?version= must be a version id of 32 hex digits, got '3'");
    ck_assert_int_eq(check_ref("kv:a?version=4387e9f3d6e14c459867679a90fd0f7g", err, sizeof(err)),
                     -EINVAL);
    ck_assert_int_eq(check_ref("kv:a?version=" VER "0", err, sizeof(err)), -EINVAL);
    ck_assert_uint_eq(backend_azure_ops.caps & BACKEND_CAP_STAGES, 0);
    ck_assert_uint_ne(backend_azure_ops.caps & BACKEND_CAP_VERSIONS, 0);

    struct secret_ref ref;
    char path[256];
    ck_assert_int_eq(ref_parse("kv:db?version=" VER, &ref, err, sizeof(err)), 0);
    ck_assert_int_eq(azure_secret_path(&ref, path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/secrets/db/" VER "?api-version=7.4");
    ck_assert_int_eq(azure_secret_path(&ref, path, 20), -ENAMETOOLONG);
    ref_cleanup(&ref);
    ck_assert_int_eq(ref_parse("kv:db", &ref, err, sizeof(err)), 0);
    ck_assert_int_eq(azure_secret_path(&ref, path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/secrets/db?api-version=7.4");
    ref_cleanup(&ref);
}
END_TEST

/* ---- the challenge ---- */

static int challenge(const char *hdr, struct azure_challenge *c, char *err, size_t errlen)
{
    err[0] = '\0';
    return azure_challenge_parse(hdr, c, err, errlen);
}

START_TEST(challenge_forms)
{
    struct azure_challenge c;
    char err[256];

    /* Key Vault's own */
    ck_assert_int_eq(challenge("Bearer authorization=\"https://login.windows.net/" TENANT "\", "
                               "resource=\"https://vault.azure.net\"", &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.authorization, "https://login.windows.net/" TENANT);
    ck_assert_str_eq(c.resource, "https://vault.azure.net");
    ck_assert_str_eq(c.scope, "");
    ck_assert_str_eq(c.tenant, TENANT);

    /* authorization_uri, scope, other case, no space after the comma, bare values */
    ck_assert_int_eq(challenge("bearer Authorization_URI=https://login.microsoftonline.com/" TENANT
                               "/oauth2/authorize,Scope=\"https://vault.azure.net/.default\"", &c,
                               err, sizeof(err)), 0);
    ck_assert_str_eq(c.authorization, "https://login.microsoftonline.com/" TENANT
                                      "/oauth2/authorize");
    ck_assert_str_eq(c.scope, "https://vault.azure.net/.default");
    ck_assert_str_eq(c.resource, "");
    ck_assert_str_eq(c.tenant, TENANT);

    /* quoted-pair escapes; unknown parameters (claims with its '=' padding) skipped;
     * authorization wins over authorization_uri */
    ck_assert_int_eq(challenge("Bearer realm=\"a \\\"b\\\", c\", authorization_uri=\"https://x/u\", "
                               "claims=\"eyJhY2Nlc3NfdG9rZW4iOnt9fQ==\", authorization="
                               "\"https://login/t\", resource=\"https://vault.az\\ure.net\"", &c,
                               err, sizeof(err)), 0);
    ck_assert_str_eq(c.authorization, "https://login/t");
    ck_assert_str_eq(c.resource, "https://vault.azure.net");
    ck_assert_str_eq(c.tenant, "t");

    /* the Bearer challenge among others, in either order */
    ck_assert_int_eq(challenge("PoP nonce=\"abc\", realm=x, Bearer authorization=\"https://l/" TENANT
                               "\", resource=\"https://vault.azure.net\", Basic realm=\"r\"", &c,
                               err, sizeof(err)), 0);
    ck_assert_str_eq(c.resource, "https://vault.azure.net");
    ck_assert_int_eq(challenge("Negotiate abc==, Basic, Bearer authorization=\"https://l/t\", "
                               "scope=\"https://vault.azure.net/.default\"", &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.scope, "https://vault.azure.net/.default");

    /* an authorization URI without a usable tenant still parses */
    ck_assert_int_eq(challenge("Bearer authorization=\"https://login\", resource=\"https://r\"", &c,
                               err, sizeof(err)), 0);
    ck_assert_str_eq(c.tenant, "");
}
END_TEST

START_TEST(challenge_refused)
{
    static const struct {
        const char *hdr, *err;
    } cases[] = {
        {NULL, "no Bearer challenge in WWW-Authenticate"},
        {"", "no Bearer challenge in WWW-Authenticate"},
        {"Basic realm=\"kv\"", "no Bearer challenge in WWW-Authenticate"},
        {"Bearer", "Bearer challenge without authorization or authorization_uri"},
        {"Bearer resource=\"https://vault.azure.net\"",
         "Bearer challenge without authorization or authorization_uri"},
        {"Bearer authorization=\"https://login/t\"", "Bearer challenge without resource or scope"},
        {"Bearer authorization=\"https://login/t\", resource=\"\"",
         "Bearer challenge without resource or scope"},
        {"Bearer authorization=\"https://login/t\", resource=\"https://a\", resource=\"https://b\"",
         "challenge names resource twice"},
        {"Bearer authorization=\"https://login/t\", Authorization=\"https://x\", resource=\"r\"",
         "challenge names Authorization twice"},
        {"Bearer authorization=\"https://login/t, resource=\"https://vault.azure.net\"",
         "malformed WWW-Authenticate (text after a value)"},
        {"Bearer authorization=\"https://login/t\", resource=\"https://vault.azure.net",
         "malformed WWW-Authenticate (a bad quoted value)"},
        {"Bearer authorization=\"https://login/t\", resource=\"https://v\x01\"",
         "malformed WWW-Authenticate (a bad quoted value)"},
        {"Bearer authorization=\"x\" junk, resource=\"y\"",
         "malformed WWW-Authenticate (text after a value)"},
        {"=x", "malformed WWW-Authenticate (expected an auth scheme)"},
    };
    struct azure_challenge c;
    char err[256], big[1200];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(challenge(cases[i].hdr, &c, err, sizeof(err)), -EPROTO);
        ck_assert_msg(strcmp(err, cases[i].err) == 0, "case %zu:\n got: %s\nwant: %s", i, err,
                      cases[i].err);
    }
    int n = snprintf(big, sizeof(big), "Bearer authorization=\"https://l/t\", resource=\"https://");
    memset(big + n, 'a', 600);
    snprintf(big + n + 600, sizeof(big) - (size_t)n - 600, "\"");
    ck_assert_int_eq(challenge(big, &c, err, sizeof(err)), -EPROTO);
    ck_assert_str_eq(err, "challenge's resource is longer than 511 bytes");
    /* a long parameter we do not keep is fine */
    n = snprintf(big, sizeof(big), "Bearer authorization=\"https://l/t\", resource=\"https://r\", "
                 "claims=\"");
    memset(big + n, 'b', 900);
    snprintf(big + n + 900, sizeof(big) - (size_t)n - 900, "\"");
    ck_assert_int_eq(challenge(big, &c, err, sizeof(err)), 0);
}
END_TEST

START_TEST(host_rule)
{
    /* the SDKs' rule: the vault's host ends with "." + the resource's host */
    ck_assert(azure_host_allowed("vault.azure.net", "myvault.vault.azure.net", NULL));
    ck_assert(azure_host_allowed("VAULT.azure.net", "MyVault.Vault.Azure.Net", NULL));
    ck_assert(azure_host_allowed("azure.net", "myvault.vault.azure.net", NULL));
    ck_assert(azure_host_allowed("vault.azure.cn", "x.vault.azure.cn", NULL));
    ck_assert(azure_host_allowed("myvault.vault.azure.net", "myvault.vault.azure.net", NULL));
    /* not at a dot: another domain */
    ck_assert(!azure_host_allowed("vault.azure.net", "evilvault.azure.net", NULL));
    ck_assert(!azure_host_allowed("vault.azure.net", "vault.azure.net.evil.example", NULL));
    ck_assert(!azure_host_allowed("myvault.vault.azure.net", "vault.azure.net", NULL));
    ck_assert(!azure_host_allowed("evil.example", "myvault.vault.azure.net", NULL));
    ck_assert(!azure_host_allowed("", "myvault.vault.azure.net", NULL));
    ck_assert(!azure_host_allowed("net.", "myvault.vault.azure.net", NULL));
    /* IP literals have no parents: only the address itself or the configured resource */
    ck_assert(!azure_host_allowed("vault.azure.net", "127.0.0.1", NULL));
    ck_assert(!azure_host_allowed("0.0.1", "127.0.0.1", NULL));
    ck_assert(azure_host_allowed("127.0.0.1", "127.0.0.1", NULL));
    ck_assert(!azure_host_allowed("1", "[::1]", NULL));
    ck_assert(azure_host_allowed("vault.azure.net", "127.0.0.1", "vault.azure.net"));
    ck_assert(azure_host_allowed("Vault.Azure.Net", "kv.internal", "vault.azure.net"));
    ck_assert(!azure_host_allowed("evil.example", "127.0.0.1", "vault.azure.net"));
}
END_TEST

START_TEST(guess_scopes)
{
    static const struct {
        const char *vault_host, *allowed, *want;
    } cases[] = {
        {"myvault.vault.azure.net", NULL, "https://vault.azure.net/.default"},
        {"x.vault.azure.cn", NULL, "https://vault.azure.cn/.default"},
        {"myvault.vault.usgovcloudapi.net", NULL, "https://vault.usgovcloudapi.net/.default"},
        {"127.0.0.1", "vault.azure.net", "https://vault.azure.net/.default"},
        {"kv.internal", "vault.azure.net", "https://vault.azure.net/.default"},
        {"127.0.0.1", NULL, NULL},
        {"[::1]", NULL, NULL},
        {"::1", NULL, NULL},
        {"localhost", NULL, NULL},
        {"kv.internal", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = (char *)1;
        ck_assert_int_eq(azure_guess_scope(cases[i].vault_host, cases[i].allowed, &s), 0);
        if (!cases[i].want) {
            ck_assert_msg(s == NULL, "%s: guessed %s", cases[i].vault_host, s);
            continue;
        }
        ck_assert_str_eq(s, cases[i].want);
        /* A guess is never a scope the resource rule would refuse: the
         * guessed token could only ever be used where the challenge's
         * own token could. */
        char host[128];
        snprintf(host, sizeof(host), "%.*s", (int)(strlen(s) - strlen("https://") -
                                                   strlen("/.default")), s + strlen("https://"));
        ck_assert(azure_host_allowed(host, cases[i].vault_host, cases[i].allowed));
        free(s);
    }
}
END_TEST

START_TEST(challenge_scopes)
{
    struct azure_challenge c;
    char err[512], scope[AZURE_URL_MAX], res[AZURE_URL_MAX];

    memset(&c, 0, sizeof(c));
    snprintf(c.resource, sizeof(c.resource), "https://vault.azure.net/");
    ck_assert_int_eq(azure_challenge_scope(&c, "myvault.vault.azure.net", NULL, scope,
                                           sizeof(scope), err, sizeof(err)), 0);
    ck_assert_str_eq(scope, "https://vault.azure.net/.default");
    azure_scope_resource(scope, res, sizeof(res));
    ck_assert_str_eq(res, "https://vault.azure.net");

    /* the challenge's scope wins over its resource */
    snprintf(c.scope, sizeof(c.scope), "https://vault.azure.cn/.default");
    ck_assert_int_eq(azure_challenge_scope(&c, "x.vault.azure.cn", NULL, scope, sizeof(scope),
                                           err, sizeof(err)), 0);
    ck_assert_str_eq(scope, "https://vault.azure.cn/.default");
    ck_assert_int_eq(azure_challenge_scope(&c, "x.vault.azure.net", NULL, scope, sizeof(scope),
                                           err, sizeof(err)), -EACCES);

    /* a foreign resource: nothing asked, nothing sent */
    memset(&c, 0, sizeof(c));
    snprintf(c.resource, sizeof(c.resource), "https://evil.example");
    scope[0] = '\0';
    ck_assert_int_eq(azure_challenge_scope(&c, "127.0.0.1", "vault.azure.net", scope,
                                           sizeof(scope), err, sizeof(err)), -EACCES);
    ck_assert_str_eq(scope, "");
    ck_assert_str_eq(err, "Key Vault's challenge names resource 'evil.example', which is neither "
                          "127.0.0.1 nor a parent domain of it: no token sent (challenge_resource "
                          "trusts one explicitly)");
    snprintf(c.resource, sizeof(c.resource), "https://vault.azure.net");
    ck_assert_int_eq(azure_challenge_scope(&c, "127.0.0.1", NULL, scope, sizeof(scope), err,
                                           sizeof(err)), -EACCES);
    ck_assert_int_eq(azure_challenge_scope(&c, "127.0.0.1", "vault.azure.net", scope,
                                           sizeof(scope), err, sizeof(err)), 0);
    ck_assert_str_eq(scope, "https://vault.azure.net/.default");

    /* not a URL */
    snprintf(c.resource, sizeof(c.resource), "vault");
    ck_assert_int_eq(azure_challenge_scope(&c, "v.vault", NULL, scope, sizeof(scope), err,
                                           sizeof(err)), -EPROTO);
    ck_assert_str_eq(err, "Key Vault's challenge names no usable resource ('vault/.default')");
    azure_scope_resource("https://r/x", res, sizeof(res));
    ck_assert_str_eq(res, "https://r/x");
}
END_TEST

/* ---- token answers ---- */

START_TEST(entra_answers)
{
    struct http_response r;
    char err[512], *tok = NULL;
    long long ttl = -1;

    ckh_response(&r, 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                      "\"access_token\":\"eyJ0eXAi.s3cr3t-tok.sig\"}");
    ck_assert_int_eq(azure_entra_answer(&r, &tok, &ttl, err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "eyJ0eXAi.s3cr3t-tok.sig");
    ck_assert_int_eq(ttl, 3599);
    secmem_free(tok);
    http_response_cleanup(&r);

    /* a string expires_in is taken too; no token_type is fine */
    ckh_response(&r, 200, "{\"expires_in\":\"600\",\"access_token\":\"t\"}");
    ck_assert_int_eq(azure_entra_answer(&r, &tok, &ttl, err, sizeof(err)), 0);
    ck_assert_int_eq(ttl, 600);
    secmem_free(tok);
    http_response_cleanup(&r);

    static const struct {
        const char *body, *err;
    } bad[] = {
        {"{\"expires_in\":3599}", "no access_token in the answer"},
        {"{\"expires_in\":3599,\"access_token\":\"\"}", "no access_token in the answer"},
        {"{\"expires_in\":3599,\"access_token\":\"s3cr3t\\r\\nX-Evil: 1\"}",
         "access_token holds characters a header cannot carry"},
        {"{\"expires_in\":3599,\"access_token\":\"a b\"}",
         "access_token holds characters a header cannot carry"},
        {"{\"expires_in\":3599,\"access_token\":\"s3cr3t\",\"token_type\":\"pop\"}",
         "token_type is not Bearer"},
        {"{\"expires_in\":0,\"access_token\":\"s3cr3t\"}", "no usable expires_in in the answer"},
        {"{\"expires_in\":-5,\"access_token\":\"s3cr3t\"}", "no usable expires_in in the answer"},
        {"{\"expires_in\":\"1h\",\"access_token\":\"s3cr3t\"}", "no usable expires_in in the answer"},
        {"{\"expires_in\":1.5,\"access_token\":\"s3cr3t\"}", "no usable expires_in in the answer"},
        {"{\"access_token\":\"s3cr3t\"}", "no usable expires_in in the answer"},
        {"[\"s3cr3t\"]", "HTTP 200 with a body that is not a JSON object"},
        {"s3cr3t", "HTTP 200 with a body that is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ckh_response(&r, 200, bad[i].body);
        tok = NULL;
        ck_assert_int_eq(azure_entra_answer(&r, &tok, &ttl, err, sizeof(err)), -EPROTO);
        ck_assert_ptr_null(tok);
        ck_assert_msg(strcmp(err, bad[i].err) == 0, "case %zu: %s", i, err);
        http_response_cleanup(&r);
    }

    /* errors: one line, the refusal is -EACCES, an outage -EAGAIN */
    ckh_response(&r, 401, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid "
                      "client secret provided. Ensure the secret being sent in the request is the "
                      "client secret value.\\r\\nTrace ID: 0f\\r\\nCorrelation ID: 1a\\r\\n"
                      "Timestamp: 2024-01-01 00:00:00Z\",\"error_codes\":[7000215],"
                      "\"timestamp\":\"2024-01-01 00:00:00Z\",\"trace_id\":\"0f\","
                      "\"correlation_id\":\"1a\",\"error_uri\":\"https://login/error?code=7000215\"}");
    ck_assert_int_eq(azure_entra_answer(&r, &tok, &ttl, err, sizeof(err)), -EACCES);
    ck_assert_str_eq(err, "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided. "
                          "Ensure the secret being sent in the request is the client secret value.");
    http_response_cleanup(&r);
    ckh_response(&r, 400, "{\"error\":\"invalid_request\",\"error_description\":\"AADSTS90002: Tenant "
                      "'x' not found.\\u001b[31m\"}");
    ck_assert_int_eq(azure_entra_answer(&r, &tok, &ttl, err, sizeof(err)), -EACCES);
    ck_assert_str_eq(err, "HTTP 400 invalid_request: AADSTS90002: Tenant 'x' not found.\\x1b[31m");
    http_response_cleanup(&r);
    ckh_response(&r, 429, "{\"error\":\"temporarily_unavailable\"}");
    ck_assert_int_eq(azure_entra_answer(&r, &tok, &ttl, err, sizeof(err)), -EAGAIN);
    ck_assert_str_eq(err, "HTTP 429 temporarily_unavailable");
    http_response_cleanup(&r);
    ckh_response(&r, 502, "<html>Bad Gateway</html>");
    ck_assert_int_eq(azure_entra_answer(&r, &tok, &ttl, err, sizeof(err)), -EAGAIN);
    ck_assert_str_eq(err, "HTTP 502 (not a JSON answer)");
    http_response_cleanup(&r);
    ckh_response(&r, 501, "{}");
    ck_assert_int_eq(azure_entra_answer(&r, &tok, &ttl, err, sizeof(err)), -EIO);
    ck_assert_str_eq(err, "HTTP 501 error");
    http_response_cleanup(&r);
}
END_TEST

START_TEST(imds_answers)
{
    struct http_response r;
    char err[512], cid[64], *tok = NULL;
    long long ttl = -1;

    ckh_response(&r, 200, "{\"access_token\":\"eyJ0.s3cr3t.x\",\"client_id\":\"" CLIENT "\","
                      "\"expires_in\":\"86399\",\"expires_on\":\"1700086399\","
                      "\"ext_expires_in\":\"86399\",\"not_before\":\"1699999700\","
                      "\"resource\":\"https://vault.azure.net\",\"token_type\":\"Bearer\"}");
    ck_assert_int_eq(azure_imds_answer(&r, 1700000000, &tok, &ttl, cid, sizeof(cid), err,
                                       sizeof(err)), 0);
    ck_assert_str_eq(tok, "eyJ0.s3cr3t.x");
    ck_assert_int_eq(ttl, 86399);
    ck_assert_str_eq(cid, CLIENT);
    secmem_free(tok);
    http_response_cleanup(&r);

    /* only expires_on (an epoch string), no client_id */
    ckh_response(&r, 200, "{\"access_token\":\"t\",\"expires_on\":\"1700003600\"}");
    ck_assert_int_eq(azure_imds_answer(&r, 1700000000, &tok, &ttl, cid, sizeof(cid), err,
                                       sizeof(err)), 0);
    ck_assert_int_eq(ttl, 3600);
    ck_assert_str_eq(cid, "");
    secmem_free(tok);
    http_response_cleanup(&r);

    /* a number where a string is expected is taken; nonsense is not */
    ckh_response(&r, 200, "{\"access_token\":\"t\",\"expires_in\":120}");
    ck_assert_int_eq(azure_imds_answer(&r, 1700000000, &tok, &ttl, cid, sizeof(cid), err,
                                       sizeof(err)), 0);
    ck_assert_int_eq(ttl, 120);
    secmem_free(tok);
    http_response_cleanup(&r);
    static const char *const bad[] = {
        "{\"access_token\":\"s3cr3t\",\"expires_in\":\"12a\"}",
        "{\"access_token\":\"s3cr3t\",\"expires_in\":\"\"}",
        "{\"access_token\":\"s3cr3t\",\"expires_in\":\"-3\"}",
        "{\"access_token\":\"s3cr3t\",\"expires_in\":\" 30\"}",
        "{\"access_token\":\"s3cr3t\",\"expires_on\":\"1699999999\"}",   /* in the past */
        "{\"access_token\":\"s3cr3t\",\"expires_in\":\"99999999999999999999\"}",
        "{\"access_token\":\"s3cr3t\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ckh_response(&r, 200, bad[i]);
        tok = NULL;
        ck_assert_int_eq(azure_imds_answer(&r, 1700000000, &tok, &ttl, cid, sizeof(cid), err,
                                           sizeof(err)), -EPROTO);
        ck_assert_ptr_null(tok);
        ck_assert_msg(strcmp(err, "no usable expires_in or expires_on in the answer") == 0,
                      "case %zu: %s", i, err);
        http_response_cleanup(&r);
    }
    /* a huge lifetime is clamped, not overflowed */
    ckh_response(&r, 200, "{\"access_token\":\"t\",\"expires_in\":\"999999999999\"}");
    ck_assert_int_eq(azure_imds_answer(&r, 1700000000, &tok, &ttl, cid, sizeof(cid), err,
                                       sizeof(err)), 0);
    ck_assert_int_eq(ttl, AZURE_MAX_TTL_S);
    secmem_free(tok);
    http_response_cleanup(&r);

    ckh_response(&r, 400, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}");
    ck_assert_int_eq(azure_imds_answer(&r, 0, &tok, &ttl, cid, sizeof(cid), err, sizeof(err)),
                     -EACCES);
    ck_assert_str_eq(err, "HTTP 400 invalid_request: Identity not found");
    http_response_cleanup(&r);
    ckh_response(&r, 400, "{\"error\":\"bad_request_102\",\"error_description\":\"Required metadata "
                      "header not specified\"}");
    ck_assert_int_eq(azure_imds_answer(&r, 0, &tok, &ttl, cid, sizeof(cid), err, sizeof(err)),
                     -EACCES);
    ck_assert_str_eq(err, "HTTP 400 bad_request_102: Required metadata header not specified");
    http_response_cleanup(&r);
    /* IMDS is updating (410) or not there yet (404): worth retrying */
    ckh_response(&r, 410, "");
    ck_assert_int_eq(azure_imds_answer(&r, 0, &tok, &ttl, cid, sizeof(cid), err, sizeof(err)),
                     -EAGAIN);
    ck_assert_str_eq(err, "HTTP 410 (not a JSON answer)");
    http_response_cleanup(&r);
    ckh_response(&r, 500, "{\"error\":\"unknown_error\",\"error_description\":\"x\"}");
    ck_assert_int_eq(azure_imds_answer(&r, 0, &tok, &ttl, cid, sizeof(cid), err, sizeof(err)),
                     -EAGAIN);
    http_response_cleanup(&r);
}
END_TEST

/* ---- secret answers ---- */

/* azure_secret_answer for ref text at now 1700000000, identity "client id C". */
static int secret(const char *text, long status, const char *body, struct fetch_result *out,
                  char *version, char *err, size_t errlen)
{
    struct secret_ref ref;
    struct http_response r;
    ck_assert_int_eq(ref_parse(text, &ref, err, errlen), 0);
    ckh_response(&r, status, body);
    err[0] = '\0';
    int rc = azure_secret_answer(&ref, &r, 1700000000, "client id C", out, version, err, errlen);
    ck_assert_ptr_null(strstr(err, VALUE));   /* no value in any message */
    ck_assert_ptr_null(strchr(err, '\n'));
    http_response_cleanup(&r);
    ref_cleanup(&ref);
    return rc;
}

#define ID "\"id\":\"https://myvault.vault.azure.net/secrets/db-password/" VER "\""

START_TEST(secret_values)
{
    struct fetch_result out;
    char err[512], ver[AZURE_VERSION_LEN + 1];

    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"" VALUE "\"," ID ",\"contentType\":"
                            "\"text/plain\",\"tags\":{\"env\":\"dev\"},\"attributes\":{\"enabled\":"
                            "true,\"nbf\":1493938000,\"exp\":1893456000,\"created\":1493938410,"
                            "\"updated\":1493938410,\"recoverableDays\":90,\"recoveryLevel\":"
                            "\"Recoverable+Purgeable\"}}", &out, ver, err, sizeof(err)), 0);
    ck_assert_uint_eq(out.value.len, strlen(VALUE));
    ck_assert_int_eq(memcmp(out.value.data, VALUE, out.value.len), 0);
    ck_assert_str_eq(ver, VER);
    ck_assert_str_eq(out.version, VER);   /* the version served, for /status */
    fetch_result_cleanup(&out);

    /* the reference's name in another case (Key Vault's names are case-blind),
     * a pinned version in capitals, no attributes, an empty value */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:DB-Password?version=4387E9F3D6E14C459867679A90FD0F79", 200,
                            "{\"value\":\"\",\"id\":\"https://v/secrets/db-password/"
                            "4387E9F3D6E14C459867679A90FD0F79\"}", &out, ver, err, sizeof(err)), 0);
    ck_assert_uint_eq(out.value.len, 0);
    ck_assert_str_eq(ver, VER);   /* lower case */
    ck_assert_str_eq(out.version, VER);
    fetch_result_cleanup(&out);

    /* null nbf / exp are absent ones */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"v\"," ID ",\"attributes\":"
                            "{\"enabled\":true,\"nbf\":null,\"exp\":null}}", &out, ver, err,
                            sizeof(err)), 0);
    fetch_result_cleanup(&out);

    /* larger than max_size: permanent */
    fetch_result_init(&out, 4);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"" VALUE "\"," ID "}", &out, ver,
                            err, sizeof(err)), -E2BIG);
    ck_assert_str_eq(err, "secret 'db-password': value larger than 4 bytes (max_size)");
    ck_assert(!out.retryable);
    fetch_result_cleanup(&out);
}
END_TEST

START_TEST(secret_attributes)
{
    struct fetch_result out;
    char err[512], ver[AZURE_VERSION_LEN + 1];

    /* disabled: never served */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"" VALUE "\"," ID ",\"attributes\":"
                            "{\"enabled\":false}}", &out, ver, err, sizeof(err)), -EACCES);
    ck_assert_str_eq(err, "secret 'db-password' is disabled (attributes.enabled is false)");
    ck_assert(!out.retryable);
    ck_assert_uint_eq(out.value.len, 0);
    ck_assert_str_eq(out.version, "");   /* nothing served */
    fetch_result_cleanup(&out);

    /* expired: exp in the past, or now */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"" VALUE "\"," ID ",\"attributes\":"
                            "{\"enabled\":true,\"exp\":1699999999}}", &out, ver, err, sizeof(err)),
                     -EKEYEXPIRED);
    ck_assert_str_eq(err, "secret 'db-password' expired at 2023-11-14T22:13:19Z (attributes.exp)");
    ck_assert(!out.retryable);
    ck_assert_uint_eq(out.value.len, 0);
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"v\"," ID ",\"attributes\":"
                            "{\"exp\":1700000000}}", &out, ver, err, sizeof(err)), -EKEYEXPIRED);
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"v\"," ID ",\"attributes\":"
                            "{\"exp\":1700000001}}", &out, ver, err, sizeof(err)), 0);
    fetch_result_cleanup(&out);

    /* not valid yet: not served, looked at again when it becomes valid */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"" VALUE "\"," ID ",\"attributes\":"
                            "{\"nbf\":1700000030}}", &out, ver, err, sizeof(err)), -EAGAIN);
    ck_assert_str_eq(err, "secret 'db-password' is not valid before 2023-11-14T22:13:50Z "
                          "(attributes.nbf)");
    ck_assert(out.retryable);
    ck_assert_int_eq(out.retry_after_ms, 30000);
    ck_assert_uint_eq(out.value.len, 0);
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"v\"," ID ",\"attributes\":"
                            "{\"nbf\":1800000000}}", &out, ver, err, sizeof(err)), -EAGAIN);
    ck_assert_int_eq(out.retry_after_ms, 300000);   /* at most every 5 minutes */
    fetch_result_cleanup(&out);
    /* fuzz_azure: a far nbf overflowed when turned into milliseconds */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"v\"," ID ",\"attributes\":"
                            "{\"nbf\":149393800093456000}}", &out, ver, err, sizeof(err)), -EAGAIN);
    ck_assert_int_eq(out.retry_after_ms, 300000);
    ck_assert_str_eq(err, "secret 'db-password' is not valid before 149393800093456000 "
                          "(attributes.nbf)");
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 200, "{\"value\":\"v\"," ID ",\"attributes\":"
                            "{\"nbf\":1700000000}}", &out, ver, err, sizeof(err)), 0);
    fetch_result_cleanup(&out);

    /* malformed answers */
    static const struct {
        const char *body, *err;
    } bad[] = {
        {"{\"value\":\"v\"," ID ",\"attributes\":{\"enabled\":\"yes\"}}",
         "secret 'db-password': malformed attributes (enabled, nbf, exp)"},
        {"{\"value\":\"v\"," ID ",\"attributes\":{\"exp\":\"1700000001\"}}",
         "secret 'db-password': malformed attributes (enabled, nbf, exp)"},
        {"{\"value\":\"v\"," ID ",\"attributes\":[]}",
         "secret 'db-password': attributes is not an object"},
        {"{" ID "}", "secret 'db-password': no string value in the answer"},
        {"{\"value\":{\"a\":1}," ID "}", "secret 'db-password': no string value in the answer"},
        {"{\"value\":\"" VALUE "\"}",
         "secret 'db-password': the answer's id does not name this secret and a version"},
        {"{\"value\":\"" VALUE "\",\"id\":\"https://v/secrets/other/" VER "\"}",
         "secret 'db-password': the answer's id does not name this secret and a version"},
        {"{\"value\":\"" VALUE "\",\"id\":\"https://v/secrets/db-password\"}",
         "secret 'db-password': the answer's id does not name this secret and a version"},
        {"{\"value\":\"" VALUE "\",\"id\":\"https://v/secrets/db-password/" VER "/x\"}",
         "secret 'db-password': the answer's id does not name this secret and a version"},
        {"{\"value\":\"" VALUE "\",\"id\":\"https://v/secrets/db-password-2/" VER "\"}",
         "secret 'db-password': the answer's id does not name this secret and a version"},
        {"\"" VALUE "\"", "secret 'db-password': HTTP 200 with a body that is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fetch_result_init(&out, 4096);
        ck_assert_int_eq(secret("kv:db-password", 200, bad[i].body, &out, ver, err, sizeof(err)),
                         -EPROTO);
        ck_assert_msg(strcmp(err, bad[i].err) == 0, "case %zu: %s", i, err);
        ck_assert_uint_eq(out.value.len, 0);
        fetch_result_cleanup(&out);
    }
    /* a pinned version answered by another version */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password?version=00000000000000000000000000000000", 200,
                            "{\"value\":\"v\"," ID "}", &out, ver, err, sizeof(err)), -EPROTO);
    ck_assert_str_eq(err, "secret 'db-password' version 00000000000000000000000000000000: the "
                          "answer is for version " VER);
    fetch_result_cleanup(&out);
}
END_TEST

START_TEST(secret_errors)
{
    struct fetch_result out;
    char err[512], ver[AZURE_VERSION_LEN + 1];

    /* gone: only on Key Vault's word */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 404, "{\"error\":{\"code\":\"SecretNotFound\","
                            "\"message\":\"A secret with (name/id) db-password was not found in this "
                            "key vault. If you recently deleted this secret you may be able to "
                            "recover it.\"}}", &out, ver, err, sizeof(err)), -ENOENT);
    ck_assert_str_eq(err, "secret 'db-password': not found (HTTP 404 SecretNotFound)");
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 404, "<html>Not Found</html>", &out, ver, err,
                            sizeof(err)), -EIO);
    ck_assert_str_eq(err, "secret 'db-password': HTTP 404 no error code (not SecretNotFound: is "
                          "vault_url the vault?)");
    ck_assert(!out.retryable);
    fetch_result_cleanup(&out);

    /* disabled and denied: named with the identity, permanent */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 403, "{\"error\":{\"code\":\"Forbidden\",\"message\":"
                            "\"Operation get is not allowed on a disabled secret.\",\"innererror\":"
                            "{\"code\":\"SecretDisabled\"}}}", &out, ver, err, sizeof(err)),
                     -EACCES);
    ck_assert_str_eq(err, "secret 'db-password' is disabled (HTTP 403 Forbidden/SecretDisabled), "
                          "asked as client id C");
    ck_assert(!out.retryable);
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 403, "{\"error\":{\"code\":\"Forbidden\",\"message\":"
                            "\"The user, group or application 'appid=C;oid=O' does not have secrets "
                            "get permission on key vault 'myvault;location=eastus'.\","
                            "\"innerError\":{\"code\":\"ForbiddenByPolicy\"}}}", &out, ver, err,
                            sizeof(err)), -EACCES);
    ck_assert_str_eq(err, "secret 'db-password': access denied to client id C (HTTP 403 "
                          "Forbidden/ForbiddenByPolicy: The user, group or application "
                          "'appid=C;oid=O' does not have secrets get permission on key vault "
                          "'myvault;location=eastus'.)");
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 401, "{\"error\":{\"code\":\"Unauthorized\","
                            "\"message\":\"AKV10032: Invalid issuer.\"}}", &out, ver, err,
                            sizeof(err)), -EACCES);
    ck_assert_str_eq(err, "secret 'db-password': access denied to client id C (HTTP 401 "
                          "Unauthorized: AKV10032: Invalid issuer.)");
    ck_assert(!out.retryable);
    fetch_result_cleanup(&out);

    /* throttled and failing: retried, Retry-After honoured */
    fetch_result_init(&out, 4096);
    struct secret_ref ref;
    struct http_response r;
    ck_assert_int_eq(ref_parse("kv:db-password", &ref, err, sizeof(err)), 0);
    ckh_response(&r, 429, "{\"error\":{\"code\":\"Throttled\",\"message\":\"Request was not processed "
                      "because too many requests were received.\"}}");
    r.retry_after_ms = 7000;
    ck_assert_int_eq(azure_secret_answer(&ref, &r, 0, "", &out, ver, err, sizeof(err)), -EAGAIN);
    ck_assert(out.retryable);
    ck_assert_int_eq(out.retry_after_ms, 7000);
    ck_assert_str_eq(err, "secret 'db-password': HTTP 429 Throttled: Request was not processed "
                          "because too many requests were received.");
    http_response_cleanup(&r);
    ref_cleanup(&ref);
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 503, "", &out, ver, err, sizeof(err)), -EAGAIN);
    ck_assert_str_eq(err, "secret 'db-password': HTTP 503 no error code");
    ck_assert(out.retryable);
    fetch_result_cleanup(&out);

    /* a bad request is permanent; error text is one escaped line */
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 400, "{\"error\":{\"code\":\"BadParameter\","
                            "\"message\":\"The specified version (7.9) is not recognized.\\nMore\"}}",
                            &out, ver, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "secret 'db-password': HTTP 400 BadParameter: The specified version (7.9) "
                          "is not recognized.");
    ck_assert(!out.retryable);
    fetch_result_cleanup(&out);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(secret("kv:db-password", 409, "{\"error\":{\"code\":\"Con\\u001bflict\"}}",
                            &out, ver, err, sizeof(err)), -EIO);
    ck_assert_str_eq(err, "secret 'db-password': HTTP 409 Con\\x1bflict");
    fetch_result_cleanup(&out);
}
END_TEST

/* ---- when a token is due ---- */

START_TEST(due_rule)
{
    struct token_info t = {.gen = 1, .obtained_ms = 1000};
    t.life.ttl_ms = 3600 * 1000LL;   /* Entra's hour: 5 minutes before the end */
    ck_assert_int_eq(azure_due_in(&t, 1000), 3300 * 1000LL);
    ck_assert_int_eq(azure_due_in(&t, 1000 + 3300 * 1000LL), 0);
    t.life.ttl_ms = 86400 * 1000LL;  /* IMDS's day */
    ck_assert_int_eq(azure_due_in(&t, 1000), (86400 - 300) * 1000LL);
    t.life.ttl_ms = 600 * 1000LL;    /* 10 minutes: both rules agree */
    ck_assert_int_eq(azure_due_in(&t, 1000), 300 * 1000LL);
    t.life.ttl_ms = 120 * 1000LL;    /* short: at half-life */
    ck_assert_int_eq(azure_due_in(&t, 1000), 60 * 1000LL);
    ck_assert_int_eq(azure_due_in(&t, 1000 + 90 * 1000LL), -30 * 1000LL);
    t.life.ttl_ms = 0;               /* no expiry known */
    ck_assert_int_eq(azure_due_in(&t, 1000), LLONG_MAX);
}
END_TEST

/* ---- the default chain's error: every step's message fits ---- */

static void fill(char *s, size_t n, char c)
{
    memset(s, c, n);
    s[n] = '\0';
}

START_TEST(chain_fit)
{
    char part[3][AZURE_CHAIN_PART_MAX];
    /* IMDS's own answer with the default endpoint is 127 bytes: kept whole */
    snprintf(part[0], sizeof(part[0]), "not configured: no tenant_id (AZURE_TENANT_ID)");
    snprintf(part[1], sizeof(part[1]), "not configured: no tenant_id (AZURE_TENANT_ID)");
    snprintf(part[2], sizeof(part[2]), "managed identity token from http://169.254.169.254/metadata/"
             "identity/oauth2/token: HTTP 400 invalid_request: Identity not found");
    azure_chain_fit(part, 3, AZURE_CHAIN_BUDGET);
    ck_assert_str_eq(part[2], "managed identity token from http://169.254.169.254/metadata/identity/"
                     "oauth2/token: HTTP 400 invalid_request: Identity not found");
    ck_assert_str_eq(part[0], "not configured: no tenant_id (AZURE_TENANT_ID)");
    /* one long message takes what the short ones leave */
    fill(part[0], 9, 'a');
    fill(part[1], 300, 'b');
    fill(part[2], 21, 'c');
    azure_chain_fit(part, 3, 330);
    ck_assert_uint_eq(strlen(part[0]), 9);
    ck_assert_uint_eq(strlen(part[2]), 21);
    ck_assert_uint_eq(strlen(part[1]), 300);
    fill(part[1], 301, 'b');
    azure_chain_fit(part, 3, 330);
    ck_assert_uint_eq(strlen(part[1]), 300);
    ck_assert_str_eq(part[1] + 297, "...");
    /* two long ones share evenly; the short one is whole */
    fill(part[0], 10, 'a');
    fill(part[1], 399, 'b');
    fill(part[2], 250, 'c');
    azure_chain_fit(part, 3, 330);
    ck_assert_uint_eq(strlen(part[0]), 10);
    ck_assert_uint_eq(strlen(part[1]), 160);
    ck_assert_uint_eq(strlen(part[2]), 160);
    ck_assert_str_eq(part[2] + 157, "...");
    /* three long ones: a third each */
    fill(part[0], 399, 'a');
    fill(part[1], 399, 'b');
    fill(part[2], 399, 'c');
    azure_chain_fit(part, 3, 330);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(strlen(part[i]), 110);
}
END_TEST

/* ---- a live instance (no request made) ---- */

START_TEST(live_instance)
{
    struct http_engine *http = NULL;
    struct azure_conf *c = NULL;
    struct backend_env env = {.name = "kv", .max_value = 4096};
    char err[512];
    void *ctx = NULL;

    ck_assert_int_eq(http_engine_new(&http, err, sizeof(err)), 0);
    env.http = http;
    setenv("AZURE_TENANT_ID", TENANT, 1);
    setenv("AZURE_CLIENT_ID", CLIENT, 1);
    setenv("AZURE_CLIENT_SECRET", "env-s3cr3t", 1);
    ck_assert_msg(parse("{\"type\": \"azure\", \"vault_url\": \"https://10.0.0.5:8443\", "
                        "\"tls_server_name\": \"MyVault.vault.azure.net\", \"auth\": {\"method\": "
                        "\"default\"}}", &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(backend_azure_ops.create(&env, c, &ctx, err, sizeof(err)), 0);
    azure_conf_free(c);
    struct azure *a = ctx;
    /* tokens go to whoever holds the certificate for tls_server_name */
    ck_assert_str_eq(a->vault_host, "myvault.vault.azure.net");
    ck_assert_ptr_nonnull(a->entra);
    ck_assert_ptr_nonnull(a->imds);
    ck_assert_str_eq(a->env_secret, "env-s3cr3t");
    /* the environment keeps it: another backend may share the identity */
    ck_assert_str_eq(getenv("AZURE_CLIENT_SECRET"), "env-s3cr3t");
    ck_assert_int_eq(a->winner, -1);
    ck_assert_ptr_null(a->scope);
    /* no scope yet: upkeep waits without a request, a login says why */
    ck_assert_int_eq(backend_azure_ops.maintain(ctx), 1000);
    char *tok = NULL;
    struct token_life life;
    ck_assert_int_eq(azure_login(a, TOKEN_LOGIN_NEEDED, &tok, &life, err, sizeof(err)), -EAGAIN);
    ck_assert_ptr_null(tok);
    ck_assert_str_eq(err, "no scope yet (Key Vault's challenge not seen)");
    backend_azure_ops.destroy(ctx);

    ck_assert_msg(parse("{\"type\": \"azure\", \"vault_url\": \"https://MyVault.Vault.Azure.Net\", "
                        "\"auth\": {\"method\": \"client_secret\", \"client_secret_file\": \"%s\"}}",
                        &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(backend_azure_ops.create(&env, c, &ctx, err, sizeof(err)), 0);
    azure_conf_free(c);
    a = ctx;
    ck_assert_str_eq(a->vault_host, "myvault.vault.azure.net");
    ck_assert_ptr_nonnull(a->entra);
    ck_assert_ptr_null(a->imds);
    ck_assert_ptr_null(a->env_secret);   /* the file is read at each token request */
    backend_azure_ops.destroy(ctx);
    http_engine_free(http);
}
END_TEST

static Suite *azure_suite(void)
{
    Suite *s = suite_create("azure");
    TCase *tc = tcase_create("azure");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, conf_methods);
    tcase_add_test(tc, guess_scopes);
    tcase_add_test(tc, conf_env_fallbacks);
    tcase_add_test(tc, conf_errors);
    tcase_add_test(tc, refs);
    tcase_add_test(tc, challenge_forms);
    tcase_add_test(tc, challenge_refused);
    tcase_add_test(tc, host_rule);
    tcase_add_test(tc, challenge_scopes);
    tcase_add_test(tc, entra_answers);
    tcase_add_test(tc, imds_answers);
    tcase_add_test(tc, secret_values);
    tcase_add_test(tc, secret_attributes);
    tcase_add_test(tc, secret_errors);
    tcase_add_test(tc, due_rule);
    tcase_add_test(tc, chain_fit);
    tcase_add_test(tc, live_instance);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(azure_suite)
