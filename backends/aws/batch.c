/* batch.c - the cold start's BatchGetSecretValue without the network:
 * which references go in which request, which answer entry serves which
 * reference, and what a failed request means for its references. aws.c
 * sends the requests (aws_fetch_many). */
#include "backends/aws/aws_i.h"

#include <string.h>

static bool plain(const struct secret_ref *ref)
{
    return !ref->version && !ref->stage;
}

size_t aws_batch_plan(const struct secret_ref *const *refs, size_t n, size_t max, bool use_batch,
                      int *batch_of)
{
    size_t plains = 0, batches = 0, in_batch = 0;
    for (size_t i = 0; i < n; i++) {
        batch_of[i] = -1;
        if (plain(refs[i]))
            plains++;
    }
    if (!use_batch || max < 2 || plains < 2)
        return 0;
    /* The last batch would hold one reference: that one is read on its own. */
    size_t last_alone = plains % max == 1 ? 1 : 0, seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!plain(refs[i]))
            continue;
        if (++seen > plains - last_alone)
            break;
        batch_of[i] = (int)batches;
        if (++in_batch == max) {
            batches++;
            in_batch = 0;
        }
    }
    return batches + (in_batch > 0);
}

struct aws_batch_verdict aws_batch_judge(int rc, bool retryable, const char *type)
{
    struct aws_batch_verdict v = {
        .fail_all = rc < 0 || retryable,
        .denied = rc == 0 && (strcmp(type, "AccessDeniedException") == 0 ||
                              strcmp(type, "AccessDenied") == 0),
    };
    return v;
}

void aws_batch_fates(size_t n, const int *batch_of, const bool *served,
                     const struct aws_batch_verdict *verdicts, enum aws_fate *fate)
{
    for (size_t i = 0; i < n; i++) {
        if (served[i])
            fate[i] = AWS_FATE_DONE;
        else if (batch_of[i] >= 0 && verdicts[batch_of[i]].fail_all)
            fate[i] = AWS_FATE_BATCH_ERROR;
        else
            fate[i] = AWS_FATE_SINGLE;
    }
}

static bool names_secret(const struct secret_ref *ref, const json_t *v)
{
    const char *name = json_string_value(json_object_get(v, "Name"));
    const char *arn = json_string_value(json_object_get(v, "ARN"));
    if ((name && strcmp(ref->path, name) == 0) || (arn && strcmp(ref->path, arn) == 0))
        return true;
    /* A partial ARN names the secret whose ARN is exactly it plus "-" and
     * the six random characters: "...:secret:db" must not match
     * "...:secret:db-admin-AbCdEf". */
    size_t n = strlen(ref->path);
    return arn && strncmp(ref->path, "arn:", 4) == 0 && strlen(arn) == n + 7 &&
           strncmp(arn, ref->path, n) == 0 && arn[n] == '-';
}

void aws_batch_take(const json_t *root, const struct secret_ref *const *refs, size_t n,
                    struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX],
                    const json_t **served)
{
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(root, "SecretValues"), k, v)
        for (size_t i = 0; i < n; i++)
            if (!served[i] && plain(refs[i]) && names_secret(refs[i], v)) {
                rcs[i] = aws_take_value(v, refs[i], &outs[i], errs[i], BACKEND_ERR_MAX);
                if (rcs[i] == 0)
                    served[i] = v;
                else
                    secbuf_cleanup(&outs[i].value);
            }
}
