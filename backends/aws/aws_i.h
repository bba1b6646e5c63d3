/* aws_i.h - what the files of backends/aws/ share, and the answer parsers
 * the unit tests and fuzz targets call.
 *
 * aws.c is the Secrets Manager client, conf.c its typed config, batch.c
 * the pure logic of the cold start's batches; creds.c the credential
 * chain with one file per source (creds_env.c, sts.c, profile.c with
 * ini.c and process.c, container.c, imds.c) and region.c; sign.c signs.
 * The parsers take what AWS sent and do no I/O; their messages name secret
 * ids and AWS's error text, never a credential or a value.
 */
#ifndef RS_AWS_I_H
#define RS_AWS_I_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include "backends/auth/auth_state.h"
#include "backends/aws/creds.h"
#include "backends/aws/ini.h"
#include "backends/aws/sign.h"
#include "backends/core/provider.h"
#include "backends/http/http.h"
#include "lib/unittest.h"

/* A token file or a credential_process answer. */
#define AWS_FILE_MAX (64 * 1024)

/* ---- conf.c: the typed config (ops->parse) ---- */

struct aws_conf {
    char *region;                  /* NULL: from the environment, profile or IMDS */
    char *profile;                 /* NULL: AWS_PROFILE or "default" */
    char *sts_endpoint;            /* NULL: from the environment or the region */
    struct http_opts http;         /* "endpoint" (address NULL: derived at first
                                      use) with the TLS settings and limits */
    bool batch;                    /* BatchGetSecretValue at the cold start */
};

int aws_parse(json_t *json, void **conf, char *err, size_t errlen);
void aws_conf_free(void *conf);

/* ---- aws.c: Secrets Manager answers ---- */

/* SecretString or SecretBinary (decoded) of one GetSecretValue answer or
 * batch entry, into out->value. */
int aws_take_value(const json_t *v, const struct secret_ref *ref, struct fetch_result *out,
                   char *err, size_t errlen);

/* ---- batch.c: the cold start's BatchGetSecretValue, without I/O ---- */

/* Which request each of refs goes in: batch_of[i] is its batch (0, 1...)
 * or -1 when it is read on its own: a pinned version or stage (a batch
 * cannot ask for one), batching off (use_batch false), or a batch that
 * would hold it alone. Plain references are cut in order into batches of
 * at most max. Returns the number of batches. */
size_t aws_batch_plan(const struct secret_ref *const *refs, size_t n, size_t max, bool use_batch,
                      int *batch_of);

/* Hand each entry of a BatchGetSecretValue answer to the plain references
 * it names that no entry served yet: served[i] (borrowed from root) is the
 * entry that gave refs[i] its value; rcs[i] and errs[i] say why an entry
 * that names refs[i] could not. */
void aws_batch_take(const json_t *root, const struct secret_ref *const *refs, size_t n,
                    struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX],
                    const json_t **served);

/* What a batch that did not answer 200 means. */
struct aws_batch_verdict {
    bool fail_all;                 /* transient (transport, throttled, 5xx): every
                                      reference of the batch gets its error, since
                                      single calls would only multiply the load */
    bool denied;                   /* not allowed to batch: single calls from now on */
};
/* rc: the call's (< 0: no answer); retryable: the status's classification;
 * type: AWS's error type. A refusal that is neither (denied, or a plain
 * 4xx) sends each reference to a single call, which yields its precise
 * error. */
struct aws_batch_verdict aws_batch_judge(int rc, bool retryable, const char *type);

/* After the batches: what becomes of each reference. */
enum aws_fate {
    AWS_FATE_DONE,                 /* a batch served it */
    AWS_FATE_BATCH_ERROR,          /* its batch failed for good: that error */
    AWS_FATE_SINGLE,               /* GetSecretValue on its own */
};
/* fate[i] from batch_of (aws_batch_plan), served[i] (a batch gave refs[i]
 * its value) and each batch's verdict (verdicts[b]; fail_all false for a
 * batch that answered). */
void aws_batch_fates(size_t n, const int *batch_of, const bool *served,
                     const struct aws_batch_verdict *verdicts, enum aws_fate *fate);

/* ---- the credential chain ---- */

