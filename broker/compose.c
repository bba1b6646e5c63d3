/* compose.c - `runsecrets compose`: the Docker Compose provider-service
 * protocol (docker/compose docs/extension.md) over one host broker per
 * project. docs/compose.md is the user's side of it.
 *
 * Per project, under the run directory R (default /run/runsecrets):
 *   R/<project>                    the mountpoint (what containers bind)
 *   R/.compose/<project>.json      who runs there: pid, its start time,
 *                                  service, config (written by `up`)
 *   R/.compose/<project>.pid       the broker's own --pid-file
 *   R/.compose/<project>.log       the broker's stderr (JSON log lines)
 *   R/.compose/<project>.lock      serialises up/down/stop of the project
 * A project name never starts with '.', so ".compose" is never a mount.
 *
 * Compose reads our stdout until EOF: the daemon gets none of our
 * descriptors (its stdio is /dev/null and the log), else Compose would
 * wait for the broker to exit. Everything on stdout is a JSON line.
 */
#include "broker/compose.h"
#include "engine/config.h"
#include "lib/duration.h"
#include "lib/escape.h"
#include "lib/unittest.h"
#include "rs_config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define COMPOSE_EXIT_RUNTIME 1
#define COMPOSE_EXIT_USAGE 2

#define COMPOSE_RUN_DIR "/run/runsecrets"
#define COMPOSE_STATE_DIR ".compose"
/* A DNS label's length: the name is a directory and often a hostname part. */
#define COMPOSE_PROJECT_MAX 63
/* SIGTERM to exit: the broker revokes leases and gives back tokens, which
 * are HTTP requests with their own bounds. Then SIGKILL. */
#define COMPOSE_STOP_MS 20000LL
#define COMPOSE_KILL_MS 5000LL
/* Past a concurrent up's wait and stop, the lock is someone's bug. */
#define COMPOSE_LOCK_EXTRA_MS 30000LL
#define COMPOSE_NOTIFY_MAX 4096
#define COMPOSE_LOG_TAIL 65536
#define COMPOSE_FSTYPE "fuse.runsecrets"

enum compose_cmd { CMD_UP, CMD_DOWN, CMD_STOP, CMD_METADATA };
#define CMD_BIT(c) (1u << (c))

static const char *const cmd_names[] = {"up", "down", "stop", "metadata"};

struct compose {
    enum compose_cmd cmd;
    const char *project;
    const char *service;
    const char *config;       /* as given */
    const char *run_dir;
    long long wait_ms;        /* < 0: the configuration's exec.wait */
    bool raw_env;
    char config_abs[PATH_MAX];
    char root[PATH_MAX];      /* run_dir, resolved */
    char mount[PATH_MAX];     /* root/project */
    char state_dir[PATH_MAX]; /* root/.compose */
    char state[PATH_MAX];
    char pidfile[PATH_MAX];
    char logfile[PATH_MAX];
    char lockfile[PATH_MAX];
    int lock_fd;
};

/* What R/.compose/<project>.json says. */
struct compose_state {
    long pid;
    unsigned long long start;  /* /proc/PID/stat's starttime: a reused pid differs */
    char service[256];
    char config[PATH_MAX];
};

/* ---- the protocol's output ---- */

/* One JSON line {"type": type, "message": ...} on stdout, flushed: Compose
 * shows progress as it comes. */
static void say(const char *type, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *type, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s}", "type", type, "message", msg);
    /* json_dumpf: jansson's own (wiping) allocator never meets free(). */
    if (o && json_dumpf(o, stdout, JSON_COMPACT) == 0) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    json_decref(o);
}

/* ---- options: one table for the parser and for `metadata` ---- */

static int set_config(struct compose *c, const char *v, char *err, size_t errlen)
{
    if (!v[0]) {
        snprintf(err, errlen, "--config: empty path");
        return -EINVAL;
    }
    c->config = v;
    return 0;
}

static int set_run_dir(struct compose *c, const char *v, char *err, size_t errlen)
{
    char shown[PATH_MAX];
    if (v[0] != '/' || strlen(v) > PATH_MAX / 2) {
        escape_str(shown, sizeof(shown), v, ESCAPE_SQUOTE);
        snprintf(err, errlen, "--run-dir must be an absolute path, got '%s'", shown);
        return -EINVAL;
    }
    c->run_dir = v;
    return 0;
}

static int set_wait(struct compose *c, const char *v, char *err, size_t errlen)
{
    char shown[128], why[128];
    if (duration_parse_str(v, &c->wait_ms, why, sizeof(why)) < 0 || c->wait_ms <= 0) {
        escape_str(shown, sizeof(shown), v, ESCAPE_SQUOTE);
        snprintf(err, errlen, "--wait: expected a duration like 30s or 2m, got '%s'", shown);
        return -EINVAL;
    }
    return 0;
}

