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
#include "lib/secmem.h"
#include "policy/policy.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fuse_lowlevel.h>

#define FS_DIR_MODE 0555
#define FS_MAX_GROUPS 64
#define FS_DEFAULT_THREADS 16

struct fs {
    struct store *st;      /* borrowed */
    struct secpool *pool;  /* borrowed */
    struct fuse_session *se;
    struct fs_inodes inodes;       /* written only by tree builds (fs_mount) */
    struct fs_tree *tree;          /* immutable once built: read with no lock */
    double timeout;
    unsigned max_threads;
    bool mounted;
    const struct mountns *mount_ns;   /* borrowed: mounted in there (fs_options) */
    char *mountpoint;                 /* with mount_ns: where, for the unmount */
    /* fs_exit's wake-up: an eventfd every loop thread polls with /dev/fuse,
     * written once and never read, so it stays readable for all of them. */
    int exit_fd;

    /* fs_run's threads: the caller's and the ones it starts. */
    pthread_mutex_t loop_lock;       /* protects the fields below */
    pthread_t *loop_threads;         /* the started ones (max_threads - 1 at most) */
    unsigned n_started;              /* protected by loop_lock */
    unsigned n_idle;                 /* protected by loop_lock: waiting for a request */
    int loop_error;                  /* protected by loop_lock: the first failure */

    /* Lock order: wait_lock, then the store's settle lock. park checks
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
    struct waiter **waiters;         /* per secret, protected by wait_lock: requests
                                        parked until the first fetch settles */
    pthread_mutex_t drop_lock;       /* protects drop_queue, drop_queued, n_drop, dropping */
    fuse_ino_t *drop_queue;          /* protected by drop_lock: inodes whose page
                                        cache is to be dropped; tree->n_ino slots */
    bool *drop_queued;               /* protected by drop_lock: per inode, in drop_queue
                                        (so each is queued once); tree->n_ino slots */
    size_t n_drop;                   /* protected by drop_lock */
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
    struct waiter *next;
};

