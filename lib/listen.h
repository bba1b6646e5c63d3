/* listen.h - the text of a listen address ("unix:/abs/path", "127.0.0.1:9464",
 * "[::1]:9464", "none"), parsed without touching the network: the
 * configuration checks it at load (engine/) and the admin endpoint binds it
 * (broker/admin.c). */
#ifndef RS_LISTEN_H
#define RS_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

/* sun_path's size: a path of at most LISTEN_PATH_MAX - 1 bytes. */
#define LISTEN_PATH_MAX 108
#define LISTEN_HOST_MAX 64

enum listen_family { LISTEN_NONE, LISTEN_UNIX, LISTEN_TCP };

struct listen_addr {
    enum listen_family family;
    char path[LISTEN_PATH_MAX];  /* LISTEN_UNIX: absolute socket path */
    char host[LISTEN_HOST_MAX];  /* LISTEN_TCP: numeric IPv4 or IPv6 (no brackets) */
    unsigned port;               /* LISTEN_TCP: 1..65535 (0 with LISTEN_ANY_PORT) */
    bool ipv6;                   /* LISTEN_TCP: host is IPv6 */
    bool loopback;               /* 127.0.0.0/8 or ::1 (and always for LISTEN_UNIX) */
};

/* listen_addr_parse flags. */
/* Port 0 ("any free port"): for a command line, where the bound address is
 * logged; a configuration file names a port clients can find. */
#define LISTEN_ANY_PORT 0x1u

/* Parse "unix:/abs/path", "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464"
 * or "none". Numeric hosts only (no name lookup, so loading a configuration
 * never waits on DNS and "localhost" cannot resolve to something else);
 * IPv6 in brackets. 0, or -EINVAL with err saying what is wrong (no file
 * position: the caller adds it). */
int listen_addr_parse(const char *text, unsigned flags, struct listen_addr *out, char *err,
                      size_t errlen) __attribute__((warn_unused_result));

/* The address as text ("unix:/run/x.sock", "127.0.0.1:9464", "[::1]:9464",
 * "none") into out. */
void listen_addr_format(const struct listen_addr *a, char *out, size_t cap);

#endif