static int set_raw_env(struct compose *c, const char *v, char *err, size_t errlen)
{
    char shown[128];
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        c->raw_env = v[0] == 't';
        return 0;
    }
    escape_str(shown, sizeof(shown), v, ESCAPE_SQUOTE);
    snprintf(err, errlen, "--raw-env: expected true or false, got '%s'", shown);
    return -EINVAL;
}

struct compose_param {
    const char *name;
    const char *type;          /* metadata's "type" */
    const char *def;           /* metadata's "default"; NULL: none listed */
    const char *description;
    unsigned cmds;             /* the commands whose metadata lists it */
    int (*set)(struct compose *c, const char *value, char *err, size_t errlen);
};

/* Compose passes an option to a command only when that command's metadata
 * lists it, so run-dir is listed for all three: down must find what up
 * made. Each command still accepts every option (Compose without metadata
 * passes them all). */
static const struct compose_param params[] = {
    {"config", "string", RS_DEFAULT_CONFIG,
     "runsecrets configuration file (absolute, or relative to where compose runs)",
     CMD_BIT(CMD_UP), set_config},
    {"run-dir", "string", COMPOSE_RUN_DIR,
     "directory of the project mounts: secrets are files in <run-dir>/<project>/",
     CMD_BIT(CMD_UP) | CMD_BIT(CMD_DOWN) | CMD_BIT(CMD_STOP), set_run_dir},
    {"wait", "string", NULL,
     "longest wait for the required secrets, e.g. 30s (default: the configuration's "
     "exec.wait, else 30s)",
     CMD_BIT(CMD_UP), set_wait},
    {"raw-env", "boolean", "false",
     "announce each secret's env variable as is (rawsetenv: newer Compose only, older ones "
     "refuse it) instead of prefixed with the service name (setenv)",
     CMD_BIT(CMD_UP), set_raw_env},
};

#define N_PARAMS (sizeof(params) / sizeof(params[0]))

static const struct compose_param *param_find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_PARAMS; i++)
        if (strlen(params[i].name) == len && strncmp(params[i].name, name, len) == 0)
            return &params[i];
    return NULL;
}

static const char usage[] =
    "usage: runsecrets compose --project-name NAME up|down|stop [--OPTION=VALUE...] SERVICE\n"
    "       runsecrets compose metadata\n"
    "\n"
    "A Docker Compose provider service (Compose 2.36+): in compose.yaml,\n"
    "  services:\n"
    "    secrets:\n"
    "      provider:\n"
    "        type: runsecrets\n"
    "        options: {config: /etc/runsecrets/myapp.json}\n"
    "up starts a broker for the project (or finds the running one) mounted at\n"
    "<run-dir>/<project> and waits for its required secrets; down stops it and\n"
    "unmounts; stop stops it and keeps its log; metadata prints the options.\n"
    "Output: JSON lines on stdout, as Compose reads them. Exit 0 ok, 1 the broker\n"
    "did not start or stop, 2 usage or configuration error.\n"
    "\n"
    "options (--NAME=VALUE):\n";

static void usage_print(void)
{
    fputs(usage, stdout);
    for (size_t i = 0; i < N_PARAMS; i++)
        printf("  --%-10s %s%s%s%s\n", params[i].name, params[i].description,
               params[i].def ? " (default " : "", params[i].def ? params[i].def : "",
               params[i].def ? ")" : "");
}

