/* cli.c - the command line: a table of commands, their options, and the
 * calls into the broker's lifecycle (broker.h). */
#include "broker/cli.h"
#include "broker/admin.h"
#include "broker/broker.h"
#include "broker/compose.h"
#include "broker/exec.h"
#include "broker/explain.h"
#include "broker/hardening.h"
#include "broker/pidfile.h"
#include "broker/service.h"
#include "broker/signals.h"
#include "broker/stats.h"
#include "broker/status.h"
#include "broker/supervise.h"
#include "backends/backend.h"
#include "backends/http/libs.h"
#include "lib/clock.h"
#include "lib/duration.h"
#include "lib/escape.h"
#include "lib/log.h"
#include "lib/ref.h"
#include "rs_config.h"
#include "engine/scheduler.h"
#include "engine/store.h"
#include "policy/rules.h"
#include "fuse/fs.h"
#include "fuse/mountns.h"

#include <errno.h>
#include <getopt.h>
#include <link.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <fuse_lowlevel.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

struct cli_opts {
    const char *config;
    bool config_given;        /* -c was on the command line */
    enum log_format log_format;
    enum log_level log_level;
    bool fetch;
    bool debug_fuse;
    const char *arg;          /* MOUNTPOINT or REF */
    /* exec: */
    const char *user;         /* --user */
    const char *mount;        /* --mount */
    const char *mount_from;   /* --mount-from */
    long long wait_ms;        /* --wait; 0: the configuration's */
    bool signal_group;        /* --signal-group */
    char **cmd;               /* CMD [ARGS...], NULL-terminated (argv's) */
    int fd_floor;             /* supervise_fd_floor() before anything opened a file */
    struct rlimit core_limit; /* RLIMIT_CORE as given, before hardening_init zeroes ours */
    bool have_core_limit;
    /* mount as a service, and reload: */
    const char *pid_file;     /* --pid-file */
    bool no_pid_file;         /* --no-pid-file */
    const char *mount_ns;     /* mount --mount-namespace */
    long long timeout_ms;     /* reload --timeout */
    bool no_wait;             /* reload --no-wait */
    /* The admin endpoint (admin.h): */
    const char *admin;        /* --admin ADDR (checked by admin_addr_parse) */
    const char *token_file;   /* status, health: --token-file */
    bool json;                /* status --json */
    bool live;                /* health --live */
    bool libraries;           /* version --libraries */
    struct explain_opts explain;   /* check --explain SECRET and its caller */
    /* $NOTIFY_SOCKET as found at start (mount), then removed from the
     * environment: children (credential_process) must not notify. */
    char notify_socket[128];
    bool have_notify_socket;
    /* CLI_ARGS: the arguments after the command's name, as given. */
    int argc;
    char **argv;
};

#define RELOAD_DEFAULT_TIMEOUT_MS (30 * 1000LL)
/* How often `reload` looks at the outcome file while it waits. */
#define RELOAD_POLL_MS 20

/* What the dispatcher provides before a command's handler runs. Each level
 * includes the ones before it. */
enum cli_needs {
    NEEDS_NOTHING,   /* no logging, no hardening (help, version) */
    NEEDS_SETUP,     /* logging and hardening set up; the handler does the
                      * rest (exec: --mount-from opens no broker) */
    NEEDS_BROKER,    /* logging and hardening set up, the configuration
                      * loaded and the broker open (broker_open) */
    NEEDS_MOUNT,     /* and mounted at MOUNTPOINT, else the configuration's
                      * mount (broker_mount) */
};

/* How a command reads its command line. */
enum {
    CLI_RAW = 1 << 0,          /* no option parsing: the rest is ignored */
    CLI_ARG = 1 << 1,          /* takes one argument */
    CLI_ARG_REQUIRED = 1 << 2, /* ... and needs it */
    CLI_QUIET = 1 << 3,        /* prints its result on stdout: the log is
                                * for problems only unless --log-level says
                                * otherwise */
    CLI_OPT_FETCH = 1 << 4,    /* accepts --fetch */
    CLI_OPT_DEBUG_FUSE = 1 << 5, /* accepts --debug-fuse */
    CLI_OPT_EXEC = 1 << 6,     /* accepts --user, --mount, --wait,
                                * --mount-from, --signal-group */
    CLI_CMD = 1 << 7,          /* the arguments after the options (or "--")
                                * are a command to run, at least one */
    CLI_SIGNALFD = 1 << 8,     /* PID 1: the supervisor's signals are
                                * blocked before anything else, so no
                                * thread ever starts without them blocked */
    CLI_SERVICE = 1 << 9,      /* a host service (service.h): SIGHUP blocked
                                * before any thread, pid file, notify */
    CLI_OPT_MOUNT = 1 << 10,   /* accepts --mount DIR */
    CLI_OPT_PIDFILE = 1 << 11, /* accepts --pid-file F (and --no-pid-file
                                * with CLI_SERVICE) */
    CLI_OPT_RELOAD = 1 << 12,  /* accepts --timeout, --no-wait */
    CLI_ARGS = 1 << 13,        /* the handler parses its own arguments
                                * (compose: the syntax is Compose's) */
    CLI_OPT_MOUNT_NS = 1 << 14, /* accepts --mount-namespace PATH */
    CLI_OPT_ADMIN = 1 << 15,   /* accepts --admin ADDR */
    CLI_OPT_STATUS = 1 << 16,  /* accepts --token-file, --json */
    CLI_OPT_EXPLAIN = 1 << 17, /* accepts --explain SECRET and its caller's options */
};

/* One command (OpenSSH monitor.c's mon_dispatch): what it needs is set up
 * by the dispatcher before the handler runs, and the handler returns the
 * process exit code. */
struct cli_command {
    const char *names[3];       /* the name, then aliases; NULL-padded */
    const char *synopsis;       /* its line in the main usage; NULL: unlisted */
    const char *help;           /* the rest of that line */
    const char *usage;          /* `<command> --help`, before the common options */
    enum cli_needs needs;
    unsigned flags;             /* CLI_* */
    int (*run)(struct broker *b, const struct cli_opts *o);
};

/* The main usage text is the table below, between these two. */
static const char usage_head[] =
    "usage: runsecrets <command> [options]\n"
    "\n"
    "Fetches secrets from backends, keeps them in an encrypted in-memory cache and\n"
    "serves them as read-only files through FUSE (default /run/secrets).\n"
    "\n"
    "commands:\n";

