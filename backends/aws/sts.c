/* sts.c - STS: AssumeRoleWithWebIdentity (a token file and a role, no
 * signature) and AssumeRole (signed with the source profile's keys). Form
 * bodies in, XML out; the web identity token goes into the form in secret
 * memory. */
#include "backends/aws/aws_i.h"
#include "lib/encode.h"
#include "lib/secfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *sts_url(struct aws_chain *c, const char *region, char *buf, size_t cap)
{
    const char *e = c->sts_endpoint ? c->sts_endpoint : aws_env("AWS_ENDPOINT_URL_STS");
    if (!e)
        e = aws_env("AWS_ENDPOINT_URL");
    if (e)
        return e;
    if (region[0])
        snprintf(buf, cap, "https://sts.%s.amazonaws.com", region);
    else
        snprintf(buf, cap, "https://sts.amazonaws.com");
    return buf;
}

/* An STS answer: the credentials of a 200, or STS's error. */
UNITTEST_STATIC int aws_sts_answer(const struct http_response *r, const char *what,
                                   struct aws_creds *out, char *err, size_t errlen)
{
    int rc = 0;
    if (r->status != 200) {
        char *code = aws_xml_text(&r->body, "Code"), *m = aws_xml_text(&r->body, "Message");
        snprintf(err, errlen, "%s: HTTP %ld: %.64s: %.200s", what, r->status,
                 code ? code : "error", m ? m : "");
        secmem_free(code);
        secmem_free(m);
        rc = r->status == 403 || r->status == 400 ? -EACCES : -EAGAIN;
    } else {
        aws_creds_clear(out);
        out->akid = aws_xml_text(&r->body, "AccessKeyId");
        out->secret = aws_xml_text(&r->body, "SecretAccessKey");
        out->token = aws_xml_text(&r->body, "SessionToken");
        char *exp = aws_xml_text(&r->body, "Expiration");
        out->expiration = aws_parse_time(exp);
        out->obtained = time(NULL);
        secmem_free(exp);
        if (!out->akid || !out->secret || !out->token) {
            snprintf(err, errlen, "%s: no Credentials in the answer", what);
            aws_creds_clear(out);
            rc = -EPROTO;
        }
    }
    return rc;
}

/* One STS call: form in, credentials out. signer NULL: unsigned. */
static int sts_call(struct aws_chain *c, const struct secbuf *form, const struct aws_creds *signer,
                    const char *what, struct aws_creds *out, char *err, size_t errlen)
{
    char buf[256], msg[384] = "", region[64];
    struct http_response r;
    aws_chain_region_now(c, region, sizeof(region));
    int rc = aws_chain_client(c, &c->sts, sts_url(c, region, buf, sizeof(buf)), 0, 0, err,
                              errlen);
    if (rc < 0)
        return rc;
    struct aws_call call = {
        .service = "sts", .region = region[0] ? region : "us-east-1", .creds = signer,
        .content_type = "application/x-www-form-urlencoded; charset=utf-8",
        .body = form->data, .body_len = form->len,
    };
    const struct aws_skew_log who = {.who = "aws STS", .backend = c->backend};
    http_response_init(&r);
    rc = aws_signed_call(c->sts, &call, c->clock, &who, &r, NULL, msg, sizeof(msg));
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", what, msg);
    else
        rc = aws_sts_answer(&r, what, out, err, errlen);
    http_response_cleanup(&r);
    return rc;
}

/* The fields every STS role call has; session defaults to
 * runsecrets-<pid>, as the SDKs default to a generated name. */
static int sts_form(struct secbuf *form, const char *action, const char *role_arn,
                    const char *session)
{
    char sess[64];
    if (!session) {
        snprintf(sess, sizeof(sess), "runsecrets-%ld", (long)getpid());
        session = sess;
    }
    int rc = encode_form_field(form, "Action", action);
    if (rc == 0)
        rc = encode_form_field(form, "Version", "2011-06-15");
    if (rc == 0)
        rc = encode_form_field(form, "RoleArn", role_arn);
    if (rc == 0)
        rc = encode_form_field(form, "RoleSessionName", session);
    return rc;
}

int aws_web_identity(struct aws_chain *c, const char *token_file, const char *role_arn,
                     const char *session, struct aws_creds *out, char *err, size_t errlen)
{
    char *jwt = NULL, msg[300] = "";
    struct secbuf form;
    int rc = secfile_token(token_file, AWS_FILE_MAX, &jwt, msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errlen, "web identity token: %s", msg);
        return rc;
    }
    secbuf_init(&form, 2 * AWS_FILE_MAX);
    rc = sts_form(&form, "AssumeRoleWithWebIdentity", role_arn, session);
    if (rc == 0)
        rc = encode_form_field(&form, "WebIdentityToken", jwt);
    secmem_free(jwt);
    if (rc == 0)
        rc = sts_call(c, &form, NULL, "STS AssumeRoleWithWebIdentity", out, err, errlen);
    secbuf_cleanup(&form);
    return rc;
}

int aws_assume_role(struct aws_chain *c, const struct aws_creds *source, const char *role_arn,
                    const char *session, const char *external_id, const char *duration,
                    struct aws_creds *out, char *err, size_t errlen)
{
    struct secbuf form;
    int rc;
    secbuf_init(&form, 16 * 1024);
    rc = sts_form(&form, "AssumeRole", role_arn, session);
    if (rc == 0 && external_id)
        rc = encode_form_field(&form, "ExternalId", external_id);
    if (rc == 0 && duration)
        rc = encode_form_field(&form, "DurationSeconds", duration);
    if (rc == 0)
        rc = sts_call(c, &form, source, "STS AssumeRole", out, err, errlen);
    secbuf_cleanup(&form);
    return rc;
}
