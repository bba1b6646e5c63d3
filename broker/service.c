/* service.c - pid file, notifications, readiness and the reload thread
 * (service.h). */
#include "broker/service.h"
#include "broker/broker.h"
#include "broker/reload.h"
#include "broker/signals.h"
#include "engine/store.h"
#include "lib/log.h"
#include "policy/audit.h"
#include "lib/metrics.h"
#include "lib/notify.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define SERVICE_MSG_MAX (PATH_MAX + 1024)   /* a STATUS= naming the mountpoint */
#define SERVICE_STATUS_MAX 4096

/* Send msg; a failure is logged once (notify.h). */
static void send_msg(struct broker *b, const char *msg)
{
    char err[256];
    int rc = notify_send(&b->notify, msg, err, sizeof(err));
    if (rc < 0 && err[0]) {
        struct log_fields lf = {.error = err};
        log_f(LOG_WARN, &lf, "service manager notification failed");
    }
}

void service_block_reload_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* logrotate's postrotate: the audit file is opened again by its path. */
static void reopen_audit(struct broker *b)
{
    char err[512];
    if (b->audit && policy_audit_log_reopen(b->audit, err, sizeof(err)) < 0)
        log_f(LOG_WARN, &(struct log_fields){.error = err},
              "the audit trail keeps writing to the file it had open");
}

/* The status file: the outcome of the latest reload (pidfile.h). */
static void write_status(struct broker *b, bool ok, const char *error,
                         unsigned long long started, unsigned long long finished)
{
    char json[SERVICE_STATUS_MAX], esc[2048];
    if (b->pidfile.fd < 0)
        return;
    if (error)
        log_json_escape(esc, sizeof(esc), error);
    snprintf(json, sizeof(json),
             "{\"pid\":%ld,\"attempt\":%llu,\"generation\":%llu,\"ok\":%s,\"error\":%s%s%s,"
             "\"started_usec\":%llu,\"finished_usec\":%llu}\n",
             (long)getpid(), b->reload_attempts, b->generation, ok ? "true" : "false",
             error ? "\"" : "null", error ? esc : "", error ? "\"" : "", started, finished);
    int rc = pidfile_write_status(&b->pidfile, json);
    if (rc < 0) {
        struct log_fields lf = {.path = b->pidfile.status_path, .error = strerror(-rc)};
        log_f(LOG_WARN, &lf, "cannot write the reload status file");
    }
}

static const struct broker_ext service_ext = {
    .mounted = service_arm, .started = service_start, .event = service_event,
    .stopping = service_stopping,
};

int service_open(struct broker *b, const struct service_opts *o, char *err, size_t errlen)
{
    char msg[512] = "";
    int rc;

    b->pidfile.fd = -1;
    b->reload_sig_fd = -1;
    b->reload_stop_fd = -1;
    rc = notify_init(&b->notify, o->notify_socket, msg, sizeof(msg));
    if (rc < 0) {
        /* The manager will time out waiting for READY=1 and say so; the
         * log says why. Serving still beats refusing to. */
        struct log_fields lf = {.error = msg};
        log_f(LOG_ERROR, &lf, "cannot notify the service manager");
    }
    rc = pthread_mutex_init(&b->ready_lock, NULL);
    if (rc != 0) {
        notify_cleanup(&b->notify);
        snprintf(err, errlen, "cannot create a lock: %s", strerror(rc));
        return -rc;
    }
    b->service = true;
    b->ext = &service_ext;
    if (o->pid_file) {
        msg[0] = '\0';
        rc = pidfile_take(&b->pidfile, o->pid_file, msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "%s", msg);
            return rc;
        }
        struct log_fields lf = {.path = b->pidfile.path};
        if (msg[0])
            log_f(LOG_WARN, &lf, "%s", msg);
        log_f(LOG_DEBUG, &lf, "pid file written");
        write_status(b, true, NULL, 0, 0);
    }
    return 0;
}

/* Under ready_lock, before READY=1: recount from the store (at arming, and
 * after a reload changed the set of secrets). */
static void ready_recount_locked(struct broker *b)
{
    size_t n = store_count(b->store);
    free(b->ready_seen);
    b->ready_seen = calloc(n + 1, sizeof(*b->ready_seen));
    b->ready_n = b->ready_seen ? n : 0;
    b->ready_missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (!store_cfg(b->store, i)->required)
            continue;
        struct secret_view sv;
        store_view(b->store, i, &sv);
        if (sv.present && b->ready_seen)
            b->ready_seen[i] = true;
        else
            b->ready_missing++;
    }
}

