/* cli.c - the command line: mount, check, get, version. */
#include "broker/broker.h"
#include "broker/hardening.h"
#include "backends/backend.h"
#include "engine/cache.h"
#include "lib/escape.h"
#include "fuse/fs.h"
#include "backends/http/http.h"
#include "lib/log.h"
#include "fuse/mountpoint.h"
#include "lib/ref.h"
#include "rs_config.h"
#include "engine/scheduler.h"
#include "lib/secmem.h"
#include "broker/signals.h"
#include "engine/store.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fuse_lowlevel.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

struct cli_opts {
    const char *config;
    enum log_format log_format;
    enum log_level log_level;
    bool fetch;
    bool debug_fuse;
    const char *arg;          /* MOUNTPOINT or REF */
};

static const char usage_main[] =
    "usage: runsecrets <command> [options]\n"
    "\n"
    "Fetches secrets from backends, keeps them in an encrypted in-memory cache and\n"
    "serves them as read-only files through FUSE (default /run/secrets).\n"
    "\n"
    "commands:\n"
    "  mount [MOUNTPOINT]   mount and serve in the foreground until SIGTERM/SIGINT/SIGQUIT\n"
    "  check [--fetch]      validate the configuration; --fetch also fetches every secret\n"
    "  get REF|NAME         print one secret on stdout\n"
    "  version              print version information\n"
    "\n"
    "Run 'runsecrets <command> --help' for the options of a command.\n"
    "Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.\n";

static const char usage_common[] =
    "  -c, --config FILE      configuration file (default " RS_DEFAULT_CONFIG ")\n"
    "      --log-format FMT   json (default) or text\n"
    "      --log-level LEVEL  error, warn, info (default) or debug\n"
    "  -h, --help             this help\n";

static const char usage_mount[] =
    "usage: runsecrets mount [options] [MOUNTPOINT]\n"
    "\n"
    "Fetch every secret, mount the filesystem at MOUNTPOINT (default: \"mount\" in\n"
    "the configuration, else /run/secrets) and keep the secrets fresh. Runs in the\n"
    "foreground; SIGTERM, SIGINT, SIGQUIT or SIGHUP unmounts and exits 0 (HUP is\n"
    "reserved for reloading later); USR1, USR2, ALRM and realtime signals are ignored.\n"
    "\n"
    "options:\n";

static const char usage_check[] =
    "usage: runsecrets check [options] [--fetch]\n"
    "\n"
    "Validate the configuration. With --fetch, fetch every secret once and print a\n"
    "table of name, backend and status (never values); exit 1 if any failed.\n"
    "\n"
    "options:\n"
    "      --fetch            fetch every secret once\n";

static const char usage_get[] =
    "usage: runsecrets get [options] REF|NAME\n"
    "\n"
    "Print one secret's exact bytes on stdout. REF is <backend>:<path>[?version=V][#field]\n"
    "with a backend from the configuration; NAME is a configured secret's name.\n"
    "\n"
    "options:\n";

static int usage_error(const char *cmd, const char *fmt, const char *what)
    __attribute__((format(printf, 2, 0)));