static const char usage_tail[] =
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
    "Fetch every secret, mount the filesystem at MOUNTPOINT (or --mount; default:\n"
    "\"mount\" in the configuration, else /run/secrets) and keep the secrets fresh.\n"
    "Runs in the foreground; SIGTERM, SIGINT or SIGQUIT unmounts and exits 0; SIGHUP\n"
    "reloads the configuration and its fragments (a configuration that does not load\n"
    "is logged and the running one stays); USR1, USR2, ALRM and realtime signals are\n"
    "ignored. Under systemd (Type=notify) it sends READY=1 once every required secret\n"
    "is served.\n"
    "\n"
    "options:\n"
    "      --mount DIR        mountpoint (the same as MOUNTPOINT)\n"
    "      --pid-file FILE    write the pid to FILE and hold it while running (default,\n"
    "                         as root with the configuration's mountpoint: "
    PIDFILE_DEFAULT ");\n"
    "                         the outcome of each reload goes to FILE.reload\n"
    "      --no-pid-file      no pid file, even as root\n"
    "      --mount-namespace PATH\n"
    "                         make (and at the stop remove) the mount in the mount\n"
    "                         namespace PATH names, e.g. /proc/1/ns/mnt (the host's),\n"
    "                         while the broker stays in its own (a systemd sandbox);\n"
    "                         needs CAP_SYS_ADMIN and CAP_SYS_CHROOT\n"
    "      --admin ADDR       serve /health, /metrics and /status on ADDR: unix:/PATH,\n"
    "                         127.0.0.1:PORT, [::1]:PORT (port 0: any; the log says\n"
    "                         which) or none (default: \"admin\" in the configuration,\n"
    "                         else, as root with the configuration's mountpoint,\n"
    "                         " ADMIN_DEFAULT_LISTEN ")\n";

static const char usage_reload[] =
    "usage: runsecrets reload [options]\n"
    "\n"
    "Ask the broker holding the pid file to reload its configuration (SIGHUP) and wait\n"
    "for the outcome. Exit 0 when the new configuration is served; 1 when it was\n"
    "refused (the error is printed; the broker keeps serving the previous one), no\n"
    "broker holds the pid file, or no outcome came within the timeout.\n"
    "\n"
    "options:\n"
    "      --pid-file FILE    the broker's pid file (default " PIDFILE_DEFAULT ")\n"
    "      --timeout DURATION longest wait for the outcome (default 30s)\n"
    "      --no-wait          send the signal and return\n"
    "  -h, --help             this help\n";

static const char usage_check[] =
    "usage: runsecrets check [options] [--fetch]\n"
    "       runsecrets check [options] --explain SECRET --uid U [--gid G] [--groups A,B]\n"
    "                        [--exe PATH] [--cgroup PATH]\n"
    "       runsecrets check [options] --explain SECRET --pid PID\n"
    "\n"
    "Validate the configuration. With --fetch, fetch every secret once and print a\n"
    "table of name, backend and status (never values); exit 1 if any failed.\n"
    "With --explain, print the access decision for SECRET and the rules that made it,\n"
    "for a hypothetical caller (facts not given are unknown: they fail closed) or a\n"
    "live process; exit 0 when allowed, 1 when denied, 2 on an unknown SECRET or a\n"
    "bad option.\n"
    "\n"
    "options:\n"
    "      --fetch            fetch every secret once\n"
    "      --explain SECRET   explain the decision for SECRET (a configured name)\n"
    "      --uid U            the caller's uid (number or user name)\n"
    "      --gid G            its gid (default: the user's primary group)\n"
    "      --groups A,B       its supplementary groups (numbers or names)\n"
    "      --exe PATH         the executable it runs (compared by inode)\n"
    "      --cgroup PATH      its cgroup (as in /proc/PID/cgroup); names its container\n"
    "      --pid PID          a live process instead: its own facts\n";

static const char usage_get[] =
    "usage: runsecrets get [options] REF|NAME\n"
    "\n"
    "Print one secret's exact bytes on stdout. REF is <backend>:<path>[?version=V][#field]\n"
    "with a backend from the configuration; NAME is a configured secret's name.\n"
    "\n"
    "options:\n";

static const char usage_exec[] =
    "usage: runsecrets exec [options] [--] CMD [ARGS...]\n"
    "\n"
    "The container entrypoint. Mount the secrets (as mount does), wait until every\n"
    "secret marked \"required\" has a value, then run CMD as this process's child, as\n"
    "--user, with each secret's \"env\" variable set to its file's path (never a\n"
    "value). Stays as PID 1: forwards TERM, INT, QUIT, HUP, USR1, USR2 and WINCH to\n"
    "CMD, reaps zombies, keeps the secrets fresh and acts on \"on_change\"; on TERM,\n"
    "INT or QUIT stops CMD (exec.stop_grace, then KILL), unmounts and exits with\n"
    "CMD's status (128+N when killed by signal N). Needs /dev/fuse and\n"
    "CAP_SYS_ADMIN, except with --mount-from. Exit 1 when the secrets cannot be\n"
    "served or the required ones do not arrive in time (CMD is not run).\n"
    "\n"
    "options:\n"
    "      --user USER[:GROUP]\n"
    "                         run CMD as USER (from /etc/passwd, or uid[:gid])\n"
    "      --mount DIR        mountpoint (default: \"mount\" in the configuration,\n"
    "                         else /run/secrets)\n"
    "      --wait DURATION    longest wait for the required secrets (default:\n"
    "                         exec.wait in the configuration, else 30s)\n"
    "      --mount-from DIR   mount nothing: the secrets are files in DIR (a host\n"
    "                         broker's mount bind-mounted in); needs no privilege\n"
    "      --signal-group     forward signals to CMD's process group\n"
    "      --admin ADDR       serve /health, /metrics and /status on ADDR: unix:/PATH,\n"
    "                         127.0.0.1:PORT, [::1]:PORT or none (default: \"admin\" in\n"
    "                         the configuration, else " ADMIN_DEFAULT_LISTEN "\n"
    "                         as PID 1)\n";

