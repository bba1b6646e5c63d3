/* ids.c - user and group names to ids (ids.h). */
#include "lib/ids.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Entries larger than this are refused rather than chased. */
#define IDS_BUF_MAX (1u << 20)

static size_t first_size(int which)
{
    long n = sysconf(which);
    return n > 0 ? (size_t)n : 4096;
}

/* glibc reports "no such entry" as 0 with no result, others as ENOENT or
 * ESRCH: all mean not found. */
static int outcome(int e, const void *res)
{
    if (e == 0 || e == ENOENT || e == ESRCH)
        return res ? 0 : -ENOENT;
    return -e;
}

int ids_passwd(const char *name, uid_t uid, struct passwd *pw, char **buf)
{
    size_t size = first_size(_SC_GETPW_R_SIZE_MAX);
    for (;;) {
        struct passwd *res = NULL;
        char *nb = realloc(*buf, size);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        int e = name ? getpwnam_r(name, pw, *buf, size, &res) : getpwuid_r(uid, pw, *buf, size, &res);
        if (e == ERANGE && size < IDS_BUF_MAX) {
            size *= 2;
            continue;
        }
        return outcome(e, res);
    }
}

/* By name, or with name NULL by *uid: *uid, *gid (may be NULL) and, when
 * out is given, the name into out (cap bytes, cut to fit). */
static int user_lookup(const char *name, uid_t *uid, gid_t *gid, char *out, size_t cap)
{
    struct passwd pw;
    char *buf = NULL;
    int rc = ids_passwd(name, name ? 0 : *uid, &pw, &buf);
    if (rc == 0) {
        *uid = pw.pw_uid;
        if (gid)
            *gid = pw.pw_gid;
        if (out)
            snprintf(out, cap, "%s", pw.pw_name);
    }
    free(buf);
    return rc;
}

/* As user_lookup, for groups. */
static int group_lookup(const char *name, gid_t *gid, char *out, size_t cap)
{
    size_t size = first_size(_SC_GETGR_R_SIZE_MAX);
    for (;;) {
        struct group gr, *res = NULL;
        char *buf = malloc(size);
        if (!buf)
            return -ENOMEM;
        int e = name ? getgrnam_r(name, &gr, buf, size, &res)
                     : getgrgid_r(*gid, &gr, buf, size, &res);
        if (e == 0 && res) {
            *gid = gr.gr_gid;
            if (out)
                snprintf(out, cap, "%s", gr.gr_name);
        }
        free(buf);
        if (e == ERANGE && size < IDS_BUF_MAX) {
            size *= 2;
            continue;
        }
        return outcome(e, res);
    }
}

int ids_user(const char *name, uid_t *uid, gid_t *gid)
{
    return user_lookup(name, uid, gid, NULL, 0);
}

int ids_group(const char *name, gid_t *gid)
{
    return group_lookup(name, gid, NULL, 0);
}

int ids_user_name(uid_t uid, char *out, size_t cap)
{
    return user_lookup(NULL, &uid, NULL, out, cap);
}

int ids_group_name(gid_t gid, char *out, size_t cap)
{
    return group_lookup(NULL, &gid, out, cap);
}