static int usage_error(const char *cmd, const char *fmt, const char *what)
{
    char shown[256];
    /* what is usually an argument as typed: escaped, so it stays one line. */
    escape_str(shown, sizeof(shown), what, ESCAPE_SQUOTE);
    fprintf(stderr, "runsecrets%s%s: ", cmd ? " " : "", cmd ? cmd : "");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    fprintf(stderr, fmt, shown);
#pragma GCC diagnostic pop
    fprintf(stderr, "\nTry 'runsecrets%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
    return EXIT_USAGE;
}

enum { OPT_LOG_FORMAT = 256, OPT_LOG_LEVEL, OPT_FETCH, OPT_DEBUG_FUSE };

/* Parse options of a subcommand. Returns -1 to go on, else an exit code. */
static int parse_opts(const char *cmd, const char *usage, int argc, char **argv,
                      struct cli_opts *o, bool takes_arg, bool arg_required)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"fetch", no_argument, NULL, OPT_FETCH},
        {"debug-fuse", no_argument, NULL, OPT_DEBUG_FUSE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case OPT_LOG_FORMAT:
            if (log_parse_format(optarg, &o->log_format) < 0)
                return usage_error(cmd, "--log-format: expected json or text, got '%s'", optarg);
            break;
        case OPT_LOG_LEVEL:
            if (log_parse_level(optarg, &o->log_level) < 0)
                return usage_error(cmd, "--log-level: expected error, warn, info or debug, got '%s'",
                                   optarg);
            break;
        case OPT_FETCH:
            if (strcmp(cmd, "check") != 0)
                return usage_error(cmd, "%s", "--fetch is an option of 'check'");
            o->fetch = true;
            break;
        case OPT_DEBUG_FUSE:
            if (strcmp(cmd, "mount") != 0)
                return usage_error(cmd, "%s", "--debug-fuse is an option of 'mount'");
            o->debug_fuse = true;
            break;
        case 'h':
            fputs(usage, stdout);
            fputs(usage_common, stdout);
            return 0;
        default:
            return usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        if (!takes_arg)
            return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
        o->arg = argv[optind++];
        if (optind < argc)
            return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    } else if (arg_required) {
        return usage_error(cmd, "%s", "missing argument");
    }
    return -1;
}

/* Logging, allocator hooks and hardening: before any other work. */
static int setup(const struct cli_opts *o)
{
    char err[256];
    log_setup(STDERR_FILENO, o->log_format, o->log_level);
    log_hook_fuse();
    if (hardening_init(err, sizeof(err)) < 0) {
        log_error("%s", err);
        return EXIT_RUNTIME;
    }
    return -1;
}

static int open_broker(struct broker *b, const struct cli_opts *o)
{
    char err[1024] = "";
    char shown[1024];
    int rc = broker_open(b, o->config, err, sizeof(err));
    if (rc == 0)
        return -1;
    /* Configuration problems are for people at a terminal: one plain line,
     * whatever a backend's message quoted from the file. */
    escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
    fprintf(stderr, "runsecrets: %s\n", shown);
    return rc == -EINVAL || rc == -ENOENT || rc == -EACCES || rc == -EISDIR ? EXIT_USAGE
                                                                           : EXIT_RUNTIME;
}

static void on_changed(void *arg, size_t idx, bool removed)
{
    struct broker *b = arg;
    fs_notify(b->fs, idx, removed);
}

static void on_settled(void *arg, size_t idx)
{
    struct broker *b = arg;
    fs_settled(b->fs, idx);
}

