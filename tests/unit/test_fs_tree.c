/* test_fs_tree.c - the tree fs.c serves and its inode numbers: numbered in
 * the order names are first seen (root 1), children sorted, lookups by
 * inode and by name, numbers kept by a rebuild from another name list and
 * never given to another name, collisions refused. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/tree.h"
#include "ck_main.h"

static struct fs_inodes inodes;

static void setup(void)
{
    fs_inodes_init(&inodes);
}

static void teardown(void)
{
    fs_inodes_cleanup(&inodes);
}

static struct fs_tree *build(const char *const *names, size_t n)
{
    struct fs_tree *t = NULL;
    ck_assert_int_eq(fs_tree_build(&inodes, names, n, &t), 0);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* The node at path ("" is the root), walking from the root by name. */
static const struct fs_node *walk(const struct fs_tree *t, const char *path)
{
    const struct fs_node *n = fs_tree_node(t, FS_TREE_ROOT_INO);
    while (n && *path) {
        const char *slash = strchr(path, '/');
        size_t len = slash ? (size_t)(slash - path) : strlen(path);
        n = fs_tree_child(t, n, path, len);
        path += len + (slash != NULL);
    }
    return n;
}

static uint64_t ino_of(const struct fs_tree *t, const char *path)
{
    const struct fs_node *n = walk(t, path);
    ck_assert_msg(n != NULL, "%s not in the tree", path);
    ck_assert_ptr_eq(fs_tree_node(t, n->ino), n);
    return n->ino;
}

/* Numbers in the order nodes are first met, as when they were node index
 * + 1: the same inode numbers as before the table existed. */
START_TEST(first_build_numbers_in_config_order)
{
    static const char *const names[] = {"db/password", "api_key", "db/user", "a/b/c"};
    struct fs_tree *t = build(names, 4);
    ck_assert_uint_eq(t->n_nodes, 8);
    ck_assert_uint_eq(ino_of(t, ""), 1);
    ck_assert_uint_eq(ino_of(t, "db"), 2);
    ck_assert_uint_eq(ino_of(t, "db/password"), 3);
    ck_assert_uint_eq(ino_of(t, "api_key"), 4);
    ck_assert_uint_eq(ino_of(t, "db/user"), 5);
    ck_assert_uint_eq(ino_of(t, "a"), 6);
    ck_assert_uint_eq(ino_of(t, "a/b"), 7);
    ck_assert_uint_eq(ino_of(t, "a/b/c"), 8);

    const struct fs_node *root = walk(t, "");
    ck_assert(root->is_dir);
    ck_assert_uint_eq(root->parent, 1);
    ck_assert(walk(t, "a/b")->is_dir);
    ck_assert_uint_eq(walk(t, "a/b")->parent, 6);
    ck_assert_uint_eq(walk(t, "a/b/c")->parent, 7);
    ck_assert(!walk(t, "db/user")->is_dir);
    for (size_t i = 0; i < 4; i++) {
        const struct fs_node *f = walk(t, names[i]);
        ck_assert_uint_eq(f->secret, i);
        ck_assert_ptr_eq(fs_tree_secret(t, i), f);
    }
    fs_tree_free(t);
}
END_TEST

START_TEST(children_sorted_by_bytes)
{
    static const char *const names[] = {"db", "b", "api_key", "a/x", "B", "ab"};
    static const char *const want[] = {"B", "a", "ab", "api_key", "b", "db"};
    struct fs_tree *t = build(names, 6);
    const struct fs_node *root = walk(t, "");
    ck_assert_uint_eq(root->n_children, 6);
    for (size_t i = 0; i < 6; i++) {
        const struct fs_node *c = &t->nodes[root->children[i]];
        ck_assert_uint_eq(c->name_len, strlen(want[i]));
        ck_assert_mem_eq(c->name, want[i], c->name_len);
    }
    fs_tree_free(t);
}
END_TEST

START_TEST(lookups_miss_cleanly)
{
    static const char *const names[] = {"db/password", "dbx"};
    struct fs_tree *t = build(names, 2);
    const struct fs_node *root = walk(t, "");
    ck_assert_ptr_null(fs_tree_child(t, root, "d", 1));
    ck_assert_ptr_null(fs_tree_child(t, root, "dbxy", 4));
    ck_assert_ptr_null(fs_tree_child(t, root, "password", 8));
    ck_assert_ptr_nonnull(fs_tree_child(t, root, "db/", 2));   /* len, not NUL, ends a name */
    ck_assert_ptr_null(fs_tree_node(t, 0));
    ck_assert_ptr_null(fs_tree_node(t, t->n_ino));
    ck_assert_ptr_null(fs_tree_node(t, UINT64_MAX));
    fs_tree_free(t);
}
END_TEST

