/* fs.c - the read-only FUSE filesystem (libfuse3 low-level API).
 *
 * The tree is fixed by the configuration (fuse/tree.h); each name's inode
 * number comes from the fs's name -> inode table, so it is stable across
 * refreshes (and would be across a rebuild of the tree). Files exist while
 * their secret has a value. An open takes a reference to the current sealed value
 * (the snapshot); each read decrypts it into a pooled secret buffer, replies
 * and wipes, so plaintext never outlives a request. direct_io keeps read(2)
 * out of the page cache; what still fills it (splice, sendfile, readahead,
 * MAP_PRIVATE) is dropped when the file that filled it is released.
 */
#include "fuse/fs.h"
#include "fuse/mountns.h"
#include "fuse/tree.h"
#include "engine/store.h"
#include "lib/name.h"
#include "lib/regs.h"
#include "lib/secmem.h"
#include "policy/audit.h"
#include "policy/policy.h"
#include "policy/proc.h"
#include "policy/rules.h"
#include "lib/log.h"
#include "lib/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fuse_lowlevel.h>

#define FS_DIR_MODE 0555
#define FS_MAX_GROUPS 64
#define FS_DEFAULT_THREADS 16
/* How often fs_run's caller sends FS_WAKE_SIGNAL to a loop thread that has
 * not left yet, at the stop. */
#define FS_WAKE_RETRY_MS 20

/* What one configuration serves (docs/internals/reload.md): a tree and the
 * store its file nodes index. Immutable once built (the store's values
 * aside). */
struct fs_gen {
    struct fs_tree *tree;          /* owned */
    struct store *st;              /* borrowed: the caller frees it after fs_finish */
    const struct policy_rules *policy;   /* borrowed from st's configuration; NULL: modes
                                            alone decide. Swapped with the generation, so
                                            a reload's policy applies from the next open */
    unsigned users;                /* protected by fs->gen_lock: requests using it */
};

struct fs {
    struct secpool *pool;  /* borrowed */
    struct cache *cache;   /* borrowed: unseals open files, whatever their generation */
    struct fuse_session *se;
    struct fs_inodes inodes;       /* written only by tree builds (fs_mount, fs_prepare) */
    /* The current generation: written under gen_lock; read under it by
     * gen_get, and with an atomic load by park (under wait_lock). */
    _Atomic(struct fs_gen *) gen;
    pthread_mutex_t gen_lock;        /* protects gen's writes and every generation's users */
    pthread_cond_t gen_done;         /* fs_finish waits here for the old generation's users */
    double timeout;
    unsigned max_threads;
    bool mounted;
    const struct mountns *mount_ns;   /* borrowed: mounted in there (fs_options) */
    struct policy_audit_log *audit;   /* borrowed (fs_options) */
    unsigned proc_flags;              /* POLICY_PROC_PIDFS when the kernel has pidfs */
    char *mountpoint;                 /* with mount_ns: where, for the unmount */
    /* fs_exit's wake-up: an eventfd fs_run's caller waits on, written once
     * and never read, so it stays readable. */
    int exit_fd;

    /* fs_run's threads: the ones it starts (its caller only waits). */
    pthread_mutex_t loop_lock;       /* protects the fields below but n_idle */
    pthread_t *loop_threads;         /* the started ones (max_threads at most) */
    unsigned n_started;              /* protected by loop_lock */
    atomic_int n_idle;               /* waiting for a request (or about to): an atomic, so
                                        a request costs no loop_lock when others wait */
    int loop_error;                  /* protected by loop_lock: the first failure */

    /* Lock order: wait_lock, then the store's settle lock. gen_lock is a
     * leaf. park checks
     * store_settled and queues under wait_lock, and fs_settled (called
     * after store_settle) drains under it, so a request parked as its
     * secret settles is never missed. Nothing else nests: open_lock and
     * drop_lock are each taken alone, drop_lock is dropped around every
     * notification, and no fs lock is held while a store lock other than
     * the settle lock is taken, nor while replying to the kernel. */
    pthread_mutex_t open_lock;       /* protects open_files and each file's prev/next */
    struct open_file *open_files;    /* protected by open_lock: freed at unmount
                                        if the kernel never sent RELEASE */
    pthread_mutex_t wait_lock;       /* protects waiters */
    struct waiter **waiters;         /* per inode, protected by wait_lock: requests
                                        parked until the first fetch settles */
    size_t n_waiters;                /* protected by wait_lock */
    pthread_mutex_t drop_lock;       /* protects drop_queue, drop_queued, n_drop, dropping */
    fuse_ino_t *drop_queue;          /* protected by drop_lock: inodes whose page
                                        cache is to be dropped; drop_cap slots */
    bool *drop_queued;               /* protected by drop_lock: per inode, in drop_queue
                                        (so each is queued once); drop_cap slots */
    size_t n_drop;                   /* protected by drop_lock */
    size_t drop_cap;                 /* protected by drop_lock: every inode so far, + 1 */
    bool dropping;                   /* protected by drop_lock: a worker is
                                        draining drop_queue */
};

/* A getattr or open of a secret whose first fetch has not finished. It is
 * answered later from fs_settled (FUSE lets any thread reply), so waiting
 * readers hold no loop thread. */
struct waiter {
    fuse_req_t req;
    bool open;                       /* else getattr */
    fuse_ino_t ino;
    struct fuse_file_info fi;        /* open */
    struct policy_subject subj;      /* open: who, for the audit (groups not kept) */
    enum policy_decision d;
    /* open: the access policy's decision, made before parking and kept:
     * a reload while parked does not ask the new policy again. */
    bool has_verdict;
    int rule;
    bool audit_due;
    unsigned long long repeats;
    char why[224];                   /* the facts could not be read: why ("" when they were) */
    /* Parked with a verdict: the secret's and backend's names (owned), for
     * the audit line if the secret is gone when the waiter is answered. */
    char *audit_names;
    struct policy_proc proc;
    struct waiter *next;
};

/* fi->fh: one snapshot per open. It holds what reading needs (the value
 * and the name it is sealed with), not a generation: it stays readable
 * after a reload removed or changed its secret, and keeps nothing else of
 * the old configuration alive. */
struct open_file {
    struct cache_value *value;
    atomic_bool filled;    /* the kernel read through this file into its page cache */
    struct open_file *prev, *next;   /* protected by fs->open_lock */
    char name[];           /* the secret's, the associated data of value */
};

static void open_track(struct fs *fs, struct open_file *of)
{
    pthread_mutex_lock(&fs->open_lock);
    of->prev = NULL;
    of->next = fs->open_files;
    if (of->next)
        of->next->prev = of;
    fs->open_files = of;
    pthread_mutex_unlock(&fs->open_lock);
}

static void open_untrack_free(struct fs *fs, struct open_file *of)
{
    pthread_mutex_lock(&fs->open_lock);
    if (of->prev)
        of->prev->next = of->next;
    else
        fs->open_files = of->next;
    if (of->next)
        of->next->prev = of->prev;
    pthread_mutex_unlock(&fs->open_lock);
    cache_value_unref(of->value);
    free(of);
}

static struct fs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static const struct fs_node *node_get(const struct fs_gen *g, fuse_ino_t ino)
{
    return fs_tree_node(g->tree, ino);
}

/* ---- generations ---- */

