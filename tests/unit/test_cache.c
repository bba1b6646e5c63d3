/* test_cache.c - sealing, opening, tamper detection, change detection. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "engine/cache.h"
#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

static struct cache *c;

static void setup(void)
{
    char e[128];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    c = cache_new();
    ck_assert_ptr_nonnull(c);
}

static void teardown(void)
{
    cache_free(c);
    c = NULL;
}

static struct cache_value *seal(struct cache *cc, const char *ad, const char *pt, size_t len)
{
    struct cache_value *v = NULL;
    ck_assert_int_eq(cache_seal(cc, ad, pt, len, &v), 0);
    ck_assert_ptr_nonnull(v);
    return v;
}

START_TEST(roundtrip)
{
    const char pt[] = "correct horse battery staple";
    struct cache_value *v = seal(c, "db", pt, sizeof(pt) - 1);
    ck_assert_uint_eq(cache_value_len(v), sizeof(pt) - 1);
    unsigned char *out = secmem_alloc(cache_value_len(v));
    ck_assert_int_eq(cache_unseal(c, "db", v, out), 0);
    ck_assert_mem_eq(out, pt, sizeof(pt) - 1);
    secmem_free(out);
    cache_value_unref(v);
}
END_TEST

START_TEST(ciphertext_hides_plaintext)
{
    const char pt[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    struct cache_value *v = seal(c, "x", pt, sizeof(pt) - 1);
    size_t n;
    const unsigned char *ct = cache_value_sealed(v, &n);
    ck_assert_uint_eq(n, sizeof(pt) - 1 + CACHE_MACBYTES);
    ck_assert_ptr_null(memmem(ct, n, "AAAA", 4));
    cache_value_unref(v);
}
END_TEST

START_TEST(bound_to_name)
{
    struct cache_value *v = seal(c, "db_password", "hunter2", 7);
    unsigned char out[7];
    ck_assert_int_eq(cache_unseal(c, "api_key", v, out), -EBADMSG);
    cache_value_unref(v);
}
END_TEST

START_TEST(tamper_detected)
{
    struct cache_value *v = seal(c, "db", "hunter2", 7);
    size_t n;
    unsigned char *ct = (unsigned char *)(uintptr_t)cache_value_sealed(v, &n);
    unsigned char out[7];
    for (size_t i = 0; i < n; i++) {
        ct[i] ^= 0x01;
        ck_assert_int_eq(cache_unseal(c, "db", v, out), -EBADMSG);
        ct[i] ^= 0x01;
    }
    ck_assert_int_eq(cache_unseal(c, "db", v, out), 0);
    cache_value_unref(v);
}
END_TEST

START_TEST(other_process_key_fails)
{
    struct cache *other = cache_new();
    struct cache_value *v = seal(c, "db", "hunter2", 7);
    unsigned char out[7];
    ck_assert_int_eq(cache_unseal(other, "db", v, out), -EBADMSG);
    cache_value_unref(v);
    cache_free(other);
}
END_TEST

START_TEST(fresh_nonce_and_equality)
{
    struct cache_value *a = seal(c, "db", "same", 4);
    struct cache_value *b = seal(c, "db", "same", 4);
    struct cache_value *d = seal(c, "db", "diff", 4);
    struct cache_value *e = seal(c, "db", "same!", 5);
    size_t na, nb;
    const unsigned char *ca = cache_value_sealed(a, &na), *cb = cache_value_sealed(b, &nb);
    ck_assert(memcmp(ca, cb, na) != 0);   /* same plaintext, different ciphertext */
    ck_assert(cache_value_equal(a, b));
    ck_assert(!cache_value_equal(a, d));
    ck_assert(!cache_value_equal(a, e));
    cache_value_unref(a);
    cache_value_unref(b);
    cache_value_unref(d);
    cache_value_unref(e);
}
END_TEST

START_TEST(refcount_outlives_owner)
{
    struct cache_value *v = seal(c, "db", "v1", 2);
    struct cache_value *snap = cache_value_ref(v);
    cache_value_unref(v);          /* the store dropped it (rotation) */
    unsigned char out[2];
    ck_assert_int_eq(cache_unseal(c, "db", snap, out), 0);
    ck_assert_mem_eq(out, "v1", 2);
    cache_value_unref(snap);
    cache_value_unref(NULL);
}
END_TEST

START_TEST(empty_and_large)
{
    struct cache_value *v = seal(c, "e", "", 0);
    unsigned char one[1];
    ck_assert_int_eq(cache_unseal(c, "e", v, one), 0);
    cache_value_unref(v);

    size_t big = 1024 * 1024;
    unsigned char *pt = secmem_alloc(big), *out = secmem_alloc(big);
    for (size_t i = 0; i < big; i++)
        pt[i] = (unsigned char)(i * 131 + 7);
    ck_assert_int_eq(cache_seal(c, "big", pt, big, &v), 0);
    ck_assert_int_eq(cache_unseal(c, "big", v, out), 0);
    ck_assert_mem_eq(out, pt, big);
    cache_value_unref(v);
    secmem_free(pt);
    secmem_free(out);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, roundtrip);
    tcase_add_test(tc, ciphertext_hides_plaintext);
    tcase_add_test(tc, bound_to_name);
    tcase_add_test(tc, tamper_detected);
    tcase_add_test(tc, other_process_key_fails);
    tcase_add_test(tc, fresh_nonce_and_equality);
    tcase_add_test(tc, refcount_outlives_owner);
    tcase_add_test(tc, empty_and_large);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(cache_suite)