struct open_file {         /* fi->fh: one snapshot per open */
    struct cache_value *value;
    size_t secret;
    atomic_bool filled;    /* the kernel read through this file into its page cache */
    struct open_file *prev, *next;   /* protected by fs->open_lock */
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

static const struct fs_node *node_get(const struct fs *fs, fuse_ino_t ino)
{
    return fs_tree_node(fs->tree, ino);
}

/* ---- the tree ---- */

static int tree_build(struct fs *fs)
{
    size_t n = store_count(fs->st);
    const char **names = calloc(n + 1, sizeof(*names));
    if (!names)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        names[i] = store_cfg(fs->st, i)->name;
    int rc = fs_tree_build(&fs->inodes, names, n, &fs->tree);
    free(names);
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
static int node_attr_ex(struct fs *fs, const struct fs_node *node, struct stat *st, bool pending)
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
        const struct cfg_attrs *a = &store_cfg(fs->st, node->secret)->attrs;
        store_view(fs->st, node->secret, &v);
        if (!v.present) {
            if (!pending || store_settled(fs->st, node->secret))
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

static int node_attr(struct fs *fs, const struct fs_node *node, struct stat *st)
{
    return node_attr_ex(fs, node, st, false);
}

/* Park w until secret's first fetch settles; false (w untouched) when it
 * already has, and the caller answers now. */
static bool park(struct fs *fs, size_t secret, const struct waiter *w)
{
    bool parked = false;
    pthread_mutex_lock(&fs->wait_lock);
    if (!store_settled(fs->st, secret)) {
        struct waiter *copy = malloc(sizeof(*copy));
        if (copy) {
            *copy = *w;
            copy->next = fs->waiters[secret];
            fs->waiters[secret] = copy;
            parked = true;
        }
    }
    pthread_mutex_unlock(&fs->wait_lock);
    return parked;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);
    const struct fs_node *dir = node_get(fs, parent);
    struct fuse_entry_param e;
    if (!dir || !dir->is_dir) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    const struct fs_node *n = fs_tree_child(fs->tree, dir, name, strlen(name));
    memset(&e, 0, sizeof(e));
    /* During the cold start a configured secret may not be fetched yet. The
     * kernel serialises lookups in a directory, so waiting here would stall
     * every other name: answer at once, cache nothing, and let getattr and
     * open wait for the first fetch (shared by every waiting reader). */
    int rc = !n ? -ENOENT : node_attr_ex(fs, n, &e.attr, true);
    if (rc < 0) {
        /* No negative caching: a secret may appear at the next refresh. */
        fuse_reply_err(req, ENOENT);
        return;
    }
    e.ino = n->ino;
    e.attr_timeout = rc == 1 ? 0 : fs->timeout;
    e.entry_timeout = rc == 1 ? 0 : fs->timeout;
    fuse_reply_entry(req, &e);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct stat st;
    (void)fi;
    const struct fs_node *node = node_get(fs, ino);
    int rc = node ? node_attr(fs, node, &st) : -ENOENT;
    if (rc == -ENOENT && node && !node->is_dir &&
        park(fs, node->secret, &(struct waiter){.req = req, .ino = ino}))
        return;   /* answered when the first fetch settles */
    if (rc == -ENOENT && node && !node->is_dir)
        rc = node_attr(fs, node, &st);
    if (rc < 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fuse_reply_attr(req, &st, fs->timeout);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    const struct fs_node *dir = node_get(fs, ino);
    (void)fi;
    if (!dir || !dir->is_dir) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    /* Offsets: 1 is ".", 2 is "..", 3 + i is child i; stable while the tree
     * is fixed, whatever appears or disappears between calls. */
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
            const struct fs_node *c = &fs->tree->nodes[dir->children[o - 2]];
            if (node_attr(fs, c, &st) < 0)
                continue;  /* no value right now: not listed */
            snprintf(tmp, sizeof(tmp), "%.*s", (int)c->name_len, c->name);
            name = tmp;
        }
        size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, o + 1);
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void finish_open(struct fs *fs, fuse_req_t req, const struct fs_node *node,
                        struct fuse_file_info *fi, const struct policy_subject *subj,
                        enum policy_decision d, struct cache_value *value, int rc);

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    const struct fs_node *node = node_get(fs, ino);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    gid_t groups[FS_MAX_GROUPS];
    int rc;

    if (!node) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (node->is_dir) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    const struct cfg_secret *sec = store_cfg(fs->st, node->secret);
    const struct cfg_attrs *a = &sec->attrs;
    struct policy_subject subj = {.uid = ctx->uid, .gid = ctx->gid, .pid = ctx->pid};
    struct policy_object obj = {.name = sec->name, .backend = store_backend_name(fs->st, node->secret),
                                .mode = a->mode, .uid = a->uid, .gid = a->gid};

    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        rc = -EROFS;
        policy_audit_open(&subj, &obj, POLICY_DENY, rc);
        fuse_reply_err(req, -rc);
        return;
    }
    enum policy_decision d = policy_check_read(&subj, &obj);
    if (d == POLICY_DENY && subj.uid != obj.uid && (obj.mode & 040)) {
        /* Supplementary groups cost a /proc read: only when they can matter. */
        int ng = fuse_req_getgroups(req, FS_MAX_GROUPS, groups);
        if (ng > 0) {
            subj.groups = groups;
            subj.ngroups = (size_t)(ng < FS_MAX_GROUPS ? ng : FS_MAX_GROUPS);
            d = policy_check_read(&subj, &obj);
        }
    }
    if (d == POLICY_DENY) {
        policy_audit_open(&subj, &obj, d, 0);
        fuse_reply_err(req, EACCES);
        return;
    }
    subj.groups = NULL;
    subj.ngroups = 0;
    struct waiter w = {.req = req, .open = true, .ino = ino, .fi = *fi, .subj = subj, .d = d};
    struct cache_value *value = NULL;
    rc = store_acquire(fs->st, node->secret, &value);
    if (rc == -ENOENT && park(fs, node->secret, &w))
        return;   /* answered when the first fetch settles */
    if (rc == -ENOENT)
        rc = store_acquire(fs->st, node->secret, &value);   /* settled meanwhile */
    finish_open(fs, req, node, fi, &subj, d, value, rc);
}

/* The part of open after the policy check, now or once the first fetch
 * has settled: value and rc are store_acquire's result (a reference we
 * now own). */
static void finish_open(struct fs *fs, fuse_req_t req, const struct fs_node *node,
                        struct fuse_file_info *fi, const struct policy_subject *subj,
                        enum policy_decision d, struct cache_value *value, int rc)
{
    const struct cfg_secret *sec = store_cfg(fs->st, node->secret);
    const struct cfg_attrs *a = &sec->attrs;
    struct policy_object obj = {.name = sec->name, .backend = store_backend_name(fs->st, node->secret),
                                .mode = a->mode, .uid = a->uid, .gid = a->gid};
    struct open_file *of = rc == 0 ? malloc(sizeof(*of)) : NULL;
    if (rc == 0 && !of) {
        cache_value_unref(value);
        rc = -ENOMEM;
    }
    if (rc < 0) {
        policy_audit_open(subj, &obj, d, rc);
        free(of);
        fuse_reply_err(req, -rc);
        return;
    }
    of->value = value;
    of->secret = node->secret;
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
    /* Audit after replying: the log write stays off the caller's path. */
    policy_audit_open(subj, &obj, d, rc);
}

