/* test_vault.c - the Vault provider's pure parts (vault_i.h): its config
 * parsed into struct vault_conf, which mount serves a path (kv_versions,
 * then what probes learnt, the longest prefix first), the request path of
 * a KV 1 or KV 2 read, and the answer of the mounts probe. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/http/http.h"
#include "backends/vault/vault.h"
#include "backends/vault/vault_i.h"
#include "lib/secmem.h"
#include "ck_helpers.h"
#include "ck_main.h"

/* vault_parse of text: rc, with err. */
static int parse(const char *text, struct vault_conf **c, char *err, size_t errlen)
{
    void *conf = NULL;
    int rc = ckh_parse(vault_parse, text, &conf, err, errlen);
    *c = conf;
    return rc;
}

#define ADDR "\"type\": \"vault\", \"address\": \"http://127.0.0.1:1\""

START_TEST(conf_typed)
{
    struct vault_conf *c = NULL;
    char err[256];

    ck_assert_int_eq(parse("{" ADDR ", \"namespace\": \"team-a\", \"auth\": {\"method\": "
                           "\"approle\", \"mount\": \"ar//\", \"role_id\": \"r1\", "
                           "\"secret_id_file\": \"/dev/null\"}, \"kv_versions\": "
                           "{\"secret\": 2, \"old\": 1}}", &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c->http.address, "http://127.0.0.1:1");
    ck_assert_str_eq(c->ns, "team-a");
    ck_assert_int_eq(c->method, AUTH_APPROLE);
    ck_assert_str_eq(c->auth_mount, "ar");
    ck_assert_str_eq(c->role_id, "r1");
    ck_assert_str_eq(c->secret_id_file, "/dev/null");
    ck_assert_ptr_null(c->role_id_file);
    ck_assert(c->revoke_on_shutdown);
    ck_assert_uint_eq(c->n_kv, 2);
    ck_assert_str_eq(c->kv[0].mount, "secret");
    ck_assert_int_eq(c->kv[0].kind, MOUNT_KV2);
    ck_assert_str_eq(c->kv[1].mount, "old");
    ck_assert_int_eq(c->kv[1].kind, MOUNT_KV1);
    vault_conf_free(c);

    ck_assert_int_eq(parse("{" ADDR ", \"revoke_on_shutdown\": false, \"auth\": {\"method\": "
                           "\"jwt\", \"jwt_file\": \"/dev/null\"}}", &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c->auth_mount, "jwt");        /* the method's default mount */
    ck_assert_str_eq(c->jwt_file, "/dev/null");
    ck_assert(!c->revoke_on_shutdown);
    vault_conf_free(c);
}
END_TEST

START_TEST(conf_errors)
{
    static const struct {
        const char *auth, *err;
    } cases[] = {
        {"{\"method\": \"jwt\"}", "auth.jwt_file: missing"},
        {"{\"method\": \"jwt\", \"jwt_file\": \"rel/x\"}", "auth.jwt_file: expected an absolute path"},
        {"{\"method\": \"jwt\", \"jwt_file\": 3}", "auth.jwt_file: expected an absolute path"},
        {"{\"method\": \"jwt\", \"jwt_file\": \"/nonexistent/jwt\"}",
         "auth.jwt_file: /nonexistent/jwt: No such file or directory"},
        {"{\"method\": \"token\", \"token_file\": \"/nonexistent/t\"}",
         "auth.token_file: /nonexistent/t: No such file or directory"},
        {"{\"method\": \"approle\", \"role_id\": \"r\", \"role_id_file\": \"/dev/null\"}",
         "auth.role_id: give exactly one of role_id and role_id_file"},
        {"{\"method\": \"approle\", \"role_id\": \"r\", \"secret_id_file\": \"x\"}",
         "auth.secret_id_file: expected an absolute path"},
        {"{\"method\": \"jwt\", \"mount\": \"/jwt\", \"jwt_file\": \"/dev/null\"}",
         "auth.mount: expected the auth mount path, e.g. \"jwt\""},
        {"{\"method\": \"jwt\", \"role_id\": \"r\"}", "auth.role_id: unknown key for the jwt method"},
        {"{\"method\": \"ldap\"}", "auth.method: expected one of token, approle, kubernetes, jwt"},
    };
    struct vault_conf *c = NULL;
    char text[512], err[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "{" ADDR ", \"auth\": %s}", cases[i].auth);
        ck_assert_int_eq(parse(text, &c, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_null(c);
        ck_assert_str_eq(err, cases[i].err);
    }
    ck_assert_int_eq(parse("{" ADDR ", \"auth\": {\"method\": \"jwt\", \"jwt_file\": "
                           "\"/dev/null\"}, \"kv_versions\": {\"secret\": 3}}", &c, err,
                           sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "kv_versions.secret: expected 1 or 2");
    ck_assert_int_eq(parse("{" ADDR ", \"namespace\": \"/a\", \"auth\": {}}", &c, err,
                           sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "namespace: expected a namespace path such as \"team-a\"");
}
END_TEST

/* A live backend (no request is made unless a test asks for one): the
 * token method with VAULT_TOKEN, kv_versions "secret" (KV 1) and
 * "secret/team" (KV 2), Vault at a port nobody listens on. */
struct live {
    struct http_engine *http;
    struct vault_conf *conf;
    struct vault *v;
};

static void live_open(struct live *l)
{
    char err[256];
    struct backend_env env = {.name = "v", .max_value = 4096};
    ck_assert_int_eq(setenv("VAULT_TOKEN", "s.test", 1), 0);
    ck_assert_int_eq(parse("{" ADDR ", \"auth\": {\"method\": \"token\"}, \"kv_versions\": "
                           "{\"secret\": 1, \"secret/team/\": 2, \"kv\": 1}}", &l->conf, err,
                           sizeof(err)), 0);
    ck_assert_int_eq(http_engine_new(&l->http, err, sizeof(err)), 0);
    env.http = l->http;
    void *ctx = NULL;
    ck_assert_int_eq(backend_vault_ops.create(&env, l->conf, &ctx, err, sizeof(err)), 0);
    ck_assert_ptr_null(getenv("VAULT_TOKEN"));   /* taken into secret memory */
    l->v = ctx;
    vault_conf_free(l->conf);                     /* the instance keeps its own copies */
    l->conf = NULL;
}

static void live_close(struct live *l)
{
    backend_vault_ops.destroy(l->v);
    http_engine_free(l->http);
}

static void expect_mount(struct vault *v, const char *path, const char *mount, enum mount_kind kind)
{
    struct fetch_result out;
    char *mp = NULL, err[256] = "";
    enum mount_kind k = 0;
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(vault_mount_for(v, path, &out, &mp, &k, err, sizeof(err)), 0);
    ck_assert_str_eq(mp, mount);
    ck_assert_int_eq(k, kind);
    free(mp);
    fetch_result_cleanup(&out);
}

START_TEST(mount_for_longest_prefix)
{
    struct live l;
    live_open(&l);
    expect_mount(l.v, "secret/db", "secret/", MOUNT_KV1);
    expect_mount(l.v, "secret/team/db", "secret/team/", MOUNT_KV2);
    expect_mount(l.v, "secret/teamx/db", "secret/", MOUNT_KV1);
    /* what a probe learnt, behind kv_versions */
    ck_assert_int_eq(vault_add_mount(&l.v->mounts, "database", 8, MOUNT_OTHER), 0);
    ck_assert_int_eq(vault_add_mount(&l.v->mounts, "kv/app//", 8, MOUNT_KV2), 0);
    expect_mount(l.v, "database/creds/ro", "database/", MOUNT_OTHER);
    expect_mount(l.v, "kv/app/config", "kv/", MOUNT_KV1);   /* kv_versions wins */
    ck_assert_ptr_null(vault_match_mount(l.v->overrides, "databasex/y"));
    ck_assert_str_eq(vault_match_mount(l.v->mounts, "kv/app/x")->path, "kv/app/");
    live_close(&l);
}
END_TEST

/* An unknown mount is probed (with the token, no login request for the
 * token method); a probe that cannot reach Vault learns nothing. */
START_TEST(mount_for_unknown)
{
    struct live l;
    struct fetch_result out;
    char *mp = NULL, err[256] = "";
    enum mount_kind k = 0;

    live_open(&l);
    ck_assert_ptr_null(vault_match_mount(l.v->overrides, "other/x"));
    fetch_result_init(&out, 4096);
    out.retryable = false;
    int rc = vault_mount_for(l.v, "other/x", &out, &mp, &k, err, sizeof(err));
    ck_assert_int_lt(rc, 0);
    ck_assert(out.retryable);
    ck_assert_ptr_null(mp);
    ck_assert_msg(strncmp(err, "GET sys/internal/ui/mounts/other/x: ", 36) == 0, "%s", err);
    ck_assert_ptr_null(l.v->mounts);
    fetch_result_cleanup(&out);
    live_close(&l);
}
END_TEST

START_TEST(read_paths)
{
    char p[256];
    ck_assert_int_eq(vault_read_path("secret/", MOUNT_KV1, "secret/db", NULL, p, sizeof(p)), 0);
    ck_assert_str_eq(p, "secret/db");
    ck_assert_int_eq(vault_read_path("secret/team/", MOUNT_KV2, "secret/team/db", NULL, p,
                                     sizeof(p)), 0);
    ck_assert_str_eq(p, "secret/team/data/db");
    ck_assert_int_eq(vault_read_path("kv/", MOUNT_KV2, "kv/a b/c", "12", p, sizeof(p)), 0);
    ck_assert_str_eq(p, "kv/data/a%20b/c?version=12");
    ck_assert_int_eq(vault_read_path("database/", MOUNT_OTHER, "database/creds/r o", NULL, p,
                                     sizeof(p)), 0);
    ck_assert_str_eq(p, "database/creds/r%20o");
    ck_assert_int_eq(vault_read_path("kv/", MOUNT_KV2, "kv/abcdefgh", NULL, p, 12), -ENAMETOOLONG);
    ck_assert_int_eq(vault_read_path("kv/", MOUNT_KV1, "kv/abcdefghijkl", NULL, p, 12),
                     -ENAMETOOLONG);
}
END_TEST

START_TEST(mount_answers)
{
    struct http_response r;
    struct fetch_result out;
    json_t *root = NULL;
    const char *mp = NULL;
    size_t n = 0;
    enum mount_kind k = 0;
    char err[512];

    fetch_result_init(&out, 4096);
    ckh_response(&r, 200, "{\"data\": {\"path\": \"kv/\", \"type\": \"kv\", \"options\": "
                      "{\"version\": \"2\"}}}");
    ck_assert_int_eq(vault_mount_answer(&r, "kv/app/x", &out, &root, &mp, &n, &k, err,
                                        sizeof(err)), 0);
    ck_assert_int_eq(k, MOUNT_KV2);
    ck_assert_int_eq(n, 3);
    ck_assert(strncmp(mp, "kv/", n) == 0);
    json_decref(root);
    http_response_cleanup(&r);

    /* Vault before 0.10: KV 1 at the first segment */
    ckh_response(&r, 404, "");
    ck_assert_int_eq(vault_mount_answer(&r, "old/a/b", &out, &root, &mp, &n, &k, err,
                                        sizeof(err)), 0);
    ck_assert_int_eq(k, MOUNT_KV1);
    ck_assert_int_eq(n, 3);
    http_response_cleanup(&r);

    ckh_response(&r, 403, "{\"errors\": [\"permission denied\"]}");
    ck_assert_int_eq(vault_mount_answer(&r, "kv/x", &out, &root, &mp, &n, &k, err, sizeof(err)),
                     -EACCES);
    ck_assert_str_eq(err, "cannot tell which KV version serves 'kv/x' (permission denied); set "
                          "kv_versions in the backend config");
    ck_assert(!out.retryable);
    http_response_cleanup(&r);

    ckh_response(&r, 200, "{\"data\": {\"path\": \"database/\", \"type\": \"database\"}}");
    ck_assert_int_eq(vault_mount_answer(&r, "database/creds/ro", &out, &root, &mp, &n, &k, err,
                                        sizeof(err)), 0);
    ck_assert_int_eq(k, MOUNT_OTHER);
    json_decref(root);
    http_response_cleanup(&r);
    fetch_result_cleanup(&out);
}
END_TEST

/* vault_read_answer of body (status 200): rc, out->version into version. */
static int read_version(const char *body, bool kv2, char *version, size_t cap)
{
    struct http_response r;
    struct fetch_result out;
    json_t *root = NULL;
    char err[512];
    fetch_result_init(&out, 4096);
    ckh_response(&r, 200, body);
    int rc = vault_read_answer("kv/app", &r, kv2, &out, &root, err, sizeof(err));
    snprintf(version, cap, "%s", out.version);
    json_decref(root);
    http_response_cleanup(&r);
    fetch_result_cleanup(&out);
    return rc;
}

START_TEST(read_answer_versions)
{
    char v[64];
    /* KV 2: data.metadata.version */
    ck_assert_int_eq(read_version("{\"data\": {\"data\": {\"a\": \"b\"}, \"metadata\": "
                                  "{\"version\": 7, \"destroyed\": false}}}", true, v,
                                  sizeof(v)), 0);
    ck_assert_str_eq(v, "7");
    ck_assert_int_eq(read_version("{\"data\": {\"data\": {\"a\": \"b\"}, \"metadata\": "
                                  "{\"version\": 9007199254740993}}}", true, v, sizeof(v)), 0);
    ck_assert_str_eq(v, "9007199254740993");
    /* not a positive integer, or no metadata: not known */
    ck_assert_int_eq(read_version("{\"data\": {\"data\": {}, \"metadata\": {\"version\": \"7\"}}}",
                                  true, v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(read_version("{\"data\": {\"data\": {}, \"metadata\": {\"version\": -1}}}",
                                  true, v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(read_version("{\"data\": {\"data\": {}}}", true, v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    /* KV 1 has no versions */
    ck_assert_int_eq(read_version("{\"data\": {\"a\": \"b\", \"metadata\": {\"version\": 3}}}",
                                  false, v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    /* a dynamic secret: its lease id is never shown as a version */
    ck_assert_int_eq(read_version("{\"lease_id\": \"database/creds/ro/abc\", \"lease_duration\": "
                                  "60, \"renewable\": true, \"data\": {\"username\": \"u\"}}",
                                  false, v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    /* a deleted KV 2 version: an error, no version */
    ck_assert_int_eq(read_version("{\"data\": {\"data\": null, \"metadata\": {\"version\": 4}}}",
                                  true, v, sizeof(v)), -ENOENT);
    ck_assert_str_eq(v, "");
}
END_TEST

static Suite *vault_suite(void)
{
    Suite *s = suite_create("vault");
    TCase *tc = tcase_create("vault");
    tcase_add_checked_fixture(tc, ckh_setup_hardening, NULL);
    tcase_add_test(tc, conf_typed);
    tcase_add_test(tc, conf_errors);
    tcase_add_test(tc, mount_for_longest_prefix);
    tcase_add_test(tc, mount_for_unknown);
    tcase_add_test(tc, read_paths);
    tcase_add_test(tc, mount_answers);
    tcase_add_test(tc, read_answer_versions);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(vault_suite)
