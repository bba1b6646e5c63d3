/* regs.h - secret bytes left in vector registers. */
#ifndef RS_REGS_H
#define RS_REGS_H

/* Zero the vector registers the ABI lets a call clobber (x86-64: every
 * xmm/ymm/zmm; aarch64: v0-v7, v16-v31). A thread calls it when it is done
 * with plaintext and before it blocks: memcpy, AEAD, AES-GCM and hashing
 * leave the last bytes they moved in those registers, where they stay
 * while the thread sleeps, and a dump carries every thread's registers (a
 * 64-byte value fits whole in one zmm register). A no-op elsewhere. */
void regs_scrub(void);

#endif
