/* status.h - the admin endpoint's clients: `runsecrets status` (a table of
 * /status) and `runsecrets health` (exit code of /health). They open no
 * backend: they only ask a running broker (broker/admin.h). */
#ifndef RS_STATUS_H
#define RS_STATUS_H

#include <stdbool.h>

/* How long either command waits for the broker. */
#define STATUS_TIMEOUT_MS 5000

struct status_opts {
    const char *admin;        /* --admin ADDR; NULL: see status_main */
    const char *token_file;   /* --token-file F; NULL: the configuration's, if any */
    const char *config;       /* -c FILE when given explicitly, else NULL */
    bool json;                /* --json: the body as received */
    bool live;                /* health --live: /health/live */
};

/* The address: --admin, else admin.listen of the configuration when -c
 * was given and it has one, else ADMIN_DEFAULT_LISTEN. GET /status and
 * print it; the exit code: 0 healthy, 1 not, 2 unreachable or garbage
 * (one line on stderr naming the address). */
int status_main(const struct status_opts *o);
/* GET /health (/health/live with live) and print nothing: 0 on 200, 1 on anything else, including
 * a broker that cannot be reached (HEALTHCHECK reads any non-zero as
 * unhealthy and reserves 2). */
int health_main(const struct status_opts *o);

#endif