static const char usage_status[] =
    "usage: runsecrets status [options]\n"
    "\n"
    "Ask a running broker's admin endpoint for its /status and print a table of its\n"
    "secrets (NAME, BACKEND, STATE, AGE, NEXT, ERROR) and backends. Opens no\n"
    "backend. Exit 0 when every required secret is fresh, 1 when not, 2 when the\n"
    "broker cannot be reached or its answer cannot be read.\n"
    "\n"
    "options:\n"
    "      --admin ADDR       the broker's admin address (default: \"admin\" in the\n"
    "                         configuration given with -c, else\n"
    "                         " ADMIN_DEFAULT_LISTEN ")\n"
    "      --token-file FILE  send the bearer token in FILE (default: the\n"
    "                         configuration's admin.token_file, with -c)\n"
    "      --json             print /status as the broker sent it\n";

static const char usage_health[] =
    "usage: runsecrets health [options]\n"
    "\n"
    "Ask a running broker's admin endpoint for /health and print nothing: exit 0\n"
    "when every required secret is fresh, 1 otherwise, also when the broker cannot\n"
    "be reached (for a Docker HEALTHCHECK).\n"
    "\n"
    "options:\n"
    "      --live             ask /health/live instead: exit 0 while the broker and its\n"
    "                         FUSE loop answer, whatever the secrets (a liveness probe)\n"
    "      --admin ADDR       the broker's admin address (default: \"admin\" in the\n"
    "                         configuration given with -c, else\n"
    "                         " ADMIN_DEFAULT_LISTEN ")\n"
    "      --token-file FILE  send the bearer token in FILE (default: the\n"
    "                         configuration's admin.token_file, with -c)\n";

static const char usage_version[] =
    "usage: runsecrets version [--libraries]\n"
    "\n"
    "options:\n"
    "      --libraries        print the path of every shared object runsecrets\n"
    "                         links or loads on use (libcurl, OpenSSL,\n"
    "                         libmicrohttpd, and what they need), one a line:\n"
    "                         what a minimal container image must hold\n";

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

/* A usage error about an option's value: "runsecrets CMD: OPT: DETAIL, got
 * 'GIVEN'" (given escaped), as usage_error. */
static int usage_detail(const char *cmd, const char *opt, const char *detail, const char *given)
{
    char shown[256];
    escape_str(shown, sizeof(shown), given, ESCAPE_SQUOTE);
    fprintf(stderr, "runsecrets %s: %s: %s, got '%s'\nTry 'runsecrets %s --help'.\n", cmd, opt,
            detail, shown, cmd);
    return EXIT_USAGE;
}

enum { OPT_LOG_FORMAT = 256, OPT_LOG_LEVEL, OPT_FETCH, OPT_DEBUG_FUSE, OPT_USER, OPT_MOUNT,
       OPT_WAIT, OPT_MOUNT_FROM, OPT_SIGNAL_GROUP, OPT_PID_FILE, OPT_NO_PID_FILE, OPT_TIMEOUT,
       OPT_NO_WAIT, OPT_MOUNT_NS, OPT_ADMIN, OPT_TOKEN_FILE, OPT_JSON, OPT_LIVE,
       OPT_EXPLAIN, OPT_UID, OPT_GID, OPT_GROUPS, OPT_EXE, OPT_CGROUP, OPT_PID, OPT_LIBRARIES };

/* An exec option given to another command: the message names it. */
static int exec_only(const struct cli_command *c, int opt)
{
    static const char *const names[] = {"--user", "--mount", "--wait", "--mount-from",
                                        "--signal-group"};
    if (c->flags & CLI_OPT_EXEC)
        return -1;
    if (opt == OPT_MOUNT && (c->flags & CLI_OPT_MOUNT))
        return -1;
    if (opt == OPT_MOUNT)
        return usage_error(c->names[0], "%s is an option of 'mount' and 'exec'", "--mount");
    return usage_error(c->names[0], "%s is an option of 'exec'", names[opt - OPT_USER]);
}

/* Parse the options of command c (argv[0] is its name as typed). Returns -1
 * to go on, else an exit code. */
