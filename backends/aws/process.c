/* process.c - credential_process: the profile's command, run with
 * /bin/sh -c as the SDKs do, its stdout (the credentials JSON) read into
 * secret memory by lib/spawn within the deadline. Its stderr stays the
 * broker's, as before: it is never put into a message, since a helper may
 * print anything there. */
#include "backends/aws/aws_i.h"
#include "lib/spawn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int aws_process_creds(const char *cmd, long long timeout_ms, struct aws_creds *out, char *err,
                      size_t errlen)
{
    char sh[] = "/bin/sh", dash_c[] = "-c";
    char *cmd_copy = strdup(cmd);
    char *argv[] = {sh, dash_c, cmd_copy, NULL};
    struct spawn_opts o = {.path = "/bin/sh", .argv = argv, .timeout_ms = timeout_ms,
                           .out_max = AWS_FILE_MAX};
    struct spawn_result r;
    char msg[256] = "";

    if (!cmd_copy)
        return -ENOMEM;
    int rc = spawn_run(&o, &r, msg, sizeof(msg));
    free(cmd_copy);
    if (rc == -ETIMEDOUT)
        snprintf(err, errlen, "credential_process: no answer within %lld s",
                 (timeout_ms + 999) / 1000);
    else if (rc == -E2BIG)
        snprintf(err, errlen, "credential_process: output larger than %d bytes", AWS_FILE_MAX);
    else if (rc < 0)
        snprintf(err, errlen, "credential_process: %s", msg);
    if (rc == 0 && (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)) {
        snprintf(err, errlen, "credential_process: exited with %s %d",
                 WIFEXITED(r.status) ? "status" : "signal",
                 WIFEXITED(r.status) ? WEXITSTATUS(r.status) : WTERMSIG(r.status));
        rc = -EIO;
    }
    if (rc == 0)
        rc = aws_creds_from_json(&r.out, "credential_process", out, err, errlen);
    spawn_result_cleanup(&r);
    return rc;
}
