/* test_secheap.c - the never-dumped, wiped heap of the libraries, and
 * hidden thread stacks. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rs_config.h"
#include "lib/secheap.h"
#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

/* The VmFlags of the mapping holding addr, from /proc/self/smaps ("" if
 * none). "dd" means MADV_DONTDUMP. */
static void vmflags_of(const void *addr, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    char line[512];
    bool inside = false;
    out[0] = '\0';
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
            inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, cap, "%.200s", line + 8);
            break;
        }
    }
    fclose(f);
}

static bool not_dumped(const void *addr)
{
    char flags[256];
    vmflags_of(addr, flags, sizeof(flags));
    return strstr(flags, " dd") != NULL;
}

START_TEST(small_and_large_blocks_are_never_dumped)
{
    static const size_t sizes[] = {1, 16, 17, 100, 4096, 65536 - 16, 65536, 300000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = secheap_alloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        ck_assert_uint_ge(secheap_usable(p), sizes[i]);
        memset(p, 0xa5, sizes[i]);
        ck_assert_msg(not_dumped(p), "a %zu-byte block is in dumpable memory", sizes[i]);
        ck_assert_msg(not_dumped(p + sizes[i] - 1), "the end of a %zu-byte block", sizes[i]);
        secheap_free(p);
    }
}
END_TEST

START_TEST(large_blocks_go_back_to_the_system)
{
    size_t before = secheap_mapped();
    unsigned char *p = secheap_alloc(300000);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(secheap_mapped(), before + 300000);
    secheap_free(p);
    ck_assert_uint_eq(secheap_mapped(), before);
}
END_TEST

/* A peak (a large config's JSON tree) must not stay mapped and locked:
 * slabs whose blocks are all free go back, but one per class stays. Blocks
 * of 1 KiB: 256 per 256 KiB slab, so 2,000 fill 8 slabs. */
START_TEST(empty_slabs_go_back_to_the_system)
{
    enum { N = 2000, LEN = 1000 };
    static unsigned char *p[N];
    size_t before = secheap_mapped();
    for (size_t i = 0; i < N; i++) {
        p[i] = secheap_alloc(LEN);
        ck_assert_ptr_nonnull(p[i]);
        memset(p[i], 's', LEN);
    }
    /* (The class may have had a slab with room already.) */
    ck_assert_uint_ge(secheap_mapped(), before + (size_t)N * LEN - 256 * 1024);
    /* Every other block first: no slab is empty yet, nothing goes back. */
    size_t peak = secheap_mapped();
    for (size_t i = 0; i < N; i += 2)
        secheap_free(p[i]);
    ck_assert_uint_eq(secheap_mapped(), peak);
    /* Freed blocks are reused before a new slab is mapped. */
    for (size_t i = 0; i < N; i += 2) {
        p[i] = secheap_alloc(LEN);
        ck_assert_ptr_nonnull(p[i]);
    }
    ck_assert_uint_eq(secheap_mapped(), peak);
    for (size_t i = 0; i < N; i++)
        secheap_free(p[i]);
    ck_assert_uint_le(secheap_mapped(), before + 256 * 1024);
    /* The class still works, from the slab it kept. */
    unsigned char *q = secheap_alloc(LEN);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_le(secheap_mapped(), before + 256 * 1024);
    secheap_free(q);
}
END_TEST

START_TEST(free_wipes_the_whole_block)
{
    unsigned char *p = secheap_alloc(200);
    ck_assert_ptr_nonnull(p);
    size_t cap = secheap_usable(p);
    memset(p, 's', cap);
    secheap_free(p);
    /* A small block stays mapped in its class: look at what is left. The
     * first word is the free list's link, the rest must be zero. */
    for (size_t i = sizeof(void *); i < cap; i++)
        ck_assert_msg(p[i] == 0, "byte %zu survived the free", i);
    /* The same class hands the block out again. */
    unsigned char *q = secheap_alloc(200);
    ck_assert_ptr_eq(q, p);
    secheap_free(q);
}
END_TEST

