/* status.c - `runsecrets status` and `runsecrets health` (status.h). */
#include "broker/status.h"
#include "broker/admin.h"
#include "broker/hardening.h"
#include "engine/config.h"
#include "lib/escape.h"
#include "lib/secfile.h"
#include "lib/secmem.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_UNHEALTHY 1
#define EXIT_UNREACHABLE 2
#define STATUS_TOKEN_MAX 4098
#define STATUS_CELL 160        /* an ERROR cell is cut here: one line per secret */

/* What a command asks: the address and the token (new; secmem_free). 0,
 * or -1 with the message printed. */
static int target(const char *cmd, const struct status_opts *o, struct listen_addr *addr,
                  char **token)
{
    char err[1024], shown[1024];
    struct config *cfg = NULL;
    const char *text = o->admin, *token_file = o->token_file;
    int rc = 0;

    *token = NULL;
    if (o->config && (!text || !token_file)) {
        /* Only what "admin" says: no backend is built, and the backends'
         * host paths are not checked (CFG_BACKEND_TYPES_ONLY). */
        rc = cfg_load_opts(o->config, CFG_BACKEND_TYPES_ONLY, &cfg, err, sizeof(err));
        if (rc < 0) {
            escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
            fprintf(stderr, "runsecrets %s: %s\n", cmd, shown);
            return -1;
        }
        if (!text && cfg->admin.listen)
            text = cfg->admin.listen;
        if (!token_file && cfg->admin.token_file)
            token_file = cfg->admin.token_file;
    }
    if (!text)
        text = ADMIN_DEFAULT_LISTEN;
    rc = admin_addr_parse(text, addr, err, sizeof(err));
    if (rc == 0 && addr->family == LISTEN_NONE) {
        snprintf(err, sizeof(err), "the admin endpoint is off (\"none\")");
        rc = -EINVAL;
    }
    if (rc < 0) {
        escape_str(shown, sizeof(shown), text, ESCAPE_SQUOTE);
        fprintf(stderr, "runsecrets %s: '%s': %s\n", cmd, shown, err);
    }
    if (rc == 0 && token_file) {
        rc = secfile_token(token_file, STATUS_TOKEN_MAX, token, err, sizeof(err));
        if (rc < 0) {
            escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
            fprintf(stderr, "runsecrets %s: token file: %s\n", cmd, shown);
        }
    }
    cfg_free(cfg);
    return rc < 0 ? -1 : 0;
}

/* GET path; where gets the address asked, for messages. */
static int fetch(const char *cmd, const struct status_opts *o, const char *path, bool quiet,
                 int *status, char **body, char *where, size_t wherelen)
{
    char err[1024], shown[1024];
    struct listen_addr addr;
    char *token = NULL;

    if (target(cmd, o, &addr, &token) < 0)
        return -1;
    listen_addr_format(&addr, shown, sizeof(shown));
    escape_str(where, wherelen, shown, 0);
    int rc = hardening_init_http(err, sizeof(err));
    if (rc == 0)
        rc = admin_get(&addr, path, token, STATUS_TIMEOUT_MS, status, body, err, sizeof(err));
    secmem_free(token);
    if (rc < 0 && !quiet) {
        escape_str(shown, sizeof(shown), err, ESCAPE_KEEP_BACKSLASH);
        fprintf(stderr, "runsecrets %s: %s\n", cmd, shown);
    }
    return rc < 0 ? -1 : 0;
}

