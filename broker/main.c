/* main.c - runsecrets entry point. */
#include "broker/broker.h"
#include "broker/cli.h"

#include <string.h>

int main(int argc, char **argv)
{
    /* All daemon state lives here, owned by main (ARCHITECTURE.md,
     * "Process-wide state": no other mutable globals but the log sink and
     * the allocator hooks). */
    struct broker broker;
    memset(&broker, 0, sizeof(broker));
    return cli_main(&broker, argc, argv);
}
