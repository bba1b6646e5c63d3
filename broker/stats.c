/* stats.c - placeholder pages until the metrics land (same branch of work). */
#include "broker/stats.h"
#include "broker/broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int reply_text(struct admin_reply *out, int status, const char *type, const char *text)
{
    out->status = status;
    out->content_type = type;
    out->len = strlen(text);
    out->body = malloc(out->len + 1);
    if (!out->body)
        return -ENOMEM;
    memcpy(out->body, text, out->len + 1);
    return 0;
}

int stats_page(void *arg, enum admin_page page, struct admin_reply *out)
{
    (void)arg;
    switch (page) {
    case ADMIN_PAGE_HEALTH:
        return reply_text(out, 200, "application/json", "{\"status\":\"ok\"}\n");
    case ADMIN_PAGE_METRICS:
        return reply_text(out, 200, "text/plain; version=0.0.4; charset=utf-8",
                          "# TYPE runsecrets_up gauge\nrunsecrets_up 1\n");
    case ADMIN_PAGE_STATUS:
        return reply_text(out, 200, "application/json",
                          "{\"healthy\":true,\"secrets\":[],\"backends\":[]}\n");
    }
    return -EINVAL;
}

bool stats_probe(void *arg)
{
    struct broker *b = arg;
    struct stat st;
    return b->mountpoint[0] && stat(b->mountpoint, &st) == 0;
}
