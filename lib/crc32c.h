/* crc32c.h - CRC-32C (Castagnoli), the checksum Google's Secret Manager
 * sends with each payload (payload.dataCrc32c).
 *
 * Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF
 * (RFC 3720 appendix B.4, the iSCSI CRC): crc32c("123456789") is
 * 0xE3069283 = 3808858755. Pure: no state, no allocation.
 */
#ifndef RS_CRC32C_H
#define RS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of n bytes at p, continuing from crc (0 to start): a
 * message split in parts gives the same result part after part. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

#endif