START_TEST(realloc_keeps_content_and_wipes_the_old_block)
{
    unsigned char *p = secheap_realloc(NULL, 40);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "0123456789012345678901234567890123456789", 40);
    ck_assert_ptr_eq(secheap_realloc(p, 20), p);   /* shrinking stays put */
    unsigned char *old = p;
    size_t oldcap = secheap_usable(p);
    p = secheap_realloc(p, 5000);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_ne(p, old);
    ck_assert_int_eq(memcmp(p, "0123456789012345678901234567890123456789", 40), 0);
    for (size_t i = sizeof(void *); i < oldcap; i++)
        ck_assert_int_eq(old[i], 0);
    secheap_free(p);
    secheap_free(NULL);
}
END_TEST

START_TEST(library_allocators_use_it)
{
#if RS_PLAIN_ALLOC
    return;   /* sanitizer builds hand the libraries malloc, so ASan sees them */
#endif
    /* jansson's strings (values, tokens) land in never-dumped memory. */
    json_t *s = json_string("a value that could be a secret");
    ck_assert_ptr_nonnull(s);
    ck_assert(not_dumped(json_string_value(s)));
    json_decref(s);
}
END_TEST

/* A fetch's buffer (struct secbuf) is this heap: never dumped at any size
 * it grows through, wiped when it moves and when it is freed. */
START_TEST(secbuf_bytes_are_never_dumped)
{
#if RS_PLAIN_ALLOC
    return;   /* sanitizer builds: malloc, so ASan sees every block */
#endif
    struct secbuf b;
    unsigned char chunk[1000];
    memset(chunk, 0x5a, sizeof(chunk));
    secbuf_init(&b, 200000);
    size_t outstanding = secmem_outstanding();
    while (b.len + sizeof(chunk) <= b.max) {
        ck_assert_int_eq(secbuf_append(&b, chunk, sizeof(chunk)), 0);
        ck_assert_msg(not_dumped(b.data) && not_dumped(b.data + b.len - 1),
                      "a secbuf of %zu bytes is in dumpable memory", b.len);
    }
    ck_assert_uint_eq(secmem_outstanding(), outstanding + 1);   /* moves free the old block */
    secbuf_cleanup(&b);
    ck_assert_uint_eq(secmem_outstanding(), outstanding);
}
END_TEST

static void *hide_and_report(void *arg)
{
    int local = 42;
    bool *hidden = arg;
    secmem_hide_stack();
    secmem_hide_stack();   /* once per thread; the second is a no-op */
    hidden[0] = not_dumped(&local);
    return NULL;
}

static void *just_report(void *arg)
{
    int local = 42;
    bool *hidden = arg;
    hidden[0] = not_dumped(&local);
    return NULL;
}

START_TEST(hidden_stacks)
{
    pthread_t t;
    bool hidden = false, plain = true;
    pthread_attr_t a;
    /* Fresh stacks (not glibc's cache of an earlier thread's): sizes differ. */
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 1 << 20);
    ck_assert_int_eq(pthread_create(&t, &a, just_report, &plain), 0);
    pthread_join(t, NULL);
    ck_assert_msg(!plain, "a thread's stack is hidden without asking: the check cannot fail");
    pthread_attr_setstacksize(&a, 2 << 20);
    ck_assert_int_eq(pthread_create(&t, &a, hide_and_report, &hidden), 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);
    ck_assert_msg(hidden, "secmem_hide_stack left the stack in core dumps");
    int local = 1;
    ck_assert_msg(not_dumped(&local), "hardening_init did not hide the main thread's stack");
}
END_TEST

static void setup(void)
{
    char e[128];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

static Suite *secheap_suite(void)
{
    Suite *s = suite_create("secheap");
    TCase *tc = tcase_create("secheap");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, small_and_large_blocks_are_never_dumped);
    tcase_add_test(tc, large_blocks_go_back_to_the_system);
    tcase_add_test(tc, empty_slabs_go_back_to_the_system);
    tcase_add_test(tc, free_wipes_the_whole_block);
    tcase_add_test(tc, realloc_keeps_content_and_wipes_the_old_block);
    tcase_add_test(tc, library_allocators_use_it);
    tcase_add_test(tc, secbuf_bytes_are_never_dumped);
    tcase_add_test(tc, hidden_stacks);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(secheap_suite)
