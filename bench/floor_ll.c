/* floor_ll.c - the benchmark floor: a libfuse3 low-level filesystem that does
 * nothing but serve one read-only file from memory.
 *
 * usage: floor_ll [-d] FILE MOUNTPOINT
 *
 * FILE is read once at start; its bytes are served as MOUNTPOINT/<basename of
 * FILE>. Everything the kernel can see is what the runsecrets daemon does
 * (fuse/fs.c): the same mount options, direct_io and no keep_cache on open,
 * 1.0 s entry and attribute timeouts, a multithreaded session loop with the
 * same thread limit and no clone_fd, no flush handler. So the time an
 * open+read+close takes here is the FUSE round trips alone, and the daemon's
 * time over this one is its own userspace work (policy, audit log, cache
 * lookup, decryption).
 *
 * The bytes are benchmark data, not a secret: they live in plain heap memory.
 * SIGTERM, SIGINT and SIGHUP end the loop and unmount.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <fuse_lowlevel.h>

#define FLOOR_TIMEOUT 1.0          /* fuse/fs.c: .attr_timeout = 1.0 (cli.c) */
#define FLOOR_MAX_THREADS 16       /* fuse/fs.c: FS_DEFAULT_THREADS */
#define FLOOR_MAX_SIZE (1u << 20)  /* refuse to serve more than this */
#define FLOOR_FILE_INO 2
#define FLOOR_FILE_MODE 0400       /* the config default "mode": "0400" */
#define FLOOR_DIR_MODE 0555        /* fuse/fs.c: FS_DIR_MODE */

struct floor {
    char *data;          /* the file's bytes; owned */
    size_t len;
    const char *name;    /* borrowed from argv */
    size_t name_len;
    uid_t uid;
    gid_t gid;
    struct timespec mtime;
};

static struct floor *floor_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static int floor_attr(const struct floor *fl, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_blksize = 4096;
    st->st_mtim = fl->mtime;
    st->st_atim = fl->mtime;
    st->st_ctim = fl->mtime;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | FLOOR_DIR_MODE;
        st->st_nlink = 2;
        return 0;
    }
    if (ino != FLOOR_FILE_INO)
        return -ENOENT;
    st->st_mode = S_IFREG | FLOOR_FILE_MODE;
    st->st_nlink = 1;
    st->st_uid = fl->uid;
    st->st_gid = fl->gid;
    st->st_size = (off_t)fl->len;
    st->st_blocks = (blkcnt_t)((fl->len + 511) / 512);
    return 0;
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    const struct floor *fl = floor_of(req);
    struct fuse_entry_param e;

    if (parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (strlen(name) != fl->name_len || memcmp(name, fl->name, fl->name_len) != 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    memset(&e, 0, sizeof(e));
    e.ino = FLOOR_FILE_INO;
    e.entry_timeout = FLOOR_TIMEOUT;
    e.attr_timeout = FLOOR_TIMEOUT;
    (void)floor_attr(fl, e.ino, &e.attr);
    fuse_reply_entry(req, &e);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    if (floor_attr(floor_of(req), ino, &st) < 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fuse_reply_attr(req, &st, FLOOR_TIMEOUT);
}

/* Enough for `ls`; not on the measured path. Offsets: 1 ".", 2 "..", 3 file. */
static void floor_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi)
{
    const struct floor *fl = floor_of(req);
    char buf[512];
    size_t used = 0;
    (void)fi;

    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (size > sizeof(buf))
        size = sizeof(buf);
    for (off_t o = off; o < 3; o++) {
        const char *const names[] = {".", "..", fl->name};
        struct stat st;
        memset(&st, 0, sizeof(st));
        st.st_ino = o == 2 ? FLOOR_FILE_INO : FUSE_ROOT_ID;
        st.st_mode = o == 2 ? S_IFREG : S_IFDIR;
        size_t need = fuse_add_direntry(req, buf + used, size - used, names[o], &st, o + 1);
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
}

static void floor_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != FLOOR_FILE_INO) {
        fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    fi->direct_io = 1;
    fi->keep_cache = 0;
    fuse_reply_open(req, fi);
}

static void floor_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    const struct floor *fl = floor_of(req);
    (void)ino;
    (void)fi;
    if (off < 0 || (size_t)off >= fl->len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = fl->len - (size_t)off < size ? fl->len - (size_t)off : size;
    fuse_reply_buf(req, fl->data + off, n);
}

static void floor_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops floor_ops = {
    .lookup = floor_lookup,
    .getattr = floor_getattr,
    .readdir = floor_readdir,
    .open = floor_open,
    .read = floor_read,
    .release = floor_release,
};

/* Read all of path into fl->data. 0 or negative errno; err says why. */
static int floor_load(struct floor *fl, const char *path, char *err, size_t errlen)
{
    int rc = -EIO;
    int fd = -1;
    char *buf = NULL;
    struct stat st;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > FLOOR_MAX_SIZE) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path, FLOOR_MAX_SIZE);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > (size_t)st.st_size) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s: grew while being read", path);
            goto out;
        }
    }
    fl->data = buf;
    buf = NULL;   /* ownership moved */
    fl->len = len;
    fl->mtime = st.st_mtim;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [-d] FILE MOUNTPOINT\n"
            "Serve FILE's bytes (read once, at start) as MOUNTPOINT/<basename of FILE> with\n"
            "the runsecrets daemon's FUSE settings; SIGTERM or SIGINT unmounts and exits.\n"
            "  -d  libfuse request tracing on stderr\n",
            argv0);
}

