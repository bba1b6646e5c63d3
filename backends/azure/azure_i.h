/* azure_i.h - what the files of the Azure Key Vault provider share.
 *
 *   conf.c       the config object, parsed once into struct azure_conf
 *                (the environment fallbacks are resolved there)
 *   azure.c      the provider: create, destroy, check_ref, fetch, maintain
 *   challenge.c  Key Vault's 401 challenge: the WWW-Authenticate parser, the
 *                check of its resource against the vault's host, and
 *                learning the token scope once per backend (single flight)
 *   identity.c   how to get a token: client secret, workload identity,
 *                managed identity (IMDS) and the default chain; the token
 *                endpoints' answers
 *   token.c      the access token on backends/auth/token_cache: the header
 *                of a request, the re-login after a 401, refresh ahead of
 *                expiry (the scheduler's maintain)
 *   kv.c         Key Vault requests and answers: the authenticated GET,
 *                the secret JSON with its attributes and version id, Key
 *                Vault's errors
 *
 * Locks, and the order in which they may nest (never the other way):
 *   the token cache's lock -> lock   (a login reads the scope and records
 *                                     the identity it logged in as)
 * lock is never held across a request or a call into the token cache. The
 * challenge request is single-flight without a lock held across it: one
 * caller sends it (challenging), the others wait on `challenged` for its
 * outcome.
 *
 * Messages name secrets, Key Vault's and Entra's error text (escaped, one
 * line) and identities (client ids), never a token, a client secret, a
 * federated token or a value. The answer parsers marked UNITTEST_STATIC
 * take one HTTP response as the service sent it and do no I/O; the unit
 * tests and the fuzz target call them.
 */
#ifndef RS_AZURE_I_H
#define RS_AZURE_I_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include "backends/auth/token_cache.h"
#include "backends/core/provider.h"
#include "backends/http/http.h"
#include "backends/http/http_opts.h"
#include "lib/log.h"
#include "lib/unittest.h"

#define AZURE_API_VERSION "7.4"
#define AZURE_IMDS_API_VERSION "2018-02-01"
#define AZURE_DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define AZURE_DEFAULT_IMDS "http://169.254.169.254/metadata/identity/oauth2/token"
#define AZURE_FILE_MAX (64 * 1024)          /* a client secret or federated token file */
#define AZURE_NAME_MAX 127                  /* ^[0-9a-zA-Z-]{1,127}$ */
#define AZURE_VERSION_LEN 32                /* a version id: 32 hex digits */
#define AZURE_URL_MAX 512                   /* a scope, resource or configured URL */
#define AZURE_ID_MAX 253                    /* a tenant id (may be a domain) or client id */
#define AZURE_MAX_TTL_S (10LL * 366 * 86400) /* clamp for lifetimes a server sends */
#define AZURE_REFRESH_LEFT_MS (5 * 60 * 1000LL) /* refresh with this much left */
#define AZURE_IMDS_CONNECT_MS 2000LL        /* a link-local address answers at once or never */
#define AZURE_MSG_MAX 512
/* The default chain's error names every step with its own error; the three
 * together get AZURE_CHAIN_BUDGET bytes, so that with the chain's text and
 * the callers' prefixes ("secret 'name': cannot get a token: ") the line
 * fits a fetch error (BACKEND_ERR_MAX, 512) whole. */
#define AZURE_CHAIN_PART_MAX 400
#define AZURE_CHAIN_BUDGET 330

enum azure_method {
    AZURE_CLIENT_SECRET,
    AZURE_WORKLOAD_IDENTITY,
    AZURE_MANAGED_IDENTITY,
    AZURE_DEFAULT,
};
extern const char *const azure_method_names[];

/* ---- conf.c: the typed config (ops->parse) ---- */

/* The backend's config, checked and typed; each auth setting is the
 * config's or, when absent, its environment variable's (resolved here). */
struct azure_conf {
    struct http_opts http;          /* "vault_url" (https) and the TLS settings,
                                       which every request of the backend uses */
    char *challenge_host;           /* challenge_resource's host, lower case; NULL: none */
    enum azure_method method;
    char *tenant_id, *client_id;    /* NULL: neither in the config nor the environment */
    char *client_secret_file;       /* NULL: AZURE_CLIENT_SECRET, if secret_env */
    bool secret_env;                /* AZURE_CLIENT_SECRET is set (read at create) */
    char *federated_token_file;     /* NULL: not configured */
    char *authority_host;           /* https URL, no trailing '/' (default filled in) */
    char *imds_endpoint;            /* URL (default filled in) */
};
int azure_parse(json_t *json, void **conf, char *err, size_t errlen);
void azure_conf_free(void *conf);