/* The current generation, for one request: released with gen_put, never
 * held while waiting for anything. */
static struct fs_gen *gen_get(struct fs *fs)
{
    pthread_mutex_lock(&fs->gen_lock);
    struct fs_gen *g = atomic_load_explicit(&fs->gen, memory_order_relaxed);
    g->users++;
    pthread_mutex_unlock(&fs->gen_lock);
    return g;
}

static void gen_put(struct fs *fs, struct fs_gen *g)
{
    pthread_mutex_lock(&fs->gen_lock);
    if (--g->users == 0 && g != atomic_load_explicit(&fs->gen, memory_order_relaxed))
        pthread_cond_broadcast(&fs->gen_done);
    pthread_mutex_unlock(&fs->gen_lock);
}

static void gen_free(struct fs_gen *g)
{
    if (g) {
        fs_tree_free(g->tree);
        free(g);
    }
}

/* A generation serving st, numbered from fs's inode table (the only
 * writer of it: builds are serialised). *out is new. */
static int gen_build(struct fs *fs, struct store *st, struct fs_gen **out)
{
    size_t n = store_count(st);
    struct fs_gen *g = calloc(1, sizeof(*g));
    const char **names = calloc(n + 1, sizeof(*names));
    int rc = -ENOMEM;
    if (g && names) {
        for (size_t i = 0; i < n; i++)
            names[i] = store_cfg(st, i)->name;
        g->st = st;
        g->policy = store_policy(st);
        rc = fs_tree_build(&fs->inodes, names, n, &g->tree);
    }
    free(names);
    if (rc < 0) {
        gen_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* Make the per-inode arrays (parked requests, page-cache drops) hold every
 * inode number handed out so far. Growing is harmless to the current
 * generation, so it is done before a swap, where failing changes nothing. */
static int grow_per_inode(struct fs *fs, size_t n_ino)
{
    int rc = 0;
    pthread_mutex_lock(&fs->wait_lock);
    if (n_ino > fs->n_waiters) {
        struct waiter **w = realloc(fs->waiters, n_ino * sizeof(*w));
        if (w) {
            memset(w + fs->n_waiters, 0, (n_ino - fs->n_waiters) * sizeof(*w));
            fs->waiters = w;
            fs->n_waiters = n_ino;
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&fs->wait_lock);
    pthread_mutex_lock(&fs->drop_lock);
    if (rc == 0 && n_ino > fs->drop_cap) {
        fuse_ino_t *q = realloc(fs->drop_queue, n_ino * sizeof(*q));
        if (q)
            fs->drop_queue = q;
        bool *queued = q ? realloc(fs->drop_queued, n_ino * sizeof(*queued)) : NULL;
        if (queued) {
            memset(queued + fs->drop_cap, 0, (n_ino - fs->drop_cap) * sizeof(*queued));
            fs->drop_queued = queued;
            fs->drop_cap = n_ino;
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&fs->drop_lock);
    return rc;
}

/* ---- attributes ---- */

static void ts_or_now(struct timespec *t)
{
    if (t->tv_sec == 0 && t->tv_nsec == 0)
        clock_gettime(CLOCK_REALTIME, t);
}

/* 0 or -ENOENT when a file has no value right now. With pending, a file
 * whose first fetch has not finished gets size-0 attributes and 1. */
static int node_attr_ex(const struct fs_gen *g, const struct fs_node *node, struct stat *st,
                        bool pending)
{
    int waiting = 0;
    memset(st, 0, sizeof(*st));
    st->st_ino = node->ino;
    st->st_blksize = 4096;
    if (node->is_dir) {
        st->st_mode = S_IFDIR | FS_DIR_MODE;
        st->st_nlink = 2;
        clock_gettime(CLOCK_REALTIME, &st->st_mtim);
    } else {
        struct secret_view v;
        const struct cfg_attrs *a = &store_cfg(g->st, node->secret)->attrs;
        store_view(g->st, node->secret, &v);
        if (!v.present) {
            if (!pending || store_settled(g->st, node->secret))
                return -ENOENT;
            waiting = 1;
        }
        st->st_mode = S_IFREG | a->mode;
        st->st_nlink = 1;
        st->st_uid = a->uid;
        st->st_gid = a->gid;
        st->st_size = (off_t)v.size;
        st->st_blocks = (blkcnt_t)((v.size + 511) / 512);
        st->st_mtim = v.changed;
        ts_or_now(&st->st_mtim);
    }
    st->st_atim = st->st_mtim;
    st->st_ctim = st->st_mtim;
    return waiting;
}

static int node_attr(const struct fs_gen *g, const struct fs_node *node, struct stat *st)
{
    return node_attr_ex(g, node, st, false);
}

enum park_result { PARK_NO, PARK_YES, PARK_RETRY };

/* Park w (for w->ino, the node of secret in generation g) until that
 * secret's first fetch settles. PARK_NO (w untouched) when it already has,
 * and the caller answers now; PARK_RETRY when g is no longer current (a
 * reload swapped it and re-homed the parked requests already), and the
 * caller starts over with the current one. */
static enum park_result park(struct fs *fs, const struct fs_gen *g, size_t secret,
                             const struct waiter *w)
{
    enum park_result r = PARK_NO;
    pthread_mutex_lock(&fs->wait_lock);
    if (atomic_load(&fs->gen) != g) {
        r = PARK_RETRY;
    } else if (!store_settled(g->st, secret) && w->ino < fs->n_waiters) {
        struct waiter *copy = malloc(sizeof(*copy));
        if (copy) {
            *copy = *w;
            copy->audit_names = NULL;
            if (w->has_verdict) {
                /* "secret\0backend": a reload may free both names before the
                 * waiter is answered, and its line must still name them. */
                const char *n = store_cfg(g->st, secret)->name;
                const char *b = store_backend_name(g->st, secret);
                size_t nl = strlen(n) + 1, bl = strlen(b) + 1;
                copy->audit_names = malloc(nl + bl);
                if (copy->audit_names) {
                    memcpy(copy->audit_names, n, nl);
                    memcpy(copy->audit_names + nl, b, bl);
                }
            }
            copy->next = fs->waiters[w->ino];
            fs->waiters[w->ino] = copy;
            r = PARK_YES;
        }
    }
    pthread_mutex_unlock(&fs->wait_lock);
    return r;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);
    struct fs_gen *g = gen_get(fs);
    const struct fs_node *dir = node_get(g, parent);
    struct fuse_entry_param e;
    if (!dir || !dir->is_dir) {
        gen_put(fs, g);
        /* A directory a reload removed: nothing is in it any more. */
        fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
        return;
    }
    const struct fs_node *n = fs_tree_child(g->tree, dir, name, strlen(name));
    memset(&e, 0, sizeof(e));
    /* During the cold start a configured secret may not be fetched yet. The
     * kernel serialises lookups in a directory, so waiting here would stall
     * every other name: answer at once, cache nothing, and let getattr and
     * open wait for the first fetch (shared by every waiting reader). */
    int rc = !n ? -ENOENT : node_attr_ex(g, n, &e.attr, true);
    uint64_t ino = n ? n->ino : 0;
    gen_put(fs, g);
    if (rc < 0) {
        /* No negative caching: a secret may appear at the next refresh. */
        fuse_reply_err(req, ENOENT);
        return;
    }
    e.ino = ino;
    e.attr_timeout = rc == 1 ? 0 : fs->timeout;
    e.entry_timeout = rc == 1 ? 0 : fs->timeout;
    fuse_reply_entry(req, &e);
}

/* getattr in generation g; false: g was replaced meanwhile, start over. */
static bool getattr_in(struct fs *fs, struct fs_gen *g, fuse_req_t req, fuse_ino_t ino)
{
    struct stat st;
    const struct fs_node *node = node_get(g, ino);
    int rc = node ? node_attr(g, node, &st) : -ENOENT;
    if (rc == -ENOENT && node && !node->is_dir) {
        enum park_result r = park(fs, g, node->secret, &(struct waiter){.req = req, .ino = ino});
        if (r != PARK_NO)
            return r == PARK_YES;   /* PARK_YES: answered when the first fetch settles */
        rc = node_attr(g, node, &st);
    }
    if (rc < 0) {
        fuse_reply_err(req, ENOENT);
        return true;
    }
    fuse_reply_attr(req, &st, fs->timeout);
    return true;
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    bool done;
    (void)fi;
    do {
        struct fs_gen *g = gen_get(fs);
        done = getattr_in(fs, g, req, ino);
        gen_put(fs, g);
    } while (!done);
}

/* The file modes' decision for subj, as the kernel makes it. Supplementary
 * groups cost a /proc read: fetched into groups (FS_MAX_GROUPS) only when
 * a group could turn a deny, once per *tried. */
static enum policy_decision modes_decide(fuse_req_t req, struct policy_subject *subj,
                                         const struct policy_object *obj, gid_t *groups,
                                         bool *tried)
{
    enum policy_decision d = policy_check_read(subj, obj);
    if (d == POLICY_DENY && !*tried && subj->uid != obj->uid && (obj->mode & 040)) {
        *tried = true;
        int ng = fuse_req_getgroups(req, FS_MAX_GROUPS, groups);
        if (ng > 0) {
            subj->groups = groups;
            subj->ngroups = (size_t)(ng < FS_MAX_GROUPS ? ng : FS_MAX_GROUPS);
            d = policy_check_read(subj, obj);
        }
    }
    return d;
}

/* Under an access policy, readdir lists only what its caller may open
 * (docs/internals/policy.md): the caller's facts are read once per
 * readdir call, then each entry is decided as an open would be, by the
 * file modes and the policy. Not audited: a listing opens nothing. */
struct lister {
    fuse_req_t req;
    const struct fs_gen *g;
    bool ok;                          /* the facts were read: else nothing is listed */
    struct policy_proc proc;
    struct policy_subject subj;
    bool groups_tried;
    gid_t groups[FS_MAX_GROUPS];
};

static bool may_open(struct lister *l, const struct fs_node *file)
{
    const struct cfg_secret *sec = store_cfg(l->g->st, file->secret);
    const struct cfg_attrs *a = &sec->attrs;
    struct policy_object obj = {.name = sec->name, .mode = a->mode, .uid = a->uid, .gid = a->gid};
    return modes_decide(l->req, &l->subj, &obj, l->groups, &l->groups_tried) == POLICY_ALLOW &&
           policy_decide(l->g->policy, sec->name, &l->proc, NULL) == POLICY_ALLOW;
}

/* A directory is listed when something below it may be opened (and has a
 * value: what readdir lists at the top). */
static bool may_list(struct lister *l, const struct fs_node *n)
{
    struct stat st;
    if (!n->is_dir)
        return node_attr(l->g, n, &st) == 0 && may_open(l, n);
    for (size_t i = 0; i < n->n_children; i++)
        if (may_list(l, &l->g->tree->nodes[n->children[i]]))
            return true;
    return false;
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_gen *g = gen_get(fs);
    const struct fs_node *dir = node_get(g, ino);
    (void)fi;
    char *buf = dir && dir->is_dir ? malloc(size) : NULL;
    if (!buf) {
        gen_put(fs, g);
        fuse_reply_err(req, !dir ? ENOENT : !dir->is_dir ? ENOTDIR : ENOMEM);
        return;
    }
    struct lister *l = NULL;
    if (g->policy && (size_t)off < dir->n_children + 2) {
        const struct fuse_ctx *ctx = fuse_req_ctx(req);
        char err[160];
        l = malloc(sizeof(*l));
        if (!l) {
            gen_put(fs, g);
            free(buf);
            fuse_reply_err(req, ENOMEM);
            return;
        }
        *l = (struct lister){.req = req, .g = g,
                             .subj = {.uid = ctx->uid, .gid = ctx->gid, .pid = ctx->pid}};
        l->ok = policy_proc_load(ctx->pid, ctx->uid, ctx->gid, g->policy->facts, &l->proc, err,
                                 sizeof(err)) == 0;
    }
    /* Offsets: 1 is ".", 2 is "..", 3 + i is child i; stable while the tree
     * is fixed, whatever appears or disappears between calls (a reload
     * changes the tree: a listing across one may miss or repeat a name). */
    size_t used = 0;
    for (off_t o = off; (size_t)o < dir->n_children + 2; o++) {
        struct stat st;
        const char *name;
        char tmp[256];
        memset(&st, 0, sizeof(st));
        if (o == 0) {
            name = ".";
            st.st_ino = ino;
            st.st_mode = S_IFDIR;
        } else if (o == 1) {
            name = "..";
            st.st_ino = dir->parent;
            st.st_mode = S_IFDIR;
        } else {
            const struct fs_node *c = &g->tree->nodes[dir->children[o - 2]];
            if (node_attr(g, c, &st) < 0)
                continue;  /* no value right now: not listed */
            if (l && (!l->ok || !may_list(l, c)))
                continue;  /* not the caller's to open */
            snprintf(tmp, sizeof(tmp), "%.*s", (int)c->name_len, c->name);
            name = tmp;
        }
        size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, o + 1);
        if (need > size - used)
            break;
        used += need;
    }
    gen_put(fs, g);
    fuse_reply_buf(req, buf, used);
    free(buf);
    free(l);
}

static void finish_open(struct fs *fs, const struct fs_gen *g, fuse_req_t req,
                        const struct fs_node *node, struct fuse_file_info *fi,
                        const struct policy_subject *subj, enum policy_decision d,
                        const struct policy_verdict *v, struct cache_value *value, int rc);

/* The access policy's decision for an open the file modes allowed: the
 * caller's facts through a pidfd (policy/proc.h), only those the rules
 * need and the identity (the audit's repeats are per caller), then
 * policy_decide. Facts that cannot be read (the caller gone or replaced:
 * -ESRCH) deny, and w->why says so. When the audit line is due (not folded
 * into a later one's repeats), the facts it shows are read too, before
 * the reply, while the caller still waits in open(2). The cost is
 * measured in docs/performance.md ("The access policy at open"). */
static enum policy_decision policy_at_open(const struct fs *fs, const struct policy_rules *pol,
                                           const char *secret, const struct fuse_ctx *ctx,
                                           struct waiter *w)
{
    char err[160];
    unsigned facts = pol->facts | POLICY_FACT_START;
    unsigned flags = fs->proc_flags;
    enum policy_decision d;
    w->rule = -1;
    w->audit_due = true;
    w->repeats = 0;
    int rc = policy_proc_load(ctx->pid, ctx->uid, ctx->gid, facts | flags, &w->proc, err,
                              sizeof(err));
    if (rc < 0) {
        snprintf(w->why, sizeof(w->why), "policy: caller facts: %s",
                 rc == -ESRCH ? "the process exited or was replaced" : err);
        d = POLICY_DENY;
    } else {
        d = policy_decide(pol, secret, &w->proc, &w->rule);
    }
    w->audit_due = policy_audit_log_admit(fs->audit, secret, &w->proc, d, &w->repeats);
    if (w->audit_due && rc == 0 && ctx->pid != 0 && facts != POLICY_FACTS_ALL) {
        /* For the line only: the facts the decision did not read are
         * added, the ones it read stay (a cgroup move in between must not
         * show a decision made in one cgroup as made in another). A
         * process replaced in between keeps the first read's facts. */
        struct policy_proc all;
        if (policy_proc_load(ctx->pid, ctx->uid, ctx->gid, POLICY_FACTS_ALL | flags, &all, err,
                             sizeof(err)) == 0 &&
            all.start_time == w->proc.start_time)
            policy_proc_merge(&w->proc, &all, facts);
    }
    return d;
}

/* The audit line of an open the file modes decided (no access policy, or
 * a refusal before it): folded by (secret, pid, uid, decision) with
 * nothing read from /proc — a line per open would cost a fifth of a
 * cached read (docs/performance.md). */
static const struct policy_verdict *modes_verdict(const struct fs *fs,
                                                  const struct policy_subject *subj,
                                                  const char *secret, enum policy_decision d,
                                                  struct policy_verdict *v, struct policy_proc *who)
{
    *who = (struct policy_proc){.pid = subj->pid, .uid = subj->uid, .gid = subj->gid};
    *v = (struct policy_verdict){.rule = POLICY_RULE_MODES, .proc = who, .log = fs->audit};
    v->due = policy_audit_log_admit(fs->audit, secret, who, d, &v->repeats);
    return v;
}

/* open in generation g; false: g was replaced meanwhile, start over with
 * the same w, whose verdict (once made) stands: a retry is not a second
 * decision nor a second audit line. */
static bool open_in(struct fs *fs, struct fs_gen *g, fuse_req_t req, fuse_ino_t ino,
                    struct fuse_file_info *fi, struct waiter *w)
{
    const struct fs_node *node = node_get(g, ino);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    gid_t groups[FS_MAX_GROUPS];
    int rc;

    if (!node) {
        fuse_reply_err(req, ENOENT);
        return true;
    }
    if (node->is_dir) {
        fuse_reply_err(req, EISDIR);
        return true;
    }
    const struct cfg_secret *sec = store_cfg(g->st, node->secret);
    const struct cfg_attrs *a = &sec->attrs;
    struct policy_subject subj = {.uid = ctx->uid, .gid = ctx->gid, .pid = ctx->pid};
    struct policy_object obj = {.name = sec->name, .backend = store_backend_name(g->st, node->secret),
                                .mode = a->mode, .uid = a->uid, .gid = a->gid};

    /* The refusals before the policy (or with none) go to the audit trail. */
    struct policy_verdict by_modes;
    struct policy_proc bare;
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        rc = -EROFS;
        metrics_read(store_metrics(g->st, node->secret), METRICS_READ_DENY);
        policy_audit_open(&subj, &obj, POLICY_DENY, rc,
                          modes_verdict(fs, &subj, sec->name, POLICY_DENY, &by_modes, &bare));
        fuse_reply_err(req, -rc);
        return true;
    }
    bool groups_tried = false;
    enum policy_decision d = modes_decide(req, &subj, &obj, groups, &groups_tried);
    if (d == POLICY_DENY) {
        metrics_read(store_metrics(g->st, node->secret), METRICS_READ_DENY);
        policy_audit_open(&subj, &obj, d, 0,
                          modes_verdict(fs, &subj, sec->name, d, &by_modes, &bare));
        fuse_reply_err(req, EACCES);
        return true;
    }
    subj.groups = NULL;
    subj.ngroups = 0;
    w->req = req;
    w->open = true;
    w->ino = ino;
    w->fi = *fi;
    w->subj = subj;
    struct policy_verdict v = {.rule = -1};
    if (!w->has_verdict)
        w->d = d;
    if (g->policy || w->has_verdict) {
        /* At open only: lookup and getattr answers are cached by the kernel
         * for every caller, an open's answer is this caller's alone. */
        if (!w->has_verdict) {
            w->has_verdict = true;
            w->d = policy_at_open(fs, g->policy, sec->name, ctx, w);
        }
        d = w->d;
        v = (struct policy_verdict){.rule = w->rule, .proc = &w->proc,
                                    .why = w->why[0] ? w->why : NULL, .log = fs->audit,
                                    .due = w->audit_due, .repeats = w->repeats};
        if (d == POLICY_DENY) {
            metrics_read(store_metrics(g->st, node->secret), METRICS_READ_DENY);
            fuse_reply_err(req, EACCES);
            policy_audit_open(&subj, &obj, d, 0, &v);
            return true;
        }
    }
    struct cache_value *value = NULL;
    rc = store_acquire(g->st, node->secret, &value);
    if (rc == -ENOENT) {
        enum park_result r = park(fs, g, node->secret, w);
        if (r != PARK_NO)
            return r == PARK_YES;   /* PARK_YES: answered when the first fetch settles */
        rc = store_acquire(g->st, node->secret, &value);   /* settled meanwhile */
    }
    finish_open(fs, g, req, node, fi, &subj, d, w->has_verdict ? &v : NULL, value, rc);
    return true;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct waiter w = {0};
    bool done;
    do {
        struct fs_gen *g = gen_get(fs);
        done = open_in(fs, g, req, ino, fi, &w);
        gen_put(fs, g);
    } while (!done);
}

/* The part of open after the policy check, now or once the first fetch
 * has settled: value and rc are store_acquire's result (a reference we
 * now own). */
static void finish_open(struct fs *fs, const struct fs_gen *g, fuse_req_t req,
                        const struct fs_node *node, struct fuse_file_info *fi,
                        const struct policy_subject *subj, enum policy_decision d,
                        const struct policy_verdict *v, struct cache_value *value, int rc)
{
    const struct cfg_secret *sec = store_cfg(g->st, node->secret);
    const struct cfg_attrs *a = &sec->attrs;
    struct policy_object obj = {.name = sec->name, .backend = store_backend_name(g->st, node->secret),
                                .mode = a->mode, .uid = a->uid, .gid = a->gid};
    struct policy_verdict by_modes;
    struct policy_proc bare;
    if (!v)
        v = modes_verdict(fs, subj, sec->name, d, &by_modes, &bare);
    size_t name_len = strlen(sec->name);
    struct open_file *of = rc == 0 ? malloc(sizeof(*of) + name_len + 1) : NULL;
    if (rc == 0 && !of) {
        cache_value_unref(value);
        rc = -ENOMEM;
    }
    if (rc < 0) {
        metrics_read(store_metrics(g->st, node->secret), METRICS_READ_ERROR);
        policy_audit_open(subj, &obj, d, rc, v);
        free(of);
        fuse_reply_err(req, -rc);
        return;
    }
    of->value = value;
    memcpy(of->name, sec->name, name_len + 1);
    atomic_init(&of->filled, false);
    open_track(fs, of);
    fi->fh = (uint64_t)(uintptr_t)of;
    fi->direct_io = 1;   /* read(2) comes to us, never through the page cache */
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0) {
        /* The opener went away: no release will come. */
        open_untrack_free(fs, of);
        rc = -EINTR;
    }
    metrics_read(store_metrics(g->st, node->secret),
                 rc == 0 ? METRICS_READ_ALLOW : METRICS_READ_ERROR);
    /* Audit after replying: the log write stays off the caller's path. */
    policy_audit_open(subj, &obj, d, rc, v);
}