START_TEST(rebuild_keeps_surviving_numbers)
{
    static const char *const first[] = {"db/password", "api_key", "db/user"};
    static const char *const second[] = {"new/x", "db/user", "api_key"};
    static const char *const third[] = {"db/password", "api_key"};
    struct fs_tree *t1 = build(first, 3);
    uint64_t db = ino_of(t1, "db"), pw = ino_of(t1, "db/password"), api = ino_of(t1, "api_key"),
             user = ino_of(t1, "db/user");
    uint64_t last = inodes.next - 1;

    struct fs_tree *t2 = build(second, 3);
    ck_assert_uint_eq(ino_of(t2, ""), 1);
    ck_assert_uint_eq(ino_of(t2, "db"), db);
    ck_assert_uint_eq(ino_of(t2, "db/user"), user);
    ck_assert_uint_eq(ino_of(t2, "api_key"), api);
    /* New names get numbers never used before; the dropped one is gone. */
    ck_assert_uint_gt(ino_of(t2, "new"), last);
    ck_assert_uint_gt(ino_of(t2, "new/x"), last);
    ck_assert_uint_ne(ino_of(t2, "new"), ino_of(t2, "new/x"));
    ck_assert_ptr_null(fs_tree_node(t2, pw));
    ck_assert_ptr_null(walk(t2, "db/password"));
    /* Secret indexes follow the new list. */
    ck_assert_uint_eq(walk(t2, "db/user")->secret, 1);
    ck_assert_uint_eq(walk(t2, "api_key")->secret, 2);

    /* A name that comes back gets its old number back. */
    struct fs_tree *t3 = build(third, 2);
    ck_assert_uint_eq(ino_of(t3, "db/password"), pw);
    ck_assert_uint_eq(ino_of(t3, "api_key"), api);
    ck_assert_ptr_null(fs_tree_node(t3, user));
    fs_tree_free(t1);
    fs_tree_free(t2);
    fs_tree_free(t3);
}
END_TEST

/* A file and a directory of the same path are different inodes: the kernel
 * must never see a number change type. */
START_TEST(file_then_dir_is_a_new_number)
{
    static const char *const first[] = {"x"};
    static const char *const second[] = {"x/y"};
    struct fs_tree *t1 = build(first, 1);
    struct fs_tree *t2 = build(second, 1);
    ck_assert(!walk(t1, "x")->is_dir);
    ck_assert(walk(t2, "x")->is_dir);
    ck_assert_uint_ne(ino_of(t1, "x"), ino_of(t2, "x"));
    fs_tree_free(t1);
    fs_tree_free(t2);
}
END_TEST

START_TEST(collisions_refused)
{
    static const char *const file_then_dir[] = {"a", "a/b"};
    static const char *const dir_then_file[] = {"a/b", "a"};
    static const char *const twice[] = {"a/b", "a/b"};
    struct fs_tree *t = NULL;
    ck_assert_int_eq(fs_tree_build(&inodes, file_then_dir, 2, &t), -EINVAL);
    ck_assert_int_eq(fs_tree_build(&inodes, dir_then_file, 2, &t), -EINVAL);
    ck_assert_int_eq(fs_tree_build(&inodes, twice, 2, &t), -EINVAL);
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(empty_list_is_the_root)
{
    struct fs_tree *t = build(NULL, 0);
    ck_assert_uint_eq(t->n_nodes, 1);
    ck_assert_uint_eq(ino_of(t, ""), 1);
    ck_assert_uint_eq(walk(t, "")->n_children, 0);
    fs_tree_free(t);
}
END_TEST

/* Enough names to grow the table several times: every number distinct,
 * every node reachable both ways, the same numbers on a rebuild. */
START_TEST(many_names)
{
    enum { N = 3000 };
    char (*buf)[32] = calloc(N, sizeof(*buf));
    const char **names = calloc(N, sizeof(*names));
    ck_assert(buf && names);
    for (size_t i = 0; i < N; i++) {
        snprintf(buf[i], sizeof(buf[i]), "d%zu/s%zu", i % 37, i);
        names[i] = buf[i];
    }
    struct fs_tree *t1 = build(names, N);
    ck_assert_uint_eq(t1->n_nodes, 1 + 37 + N);
    ck_assert_uint_eq(t1->n_ino, 1 + 1 + 37 + N);
    for (uint64_t ino = 1; ino < t1->n_ino; ino++)
        ck_assert_uint_eq(fs_tree_node(t1, ino)->ino, ino);
    /* Reversed order: every number kept. */
    const char **rev = calloc(N, sizeof(*rev));
    ck_assert_ptr_nonnull(rev);
    for (size_t i = 0; i < N; i++)
        rev[i] = names[N - 1 - i];
    struct fs_tree *t2 = build(rev, N);
    ck_assert_uint_eq(t2->n_ino, t1->n_ino);
    for (size_t i = 0; i < N; i++) {
        ck_assert_uint_eq(fs_tree_secret(t2, N - 1 - i)->ino, fs_tree_secret(t1, i)->ino);
        ck_assert_uint_eq(ino_of(t2, names[i]), fs_tree_secret(t1, i)->ino);
    }
    fs_tree_free(t1);
    fs_tree_free(t2);
    free(rev);
    free(names);
    free(buf);
}
END_TEST

static Suite *fs_tree_suite(void)
{
    Suite *s = suite_create("fs_tree");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, first_build_numbers_in_config_order);
    tcase_add_test(tc, children_sorted_by_bytes);
    tcase_add_test(tc, lookups_miss_cleanly);
    tcase_add_test(tc, rebuild_keeps_surviving_numbers);
    tcase_add_test(tc, file_then_dir_is_a_new_number);
    tcase_add_test(tc, collisions_refused);
    tcase_add_test(tc, empty_list_is_the_root);
    tcase_add_test(tc, many_names);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(fs_tree_suite)