static int metadata_print(void)
{
    json_t *root = json_pack("{s:s}", "description",
                             "runsecrets: serve a project's secrets as files from a host "
                             "broker at <run-dir>/<project>");
    int rc = root ? 0 : -ENOMEM;
    for (int cmd = CMD_UP; rc == 0 && cmd <= CMD_STOP; cmd++) {
        json_t *list = json_array();
        for (size_t i = 0; list && i < N_PARAMS; i++) {
            if (!(params[i].cmds & CMD_BIT(cmd)))
                continue;
            json_t *p = json_pack("{s:s, s:s, s:b, s:s}", "name", params[i].name,
                                  "description", params[i].description, "required", 0,
                                  "type", params[i].type);
            if (p && params[i].def)
                json_object_set_new(p, "default", json_string(params[i].def));
            if (!p || json_array_append_new(list, p) < 0)
                rc = -ENOMEM;
        }
        if (!list || json_object_set_new(root, cmd_names[cmd],
                                         json_pack("{s:o}", "parameters", list)) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0)
        rc = json_dumpf(root, stdout, JSON_INDENT(2)) == 0 ? 0 : -EIO;
    json_decref(root);
    if (rc < 0)
        return COMPOSE_EXIT_RUNTIME;
    putchar('\n');
    return fflush(stdout) == 0 ? 0 : COMPOSE_EXIT_RUNTIME;
}

/* Compose's own rule for project names (lowercase letters, digits, '-',
 * '_', starting with a letter or digit), at most a DNS label long: the name
 * becomes one directory under the run directory, so '/' and ".." get a
 * message of their own. */
UNITTEST_STATIC int compose_project_check(const char *name, char *err, size_t errlen)
{
    char shown[128];
    escape_str(shown, sizeof(shown), name, ESCAPE_SQUOTE);
    if (!name[0]) {
        snprintf(err, errlen, "the project name is empty");
        return -EINVAL;
    }
    if (strchr(name, '/')) {
        snprintf(err, errlen, "project name '%s': '/' is not allowed: the name is one "
                 "directory under the run directory", shown);
        return -EINVAL;
    }
    if (strstr(name, "..")) {
        snprintf(err, errlen, "project name '%s': '..' is not allowed: the name is one "
                 "directory under the run directory", shown);
        return -EINVAL;
    }
    if (strlen(name) > COMPOSE_PROJECT_MAX) {
        snprintf(err, errlen, "project name '%s': longer than %d characters", shown,
                 COMPOSE_PROJECT_MAX);
        return -EINVAL;
    }
    for (const char *p = name; *p; p++) {
        bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (alnum || (p > name && (*p == '-' || *p == '_')))
            continue;
        snprintf(err, errlen, "project name '%s': Compose project names are lowercase "
                 "letters, digits, '-' and '_', starting with a letter or a digit", shown);
        return -EINVAL;
    }
    return 0;
}

/* Compose's service names: [A-Za-z0-9._-]+ (we only show and record it). */
static int service_check(const char *name, char *err, size_t errlen)
{
    char shown[128];
    size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
    if (name[0] && !name[n] && n < 256)
        return 0;
    escape_str(shown, sizeof(shown), name, ESCAPE_SQUOTE);
    snprintf(err, errlen, "service name '%s': expected letters, digits, '.', '-' and '_'",
             shown);
    return -EINVAL;
}

/* Parse argv (argv[0] "compose"). -1 to go on, else an exit code (after
 * the error line, or the help). */
static int parse(struct compose *c, int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    char err[PATH_MAX + 128];
    char shown[256];
    bool dashdash = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = true;
            continue;
        }
        if (!dashdash && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            usage_print();
            return 0;
        }
        if (dashdash || a[0] != '-' || !a[1]) {
            if (npos < 3)
                pos[npos] = a;
            npos++;
            continue;
        }
        /* --NAME=VALUE (as Compose passes them) or --NAME VALUE. */
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct compose_param *p = param_find(name, len);
        bool project = a[1] == '-' && len == 12 && strncmp(name, "project-name", 12) == 0;
        if (a[1] != '-' || (!p && !project)) {
            escape_str(shown, sizeof(shown), a, ESCAPE_SQUOTE);
            say("error", "unknown option '%s' (runsecrets compose --help)", shown);
            return COMPOSE_EXIT_USAGE;
        }
        const char *value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!value) {
            escape_str(shown, sizeof(shown), a, ESCAPE_SQUOTE);
            say("error", "option '%s' needs a value", shown);
            return COMPOSE_EXIT_USAGE;
        }
        if (project) {
            c->project = value;
        } else if (p->set(c, value, err, sizeof(err)) < 0) {
            say("error", "%s", err);
            return COMPOSE_EXIT_USAGE;
        }
    }
    if (npos == 0) {
        say("error", "missing the command: up, down, stop or metadata");
        return COMPOSE_EXIT_USAGE;
    }
    int cmd = -1;
    for (int k = CMD_UP; k <= CMD_METADATA; k++)
        if (strcmp(pos[0], cmd_names[k]) == 0)
            cmd = k;
    if (cmd < 0) {
        escape_str(shown, sizeof(shown), pos[0], ESCAPE_SQUOTE);
        say("error", "unknown command '%s': expected up, down, stop or metadata", shown);
        return COMPOSE_EXIT_USAGE;
    }
    c->cmd = (enum compose_cmd)cmd;
    if (c->cmd == CMD_METADATA) {
        if (npos > 1) {
            say("error", "metadata takes no argument");
            return COMPOSE_EXIT_USAGE;
        }
        return -1;
    }
    if (npos != 2) {
        say("error", npos < 2 ? "%s: missing the service name" : "%s: more than one service name",
            cmd_names[cmd]);
        return COMPOSE_EXIT_USAGE;
    }
    c->service = pos[1];
    if (!c->project) {
        say("error", "%s: missing --project-name", cmd_names[cmd]);
        return COMPOSE_EXIT_USAGE;
    }
    if (compose_project_check(c->project, err, sizeof(err)) < 0 ||
        service_check(c->service, err, sizeof(err)) < 0) {
        say("error", "%s", err);
        return COMPOSE_EXIT_USAGE;
    }
    return -1;
}