/* A parked open answered ENOENT (its secret went in a reload, or the
 * filesystem stops): its audit line, if it had one due or a count taken,
 * still goes out. Frees w. */
static void waiter_gone(struct fs *fs, struct waiter *w)
{
    fuse_reply_err(w->req, ENOENT);
    if (w->open && w->has_verdict && w->audit_names) {
        const char *name = w->audit_names;
        struct policy_object obj = {.name = name, .backend = name + strlen(name) + 1};
        struct policy_verdict v = {.rule = w->rule, .proc = &w->proc, .log = fs->audit,
                                   .due = w->audit_due, .repeats = w->repeats};
        policy_audit_open(&w->subj, &obj, w->d, -ENOENT, &v);
    }
    free(w->audit_names);
    free(w);
}

/* Answer the requests parked on inode ino whose secret, in g (the current
 * generation), has settled or no longer exists; the others stay parked.
 * Parked requests are kept by inode, which every generation shares, and
 * answered from the generation current when their secret settles: a late
 * settle of a secret a reload replaced never answers a request for its
 * successor. */
static void drain(struct fs *fs, const struct fs_gen *g, fuse_ino_t ino)
{
    const struct fs_node *node = node_get(g, ino);
    struct waiter *w = NULL;
    pthread_mutex_lock(&fs->wait_lock);
    if (ino < fs->n_waiters && (!node || node->is_dir || store_settled(g->st, node->secret))) {
        w = fs->waiters[ino];
        fs->waiters[ino] = NULL;
    }
    pthread_mutex_unlock(&fs->wait_lock);
    while (w) {
        struct waiter *next = w->next;
        if (!node || node->is_dir) {
            waiter_gone(fs, w);
            w = next;
            continue;
        }
        if (w->open) {
            struct cache_value *value = NULL;
            int rc = store_acquire(g->st, node->secret, &value);
            struct policy_verdict v = {.rule = w->rule, .proc = &w->proc, .log = fs->audit,
                                       .why = w->why[0] ? w->why : NULL,
                                       .due = w->audit_due, .repeats = w->repeats};
            finish_open(fs, g, w->req, node, &w->fi, &w->subj, w->d,
                        w->has_verdict ? &v : NULL, value, rc);
        } else {
            struct stat st;
            if (node_attr(g, node, &st) < 0)
                fuse_reply_err(w->req, ENOENT);
            else
                fuse_reply_attr(w->req, &st, fs->timeout);
        }
        free(w->audit_names);
        free(w);
        w = next;
    }
}

