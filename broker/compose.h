/* compose.h - `runsecrets compose`: a Docker Compose provider service
 * (docker/compose docs/extension.md, docs/compose.md).
 *
 * Compose runs, for a service with `provider: {type: runsecrets, options}`:
 *
 *   runsecrets compose --project-name=NAME up|down|stop [--OPTION=VALUE...] SERVICE
 *   runsecrets compose metadata
 *
 * and reads stdout as JSON lines {"type": "info"|"error"|"setenv"|
 * "rawsetenv"|"debug", "message": ...} until EOF, then the exit status.
 * `up` starts (or finds) one broker per project, a `runsecrets mount` daemon
 * at <run-dir>/<project>, and waits until it is ready (its NOTIFY_SOCKET
 * READY=1: every required secret served); `down` stops it and unmounts;
 * `stop` stops it and keeps its log; `metadata` prints the options.
 */
#ifndef RS_COMPOSE_H
#define RS_COMPOSE_H

/* Run `runsecrets compose` with argv[0] = "compose". Everything it says
 * goes to stdout as the protocol's JSON lines (never a secret value).
 * Returns the exit code: 0, 1 (runtime: the broker did not start or
 * stop), 2 (usage or configuration). */
int compose_main(int argc, char **argv) __attribute__((warn_unused_result));

#ifdef UNITTEST
#include <stddef.h>
int compose_project_check(const char *name, char *err, size_t errlen);
#endif

#endif