/* Under ready_lock: READY=1 once nothing required is missing. */
static void ready_maybe_locked(struct broker *b)
{
    char msg[SERVICE_MSG_MAX];
    if (b->ready_sent || !b->ready_armed || b->ready_missing > 0 || !b->reload_started)
        return;
    b->ready_sent = true;
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %zu secret%s at %s\n",
             store_count(b->store), store_count(b->store) == 1 ? "" : "s", b->mountpoint);
    /* Under the lock: no RELOADING=1 can overtake it. */
    send_msg(b, msg);
    struct log_fields lf = {.path = b->mountpoint};
    log_f(LOG_INFO, &lf, "ready: every required secret is served");
}

void service_arm(struct broker *b)
{
    char msg[SERVICE_MSG_MAX];
    if (!b->service)
        return;
    pthread_mutex_lock(&b->ready_lock);
    ready_recount_locked(b);
    b->ready_armed = true;
    snprintf(msg, sizeof(msg), "STATUS=mounted at %s; waiting for %zu required secret%s\n",
             b->mountpoint, b->ready_missing, b->ready_missing == 1 ? "" : "s");
    send_msg(b, msg);
    pthread_mutex_unlock(&b->ready_lock);
}

void service_event(struct broker *b, size_t idx)
{
    if (!b->service)
        return;
    pthread_mutex_lock(&b->ready_lock);
    /* During a reload the indexes may be the new store's and ready_seen
     * the old one's: the count waits, and the reload recounts from the
     * store when it ends (so no event is lost). */
    if (b->ready_reloading) {
        pthread_mutex_unlock(&b->ready_lock);
        return;
    }
    if (b->ready_armed && !b->ready_sent && b->ready_seen && idx < b->ready_n &&
        !b->ready_seen[idx] && store_cfg(b->store, idx)->required) {
        struct secret_view sv;
        store_view(b->store, idx, &sv);
        if (sv.present) {
            b->ready_seen[idx] = true;
            b->ready_missing--;
        }
    }
    ready_maybe_locked(b);
    pthread_mutex_unlock(&b->ready_lock);
}

/* One reload, start to outcome: notify, load and apply, log, record. */
static void reload_once(struct broker *b)
{
    char err[1024] = "", msg[SERVICE_MSG_MAX];
    unsigned long long t0 = notify_monotonic_usec();

    pthread_mutex_lock(&b->ready_lock);
    bool tell = b->ready_sent;
    b->ready_reloading = true;
    pthread_mutex_unlock(&b->ready_lock);
    /* Before READY=1 the manager still waits for the start: a reload then
     * is ours alone, and READY=1 still means "every required secret". */
    if (tell) {
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\n"
                 "STATUS=reloading the configuration\n", t0);
        send_msg(b, msg);
    }
    int rc = broker_reload(b, err, sizeof(err));
    unsigned long long t1 = notify_monotonic_usec();
    b->reload_attempts++;
    metrics_reload_done(b->metrics, rc == 0);
    struct log_fields lf = {.path = b->config_path};
    if (rc == 0) {
        b->generation++;
        struct log_num nums[] = {
            {"generation", (long long)b->generation}, {"attempt", (long long)b->reload_attempts},
            {"files", (long long)b->cfg->n_files}, {"backends", (long long)b->cfg->n_backends},
            {"secrets", (long long)b->cfg->n_secrets}, {"ms", (long long)((t1 - t0) / 1000)},
            {"added", (long long)b->last_apply.added}, {"removed", (long long)b->last_apply.removed},
            {"changed", (long long)b->last_apply.changed}, {"kept", (long long)b->last_apply.kept},
            {"backends_new", (long long)b->last_apply.backends_new},
            {"backends_kept", (long long)b->last_apply.backends_kept},
        };
        lf.nums = nums;
        lf.n_nums = sizeof(nums) / sizeof(nums[0]);
        log_f(LOG_INFO, &lf, "config reloaded");
    } else {
        struct log_num nums[] = {
            {"generation", (long long)b->generation}, {"attempt", (long long)b->reload_attempts},
            {"ms", (long long)((t1 - t0) / 1000)},
        };
        lf.nums = nums;
        lf.n_nums = sizeof(nums) / sizeof(nums[0]);
        lf.error = err[0] ? err : strerror(-rc);
        log_f(LOG_ERROR, &lf, "reload failed");
    }
    write_status(b, rc == 0, rc == 0 ? NULL : (err[0] ? err : strerror(-rc)), t0, t1);

    pthread_mutex_lock(&b->ready_lock);
    b->ready_reloading = false;
    if (!b->ready_sent) {
        /* Not ready yet: the set of secrets may have changed, and events
         * were held back during the reload either way. */
        ready_recount_locked(b);
        ready_maybe_locked(b);
    } else if (tell) {
        if (rc == 0)
            snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %zu secret%s at %s "
                     "(configuration generation %llu)\n", store_count(b->store),
                     store_count(b->store) == 1 ? "" : "s", b->mountpoint, b->generation);
        else
            snprintf(msg, sizeof(msg), "READY=1\nSTATUS=reload failed, still serving the "
                     "previous configuration: %.1000s\n", err[0] ? err : strerror(-rc));
        send_msg(b, msg);
    }
    pthread_mutex_unlock(&b->ready_lock);
}