void fs_settled(struct fs *fs, size_t idx)
{
    if (!fs)
        return;
    /* The scheduler is never paused for a reload while it calls this, so
     * idx is a secret of the current generation. */
    struct fs_gen *g = gen_get(fs);
    drain(fs, g, fs_tree_secret(g->tree, idx)->ino);
    gen_put(fs, g);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
    size_t len = cache_value_len(of->value);
    (void)ino;
    /* read(2) on a direct_io file carries its caller's lock owner
     * (FUSE_READ_LOCKOWNER). A page-cache fill (readahead, a fault, splice)
     * has no caller to name and comes without one: remember that the pages
     * must be dropped at release. Misjudging a read the other way round only
     * costs one needless invalidation. */
    if (fi->lock_owner == 0)
        atomic_store_explicit(&of->filled, true, memory_order_relaxed);
    if (off < 0 || (size_t)off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    /* libfuse starts its loop threads without asking us: hide each one's
     * stack the first time it decrypts. */
    secmem_hide_stack();
    unsigned char *pt = secpool_get(fs->pool, len);
    if (!pt) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int rc = cache_unseal(fs->cache, of->name, of->value, pt);
    if (rc < 0) {
        log_f(LOG_ERROR, &(struct log_fields){.secret = of->name},
              "cached value failed authentication");
        fuse_reply_err(req, EIO);
    } else {
        size_t n = len - (size_t)off < size ? len - (size_t)off : size;
        fuse_reply_buf(req, (const char *)pt + off, n);
    }
    secpool_put(fs->pool, pt, len);   /* wipes */
    regs_scrub();              /* the decrypted bytes, before this thread waits */
}

/* Drop ino's pages from the kernel's page cache, after the reply to the
 * request that asked for it.
 *
 * The notification waits for reads of ino in flight (their pages are
 * locked), and only another loop worker can answer those. So one worker at
 * a time notifies: others queue the inode and return, and that worker
 * drains the queue before it goes back to the loop, which leaves every
 * other worker free to answer. An inode queued again while its
 * notification runs is notified again: pages filled meanwhile go too. */
static void pagecache_drop(struct fs *fs, fuse_ino_t ino)
{
    pthread_mutex_lock(&fs->drop_lock);
    if (ino < fs->drop_cap && !fs->drop_queued[ino]) {
        fs->drop_queued[ino] = true;
        fs->drop_queue[fs->n_drop++] = ino;
    }
    if (fs->dropping) {
        pthread_mutex_unlock(&fs->drop_lock);
        return;
    }
    fs->dropping = true;
    while (fs->n_drop > 0) {
        fuse_ino_t next = fs->drop_queue[--fs->n_drop];
        fs->drop_queued[next] = false;
        pthread_mutex_unlock(&fs->drop_lock);
        /* Once the loop is exiting nobody answers the reads it may wait
         * for. An error means the kernel had nothing to drop. */
        if (!fuse_session_exited(fs->se))
            (void)fuse_lowlevel_notify_inval_inode(fs->se, next, 0, 0);
        pthread_mutex_lock(&fs->drop_lock);
    }
    fs->dropping = false;
    pthread_mutex_unlock(&fs->drop_lock);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
    bool filled = false;
    if (of) {
        filled = atomic_load_explicit(&of->filled, memory_order_relaxed);
        open_untrack_free(fs, of);
    }
    /* The kernel sends RELEASE once no request of this file is in flight,
     * after the last munmap too, so every page it filled is in the cache
     * now (relaxed is enough: that ordering comes from the kernel). Only a
     * file that filled pages is worth a notification: each one also
     * invalidates the inode's attributes, which costs the next open a
     * GETATTR. Reply first: nothing need wait for the notification. */
    fuse_reply_err(req, 0);
    if (filled)
        pagecache_drop(fs, ino);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_gen *g = gen_get(fs);
    const struct fs_node *found = node_get(g, ino);
    bool exists = found != NULL, is_dir = found && found->is_dir;
    gen_put(fs, g);
    if (!exists)
        fuse_reply_err(req, ENOENT);
    else if (!is_dir)
        fuse_reply_err(req, ENOTDIR);
    else if ((fi->flags & O_ACCMODE) != O_RDONLY)
        fuse_reply_err(req, EROFS);
    else
        fuse_reply_open(req, fi);
}

/* The mount is read-only (MS_RDONLY), so the kernel refuses changes before
 * they reach us; these answer the same if someone remounts it rw. */
static void ro_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void)ino; (void)attr; (void)to_set; (void)fi;
    fuse_reply_err(req, EROFS);
}