/* ---- paths, state, processes, mounts ---- */

static int paths_init(struct compose *c)
{
    const char *r = c->run_dir;
    int n = snprintf(c->mount, sizeof(c->mount), "%s/%s", r, c->project);
    n |= snprintf(c->state_dir, sizeof(c->state_dir), "%s/%s", r, COMPOSE_STATE_DIR);
    n |= snprintf(c->state, sizeof(c->state), "%s/%s/%s.json", r, COMPOSE_STATE_DIR, c->project);
    n |= snprintf(c->pidfile, sizeof(c->pidfile), "%s/%s/%s.pid", r, COMPOSE_STATE_DIR,
                  c->project);
    n |= snprintf(c->logfile, sizeof(c->logfile), "%s/%s/%s.log", r, COMPOSE_STATE_DIR,
                  c->project);
    n |= snprintf(c->lockfile, sizeof(c->lockfile), "%s/%s/%s.lock", r, COMPOSE_STATE_DIR,
                  c->project);
    /* run_dir is at most PATH_MAX / 2 and the rest is short. */
    return n < 0 ? -ENAMETOOLONG : 0;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int mkdir_one(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

/* mkdir -p of an absolute path. */
static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir_one(tmp, 0755);
        *p = '/';
        if (rc < 0)
            return rc;
    }
    return mkdir_one(tmp, mode);
}

/* Take the project's lock, waiting up to timeout_ms. The file is unlinked
 * by down while locked, so a lock on an inode no longer at the path is
 * taken again on the new file. */
static int lock_take(struct compose *c, long long timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        int fd = open(c->lockfile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return -errno;
        while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK || now_ms() >= deadline) {
                int rc = errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                close(fd);
                return rc;
            }
            usleep(50 * 1000);
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(c->lockfile, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            c->lock_fd = fd;
            return 0;
        }
        close(fd);
    }
}

/* starttime (field 22) and state of /proc/PID/stat, and whether its comm
 * is "runsecrets". -ESRCH when there is no such process. */
static int proc_read(long pid, unsigned long long *start, char *state, bool *is_rs)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -ESRCH;
    buf[n] = '\0';
    char *open_paren = strchr(buf, '(');
    char *close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren || close_paren < open_paren)
        return -EIO;
    *is_rs = (size_t)(close_paren - open_paren - 1) == strlen("runsecrets") &&
             strncmp(open_paren + 1, "runsecrets", strlen("runsecrets")) == 0;
    /* After ") ": field 3 (state) is token 0, field 22 (starttime) token 19. */
    char *save = NULL, *tok = strtok_r(close_paren + 1, " ", &save);
    for (int i = 0; tok && i < 19; i++) {
        if (i == 0)
            *state = tok[0];
        tok = strtok_r(NULL, " ", &save);
    }
    if (!tok)
        return -EIO;
    *start = strtoull(tok, NULL, 10);
    return 0;
}

/* Whether st names a live runsecrets: same pid, same start time, not a
 * zombie (a reused pid, or a broker that exited, is not ours). */
static bool state_live(const struct compose_state *st)
{
    unsigned long long start = 0;
    char state = '?';
    bool is_rs = false;
    if (st->pid <= 1 || proc_read(st->pid, &start, &state, &is_rs) < 0)
        return false;
    return is_rs && start == st->start && state != 'Z' && state != 'X';
}

static int state_read(const struct compose *c, struct compose_state *st)
{
    json_error_t jerr;
    memset(st, 0, sizeof(*st));
    json_t *o = json_load_file(c->state, 0, &jerr);
    if (!o)
        return access(c->state, F_OK) == 0 ? -EIO : -ENOENT;
    json_int_t pid = 0;
    const char *start = "", *service = "", *config = "";
    int rc = json_unpack(o, "{s:I, s:s, s:s, s:s}", "pid", &pid, "start", &start, "service",
                         &service, "config", &config);
    if (rc == 0) {
        st->pid = (long)pid;
        st->start = strtoull(start, NULL, 10);
        snprintf(st->service, sizeof(st->service), "%s", service);
        snprintf(st->config, sizeof(st->config), "%s", config);
    }
    json_decref(o);
    return rc == 0 ? 0 : -EIO;
}