static int parse_opts(const struct cli_command *c, int argc, char **argv, struct cli_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"fetch", no_argument, NULL, OPT_FETCH},
        {"debug-fuse", no_argument, NULL, OPT_DEBUG_FUSE},
        {"user", required_argument, NULL, OPT_USER},
        {"mount", required_argument, NULL, OPT_MOUNT},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"mount-from", required_argument, NULL, OPT_MOUNT_FROM},
        {"signal-group", no_argument, NULL, OPT_SIGNAL_GROUP},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"no-pid-file", no_argument, NULL, OPT_NO_PID_FILE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"no-wait", no_argument, NULL, OPT_NO_WAIT},
        {"mount-namespace", required_argument, NULL, OPT_MOUNT_NS},
        {"admin", required_argument, NULL, OPT_ADMIN},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"json", no_argument, NULL, OPT_JSON},
        {"live", no_argument, NULL, OPT_LIVE},
        {"libraries", no_argument, NULL, OPT_LIBRARIES},
        {"explain", required_argument, NULL, OPT_EXPLAIN},
        {"uid", required_argument, NULL, OPT_UID},
        {"gid", required_argument, NULL, OPT_GID},
        {"groups", required_argument, NULL, OPT_GROUPS},
        {"exe", required_argument, NULL, OPT_EXE},
        {"cgroup", required_argument, NULL, OPT_CGROUP},
        {"pid", required_argument, NULL, OPT_PID},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = c->names[0];
    char err[256];
    int ch, ex;

    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            o->config_given = true;
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
            if (!(c->flags & CLI_OPT_FETCH))
                return usage_error(cmd, "%s", "--fetch is an option of 'check'");
            o->fetch = true;
            break;
        case OPT_DEBUG_FUSE:
            if (!(c->flags & CLI_OPT_DEBUG_FUSE))
                return usage_error(cmd, "%s", "--debug-fuse is an option of 'mount'");
            o->debug_fuse = true;
            break;
        case OPT_USER:
        case OPT_MOUNT:
        case OPT_WAIT:
        case OPT_MOUNT_FROM:
        case OPT_SIGNAL_GROUP:
            ex = exec_only(c, ch);
            if (ex >= 0)
                return ex;
            if (ch == OPT_USER)
                o->user = optarg;
            else if (ch == OPT_MOUNT)
                o->mount = optarg;
            else if (ch == OPT_MOUNT_FROM)
                o->mount_from = optarg;
            else if (ch == OPT_SIGNAL_GROUP)
                o->signal_group = true;
            else if (duration_parse_str(optarg, &o->wait_ms, err, sizeof(err)) < 0)
                return usage_error(cmd, "--wait: expected a duration like 30s or 2m, got '%s'",
                                   optarg);
            break;
        case OPT_PID_FILE:
        case OPT_NO_PID_FILE:
            if (!(c->flags & CLI_OPT_PIDFILE) ||
                (ch == OPT_NO_PID_FILE && !(c->flags & CLI_SERVICE)))
                return ch == OPT_PID_FILE
                           ? usage_error(cmd, "%s is an option of 'mount' and 'reload'",
                                         "--pid-file")
                           : usage_error(cmd, "%s is an option of 'mount'", "--no-pid-file");
            if (ch == OPT_PID_FILE && optarg[0] == '\0')
                return usage_error(cmd, "--pid-file: expected a file name, got '%s'", optarg);
            if (ch == OPT_PID_FILE)
                o->pid_file = optarg;
            else
                o->no_pid_file = true;
            if (o->pid_file && o->no_pid_file)
                return usage_error(cmd, "%s", "--pid-file and --no-pid-file exclude each other");
            break;
        case OPT_TIMEOUT:
        case OPT_NO_WAIT:
            if (!(c->flags & CLI_OPT_RELOAD))
                return usage_error(cmd, "%s is an option of 'reload'",
                                   ch == OPT_TIMEOUT ? "--timeout" : "--no-wait");
            if (ch == OPT_NO_WAIT)
                o->no_wait = true;
            else if (duration_parse_str(optarg, &o->timeout_ms, err, sizeof(err)) < 0)
                return usage_error(cmd, "--timeout: expected a duration like 30s or 2m, got '%s'",
                                   optarg);
            break;
        case OPT_MOUNT_NS:
            if (!(c->flags & CLI_OPT_MOUNT_NS))
                return usage_error(cmd, "%s is an option of 'mount'", "--mount-namespace");
            if (optarg[0] != '/')
                return usage_error(cmd, "--mount-namespace: expected an absolute path like "
                                        "/proc/1/ns/mnt, got '%s'", optarg);
            o->mount_ns = optarg;
            break;
        case OPT_ADMIN: {
            struct listen_addr addr;
            if (!(c->flags & CLI_OPT_ADMIN))
                return usage_error(cmd, "%s is an option of 'mount', 'exec', 'status' and "
                                   "'health'", "--admin");
            if (admin_addr_parse(optarg, &addr, err, sizeof(err)) < 0)
                return usage_detail(cmd, "--admin", err, optarg);
            o->admin = optarg;
            break;
        }
        case OPT_TOKEN_FILE:
        case OPT_JSON:
            if (!(c->flags & CLI_OPT_STATUS) || (ch == OPT_JSON && strcmp(cmd, "status") != 0))
                return usage_error(cmd, ch == OPT_JSON ? "%s is an option of 'status'"
                                                       : "%s is an option of 'status' and 'health'",
                                   ch == OPT_JSON ? "--json" : "--token-file");
            if (ch == OPT_JSON)
                o->json = true;
            else if (optarg[0] == '\0')
                return usage_error(cmd, "--token-file: expected a file name, got '%s'", optarg);
            else
                o->token_file = optarg;
            break;
        case OPT_LIVE:
            if (strcmp(cmd, "health") != 0)
                return usage_error(cmd, "%s is an option of 'health'", "--live");
            o->live = true;
            break;
        case OPT_LIBRARIES:
            if (strcmp(cmd, "version") != 0)
                return usage_error(cmd, "%s is an option of 'version'", "--libraries");
            o->libraries = true;
            break;
        case OPT_EXPLAIN:
        case OPT_UID:
        case OPT_GID:
        case OPT_GROUPS:
        case OPT_EXE:
        case OPT_CGROUP:
        case OPT_PID: {
            /* Only stored here: their values are checked by explain_run,
             * which resolves names and paths. */
            const char **slot[] = {&o->explain.secret, &o->explain.uid, &o->explain.gid,
                                   &o->explain.groups, &o->explain.exe, &o->explain.cgroup,
                                   &o->explain.pid};
            static const char *const names[] = {"--explain", "--uid", "--gid", "--groups",
                                                "--exe", "--cgroup", "--pid"};
            if (!(c->flags & CLI_OPT_EXPLAIN))
                return usage_error(cmd, "%s is an option of 'check'", names[ch - OPT_EXPLAIN]);
            *slot[ch - OPT_EXPLAIN] = optarg;
            break;
        }
        case 'h':
            fputs(c->usage, stdout);
            if (!(c->flags & CLI_OPT_RELOAD))
                fputs(usage_common, stdout);
            return 0;
        default:
            return usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (c->flags & CLI_CMD) {
        if (optind >= argc)
            return usage_error(cmd, "%s", "missing the command to run (... -- CMD [ARGS...])");
        o->cmd = argv + optind;
        return -1;
    }
    if (optind < argc) {
        if (!(c->flags & CLI_ARG))
            return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
        o->arg = argv[optind++];
        if (optind < argc)
            return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    } else if (c->flags & CLI_ARG_REQUIRED) {
        return usage_error(cmd, "%s", "missing argument");
    }
    if (explain_opts_any(&o->explain) && !o->explain.secret)
        return usage_error(cmd, "%s", "--uid, --gid, --groups, --exe, --cgroup and --pid go "
                                      "with --explain SECRET");
    if (o->explain.secret && o->fetch)
        return usage_error(cmd, "%s", "--explain and --fetch exclude each other");
    if ((c->flags & CLI_OPT_MOUNT) && !(c->flags & CLI_CMD) && o->arg && o->mount)
        return usage_error(cmd, "%s", "MOUNTPOINT and --mount exclude each other");
    return -1;
}

/* Logging, allocator hooks and hardening: before any other work. */
static int setup(const struct cli_opts *o)
{
    char err[256];
    log_setup(STDERR_FILENO, o->log_format, o->log_level);
    log_hook_fuse();
    if (hardening_init_process(err, sizeof(err)) < 0) {
        log_error("%s", err);
        return EXIT_RUNTIME;
    }
    return -1;
}

/* Print a failure to load the configuration (rc, err); the exit code. */
static int config_error(int rc, const char *err)
{
    char shown[1024];
    /* Configuration problems are for people at a terminal: one plain line,
     * whatever a backend's message quoted from the file. */
    escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
    fprintf(stderr, "runsecrets: %s\n", shown);
    return rc == -EINVAL || rc == -ENOENT || rc == -EACCES || rc == -EISDIR ? EXIT_USAGE
                                                                           : EXIT_RUNTIME;
}

