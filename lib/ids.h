/* ids.h - user and group names to ids and back through NSS (getpwnam_r,
 * getgrnam_r, getpwuid_r, getgrgid_r), with a buffer that grows on ERANGE: the one lookup the
 * configuration, the access policy, `check --explain` and `exec --user`
 * share. */
#ifndef RS_IDS_H
#define RS_IDS_H

#include <stddef.h>
#include <sys/types.h>

struct passwd;

/* The whole passwd entry of name (or, with name NULL, of uid) into *pw,
 * its strings in *buf (grown from what *buf held, or new: the caller frees
 * it, whatever the outcome). 0; -ENOENT when there is no such user;
 * another negative errno when the lookup failed. */
int ids_passwd(const char *name, uid_t uid, struct passwd *pw, char **buf)
    __attribute__((warn_unused_result));
/* The user name (or, with name NULL, the uid *uid) in the passwd
 * database: *uid and *gid (its primary group; may be NULL). 0; -ENOENT
 * when there is no such user; another negative errno when the lookup
 * failed. */
int ids_user(const char *name, uid_t *uid, gid_t *gid) __attribute__((warn_unused_result));
/* The group name: *gid. 0, -ENOENT or another negative errno. */
int ids_group(const char *name, gid_t *gid) __attribute__((warn_unused_result));
/* The other way: uid's or gid's name into out (cap bytes, cut to fit).
 * 0, -ENOENT or another negative errno (out then unchanged). */
int ids_user_name(uid_t uid, char *out, size_t cap) __attribute__((warn_unused_result));
int ids_group_name(gid_t gid, char *out, size_t cap) __attribute__((warn_unused_result));

#endif
