/* fuzz_policy.c - the access policy's parser and glob matcher
 * (policy/rules.c, policy/glob.c). Byte 0 picks the mode:
 *   bit 0 clear: the rest is a "policy" object's JSON text; bit 1 parses
 *     it with POLICY_PARSE_FORM_ONLY. Whatever parses is asked for
 *     decisions, which must name a rule that names the secret and has the
 *     decision's effect (or the default); and pid 0 must fail closed: what
 *     is allowed without the pid's facts is allowed with any of them.
 *   bit 0 set: the rest is "PATTERN\nSTRING": check, then match (a refused
 *     pattern too: match must never crash or hang on one).
 *   bits 0 and 2 set: an audit line (policy/audit.c) of the rest's bytes as
 *     secret, exe path, cgroup and error ("\n"-separated), into a buffer
 *     of the next byte's size: whatever the bytes and however cut, the
 *     line must be one JSON object naming the decision.
 */
#include "fuzz.h"

#include <errno.h>
#include <jansson.h>
#include "policy/audit.h"
#include "policy/glob.h"
#include "policy/rules.h"

static const char *const secrets[] = {"db/password", "api_key", "admin/root", "a", "a/b/c", ""};

static void decide_all(const struct policy_rules *p, const uint8_t *data, size_t size)
{
    struct policy_proc full, none;
    memset(&full, 0, sizeof(full));
    /* Facts from the input's last bytes, so mutations reach them. */
    uint8_t b[8] = {0};
    for (size_t i = 0; i < sizeof(b) && i < size; i++)
        b[i] = data[size - 1 - i];
    full.pid = 100;
    full.has_pid = true;
    full.uid = b[0] % 4 == 0 ? 0 : 1000u + b[0] % 3;
    full.gid = 1000u + b[1] % 3;
    full.n_groups = b[2] % 3;
    full.groups[0] = 2000;
    full.groups[1] = 1000u + b[3] % 3;
    full.has_exe = b[4] & 1;
    full.exe_dev = 1;
    full.exe_ino = b[4];
    snprintf(full.cgroup, sizeof(full.cgroup), "%s",
             b[5] % 3 == 0 ? "" : b[5] % 3 == 1 ? "/system.slice/sshd.service"
                                                 : "/system.slice/docker-0123456789abcdef.scope");
    full.runtime = b[5] % 3 == 2 ? POLICY_RUNTIME_DOCKER : POLICY_RUNTIME_NONE;
    snprintf(full.container, sizeof(full.container), "%s", b[5] % 3 == 2 ? "0123456789abcdef" : "");
    full.same_pid_ns = b[6] & 1;
    memset(&none, 0, sizeof(none));
    none.uid = full.uid;
    none.gid = full.gid;
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        int r_full = -2, r_none = -2;
        enum policy_decision d_full = policy_decide(p, secrets[i], &full, &r_full);
        enum policy_decision d_none = policy_decide(p, secrets[i], &none, &r_none);
        FUZZ_ASSERT(r_full >= -1 && r_full < (int)p->n_rules);
        FUZZ_ASSERT(r_none >= -1 && r_none < (int)p->n_rules);
        FUZZ_ASSERT(r_full >= 0 ? p->rules[r_full].effect == d_full : d_full == p->dflt);
        FUZZ_ASSERT(r_none >= 0 ? p->rules[r_none].effect == d_none : d_none == p->dflt);
        if (d_none == POLICY_ALLOW)
            FUZZ_ASSERT(d_full == POLICY_ALLOW);
    }
}

static void policy(const uint8_t *data, size_t size, unsigned flags)
{
    json_error_t jerr;
    struct policy_error e;
    struct policy_rules *p = NULL;
    char msg[1024];
    json_t *v = json_loadb((const char *)data, size, 0, &jerr);
    if (!v)
        return;
    int rc = policy_rules_parse(v, flags, &p, &e);
    if (rc == 0) {
        FUZZ_ASSERT(p != NULL);
        for (size_t i = 0; i < p->n_warnings; i++) {
            policy_error_format(&p->warnings[i], msg, sizeof(msg));
            FUZZ_ASSERT(strchr(msg, '\n') == NULL);
        }
        for (size_t i = 0; i < p->n_rules; i++)
            FUZZ_ASSERT(p->rules[i].n_secrets > 0 && p->rules[i].match.keys != 0);
        decide_all(p, data, size);
        policy_rules_free(p);
    } else {
        FUZZ_ASSERT(rc == -EINVAL || rc == -ENOMEM);
        FUZZ_ASSERT(p == NULL && e.msg[0] != '\0');
        policy_error_format(&e, msg, sizeof(msg));
        FUZZ_ASSERT(strchr(msg, '\n') == NULL);
    }
    json_decref(v);
}

static void fuzz_glob(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size), err[256] = "";
    char *nl = strchr(s, '\n');
    const char *str = "";
    if (nl) {
        *nl = '\0';
        str = nl + 1;
    }
    if (policy_glob_check(s, err, sizeof(err)) == 0) {
        FUZZ_ASSERT(err[0] == '\0');
        /* A pattern with nothing special matches itself. */
        if (!strpbrk(s, "*?[\\"))
            FUZZ_ASSERT(policy_glob_match(s, s));
        FUZZ_ASSERT(policy_glob_match("**", str));
    } else {
        FUZZ_ASSERT(strncmp(err, "bad glob: ", 10) == 0);
    }
    (void)policy_glob_match(s, str);
    free(s);
}

static void fuzz_audit(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    size_t cap = 16 + (size_t)data[0] * 40;   /* 16 .. 10,216 bytes */
    char *s = fuzz_cstr(data + 1, size - 1);
    char *f[4] = {s, NULL, NULL, NULL};
    for (int i = 1; i < 4 && f[i - 1]; i++) {
        char *nl = strchr(f[i - 1], '\n');
        if (nl) {
            *nl = '\0';
            f[i] = nl + 1;
        }
    }
    struct policy_proc who = {.pid = 42, .uid = 1, .gid = 2, .has_pid = true, .has_exe = true,
                              .runtime = POLICY_RUNTIME_DOCKER};
    snprintf(who.exe_path, sizeof(who.exe_path), "%s", f[1] ? f[1] : "");
    snprintf(who.cgroup, sizeof(who.cgroup), "%s", f[2] ? f[2] : "");
    snprintf(who.container, sizeof(who.container), "%s", f[2] ? f[2] : "");
    struct policy_audit_line a = {.secret = f[0], .backend = f[3], .who = &who,
                                  .d = (size & 1) ? POLICY_DENY : POLICY_ALLOW, .rule = (int)size % 7 - 1,
                                  .error = f[3], .repeats = size};
    char *out = malloc(cap);
    FUZZ_ASSERT(out != NULL);
    size_t n = policy_audit_format(out, cap, &a, data[0] & 1);
    FUZZ_ASSERT(n < cap && out[n] == '\0' && out[n - 1] == '\n');
    json_error_t je;
    json_t *o = json_loadb(out, n, 0, &je);
    /* A buffer too small for even the fixed fields may hold a cut line;
     * from 512 bytes on, every line is whole JSON. */
    if (cap >= 512) {
        FUZZ_ASSERT(o != NULL);
        FUZZ_ASSERT(json_is_string(json_object_get(o, "decision")));
    }
    json_decref(o);
    free(out);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if ((data[0] & 5) == 5)
        fuzz_audit(data + 1, size - 1);
    else if (data[0] & 1)
        fuzz_glob(data + 1, size - 1);
    else
        policy(data + 1, size - 1, data[0] & 2 ? POLICY_PARSE_FORM_ONLY : 0);
    return 0;
}
