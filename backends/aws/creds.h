/* creds.h - the AWS credential chain, in the order the AWS SDKs use:
 *
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *      (+ AWS_ROLE_SESSION_NAME) -> STS AssumeRoleWithWebIdentity
 *   3. shared files (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, the
 *      profile): static keys, role_arn + source_profile (STS AssumeRole),
 *      web_identity_token_file, credential_process
 *   4. container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)
 *   5. EC2 instance metadata, IMDSv2 only
 *
 * The first source that is configured is the one used (as the SDKs do); a
 * failure there is an error, not a reason to try the next. Temporary
 * credentials are fetched again ahead of their expiration.
 *
 * One file per source: creds_env.c, sts.c (web identity, AssumeRole),
 * profile.c (+ ini.c, process.c for credential_process), container.c,
 * imds.c; creds.c is the chain and its cache, region.c the region.
 */
#ifndef RS_AWS_CREDS_H
#define RS_AWS_CREDS_H

#include "backends/aws/sign.h"

struct backend_auth;

struct aws_chain;

struct aws_chain_opts {
    struct http_engine *http;
    const char *profile;           /* config "profile", or NULL */
    const char *region;            /* config "region", or NULL */
    const char *sts_endpoint;      /* config "sts_endpoint", or NULL */
    const char *backend;           /* for logs */
    long long process_timeout_ms;  /* credential_process deadline; 0: 30 s */
    struct aws_clock *clock;       /* the instance's clock correction (borrowed,
                                      outlives the chain); NULL: the chain's own */
};

int aws_chain_new(const struct aws_chain_opts *o, struct aws_chain **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void aws_chain_free(struct aws_chain *c);

/* The region to use: config, AWS_REGION, AWS_DEFAULT_REGION, the profile's
 * "region", then instance metadata. 0 and a new string in *out, or an
 * error. */
int aws_chain_region(struct aws_chain *c, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Current credentials (fetched or refreshed when needed), copied into out
 * (aws_creds_clear it). 0 or an error naming the source. */
int aws_chain_get(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The chain's state for the admin endpoint (provider.h: auth_status),
 * without waiting for any lock: PENDING before the first fetch (and after
 * aws_chain_invalidate), OK with credentials held, FAILING when the last
 * fetch failed (expires_unix_ms still the end of any credentials held).
 * expires_unix_ms: a temporary credential's Expiration on our clock (the
 * server's, corrected by the skew); 0 for long-term keys (the
 * environment's or a profile's static keys) and a session token of
 * unknown end. method: the source, "env", "web_identity", "profile",
 * "container" or "imds" ("" before the first fetch). */
void aws_chain_status(struct aws_chain *c, struct backend_auth *out);
/* The server rejected these credentials as expired: fetch anew next time. */
void aws_chain_invalidate(struct aws_chain *c);
/* Which source the chain settled on ("" before the first get). Borrowed;
 * rewritten by each refresh, so read it when none runs (tests). */
const char *aws_chain_source(struct aws_chain *c);

#endif