struct aws_chain {
    struct http_engine *http;
    char *profile;                 /* NULL: AWS_PROFILE or "default", read at use */
    bool profile_explicit;
    char *sts_endpoint;
    char *backend;
    long long process_timeout_ms;
    struct aws_clock *clock;       /* the instance's (or own_clock); atomic */
    struct aws_clock own_clock;
    /* Used by the one refreshing thread only (`refreshing` below makes the
     * refresh single-flight); region_lookup makes its own client. */
    struct http_client *sts, *meta;
    pthread_mutex_t lock;          /* protects everything below */
    char *region;                  /* config, or resolved once (aws_chain_region) */
    char source_name[128];
    struct aws_creds creds;        /* current, may be empty */
    long long failed_ms;           /* last failure (clock_mono_ms), for backoff */
    unsigned failures;
    int failed_rc;
    char failed_err[384];
    bool refreshing;               /* one thread is fetching (lock released) */
    pthread_cond_t refreshed;      /* with lock: refreshing went false */
    /* Written under lock when the credentials or a fetch's outcome
     * change, read without it (aws_chain_status): a reader never waits
     * for lock, which a refresh takes around logging and copying. */
    struct auth_state status;
    const char *_Atomic method;    /* a static name ("env", "imds"...); NULL: none yet */
};

/* creds.c */
/* The variable's value, NULL when unset or empty. */
const char *aws_env(const char *name);
/* "2026-11-29T10:15:00Z" (RFC 3339, UTC, optional fraction); 0 if not. */
time_t aws_parse_time(const char *s);
/* The profile to read: the config's, AWS_PROFILE, or "default". */
const char *aws_profile_name(const struct aws_chain *c);
/* A fresh client for url in *slot (the old one freed), default options,
 * and these timeouts when connect_ms > 0. */
int aws_chain_client(struct aws_chain *c, struct http_client **slot, const char *url,
                     long long connect_ms, long long total_ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The region as known now (a copy into buf, "" when not yet known). */
void aws_chain_region_now(struct aws_chain *c, char *buf, size_t cap);
/* {"AccessKeyId", "SecretAccessKey", "Token" or "SessionToken",
 * "Expiration"}: the container, instance metadata and credential_process
 * answers. what names the source in messages. */
int aws_creds_from_json(const struct secbuf *body, const char *what, struct aws_creds *out,
                        char *err, size_t errlen) __attribute__((warn_unused_result));

/* creds_env.c: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN).
 * 1 when not set, 0, or -ENOMEM. */
int aws_env_creds(struct aws_creds *out) __attribute__((warn_unused_result));

/* sts.c */
int aws_web_identity(struct aws_chain *c, const char *token_file, const char *role_arn,
                     const char *session, struct aws_creds *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int aws_assume_role(struct aws_chain *c, const struct aws_creds *source, const char *role_arn,
                    const char *session, const char *external_id, const char *duration,
                    struct aws_creds *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* profile.c: the shared config and credentials files. */
struct aws_files {
    struct ini *creds, *config;
    char creds_path[512], config_path[512];
};
int aws_files_load(struct aws_files *f, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void aws_files_free(struct aws_files *f);
/* The config file's key of profile (borrowed from f). */
const char *aws_config_get(const struct aws_files *f, const char *profile, const char *key);
bool aws_profile_exists(const struct aws_files *f, const char *profile);
/* Credentials of profile: 0, 1 when it offers none, or an error. */
int aws_profile_creds(struct aws_chain *c, const struct aws_files *f, const char *profile,
                      int depth, struct aws_creds *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* process.c: credential_process, run with /bin/sh -c within timeout_ms. */
int aws_process_creds(const char *cmd, long long timeout_ms, struct aws_creds *out, char *err,
                      size_t errlen) __attribute__((warn_unused_result));

/* container.c: the ECS/EKS container credentials endpoint. */
int aws_container_creds(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* imds.c: EC2 instance metadata, IMDSv2 only. */
/* GET path with a fresh session token, on a new client in *slot. 0 with a
 * 200 in r, or an error. */
int aws_imds_get(struct aws_chain *c, struct http_client **slot, const char *path,
                 struct http_response *r, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int aws_imds_creds(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#ifdef UNITTEST
/* aws.c */
/* A Secrets Manager answer to op about ref: its JSON object (*root, new) or
 * the error (status, non-JSON). */
int aws_answer_object(const char *op, const struct secret_ref *ref, const struct http_response *r,
                      json_t **root, struct fetch_result *out, char *err, size_t errlen);
/* A DescribeSecret answer: whether ref no longer names version known. */
int aws_describe_answer(const json_t *root, const struct secret_ref *ref, const char *known,
                        bool *changed, char *err, size_t errlen);
/* sts.c: an STS AssumeRole* answer (XML). */
int aws_sts_answer(const struct http_response *r, const char *what, struct aws_creds *out,
                   char *err, size_t errlen);
/* imds.c: the role name, the first line of the instance metadata listing. */
int aws_imds_role(const struct secbuf *body, char *role, size_t cap);
#endif

#endif