static void ro_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)parent; (void)name; (void)mode; (void)rdev;
    fuse_reply_err(req, EROFS);
}

static void ro_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)parent; (void)name; (void)mode;
    fuse_reply_err(req, EROFS);
}

static void ro_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent; (void)name;
    fuse_reply_err(req, EROFS);
}

static void ro_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link; (void)parent; (void)name;
    fuse_reply_err(req, EROFS);
}

static void ro_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    (void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
    fuse_reply_err(req, EROFS);
}

static void ro_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino; (void)newparent; (void)newname;
    fuse_reply_err(req, EROFS);
}

static void ro_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino; (void)buf; (void)size; (void)off; (void)fi;
    fuse_reply_err(req, EROFS);
}

static void ro_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    (void)ino; (void)name; (void)value; (void)size; (void)flags;
    fuse_reply_err(req, EROFS);
}

static void ro_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino; (void)name;
    fuse_reply_err(req, EROFS);
}

static void ro_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)parent; (void)name; (void)mode; (void)fi;
    fuse_reply_err(req, EROFS);
}

/* A shared mapping would keep plaintext in the page cache for as long as it
 * lives. Unless FUSE_DIRECT_IO_ALLOW_MMAP is negotiated, the kernel refuses
 * MAP_SHARED on direct_io files with ENODEV. libfuse 3.14 (Debian 12) never
 * offers it: its INIT reply speaks protocol 7.31 and the flag came with 7.39.
 * Later libfuse versions may want it by default, so turn it off by name.
 * (No flag refuses MAP_PRIVATE: the kernel maps it without asking us, and
 * fs_release drops what it read.) */
