/*
 * sock_writer.c - test helper: connects to a Unix socket (as a traced
 * program does with AMM_OPTIONS=trace=unix:PATH), writes the first BYTES
 * bytes of FILE (all of it without BYTES) and disconnects, so a test can
 * play a writer that dies in the middle of a record.
 * Usage: sock_writer SOCKET FILE [BYTES].  Exit 0, or 1 with a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: sock_writer SOCKET FILE [BYTES]\n");
        return 1;
    }
    long long limit = argc == 4 ? atoll(argv[3]) : -1;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "sock_writer: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(argv[1]) >= sizeof sa.sun_path) {
        fprintf(stderr, "sock_writer: socket path too long\n");
        fclose(f);
        return 1;
    }
    memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "sock_writer: connect %s: %s\n", argv[1], strerror(errno));
        if (fd >= 0) close(fd);
        fclose(f);
        return 1;
    }
    char buf[65536];
    long long sent = 0;
    int rc = 0;
    for (;;) {
        size_t want = sizeof buf;
        if (limit >= 0 && (long long)want > limit - sent) want = (size_t)(limit - sent);
        if (want == 0) break;
        size_t n = fread(buf, 1, want, f);
        if (n == 0) break;
        for (size_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, n - off);
            if (w <= 0) {
                fprintf(stderr, "sock_writer: write: %s\n", strerror(errno));
                rc = 1;
                goto out;
            }
            off += (size_t)w;
        }
        sent += (long long)n;
    }
out:
    close(fd);
    fclose(f);
    return rc;
}
