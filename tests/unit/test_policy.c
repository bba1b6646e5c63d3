/* test_policy.c - POSIX read decisions as the kernel would make them. */
#include <check.h>

#include "policy/policy.h"
#include "ck_main.h"

static enum policy_decision dec(uid_t uid, gid_t gid, const gid_t *groups, size_t ng,
                                unsigned mode, uid_t ou, gid_t og)
{
    struct policy_subject s = {.uid = uid, .gid = gid, .pid = 1, .groups = groups, .ngroups = ng};
    struct policy_object o = {.name = "x", .backend = "b", .mode = mode, .uid = ou, .gid = og};
    return policy_check_read(&s, &o);
}

START_TEST(owner_group_other)
{
    ck_assert_int_eq(dec(1000, 1000, NULL, 0, 0400, 1000, 1000), POLICY_ALLOW);
    ck_assert_int_eq(dec(1001, 1001, NULL, 0, 0400, 1000, 1000), POLICY_DENY);
    ck_assert_int_eq(dec(1001, 1000, NULL, 0, 0440, 1000, 1000), POLICY_ALLOW);
    ck_assert_int_eq(dec(1001, 1001, NULL, 0, 0440, 1000, 1000), POLICY_DENY);
    ck_assert_int_eq(dec(1001, 1001, NULL, 0, 0444, 1000, 1000), POLICY_ALLOW);
    ck_assert_int_eq(dec(1000, 1000, NULL, 0, 0000, 1000, 1000), POLICY_DENY);
}
END_TEST

START_TEST(supplementary_groups)
{
    gid_t g[] = {5, 77, 9};
    ck_assert_int_eq(dec(1001, 1001, g, 3, 0040, 1000, 77), POLICY_ALLOW);
    ck_assert_int_eq(dec(1001, 1001, g, 3, 0040, 1000, 78), POLICY_DENY);
}
END_TEST

START_TEST(owner_class_wins)
{
    /* POSIX: the owner gets the owner bits even if group/other would allow. */
    ck_assert_int_eq(dec(1000, 1000, NULL, 0, 0044, 1000, 1000), POLICY_DENY);
    gid_t g[] = {50};
    ck_assert_int_eq(dec(1001, 1001, g, 1, 0004, 1000, 50), POLICY_DENY);
}
END_TEST

START_TEST(root_reads)
{
    ck_assert_int_eq(dec(0, 0, NULL, 0, 0000, 1000, 1000), POLICY_ALLOW);
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, owner_group_other);
    tcase_add_test(tc, supplementary_groups);
    tcase_add_test(tc, owner_class_wins);
    tcase_add_test(tc, root_reads);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(policy_suite)