static int open_broker(struct broker *b, const struct cli_opts *o)
{
    char err[1024] = "";
    int rc = broker_open(b, o->config, err, sizeof(err));
    if (rc == 0)
        return -1;
    return config_error(rc, err);
}

/* An absolute path, or the usage error naming what (MOUNTPOINT, --mount). */
static int check_absolute(const char *cmd, const char *what, const char *given)
{
    if (given[0] == '/')
        return -1;
    char shown[1024];
    escape_str(shown, sizeof(shown), given, ESCAPE_SQUOTE);
    fprintf(stderr, "runsecrets %s: %s must be an absolute path, got '%s'\n", cmd, what, shown);
    return EXIT_USAGE;
}

/* --mount-namespace: open and check it (mountns.h), before any thread
 * starts (it drops CAP_SYS_PTRACE, which is per thread). A path that is
 * not a mount namespace is the caller's mistake: exit 2, one line, before
 * the configuration is read and with nothing mounted. */
static int open_mount_ns(const char *cmd, const struct cli_opts *o, struct mountns **ns)
{
    char err[PATH_MAX + 256], shown[PATH_MAX + 256];
    if (!o->mount_ns)
        return -1;
    int rc = mountns_open(o->mount_ns, ns, err, sizeof(err));
    if (rc == 0)
        return -1;
    escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
    fprintf(stderr, "runsecrets %s: %s\n", cmd, shown);
    /* Denied (no CAP_SYS_PTRACE) is the environment's doing, not the path's. */
    return rc == -ENOENT || rc == -ENOTDIR || rc == -EINVAL || rc == -ENAMETOOLONG ? EXIT_USAGE
                                                                                  : EXIT_RUNTIME;
}

/* Where the admin endpoint listens (admin_resolve): --admin, the
 * configuration's, else the default for a root broker that is the host's
 * main one (the same rule as its pid file: service_pid_file) or a
 * container's PID 1. Before the mount: a refused address is a usage error
 * (exit 2) and nothing was mounted for it. */
static int resolve_admin(const char *cmd, struct broker *b, const struct cli_opts *o,
                         struct listen_addr *addr, bool *from_default)
{
    char err[1024], shown[1024];
    bool want = strcmp(cmd, "exec") == 0 ? getpid() == 1
                                         : geteuid() == 0 && !o->arg && !o->mount;
    int rc = admin_resolve(&b->cfg->admin, o->admin, want, addr, from_default, err, sizeof(err));
    if (rc == 0)
        return -1;
    escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
    fprintf(stderr, "runsecrets %s: %s: %s\n", cmd, o->admin ? "--admin" : "admin.listen", shown);
    return EXIT_USAGE;
}

/* Start the endpoint once mounted (its watchdog probes the mount). A
 * default socket that cannot be had (another broker holds it) is one
 * warning and no endpoint: nobody asked for it; an address that was asked
 * for and cannot be had stops the command (exit 1). */
static int start_admin(const char *cmd, struct broker *b, const struct listen_addr *addr,
                       bool from_default)
{
    char err[1024], shown[1024], where[LISTEN_PATH_MAX + 16];
    struct admin_handlers h = {.page = stats_page, .probe = stats_probe, .arg = b};
    int rc = admin_start(addr, &b->cfg->admin, &h, &b->admin, err, sizeof(err));
    if (rc == 0)
        return -1;
    escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
    if (from_default) {
        listen_addr_format(addr, where, sizeof(where));
        log_f(LOG_WARN, &(struct log_fields){.address = where, .error = shown},
              "admin endpoint not started; running without it");
        return -1;
    }
    fprintf(stderr, "runsecrets %s: admin endpoint: %s\n", cmd, shown);
    return EXIT_RUNTIME;
}

static int mount_broker(const char *cmd, struct broker *b, const struct cli_opts *o)
{
    const char *given = o->arg ? o->arg : o->mount ? o->mount : b->cfg->mount;
    int ex = check_absolute(cmd, o->mount ? "--mount" : "MOUNTPOINT", given);
    struct listen_addr admin_addr;
    bool from_default = false;

    if (ex < 0)
        ex = resolve_admin(cmd, b, o, &admin_addr, &from_default);
    if (ex >= 0)
        return ex;
    int rc = broker_mount(b, given, o->debug_fuse);
    if (rc < 0)
        /* A file where the mountpoint should be is the configuration's fault. */
        return rc == -ENOTDIR ? EXIT_USAGE : EXIT_RUNTIME;
    return start_admin(cmd, b, &admin_addr, from_default);
}

static int cmd_mount(struct broker *b, const struct cli_opts *o)
{
    (void)o;
    return broker_run(b) == 0 ? 0 : EXIT_RUNTIME;
}

/* The pid file `mount` takes: --pid-file; none with --no-pid-file; else
 * the default one only for the host's main broker (root, the
 * configuration's mountpoint), so brokers started for one project each
 * (--mount) never fight over it. */
static const char *service_pid_file(const struct cli_opts *o)
{
    if (o->pid_file || o->no_pid_file)
        return o->pid_file;
    if (geteuid() == 0 && !o->arg && !o->mount)
        return PIDFILE_DEFAULT;
    return NULL;
}

static int open_service(struct broker *b, const struct cli_opts *o)
{
    char err[1024] = "";
    struct service_opts so = {.pid_file = service_pid_file(o),
                              .notify_socket = o->have_notify_socket ? o->notify_socket : NULL};
    int rc = service_open(b, &so, err, sizeof(err));
    if (rc == 0)
        return -1;
    char shown[1024];
    escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
    fprintf(stderr, "runsecrets mount: %s\n", shown);
    return EXIT_RUNTIME;
}

/* The outcome the broker wrote for a reload that started at or after
 * since_usec (pidfile.h): 1 and *ok/err when found, 0 when not yet. */