static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
    conn->want &= ~FUSE_CAP_DIRECT_IO_ALLOW_MMAP;
#else
    (void)conn;
#endif
}

static const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init,
    .lookup = fs_lookup,
    .getattr = fs_getattr,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
    .release = fs_release,
    .setattr = ro_setattr,
    .mknod = ro_mknod,
    .mkdir = ro_mkdir,
    .unlink = ro_unlink,
    .rmdir = ro_unlink,
    .symlink = ro_symlink,
    .rename = ro_rename,
    .link = ro_link,
    .write = ro_write,
    .setxattr = ro_setxattr,
    .removexattr = ro_removexattr,
    .create = ro_create,
};

/* ---- libfuse's own messages ---- */

/* libfuse's levels are syslog's; ours are a subset. Its lines end in '\n',
 * ours get one from log_at. */
static void fuse_log_sink(enum fuse_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void fuse_log_sink(enum fuse_log_level level, const char *fmt, va_list ap)
{
    enum log_level l = level <= FUSE_LOG_ERR ? LOG_ERROR
                     : level == FUSE_LOG_WARNING ? LOG_WARN
                     : level <= FUSE_LOG_INFO ? LOG_INFO : LOG_DEBUG;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_at(l, "libfuse", NULL, "%s", msg);
}

void log_hook_fuse(void)
{
    fuse_set_log_func(fuse_log_sink);
}

/* ---- lifecycle ---- */

/* The mount fuse_session_mount makes, made in another namespace
 * (mountns.h): we open /dev/fuse, a child in that namespace mounts it with
 * the flags and options libfuse 3.14's fuse_kern_mount passes for ours (so
 * mountinfo reads the same either way), and the session adopts the
 * descriptor through libfuse's "/dev/fd/N" mountpoint (it then neither
 * mounts nor, at fuse_session_unmount, unmounts: fs_free does). */
static int mount_in_ns(struct fs *fs, const struct fs_options *o, char *err, size_t errlen)
{
    char data[256], adopt[32];
    int rc;
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open /dev/fuse: %s", strerror(errno));
        return rc;
    }
    snprintf(data, sizeof(data), "fd=%d,rootmode=%o,user_id=%u,group_id=%u,default_permissions%s",
             fd, (unsigned)S_IFDIR, (unsigned)geteuid(), (unsigned)getegid(),
             o->allow_other ? ",allow_other" : "");
    fs->mountpoint = strdup(o->mountpoint);
    if (!fs->mountpoint) {
        close(fd);
        return -ENOMEM;
    }
    rc = mountns_mount(o->mount_ns, "runsecrets", o->mountpoint, "fuse.runsecrets",
                       MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, data, err, errlen);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    fs->mount_ns = o->mount_ns;
    snprintf(adopt, sizeof(adopt), "/dev/fd/%d", fd);
    if (fuse_session_mount(fs->se, adopt) != 0) {
        close(fd);
        fs->mounted = true;   /* for the unmount of the fail path */
        snprintf(err, errlen, "libfuse did not take the /dev/fuse descriptor");
        return -EIO;
    }
    return 0;
}

static void mount_in_ns_undo(struct fs *fs)
{
    char err[512];
    bool lazy = false;
    if (mountns_unmount(fs->mount_ns, fs->mountpoint, &lazy, err, sizeof(err)) < 0)
        log_f(LOG_ERROR, &(struct log_fields){.path = fs->mountpoint, .error = err},
              "cannot unmount");
    else if (lazy)
        log_f(LOG_INFO, &(struct log_fields){.path = fs->mountpoint},
              "busy: detached (readers still holding files see them end)");
}

int fs_mount(struct store *st, struct secpool *pool, const struct fs_options *o, struct fs **out,
             char *err, size_t errlen)
{
    int rc = -ENOMEM;
    char opts[256];
    err[0] = '\0';
    if (!o->audit) {
        snprintf(err, errlen, "no audit trail");   /* a caller's bug: every open has a line */
        return -EINVAL;
    }
    struct fs *fs = calloc(1, sizeof(*fs));
    if (!fs)
        goto fail;
    fs->exit_fd = -1;
    pthread_mutex_init(&fs->gen_lock, NULL);
    pthread_cond_init(&fs->gen_done, NULL);
    pthread_mutex_init(&fs->loop_lock, NULL);
    pthread_mutex_init(&fs->open_lock, NULL);
    pthread_mutex_init(&fs->wait_lock, NULL);
    pthread_mutex_init(&fs->drop_lock, NULL);
    fs_inodes_init(&fs->inodes);
    fs->cache = store_cache(st);
    fs->pool = pool;
    fs->timeout = o->attr_timeout;
    fs->audit = o->audit;
    fs->proc_flags = policy_proc_pidfs() ? POLICY_PROC_PIDFS : 0;
    fs->max_threads = o->max_threads ? o->max_threads : FS_DEFAULT_THREADS;
    fs->loop_threads = calloc(fs->max_threads, sizeof(*fs->loop_threads));
    fs->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!fs->loop_threads || fs->exit_fd < 0) {
        rc = fs->exit_fd < 0 ? -errno : -ENOMEM;
        snprintf(err, errlen, "cannot set up the filesystem loop: %s", strerror(-rc));
        goto fail;
    }
    struct fs_gen *g = NULL;
    rc = gen_build(fs, st, &g);
    if (rc == -EINVAL)
        snprintf(err, errlen, "secret names collide (one names a directory of another)");
    if (rc < 0)
        goto fail;
    atomic_init(&fs->gen, g);
    rc = grow_per_inode(fs, g->tree->n_ino);
    if (rc < 0)
        goto fail;

    /* ro: the kernel refuses every change itself; noexec,nosuid,nodev: a
     * secret is never a program or a device; default_permissions: the
     * kernel enforces each file's mode and owner. */
    snprintf(opts, sizeof(opts),
             "ro,nosuid,nodev,noexec,default_permissions,fsname=runsecrets,subtype=runsecrets%s",
             o->allow_other ? ",allow_other" : "");
    char a0[] = "runsecrets", a1[] = "-o", a3[] = "-d";
    char *argv[] = {a0, a1, opts, a3, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, argv);
    fs->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
    fuse_opt_free_args(&args);
    if (!fs->se) {
        rc = -EINVAL;
        snprintf(err, errlen, "cannot create the FUSE session");
        goto fail;
    }
    if (o->mount_ns) {
        rc = mount_in_ns(fs, o, err, errlen);
        if (rc < 0)
            goto fail;
    } else if (fuse_session_mount(fs->se, o->mountpoint) != 0) {
        rc = -EIO;
        snprintf(err, errlen, "cannot mount on %s (is /dev/fuse available and are we root?)",
                 o->mountpoint);
        goto fail;
    }
    fs->mounted = true;
    *out = fs;
    return 0;