/* Seconds as a short duration: "12s", "5m12s", "3h5m", "2d4h". */
static void short_duration(double s, char *out, size_t cap)
{
    long long t = s < 0 ? 0 : (long long)(s + 0.5);
    if (t < 60)
        snprintf(out, cap, "%llds", t);
    else if (t < 3600)
        snprintf(out, cap, "%lldm%llds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(out, cap, "%lldh%lldm", t / 3600, t % 3600 / 60);
    else
        snprintf(out, cap, "%lldd%lldh", t / 86400, t % 86400 / 3600);
}

/* A cell from a JSON value: strings escaped (they come from a server),
 * numbers of seconds as short durations, null (or absent) as "-". */
static void cell(const json_t *v, bool duration, char *out, size_t cap)
{
    if (json_is_string(v)) {
        escape_str(out, cap, json_string_value(v), 0);
    } else if (json_is_number(v) && duration) {
        double s = json_number_value(v);
        if (s < 0)
            snprintf(out, cap, "due");
        else
            short_duration(s, out, cap);
    } else if (json_is_true(v) || json_is_false(v)) {
        snprintf(out, cap, "%s", json_is_true(v) ? "yes" : "no");
    } else if (json_is_integer(v)) {
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    } else {
        snprintf(out, cap, "-");
    }
}

#define MAX_COLS 6

struct table {
    size_t cols, rows;
    const char *head[MAX_COLS];
    char (*cells)[MAX_COLS][STATUS_CELL];
    int width[MAX_COLS];
};

static void table_print(struct table *t)
{
    for (size_t c = 0; c < t->cols; c++) {
        int w = (int)strlen(t->head[c]);
        for (size_t r = 0; r < t->rows; r++) {
            int l = (int)strlen(t->cells[r][c]);
            w = l > w ? l : w;
        }
        t->width[c] = w;
    }
    /* The last column is not padded: no trailing blanks. */
    for (size_t c = 0; c < t->cols; c++)
        printf("%-*s%s", c + 1 < t->cols ? t->width[c] : 0, t->head[c],
               c + 1 < t->cols ? "  " : "\n");
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++)
            printf("%-*s%s", c + 1 < t->cols ? t->width[c] : 0, t->cells[r][c],
                   c + 1 < t->cols ? "  " : "\n");
}

/* Fill a table from a JSON array: one row per object, keys[c] per column
 * (durations where dur[c]). 0 or -ENOMEM. */
static int table_fill(struct table *t, const json_t *arr, const char *const *keys,
                      const bool *dur)
{
    size_t n = json_array_size(arr);
    t->cells = calloc(n + 1, sizeof(*t->cells));
    if (!t->cells)
        return -ENOMEM;
    t->rows = n;
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < t->cols; c++)
            cell(json_object_get(json_array_get(arr, r), keys[c]), dur[c], t->cells[r][c],
                 STATUS_CELL);
    return 0;
}

static int print_status(const json_t *j)
{
    static const char *const skeys[] = {"name", "backend", "state", "age_seconds",
                                        "next_fetch_in_seconds", "error"};
    static const bool sdur[] = {false, false, false, true, true, false};
    static const char *const bkeys[] = {"name", "type", "up", "auth", "token_expiry"};
    static const bool bdur[] = {false, false, false, false, false};
    struct table s = {.cols = 6, .head = {"NAME", "BACKEND", "STATE", "AGE", "NEXT", "ERROR"}};
    struct table b = {.cols = 5, .head = {"NAME", "TYPE", "UP", "AUTH", "TOKEN-EXPIRY"}};
    int rc = table_fill(&s, json_object_get(j, "secrets"), skeys, sdur);
    if (rc == 0)
        rc = table_fill(&b, json_object_get(j, "backends"), bkeys, bdur);
    if (rc == 0) {
        table_print(&s);
        if (b.rows) {
            printf("\n");
            table_print(&b);
        }
    }
    free(s.cells);
    free(b.cells);
    return rc;
}

int status_main(const struct status_opts *o)
{
    int status = 0;
    char *body = NULL;
    char where[256];

    if (fetch("status", o, "/status", false, &status, &body, where, sizeof(where)) < 0)
        return EXIT_UNREACHABLE;
    json_error_t jerr;
    json_t *j = status == 200 || status == 503 ? json_loads(body, 0, &jerr) : NULL;
    json_t *healthy = json_object_get(j, "healthy");
    int ex = EXIT_UNREACHABLE;
    if (!json_is_boolean(healthy) || !json_is_array(json_object_get(j, "secrets"))) {
        if (status != 200 && status != 503)
            fprintf(stderr, "runsecrets status: %s answered HTTP %d%s\n", where, status,
                    status == 401 ? " (a token is required: --token-file)" : "");
        else
            fprintf(stderr, "runsecrets status: %s: the answer to /status is not what this "
                    "version reads (no \"healthy\" or \"secrets\")\n", where);
    } else if (o->json) {
        fputs(body, stdout);
        ex = json_is_true(healthy) ? 0 : EXIT_UNHEALTHY;
    } else if (print_status(j) == 0) {
        ex = json_is_true(healthy) ? 0 : EXIT_UNHEALTHY;
    } else {
        fprintf(stderr, "runsecrets status: out of memory\n");
    }
    json_decref(j);
    free(body);
    return ex;
}

int health_main(const struct status_opts *o)
{
    int status = 0;
    char *body = NULL, where[256];
    if (fetch("health", o, o->live ? "/health/live" : "/health", true, &status, &body, where,
              sizeof(where)) < 0)
        return EXIT_UNHEALTHY;
    free(body);
    return status == 200 ? 0 : EXIT_UNHEALTHY;
}
