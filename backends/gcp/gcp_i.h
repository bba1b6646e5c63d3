/* gcp_i.h - what the files of the GCP Secret Manager provider share.
 *
 *   conf.c   the config object, parsed once into struct gcp_conf, with
 *            Application Default Credentials resolved there (credentials_file,
 *            GOOGLE_APPLICATION_CREDENTIALS, the well-known file, the
 *            metadata server) so that `check` reports a bad credential
 *   name.c   references: SECRET, projects/P/[locations/L/]secrets/S
 *            [/versions/V], ?version=; ids checked against Google's rules
 *   cred.c   the credentials file (service_account, authorized_user,
 *            external_account), read into secret memory at each login
 *   jwt.c    the RS256 assertion of a service account (OpenSSL libcrypto)
 *   token.c  the token sources (jwt-bearer, refresh token, STS exchange and
 *            impersonation, metadata server) on backends/auth/token_cache:
 *            their answers, the request header, the re-login after a 401,
 *            refresh ahead of expiry (the scheduler's maintain)
 *   sm.c     Secret Manager's AccessSecretVersion: the authenticated GET,
 *            the answer (version name, base64 payload, CRC32C), Google's
 *            errors
 *   gcp.c    the provider's ops
 *
 * Locks, and the order in which they may nest (never the other way):
 *   the token cache's lock -> lock   (a login records the identity it
 *                                     logged in as)
 * lock is never held across a request or a call into the token cache.
 *
 * Messages name secrets (ids are [A-Za-z0-9_-]: nothing to escape),
 * projects, files and JSON paths, identities (a client_email, an
 * authorized user's account or OAuth client id, a workload identity
 * audience, "the metadata server's default service account") and
 * Google's error text, escaped and cut to one line; never a token, a
 * private key, an assertion, a client secret, a refresh token, a subject
 * token or a value, nor the CRC32C of a value (a checksum of a short
 * secret narrows a brute-force search). The answer parsers marked
 * UNITTEST_STATIC take one HTTP response as the service sent it and do no
 * I/O; the unit tests and the fuzz target call them.
 */
#ifndef RS_GCP_I_H
#define RS_GCP_I_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "backends/auth/token_cache.h"
#include "backends/core/provider.h"
#include "backends/http/http.h"
#include "backends/http/http_opts.h"
#include "lib/log.h"
#include "lib/unittest.h"

#define GCP_DEFAULT_ENDPOINT "https://secretmanager.googleapis.com"
#define GCP_DEFAULT_METADATA "http://metadata.google.internal"
#define GCP_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define GCP_METADATA_TOKEN_PATH "/computeMetadata/v1/instance/service-accounts/default/token"
#define GCP_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define GCP_ADC_FILE "application_default_credentials.json"
#define GCP_CRED_MAX (64 * 1024)            /* a credentials file, a subject token file */
#define GCP_SECRET_MAX 255                  /* ^[A-Za-z0-9_-]{1,255}$ */
#define GCP_PROJECT_MAX 30                  /* ids: 6 to 30; numbers: up to 20 digits */
#define GCP_LOCATION_MAX 63
#define GCP_VERSION_MAX 20                  /* "latest" or [1-9][0-9]{0,18} */
#define GCP_URL_MAX 1024                    /* a configured or file-given URL */
#define GCP_ID_MAX 320                      /* an identity for messages */
#define GCP_JWT_LIFETIME_S 3600             /* Google's maximum, and google-auth's */
#define GCP_MAX_TTL_S (10LL * 366 * 86400)  /* clamp for lifetimes a server sends */
#define GCP_REFRESH_LEFT_MS (5 * 60 * 1000LL) /* refresh with this much left */
#define GCP_METADATA_CONNECT_MS 2000LL      /* a link-local server answers at once or never */
#define GCP_MSG_MAX 512
/* The secure heap OpenSSL's PEM decoder and the private key's bignums
 * use (CRYPTO_secure_malloc_init): a 4096-bit key needs about 10 KiB. */
#define GCP_SECURE_HEAP_BYTES (64 * 1024)
#define GCP_SECURE_HEAP_MIN 16

/* Where the token comes from: a credentials file of one of three types,
 * or the metadata server. */