/* Written beside and renamed over: a reader sees the old file or the new. */
static int state_write(const struct compose *c, long pid, unsigned long long start)
{
    char tmp[PATH_MAX + 8], startbuf[32];
    snprintf(tmp, sizeof(tmp), "%s.tmp", c->state);
    snprintf(startbuf, sizeof(startbuf), "%llu", start);
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "pid", (json_int_t)pid, "start",
                          startbuf, "service", c->service, "config", c->config_abs, "mount",
                          c->mount);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = o && fd >= 0 && json_dumpfd(o, fd, JSON_COMPACT) == 0 ? 0 : -EIO;
    if (fd >= 0 && close(fd) < 0)
        rc = -EIO;
    json_decref(o);
    if (rc == 0 && rename(tmp, c->state) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static void unescape_mountinfo(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Whether a runsecrets FUSE mount sits at path (in our mount namespace). */
static bool mounted_at(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4 * PATH_MAX];
    bool found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        char *save = NULL, *mp = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 0; tok && i < 4; i++) {
            tok = strtok_r(NULL, " ", &save);
            if (i == 3)
                mp = tok;
        }
        /* The optional fields end with "-", then the type. */
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " ", &save);
        char *type = tok ? strtok_r(NULL, " ", &save) : NULL;
        if (!mp || !type || strcmp(type, COMPOSE_FSTYPE) != 0)
            continue;
        unescape_mountinfo(mp);
        found = strcmp(mp, path) == 0;
    }
    fclose(f);
    return found;
}

/* A mount at path whose broker is gone (its connection aborted): detach
 * it. 1 when one was detached, 0 when none is there, -EBUSY when a live
 * one is there (someone else's broker). */
static int stale_mount_detach(const char *path)
{
    if (!mounted_at(path))
        return 0;
    /* statfs always asks the filesystem (stat may answer from the kernel's
     * attribute cache): a dead broker's connection says ENOTCONN. */
    struct statfs sf;
    if (statfs(path, &sf) == 0)
        return -EBUSY;
    if (errno != ENOTCONN && errno != ECONNABORTED)
        return -errno;
    if (umount2(path, MNT_DETACH) < 0)
        return -errno;
    return 1;
}

static int pidfd_open_(long pid)
{
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* Wait up to ms for the process behind pidfd to end. */
static bool pidfd_wait(int pidfd, long long ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    long long deadline = now_ms() + ms;
    for (;;) {
        long long left = deadline - now_ms();
        int n = poll(&p, 1, left > 0 ? (int)left : 0);
        if (n > 0)
            return true;
        if (n == 0 || (n < 0 && errno != EINTR))
            return false;
    }
}

/* Stop the broker st names: SIGTERM (it unmounts), then SIGKILL and a
 * detach of what it left. Through a pidfd taken before the identity check,
 * so a reused pid is never signalled. reap: it is our child. */
static int broker_terminate(const struct compose *c, const struct compose_state *st, bool reap,
                            bool *killed)
{
    *killed = false;
    int pidfd = pidfd_open_(st->pid);
    if (pidfd < 0)
        return errno == ESRCH ? 0 : -errno;
    if (!state_live(st) && !reap) {
        close(pidfd);
        return 0;
    }
    int rc = 0;
    if (pidfd_signal(pidfd, SIGTERM) < 0 && errno != ESRCH) {
        rc = -errno;
    } else if (!pidfd_wait(pidfd, COMPOSE_STOP_MS)) {
        *killed = true;
        pidfd_signal(pidfd, SIGKILL);
        if (!pidfd_wait(pidfd, COMPOSE_KILL_MS))
            rc = -ETIMEDOUT;
    }
    close(pidfd);
    if (reap && rc == 0)
        waitpid((pid_t)st->pid, NULL, 0);
    if (rc == 0 && *killed)
        stale_mount_detach(c->mount);
    return rc;
}

/* The broker's last error or warning from its log that carries an error
 * ("msg (secret S): error"; a summary such as "cold start done" only when
 * none does), else the last line that is not JSON (printed before logging
 * started). Logs hold no secret values. */
static void log_last_problem(const char *logfile, char *out, size_t cap)
{
    char *buf = malloc(COMPOSE_LOG_TAIL + 1);
    out[0] = '\0';
    int fd = open(logfile, O_RDONLY | O_CLOEXEC);
    if (!buf || fd < 0) {
        free(buf);
        if (fd >= 0)
            close(fd);
        return;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > COMPOSE_LOG_TAIL ? size - COMPOSE_LOG_TAIL : 0;
    ssize_t n = pread(fd, buf, COMPOSE_LOG_TAIL, from);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    char *save = NULL;
    bool with_error = false;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        if (!o) {
            /* The CLI's own lines ("runsecrets mount: ..."), not the
             * "Try 'runsecrets mount --help'." after them. */
            if (strncmp(line, "Try '", 5) != 0)
                escape_str(out, cap, line, 0);
            continue;
        }
        const char *level = json_string_value(json_object_get(o, "level"));
        const char *msg = json_string_value(json_object_get(o, "msg"));
        const char *e = json_string_value(json_object_get(o, "error"));
        const char *secret = json_string_value(json_object_get(o, "secret"));
        if (level && msg && (strcmp(level, "error") == 0 || strcmp(level, "warn") == 0) &&
            (e || !with_error)) {
            with_error = e != NULL;
            char text[1024];
            snprintf(text, sizeof(text), "%s%s%s%s%s", msg, secret ? " (secret " : "",
                     secret ? secret : "", secret ? ")" : "", "");
            if (e)
                snprintf(text + strlen(text), sizeof(text) - strlen(text), ": %s", e);
            escape_str(out, cap, text, ESCAPE_KEEP_BACKSLASH);
        }
        json_decref(o);
    }
    free(buf);
}

/* ---- up ---- */

/* An abstract datagram socket for the broker's sd_notify messages, with
 * the sender's credentials on each (only our child's count). */
static int notify_open(const char *project, char *env, size_t cap)
{
    unsigned char rnd[8];
    char name[96];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return -EIO;
    int n = snprintf(name, sizeof(name), "runsecrets-compose/%s/", project);
    for (size_t i = 0; i < sizeof(rnd); i++)
        n += snprintf(name + n, sizeof(name) - (size_t)n, "%02x", rnd[i]);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path + 1, name, (size_t)n);    /* sun_path[0] = 0: abstract */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, len) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    snprintf(env, cap, "NOTIFY_SOCKET=@%s", name);
    return fd;
}

