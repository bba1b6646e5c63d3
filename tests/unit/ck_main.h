/* ck_main.h - the main() every unit test binary shares. */
#ifndef RS_CK_MAIN_H
#define RS_CK_MAIN_H

#include <check.h>
#include <stdlib.h>

#define CK_MAIN(suite_fn)                                  \
    int main(void)                                         \
    {                                                      \
        SRunner *sr = srunner_create(suite_fn());          \
        srunner_run_all(sr, CK_NORMAL);                    \
        int failed = srunner_ntests_failed(sr);            \
        srunner_free(sr);                                  \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;       \
    }

#endif
