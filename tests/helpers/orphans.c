/* orphans.c - leave N orphans behind: fork N children, then exit, so PID 1
 * (or the nearest subreaper) inherits every one of them. Each child waits
 * for one byte on stdin and exits: the caller counts them while they live
 * and releases them when it likes (a FIFO on stdin, N bytes written), with
 * no timing to guess. Far cheaper than a shell loop of `sleep &`, which
 * execs a program per child: 1,000 of those took 20 s on a loaded machine.
 *
 *   orphans N < fifo
 *
 * Prints "forked N" and exits 0, or 1 when a fork fails. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: orphans N < fifo\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    long i;
    for (i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            break;
        }
        if (pid == 0) {
            char c;
            _exit(read(STDIN_FILENO, &c, 1) == 1 ? 0 : 1);
        }
    }
    printf("forked %ld\n", i);
    fflush(stdout);
    return i == n ? 0 : 1;
}