fail:
    if (rc == -ENOMEM && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    fs_free(fs);
    return rc;
}

/* The loop, ours rather than libfuse's fuse_session_loop_mt: that one ends
 * its threads with pthread_cancel, which makes glibc dlopen libgcc_s at
 * every stop (a file a minimal container image must then carry, and ~2 ms
 * with the unwinding: docs/performance.md, exec) and needs a signal to
 * interrupt its wait, which a signal landing just before the wait misses.
 * Here every loop thread waits in a blocking read of /dev/fuse, as
 * libfuse's do (the kernel wakes one per request and hands it the request:
 * two system calls a request, read and the reply's writev, which is the
 * floor; waiting in epoll first cost two more, ~1.2x the floor for one
 * reader: docs/performance.md). fs_run's caller serves nothing: it waits
 * on exit_fd, which fs_exit writes, and then sends FS_WAKE_SIGNAL to each
 * loop thread until it has left, so a signal that lands just before a
 * thread's read is sent again rather than lost. As libfuse does, a thread
 * that takes a request when no other is waiting starts one more, up to
 * max_threads: a request that waits for another (a page-cache drop waits
 * for reads in flight) always finds a thread to answer it. */

static void loop_serve(struct fs *fs);

static void *loop_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-fuse");
    /* Started with every asynchronous signal blocked (start_locked): the
     * wake-up is the one it takes. */
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, FS_WAKE_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
    loop_serve(arg);
    return NULL;
}

/* Start one more loop thread, waiting (n_idle counts it). Under loop_lock.
 * 0 or pthread_create's error. */
static int start_locked(struct fs *fs)
{
    /* Signals are the main thread's (mount) or the supervisor's (exec):
     * every asynchronous one blocked here; not the faults, whose handler
     * must run (a blocked fault signal kills without it, leaving the
     * mount). */
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP};
    sigset_t set, old;
    sigfillset(&set);
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
        sigdelset(&set, faults[i]);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int rc = pthread_create(&fs->loop_threads[fs->n_started], NULL, loop_thread, fs);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
        fs->n_started++;
        atomic_fetch_add(&fs->n_idle, 1);
    }
    return rc;
}

/* A request was taken: one thread fewer waits, and one more starts when
 * none is left (under loop_lock, which only the starting of a thread
 * takes). 0, or pthread_create's error (the caller logs it). */
static int take(struct fs *fs)
{
    if (atomic_fetch_sub(&fs->n_idle, 1) > 1)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&fs->loop_lock);
    if (atomic_load(&fs->n_idle) <= 0 && fs->n_started < fs->max_threads &&
        !fuse_session_exited(fs->se))
        rc = start_locked(fs);
    pthread_mutex_unlock(&fs->loop_lock);
    return rc;
}

static void loop_fail(struct fs *fs, int rc)
{
    pthread_mutex_lock(&fs->loop_lock);
    if (fs->loop_error == 0)
        fs->loop_error = rc;
    pthread_mutex_unlock(&fs->loop_lock);
}

/* Wait for a request (a blocking read: the kernel wakes one thread per
 * request), answer, again. FS_WAKE_SIGNAL interrupts the read (EINTR),
 * and the loop's test sees the exit flag. On the way out (fs_exit, an
 * unmount, a failure) it calls fs_exit, so fs_run's caller stops the
 * others. */
static void loop_serve(struct fs *fs)
{
    struct fuse_buf buf = {.mem = NULL};   /* libfuse allocates it at the first request */

    while (!fuse_session_exited(fs->se)) {
        int res = fuse_session_receive_buf(fs->se, &buf);
        if (res == -EINTR || res == -EAGAIN)
            continue;
        if (res <= 0) {
            /* 0: the kernel ended the session (unmounted from outside). */
            if (res < 0)
                loop_fail(fs, res);
            break;
        }
        int spawn_err = take(fs);
        if (spawn_err != 0)
            log_f(LOG_WARN, &(struct log_fields){.error = strerror(spawn_err)},
                  "cannot start another filesystem thread");
        fuse_session_process_buf(fs->se, &buf);
        atomic_fetch_add(&fs->n_idle, 1);
    }
    fs_exit(fs);
    free(buf.mem);
}

static void on_wake(int sig)
{
    (void)sig;   /* its only effect is the EINTR of the read it interrupts */
}

/* Until fs_exit: exit_fd is written, or a stop signal's handler (which
 * runs here under `mount`: the loop threads block them) interrupts the
 * wait after calling fs_exit. */
static void wait_for_exit(struct fs *fs)
{
    struct pollfd p = {.fd = fs->exit_fd, .events = POLLIN};
    while (!fuse_session_exited(fs->se)) {
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            loop_fail(fs, -errno);
            fs_exit(fs);
        }
    }
}

/* Join thread t, sending it FS_WAKE_SIGNAL every FS_WAKE_RETRY_MS until it
 * has left: a signal that arrives after its loop tested the exit flag and
 * before it entered the read interrupts nothing, so it is sent again. The
 * wait is bounded by the request it may be answering, as a join is. */
static void end_thread(pthread_t t)
{
    for (;;) {
        struct timespec until;
        (void)pthread_kill(t, FS_WAKE_SIGNAL);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += FS_WAKE_RETRY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = pthread_timedjoin_np(t, NULL, &until);
        if (rc != ETIMEDOUT)
            return;
    }
}

