/* aws_i.h - the answer parsers of aws.c and aws_creds.c, for the unit tests
 * and fuzz targets.
 *
 * Each takes what AWS sent (a response, or its parsed JSON) and does no
 * I/O; the backend calls them right after the request. Messages name
 * secret ids and AWS's error text, never a credential or a value. */
#ifndef RS_AWS_I_H
#define RS_AWS_I_H

#include <jansson.h>
#include <stdbool.h>
#include "backends/aws/aws_sign.h"
#include "backends/core/provider.h"
#include "backends/http/http.h"
#include "lib/unittest.h"

#ifdef UNITTEST
/* aws.c */
/* AWS's error type ("ResourceNotFoundException") and message, from a JSON
 * or XML error body. */
void aws_error(const struct http_response *r, char *type, size_t tcap, char *msg, size_t mcap);
/* A Secrets Manager answer to op about ref: its JSON object (*root, new) or
 * the error (status, non-JSON). */
int aws_answer_object(const char *op, const struct secret_ref *ref, const struct http_response *r,
                      json_t **root, struct fetch_result *out, char *err, size_t errlen);
/* SecretString or SecretBinary (decoded) of one GetSecretValue answer or
 * batch entry, into out->value. */
int aws_take_value(const json_t *v, const struct secret_ref *ref, struct fetch_result *out,
                   char *err, size_t errlen);
/* A BatchGetSecretValue answer: served[i] (borrowed from root) is the entry
 * that gave refs[i] its value; rcs[i] and errs[i] say why an entry that
 * names refs[i] could not. */
void aws_batch_take(const json_t *root, const struct secret_ref *const *refs, size_t n,
                    struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX],
                    const json_t **served);
/* A DescribeSecret answer: whether ref no longer names version known. */
int aws_describe_answer(const json_t *root, const struct secret_ref *ref, const char *known,
                        bool *changed, char *err, size_t errlen);

/* aws_creds.c */
/* {"AccessKeyId", ...}: container, instance metadata and credential_process
 * answers. */
int aws_creds_from_json(const struct secbuf *body, const char *what, struct aws_creds *out,
                        char *err, size_t errlen);
/* An STS AssumeRole* answer (XML). */
int aws_sts_answer(const struct http_response *r, const char *what, struct aws_creds *out,
                   char *err, size_t errlen);
/* The role name: the first line of the instance metadata listing. */
int aws_imds_role(const struct secbuf *body, char *role, size_t cap);
#endif

#endif
