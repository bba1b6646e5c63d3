/* unittest.h - file-local functions the unit tests and fuzz targets call
 * (curl's UNITTEST).
 *
 * A function marked UNITTEST_STATIC is static in the product. Code built
 * with -DUNITTEST (the test binaries, and the library copies they link:
 * backends_unit_lib) gives it external linkage, and the module's _i.h
 * declares it under #ifdef UNITTEST. Nothing else may call it. */
#ifndef RS_UNITTEST_H
#define RS_UNITTEST_H

#ifdef UNITTEST
#define UNITTEST_STATIC
#else
#define UNITTEST_STATIC static
#endif

#endif
