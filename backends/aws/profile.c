/* profile.c - the shared config and credentials files (ini.c) and the
 * credentials a profile names: static keys, role_arn with source_profile
 * (STS AssumeRole) or web_identity_token_file, credential_process
 * (process.c). */
#include "backends/aws/aws_i.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int aws_files_load(struct aws_files *f, char *err, size_t errlen)
{
    const char *home = aws_env("HOME");
    const char *cp = aws_env("AWS_SHARED_CREDENTIALS_FILE");
    const char *fp = aws_env("AWS_CONFIG_FILE");
    int rc;
    memset(f, 0, sizeof(*f));
    snprintf(f->creds_path, sizeof(f->creds_path), "%s%s", cp ? cp : home ? home : "/root",
             cp ? "" : "/.aws/credentials");
    snprintf(f->config_path, sizeof(f->config_path), "%s%s", fp ? fp : home ? home : "/root",
             fp ? "" : "/.aws/config");
    rc = ini_load(f->creds_path, &f->creds, err, errlen);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    rc = ini_load(f->config_path, &f->config, err, errlen);
    if (rc < 0 && rc != -ENOENT) {
        ini_free(f->creds);
        return rc;
    }
    return 0;
}

void aws_files_free(struct aws_files *f)
{
    ini_free(f->creds);
    ini_free(f->config);
}

/* The config file names profiles "profile X", except "default". */
const char *aws_config_get(const struct aws_files *f, const char *profile, const char *key)
{
    char sec[300];
    if (strcmp(profile, "default") == 0) {
        const char *v = ini_get(f->config, "default", key);
        if (v)
            return v;
    }
    snprintf(sec, sizeof(sec), "profile %s", profile);
    return ini_get(f->config, sec, key);
}

bool aws_profile_exists(const struct aws_files *f, const char *profile)
{
    char sec[300];
    snprintf(sec, sizeof(sec), "profile %s", profile);
    return ini_has_section(f->creds, profile) || ini_has_section(f->config, sec) ||
           (strcmp(profile, "default") == 0 && ini_has_section(f->config, "default"));
}

static int static_keys(const struct aws_files *f, const char *profile, struct aws_creds *out)
{
    const struct ini *src = f->creds;
    const char *a = ini_get(f->creds, profile, "aws_access_key_id");
    if (!a) {
        a = aws_config_get(f, profile, "aws_access_key_id");
        src = NULL;
    }
    if (!a)
        return 1;   /* none here */
    const char *s = src ? ini_get(src, profile, "aws_secret_access_key")
                        : aws_config_get(f, profile, "aws_secret_access_key");
    const char *t = src ? ini_get(src, profile, "aws_session_token")
                        : aws_config_get(f, profile, "aws_session_token");
    if (!s)
        return -EINVAL;
    aws_creds_clear(out);
    out->akid = secmem_strndup(a, strlen(a));
    out->secret = secmem_strndup(s, strlen(s));
    out->token = t ? secmem_strndup(t, strlen(t)) : NULL;
    out->obtained = time(NULL);
    return out->akid && out->secret && (!t || out->token) ? 0 : -ENOMEM;
}

/* Credentials of profile, following role_arn/source_profile at most depth
 * deep. 1 when the profile offers none. */
int aws_profile_creds(struct aws_chain *c, const struct aws_files *f, const char *profile,
                      int depth, struct aws_creds *out, char *err, size_t errlen)
{
    const char *role = aws_config_get(f, profile, "role_arn");
    int rc;
    if (role) {
        const char *srcp = aws_config_get(f, profile, "source_profile");
        const char *wif = aws_config_get(f, profile, "web_identity_token_file");
        if (wif)
            return aws_web_identity(c, wif, role, aws_config_get(f, profile, "role_session_name"),
                                    out, err, errlen);
        if (!srcp) {
            snprintf(err, errlen, "profile %s: role_arn needs source_profile (credential_source "
                     "is not supported)", profile);
            return -EINVAL;
        }
        if (depth >= 4) {
            snprintf(err, errlen, "profile %s: source_profile chain too deep", profile);
            return -EINVAL;
        }
        struct aws_creds src = {0};
        /* A profile that is its own source uses its own static keys. */
        rc = strcmp(srcp, profile) == 0
                 ? static_keys(f, srcp, &src)
                 : aws_profile_creds(c, f, srcp, depth + 1, &src, err, errlen);
        if (rc == 1) {
            snprintf(err, errlen, "profile %s: source_profile %s has no credentials", profile, srcp);
            rc = -EINVAL;
        }
        if (rc == 0)
            rc = aws_assume_role(c, &src, role, aws_config_get(f, profile, "role_session_name"),
                                 aws_config_get(f, profile, "external_id"),
                                 aws_config_get(f, profile, "duration_seconds"), out, err,
                                 errlen);
        aws_creds_clear(&src);
        return rc;
    }
    /* botocore's order: credentials-file keys, credential_process, then
     * keys in the config file. */
    const char *proc = aws_config_get(f, profile, "credential_process");
    if (proc && !ini_get(f->creds, profile, "aws_access_key_id"))
        return aws_process_creds(proc, c->process_timeout_ms, out, err, errlen);
    rc = static_keys(f, profile, out);
    if (rc == -EINVAL)
        snprintf(err, errlen, "profile %s: aws_access_key_id without aws_secret_access_key",
                 profile);
    return rc;
}
