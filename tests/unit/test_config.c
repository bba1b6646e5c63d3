/* test_config.c - the configuration contract: valid forms and malformed ones,
 * each with the exact one-line message a user would see. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/config.h"
#include "policy/rules.h"
#include "backends/backend.h"
#include "backends/core/provider.h"
#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

static char dir[] = "/tmp/rs-test-config-XXXXXX";
static char err[1024];

static void setup(void)
{
    char e[128];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    rmdir(dir);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

/* Replace every @DIR@ with the temp dir so the file backend validates. */
static char *subst(const char *json)
{
    static char out[8192];
    size_t o = 0;
    for (const char *p = json; *p && o < sizeof(out) - 256; p++) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", dir);
            p += 4;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

static struct config *load_ok(const char *json)
{
    struct config *c = NULL;
    const char *text = subst(json);
    err[0] = '\0';
    int rc = cfg_load_buffer(text, strlen(text), "config.json", &c, err, sizeof(err));
    ck_assert_msg(rc == 0, "expected valid, got: %s", err);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Loads json, expects -EINVAL and an error equal to want. */
static void load_bad(const char *json, const char *want)
{
    struct config *c = NULL;
    const char *text = subst(json);
    err[0] = '\0';
    int rc = cfg_load_buffer(text, strlen(text), "config.json", &c, err, sizeof(err));
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(strcmp(err, want) == 0, "\n got: %s\nwant: %s", err, want);
    ck_assert_ptr_null(strchr(err, '\n'));
}

/* Same, but only the prefix (location and path) is ours to pin exactly. */
static void load_bad_prefix(const char *json, const char *want)
{
    struct config *c = NULL;
    const char *text = subst(json);
    int rc = cfg_load_buffer(text, strlen(text), "config.json", &c, err, sizeof(err));
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "\n got: %s\nwant prefix: %s", err, want);
}

#define BACKENDS "\"backends\": {\"local\": {\"type\": \"file\", \"path\": \"@DIR@\"}}"

START_TEST(valid_full)
{
    struct config *c = load_ok(
        "{\n"
        "  \"mount\": \"/run/secrets\",\n"
        "  \"defaults\": {\"refresh\": \"5m\", \"max_stale\": \"1h\", \"mode\": \"0400\", \"uid\": 0, \"gid\": 0},\n"
        "  " BACKENDS ",\n"
        "  \"secrets\": {\n"
        "    \"db_password\": {\"from\": \"local:db_password\", \"refresh\": \"30s\", \"mode\": \"0440\", \"uid\": 1000, \"gid\": 1000},\n"
        "    \"app/db_user\": {\"from\": \"local:db.json#user\"}\n"
        "  }\n"
        "}\n");
    ck_assert_str_eq(c->mount, "/run/secrets");
    ck_assert_uint_eq(c->n_backends, 1);
    ck_assert_str_eq(c->backends[0].name, "local");
    ck_assert_str_eq(backend_conf_type(c->backends[0].conf), "file");
    ck_assert_uint_eq(c->n_secrets, 2);
    const struct cfg_secret *s = &c->secrets[0];
    ck_assert_str_eq(s->name, "db_password");
    ck_assert_str_eq(s->ref.backend, "local");
    ck_assert_str_eq(s->ref.path, "db_password");
    ck_assert_int_eq(s->attrs.refresh, 30000);
    ck_assert_int_eq(s->attrs.max_stale, 3600000);
    ck_assert_uint_eq(s->attrs.mode, 0440);
    ck_assert_uint_eq(s->attrs.uid, 1000);
    ck_assert_uint_eq(s->attrs.gid, 1000);
    s = &c->secrets[1];
    ck_assert_str_eq(s->name, "app/db_user");
    ck_assert_str_eq(s->ref.path, "db.json");
    ck_assert_str_eq(s->ref.field, "user");
    ck_assert_int_eq(s->attrs.refresh, 300000);
    ck_assert_uint_eq(s->attrs.mode, 0400);
    ck_assert_uint_eq(s->backend, 0);
    ck_assert_int_eq(cfg_secret_index(c, "app/db_user"), 1);
    ck_assert_int_eq(cfg_secret_index(c, "nope"), -1);
    cfg_free(c);
}
END_TEST

START_TEST(valid_defaults_and_forms)
{
    struct config *c = load_ok("{" BACKENDS ", \"secrets\": {"
                               "\"a\": \"local:a\","
                               "\"b\": {\"from\": \"local:b.json#/x/0\", \"refresh\": 90, \"max_stale\": \"1h30m\"}}}");
    ck_assert_str_eq(c->mount, CFG_DEFAULT_MOUNT);
    ck_assert_int_eq(c->defaults.refresh, CFG_DEFAULT_REFRESH);
    ck_assert_int_eq(c->defaults.max_stale, CFG_DEFAULT_MAX_STALE);
    ck_assert_uint_eq(c->defaults.mode, CFG_DEFAULT_MODE);
    ck_assert_str_eq(c->secrets[0].ref.path, "a");
    ck_assert_int_eq(c->secrets[1].attrs.refresh, 90000);
    ck_assert_int_eq(c->secrets[1].attrs.max_stale, 5400000);
    ck_assert_str_eq(c->secrets[1].ref.field, "/x/0");
    cfg_free(c);

    c = load_ok("{}");
    ck_assert_uint_eq(c->n_secrets, 0);
    cfg_free(c);
}
END_TEST

START_TEST(bad_syntax)
{
    load_bad_prefix("{\n  \"mount\": \"/x\",\n}", "config.json:3:1: ");
    load_bad_prefix("{\"mount\": \"/a\", \"mount\": \"/b\"}", "config.json:1:");
    ck_assert_ptr_nonnull(strstr(err, "duplicate"));
    load_bad("[1, 2]", "config.json:1:1: the configuration must be a JSON object, got an array");
}
END_TEST

START_TEST(bad_top_level)
{
    load_bad("{\n  \"mout\": \"/x\"\n}",
             "config.json:2:3: mout: unknown key (expected one of: mount, defaults, exec, admin, policy, include, "
             "backends, secrets)");
    load_bad("{\"mount\": \"relative\"}", "config.json:1:11: mount: expected an absolute path");
    load_bad("{\"mount\": 5}", "config.json:1:11: mount: expected an absolute path");
    load_bad("{\"defaults\": []}", "config.json:1:14: defaults: expected an object, got an array");
    load_bad("{\"backends\": \"x\"}", "config.json:1:14: backends: expected an object, got a string");
    load_bad("{\"secrets\": 1}", "config.json:1:13: secrets: expected an object, got an integer");
}
END_TEST

START_TEST(bad_defaults)
{
    load_bad("{\"defaults\": {\"mode\": 400}}",
             "config.json:1:23: defaults.mode: expected an octal mode string such as \"0440\", got an integer");
    load_bad("{\"defaults\": {\"mode\": \"0999\"}}",
             "config.json:1:23: defaults.mode: expected an octal mode string such as \"0440\", got an invalid string");
    load_bad("{\"defaults\": {\"mode\": \"4755\"}}",
             "config.json:1:23: defaults.mode: mode 4755 has special bits (setuid, setgid, sticky): only 0000-0777");
    load_bad("{\"defaults\": {\"uid\": -1}}",
             "config.json:1:22: defaults.uid: expected a numeric id between 0 and 4294967294, got an out-of-range integer");
    load_bad("{\"defaults\": {\"gid\": \"root\"}}",
             "config.json:1:22: defaults.gid: expected a numeric id between 0 and 4294967294, got a string");
    load_bad("{\"defaults\": {\"colour\": 1}}",
             "config.json:1:15: defaults.colour: unknown key (expected one of: refresh, max_stale, mode, uid, "
             "gid, required, on_change)");
    load_bad_prefix("{\"defaults\": {\"refresh\": \"5x\"}}", "config.json:1:26: defaults.refresh: ");
    load_bad_prefix("{\"defaults\": {\"refresh\": 0}}", "config.json:1:26: defaults.refresh: ");
    load_bad_prefix("{\"defaults\": {\"refresh\": true}}", "config.json:1:26: defaults.refresh: ");
    load_bad("{\"defaults\": {\"refresh\": \"99ms\"}}",
             "config.json:1:26: defaults.refresh: refresh must be at least 100ms");
    cfg_free(load_ok("{\"defaults\": {\"refresh\": \"100ms\", \"max_stale\": \"1s500ms\"}, " BACKENDS "}"));
    load_bad("{\"defaults\": {\"refresh\": \"1h\", \"max_stale\": \"5m\"}}",
             "config.json:1:45: defaults.max_stale: max_stale is shorter than refresh: secrets would "
             "fail closed between two successful refreshes");
}
END_TEST

START_TEST(bad_backends)
{
    load_bad("{\"backends\": {\"local\": {\"type\": \"fiel\", \"path\": \"/\"}}}",
             "config.json:1:33: backends.local.type: unknown backend type 'fiel' (known: file, vault, aws, azure, gcp)");
    load_bad("{\"backends\": {\"local\": {\"path\": \"/\"}}}",
             "config.json:1:24: backends.local.type: missing (one of: file, vault, aws, azure, gcp)");
    load_bad("{\"backends\": {\"local\": {\"type\": \"file\"}}}",
             "config.json:1:24: backends.local.path: missing (the directory holding the secret files)");
    load_bad("{\"backends\": {\"local\": {\"type\": \"file\", \"path\": \"rel\"}}}",
             "config.json:1:49: backends.local.path: expected an absolute directory path");
    load_bad("{\"backends\": {\"local\": {\"type\": \"file\", \"path\": \"/nonexistent-rs\"}}}",
             "config.json:1:49: backends.local.path: /nonexistent-rs: No such file or directory");
    load_bad("{\"backends\": {\"local\": {\"type\": \"file\", \"path\": \"/etc/hostname\"}}}",
             "config.json:1:49: backends.local.path: /etc/hostname: not a directory");
    load_bad("{\"backends\": {\"local\": {\"type\": \"file\", \"path\": \"/\", \"pth\": 1}}}",
             "config.json:1:54: backends.local.pth: unknown key");
    load_bad("{\"backends\": {\"local\": {\"type\": \"file\", \"path\": \"/\", \"max_size\": 0}}}",
             "config.json:1:66: backends.local.max_size: expected a number of bytes between 1 and 67108864");
    load_bad("{\"backends\": {\"local\": []}}", "config.json:1:24: backends.local: expected an object, got an array");
    load_bad_prefix("{\"backends\": {\"lo cal\": {\"type\": \"file\", \"path\": \"/\"}}}",
                    "config.json:1:15: backends[\"lo cal\"]: invalid backend name: ");
}
END_TEST

/* The Vault backend's keys, nested auth keys included, each pointed at. */
#define VB(rest) "{\"backends\": {\"v\": {\"type\": \"vault\", " rest "}}}"
#define VADDR "\"address\": \"https://127.0.0.1:8200\", "
#define VTOK "\"auth\": {\"method\": \"token\", \"token_file\": \"/etc/hostname\"}"

START_TEST(bad_vault_backends)
{
    struct config *c = load_ok(VB(VADDR VTOK ", \"namespace\": \"team-a\", \"kv_versions\": "
                                  "{\"secret\": 2}, \"timeout\": \"10s\", \"max_parallel\": 8, "
                                  "\"ca_file\": \"/etc/hostname\", \"retry_base\": \"2s\""));
    cfg_free(c);
    load_bad(VB(VTOK), "config.json:1:20: backends.v.address: missing (e.g. \"https://vault.internal:8200\")");
    load_bad(VB("\"address\": \"ftp://x\", " VTOK), "config.json:1:49: backends.v.address: scheme must be https or http");
    load_bad(VB("\"address\": \"http://x:8200\", \"ca_file\": \"/etc/hostname\", " VTOK), "config.json:1:77: backends.v.ca_file: the address is plain http; TLS settings need https");
    load_bad(VB(VADDR "\"ca_file\": \"/nonexistent-rs\", " VTOK), "config.json:1:86: backends.v.ca_file: /nonexistent-rs: No such file or directory");
    load_bad(VB(VADDR "\"key_file\": \"/etc/hostname\", " VTOK), "config.json:1:87: backends.v.key_file: needs cert_file (the client certificate)");
    load_bad(VB(VADDR "\"max_parallel\": 0, " VTOK), "config.json:1:91: backends.v.max_parallel: expected an integer between 1 and 1024");
    load_bad(VB(VADDR "\"timeout\": \"2h\", " VTOK), "config.json:1:86: backends.v.timeout: at most 1h");
    load_bad(VB("\"address\": \"https://127.0.0.1:8200\""), "config.json:1:20: backends.v.auth: missing (e.g. {\"method\": \"token\", \"token_file\": ...})");
    load_bad(VB(VADDR "\"auth\": {\"method\": \"ldap\"}"), "config.json:1:94: backends.v.auth.method: expected one of token, approle, kubernetes, jwt");
    load_bad(VB(VADDR "\"auth\": {\"method\": \"approle\", \"role_id\": \"r\", \"jwt_file\": \"/x\"}"), "config.json:1:121: backends.v.auth.jwt_file: unknown key for the approle method");
    load_bad(VB(VADDR "\"auth\": {\"method\": \"approle\"}"), "config.json:1:83: backends.v.auth.role_id: give exactly one of role_id and role_id_file");
    load_bad(VB(VADDR "\"auth\": {\"method\": \"jwt\", \"role\": \"r\", \"jwt_file\": \"/nonexistent-rs\"}"), "config.json:1:126: backends.v.auth.jwt_file: /nonexistent-rs: No such file or directory");
    load_bad(VB(VADDR "\"auth\": {\"method\": \"kubernetes\", \"jwt_file\": \"/etc/hostname\"}"), "config.json:1:83: backends.v.auth.role: missing");
    load_bad(VB(VADDR VTOK ", \"kv_versions\": {\"secret\": 3}"), "config.json:1:161: backends.v.kv_versions.secret: expected 1 or 2");
    load_bad(VB(VADDR VTOK ", \"revoke_on_shutdown\": \"yes\""), "config.json:1:157: backends.v.revoke_on_shutdown: expected true or false");
    load_bad(VB(VADDR VTOK ", \"retry_base\": \"10m\""), "config.json:1:149: backends.v.retry_base: longer than retry_max (default 5m)");
    load_bad(VB(VADDR VTOK ", \"tls_server_name\": \"bad name\""), "config.json:1:154: backends.v.tls_server_name: expected a host name");
    load_bad("{\"backends\": {\"v\": {\"type\": \"vault\", " VADDR VTOK "}},"
             " \"secrets\": {\"a\": \"v:secret\"}}", "config.json:1:154: secrets.a: vault path 'secret': expected <mount>/<path>");
    load_bad("{\"backends\": {\"v\": {\"type\": \"vault\", " VADDR VTOK "}},"
             " \"secrets\": {\"a\": \"v:secret/a?version=x\"}}", "config.json:1:154: secrets.a: vault ?version= must be a positive integer, got 'x'");
    load_bad("{\"backends\": {\"v\": {\"type\": \"vault\", " VADDR VTOK "}},"
             " \"secrets\": {\"a\": \"v:secret/../a\"}}", "config.json:1:154: secrets.a: vault path 'secret/../a': '.' and '..' segments are not allowed");
}
END_TEST

#define AB(rest) "{\"backends\": {\"a\": {\"type\": \"aws\"" rest "}}}"

START_TEST(bad_aws_backends)
{
    struct config *c = load_ok(AB(", \"region\": \"eu-west-1\", \"profile\": \"prod\", \"endpoint\": "
                                  "\"https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com\", "
                                  "\"batch\": false, \"timeout\": \"5s\""));
    cfg_free(c);
    c = load_ok(AB(""));   /* everything from the environment */
    cfg_free(c);
    load_bad(AB(", \"region\": \"eu west\""), "config.json:1:46: backends.a.region: expected a name such as \"eu-west-1\"");
    load_bad(AB(", \"profile\": 3"), "config.json:1:47: backends.a.profile: expected a name such as \"prod\"");
    load_bad(AB(", \"endpoint\": \"ftp://x\""), "config.json:1:48: backends.a.endpoint: scheme must be https or http");
    load_bad(AB(", \"endpoint\": \"http://127.0.0.1:5000\", \"ca_file\": \"/etc/hostname\""), "config.json:1:84: backends.a.ca_file: the endpoint is plain http; TLS settings need https");
    load_bad(AB(", \"batch\": \"yes\""), "config.json:1:45: backends.a.batch: expected true or false");
    load_bad(AB(", \"sts_endpoint\": \"nope\""), "config.json:1:52: backends.a.sts_endpoint: not a URL (expected https://host[:port])");
    load_bad(AB(", \"regoin\": \"x\""), "config.json:1:36: backends.a.regoin: unknown key");
    load_bad("{\"backends\": {\"a\": {\"type\": \"aws\"}}, \"secrets\": {\"s\": "
             "\"a:arn:aws:s3:::bucket\"}}", "config.json:1:55: secrets.s: aws ARN 'arn:aws:s3:::bucket' is not a Secrets Manager ARN");
    load_bad("{\"backends\": {\"a\": {\"type\": \"aws\"}}, \"secrets\": {\"s\": "
             "\"a:db?version=1&stage=AWSCURRENT\"}}", "config.json:1:55: secrets.s: ?version= and ?stage= exclude each other");
    load_bad("{\"backends\": {\"local\": {\"type\": \"file\", \"path\": \"/\"}}, \"secrets\": "
             "{\"s\": \"local:db?stage=AWSCURRENT\"}}", "config.json:1:73: secrets.s: the file backend does not support ?stage=");
    c = load_ok("{\"backends\": {\"a\": {\"type\": \"aws\"}}, \"secrets\": {\"s\": "
                "\"a:arn:aws:secretsmanager:eu-west-1:1:secret:db-AbCdEf?stage=AWSPREVIOUS#pw\"}}");
    cfg_free(c);
}
END_TEST

START_TEST(bad_secrets)
{
    load_bad("{" BACKENDS ",\n \"secrets\": {\n  \"db_password\": {\"from\": \"lcoal:db_password\"}}}",
             "config.json:3:27: secrets.db_password.from: unknown backend 'lcoal'");
    load_bad("{" BACKENDS ", \"secrets\": {\"db\": {\"refresh\": \"1m\"}}}",
             "config.json:1:99: secrets.db: missing \"from\" (a reference such as \"local:db\")");
    load_bad("{" BACKENDS ", \"secrets\": {\"db\": {\"from\": 7}}}",
             "config.json:1:108: secrets.db.from: expected a reference string, got an integer");
    load_bad("{" BACKENDS ", \"secrets\": {\"db\": 7}}",
             "config.json:1:99: secrets.db: expected an object or a reference string, got an integer");
    load_bad("{" BACKENDS ", \"secrets\": {\"db\": {\"from\": \"local:db\", \"owner\": 1}}}",
             "config.json:1:120: secrets.db.owner: unknown key (expected one of: from, refresh, "
             "max_stale, mode, uid, gid, required, env, on_change)");
    load_bad("{" BACKENDS ", \"secrets\": {\"db\": \"local:/etc/shadow\"}}",
             "config.json:1:99: secrets.db: file path '/etc/shadow' must be relative to the backend directory");
    load_bad("{" BACKENDS ", \"secrets\": {\"db\": \"local:a/../../x\"}}",
             "config.json:1:99: secrets.db: file path 'a/../../x' leaves the backend directory");
    load_bad("{" BACKENDS ", \"secrets\": {\"db\": \"local:x?version=2\"}}",
             "config.json:1:99: secrets.db: the file backend does not support ?version=");
    load_bad_prefix("{" BACKENDS ", \"secrets\": {\"db\": \"nocolon\"}}", "config.json:1:99: secrets.db: ");
    load_bad_prefix("{" BACKENDS ", \"secrets\": {\"db\": \"local:x#\"}}", "config.json:1:99: secrets.db: ");
    load_bad_prefix("{" BACKENDS ", \"secrets\": {\"../x\": \"local:x\"}}",
                    "config.json:1:93: secrets[\"../x\"]: invalid secret name: ");
    load_bad_prefix("{" BACKENDS ", \"secrets\": {\"a//b\": \"local:x\"}}",
                    "config.json:1:93: secrets.a//b: invalid secret name: ");
    load_bad_prefix("{" BACKENDS ", \"secrets\": {\"a/b/c/d/e/f/g/h/i\": \"local:x\"}}",
                    "config.json:1:93: secrets.a/b/c/d/e/f/g/h/i: invalid secret name: ");
    load_bad("{" BACKENDS ", \"secrets\": {\"app\": \"local:x\", \"app/db\": \"local:y\"}}",
             "config.json:1:111: secrets.app/db: 'app' is also a secret, so it cannot be a directory");
    load_bad("{" BACKENDS ", \"secrets\": {\"db\": {\"from\": \"local:x\", \"refresh\": \"2h\"}}}",
             "config.json:1:130: secrets.db.refresh: max_stale (1h) is shorter than refresh (2h): "
             "the secret would fail closed between two successful refreshes");
    load_bad("{" BACKENDS ", \"secrets\": {\"tls.crt\": {\"from\": \"local:x\", \"mode\": \"rw\"}}}",
             "config.json:1:132: secrets[\"tls.crt\"].mode: expected an octal mode string such as "
             "\"0440\", got an invalid string");
}
END_TEST

START_TEST(columns_count_characters)
{
    /* jansson counts columns in characters; so do we (é is two bytes). */
    load_bad("{\"défauts\": 1}", "config.json:1:2: [\"défauts\"]: unknown key (expected one of: mount, "
             "defaults, exec, admin, policy, include, backends, secrets)");
}
END_TEST

/* Found by fuzz_config: a key with a newline ("\n" in JSON) made a
 * two-line message; keys are escaped, so a message stays one line. */
START_TEST(keys_in_messages_stay_one_line)
{
    load_bad_prefix("{\"secrets\": {\"\\nullu0A09\": \"x:y\"}}",
                    "config.json:1:14: secrets[\"\\nullu0A09\"]: invalid secret name: ");
    ck_assert_ptr_null(strchr(err, '\n'));
    load_bad("{\"a\\\"b\\\\c\\u001b\": 1}",
             "config.json:1:2: [\"a\\x22b\\\\c\\x1b\"]: unknown key (expected one of: mount, "
             "defaults, exec, admin, policy, include, backends, secrets)");
}
END_TEST

/* Found by fuzz_config: jansson's syntax error quotes the text near it,
 * here a raw newline escaped by a backslash inside a string. */
START_TEST(errors_quoting_config_text_stay_one_line)
{
    load_bad("{\"a\\\nb\": 1}", "config.json:2:1: invalid escape near '\"a\\\\n'");
    ck_assert_ptr_null(strchr(err, '\n'));
    /* ... and a backend type that is not one, quoted by backend.c. */
    load_bad("{\"backends\": {\"v\": {\"type\": \"v\\nault\"}}}",
             "config.json:1:29: backends.v.type: unknown backend type 'v\\nault' (known: file, "
             "vault, aws, azure, gcp)");
    /* ... and a backend's own message about a key too long to be located. */
    char json[512];
    snprintf(json, sizeof(json), "{\"backends\": {\"l\": {\"type\": \"file\", \"path\": \"/\", "
             "\"a\\n%0130d\": 1}}}", 0);
    load_bad_prefix(json, "config.json:1:20: backends.l: a\\n0000");
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* exec --mount-from reads the host's config: its backends' paths are the
 * host's, so only types, common keys and references are checked. */
START_TEST(backend_types_only)
{
    struct config *c = NULL;
    char path[256];
    snprintf(path, sizeof(path), "%s/host.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"backends\": {\"local\": {\"type\": \"file\", \"path\": \"/nonexistent/s\"},\n"
               " \"v\": {\"type\": \"vault\", \"address\": \"https://127.0.0.1:1\",\n"
               "       \"ca_file\": \"/nonexistent/ca.pem\"}},\n"
               " \"secrets\": {\"x\": {\"from\": \"local:x\", \"env\": \"X_FILE\"},\n"
               "             \"y\": \"v:kv/app#k\"}}\n");
    fclose(f);
    /* As mount reads it: the folder is checked and missing. */
    ck_assert_int_eq(cfg_load(path, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/s: No such file or directory"));
    ck_assert_int_eq(cfg_load_opts(path, CFG_BACKEND_TYPES_ONLY, &c, err, sizeof(err)), 0);
    ck_assert_uint_eq(c->n_secrets, 2);
    ck_assert_str_eq(backend_conf_type(c->backends[cfg_backend_index(c, "v")].conf), "vault");
    /* Such a conf makes no backend. */
    struct backend *b = NULL;
    struct backend_env env = {0};
    ck_assert_int_eq(backend_new(&env, "local", c->backends[0].conf, &b, err, sizeof(err)),
                     -EINVAL);
    ck_assert_ptr_null(b);
    cfg_free(c);
    c = NULL;

    /* What does not depend on the host is still checked. */
    static const char *const bad[][2] = {
        {"{\"backends\": {\"l\": {\"type\": \"nope\"}}}", "unknown backend type"},
        {"{\"backends\": {\"l\": {\"type\": \"file\", \"max_size\": 0}}}", "max_size"},
        {"{\"backends\": {\"l\": {\"type\": \"file\"}}, \"secrets\": {\"x\": \"l:a?version=2\"}}",
         "does not support ?version="},
        {"{\"secrets\": {\"x\": \"nobackend:x\"}}", "unknown backend 'nobackend'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(bad[i][0], f);
        fclose(f);
        ck_assert_int_eq(cfg_load_opts(path, CFG_BACKEND_TYPES_ONLY, &c, err, sizeof(err)),
                         -EINVAL);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(err, bad[i][1]), "case %zu: %s", i, err);
    }
    unlink(path);
}
END_TEST

START_TEST(load_file_errors)
{
    struct config *c = NULL;
    ck_assert_int_eq(cfg_load("/nonexistent/config.json", &c, err, sizeof(err)), -ENOENT);
    ck_assert_str_eq(err, "/nonexistent/config.json: cannot open: No such file or directory");
    ck_assert_int_eq(cfg_load("/", &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(c);

    char path[256];
    snprintf(path, sizeof(path), "%s/c.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\n\"secrets\": {\"x\": \"nobackend:x\"}\n}\n");
    fclose(f);
    ck_assert_int_eq(cfg_load(path, &c, err, sizeof(err)), -EINVAL);
    char want[512];
    snprintf(want, sizeof(want), "%s:2:18: secrets.x: unknown backend 'nobackend'", path);
    ck_assert_str_eq(err, want);
    unlink(path);
}
END_TEST

/* ---- runsecrets exec: the "exec" object and the per-secret exec keys ---- */

START_TEST(exec_defaults)
{
    struct config *c = load_ok("{" BACKENDS ", \"secrets\": {\"a\": \"local:a\", "
                               "\"b\": {\"from\": \"local:b\"}}}");
    ck_assert_int_eq(c->exec.wait, CFG_DEFAULT_EXEC_WAIT);
    ck_assert_int_eq(c->exec.stop_grace, CFG_DEFAULT_EXEC_STOP_GRACE);
    ck_assert_int_eq(c->exec.debounce, CFG_DEFAULT_EXEC_DEBOUNCE);
    ck_assert_int_eq(CFG_DEFAULT_EXEC_WAIT, 30000);
    ck_assert_int_eq(CFG_DEFAULT_EXEC_STOP_GRACE, 10000);
    ck_assert_int_eq(CFG_DEFAULT_EXEC_DEBOUNCE, 5000);
    for (size_t i = 0; i < c->n_secrets; i++) {
        ck_assert(c->secrets[i].required);
        ck_assert_ptr_null(c->secrets[i].env);
        ck_assert_int_eq(c->secrets[i].on_change, CFG_ON_CHANGE_NONE);
        ck_assert_int_eq(c->secrets[i].on_change_signal, 0);
    }
    cfg_free(c);
    c = load_ok("{\"exec\": {}}");
    ck_assert_int_eq(c->exec.wait, CFG_DEFAULT_EXEC_WAIT);
    ck_assert_int_eq(c->exec.debounce, CFG_DEFAULT_EXEC_DEBOUNCE);
    cfg_free(c);
}
END_TEST

START_TEST(exec_object_parsed)
{
    struct config *c = load_ok("{\"exec\": {\"wait\": \"1m\", \"stop_grace\": 0, \"debounce\": \"250ms\"}}");
    ck_assert_int_eq(c->exec.wait, 60000);
    ck_assert_int_eq(c->exec.stop_grace, 0);
    ck_assert_int_eq(c->exec.debounce, 250);
    cfg_free(c);
    /* Zero in every spelling a duration has; 1h is the bound, included. */
    c = load_ok("{\"exec\": {\"wait\": 3600, \"stop_grace\": \"0s\", \"debounce\": \"0h0m\"}}");
    ck_assert_int_eq(c->exec.wait, 3600000);
    ck_assert_int_eq(c->exec.stop_grace, 0);
    ck_assert_int_eq(c->exec.debounce, 0);
    cfg_free(c);
    c = load_ok("{\"exec\": {\"wait\": \"1h\", \"stop_grace\": \"0\", \"debounce\": \"0ms\"}}");
    ck_assert_int_eq(c->exec.wait, 3600000);
    ck_assert_int_eq(c->exec.stop_grace, 0);
    ck_assert_int_eq(c->exec.debounce, 0);
    cfg_free(c);
}
END_TEST

START_TEST(exec_secret_keys_parsed)
{
    struct config *c = load_ok("{" BACKENDS ", \"secrets\": {"
                               "\"db_password\": {\"from\": \"local:a\", \"required\": false, "
                               "\"env\": \"DB_PASSWORD_FILE\", \"on_change\": \"restart\"},"
                               "\"b\": {\"from\": \"local:b\", \"required\": true, \"on_change\": \"signal:SIGHUP\"},"
                               "\"c\": {\"from\": \"local:c\", \"on_change\": \"signal:usr1\", \"env\": \"_c9\"},"
                               "\"d\": {\"from\": \"local:d\", \"on_change\": \"signal:SigWinch\"},"
                               "\"e\": {\"from\": \"local:e\", \"on_change\": \"none\"}}}");
    const struct cfg_secret *s = c->secrets;
    ck_assert(!s[0].required);
    ck_assert_str_eq(s[0].env, "DB_PASSWORD_FILE");
    ck_assert_int_eq(s[0].on_change, CFG_ON_CHANGE_RESTART);
    ck_assert_int_eq(s[0].on_change_signal, 0);
    ck_assert(s[1].required);
    ck_assert_ptr_null(s[1].env);
    ck_assert_int_eq(s[1].on_change, CFG_ON_CHANGE_SIGNAL);
    ck_assert_int_eq(s[1].on_change_signal, SIGHUP);
    ck_assert_str_eq(s[2].env, "_c9");
    ck_assert_int_eq(s[2].on_change, CFG_ON_CHANGE_SIGNAL);
    ck_assert_int_eq(s[2].on_change_signal, SIGUSR1);
    ck_assert_int_eq(s[3].on_change_signal, SIGWINCH);
    ck_assert_int_eq(s[4].on_change, CFG_ON_CHANGE_NONE);
    ck_assert_int_eq(s[4].on_change_signal, 0);
    cfg_free(c);

    /* Every signal the message offers is accepted, with and without SIG. */
    static const struct { const char *name; int sig; } sigs[] = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
        {"TERM", SIGTERM}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM}, {"CONT", SIGCONT},
        {"ABRT", SIGABRT}, {"PIPE", SIGPIPE}, {"URG", SIGURG},
    };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        for (int pre = 0; pre < 2; pre++) {
            char json[512];
            snprintf(json, sizeof(json), "{" BACKENDS ", \"secrets\": {\"a\": {\"from\": \"local:a\", "
                     "\"on_change\": \"signal:%s%s\"}}}", pre ? "SIG" : "", sigs[i].name);
            c = load_ok(json);
            ck_assert_int_eq(c->secrets[0].on_change, CFG_ON_CHANGE_SIGNAL);
            ck_assert_int_eq(c->secrets[0].on_change_signal, sigs[i].sig);
            cfg_free(c);
        }
    }

    /* 128 characters is the longest name. */
    char json[512], name[130];
    memset(name, 'A', 128);
    name[128] = '\0';
    snprintf(json, sizeof(json), "{" BACKENDS ", \"secrets\": {\"a\": {\"from\": \"local:a\", "
             "\"env\": \"%s\"}}}", name);
    c = load_ok(json);
    ck_assert_str_eq(c->secrets[0].env, name);
    cfg_free(c);
}
END_TEST

START_TEST(exec_defaults_inherited)
{
    struct config *c = load_ok("{\"defaults\": {\"required\": false, \"on_change\": \"signal:HUP\"}, "
                               BACKENDS ", \"secrets\": {"
                               "\"a\": \"local:a\","
                               "\"b\": {\"from\": \"local:b\"},"
                               "\"c\": {\"from\": \"local:c\", \"required\": true, \"on_change\": \"none\"},"
                               "\"d\": {\"from\": \"local:d\", \"on_change\": \"restart\"}}}");
    const struct cfg_secret *s = c->secrets;
    for (int i = 0; i < 2; i++) {
        ck_assert(!s[i].required);
        ck_assert_int_eq(s[i].on_change, CFG_ON_CHANGE_SIGNAL);
        ck_assert_int_eq(s[i].on_change_signal, SIGHUP);
    }
    ck_assert(s[2].required);
    ck_assert_int_eq(s[2].on_change, CFG_ON_CHANGE_NONE);
    ck_assert_int_eq(s[2].on_change_signal, 0);
    ck_assert(!s[3].required);
    ck_assert_int_eq(s[3].on_change, CFG_ON_CHANGE_RESTART);
    ck_assert_int_eq(s[3].on_change_signal, 0);
    cfg_free(c);
}
END_TEST

#define DUR_HINT "expected a duration such as \"90s\", \"5m\", \"1h30m\", \"250ms\" or a number of seconds"

START_TEST(bad_exec)
{
    load_bad("{\"exec\": []}", "config.json:1:10: exec: expected an object, got an array");
    load_bad("{\"exec\": {\"wiat\": \"1s\"}}",
             "config.json:1:11: exec.wiat: unknown key (expected one of: wait, stop_grace, debounce)");
    load_bad("{\"exec\": {\"wait\": \"2h\"}}", "config.json:1:19: exec.wait: at most 1h");
    load_bad("{\"exec\": {\"wait\": 0}}",
             "config.json:1:19: exec.wait: invalid duration 0: must be greater than zero");
    load_bad("{\"exec\": {\"wait\": \"0s\"}}",
             "config.json:1:19: exec.wait: invalid duration \"0s\": must be greater than zero");
    load_bad("{\"exec\": {\"stop_grace\": \"-1s\"}}",
             "config.json:1:25: exec.stop_grace: invalid duration \"-1s\": must be positive");
    load_bad("{\"exec\": {\"stop_grace\": -1}}",
             "config.json:1:25: exec.stop_grace: invalid duration -1: must be greater than zero");
    load_bad("{\"exec\": {\"stop_grace\": \"0x\"}}",
             "config.json:1:25: exec.stop_grace: invalid duration \"0x\": unknown unit 'x' (use d, h, m, s or ms)");
    load_bad("{\"exec\": {\"debounce\": \"0hs\"}}",
             "config.json:1:23: exec.debounce: invalid duration \"0hs\": unknown unit 'hs' (use d, h, m, s or ms)");
    load_bad("{\"exec\": {\"debounce\": \"1h1ms\"}}", "config.json:1:23: exec.debounce: at most 1h");
    load_bad("{\"exec\": {\"debounce\": true}}",
             "config.json:1:23: exec.debounce: " DUR_HINT ", got true");
}
END_TEST

/* A secret "db" with its from and then the given keys. */
#define EX(keys) "{" BACKENDS ", \"secrets\": {\"db\": {\"from\": \"local:db\", " keys "}}}"
#define ON_CHANGE_HINT "expected \"none\", \"restart\" or \"signal:NAME\" with NAME one of HUP, INT, " \
    "QUIT, USR1, USR2, TERM, WINCH, ALRM, CONT, ABRT, PIPE, URG (the SIG prefix is optional)"
#define ENV_NOT_A_NAME "' is not an environment variable name (letters, digits and '_', not " \
    "starting with a digit)"

START_TEST(bad_exec_secret_keys)
{
    load_bad(EX("\"required\": \"yes\""),
             "config.json:1:132: secrets.db.required: expected true or false, got a string");
    load_bad(EX("\"required\": 1"),
             "config.json:1:132: secrets.db.required: expected true or false, got an integer");

    load_bad(EX("\"env\": 5"), "config.json:1:127: secrets.db.env: expected an environment variable "
             "name such as \"DB_PASSWORD_FILE\", got an integer");
    load_bad(EX("\"env\": \"DB-PASSWORD\""), "config.json:1:127: secrets.db.env: 'DB-PASSWORD" ENV_NOT_A_NAME);
    load_bad(EX("\"env\": \"1X\""), "config.json:1:127: secrets.db.env: '1X" ENV_NOT_A_NAME);
    load_bad(EX("\"env\": \"\""), "config.json:1:127: secrets.db.env: '" ENV_NOT_A_NAME);
    load_bad(EX("\"env\": \"A B\""), "config.json:1:127: secrets.db.env: 'A B" ENV_NOT_A_NAME);
    load_bad(EX("\"env\": \"A\\nB\""), "config.json:1:127: secrets.db.env: 'A\\nB" ENV_NOT_A_NAME);
    load_bad(EX("\"env\": \"RUNSECRETS_CONFIG\""), "config.json:1:127: secrets.db.env: "
             "'RUNSECRETS_CONFIG': names starting with RUNSECRETS_ are reserved for runsecrets");
    load_bad(EX("\"env\": \"LD_PRELOAD\""), "config.json:1:127: secrets.db.env: 'LD_PRELOAD': the "
             "dynamic loader reads LD_ variables, so it would load the secret as code");
#define A10 "AAAAAAAAAA"
#define A60 A10 A10 A10 A10 A10 A10
    char json[512], name[130];
    memset(name, 'A', 129);
    name[129] = '\0';
    snprintf(json, sizeof(json), EX("\"env\": \"%s\""), name);
    load_bad(json, "config.json:1:127: secrets.db.env: '" A60 "...' is longer than 128 characters");

    load_bad(EX("\"on_change\": 1"),
             "config.json:1:133: secrets.db.on_change: " ON_CHANGE_HINT ", got an integer");
    load_bad(EX("\"on_change\": \"reload\""),
             "config.json:1:133: secrets.db.on_change: unknown value 'reload'; " ON_CHANGE_HINT);
    load_bad(EX("\"on_change\": \"Restart\""),
             "config.json:1:133: secrets.db.on_change: unknown value 'Restart'; " ON_CHANGE_HINT);
    load_bad(EX("\"on_change\": \"signal:KILL\""),
             "config.json:1:133: secrets.db.on_change: 'signal:KILL' is refused: KILL and STOP cannot "
             "be caught, so the application could not act on them (\"restart\" starts it again); "
             ON_CHANGE_HINT);
    load_bad(EX("\"on_change\": \"signal:sigstop\""),
             "config.json:1:133: secrets.db.on_change: 'signal:sigstop' is refused: KILL and STOP cannot "
             "be caught, so the application could not act on them (\"restart\" starts it again); "
             ON_CHANGE_HINT);
    load_bad(EX("\"on_change\": \"signal:FOO\""),
             "config.json:1:133: secrets.db.on_change: unknown signal in 'signal:FOO'; " ON_CHANGE_HINT);
    load_bad(EX("\"on_change\": \"signal:\""),
             "config.json:1:133: secrets.db.on_change: unknown signal in 'signal:'; " ON_CHANGE_HINT);
    load_bad(EX("\"on_change\": \"signal:9\""),
             "config.json:1:133: secrets.db.on_change: unknown signal in 'signal:9'; " ON_CHANGE_HINT);
    load_bad(EX("\"on_change\": \"signal:SIG'\\u001b\""),
             "config.json:1:133: secrets.db.on_change: unknown signal in 'signal:SIG\\x27\\x1b'; "
             ON_CHANGE_HINT);
}
END_TEST

START_TEST(bad_exec_defaults)
{
    load_bad("{\"defaults\": {\"env\": \"X\"}}",
             "config.json:1:15: defaults.env: env cannot be a default: each secret names its own variable");
    load_bad("{\"defaults\": {\"required\": \"no\"}}",
             "config.json:1:27: defaults.required: expected true or false, got a string");
    load_bad("{\"defaults\": {\"on_change\": \"signal:STOP\"}}",
             "config.json:1:28: defaults.on_change: 'signal:STOP' is refused: KILL and STOP cannot "
             "be caught, so the application could not act on them (\"restart\" starts it again); "
             ON_CHANGE_HINT);
    load_bad("{\"defaults\": {\"mod\": 1}}",
             "config.json:1:15: defaults.mod: unknown key (expected one of: refresh, max_stale, mode, "
             "uid, gid, required, on_change)");
}
END_TEST

START_TEST(duplicate_env)
{
    load_bad("{" BACKENDS ", \"secrets\": {\"a\": {\"from\": \"local:a\", \"env\": \"X\"}, "
             "\"b\": {\"from\": \"local:b\", \"env\": \"Y\"}, \"c\": {\"from\": \"local:c\", \"env\": \"X\"}}}",
             "config.json:1:201: secrets.c.env: X is already the env of secret 'a': each variable "
             "names one file");
    /* Two conflicts: the one met first in the file is reported (r, not s). */
    load_bad("{" BACKENDS ", \"secrets\": {\"p\": {\"from\": \"local:p\", \"env\": \"B\"}, "
             "\"q\": {\"from\": \"local:q\", \"env\": \"A\"}, \"r\": {\"from\": \"local:r\", \"env\": \"B\"}, "
             "\"s\": {\"from\": \"local:s\", \"env\": \"A\"}}}",
             "config.json:1:201: secrets.r.env: B is already the env of secret 'p': each variable "
             "names one file");
    /* Same variable under a different case is another variable. */
    struct config *c = load_ok("{" BACKENDS ", \"secrets\": {\"a\": {\"from\": \"local:a\", \"env\": \"X\"}, "
                               "\"b\": {\"from\": \"local:b\", \"env\": \"x\"}}}");
    ck_assert_str_eq(c->secrets[0].env, "X");
    ck_assert_str_eq(c->secrets[1].env, "x");
    cfg_free(c);
}
END_TEST

/* A config refused once secrets with env are loaded frees them (the ASan
 * build's leak check). */
START_TEST(env_freed_on_errors)
{
    load_bad("{" BACKENDS ", \"secrets\": {\"a\": {\"from\": \"local:a\", \"env\": \"X\"}, "
             "\"a/b\": {\"from\": \"local:b\", \"env\": \"Y\"}}}",
             "config.json:1:131: secrets.a/b: 'a' is also a secret, so it cannot be a directory");
    load_bad_prefix("{" BACKENDS ", \"secrets\": {\"a\": {\"from\": \"local:a\", \"env\": \"X\", "
                    "\"refresh\": \"2h\"}}}", "config.json:1:");
}
END_TEST

/* The "admin" object: a token file in the temp dir with the given mode. */
static void write_token(const char *name, unsigned mode)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}

static void remove_token(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

#define ADM(obj) "{\"admin\": " obj ", " BACKENDS "}"

START_TEST(admin_parsed)
{
    struct config *c = load_ok("{" BACKENDS "}");
    ck_assert(!c->admin.given);
    ck_assert_ptr_null(c->admin.listen);
    ck_assert_uint_eq(c->admin.mode, CFG_ADMIN_DEFAULT_MODE);
    cfg_free(c);

    write_token("token", 0600);
    c = load_ok(ADM("{\"listen\": \"unix:/run/x/admin.sock\", \"mode\": \"0660\", \"group\": 0}"));
    ck_assert(c->admin.given);
    ck_assert_str_eq(c->admin.listen, "unix:/run/x/admin.sock");
    ck_assert_uint_eq(c->admin.mode, 0660);
    ck_assert(c->admin.has_group);
    ck_assert_uint_eq(c->admin.gid, 0);
    cfg_free(c);
    c = load_ok(ADM("{\"listen\": \"[::1]:9464\", \"group\": \"root\", \"mode\": \"0600\"}"));
    ck_assert_uint_eq(c->admin.gid, 0);
    cfg_free(c);
    c = load_ok(ADM("{\"listen\": \"10.0.0.1:9464\", \"allow_remote\": true, "
                    "\"token_file\": \"@DIR@/token\"}"));
    ck_assert(c->admin.allow_remote);
    ck_assert_ptr_nonnull(c->admin.token_file);
    cfg_free(c);
    c = load_ok(ADM("{\"listen\": \"none\", \"group\": \"4242\"}"));
    ck_assert_uint_eq(c->admin.gid, 4242);
    cfg_free(c);
    remove_token("token");
}
END_TEST

START_TEST(bad_admin)
{
    char want[1024];
    load_bad(ADM("[]"), "config.json:1:11: admin: expected an object, got an array");
    load_bad(ADM("{\"lisen\": \"none\"}"),
             "config.json:1:12: admin.lisen: unknown key (expected one of: listen, mode, group, "
             "allow_remote, token_file)");
    load_bad(ADM("{\"listen\": 9464}"),
             "config.json:1:22: admin.listen: expected an address such as "
             "\"unix:/run/runsecrets/admin.sock\" or \"127.0.0.1:9464\", got an integer");
    load_bad(ADM("{\"listen\": \"localhost:9464\"}"),
             "config.json:1:22: admin.listen: expected a numeric IP address (host names are not "
             "looked up)");
    load_bad(ADM("{\"listen\": \"127.0.0.1:0\"}"),
             "config.json:1:22: admin.listen: port out of range (1-65535)");
    load_bad(ADM("{\"listen\": \"unix:admin.sock\"}"),
             "config.json:1:22: admin.listen: a unix socket needs an absolute path "
             "(unix:/run/x.sock)");
    load_bad(ADM("{\"mode\": \"0666\"}"),
             "config.json:1:20: admin.mode: mode 0666 lets every user connect (write bit for "
             "others): give access through \"group\" instead");
    load_bad(ADM("{\"mode\": \"0700\"}"),
             "config.json:1:20: admin.mode: mode 0700 has execute bits: a socket needs only read "
             "and write");
    load_bad(ADM("{\"mode\": \"0060\"}"),
             "config.json:1:20: admin.mode: mode 0060 must let the owner read and write (0600)");
    load_bad(ADM("{\"mode\": \"rw\"}"),
             "config.json:1:20: admin.mode: expected an octal mode string such as \"0440\", got an "
             "invalid string");
    load_bad(ADM("{\"group\": \"no-such-group-rs\"}"),
             "config.json:1:21: admin.group: unknown group 'no-such-group-rs'");
    load_bad(ADM("{\"group\": true}"),
             "config.json:1:21: admin.group: expected a group name or number, got a boolean");
    load_bad(ADM("{\"allow_remote\": 1}"),
             "config.json:1:28: admin.allow_remote: expected true or false, got an integer");
    load_bad(ADM("{\"listen\": \"10.0.0.1:9464\"}"),
             "config.json:1:22: admin.listen: 10.0.0.1:9464 is not a loopback address: set "
             "\"allow_remote\": true (and a \"token_file\") to serve other hosts");
    load_bad(ADM("{\"listen\": \"0.0.0.0:9464\", \"allow_remote\": true}"),
             "config.json:1:54: admin.allow_remote: allow_remote needs \"token_file\": remote "
             "clients must present a bearer token");
    load_bad(ADM("{\"token_file\": \"token\"}"),
             "config.json:1:26: admin.token_file: expected an absolute path");
    snprintf(want, sizeof(want), "config.json:1:26: admin.token_file: cannot read %s/missing: "
             "No such file or directory", dir);
    load_bad(ADM("{\"token_file\": \"@DIR@/missing\"}"), want);
    write_token("open", 0644);
    snprintf(want, sizeof(want), "config.json:1:26: admin.token_file: %s/open is readable by "
             "every user (mode 0644): the token is a password; chmod 0600 it", dir);
    load_bad(ADM("{\"token_file\": \"@DIR@/open\"}"), want);
    remove_token("open");
    write_token("grp", 0640);
    snprintf(want, sizeof(want), "config.json:1:26: admin.token_file: %s/grp is readable by "
             "its group (mode 0640): the token is a password; chmod 0600 it", dir);
    load_bad(ADM("{\"token_file\": \"@DIR@/grp\"}"), want);
    remove_token("grp");
    snprintf(want, sizeof(want), "config.json:1:26: admin.token_file: %s is not a regular file",
             dir);
    load_bad(ADM("{\"token_file\": \"@DIR@\"}"), want);
}
END_TEST

/* "policy" (policy/rules.h): absent is NULL (file modes only); its errors
 * and warnings are located like every other key's. */
#define POL(p) "{" BACKENDS ", \"policy\": " p "}"

START_TEST(policy_parsed)
{
    struct config *c = load_ok("{" BACKENDS "}");
    ck_assert_ptr_null(c->policy);
    ck_assert_uint_eq(c->n_warnings, 0);
    cfg_free(c);
    c = load_ok(POL("{\"default\": \"allow\", \"rules\": [{\"secrets\": [\"db/*\"], "
                    "\"deny\": {\"uids\": [\"root\", 1000]}}]}"));
    ck_assert_ptr_nonnull(c->policy);
    ck_assert_uint_eq(c->policy->n_rules, 1);
    ck_assert_int_eq(c->policy->dflt, POLICY_ALLOW);
    cfg_free(c);
    c = load_ok("{\n"
                "  " BACKENDS ",\n"
                "  \"policy\": {\n"
                "    \"missing_ok\": true,\n"
                "    \"rules\": [\n"
                "      {\"secrets\": [\"a\"], \"allow\": {\"exe\": [\"/nonexistent/app\"]}}\n"
                "    ]\n"
                "  }\n"
                "}\n");
    ck_assert_uint_eq(c->n_warnings, 1);
    ck_assert_str_eq(c->warnings[0], "config.json:6:44: policy.rules[0].allow.exe[0]: "
                     "/nonexistent/app: No such file or directory (missing_ok: this rule matches "
                     "no executable there until a reload finds it)");
    cfg_free(c);
}
END_TEST

START_TEST(bad_policy)
{
    load_bad("{\n"
             "  " BACKENDS ",\n"
             "  \"policy\": {\n"
             "    \"rules\": [\n"
             "      {\"secrets\": [\"a\"], \"allow\": {\"uids\": [1]}},\n"
             "      {\"secrets\": [\"b\"], \"allow\": {\"exe\": [\"/nonexistent/app\"]}}\n"
             "    ]\n"
             "  }\n"
             "}\n",
             "config.json:6:44: policy.rules[1].allow.exe[0]: /nonexistent/app: No such file or "
             "directory");
    load_bad(POL("[]"), "config.json:1:91: policy: expected an object, got an array");
    load_bad(POL("{\"rules\": [], \"dflt\": \"deny\"}"),
             "config.json:1:105: policy.dflt: unknown key (expected one of: default, rules, audit, "
             "missing_ok)");
    load_bad(POL("{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [1]}, \"deny\": "
                 "{\"uids\": [2]}}]}"),
             "config.json:1:145: policy.rules[0].deny: a rule has one of \"allow\" and \"deny\", not "
             "both: write two rules");
    load_bad(POL("{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {}}]}"),
             "config.json:1:130: policy.rules[0].allow: empty: it would match every caller by "
             "accident; name at least one of uids, gids, exe, cgroups, containers, pids_ns");
    load_bad(POL("{\"rules\": [{\"secrets\": [\"x\", \"[\"], \"allow\": {\"uids\": [1]}}]}"),
             "config.json:1:120: policy.rules[0].secrets[1]: bad glob: '[' at character 1 is not "
             "closed by ']'");
    load_bad(POL("{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"gid\": [1]}}]}"),
             "config.json:1:131: policy.rules[0].allow.gid: unknown key (expected one of: uids, "
             "gids, exe, cgroups, containers, pids_ns)");
    load_bad(POL("{\"rules\": [], \"audit\": {\"sink\": \"file:x\"}}"),
             "config.json:1:123: policy.audit.sink: the audit file must be an absolute path");
    load_bad(POL("{}"), "config.json:1:91: policy: missing \"rules\" (an array of {\"secrets\": "
             "[...], \"allow\" or \"deny\": {...}}; [] for the default alone)");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, valid_full);
    tcase_add_test(tc, valid_defaults_and_forms);
    tcase_add_test(tc, bad_syntax);
    tcase_add_test(tc, bad_top_level);
    tcase_add_test(tc, bad_defaults);
    tcase_add_test(tc, bad_backends);
    tcase_add_test(tc, bad_vault_backends);
    tcase_add_test(tc, bad_aws_backends);
    tcase_add_test(tc, bad_secrets);
    tcase_add_test(tc, columns_count_characters);
    tcase_add_test(tc, keys_in_messages_stay_one_line);
    tcase_add_test(tc, errors_quoting_config_text_stay_one_line);
    tcase_add_test(tc, load_file_errors);
    tcase_add_test(tc, exec_defaults);
    tcase_add_test(tc, exec_object_parsed);
    tcase_add_test(tc, exec_secret_keys_parsed);
    tcase_add_test(tc, exec_defaults_inherited);
    tcase_add_test(tc, bad_exec);
    tcase_add_test(tc, bad_exec_secret_keys);
    tcase_add_test(tc, bad_exec_defaults);
    tcase_add_test(tc, duplicate_env);
    tcase_add_test(tc, env_freed_on_errors);
    tcase_add_test(tc, backend_types_only);
    tcase_add_test(tc, admin_parsed);
    tcase_add_test(tc, bad_admin);
    tcase_add_test(tc, policy_parsed);
    tcase_add_test(tc, bad_policy);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(config_suite)