/* ---- the live instance ---- */

struct azure_seen {                 /* the version a reference was last served at */
    char *key;                      /* path, "\n", version or "" */
    char version[AZURE_VERSION_LEN + 1];
    struct azure_seen *next;
};

struct azure {
    /* Immutable after create: */
    char *name;                     /* backend name, for logs */
    struct http_client *vault;      /* vault_url with every HTTP setting */
    struct http_client *entra;      /* authority_host; NULL when no method needs it */
    struct http_client *imds;       /* imds_endpoint; NULL when no method needs it */
    char *vault_host;               /* the host tokens go to: tls_server_name, else
                                       vault_url's host; lower case */
    char *challenge_host;           /* NULL: none configured */
    char *guess_scope;              /* the scope the challenge will most likely
                                       name (azure_guess_scope); NULL: no guess */
    enum azure_method method;
    char *tenant_id, *client_id, *client_secret_file, *federated_token_file;
    char *authority_host, *imds_endpoint;   /* for messages */
    char *env_secret;               /* AZURE_CLIENT_SECRET, secret memory; NULL: none */

    /* The access token, its generation and lifetime; locks itself. */
    struct token_cache *tokens;
    /* Default chain: the method that worked; -1: none yet. Atomic, not
     * under lock: auth_status reads it without waiting. */
    _Atomic int winner;

    pthread_mutex_t lock;           /* protects everything below */
    pthread_cond_t challenged;      /* with lock: a challenge request ended */
    char *scope;                    /* learnt from the challenge; NULL: not yet */
    bool challenging;               /* one caller is sending the challenge request */
    bool guessing;                  /* a login for guess_scope runs beside it */
    bool guessed;                   /* a guess was tried (only the first round guesses) */
    unsigned long challenge_round;  /* bumped when a challenge request ends */
    int challenge_rc;               /* how the last round ended (0: scope learnt) */
    bool challenge_retryable;
    long long challenge_retry_after_ms;
    char challenge_err[AZURE_MSG_MAX];
    char identity[160];             /* who the current token is for, for messages */
    struct azure_seen *seen;
};

