/* main.c - runsecrets entry point. */
#include "broker/broker.h"

#include <string.h>

int main(int argc, char **argv)
{
    /* All daemon state lives here, owned by main (STYLE: no mutable globals). */
    struct broker broker;
    memset(&broker, 0, sizeof(broker));
    return cli_main(&broker, argc, argv);
}
