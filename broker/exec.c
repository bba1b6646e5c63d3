/* exec.c - `runsecrets exec` (exec.h): wait for the secrets, run the
 * application, act on rotations, exit with its status. */
#include "broker/exec.h"
#include "broker/broker.h"
#include "broker/signals.h"
#include "broker/supervise.h"
#include "engine/config.h"
#include "engine/scheduler.h"
#include "engine/store.h"
#include "lib/clock.h"
#include "lib/duration.h"
#include "lib/escape.h"
#include "lib/ids.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

extern char **environ;

#define EXEC_EXIT_FAILURE 1
/* FUSE's character device: misc major 10, minor 229 on every kernel. */
#define FUSE_DEV_MAJOR 10
#define FUSE_DEV_MINOR 229
/* The longest the wait for the required secrets sleeps: the scheduler's
 * hook wakes it on every new value, this only bounds a missed wake-up
 * (and paces --mount-from's polling of the files). */
#define EXEC_WAIT_POLL_MS 100
/* --mount-from: how often the files of secrets with an on_change are
 * looked at for a new version (nothing tells us). */
#define EXEC_FROM_POLL_MS 1000

/* What runsecrets itself reads from its environment (every getenv in the
 * tree: the backends' settings and credentials), kept from the
 * application: its secrets come as files, and the broker's credentials are
 * the broker's. tests/integration/test_exec.py checks this list against
 * the sources. A proxy setting libcurl reads (http_proxy, ...) is the
 * container's and stays; so does HOME (read for ~/.aws), which is the
 * application's own, replaced with --user (build_env). */
static const char *const stripped_names[] = {
    "VAULT_TOKEN",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST",
};
static const char stripped_prefix[] = "RUNSECRETS_";

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *sig_name(int sig)
{
    const char *s = sigabbrev_np(sig);
    return s ? s : "?";
}

/* ---- the device and the capability ---- */

static bool have_fuse_device(void)
{
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return false;
    bool ok = fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
              major(st.st_rdev) == FUSE_DEV_MAJOR && minor(st.st_rdev) == FUSE_DEV_MINOR;
    close(fd);
    return ok;
}

