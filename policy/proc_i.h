/* proc_i.h - what the unit tests may reach inside proc.c. */
#ifndef RS_POLICY_PROC_I_H
#define RS_POLICY_PROC_I_H

#include <stdbool.h>
#include <sys/types.h>

#ifdef UNITTEST
/* Called by policy_proc_load after every fact was read and before the
 * pidfd's liveness check, so a test can kill the process right there. */
extern void (*policy_proc_test_hook)(pid_t pid);
/* Behave as before Linux 6.9 (no PIDFD_THREAD): a thread's facts are read
 * through its thread group's pidfd, under /proc/TGID/task/TID. */
extern bool policy_proc_test_old_kernel;
#endif

#endif