static int cmd_mount(struct broker *b, struct cli_opts *o)
{
    char err[1024] = "";
    char mnt[PATH_MAX];
    int ex = open_broker(b, o);
    if (ex >= 0)
        return ex;
    const char *given = o->arg ? o->arg : b->cfg->mount;
    struct log_fields lf = {.path = given};

    if (given[0] != '/') {
        escape_str(err, sizeof(err), given, ESCAPE_SQUOTE);
        fprintf(stderr, "runsecrets mount: MOUNTPOINT must be an absolute path, got '%s'\n", err);
        return EXIT_USAGE;
    }
    int rc = mountpoint_prepare(given, mnt, sizeof(mnt), err, sizeof(err));
    if (rc < 0) {
        lf.error = err;
        log_f(LOG_ERROR, &lf, "cannot prepare the mountpoint");
        /* A file where the mountpoint should be is the configuration's fault. */
        return rc == -ENOTDIR ? EXIT_USAGE : EXIT_RUNTIME;
    }
    /* From here on, the resolved path: the one mountinfo will show. */
    lf.path = mnt;
    /* Mount first, then fetch everything in parallel: a file appears as
     * soon as its value is cached, and a lookup of one still being fetched
     * waits for that fetch. */
    struct fs_options fo = {
        .mountpoint = mnt,
        .allow_other = geteuid() == 0,
        .debug = o->debug_fuse,
        .attr_timeout = 1.0,
    };
    /* Hold asynchronous signals from the mount until their actions are in
     * place: a TERM in between would kill us and leave the mount behind. */
    sigset_t unblocked;
    signals_block_async(&unblocked);
    rc = fs_mount(b->store, b->pool, &fo, &b->fs, err, sizeof(err));
    if (rc == 0)
        rc = signals_install(b->fs, mnt, err, sizeof(err));
    if (rc < 0) {
        fs_free(b->fs);   /* unmounts */
        b->fs = NULL;
        signals_restore();
        pthread_sigmask(SIG_SETMASK, &unblocked, NULL);
        lf.error = err;
        log_f(LOG_ERROR, &lf, "mount failed");
        return EXIT_RUNTIME;
    }
    pthread_sigmask(SIG_SETMASK, &unblocked, NULL);
    scheduler_set_hooks(b->sched, &(struct sched_hooks){.changed = on_changed,
                                                        .settled = on_settled, .arg = b});
    log_f(LOG_INFO, &lf, "mounted");
    bool started = scheduler_start(b->sched) == 0;
    if (!started)
        log_f(LOG_ERROR, &lf, "cannot start the refresh threads");
    rc = started ? fs_run(b->fs) : 0;
    /* The stop is underway: a second signal changes nothing. */
    signals_block_async(NULL);
    if (signals_stopped_by())
        log_f(LOG_INFO, &lf, "stopping on SIG%s", signals_stopped_by());
    /* Stop fetching without waiting out slow servers, unmount, then let
     * the backends give back leases and tokens. */
    http_engine_cancel(b->http, true);
    scheduler_stop(b->sched);
    http_engine_cancel(b->http, false);
    fs_free(b->fs);   /* unmounts */
    b->fs = NULL;
    signals_restore();
    for (size_t i = 0; i < b->cfg->n_backends; i++)
        backend_shutdown(b->backends[i]);
    if (!started)
        return EXIT_RUNTIME;
    if (rc < 0) {
        lf.error = strerror(-rc);
        log_f(LOG_ERROR, &lf, "filesystem loop failed; unmounted");
        return EXIT_RUNTIME;
    }
    log_f(LOG_INFO, &lf, "unmounted");
    return 0;
}

