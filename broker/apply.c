/* apply.c - broker_apply: serve a new configuration live
 * (docs/internals/reload.md says why each step comes where it does). */
#include "broker/reload.h"
#include "broker/broker.h"
#include "broker/hardening.h"
#include "backends/backend.h"
#include "backends/http/http.h"
#include "engine/scheduler.h"
#include "engine/store.h"
#include "fuse/fs.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "policy/audit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_ref(const struct secret_ref *a, const struct secret_ref *b)
{
    return same_str(a->path, b->path) && same_str(a->version, b->version) &&
           same_str(a->stage, b->stage) && same_str(a->field, b->field);
}

/* Every setting but the source (reference and backend). */
static bool same_settings(const struct cfg_secret *a, const struct cfg_secret *b)
{
    return a->attrs.refresh == b->attrs.refresh && a->attrs.max_stale == b->attrs.max_stale &&
           a->attrs.mode == b->attrs.mode && a->attrs.uid == b->attrs.uid &&
           a->attrs.gid == b->attrs.gid && a->required == b->required &&
           same_str(a->env, b->env) && a->on_change == b->on_change &&
           a->on_change_signal == b->on_change_signal;
}

static bool same_admin(const struct cfg_admin *a, const struct cfg_admin *b)
{
    return a->given == b->given && same_str(a->listen, b->listen) && a->mode == b->mode &&
           a->has_group == b->has_group && (!a->has_group || a->gid == b->gid) &&
           a->allow_remote == b->allow_remote && same_str(a->token_file, b->token_file);
}

static int cmp_name(const void *a, const void *b)
{
    const struct cfg_secret *x = *(const struct cfg_secret *const *)a;
    const struct cfg_secret *y = *(const struct cfg_secret *const *)b;
    return strcmp(x->name, y->name);
}

/* What the reload changes, decided before anything changes. */
struct plan {
    struct backend **backends;     /* one per next->backends: kept or new */
    bool *built;                   /* per next backend: new (ours until the swap) */
    long *carry;                   /* per next secret: the old index it keeps, or -1 */
    bool *inval;                   /* per next secret: the kernel's attributes go */
    struct broker_applied counts;
};

static void plan_free(struct plan *p, size_t nb)
{
    for (size_t i = 0; p->built && i < nb; i++)
        if (p->built[i])
            backend_free(p->backends[i]);
    free(p->backends);
    free(p->built);
    free(p->carry);
    free(p->inval);
}

/* Kept backends: the same name and the same settings. The others are
 * built now, so a backend that cannot be built fails the reload before
 * anything changed. */
static int plan_backends(struct broker *b, const struct config *next, struct plan *p, char *err,
                         size_t errlen)
{
    const struct config *old = b->cfg;
    for (size_t i = 0; i < next->n_backends; i++) {
        const struct cfg_backend *nb = &next->backends[i];
        long j = cfg_backend_index(old, nb->name);
        if (j >= 0 && backend_conf_same(old->backends[j].conf, nb->conf)) {
            p->backends[i] = b->backends[j];
            p->counts.backends_kept++;
            continue;
        }
        int rc;
        /* The first network backend of a broker that had only local ones. */
        if (!b->http && !backend_conf_has_cap(nb->conf, BACKEND_CAP_LOCAL)) {
            rc = hardening_init_http(err, errlen);
            if (rc == 0)
                rc = http_engine_new(&b->http, err, errlen);
            if (rc < 0)
                return rc;
        }
        char msg[512] = "";
        struct backend_env env = {.http = b->http};
        rc = backend_new(&env, nb->name, nb->conf, &p->backends[i], msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "%s: backends.%s: %s", next->path, nb->name, msg);
            return rc;
        }
        p->built[i] = true;
        p->counts.backends_new++;
    }
    for (size_t j = 0; j < old->n_backends; j++) {
        bool used = false;
        for (size_t i = 0; i < next->n_backends && !used; i++)
            used = p->backends[i] == b->backends[j];
        p->counts.backends_retired += !used;
    }
    return 0;
}

/* Each secret of next against the one of the same name, if any. */
static int plan_secrets(struct broker *b, const struct config *next, struct plan *p)
{
    const struct config *old = b->cfg;
    const struct cfg_secret **byname = calloc(old->n_secrets + 1, sizeof(*byname));
    if (!byname)
        return -ENOMEM;
    for (size_t j = 0; j < old->n_secrets; j++)
        byname[j] = &old->secrets[j];
    qsort(byname, old->n_secrets, sizeof(*byname), cmp_name);
    size_t matched = 0;
    for (size_t i = 0; i < next->n_secrets; i++) {
        const struct cfg_secret *ns = &next->secrets[i], *key = ns;
        const struct cfg_secret **hit = bsearch(&key, byname, old->n_secrets, sizeof(*byname),
                                                cmp_name);
        p->carry[i] = -1;
        if (!hit) {
            p->counts.added++;
            continue;
        }
        matched++;
        const struct cfg_secret *os = *hit;
        size_t j = (size_t)(os - old->secrets);
        /* The same source: the same live backend (kept) and reference. */
        if (p->backends[ns->backend] == b->backends[os->backend] && same_ref(&os->ref, &ns->ref)) {
            p->carry[i] = (long)j;
            if (same_settings(os, ns)) {
                p->counts.kept++;
                continue;
            }
        }
        p->inval[i] = true;
        p->counts.changed++;
    }
    p->counts.removed = old->n_secrets - matched;
    free(byname);
    return 0;
}

