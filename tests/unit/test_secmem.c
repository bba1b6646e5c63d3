/* test_secmem.c - bounded secret buffers, the wiping read pool, allocators. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

static void setup(void)
{
    char e[128];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

START_TEST(secbuf_grows_to_max_and_no_further)
{
    struct secbuf b;
    secbuf_init(&b, 1000);
    char chunk[300];
    memset(chunk, 'x', sizeof(chunk));
    ck_assert_int_eq(secbuf_append(&b, chunk, 300), 0);
    ck_assert_int_eq(secbuf_append(&b, chunk, 300), 0);
    ck_assert_int_eq(secbuf_append(&b, chunk, 300), 0);
    ck_assert_uint_eq(b.len, 900);
    ck_assert_int_eq(secbuf_append(&b, chunk, 101), -E2BIG);
    ck_assert_uint_eq(b.len, 900);   /* nothing half-appended */
    ck_assert_int_eq(secbuf_append(&b, chunk, 100), 0);
    ck_assert_uint_eq(b.len, 1000);
    ck_assert_uint_le(b.cap, 1000);
    for (size_t i = 0; i < b.len; i++)
        ck_assert_int_eq(b.data[i], 'x');
    ck_assert_int_eq(secbuf_reserve(&b, 1001), -E2BIG);
    secbuf_cleanup(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    secbuf_cleanup(&b);   /* twice is harmless */
}
END_TEST

START_TEST(secbuf_huge_request_refused)
{
    struct secbuf b;
    secbuf_init(&b, 64);
    ck_assert_int_eq(secbuf_append(&b, "abc", 3), 0);
    ck_assert_int_eq(secbuf_append(&b, "abc", SIZE_MAX), -E2BIG);
    secbuf_cleanup(&b);
}
END_TEST

START_TEST(pool_wipes_on_put)
{
    struct secpool *p = secpool_new(128, 2);
    ck_assert_ptr_nonnull(p);
    unsigned char *a = secpool_get(p, 100);
    ck_assert_ptr_nonnull(a);
    memset(a, 0xAB, 100);
    secpool_put(p, a, 100);
    /* LIFO: the same slot comes back, and it must be clean. */
    unsigned char *b = secpool_get(p, 100);
    ck_assert_ptr_eq(a, b);
    for (int i = 0; i < 100; i++)   /* every byte that held plaintext */
        ck_assert_int_eq(b[i], 0);
    secpool_put(p, b, 100);
    secpool_free(p);
    secpool_free(NULL);
}
END_TEST

START_TEST(pool_exhaustion_and_large_fall_back)
{
    struct secpool *p = secpool_new(64, 2);
    void *a = secpool_get(p, 10), *b = secpool_get(p, 10), *c = secpool_get(p, 10);
    void *big = secpool_get(p, 100000);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(c);   /* third comes from secmem_alloc */
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_ne(a, b);
    memset(big, 1, 100000);
    secpool_put(p, c, 10);
    secpool_put(p, big, 100000);
    secpool_put(p, b, 10);
    secpool_put(p, a, 10);
    /* Both slots are back. */
    void *x = secpool_get(p, 64), *y = secpool_get(p, 64);
    ck_assert((x == a || x == b) && (y == a || y == b) && x != y);
    secpool_put(p, x, 64);
    secpool_put(p, y, 64);
    secpool_free(p);
}
END_TEST

START_TEST(json_allocator_aligned)
{
    for (size_t n = 1; n < 100; n += 7) {
        void *q = secmem_json_malloc(n);
        ck_assert_ptr_nonnull(q);
        ck_assert_uint_eq((uintptr_t)q % _Alignof(max_align_t), 0);
        memset(q, 0x5A, n);
        secmem_json_free(q);
    }
    secmem_json_free(NULL);
}
END_TEST

START_TEST(secmem_alloc_free)
{
    unsigned char *p = secmem_alloc(33);
    ck_assert_ptr_nonnull(p);
    memset(p, 0xFF, 33);
    secmem_wipe(p, 33);
    for (int i = 0; i < 33; i++)
        ck_assert_int_eq(p[i], 0);
    secmem_free(p);
    secmem_free(NULL);
}
END_TEST

static Suite *secmem_suite(void)
{
    Suite *s = suite_create("secmem");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, secbuf_grows_to_max_and_no_further);
    tcase_add_test(tc, secbuf_huge_request_refused);
    tcase_add_test(tc, pool_wipes_on_put);
    tcase_add_test(tc, pool_exhaustion_and_large_fall_back);
    tcase_add_test(tc, json_allocator_aligned);
    tcase_add_test(tc, secmem_alloc_free);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(secmem_suite)