int main(int argc, char **argv)
{
    int ex = 1;
    bool debug = false;
    char err[512];
    char opts[256];
    struct floor fl;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fuse_session *se = NULL;
    struct fuse_loop_config *lc = NULL;
    bool mounted = false, signals = false;

    memset(&fl, 0, sizeof(fl));
    int c;
    while ((c = getopt(argc, argv, "dh")) != -1) {
        if (c == 'd') {
            debug = true;
        } else if (c == 'h') {
            usage(stdout, argv[0]);
            return 0;
        } else {
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr, argv[0]);
        return 2;
    }
    const char *file = argv[optind];
    const char *mnt = argv[optind + 1];
    const char *slash = strrchr(file, '/');
    fl.name = slash ? slash + 1 : file;
    fl.name_len = strlen(fl.name);
    if (fl.name_len == 0) {
        fprintf(stderr, "floor_ll: %s: no file name\n", file);
        return 2;
    }
    fl.uid = geteuid();
    fl.gid = getegid();
    if (floor_load(&fl, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "floor_ll: %s\n", err);
        return 1;
    }

    /* The daemon's option string (fuse/fs.c fs_mount), allow_other as root
     * as it does; only fsname and subtype differ so the mounts can be told
     * apart in /proc/self/mountinfo. */
    snprintf(opts, sizeof(opts),
             "ro,nosuid,nodev,noexec,default_permissions,fsname=runsecrets-floor,subtype=floor%s",
             geteuid() == 0 ? ",allow_other" : "");
    char a0[] = "floor_ll", a1[] = "-o", a3[] = "-d";
    char *fargv[] = {a0, a1, opts, a3, NULL};
    args.argc = debug ? 4 : 3;
    args.argv = fargv;

    se = fuse_session_new(&args, &floor_ops, sizeof(floor_ops), &fl);
    if (!se) {
        fprintf(stderr, "floor_ll: cannot create the FUSE session\n");
        goto out;
    }
    if (fuse_set_signal_handlers(se) != 0) {
        fprintf(stderr, "floor_ll: cannot install signal handlers\n");
        goto out;
    }
    signals = true;
    if (fuse_session_mount(se, mnt) != 0) {
        fprintf(stderr, "floor_ll: cannot mount on %s\n", mnt);
        goto out;
    }
    mounted = true;
    lc = fuse_loop_cfg_create();
    if (!lc) {
        fprintf(stderr, "floor_ll: out of memory\n");
        goto out;
    }
    fuse_loop_cfg_set_max_threads(lc, FLOOR_MAX_THREADS);
    fuse_loop_cfg_set_clone_fd(lc, 0);
    /* Negative: an error; 0 or a signal number: a clean stop. */
    if (fuse_session_loop_mt(se, lc) < 0) {
        fprintf(stderr, "floor_ll: session loop failed\n");
        goto out;
    }
    ex = 0;
out:
    if (lc)
        fuse_loop_cfg_destroy(lc);
    if (se) {
        if (mounted)
            fuse_session_unmount(se);
        if (signals)
            fuse_remove_signal_handlers(se);
        fuse_session_destroy(se);
    }
    fuse_opt_free_args(&args);   /* fuse_session_new may have rebuilt it */
    free(fl.data);
    return ex;
}