static int read_outcome(const char *status_path, pid_t pid, unsigned long long since_usec,
                        bool *ok, char *err, size_t errlen, unsigned long long *generation)
{
    json_error_t jerr;
    json_t *j = json_load_file(status_path, 0, &jerr);
    int found = 0;
    if (!j)
        return 0;
    json_t *jp = json_object_get(j, "pid"), *js = json_object_get(j, "started_usec");
    json_t *jo = json_object_get(j, "ok"), *je = json_object_get(j, "error");
    json_t *jg = json_object_get(j, "generation"), *ja = json_object_get(j, "attempt");
    if (json_is_integer(jp) && json_integer_value(jp) == pid && json_is_integer(js) &&
        json_is_integer(ja) && json_integer_value(ja) > 0 &&
        (unsigned long long)json_integer_value(js) >= since_usec && json_is_boolean(jo)) {
        *ok = json_is_true(jo);
        snprintf(err, errlen, "%s", json_is_string(je) ? json_string_value(je) : "");
        *generation = json_is_integer(jg) ? (unsigned long long)json_integer_value(jg) : 0;
        found = 1;
    }
    json_decref(j);
    return found;
}

/* Is pid a runsecrets? Its name (comm) says so, or its executable is ours
 * (a renamed binary). A pid file held by a live broker names it; this
 * guards against a pid file that some other program wrote and locks. */