/* The daemon: its own session, stdio /dev/null and the log, none of our
 * descriptors (Compose reads our stdout until EOF), default signals.
 * Only async-signal-safe calls after fork. */
static long daemon_spawn(char *const argv[], char *const envp[], int logfd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid < 0 ? -errno : pid;
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_RDWR);
    if (setsid() < 0 || null < 0 || chdir("/") < 0 || dup2(null, 0) < 0 ||
        dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
        _exit(127);
    close_range(3, ~0u, 0);
    execve(argv[0], argv, envp);
    _exit(127);
}

/* Our environment without NOTIFY_SOCKET, plus notify (new array; strings
 * borrowed). */
static char **child_env(char *notify)
{
    extern char **environ;
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 2, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; env && i < n; i++)
        if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
            env[k++] = environ[i];
    if (env)
        env[k] = notify;
    return env;
}

enum ready { READY_OK, READY_EXITED, READY_TIMEOUT, READY_ERROR };

/* Read the datagrams on nfd until READY=1 from pid, pid's exit or the
 * deadline. STATUS= lines become info lines. */
static enum ready ready_wait(int nfd, long pid, long long wait_ms, int *status, char *last,
                             size_t lastcap)
{
    int pidfd = pidfd_open_(pid);
    if (pidfd < 0)
        return READY_ERROR;
    long long deadline = now_ms() + wait_ms;
    enum ready r = READY_TIMEOUT;
    char *buf = malloc(COMPOSE_NOTIFY_MAX + 1);
    while (buf) {
        struct pollfd p[2] = {{.fd = nfd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        int n = poll(p, 2, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = READY_ERROR;
            break;
        }
        if (p[0].revents & POLLIN) {
            union {
                struct cmsghdr h;
                char space[CMSG_SPACE(sizeof(struct ucred))];
            } ctl;
            struct iovec iov = {.iov_base = buf, .iov_len = COMPOSE_NOTIFY_MAX};
            struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                                .msg_controllen = sizeof(ctl)};
            ssize_t got = recvmsg(nfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
            struct cmsghdr *cm = got >= 0 ? CMSG_FIRSTHDR(&mh) : NULL;
            struct ucred cred = {0};
            if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS)
                memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
            if (got > 0 && cred.pid == pid) {
                buf[got] = '\0';
                bool ready = false;
                char *save = NULL;
                for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                    if (strcmp(l, "READY=1") == 0)
                        ready = true;
                    else if (strncmp(l, "STATUS=", 7) == 0 && strcmp(l + 7, last) != 0) {
                        snprintf(last, lastcap, "%s", l + 7);
                        char shown[512];
                        escape_str(shown, sizeof(shown), l + 7, 0);
                        say("info", "%s", shown);
                    }
                }
                if (ready) {
                    r = READY_OK;
                    break;
                }
            }
            continue;   /* drain the socket before looking at the exit */
        }
        if (p[1].revents & POLLIN) {
            waitpid((pid_t)pid, status, 0);
            r = READY_EXITED;
            break;
        }
    }
    free(buf);
    close(pidfd);
    return buf ? r : READY_ERROR;
}

static void say_env(const struct compose *c, const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_secrets; i++)
        if (cfg->secrets[i].env)
            say(c->raw_env ? "rawsetenv" : "setenv", "%s=%s/%s", cfg->secrets[i].env, c->mount,
                cfg->secrets[i].name);
}

static void describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, cap, "status %d", status);
}