static int cmd_check(struct broker *b, struct cli_opts *o)
{
    int ex = open_broker(b, o);
    if (ex >= 0)
        return ex;
    char path[256], mount[256];
    escape_str(path, sizeof(path), b->cfg->path, 0);
    escape_str(mount, sizeof(mount), b->cfg->mount, 0);
    printf("config ok: %s: %zu backend%s, %zu secret%s, mount %s\n", path,
           b->cfg->n_backends, b->cfg->n_backends == 1 ? "" : "s", b->cfg->n_secrets,
           b->cfg->n_secrets == 1 ? "" : "s", mount);
    if (!o->fetch)
        return 0;

    size_t failed = scheduler_fetch_all(b->sched);
    /* A check must not leave dynamic credentials behind. */
    for (size_t i = 0; i < b->cfg->n_backends; i++)
        backend_shutdown(b->backends[i]);
    int wn = 4, wb = 7;
    size_t n = store_count(b->store);
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(store_cfg(b->store, i)->name);
        wn = l > wn ? l : wn;
        l = (int)strlen(store_backend_name(b->store, i));
        wb = l > wb ? l : wb;
    }
    printf("%-*s  %-*s  %s\n", wn, "NAME", wb, "BACKEND", "STATUS");
    for (size_t i = 0; i < n; i++) {
        const char *name = store_cfg(b->store, i)->name, *bn = store_backend_name(b->store, i);
        const char *e = scheduler_last_error(b->sched, i);
        if (e[0])
            printf("%-*s  %-*s  error: %s\n", wn, name, wb, bn, e);
        else
            printf("%-*s  %-*s  ok\n", wn, name, wb, bn);
    }
    printf("%zu ok, %zu failed\n", n - failed, failed);
    return failed ? EXIT_RUNTIME : 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cmd_get(struct broker *b, struct cli_opts *o)
{
    char err[512] = "";
    struct secret_ref parsed = {0};
    const struct secret_ref *ref;
    struct backend *be;
    struct fetch_result r;
    int ex = open_broker(b, o);
    int rc;

    if (ex >= 0)
        return ex;
    /* The argument as typed goes back into every message: escaped. */
    char arg[256];
    escape_str(arg, sizeof(arg), o->arg, ESCAPE_SQUOTE);
    if (strchr(o->arg, ':')) {
        if (ref_parse(o->arg, &parsed, err, sizeof(err)) < 0) {
            fprintf(stderr, "runsecrets get: %s: %s\n", arg, err);
            return EXIT_USAGE;
        }
        long bi = cfg_backend_index(b->cfg, parsed.backend);
        if (bi < 0) {
            fprintf(stderr, "runsecrets get: %s: unknown backend '%s'\n", arg, parsed.backend);
            ref_cleanup(&parsed);
            return EXIT_USAGE;
        }
        if (backend_conf_check_ref(b->cfg->backends[bi].conf, &parsed, err, sizeof(err)) < 0) {
            fprintf(stderr, "runsecrets get: %s: %s\n", arg, err);
            ref_cleanup(&parsed);
            return EXIT_USAGE;
        }
        ref = &parsed;
        be = b->backends[bi];
    } else {
        long si = cfg_secret_index(b->cfg, o->arg);
        if (si < 0) {
            fprintf(stderr, "runsecrets get: '%s' is neither a reference (backend:path) nor a "
                    "configured secret\n", arg);
            return EXIT_USAGE;
        }
        ref = &b->cfg->secrets[si].ref;
        be = b->backends[b->cfg->secrets[si].backend];
    }
    fetch_result_init(&r, backend_max_value(be));
    rc = backend_resolve(be, ref, &r, err, sizeof(err));
    if (rc == 0)
        rc = write_all(STDOUT_FILENO, r.value.data, r.value.len);  /* no stdio buffer copy */
    else if (rc == -ENOENT && err[0] == '\0')
        snprintf(err, sizeof(err), "not found");
    fetch_result_cleanup(&r);
    ref_cleanup(&parsed);
    if (rc < 0) {
        fprintf(stderr, "runsecrets get: %s: %s\n", arg, err[0] ? err : strerror(-rc));
        return EXIT_RUNTIME;
    }
    return 0;
}

static int cmd_version(void)
{
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    printf("runsecrets %s\n", RS_VERSION);
    printf("libsodium %s, jansson %s, libfuse %s, libcurl %s\n", sodium_version_string(),
           jansson_version_str(), fuse_pkgversion(), cv->version);
    return 0;
}

int cli_main(struct broker *b, int argc, char **argv)
{
    struct cli_opts o = {.config = RS_DEFAULT_CONFIG, .log_format = LOG_FORMAT_JSON,
                         .log_level = LOG_INFO};
    int ex;

    memset(b, 0, sizeof(*b));
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    argc--;
    argv++;
    /* One-shot commands print their result on stdout; their log is for
     * problems only unless --log-level says otherwise. */
    if (strcmp(cmd, "check") == 0 || strcmp(cmd, "get") == 0)
        o.log_level = LOG_WARN;
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        ex = parse_opts("version", "usage: runsecrets version\n\noptions:\n", argc, argv, &o,
                        false, false);
        return ex >= 0 ? ex : cmd_version();
    }
    if (strcmp(cmd, "mount") == 0)
        ex = parse_opts(cmd, usage_mount, argc, argv, &o, true, false);
    else if (strcmp(cmd, "check") == 0)
        ex = parse_opts(cmd, usage_check, argc, argv, &o, false, false);
    else if (strcmp(cmd, "get") == 0)
        ex = parse_opts(cmd, usage_get, argc, argv, &o, true, true);
    else
        return usage_error(NULL, "unknown command '%s'", cmd);
    if (ex >= 0)
        return ex;
    ex = setup(&o);
    if (ex >= 0)
        return ex;

    if (strcmp(cmd, "mount") == 0)
        ex = cmd_mount(b, &o);
    else if (strcmp(cmd, "check") == 0)
        ex = cmd_check(b, &o);
    else
        ex = cmd_get(b, &o);
    broker_close(b);
    return ex;
}