void fs_settled(struct fs *fs, size_t idx)
{
    if (!fs)
        return;
    pthread_mutex_lock(&fs->wait_lock);
    struct waiter *w = fs->waiters[idx];
    fs->waiters[idx] = NULL;
    pthread_mutex_unlock(&fs->wait_lock);
    while (w) {
        struct waiter *next = w->next;
        const struct fs_node *node = node_get(fs, w->ino);
        if (w->open) {
            struct cache_value *value = NULL;
            int rc = store_acquire(fs->st, node->secret, &value);
            finish_open(fs, w->req, node, &w->fi, &w->subj, w->d, value, rc);
        } else {
            struct stat st;
            if (node_attr(fs, node, &st) < 0)
                fuse_reply_err(w->req, ENOENT);
            else
                fuse_reply_attr(w->req, &st, fs->timeout);
        }
        free(w);
        w = next;
    }
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
    int rc = store_unseal(fs->st, of->secret, of->value, pt);
    if (rc < 0) {
        log_f(LOG_ERROR, &(struct log_fields){.secret = store_cfg(fs->st, of->secret)->name},
              "cached value failed authentication");
        fuse_reply_err(req, EIO);
    } else {
        size_t n = len - (size_t)off < size ? len - (size_t)off : size;
        fuse_reply_buf(req, (const char *)pt + off, n);
    }
    secpool_put(fs->pool, pt, len);   /* wipes */
    secmem_scrub_regs();              /* the decrypted bytes, before this thread waits */
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
    if (node_get(fs, ino) && !fs->drop_queued[ino]) {
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
    const struct fs_node *node = node_get(fs_of(req), ino);
    if (!node)
        fuse_reply_err(req, ENOENT);
    else if (!node->is_dir)
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
    struct fs *fs = calloc(1, sizeof(*fs));
    err[0] = '\0';
    if (!fs)
        goto fail;
    fs->exit_fd = -1;
    pthread_mutex_init(&fs->loop_lock, NULL);
    pthread_mutex_init(&fs->open_lock, NULL);
    pthread_mutex_init(&fs->wait_lock, NULL);
    pthread_mutex_init(&fs->drop_lock, NULL);
    fs_inodes_init(&fs->inodes);
    fs->waiters = calloc(store_count(st) + 1, sizeof(*fs->waiters));
    if (!fs->waiters)
        goto fail;
    fs->st = st;
    fs->pool = pool;
    fs->timeout = o->attr_timeout;
    fs->max_threads = o->max_threads ? o->max_threads : FS_DEFAULT_THREADS;
    fs->loop_threads = calloc(fs->max_threads, sizeof(*fs->loop_threads));
    fs->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!fs->loop_threads || fs->exit_fd < 0) {
        rc = fs->exit_fd < 0 ? -errno : -ENOMEM;
        snprintf(err, errlen, "cannot set up the filesystem loop: %s", strerror(-rc));
        goto fail;
    }
    rc = tree_build(fs);
    if (rc == -EINVAL)
        snprintf(err, errlen, "secret names collide (one names a directory of another)");
    if (rc < 0)
        goto fail;
    rc = -ENOMEM;
    fs->drop_queue = calloc(fs->tree->n_ino, sizeof(*fs->drop_queue));
    fs->drop_queued = calloc(fs->tree->n_ino, sizeof(*fs->drop_queued));
    if (!fs->drop_queue || !fs->drop_queued)
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
    /* The loop threads wait in epoll and take a request with a read that
     * must not block when another thread took it first (fs_run). */
    int fl = fcntl(fuse_session_fd(fs->se), F_GETFL);
    if (fl < 0 || fcntl(fuse_session_fd(fs->se), F_SETFL, fl | O_NONBLOCK) != 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot make /dev/fuse non-blocking: %s", strerror(-rc));
        goto fail;
    }
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
 * Here every thread waits in epoll on /dev/fuse (EPOLLEXCLUSIVE: one is
 * woken per request) and on exit_fd, which fs_exit makes readable for all
 * of them at once; a thread that finds the request taken by another gets
 * EAGAIN (the fd is non-blocking) and waits again. As libfuse does, a
 * thread that takes a request when no other is waiting starts one more,
 * up to max_threads: a request that waits for another (a page-cache drop
 * waits for reads in flight) always finds a thread to answer it. */

static void loop_serve(struct fs *fs);

static void *loop_thread(void *arg)
{
    loop_serve(arg);
    return NULL;
}

/* A request was taken: one thread fewer waits, and one more starts when
 * none is left. Called with loop_lock; 0, or pthread_create's error (the
 * caller logs it once the lock is released: the lock is a leaf). */
static int take_locked(struct fs *fs)
{
    fs->n_idle--;
    if (fs->n_idle > 0 || fs->n_started + 1 >= fs->max_threads || fuse_session_exited(fs->se))
        return 0;
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
        fs->n_idle++;
    }
    return rc;
}

