/* kv.c - which mount serves a secret path, and whether it is KV version 1,
 * 2 or something else (a dynamic secrets engine): from kv_versions, from
 * what earlier probes learnt, or from a probe of sys/internal/ui/mounts
 * (what the Vault CLI does for `vault kv`). And the request path that
 * reads a secret once its mount is known.
 */
#include "backends/vault/vault_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vault_mounts_free(struct mount *m)
{
    while (m) {
        struct mount *n = m->next;
        free(m->path);
        free(m);
        m = n;
    }
}

int vault_add_mount(struct mount **list, const char *path, size_t n, enum mount_kind kind)
{
    struct mount *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    while (n > 0 && path[n - 1] == '/')
        n--;
    if (asprintf(&m->path, "%.*s/", (int)n, path) < 0) {
        free(m);
        return -ENOMEM;
    }
    m->kind = kind;
    m->next = *list;
    *list = m;
    return 0;
}

/* The longest mount that is a prefix of path; the first listed of equal
 * ones. */
UNITTEST_STATIC const struct mount *vault_match_mount(const struct mount *list, const char *path)
{
    const struct mount *best = NULL;
    for (const struct mount *m = list; m; m = m->next) {
        size_t n = strlen(m->path);
        if (strncmp(path, m->path, n) == 0 && (!best || n > strlen(best->path)))
            best = m;
    }
    return best;
}

/* A sys/internal/ui/mounts/<path> answer: the mount serving path, as *mp
 * and *mplen (borrowed from path, or from *root, which is new). */
UNITTEST_STATIC int vault_mount_answer(const struct http_response *r, const char *path,
                                       struct fetch_result *out, json_t **root, const char **mp,
                                       size_t *mplen, enum mount_kind *kind, char *err,
                                       size_t errlen)
{
    int rc;
    *root = NULL;
    if (r->status == 403) {
        char msg[300];
        vault_errors(r, msg, sizeof(msg));
        snprintf(err, errlen, "cannot tell which KV version serves '%.200s' (%s); set "
                 "kv_versions in the backend config", path, msg);
        out->retryable = false;
        return -EACCES;
    }
    if (r->status == 404) {
        /* Vault before 0.10 has no such endpoint: KV version 1, as the CLI
         * assumes. The mount is the first path segment. */
        const char *slash = strchr(path, '/');
        *kind = MOUNT_KV1;
        *mp = path;
        *mplen = slash ? (size_t)(slash - path) : strlen(path);
        return 0;
    }
    if (r->status != 200) {
        rc = vault_status_error("KV version probe", r, out, err, errlen);
        return rc == -ENOENT ? -EIO : rc;
    }
    if ((rc = vault_parse_body("KV version probe", r, root, err, errlen)) < 0)
        return rc;
    const json_t *d = json_object_get(*root, "data");
    const char *m = json_string_value(json_object_get(d, "path"));
    const char *type = json_string_value(json_object_get(d, "type"));
    const char *ver = json_string_value(json_object_get(json_object_get(d, "options"),
                                                        "version"));
    if (!m || !type || strncmp(path, m, strlen(m)) != 0) {
        snprintf(err, errlen, "KV version probe: unexpected answer for '%.200s'", path);
        return -EPROTO;
    }
    if (strcmp(type, "kv") == 0 || strcmp(type, "generic") == 0)
        *kind = ver && strcmp(ver, "2") == 0 ? MOUNT_KV2 : MOUNT_KV1;
    else
        *kind = MOUNT_OTHER;
    *mp = m;
    *mplen = strlen(m);
    return 0;
}

/* The mount of path among those learnt: 1 with a copy, 0 when none
 * matches, -ENOMEM. Takes v->lock. */
static int known_mount(struct vault *v, const char *path, char **mpath, enum mount_kind *kind)
{
    pthread_mutex_lock(&v->lock);
    const struct mount *m = vault_match_mount(v->mounts, path);
    if (m) {
        *kind = m->kind;
        *mpath = strdup(m->path);
    }
    pthread_mutex_unlock(&v->lock);
    if (!m)
        return 0;
    return *mpath ? 1 : -ENOMEM;
}

int vault_mount_for(struct vault *v, const char *path, struct fetch_result *out, char **mpath,
                    enum mount_kind *kind, char *err, size_t errlen)
{
    /* kv_versions is immutable: no lock. */
    const struct mount *m = vault_match_mount(v->overrides, path);
    int rc;
    if (m) {
        *kind = m->kind;
        return (*mpath = strdup(m->path)) ? 0 : -ENOMEM;
    }
    rc = known_mount(v, path, mpath, kind);   /* the common case: known already */
    if (rc != 0)
        return rc < 0 ? rc : 0;
    /* One probe per mount: whoever waited here while another thread
     * probed finds the answer learnt. */
    pthread_mutex_lock(&v->mount_lock);
    rc = known_mount(v, path, mpath, kind);
    if (rc != 0) {
        pthread_mutex_unlock(&v->mount_lock);
        return rc < 0 ? rc : 0;
    }

    struct http_response r;
    char probe[VAULT_PATH_MAX + 32], esc[VAULT_PATH_MAX];
    json_t *root = NULL;
    http_response_init(&r);
    if (http_escape_path(path, esc, sizeof(esc)) < 0) {
        snprintf(err, errlen, "path too long");
        rc = -ENAMETOOLONG;
        goto out;
    }
    snprintf(probe, sizeof(probe), "sys/internal/ui/mounts/%s", esc);
    rc = vault_call(v, "GET", probe, NULL, &r, err, errlen);
    if (rc < 0) {
        out->retryable = http_errno_retryable(rc);
        goto out;
    }
    const char *mp = NULL;
    size_t mplen = 0;
    if ((rc = vault_mount_answer(&r, path, out, &root, &mp, &mplen, kind, err, errlen)) < 0)
        goto out;
    /* Fetches read v->mounts holding v->lock only (known_mount): the
     * list changes under that lock too, never under mount_lock alone. */
    pthread_mutex_lock(&v->lock);
    rc = vault_add_mount(&v->mounts, mp, mplen, *kind);
    pthread_mutex_unlock(&v->lock);
    if (rc == 0) {
        rc = known_mount(v, path, mpath, kind);
        rc = rc > 0 ? 0 : -ENOMEM;
    }
out:
    json_decref(root);
    http_response_cleanup(&r);
    pthread_mutex_unlock(&v->mount_lock);
    return rc;
}

int vault_read_path(const char *mpath, enum mount_kind kind, const char *ref_path,
                    const char *version, char *out, size_t cap)
{
    if (kind == MOUNT_KV2) {
        char rest[VAULT_PATH_MAX], esc[VAULT_PATH_MAX];
        if (http_escape_path(ref_path + strlen(mpath), rest, sizeof(rest)) < 0 ||
            http_escape_path(mpath, esc, sizeof(esc)) < 0)
            return -ENAMETOOLONG;
        if ((size_t)snprintf(out, cap, "%sdata/%s%s%s", esc, rest, version ? "?version=" : "",
                             version ? version : "") >= cap)
            return -ENAMETOOLONG;
        return 0;
    }
    return http_escape_path(ref_path, out, cap) < 0 ? -ENAMETOOLONG : 0;
}
