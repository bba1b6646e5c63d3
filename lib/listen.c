/* listen.c - parse a listen address (listen.h). */
#include "lib/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return -EINVAL;
}

static int parse_unix(const char *path, struct listen_addr *out, char *err, size_t errlen)
{
    if (path[0] != '/')
        return fail(err, errlen, "a unix socket needs an absolute path (unix:/run/x.sock)");
    if (strlen(path) >= sizeof(out->path))
        return fail(err, errlen, "socket path too long (at most 107 bytes)");
    if (path[strlen(path) - 1] == '/')
        return fail(err, errlen, "socket path names a folder");
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(err, errlen, "control character in the socket path");
    out->family = LISTEN_UNIX;
    memcpy(out->path, path, strlen(path) + 1);
    out->loopback = true;
    return 0;
}

/* "1".."65535" (or "0" with LISTEN_ANY_PORT), digits only. */
static int parse_port(const char *s, unsigned flags, unsigned *port, char *err, size_t errlen)
{
    unsigned long v = 0;
    if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5)
        return fail(err, errlen, "expected a port number 1-65535 after the last ':'");
    v = strtoul(s, NULL, 10);
    if (v > 65535 || (v == 0 && !(flags & LISTEN_ANY_PORT)))
        return fail(err, errlen, "port out of range (1-65535)");
    *port = (unsigned)v;
    return 0;
}

static int parse_tcp(const char *text, unsigned flags, struct listen_addr *out, char *err,
                     size_t errlen)
{
    char host[LISTEN_HOST_MAX];
    const char *port;
    size_t hl;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return fail(err, errlen, "expected [IPv6]:PORT");
        hl = (size_t)(close - text - 1);
        if (hl == 0 || hl >= sizeof(host))
            return fail(err, errlen, "expected an IPv6 address between the brackets");
        memcpy(host, text + 1, hl);
        host[hl] = '\0';
        port = close + 2;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return fail(err, errlen, "not a numeric IPv6 address between the brackets");
        out->ipv6 = true;
        out->loopback = IN6_IS_ADDR_LOOPBACK(&a6) ||
                        (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon)
            return fail(err, errlen, "expected unix:/path, HOST:PORT, [IPv6]:PORT or none");
        if (memchr(text, ':', (size_t)(colon - text)))
            return fail(err, errlen, "an IPv6 address goes in brackets: [::1]:9464");
        hl = (size_t)(colon - text);
        if (hl == 0 || hl >= sizeof(host))
            return fail(err, errlen, "expected a numeric IPv4 address before the ':'");
        memcpy(host, text, hl);
        host[hl] = '\0';
        port = colon + 1;
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) != 1)
            return fail(err, errlen, "expected a numeric IP address (host names are not "
                        "looked up)");
        out->ipv6 = false;
        out->loopback = (ntohl(a4.s_addr) >> 24) == 127;
    }
    int rc = parse_port(port, flags, &out->port, err, errlen);
    if (rc < 0)
        return rc;
    out->family = LISTEN_TCP;
    memcpy(out->host, host, strlen(host) + 1);
    return 0;
}

int listen_addr_parse(const char *text, unsigned flags, struct listen_addr *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!text || text[0] == '\0')
        return fail(err, errlen, "empty address");
    if (strcmp(text, "none") == 0)
        return 0;
    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(text + 5, out, err, errlen);
    int rc = parse_tcp(text, flags, out, err, errlen);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

void listen_addr_format(const struct listen_addr *a, char *out, size_t cap)
{
    switch (a->family) {
    case LISTEN_UNIX:
        snprintf(out, cap, "unix:%s", a->path);
        break;
    case LISTEN_TCP:
        snprintf(out, cap, a->ipv6 ? "[%s]:%u" : "%s:%u", a->host, a->port);
        break;
    default:
        snprintf(out, cap, "none");
    }
}