static bool is_runsecrets(pid_t pid)
{
    char path[64], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
    FILE *f = fopen(path, "re");
    if (f) {
        if (!fgets(comm, sizeof(comm), f))
            comm[0] = '\0';
        fclose(f);
    }
    if (strncmp(comm, "runsecrets", 10) == 0)
        return true;
    struct stat a, b;
    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    return stat(path, &a) == 0 && stat("/proc/self/exe", &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

static int cmd_reload(struct broker *b, const struct cli_opts *o)
{
    char err[1024] = "", shown[1024], status_path[PATH_MAX + 16];
    const char *path = o->pid_file ? o->pid_file : PIDFILE_DEFAULT;
    long long timeout = o->timeout_ms > 0 ? o->timeout_ms : RELOAD_DEFAULT_TIMEOUT_MS;
    pid_t pid = 0;
    (void)b;

    int rc = pidfile_read_live(path, &pid, err, sizeof(err));
    if (rc < 0) {
        escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
        fprintf(stderr, "runsecrets reload: %s\n", shown);
        return EXIT_RUNTIME;
    }
    escape_str(shown, sizeof(shown), path, 0);
    if (!is_runsecrets(pid)) {
        fprintf(stderr, "runsecrets reload: pid file %s names pid %ld, which is not a runsecrets "
                "broker\n", shown, (long)pid);
        return EXIT_RUNTIME;
    }
    snprintf(status_path, sizeof(status_path), "%s%s", path, PIDFILE_STATUS_SUFFIX);
    /* Before the signal: an outcome of a reload that started earlier read
     * the files before the caller's change, and does not count. */
    unsigned long long since = notify_monotonic_usec();
    if (kill(pid, SIGHUP) != 0) {
        fprintf(stderr, "runsecrets reload: cannot signal pid %ld: %s\n", (long)pid,
                strerror(errno));
        return EXIT_RUNTIME;
    }
    if (o->no_wait)
        return 0;
    long long deadline = clock_mono_ms() + timeout;
    for (;;) {
        bool ok = false;
        unsigned long long gen = 0;
        if (read_outcome(status_path, pid, since, &ok, err, sizeof(err), &gen)) {
            if (ok) {
                printf("runsecrets reload: configuration reloaded (pid %ld, generation %llu)\n",
                       (long)pid, gen);
                return 0;
            }
            escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
            fprintf(stderr, "runsecrets reload: reload failed, the broker (pid %ld) keeps "
                    "serving the previous configuration: %s\n", (long)pid, shown);
            return EXIT_RUNTIME;
        }
        if (kill(pid, 0) != 0 && errno == ESRCH) {
            fprintf(stderr, "runsecrets reload: the broker (pid %ld) exited before reporting "
                    "the outcome\n", (long)pid);
            return EXIT_RUNTIME;
        }
        if (clock_mono_ms() >= deadline) {
            char d[32];
            duration_format(timeout, d, sizeof(d));
            fprintf(stderr, "runsecrets reload: no outcome from the broker (pid %ld) within %s "
                    "(see its log; %s)\n", (long)pid, d, status_path);
            return EXIT_RUNTIME;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = RELOAD_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int cmd_check(struct broker *b, const struct cli_opts *o)
{
    if (o->explain.secret)
        return explain_run(b->cfg, &o->explain, "check");
    char path[256], mount[256];
    escape_str(path, sizeof(path), b->cfg->path, 0);
    escape_str(mount, sizeof(mount), b->cfg->mount, 0);
    char frags[64] = "";
    if (b->cfg->n_files > 1)
        snprintf(frags, sizeof(frags), " (and %zu fragment%s)", b->cfg->n_files - 1,
                 b->cfg->n_files == 2 ? "" : "s");
    printf("config ok: %s%s: %zu backend%s, %zu secret%s, mount %s\n", path, frags,
           b->cfg->n_backends, b->cfg->n_backends == 1 ? "" : "s", b->cfg->n_secrets,
           b->cfg->n_secrets == 1 ? "" : "s", mount);
    const struct policy_rules *pol = b->cfg->policy;
    if (pol) {
        const struct policy_audit *a = &pol->audit;
        printf("access policy: %zu rule%s, default %s\n", pol->n_rules,
               pol->n_rules == 1 ? "" : "s", pol->dflt == POLICY_ALLOW ? "allow" : "deny");
        char every[64] = "every decision written";
        if (a->repeat_after > 0 && a->repeat_after % 1000 == 0)
            snprintf(every, sizeof(every), "repeats folded for %llds", a->repeat_after / 1000);
        else if (a->repeat_after > 0)
            snprintf(every, sizeof(every), "repeats folded for %lldms", a->repeat_after);
        printf("audit trail: %s%s%s, %s\n",
               a->sink == POLICY_AUDIT_STDERR ? "stderr" : a->sink == POLICY_AUDIT_FILE ? "file:"
                                                                                     : "syslog",
               a->sink == POLICY_AUDIT_SYSLOG && a->path ? ":" : "", a->path ? a->path : "", every);
    } else
        printf("no access policy: file modes only\n");
    if (!o->fetch)
        return 0;

    size_t failed = scheduler_fetch_all(b->sched);
    /* A check must not leave dynamic credentials behind. */
    broker_shutdown_backends(b);
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
        char e[512];
        scheduler_last_error(b->sched, i, e, sizeof(e));
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

static int cmd_get(struct broker *b, const struct cli_opts *o)
{
    char err[512] = "";
    struct secret_ref parsed = {0};
    const struct secret_ref *ref;
    struct backend *be;
    struct fetch_result r;
    int rc;

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

/* exec's FUSE mode, after the configuration and --user were accepted. */
static int exec_mounted(struct broker *b, const struct cli_opts *o, const struct exec_opts *eo)
{
    char msg[1024];
    unsigned missing = exec_fuse_missing();

    if (missing) {
        /* Before any mount attempt: no fallback that writes plaintext
         * anywhere, and a message that says what to add. */
        exec_fuse_message(missing, msg, sizeof(msg));
        fprintf(stderr, "%s\n", msg);
        return EXIT_RUNTIME;
    }
    b->supervised = true;
    int ex = mount_broker("exec", b, o);
    if (ex == EXIT_RUNTIME)
        /* The device and the capability are there: what is left is a
         * security module refusing mount(2) (Docker's AppArmor profile). */
        fprintf(stderr, "runsecrets exec: the mount failed although /dev/fuse and "
                "CAP_SYS_ADMIN are present; under AppArmor add --security-opt "
                "apparmor=unconfined (Compose: security_opt: [apparmor:unconfined]), or use "
                "--mount-from DIR\n");
    if (ex >= 0)
        return ex;
    return exec_serve(b, eo);
}

static int cmd_exec(struct broker *b, const struct cli_opts *o)
{
    char err[1024] = "";
    struct supervise_user user;
    struct config *cfg = NULL;
    int rc, ex;

    memset(&user, 0, sizeof(user));
    if (o->mount && o->mount_from)
        return usage_error("exec", "%s", "--mount and --mount-from exclude each other");
    if (o->admin && o->mount_from)
        return usage_error("exec", "%s", "--admin and --mount-from exclude each other: "
                           "--mount-from serves nothing");
    if (o->mount_from) {
        ex = check_absolute("exec", "--mount-from", o->mount_from);
        if (ex >= 0)
            return ex;
        /* No backend is built: nothing is fetched here, no backend
         * credential (VAULT_TOKEN...) is needed, and the paths in the
         * backends' settings are the host's, so they are not checked. */
        rc = cfg_load_opts(o->config, CFG_BACKEND_TYPES_ONLY, &cfg, err, sizeof(err));
        if (rc < 0)
            return config_error(rc, err);
    } else {
        ex = open_broker(b, o);
        if (ex >= 0)
            return ex;
    }
    if (o->user && supervise_user_parse(o->user, &user, err, sizeof(err)) < 0) {
        char shown[1024];
        escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
        fprintf(stderr, "runsecrets exec: --user: %s\n", shown);
        supervise_user_cleanup(&user);
        cfg_free(cfg);
        return EXIT_USAGE;
    }
    struct exec_opts eo = {.mount_from = o->mount_from, .wait_ms = o->wait_ms,
                           .user = o->user ? &user : NULL, .signal_group = o->signal_group,
                           .argv = o->cmd, .close_from = o->fd_floor,
                           .core_limit = o->have_core_limit ? &o->core_limit : NULL};
    ex = o->mount_from ? exec_from(cfg, &eo) : exec_mounted(b, o, &eo);
    cfg_free(cfg);
    supervise_user_cleanup(&user);
    return ex;
}

static struct status_opts status_opts_of(const struct cli_opts *o)
{
    return (struct status_opts){.admin = o->admin, .token_file = o->token_file,
                                .config = o->config_given ? o->config : NULL, .json = o->json,
                                .live = o->live};
}

static int cmd_status(struct broker *b, const struct cli_opts *o)
{
    (void)b;
    struct status_opts so = status_opts_of(o);
    return status_main(&so);
}

static int cmd_health(struct broker *b, const struct cli_opts *o)
{
    (void)b;
    struct status_opts so = status_opts_of(o);
    return health_main(&so);
}

static int cmd_compose(struct broker *b, const struct cli_opts *o)
{
    (void)b;
    return compose_main(o->argc, o->argv);
}

static int print_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    /* The executable itself has an empty name, the vDSO no path. */
    if (info->dlpi_name && info->dlpi_name[0] == '/')
        printf("%s\n", info->dlpi_name);
    return 0;
}

/* version --libraries: load every library loaded on use, then list every
 * object mapped (dl_iterate_phdr), so what they pull in is there too. */
static int print_libraries(void)
{
    char err[256];
    if (http_libs_load(err, sizeof(err)) < 0 || admin_load(err, sizeof(err)) < 0) {
        fprintf(stderr, "runsecrets: %s\n", err);
        return EXIT_FAILURE;
    }
    dl_iterate_phdr(print_object, NULL);
    return fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
}

static int cmd_version(struct broker *b, const struct cli_opts *o)
{
    (void)b;
    if (o->libraries)
        return print_libraries();
    /* libcurl and libmicrohttpd are loaded on use (lib/dynlib.h), not to
     * print a version: the ones built against, and where --libraries
     * finds them. */
    printf("runsecrets %s\n", RS_VERSION);
    printf("libsodium %s, jansson %s, libfuse %s; loaded on use: libcurl %s (%s), "
           "libmicrohttpd (%s)\n", sodium_version_string(), jansson_version_str(),
           fuse_pkgversion(), LIBCURL_VERSION, RS_SONAME_CURL, RS_SONAME_MHD);
    return 0;
}

static int cmd_help(struct broker *b, const struct cli_opts *o);

/* Dispatch, the main usage text and "unknown command" all come from here.
 * A command's synopsis column is 20 wide (usage_main_print). */
static const struct cli_command commands[] = {
    {{"mount"}, "mount [MOUNTPOINT]",
     "mount and serve in the foreground until SIGTERM/SIGINT/SIGQUIT; SIGHUP reloads",
     usage_mount, NEEDS_MOUNT,
     CLI_ARG | CLI_OPT_DEBUG_FUSE | CLI_SERVICE | CLI_OPT_MOUNT | CLI_OPT_PIDFILE |
         CLI_OPT_MOUNT_NS | CLI_OPT_ADMIN, cmd_mount},
    {{"reload"}, "reload", "make the running broker reload its configuration, print the outcome",
     usage_reload, NEEDS_NOTHING, CLI_OPT_PIDFILE | CLI_OPT_RELOAD, cmd_reload},
    {{"check"}, "check [--fetch|--explain]",
     "validate; --fetch fetches every secret; --explain a policy decision",
     usage_check, NEEDS_BROKER, CLI_QUIET | CLI_OPT_FETCH | CLI_OPT_EXPLAIN, cmd_check},
    {{"get"}, "get REF|NAME", "print one secret on stdout",
     usage_get, NEEDS_BROKER, CLI_QUIET | CLI_ARG | CLI_ARG_REQUIRED, cmd_get},
    {{"exec"}, "exec -- CMD [ARG...]",
     "container entrypoint: serve the secrets, run CMD as PID 1's child",
     usage_exec, NEEDS_SETUP, CLI_OPT_EXEC | CLI_CMD | CLI_SIGNALFD | CLI_OPT_ADMIN, cmd_exec},
    {{"status"}, "status [--json]",
     "ask a running broker (its admin endpoint) for the state of every secret",
     usage_status, NEEDS_SETUP, CLI_QUIET | CLI_OPT_ADMIN | CLI_OPT_STATUS, cmd_status},
    {{"health"}, "health", "exit 0 when a running broker is healthy, else 1 (HEALTHCHECK)",
     usage_health, NEEDS_SETUP, CLI_QUIET | CLI_OPT_ADMIN | CLI_OPT_STATUS, cmd_health},
    {{"compose"}, "compose ... up|down",
     "Docker Compose provider: a host broker per project (docs/compose.md)",
     NULL, NEEDS_SETUP, CLI_ARGS | CLI_QUIET, cmd_compose},
    {{"version", "--version"}, "version", "print version information",
     usage_version, NEEDS_NOTHING, 0, cmd_version},
    {{"help", "--help", "-h"}, NULL, NULL, NULL, NEEDS_NOTHING, CLI_RAW, cmd_help},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))
#define N_NAMES (sizeof(commands[0].names) / sizeof(commands[0].names[0]))

static void usage_main_print(FILE *f)
{
    fputs(usage_head, f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].synopsis)
            fprintf(f, "  %-20s %s\n", commands[i].synopsis, commands[i].help);
    fputs(usage_tail, f);
}

static int cmd_help(struct broker *b, const struct cli_opts *o)
{
    (void)b;
    (void)o;
    usage_main_print(stdout);
    return 0;
}

/* The command named (or aliased) name, or NULL. */
static const struct cli_command *command_find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        for (size_t j = 0; j < N_NAMES && commands[i].names[j]; j++)
            if (strcmp(commands[i].names[j], name) == 0)
                return &commands[i];
    return NULL;
}

/* Set up what c needs, run it, take down what was set up. */
static int command_run(const struct cli_command *c, struct broker *b, const struct cli_opts *o)
{
    int ex;

    if (c->needs == NEEDS_NOTHING)
        return c->run(b, o);
    if (c->flags & CLI_SIGNALFD) {
        /* Nothing before this starts a thread (setup does not either). */
        int rc = supervise_block_signals();
        if (rc < 0) {
            fprintf(stderr, "runsecrets %s: cannot block signals: %s\n", c->names[0],
                    strerror(-rc));
            return EXIT_RUNTIME;
        }
        signals_block_wake();
    }
    /* Before any thread starts (setup starts none): every thread inherits
     * it blocked, and only the reload thread's signalfd takes it. */
    if (c->flags & CLI_SERVICE)
        service_block_reload_signal();
    ex = setup(o);
    if (ex >= 0)
        return ex;
    struct mountns *ns = NULL;
    ex = open_mount_ns(c->names[0], o, &ns);
    if (ex < 0 && c->needs >= NEEDS_BROKER)
        ex = open_broker(b, o);
    if (ex < 0) {
        b->mount_ns = ns;   /* the broker's from here (broker_close) */
        ns = NULL;
    }
    mountns_free(ns);
    /* The pid file before the mount: a second broker for it stops here. */
    if (ex < 0 && (c->flags & CLI_SERVICE))
        ex = open_service(b, o);
    if (ex < 0 && c->needs >= NEEDS_MOUNT)
        ex = mount_broker(c->names[0], b, o);
    if (ex < 0)
        ex = c->run(b, o);
    broker_stop(b);    /* a mount never outlives its command; a no-op after broker_run */
    service_close(b);  /* after the unmount: the pid file goes last */
    broker_close(b);
    /* exec is PID 1: its exit is the container's, and every millisecond of
     * it is the application's stop time. Every thread is joined by now. */
    if (c->flags & CLI_SIGNALFD)
        hardening_exit(ex);
    return ex;
}

int cli_main(struct broker *b, int argc, char **argv)
{
    struct cli_opts o = {.config = RS_DEFAULT_CONFIG, .log_format = LOG_FORMAT_JSON,
                         .log_level = LOG_INFO};

    memset(b, 0, sizeof(*b));
    if (argc < 2) {
        usage_main_print(stderr);
        return EXIT_USAGE;
    }
    const struct cli_command *c = command_find(argv[1]);
    if (!c)
        return usage_error(NULL, "unknown command '%s'", argv[1]);
    /* Before anything opens a file: the fds the container runtime handed
     * us are the ones the application inherits. */
    if (c->flags & CLI_SIGNALFD) {
        o.fd_floor = supervise_fd_floor();
        /* The application gets the core limit the container gave us. */
        o.have_core_limit = getrlimit(RLIMIT_CORE, &o.core_limit) == 0;
    }
    if (c->flags & CLI_QUIET)
        o.log_level = LOG_WARN;
    if (c->flags & CLI_SERVICE) {
        /* Ours to answer, and no child's (credential_process): read and
         * removed before any thread exists, as sd_notify's unset_environment. */
        const char *ns = getenv("NOTIFY_SOCKET");
        if (ns && strlen(ns) < sizeof(o.notify_socket)) {
            memcpy(o.notify_socket, ns, strlen(ns) + 1);
            o.have_notify_socket = true;
        } else if (ns) {
            /* Too long for any AF_UNIX address: notify_init says so. */
            memcpy(o.notify_socket, "?", 2);
            o.have_notify_socket = true;
        }
        unsetenv("NOTIFY_SOCKET");
    }
    if (c->flags & CLI_ARGS) {
        o.argc = argc - 1;
        o.argv = argv + 1;
    } else if (!(c->flags & CLI_RAW)) {
        int ex = parse_opts(c, argc - 1, argv + 1, &o);
        if (ex >= 0)
            return ex;
    }
    return command_run(c, b, &o);
}