/* Start the broker and wait until it is ready. The caller holds the lock. */
static int up_start(struct compose *c, const struct config *cfg, long long wait_ms)
{
    char notify[160], exe[PATH_MAX], status_text[512] = "", problem[1024];
    int ex = COMPOSE_EXIT_RUNTIME;
    int logfd = -1, nfd = -1;
    char **env = NULL;
    long pid = -1;

    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        say("error", "cannot find the runsecrets binary (/proc/self/exe): %s", strerror(errno));
        return ex;
    }
    exe[n] = '\0';
    int rc = mkdir_one(c->mount, 0755);
    if (rc < 0) {
        say("error", "cannot create the mountpoint %s: %s", c->mount, strerror(-rc));
        return ex;
    }
    nfd = notify_open(c->project, notify, sizeof(notify));
    logfd = open(c->logfile, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
                 0600);
    env = child_env(notify);
    if (nfd < 0 || logfd < 0 || !env) {
        say("error", "cannot prepare the broker (%s): %s",
            nfd < 0 ? "notify socket" : logfd < 0 ? c->logfile : "environment",
            strerror(nfd < 0 ? -nfd : logfd < 0 ? errno : ENOMEM));
        goto out;
    }
    char a_mount[] = "mount", a_config[] = "--config", a_fmt[] = "--log-format",
         a_json[] = "json", a_pid[] = "--pid-file";
    char *argv[] = {exe, a_mount, a_config, c->config_abs, a_fmt, a_json, a_pid, c->pidfile,
                    c->mount, NULL};
    pid = daemon_spawn(argv, env, logfd);
    if (pid < 0) {
        say("error", "cannot start the broker: %s", strerror((int)-pid));
        goto out;
    }
    struct compose_state st = {.pid = pid};
    char state = '?';
    bool is_rs = false;
    /* The start time tells this broker from a later process with its pid.
     * Read before exec is fine: starttime is the fork's. */
    if (proc_read(pid, &st.start, &state, &is_rs) < 0 || state_write(c, pid, st.start) < 0)
        say("debug", "could not record the broker in %s", c->state);
    say("info", "starting the broker (pid %ld), mount %s", pid, c->mount);

    size_t required = 0;
    for (size_t i = 0; i < cfg->n_secrets; i++)
        required += cfg->secrets[i].required;
    char wait_text[32];
    duration_format(wait_ms, wait_text, sizeof(wait_text));
    say("info", "waiting up to %s for %zu required secret%s", wait_text, required,
        required == 1 ? "" : "s");

    int status = 0;
    enum ready r = ready_wait(nfd, pid, wait_ms, &status, status_text, sizeof(status_text));
    if (r == READY_OK) {
        say("info", "serving %zu secret%s at %s (broker pid %ld)", cfg->n_secrets,
            cfg->n_secrets == 1 ? "" : "s", c->mount, pid);
        say_env(c, cfg);
        ex = 0;
        goto out;
    }
    /* Cleaned up before the error line: Compose kills the provider as soon
     * as it reads one. */
    char how[64] = "";
    bool killed = false;
    if (r == READY_EXITED)
        describe_status(status, how, sizeof(how));
    else
        broker_terminate(c, &st, true, &killed);
    unlink(c->state);
    stale_mount_detach(c->mount);
    log_last_problem(c->logfile, problem, sizeof(problem));
    if (r == READY_EXITED)
        say("error", "the broker exited (%s) before it was ready%s%s; log: %s", how,
            problem[0] ? ": " : "", problem, c->logfile);
    else
        say("error", "the broker was not ready within %s (%s%s%s); stopped it; log: %s",
            r == READY_TIMEOUT ? wait_text : "an error", status_text[0] ? status_text : "no status",
            problem[0] ? "; last problem: " : "", problem, c->logfile);
out:
    free(env);
    if (nfd >= 0)
        close(nfd);
    if (logfd >= 0)
        close(logfd);
    return ex;
}