enum gcp_source {
    GCP_SERVICE_ACCOUNT,
    GCP_AUTHORIZED_USER,
    GCP_EXTERNAL_ACCOUNT,
    GCP_METADATA,
};
extern const char *const gcp_source_names[];

/* ---- cred.c: a credentials file, one read of it ---- */

struct gcp_cred {
    enum gcp_source type;           /* never GCP_METADATA */
    char *token_uri;                /* service_account, authorized_user (default filled in) */
    char *project_id;               /* service_account's; NULL when absent */
    char *client_email, *private_key_id;        /* service_account */
    char *private_key;              /* service_account: PEM, secret memory */
    char *client_id, *account;      /* authorized_user (account NULL when absent or "") */
    char *client_secret, *refresh_token;        /* authorized_user: secret memory */
    char *audience, *subject_token_type, *token_url;   /* external_account */
    char *source_file;              /* external_account: credential_source.file */
    char *source_field;             /* format json: subject_token_field_name; NULL: text */
    char *impersonation_url;        /* NULL: none */
};
/* Read and check the credentials file at path (at most GCP_CRED_MAX
 * bytes). 0 or an error with "<path>: <json path>: <what>" in err (never
 * a value of the file). *c is filled on success only. */
int gcp_cred_load(const char *path, struct gcp_cred *c, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void gcp_cred_cleanup(struct gcp_cred *c);
/* Who a credential is, for messages (not secret). */
void gcp_cred_identity(const struct gcp_cred *c, char *out, size_t cap);

/* ---- conf.c: the typed config (ops->parse) ---- */

struct gcp_conf {
    struct http_opts http;          /* "endpoint" (https) and the TLS settings,
                                       which every request of the backend uses */
    char *project;                  /* the config's, else the service account's; NULL: none */
    char *location;                 /* NULL: global secrets */
    enum gcp_source source;
    char *cred_path;                /* the credentials file; NULL for the metadata server */
    char *cred_from;                /* where the path came from, for logs */
    char *identity;                 /* who the credential is (not secret) */
    char *metadata_url;             /* no trailing '/' */
};
int gcp_parse(json_t *json, void **conf, char *err, size_t errlen);
void gcp_conf_free(void *conf);

/* ---- name.c: references ---- */

/* One secret version, as a reference names it. */
struct gcp_name {
    char project[GCP_PROJECT_MAX + 1];      /* "" when the reference has none */
    char location[GCP_LOCATION_MAX + 1];    /* "" for a global secret */
    char secret[GCP_SECRET_MAX + 1];
    char version[GCP_VERSION_MAX + 1];      /* "latest" or a number */
};
/* Parse ref into n: the project and location the reference names, else
 * project and location (either may be NULL). 0 or -EINVAL with a message.
 * A reference without a project, when project is NULL, leaves
 * n->project empty (the caller decides whether that is an error). */
int gcp_name_parse(const struct secret_ref *ref, const char *project, const char *location,
                   struct gcp_name *n, char *err, size_t errlen)
    __attribute__((warn_unused_result));
bool gcp_project_ok(const char *s);
bool gcp_location_ok(const char *s);

/* ---- the live instance ---- */

struct gcp_seen {                   /* the version a reference was last served at */
    char *key;                      /* path, "\n", version or "" */
    char version[GCP_VERSION_MAX + 1];
    struct gcp_seen *next;
};

struct gcp {
    /* Immutable after create: */
    char *name;                     /* backend name, for logs */
    struct http_client *sm;         /* endpoint, with every HTTP setting */
    struct http_client *metadata;   /* metadata_url; NULL unless the source */
    struct http_opts aux;           /* the settings for the token services
                                       (no tls_server_name: it names Secret
                                       Manager's server) */
    struct http_engine *engine;     /* borrowed */
    char *project, *location;       /* defaults for references; NULL: none */
    enum gcp_source source;
    char *cred_path;                /* NULL for the metadata server */
    char *metadata_url;

    /* The access token, its generation and lifetime; locks itself. */
    struct token_cache *tokens;

    pthread_mutex_t lock;           /* protects everything below */
    char identity[GCP_ID_MAX];      /* who the current token is for, for messages */
    struct gcp_seen *seen;
};

void gcp_log(struct gcp *g, enum log_level lvl, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* One line of untrusted text (a server's message) for a message: escaped,
 * cut to at most cap-1 bytes ("..." when cut). Returns out. */
const char *gcp_shown(char *out, size_t cap, const char *s, size_t n);
/* A copy of the current identity's description into out. */
void gcp_identity(struct gcp *g, char *out, size_t cap);
/* Google's error body {"error": {"code", "message", "status"}}: the status
 * ("NOT_FOUND"; "" when absent) and the message's first line, escaped. */
void gcp_error_fields(const struct http_response *r, char *status, size_t scap, char *msg,
                      size_t mcap);

/* ---- jwt.c ---- */

/* OpenSSL's secure heap for the private key's decoding (once per process;
 * a no-op when it is already there). Logs when it cannot be had. */
void gcp_jwt_secure_heap(struct gcp *g);
/* The signed jwt-bearer assertion for c (a service account) at time now:
 * header {"alg":"RS256","typ":"JWT","kid"}, claims iss, scope, aud =
 * token_uri, iat, exp = iat + 3600. *out is new, in secret memory. 0 or
 * -EINVAL (an unusable key) / -ENOMEM with err naming the file's key. */
int gcp_jwt_assertion(const struct gcp_cred *c, time_t now, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* ---- token.c ---- */

#define GCP_AUTH_PREFIX "Authorization: Bearer "
/* The token cache's login callback (arg: struct gcp). */
int gcp_login(void *arg, enum token_login_why why, char **tok, struct token_life *life,
              char *err, size_t errlen);
/* When token t is due for replacement: 5 minutes before its end, or at
 * half its life when that is shorter (ms from now; <= 0: due; LLONG_MAX:
 * no expiry known). */
long long gcp_due_in(const struct token_info *t, long long now_ms);
/* A usable "Authorization: Bearer ..." header (new, secret memory) and the
 * token's generation. */
int gcp_token_header(struct gcp *g, char **hdr, unsigned long *gen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Secret Manager refused token gen (401): one fresh token, unless another
 * thread already replaced it. */
int gcp_relogin(struct gcp *g, unsigned long gen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
long long gcp_maintain(void *ctx);

/* ---- sm.c ---- */

/* "/v1/projects/P[/locations/L]/secrets/S/versions/V:access" into out. */
int gcp_access_path(const struct gcp_name *n, char *out, size_t cap)
    __attribute__((warn_unused_result));
/* Access n: the value into out->value, its version number into version
 * (GCP_VERSION_MAX + 1 bytes). 0, -ENOENT (gone) or another error with
 * out->retryable set. */
int gcp_access(struct gcp *g, const struct gcp_name *n, struct fetch_result *out, char *version,
               char *err, size_t errlen) __attribute__((warn_unused_result));

#ifdef UNITTEST
/* cred.c: a credentials file's content (path names it in messages). */
int gcp_cred_parse(const char *path, const char *data, size_t len, struct gcp_cred *c, char *err,
                   size_t errlen);
/* token.c: an OAuth token answer (token endpoint, STS, metadata server):
 * the token (new, secret memory) and its lifetime in seconds. */
int gcp_oauth_answer(const struct http_response *r, char **tok, long long *ttl_s, char *err,
                     size_t errlen);
/* token.c: IAM Credentials' generateAccessToken answer, its expireTime
 * (RFC 3339) read against now. */
int gcp_iam_answer(const struct http_response *r, time_t now, char **tok, long long *ttl_s,
                   char *err, size_t errlen);
/* token.c: an RFC 3339 time ("2021-08-26T00:57:30Z", fraction and offset
 * allowed) as Unix seconds. 0 or -EINVAL. */
int gcp_rfc3339(const char *s, long long *out);
/* token.c: the subject token of an external account's source file content
 * (text: trimmed; json: the string at field). New, secret memory. */
int gcp_subject_token(const struct secbuf *content, const char *field, char **tok, char *err,
                      size_t errlen);
/* sm.c: an AccessSecretVersion answer about n (identity names who asked,
 * for a 403): the value into out->value (its CRC32C checked when the
 * answer carries one) and the version number into version. */
int gcp_access_answer(const struct gcp_name *n, const struct http_response *r,
                      const char *identity, struct fetch_result *out, char *version, char *err,
                      size_t errlen);
#endif

#endif