int fs_run(struct fs *fs)
{
    struct sigaction sa = {.sa_handler = on_wake};   /* no SA_RESTART: the read must end */
    sigemptyset(&sa.sa_mask);
    if (sigaction(FS_WAKE_SIGNAL, &sa, NULL) != 0)
        return -errno;
    pthread_mutex_lock(&fs->loop_lock);
    fs->n_started = 0;
    atomic_store(&fs->n_idle, 0);
    fs->loop_error = 0;
    int rc = fuse_session_exited(fs->se) ? 0 : start_locked(fs);
    pthread_mutex_unlock(&fs->loop_lock);
    if (rc != 0) {
        fs_exit(fs);
        return -rc;
    }
    wait_for_exit(fs);
    /* The session has exited, so no thread starts another (take looks
     * under the lock): n is every thread there will be. */
    pthread_mutex_lock(&fs->loop_lock);
    unsigned n = fs->n_started;
    pthread_mutex_unlock(&fs->loop_lock);
    for (unsigned i = 0; i < n; i++)
        end_thread(fs->loop_threads[i]);
    return fs->loop_error;
}

void fs_exit(struct fs *fs)
{
    uint64_t one = 1;
    fuse_session_exit(fs->se);
    /* Async-signal-safe (a stop signal's handler calls this): a write. A
     * full counter (never, in practice) is readable all the same. */
    ssize_t n = write(fs->exit_fd, &one, sizeof(one));
    (void)n;
}

/* Drop the kernel's entry (or, !entry, cached attributes) of node. Called
 * with no lock held and no generation in use: the notification may wait
 * for a lookup in that directory, which a loop thread answers. */
static void inval_node(struct fs *fs, bool entry, uint64_t parent, uint64_t ino, const char *name,
                       size_t name_len)
{
    /* After the loop has exited nobody answers the kernel: an invalidation
     * could block behind a lookup still pending in that directory. */
    if (!fs->mounted || fuse_session_exited(fs->se))
        return;
    /* Errors only mean the kernel never looked the name up: nothing to drop. */
    if (entry)
        (void)fuse_lowlevel_notify_inval_entry(fs->se, parent, name, name_len);
    else
        (void)fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
}

void fs_notify(struct fs *fs, size_t idx, bool removed)
{
    if (!fs)
        return;
    /* idx is a secret of the current generation: the scheduler is never
     * paused for a reload while it calls this. */
    struct fs_gen *g = gen_get(fs);
    const struct fs_node *node = fs_tree_secret(g->tree, idx);
    char name[NAME_MAX_SEGMENT + 1];
    size_t len = node->name_len < sizeof(name) ? node->name_len : 0;
    uint64_t parent = node->parent, ino = node->ino;
    memcpy(name, node->name, len);
    gen_put(fs, g);
    if (len > 0 || !removed)
        inval_node(fs, removed, parent, ino, name, len);
}

/* ---- reload (docs/internals/reload.md) ---- */

struct fs_reload {
    struct fs_gen *next;   /* built by fs_prepare; current after fs_commit */
    struct fs_gen *old;    /* the one fs_commit replaced */
};

int fs_prepare(struct fs *fs, struct store *next, struct fs_reload **out, char *err, size_t errlen)
{
    struct fs_reload *r = calloc(1, sizeof(*r));
    int rc = r ? gen_build(fs, next, &r->next) : -ENOMEM;
    if (rc == 0)
        rc = grow_per_inode(fs, r->next->tree->n_ino);
    if (rc < 0) {
        snprintf(err, errlen, "%s", rc == -EINVAL ? "secret names collide (one names a directory "
                 "of another)" : "out of memory");
        if (r)
            gen_free(r->next);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void fs_commit(struct fs *fs, struct fs_reload *r)
{
    pthread_mutex_lock(&fs->gen_lock);
    r->old = atomic_load_explicit(&fs->gen, memory_order_relaxed);
    atomic_store(&fs->gen, r->next);
    pthread_mutex_unlock(&fs->gen_lock);
    /* Requests parked on the old generation: answered now if their name is
     * gone or its secret (kept) has settled; the others wait for the new
     * secret's first fetch. park refuses the old generation from now on
     * (it reads the pointer under wait_lock, which this takes after the
     * swap), so none can be parked behind this pass. */
    struct fs_gen *g = gen_get(fs);
    size_t n;
    pthread_mutex_lock(&fs->wait_lock);
    n = fs->n_waiters;
    pthread_mutex_unlock(&fs->wait_lock);
    for (size_t ino = 0; ino < n; ino++) {
        pthread_mutex_lock(&fs->wait_lock);
        bool any = fs->waiters[ino] != NULL;
        pthread_mutex_unlock(&fs->wait_lock);
        if (any)
            drain(fs, g, ino);
    }
    gen_put(fs, g);
}

void fs_finish(struct fs *fs, struct fs_reload *r, const bool *inval)
{
    const struct fs_tree *ot = r->old->tree, *nt = r->next->tree;
    /* Names the new tree lacks (by inode: a name keeps its number, and a
     * file and a directory of the same path are two names). Only the
     * topmost: the kernel drops a directory's entries with it. */
    for (size_t i = 1; i < ot->n_nodes; i++) {
        const struct fs_node *n = &ot->nodes[i];
        if (fs_tree_node(nt, n->ino) || !fs_tree_node(nt, n->parent))
            continue;
        inval_node(fs, true, n->parent, n->ino, n->name, n->name_len);
    }
    /* Kept secrets whose attributes or source changed. */
    for (size_t i = 0; inval && i < nt->n_secrets; i++)
        if (inval[i])
            inval_node(fs, false, 0, fs_tree_secret(nt, i)->ino, NULL, 0);
    /* The old generation goes once no request uses it; requests are
     * short and never wait holding one. */
    pthread_mutex_lock(&fs->gen_lock);
    while (r->old->users > 0)
        pthread_cond_wait(&fs->gen_done, &fs->gen_lock);
    pthread_mutex_unlock(&fs->gen_lock);
    gen_free(r->old);
    free(r);
}

void fs_abort(struct fs_reload *r)
{
    if (r) {
        gen_free(r->next);
        free(r);
    }
}

void fs_free(struct fs *fs)
{
    if (!fs)
        return;
    /* Requests still parked (the broker stopped before their first fetch
     * settled) are answered while the session exists. */
    for (size_t i = 0; fs->waiters && i < fs->n_waiters; i++)
        while (fs->waiters[i]) {
            struct waiter *w = fs->waiters[i];
            fs->waiters[i] = w->next;
            waiter_gone(fs, w);
        }
    if (fs->se) {
        if (fs->mounted && !fs->mount_ns)
            fuse_session_unmount(fs->se);
        fuse_session_destroy(fs->se);   /* closes /dev/fuse, as the unmount above does */
    }
    if (fs->mounted && fs->mount_ns)
        mount_in_ns_undo(fs);
    free(fs->mountpoint);
    /* Readers still holding files when we unmount get no RELEASE. */
    while (fs->open_files)
        open_untrack_free(fs, fs->open_files);
    pthread_mutex_destroy(&fs->open_lock);
    pthread_mutex_destroy(&fs->wait_lock);
    pthread_mutex_destroy(&fs->drop_lock);
    pthread_mutex_destroy(&fs->loop_lock);
    pthread_mutex_destroy(&fs->gen_lock);
    pthread_cond_destroy(&fs->gen_done);
    if (fs->exit_fd >= 0)
        close(fs->exit_fd);
    free(fs->loop_threads);
    free(fs->drop_queue);
    free(fs->waiters);
    free(fs->drop_queued);
    gen_free(atomic_load(&fs->gen));
    fs_inodes_cleanup(&fs->inodes);
    free(fs);
}