int broker_apply(struct broker *b, struct config *next, char *err, size_t errlen)
{
    struct timespec t0;
    struct plan p = {0};
    struct store *st = NULL;
    struct fs_reload *fr = NULL;
    bool paused = false;
    int rc = -ENOMEM;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    err[0] = '\0';
    p.backends = calloc(next->n_backends + 1, sizeof(*p.backends));
    p.built = calloc(next->n_backends + 1, sizeof(*p.built));
    p.carry = calloc(next->n_secrets + 1, sizeof(*p.carry));
    p.inval = calloc(next->n_secrets + 1, sizeof(*p.inval));
    if (!p.backends || !p.built || !p.carry || !p.inval)
        goto fail;
    rc = plan_backends(b, next, &p, err, errlen);
    if (rc == 0)
        rc = plan_secrets(b, next, &p);
    /* A sink that cannot be opened fails the reload, before anything
     * changes; the switch itself is after the swap. */
    if (rc == 0 && b->audit)
        rc = policy_audit_check(policy_audit_of(next->policy), err, errlen);
    if (rc < 0)
        goto fail;

    /* From the pause on nothing writes the store, so the copy misses no
     * update, and no hook runs until the swap is done. Readers go on. */
    scheduler_pause(b->sched);
    paused = true;
    rc = store_new_from(next, p.backends, b->cache, b->store, p.carry, &st);
    if (rc == 0 && b->metrics)
        rc = store_bind_metrics(st, b->metrics);
    if (rc == 0 && b->fs)
        rc = fs_prepare(b->fs, st, &fr, err, errlen);
    if (rc == 0)
        rc = scheduler_apply(b->sched, st, p.backends, next->n_backends, p.carry);
    if (rc < 0)
        goto fail;

    /* Nothing fails from here. */
    if (fr)
        fs_commit(b->fs, fr);
    struct store *old_store = b->store;
    struct config *old_cfg = b->cfg;
    struct backend **old_backends = b->backends;
    b->store = st;
    b->cfg = next;
    b->backends = p.backends;
    p.backends = NULL;
    for (size_t i = 0; i < next->n_backends; i++)
        p.built[i] = false;   /* the broker's now */
    scheduler_resume(b->sched);
    p.counts.ms = clock_elapsed_ms(&t0);
    /* Only an allocation can fail here; the pages then list the previous
     * configuration's secrets until the next reload, which is all. */
    if (b->metrics && store_publish_metrics(st, b->metrics) < 0)
        log_warn("metrics: out of memory: the admin pages list the previous "
                 "configuration's secrets");
    /* The kernel learns what went and what changed; the old generation
     * goes once no request uses it. Then nothing points to the old store
     * or to the retired backends any more. */
    if (fr)
        fs_finish(b->fs, fr, p.inval);
    store_free(old_store);
    for (size_t j = 0; j < old_cfg->n_backends; j++) {
        bool used = false;
        for (size_t i = 0; i < next->n_backends && !used; i++)
            used = b->backends[i] == old_backends[j];
        if (!used) {
            backend_shutdown(old_backends[j]);
            backend_free(old_backends[j]);
        }
    }
    free(old_backends);
    /* The endpoint keeps its socket, mode, group and token (the token is
     * read once, into secure memory): a change is for the next start. */
    if (!same_admin(&old_cfg->admin, &next->admin))
        log_f(LOG_WARN, &(struct log_fields){.path = next->path},
              "\"admin\" changed: the admin endpoint keeps its settings until the broker "
              "restarts");
    cfg_free(old_cfg);
    if (b->audit) {
        char aerr[512];
        if (policy_audit_log_configure(b->audit, policy_audit_of(next->policy), aerr, sizeof(aerr)) < 0)
            log_f(LOG_WARN, &(struct log_fields){.error = aerr},
                  "the audit trail keeps its previous sink");
    }
    b->last_apply = p.counts;
    log_f(LOG_INFO, &(struct log_fields){.path = next->path},
          "configuration applied: secrets %zu added, %zu removed, %zu changed, %zu unchanged; "
          "backends %zu new, %zu kept, %zu retired", p.counts.added, p.counts.removed,
          p.counts.changed, p.counts.kept, p.counts.backends_new, p.counts.backends_kept,
          p.counts.backends_retired);
    plan_free(&p, next->n_backends);
    return 0;

fail:
    if (rc == -ENOMEM && !err[0])
        snprintf(err, errlen, "out of memory");
    fs_abort(fr);
    store_free(st);
    if (paused)
        scheduler_resume(b->sched);
    plan_free(&p, next->n_backends);
    cfg_free(next);
    return rc;
}