static bool have_cap_sys_admin(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capget, &h, d) != 0)
        return false;
    return (d[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

unsigned exec_fuse_missing(void)
{
    return (have_fuse_device() ? 0 : EXEC_NO_DEVICE) | (have_cap_sys_admin() ? 0 : EXEC_NO_CAP);
}

void exec_fuse_message(unsigned missing, char *out, size_t cap)
{
    const char *what = (missing & EXEC_NO_DEVICE) && (missing & EXEC_NO_CAP)
                           ? "/dev/fuse and the CAP_SYS_ADMIN capability are"
                       : (missing & EXEC_NO_DEVICE) ? "/dev/fuse is"
                                                    : "the CAP_SYS_ADMIN capability is";
    snprintf(out, cap,
             "runsecrets exec: cannot mount the secrets: %s missing in this container. To "
             "add it: docker run --device /dev/fuse --cap-add SYS_ADMIN --security-opt "
             "apparmor=unconfined; Compose: devices: [/dev/fuse], cap_add: [SYS_ADMIN], "
             "security_opt: [apparmor:unconfined]; Kubernetes: "
             "securityContext.capabilities.add: [SYS_ADMIN] and a /dev/fuse device (a device "
             "plugin or a privileged init). Or mount the secrets outside the container and "
             "bind-mount them in: runsecrets exec --mount-from DIR needs neither.",
             what);
}

/* ---- the state of one run ---- */

/* The version of a secret the application was started with, to tell a
 * real change from a hook call that changed nothing for the application
 * (a value recovering from failed refreshes with the same bytes). */
struct exec_version {
    bool present;
    size_t size;
    struct timespec changed;
    ino_t ino;              /* --mount-from: a file replaced is a new version */
};

struct exec_run {
    const struct config *cfg;
    struct store *st;               /* our mount; NULL with --mount-from */
    struct broker *b;               /* our mount; NULL with --mount-from */
    const char *dir;                /* where the application finds the files */
    const struct exec_opts *o;
    long long wait_ms, grace_ms, debounce_ms;
    struct supervise *sup;
    char **envp;                    /* the application's environment */
    char **env_owned;               /* the strings of envp we allocated */
    size_t n_owned;
    pthread_mutex_t lock;           /* protects pending */
    bool *pending;                  /* changed since the main thread last looked */
    bool *taken;                    /* main thread: pending, copied out */
    struct exec_version *seen;      /* main thread: what the application has */
    long long restart_at;           /* main thread: monotonic ms of a debounced restart; 0 none */
    bool deadline_passed;           /* main thread: report_missing once nothing fetches */
    bool watch;                     /* some secret has an on_change */
    /* Until the application starts, supervise_wait has nothing to wait
     * for (it returns at once without a child): the main thread waits in
     * sigtimedwait, and other threads wake it with SIGNALS_WAKE. */
    pthread_t main_thread;
    atomic_bool started;            /* set by the main thread before the first start */
};

/* Any thread: ask the main thread to look. */
static void wake_main(struct exec_run *x)
{
    if (atomic_load(&x->started))
        supervise_wake(x->sup);
    else
        (void)pthread_kill(x->main_thread, SIGNALS_WAKE);
}

/* The scheduler's changed hook (broker.changed), on a fetch worker with no
 * scheduler or store lock held: record, wake the main thread, return. The
 * lock is a leaf. */
static void on_secret_changed(void *arg, size_t idx, bool removed)
{
    struct exec_run *x = arg;
    (void)removed;
    pthread_mutex_lock(&x->lock);
    x->pending[idx] = true;
    pthread_mutex_unlock(&x->lock);
    /* After the record: once started is set, snapshot() has cleared only
     * records made before it, and this one reaches supervise_wait. */
    wake_main(x);
}

/* broker_start's loop thread ended by itself. */
static void on_loop_ended(void *arg)
{
    struct exec_run *x = arg;
    wake_main(x);
}

static int file_path(const struct exec_run *x, size_t idx, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", x->dir, x->cfg->secrets[idx].name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static void version_of(const struct exec_run *x, size_t idx, struct exec_version *v)
{
    memset(v, 0, sizeof(*v));
    if (x->st) {
        struct secret_view sv;
        store_view(x->st, idx, &sv);
        v->present = sv.present;
        v->size = sv.size;
        v->changed = sv.changed;
        return;
    }
    char path[PATH_MAX];
    struct stat st;
    if (file_path(x, idx, path, sizeof(path)) < 0 || stat(path, &st) != 0)
        return;
    v->present = true;
    v->size = (size_t)st.st_size;
    v->changed = st.st_mtim;
    v->ino = st.st_ino;
}

static bool version_equal(const struct exec_version *a, const struct exec_version *b)
{
    return a->present == b->present && a->size == b->size && a->ino == b->ino &&
           a->changed.tv_sec == b->changed.tv_sec && a->changed.tv_nsec == b->changed.tv_nsec;
}

/* What the application starts with: every change before this is in it. */
static void snapshot(struct exec_run *x)
{
    pthread_mutex_lock(&x->lock);
    memset(x->pending, 0, x->cfg->n_secrets * sizeof(*x->pending));
    pthread_mutex_unlock(&x->lock);
    for (size_t i = 0; i < x->cfg->n_secrets; i++)
        version_of(x, i, &x->seen[i]);
}

static int run_init(struct exec_run *x, const struct config *cfg, const struct exec_opts *o)
{
    char err[256] = "";
    memset(x, 0, sizeof(x[0]));
    x->cfg = cfg;
    x->o = o;
    x->wait_ms = o->wait_ms > 0 ? o->wait_ms : cfg->exec.wait;
    x->grace_ms = cfg->exec.stop_grace;
    x->debounce_ms = cfg->exec.debounce;
    x->main_thread = pthread_self();
    atomic_store(&x->started, false);
    pthread_mutex_init(&x->lock, NULL);
    size_t n = cfg->n_secrets + 1;
    x->pending = calloc(n, sizeof(*x->pending));
    x->taken = calloc(n, sizeof(*x->taken));
    x->seen = calloc(n, sizeof(*x->seen));
    if (!x->pending || !x->taken || !x->seen) {
        log_error("out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_secrets; i++)
        x->watch = x->watch || cfg->secrets[i].on_change != CFG_ON_CHANGE_NONE;
    int rc = supervise_new(&x->sup, err, sizeof(err));
    if (rc < 0)
        log_error("cannot start supervising: %s", err);
    return rc;
}

static void run_cleanup(struct exec_run *x)
{
    supervise_free(x->sup);
    for (size_t i = 0; i < x->n_owned; i++)
        free(x->env_owned[i]);
    free(x->env_owned);
    free(x->envp);
    free(x->pending);
    free(x->taken);
    free(x->seen);
    pthread_mutex_destroy(&x->lock);
}

/* ---- the application's environment ---- */

static bool env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static bool env_stripped(const struct exec_run *x, const char *entry)
{
    if (strncmp(entry, stripped_prefix, sizeof(stripped_prefix) - 1) == 0)
        return true;
    for (size_t i = 0; i < N_OF(stripped_names); i++)
        if (env_is(entry, stripped_names[i]))
            return true;
    /* Ours replaces the container's, rather than two of one name. */
    for (size_t i = 0; i < x->cfg->n_secrets; i++)
        if (x->cfg->secrets[i].env && env_is(entry, x->cfg->secrets[i].env))
            return true;
    if (x->o->user && x->o->user->set && env_is(entry, "HOME"))
        return true;
    return false;
}

static int env_add(struct exec_run *x, size_t *n, const char *name, const char *value)
{
    size_t len = strlen(name) + 1 + strlen(value) + 1;
    char *s = malloc(len);
    if (!s)
        return -ENOMEM;
    snprintf(s, len, "%s=%s", name, value);
    x->env_owned[x->n_owned++] = s;
    x->envp[(*n)++] = s;
    return 0;
}

/* The container's environment minus what runsecrets reads, plus one
 * NAME=<dir>/<secret> per secret with an "env" (a path, never a value),
 * plus, with --user, HOME from that user's passwd entry (as su and gosu
 * do: the container's HOME is ours). */
static int build_env(struct exec_run *x)
{
    size_t n_env = 0, n = 0;
    while (environ && environ[n_env])
        n_env++;
    x->envp = calloc(n_env + x->cfg->n_secrets + 2, sizeof(*x->envp));
    x->env_owned = calloc(x->cfg->n_secrets + 1, sizeof(*x->env_owned));
    if (!x->envp || !x->env_owned)
        return -ENOMEM;
    for (size_t i = 0; i < n_env; i++)
        if (!env_stripped(x, environ[i]))
            x->envp[n++] = environ[i];
    for (size_t i = 0; i < x->cfg->n_secrets; i++) {
        char path[PATH_MAX];
        if (!x->cfg->secrets[i].env)
            continue;
        if (file_path(x, i, path, sizeof(path)) < 0)
            return -ENAMETOOLONG;
        if (env_add(x, &n, x->cfg->secrets[i].env, path) < 0)
            return -ENOMEM;
    }
    if (x->o->user && x->o->user->set) {
        /* The user's home, when it has one; a uid without an entry (or a
         * lookup that fails) leaves HOME as it was. */
        struct passwd pw;
        char *buf = NULL;
        int rc = ids_passwd(NULL, x->o->user->uid, &pw, &buf);
        if (rc == 0 && pw.pw_dir && pw.pw_dir[0])
            rc = env_add(x, &n, "HOME", pw.pw_dir) < 0 ? -ENOMEM : 0;
        free(buf);
        if (rc == -ENOMEM)
            return rc;
    }
    return 0;
}

/* ---- waiting for the required secrets ---- */

/* Whether required secret idx is there for the application. why (may be
 * NULL) says what is missing. */
static bool secret_ready(const struct exec_run *x, size_t idx, char *why, size_t cap)
{
    if (x->st) {
        struct secret_view v;
        store_view(x->st, idx, &v);
        if (v.present)
            return true;
        if (why) {
            scheduler_last_error(x->b->sched, idx, why, cap);
            if (!why[0])
                snprintf(why, cap, "no value yet");
        }
        return false;
    }
    char path[PATH_MAX];
    if (file_path(x, idx, path, sizeof(path)) < 0) {
        if (why)
            snprintf(why, cap, "path too long");
        return false;
    }
    /* Opened, not stat'ed: a host broker's policy answers an open. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (why)
            snprintf(why, cap, "%s", errno == ENOENT ? "no such file" : strerror(errno));
        return false;
    }
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!ok) {
        if (why)
            snprintf(why, cap, "not a regular file");
        return false;
    }
    /* We may be root; the application is --user: its permission bits. */
    const struct supervise_user *u = x->o->user;
    if (u && u->set && u->uid != 0) {
        bool in_group = st.st_gid == u->gid;
        for (size_t g = 0; !in_group && g < u->n_groups; g++)
            in_group = st.st_gid == u->groups[g];
        mode_t bit = st.st_uid == u->uid ? S_IRUSR : in_group ? S_IRGRP : S_IROTH;
        if (!(st.st_mode & bit)) {
            if (why)
                snprintf(why, cap, "mode %04o owner %u:%u: not readable by uid %u",
                         (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
                         (unsigned)st.st_gid, (unsigned)u->uid);
            return false;
        }
    }
    return true;
}

static size_t count_missing(const struct exec_run *x)
{
    size_t missing = 0;
    for (size_t i = 0; i < x->cfg->n_secrets; i++)
        if (x->cfg->secrets[i].required && !secret_ready(x, i, NULL, 0))
            missing++;
    return missing;
}

/* The one line for people when the wait runs out. */
static void report_missing(const struct exec_run *x)
{
    char line[4096], wait[32];
    size_t len;
    duration_format(x->wait_ms, wait, sizeof(wait));
    len = (size_t)snprintf(line, sizeof(line), "runsecrets exec: required secret%s missing after "
                           "%s, the application was not started:",
                           count_missing(x) == 1 ? "" : "s", wait);
    for (size_t i = 0; i < x->cfg->n_secrets && len < sizeof(line); i++) {
        char why[512], name[256], shown[600];
        if (!x->cfg->secrets[i].required || secret_ready(x, i, why, sizeof(why)))
            continue;
        escape_str(name, sizeof(name), x->cfg->secrets[i].name, 0);
        escape_str(shown, sizeof(shown), why, ESCAPE_KEEP_BACKSLASH);
        len += (size_t)snprintf(line + len, sizeof(line) - len, " %s (%s)", name, shown);
    }
    fprintf(stderr, "%s\n", line);
}

/* Wait until every required secret is there, for at most wait_ms. 0 when
 * they are; else the exit code (1 after the deadline, with
 * deadline_passed set; 128 + the signal when TERM, INT or QUIT came
 * first). The supervisor's signals are blocked in every thread: with no
 * application yet they are taken here, the stop signals end the wait and
 * the others have nobody to go to. SIGNALS_WAKE is the scheduler's hook
 * (a value arrived) or the loop thread ending. */
static int wait_required(struct exec_run *x)
{
    long long deadline = clock_mono_ms() + x->wait_ms;
    sigset_t set;

    supervise_forwarded_set(&set);
    sigaddset(&set, SIGNALS_WAKE);
    for (;;) {
        if (count_missing(x) == 0)
            return 0;
        if (x->b && atomic_load(&x->b->loop_ended)) {
            log_error("the filesystem loop ended before the application started");
            return EXEC_EXIT_FAILURE;
        }
        long long left = deadline - clock_mono_ms();
        if (left <= 0) {
            /* Reported by the caller once the scheduler has stopped, so
             * the last errors hold still while they are read. */
            x->deadline_passed = true;
            return EXEC_EXIT_FAILURE;
        }
        long long ms = left < EXEC_WAIT_POLL_MS ? left : EXEC_WAIT_POLL_MS;
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
            log_info("stopped by SIG%s before the application started", sig_name(sig));
            return 128 + sig;
        }
    }
}

/* ---- running the application ---- */

static int start_app(struct exec_run *x)
{
    char err[512] = "";
    atomic_store(&x->started, true);
    struct supervise_child c = {.argv = x->o->argv, .envp = x->envp, .user = x->o->user,
                                .signal_group = x->o->signal_group,
                                .close_from = x->o->close_from,
                                .core_limit = x->o->core_limit};
    snapshot(x);
    int rc = supervise_start(x->sup, &c, err, sizeof(err));
    if (rc < 0) {
        struct log_fields lf = {.error = err};
        log_f(LOG_ERROR, &lf, "cannot start the application");
    } else {
        log_info("application started");
    }
    return rc;
}

/* Act on the secrets the scheduler (or, --mount-from, the poll) marked. */
static void handle_changes(struct exec_run *x, bool poll_all)
{
    sigset_t send;
    sigemptyset(&send);
    pthread_mutex_lock(&x->lock);
    for (size_t i = 0; i < x->cfg->n_secrets; i++) {
        x->taken[i] = x->pending[i] || poll_all;
        x->pending[i] = false;
    }
    pthread_mutex_unlock(&x->lock);
    for (size_t i = 0; i < x->cfg->n_secrets; i++) {
        const struct cfg_secret *sec = &x->cfg->secrets[i];
        struct exec_version v;
        if (!x->taken[i] || sec->on_change == CFG_ON_CHANGE_NONE)
            continue;
        version_of(x, i, &v);
        if (version_equal(&v, &x->seen[i]))
            continue;
        x->seen[i] = v;
        struct log_fields lf = {.secret = sec->name};
        if (sec->on_change == CFG_ON_CHANGE_SIGNAL) {
            sigaddset(&send, sec->on_change_signal);
            log_f(LOG_INFO, &lf, "secret changed, signalling the application (SIG%s)",
                  sig_name(sec->on_change_signal));
        } else if (x->restart_at == 0) {
            x->restart_at = clock_mono_ms() + x->debounce_ms;
            log_f(LOG_INFO, &lf, "secret changed, restarting the application");
        }
    }
    /* One signal per signal number and look: the kernel would merge two
     * sent before the application took the first anyway. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&send, sig) == 1 && supervise_signal(x->sup, sig) < 0)
            log_warn("the application is gone: SIG%s not sent", sig_name(sig));
}

/* Stop with the grace, start again. 0, or an exit code. */
static int restart_app(struct exec_run *x)
{
    x->restart_at = 0;
    int status = supervise_stop(x->sup, x->grace_ms);
    log_info("application stopped for a restart (status %d)", status);
    return start_app(x) < 0 ? EXEC_EXIT_FAILURE : 0;
}

/* PID 1's loop: returns the exit code. */
static int supervise_loop(struct exec_run *x)
{
    for (;;) {
        long long timeout = -1, now = clock_mono_ms();
        if (x->restart_at)
            timeout = x->restart_at > now ? x->restart_at - now : 0;
        if (!x->st && x->watch && (timeout < 0 || timeout > EXEC_FROM_POLL_MS))
            timeout = EXEC_FROM_POLL_MS;
        int status = 0;
        switch (supervise_wait(x->sup, timeout, &status)) {
        case SUPERVISE_EXITED:
            log_info("application exited (status %d)", status);
            return status;
        case SUPERVISE_STOP:
            log_info("stopping the application");
            status = supervise_stop(x->sup, x->grace_ms);
            log_info("application exited (status %d)", status);
            return status;
        case SUPERVISE_WAKE:
            if (x->b && atomic_load(&x->b->loop_ended)) {
                /* The mount went away under us (unmounted from outside):
                 * the application would run on without its secrets. */
                log_error("the filesystem loop ended; stopping the application");
                (void)supervise_signal(x->sup, SIGTERM);
                status = supervise_stop(x->sup, x->grace_ms);
                log_info("application exited (status %d)", status);
                return EXEC_EXIT_FAILURE;
            }
            handle_changes(x, false);
            break;
        case SUPERVISE_TIMEOUT:
            if (!x->st && x->watch)
                handle_changes(x, true);
            break;
        }
        if (x->restart_at && clock_mono_ms() >= x->restart_at) {
            int ex = restart_app(x);
            if (ex)
                return ex;
        }
    }
}

static int run_app(struct exec_run *x)
{
    int ex = wait_required(x);
    if (ex)
        return ex;
    if (build_env(x) < 0) {
        log_error("cannot build the application's environment: out of memory");
        return EXEC_EXIT_FAILURE;
    }
    if (start_app(x) < 0)
        return EXEC_EXIT_FAILURE;
    return supervise_loop(x);
}

int exec_serve(struct broker *b, const struct exec_opts *o)
{
    struct exec_run x;
    int ex = EXEC_EXIT_FAILURE;

    if (run_init(&x, b->cfg, o) < 0)
        goto out;
    x.b = b;
    x.st = b->store;
    x.dir = b->mountpoint;
    /* Before the threads start: the hook's argument is fixed from here. */
    b->changed = on_secret_changed;
    b->changed_arg = &x;
    if (broker_start(b, on_loop_ended, &x) < 0)
        goto out;
    ex = run_app(&x);
out:
    /* Unmount and revoke; the hooks into x end with the scheduler. */
    broker_stop(b);
    b->changed = NULL;
    log_f(LOG_INFO, &(struct log_fields){.path = b->mountpoint}, "unmounted");
    if (x.deadline_passed)
        report_missing(&x);
    run_cleanup(&x);
    return ex;
}

int exec_from(const struct config *cfg, const struct exec_opts *o)
{
    struct exec_run x;
    int ex = EXEC_EXIT_FAILURE;

    if (run_init(&x, cfg, o) < 0)
        goto out;
    x.dir = o->mount_from;
    ex = run_app(&x);
    if (x.deadline_passed)
        report_missing(&x);
out:
    run_cleanup(&x);
    return ex;
}