static void loop_fail(struct fs *fs, int rc)
{
    pthread_mutex_lock(&fs->loop_lock);
    if (fs->loop_error == 0)
        fs->loop_error = rc;
    pthread_mutex_unlock(&fs->loop_lock);
}

/* Wait for a request or fs_exit, answer, again. On the way out (fs_exit,
 * an unmount, a failure) it calls fs_exit, so every other thread leaves
 * too. */
static void loop_serve(struct fs *fs)
{
    struct fuse_buf buf = {.mem = NULL};   /* libfuse allocates it at the first request */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event dev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = 0};
    struct epoll_event quit = {.events = EPOLLIN, .data.u32 = 1};

    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fuse_session_fd(fs->se), &dev) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, fs->exit_fd, &quit) != 0) {
        loop_fail(fs, -errno);
        goto out;
    }
    while (!fuse_session_exited(fs->se)) {
        struct epoll_event got[2];
        int n = epoll_wait(ep, got, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;   /* a stop signal's handler called fs_exit: see the loop's test */
        if (n < 0) {
            loop_fail(fs, -errno);
            break;
        }
        if (n == 2 || got[0].data.u32 == 1)
            break;
        int res = fuse_session_receive_buf(fs->se, &buf);
        if (res == -EINTR || res == -EAGAIN)
            continue;
        if (res <= 0) {
            /* 0: the kernel ended the session (unmounted from outside). */
            if (res < 0)
                loop_fail(fs, res);
            break;
        }
        pthread_mutex_lock(&fs->loop_lock);
        int spawn_err = take_locked(fs);
        pthread_mutex_unlock(&fs->loop_lock);
        if (spawn_err != 0)
            log_f(LOG_WARN, &(struct log_fields){.error = strerror(spawn_err)},
                  "cannot start another filesystem thread");
        fuse_session_process_buf(fs->se, &buf);
        pthread_mutex_lock(&fs->loop_lock);
        fs->n_idle++;
        pthread_mutex_unlock(&fs->loop_lock);
    }
out:
    fs_exit(fs);
    free(buf.mem);
    if (ep >= 0)
        close(ep);
}

int fs_run(struct fs *fs)
{
    pthread_mutex_lock(&fs->loop_lock);
    fs->n_started = 0;
    fs->n_idle = 1;
    fs->loop_error = 0;
    pthread_mutex_unlock(&fs->loop_lock);
    loop_serve(fs);
    /* The session has exited, so no thread starts another (take_locked
     * looks under the lock), and exit_fd wakes every one still waiting. */
    pthread_mutex_lock(&fs->loop_lock);
    unsigned n = fs->n_started;
    pthread_mutex_unlock(&fs->loop_lock);
    for (unsigned i = 0; i < n; i++)
        pthread_join(fs->loop_threads[i], NULL);
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

void fs_notify(struct fs *fs, size_t idx, bool removed)
{
    /* After the loop has exited nobody answers the kernel: an invalidation
     * could block behind a lookup still pending in that directory. */
    if (!fs || !fs->mounted || fuse_session_exited(fs->se))
        return;
    const struct fs_node *node = fs_tree_secret(fs->tree, idx);
    /* Errors only mean the kernel never looked the name up: nothing to drop. */
    if (removed)
        (void)fuse_lowlevel_notify_inval_entry(fs->se, node->parent, node->name, node->name_len);
    else
        (void)fuse_lowlevel_notify_inval_inode(fs->se, node->ino, 0, 0);
}

void fs_free(struct fs *fs)
{
    if (!fs)
        return;
    /* Requests still parked (the broker stopped before their first fetch
     * settled) are answered while the session exists. */
    for (size_t i = 0; fs->waiters && fs->st && i < store_count(fs->st); i++)
        while (fs->waiters[i]) {
            struct waiter *w = fs->waiters[i];
            fs->waiters[i] = w->next;
            fuse_reply_err(w->req, ENOENT);
            free(w);
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
    if (fs->exit_fd >= 0)
        close(fs->exit_fd);
    free(fs->loop_threads);
    free(fs->drop_queue);
    free(fs->waiters);
    free(fs->drop_queued);
    fs_tree_free(fs->tree);
    fs_inodes_cleanup(&fs->inodes);
    free(fs);
}