void azure_log(struct azure *a, enum log_level lvl, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* One line of untrusted text (a server's message, a name) for a message:
 * escaped, cut to at most cap-1 bytes ("..." when cut). Returns out. */
const char *azure_shown(char *out, size_t cap, const char *s, size_t n);
/* A copy of the current identity's description into out. */
void azure_identity(struct azure *a, char *out, size_t cap);

/* ---- challenge.c ---- */

/* The host of an http(s) URL, lower case, into *host (new). 0, -EINVAL
 * with a message (no key name) or -ENOMEM. */
int azure_url_host(const char *url, char **host, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The Bearer challenge of a 401 (RFC 7235 auth-params). */
struct azure_challenge {
    char authorization[AZURE_URL_MAX];  /* authorization, else authorization_uri */
    char resource[AZURE_URL_MAX];       /* "" when absent */
    char scope[AZURE_URL_MAX];          /* "" when absent */
    char tenant[AZURE_ID_MAX + 1];      /* the authorization URI's first path segment */
};
/* Whether a token for resource_host may be sent to vault_host: the host
 * itself, a parent domain of it (the Azure SDKs' rule: the vault's host
 * ends with "." + the resource's host; not for IP literals), or the
 * configured challenge_resource's host (allowed, may be NULL). Case-blind. */
bool azure_host_allowed(const char *resource_host, const char *vault_host, const char *allowed);
/* The scope a challenge asks tokens for (its scope, else its resource +
 * "/.default") into scope, after checking that its host is allowed for
 * vault_host (azure_host_allowed). 0, or -EACCES (foreign resource: no
 * token may be sent) / -EPROTO (no usable resource) with err. */
int azure_challenge_scope(const struct azure_challenge *c, const char *vault_host,
                          const char *allowed, char *scope, size_t cap, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The scope Key Vault's challenge will most likely name, into *scope (new;
 * NULL when there is no good guess): the configured challenge_resource's
 * host (allowed, may be NULL), else the parent domain of a vault host of
 * three labels or more ("https://vault.azure.net/.default" for
 * "myvault.vault.azure.net"; sovereign clouds alike). A token for it may be
 * requested before the challenge arrives, and is sent to the vault only if
 * the challenge names the same scope. 0 or -ENOMEM. */
int azure_guess_scope(const char *vault_host, const char *allowed, char **scope)
    __attribute__((warn_unused_result));
/* The token scope for requests to the vault: learnt once per backend from
 * the challenge to an unauthenticated request of path (single flight).
 * *scope is a new copy. On failure out (may be NULL) says whether to retry. */
int azure_scope(struct azure *a, const char *path, char **scope, struct fetch_result *out,
                char *err, size_t errlen) __attribute__((warn_unused_result));
/* A 401 to an authenticated request carried challenge hdr (may be NULL):
 * 0 when a new token should be tried (the challenge is legible and its
 * resource allowed; a new scope is recorded), else the error. */
int azure_rechallenge(struct azure *a, const char *hdr, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The resource a scope names (the scope without "/.default"), into out. */
void azure_scope_resource(const char *scope, char *out, size_t cap);

/* ---- identity.c ---- */

/* The token cache's login callback (arg: struct azure). */
int azure_login(void *arg, enum token_login_why why, char **tok, struct token_life *life,
                char *err, size_t errlen);

/* ---- token.c ---- */

#define AZURE_AUTH_PREFIX "Authorization: Bearer "
/* When token t is due for refresh: 5 minutes before its end, or at half
 * its life when that is shorter (milliseconds from now; <= 0: due;
 * LLONG_MAX: no expiry known). */
long long azure_due_in(const struct token_info *t, long long now_ms);
/* A usable "Authorization: Bearer ..." header (new, secret memory) and the
 * token's generation. */
int azure_token_header(struct azure *a, char **hdr, unsigned long *gen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Key Vault refused token gen (401): one fresh token, unless another
 * thread already replaced it. */
int azure_relogin(struct azure *a, unsigned long gen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
long long azure_maintain(void *ctx);

/* ---- kv.c ---- */

/* "/secrets/<name>[/<version>]?api-version=7.4" for ref into out. */
int azure_secret_path(const struct secret_ref *ref, char *out, size_t cap)
    __attribute__((warn_unused_result));
/* One plain GET of path on the vault, with header hdr (may be NULL). */
int azure_vault_raw(struct azure *a, const char *path, const char *hdr, struct http_response *r,
                    char *err, size_t errlen) __attribute__((warn_unused_result));
/* The authenticated GET of path: the scope from the challenge, a token,
 * and after a 401 one new token and one retry. 0 with the response (any
 * status), or the error (out->retryable set). what names it in messages. */
int azure_vault_get(struct azure *a, const char *what, const char *path, struct http_response *r,
                    struct fetch_result *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Read ref's secret (GET, then azure_secret_answer): the value into
 * out->value, its version id into version (AZURE_VERSION_LEN + 1 bytes).
 * 0, -ENOENT (gone) or another error with out->retryable set. */
int azure_kv_read(struct azure *a, const struct secret_ref *ref, struct fetch_result *out,
                  char *version, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Key Vault's error body {"error": {"code", "message", "innererror":
 * {"code"}}}: code, inner code and the message's first line (escaped),
 * each "" when absent. */
void azure_kv_error_fields(const struct http_response *r, char *code, size_t ccap, char *inner,
                           size_t icap, char *msg, size_t mcap);

#ifdef UNITTEST
/* challenge.c: parse a WWW-Authenticate value; 0 or -EPROTO with err. */
int azure_challenge_parse(const char *hdr, struct azure_challenge *c, char *err, size_t errlen);
/* identity.c: Entra's token endpoint answer: a token (new, secret memory)
 * and its lifetime in seconds, or the error. */
int azure_entra_answer(const struct http_response *r, char **tok, long long *ttl_s, char *err,
                       size_t errlen);
/* identity.c: IMDS's answer (expires_in a string, or expires_on an epoch
 * string read against now); client_id (cap bytes) gets the identity's
 * client id, "" when the answer has none. */
int azure_imds_answer(const struct http_response *r, time_t now, char **tok, long long *ttl_s,
                      char *client_id, size_t cap, char *err, size_t errlen);
/* identity.c: cut the default chain's n (at most 3) step messages so that
 * together they take at most budget bytes: a short one keeps all of it,
 * and what it leaves goes to the longer ones ("..." marks a cut). */
void azure_chain_fit(char (*part)[AZURE_CHAIN_PART_MAX], size_t n, size_t budget);
/* kv.c: a Get Secret answer about ref (identity names who asked, for a
 * 403): the value into out->value and the version id into version
 * (AZURE_VERSION_LEN + 1 bytes). Attributes are read against now: a
 * disabled or expired secret, or one not valid yet, is an error. */
int azure_secret_answer(const struct secret_ref *ref, const struct http_response *r, time_t now,
                        const char *identity, struct fetch_result *out, char *version,
                        char *err, size_t errlen);
#endif

#endif
