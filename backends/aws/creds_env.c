/* creds_env.c - credentials from the environment: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and, for temporary ones, AWS_SESSION_TOKEN. */
#include "backends/aws/aws_i.h"

#include <errno.h>
#include <string.h>
#include <time.h>

int aws_env_creds(struct aws_creds *out)
{
    const char *akid = aws_env("AWS_ACCESS_KEY_ID"), *secret = aws_env("AWS_SECRET_ACCESS_KEY");
    const char *tok = aws_env("AWS_SESSION_TOKEN");
    if (!akid || !secret)
        return 1;
    aws_creds_clear(out);
    out->akid = secmem_strndup(akid, strlen(akid));
    out->secret = secmem_strndup(secret, strlen(secret));
    out->token = tok ? secmem_strndup(tok, strlen(tok)) : NULL;
    out->obtained = time(NULL);
    return out->akid && out->secret && (!tok || out->token) ? 0 : -ENOMEM;
}