static void *reload_main(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-reload");
    struct broker *b = arg;
    struct pollfd pfd[2] = {{.fd = b->reload_sig_fd, .events = POLLIN},
                            {.fd = b->reload_stop_fd, .events = POLLIN}};
    for (;;) {
        int n = poll(pfd, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (pfd[1].revents & POLLIN))
            break;
        if (!(pfd[0].revents & POLLIN))
            continue;
        /* Take every pending signal: however many came, one reload reads
         * the files as they are now. HUP reopens the audit file too, first,
         * so a reload that fails still follows logrotate; USR1 only that. */
        struct signalfd_siginfo si;
        bool hup = false, usr1 = false;
        while (read(b->reload_sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo == SIGHUP)
                hup = true;
            else
                usr1 = true;
        }
        if (hup || usr1)
            reopen_audit(b);
        if (hup)
            reload_once(b);
    }
    return NULL;
}

int service_start(struct broker *b)
{
    if (!b->service)
        return 0;
    sigset_t hup, old;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigaddset(&hup, SIGUSR1);
    b->reload_sig_fd = signalfd(-1, &hup, SFD_NONBLOCK | SFD_CLOEXEC);
    b->reload_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = 0;
    if (b->reload_sig_fd < 0 || b->reload_stop_fd < 0)
        rc = -errno;
    if (rc == 0) {
        /* The thread takes no asynchronous signal: they are the main
         * thread's (signals.h). */
        signals_block_async(&old);
        rc = -pthread_create(&b->reload_thread, NULL, reload_main, b);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc < 0) {
        struct log_fields lf = {.error = strerror(-rc)};
        log_f(LOG_ERROR, &lf, "cannot start the reload thread");
        return rc;
    }
    pthread_mutex_lock(&b->ready_lock);
    b->reload_started = true;
    ready_maybe_locked(b);
    pthread_mutex_unlock(&b->ready_lock);
    return 0;
}

void service_stopping(struct broker *b)
{
    char msg[SERVICE_MSG_MAX];
    if (!b->service)
        return;
    const char *sig = signals_stopped_by();
    snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=stopping%s%s\n", sig ? " on SIG" : "",
             sig ? sig : "");
    send_msg(b, msg);
    if (b->reload_started) {
        uint64_t one = 1;
        ssize_t w = write(b->reload_stop_fd, &one, sizeof(one));
        (void)w;
        pthread_join(b->reload_thread, NULL);
        pthread_mutex_lock(&b->ready_lock);
        b->reload_started = false;
        pthread_mutex_unlock(&b->ready_lock);
    }
}

void service_close(struct broker *b)
{
    if (!b->service)
        return;
    if (b->reload_sig_fd >= 0)
        close(b->reload_sig_fd);
    if (b->reload_stop_fd >= 0)
        close(b->reload_stop_fd);
    b->reload_sig_fd = b->reload_stop_fd = -1;
    pidfile_release(&b->pidfile);
    notify_cleanup(&b->notify);
    free(b->ready_seen);
    b->ready_seen = NULL;
    pthread_mutex_destroy(&b->ready_lock);
    b->service = false;
    b->ext = NULL;
}