static int cmd_up(struct compose *c)
{
    char err[2048] = "";
    struct config *cfg = NULL;
    struct compose_state st;
    int ex = COMPOSE_EXIT_RUNTIME;

    /* The configuration first: its errors are the user's to fix, and its
     * secrets' env keys are what up announces. */
    int rc = cfg_load(c->config, &cfg, err, sizeof(err));
    if (rc < 0) {
        char shown[2048];
        escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
        say("error", "%s", shown);
        return rc == -EINVAL || rc == -ENOENT || rc == -EACCES || rc == -EISDIR
                   ? COMPOSE_EXIT_USAGE : COMPOSE_EXIT_RUNTIME;
    }
    if (!realpath(c->config, c->config_abs)) {
        say("error", "%s: %s", c->config, strerror(errno));
        goto out;
    }
    long long wait_ms = c->wait_ms > 0 ? c->wait_ms : cfg->exec.wait;
    rc = mkdir_p(c->run_dir, 0755);
    if (rc == 0)
        rc = mkdir_one(c->state_dir, 0700);
    if (rc < 0) {
        say("error", "cannot create %s: %s", c->state_dir, strerror(-rc));
        goto out;
    }
    rc = lock_take(c, wait_ms + COMPOSE_STOP_MS + COMPOSE_LOCK_EXTRA_MS);
    if (rc < 0) {
        say("error", "cannot lock %s: %s", c->lockfile,
            rc == -ETIMEDOUT ? "another runsecrets compose holds it" : strerror(-rc));
        goto out;
    }

    rc = state_read(c, &st);
    if (rc == 0 && state_live(&st)) {
        if (strcmp(st.config, c->config_abs) != 0 || strcmp(st.service, c->service) != 0) {
            say("error", "project '%s' already has a broker (pid %ld) for service '%s' with "
                "config %s; run 'docker compose down' first, or keep one runsecrets service "
                "per project", c->project, st.pid, st.service, st.config);
            goto out;
        }
        if (mounted_at(c->mount)) {
            /* Idempotent: the same answer as the up that started it. */
            say("info", "the broker is already running (pid %ld), mount %s", st.pid, c->mount);
            say_env(c, cfg);
            ex = 0;
            goto out;
        }
        /* Alive without its mount: an up interrupted before it was ready,
         * or its mount was taken away. Start afresh. */
        say("info", "the broker (pid %ld) has no mount at %s: restarting it", st.pid, c->mount);
        bool killed = false;
        if (broker_terminate(c, &st, false, &killed) < 0) {
            say("error", "cannot stop the broker (pid %ld)", st.pid);
            goto out;
        }
    } else if (rc == 0) {
        say("info", "the previous broker (pid %ld) is gone", st.pid);
    }
    rc = stale_mount_detach(c->mount);
    if (rc == 1) {
        say("info", "detached the stale mount of a killed broker at %s", c->mount);
    } else if (rc == -EBUSY) {
        say("error", "%s is already a runsecrets mount that runsecrets compose did not start; "
            "stop that broker first", c->mount);
        goto out;
    }
    ex = up_start(c, cfg, wait_ms);
out:
    cfg_free(cfg);
    return ex;
}

/* ---- down and stop ---- */

static int cmd_down(struct compose *c)
{
    struct compose_state st;
    struct stat sb;
    bool down = c->cmd == CMD_DOWN;

    if (stat(c->state_dir, &sb) < 0) {
        say("info", "no broker for project '%s' (nothing in %s)", c->project, c->run_dir);
        return 0;
    }
    int rc = lock_take(c, COMPOSE_STOP_MS + COMPOSE_LOCK_EXTRA_MS);
    if (rc < 0) {
        say("error", "cannot lock %s: %s", c->lockfile,
            rc == -ETIMEDOUT ? "another runsecrets compose holds it" : strerror(-rc));
        return COMPOSE_EXIT_RUNTIME;
    }
    rc = state_read(c, &st);
    if (rc == 0 && state_live(&st)) {
        say("info", "stopping the broker (pid %ld)", st.pid);
        bool killed = false;
        if (broker_terminate(c, &st, false, &killed) < 0) {
            say("error", "the broker (pid %ld) did not exit, even after SIGKILL", st.pid);
            return COMPOSE_EXIT_RUNTIME;
        }
        if (killed)
            say("info", "the broker did not stop within %llds: killed it, %s detached",
                COMPOSE_STOP_MS / 1000, c->mount);
        else
            say("info", "broker stopped, %s unmounted", c->mount);
    } else if (rc == 0) {
        say("info", "the broker of project '%s' (pid %ld) had already exited", c->project,
            st.pid);
    } else {
        say("info", "no broker running for project '%s'", c->project);
    }
    rc = stale_mount_detach(c->mount);
    if (rc == 1)
        say("info", "detached the stale mount of a killed broker at %s", c->mount);
    else if (rc == -EBUSY)
        say("info", "left %s alone: a runsecrets mount that runsecrets compose did not start",
            c->mount);
    unlink(c->state);
    if (down) {
        unlink(c->logfile);
        rmdir(c->mount);   /* empty once unmounted; left when not */
        unlink(c->lockfile);
    }
    return 0;
}

int compose_main(int argc, char **argv)
{
    struct compose c = {.config = RS_DEFAULT_CONFIG, .run_dir = COMPOSE_RUN_DIR, .wait_ms = -1,
                        .lock_fd = -1};
    int ex = parse(&c, argc, argv);
    if (ex >= 0)
        return ex;
    if (c.cmd == CMD_METADATA)
        return metadata_print();
    if (paths_init(&c) < 0) {
        say("error", "--run-dir: path too long");
        return COMPOSE_EXIT_USAGE;
    }
    ex = c.cmd == CMD_UP ? cmd_up(&c) : cmd_down(&c);
    if (c.lock_fd >= 0)
        close(c.lock_fd);
    return ex;
}
