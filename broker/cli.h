/* cli.h - the command line (the command table is in cli.c). */
#ifndef RS_CLI_H
#define RS_CLI_H

struct broker;

/* Parse argv, run the command it names on b (borrowed; zeroed here, left
 * closed). Returns the process exit code: 0 ok, 1 runtime failure, 2 usage
 * or configuration error. */
int cli_main(struct broker *b, int argc, char **argv);

#endif
