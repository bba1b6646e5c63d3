/* test_ids.c - user and group names to ids through NSS (lib/ids.h), against
 * this machine's /etc/passwd and /etc/group (root and its group exist on
 * every Linux system the tests run on). */
#include "lib/ids.h"

#include <check.h>
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include "ck_main.h"

START_TEST(passwd_by_name_and_by_uid)
{
    struct passwd pw;
    char *buf = NULL;
    ck_assert_int_eq(ids_passwd("root", 0, &pw, &buf), 0);
    ck_assert_uint_eq(pw.pw_uid, 0);
    ck_assert_str_eq(pw.pw_name, "root");
    ck_assert_ptr_nonnull(pw.pw_dir);
    ck_assert_ptr_nonnull(buf);
    /* The same buffer again (grown or kept): the strings are in it. */
    ck_assert_int_eq(ids_passwd(NULL, 0, &pw, &buf), 0);
    ck_assert_str_eq(pw.pw_name, "root");
    ck_assert(pw.pw_name >= buf);
    free(buf);
}
END_TEST

START_TEST(unknown_user_is_enoent)
{
    struct passwd pw;
    char *buf = NULL;
    ck_assert_int_eq(ids_passwd("rs-no-such-user-here", 0, &pw, &buf), -ENOENT);
    free(buf);   /* the caller frees it whatever the outcome */
    buf = NULL;
    ck_assert_int_eq(ids_passwd(NULL, 4000000000u, &pw, &buf), -ENOENT);
    free(buf);
    uid_t uid = 0;
    ck_assert_int_eq(ids_user("rs-no-such-user-here", &uid, NULL), -ENOENT);
}
END_TEST

START_TEST(names_and_ids_both_ways)
{
    uid_t uid = 12345;
    gid_t gid = 12345, g2 = 12345;
    char name[64];
    ck_assert_int_eq(ids_user("root", &uid, &gid), 0);
    ck_assert_uint_eq(uid, 0);
    ck_assert_int_eq(ids_user_name(0, name, sizeof(name)), 0);
    ck_assert_str_eq(name, "root");
    ck_assert_int_eq(ids_group_name(gid, name, sizeof(name)), 0);
    ck_assert_int_eq(ids_group(name, &g2), 0);
    ck_assert_uint_eq(g2, gid);
    ck_assert_int_eq(ids_user_name(0, name, 3), 0);   /* cut to fit */
    ck_assert_str_eq(name, "ro");
}
END_TEST

static Suite *ids_suite(void)
{
    Suite *s = suite_create("ids");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, passwd_by_name_and_by_uid);
    tcase_add_test(tc, unknown_user_is_enoent);
    tcase_add_test(tc, names_and_ids_both_ways);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(ids_suite)
