/* lease.c - the leases of dynamic secrets (anything a read answers with a
 * lease_id): recorded per reference path, renewed instead of read again
 * while renewable, revoked at shutdown.
 *
 * Vault revokes a token's leases when the token goes: a lease carries the
 * token generation it was made under, is read anew under a new token, and
 * its value is never planned for past 85% of the token's remaining life.
 */
#include "backends/vault/vault_i.h"
#include "lib/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vault_leases_free(struct lease *l)
{
    while (l) {
        struct lease *n = l->next;
        free(l->key);
        free(l->id);
        free(l);
        l = n;
    }
}

/* v->lock held. */
static struct lease *find_lease(struct vault *v, const char *key)
{
    for (struct lease *l = v->leases; l; l = l->next)
        if (l->current && strcmp(l->key, key) == 0)
            return l;
    return NULL;
}

/* A sys/leases/renew answer: 0 and the seconds granted; 1 when the lease
 * is expired, revoked or past its max TTL (read anew); or an error. */
UNITTEST_STATIC int vault_lease_renew_answer(const struct http_response *r,
                                             struct fetch_result *out, long long *granted,
                                             char *err, size_t errlen)
{
    json_t *root = NULL;
    int rc;
    if (r->status == 400)
        return 1;
    if (r->status != 200)
        return vault_status_error("lease renewal", r, out, err, errlen);
    rc = vault_parse_body("lease renewal", r, &root, err, errlen);
    if (rc == 0)
        *granted = vault_ttl_of(json_object_get(root, "lease_duration"));
    json_decref(root);
    return rc;
}

int vault_renew_lease(struct vault *v, const char *key, struct fetch_result *out, char *err,
                      size_t errlen)
{
    char *id = NULL;
    long long asked = 0;
    unsigned long gen = vault_token_gen(v);
    pthread_mutex_lock(&v->lock);
    struct lease *l = find_lease(v, key);
    /* A lease from an earlier token dies with that token: read anew. */
    if (l && l->renewable && !l->exhausted && clock_mono_ms() < l->expires_ms && l->gen == gen) {
        id = strdup(l->id);
        asked = l->duration_ms / 1000;
    }
    pthread_mutex_unlock(&v->lock);
    if (!id)
        return 1;

    struct http_response r;
    struct secbuf body;
    json_t *req = json_pack("{s:s, s:I}", "lease_id", id, "increment", (json_int_t)asked);
    long long granted = 0;
    int rc;
    http_response_init(&r);
    secbuf_init(&body, 8192);
    rc = req ? vault_dump_json(req, &body, err, errlen) : -ENOMEM;
    if (rc == 0)
        rc = vault_call(v, "POST", "sys/leases/renew", &body, &r, err, errlen);
    if (rc == 0)
        rc = vault_lease_renew_answer(&r, out, &granted, err, errlen);
    if (rc == 0) {
        long long t = clock_mono_ms();
        pthread_mutex_lock(&v->lock);
        l = find_lease(v, key);
        if (l && strcmp(l->id, id) == 0) {
            l->obtained_ms = t;
            l->expires_ms = t + granted * 1000;
            /* Less than asked: the lease is at its max TTL. Respect the
             * grant and fetch new credentials before it runs out. */
            if (granted < asked) {
                l->exhausted = true;
                out->valid_ms = granted * 850;
            } else {
                l->duration_ms = granted * 1000;
                out->valid_ms = granted * 2000 / 3;
            }
        }
        pthread_mutex_unlock(&v->lock);
        out->unchanged = true;
        out->valid_ms = vault_token_bound_ms(v, out->valid_ms);
        struct log_fields lf = {.backend = v->name, .path = key};
        log_f(LOG_INFO, &lf, "vault lease renewed");
    }
    if (out->valid_ms <= 0 && rc == 0)
        out->valid_ms = 1000;
    json_decref(req);
    secbuf_cleanup(&body);
    http_response_cleanup(&r);
    free(id);
    return rc;
}

/* The lease of a read answer: 0 with its id (borrowed from root), duration
 * and renewability; 1 when the answer carries none. */
UNITTEST_STATIC int vault_lease_of(const json_t *root, const char **id, long long *dur,
                                   bool *renewable)
{
    *id = json_string_value(json_object_get(root, "lease_id"));
    *dur = vault_ttl_of(json_object_get(root, "lease_duration"));
    *renewable = json_is_true(json_object_get(root, "renewable"));
    return !*id || !**id || *dur <= 0 ? 1 : 0;
}

/* A new lease for key replaces the current one; the old one stays listed
 * (for revocation at shutdown) until it expires. */
int vault_record_lease(struct vault *v, const char *key, const json_t *root,
                       struct fetch_result *out)
{
    const char *id;
    long long dur;
    bool renewable;
    long long t = clock_mono_ms();
    if (vault_lease_of(root, &id, &dur, &renewable) != 0)
        return 0;
    struct lease *l = calloc(1, sizeof(*l));
    if (!l || !(l->key = strdup(key)) || !(l->id = strdup(id))) {
        if (l)
            free(l->key);
        free(l);
        return -ENOMEM;
    }
    l->renewable = renewable;
    l->current = true;
    l->gen = vault_token_gen(v);
    l->duration_ms = dur * 1000;
    l->obtained_ms = t;
    l->expires_ms = t + dur * 1000;
    pthread_mutex_lock(&v->lock);
    for (struct lease **pp = &v->leases; *pp;) {
        struct lease *o = *pp;
        if (o->current && strcmp(o->key, key) == 0)
            o->current = false;
        if (!o->current && o->expires_ms <= t) {   /* gone at Vault anyway */
            *pp = o->next;
            free(o->key);
            free(o->id);
            free(o);
            continue;
        }
        pp = &o->next;
    }
    l->next = v->leases;
    v->leases = l;
    pthread_mutex_unlock(&v->lock);
    out->valid_ms = vault_token_bound_ms(v, renewable ? dur * 2000 / 3 : dur * 850);
    return 0;
}

void vault_leases_revoke(struct vault *v, const char *hdr, long long deadline, bool *reachable,
                         size_t *revoked, size_t *failed)
{
    char err[512] = "";
    while (*reachable && clock_mono_ms() < deadline) {
        char *id = NULL;
        long long t = clock_mono_ms();
        pthread_mutex_lock(&v->lock);
        while (v->leases && !id) {
            struct lease *l = v->leases;
            v->leases = l->next;
            if (l->expires_ms > t) {
                id = l->id;
                l->id = NULL;
            }
            free(l->key);
            free(l->id);
            free(l);
        }
        pthread_mutex_unlock(&v->lock);
        if (!id)
            break;
        struct http_response r;
        struct secbuf body;
        json_t *req = json_pack("{s:s}", "lease_id", id);
        http_response_init(&r);
        secbuf_init(&body, 8192);
        int rc = req ? vault_dump_json(req, &body, err, sizeof(err)) : -ENOMEM;
        if (rc == 0) {
            rc = vault_raw_call(v, "POST", "sys/leases/revoke", &body, hdr, &r, err, sizeof(err));
            *reachable = rc == 0;
        }
        if (rc == 0 && r.status != 204 && r.status != 200)
            rc = vault_status_error("lease revocation", &r, NULL, err, sizeof(err));
        if (rc == 0) {
            (*revoked)++;
        } else {
            (*failed)++;
            vault_log(v, LOG_WARN, err, "vault lease revocation failed");
        }
        json_decref(req);
        secbuf_cleanup(&body);
        http_response_cleanup(&r);
        free(id);
    }
}
