/*
 * Portcullis benchmark: syslog load generator over TCP, newline framing (single thread, epoll).
 *
 * Built by the harness (bench/lib/native.mjs) with
 *     cc -O2 -o .bench-out/native/sysload bench/native/sysload.c
 * C11 + libc/POSIX/Linux (epoll) only; talks only to 127.0.0.1.
 *
 *   sysload --port P --lines FILE [--conns N] [--seconds T] [--messages M] [--timeout-ms X] [--sources S]
 *
 * FILE holds the messages, one per line (LF-terminated). Each of the N connections writes them
 * in a loop, starting at a different line so the connections do not send the same bytes at the
 * same time, as fast as the receiver reads (non-blocking writes of up to 256 KiB, epoll for
 * EPOLLOUT). It stops after T seconds or once M messages are written (whichever comes first; M is
 * shared out across the connections), always at a message boundary: a connection whose time is up
 * finishes the line it is in, then shuts down its side and waits for the receiver to close or for
 * --timeout-ms.
 *
 * Protocol with the harness (stdout = JSON lines, stdin = commands):
 *   -> {"type":"ready"}          connections open
 *   <- "go\n"                    start sending (--no-wait: at once)
 *   -> {"type":"result","result":{"messages":n,"bytes":n,"errors":n,"firstError":"..."},
 *       "cpuSec":s,"cpuUserSec":s,"wallSec":s}
 *   -> {"type":"error","message":"..."}   setup failed (exit code 1)
 * wallSec runs from "go" to the last byte written (before the half-closes are waited out).
 * stdin EOF or SIGTERM ends the process; alarm() bounds the whole run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WRITE_MAX (256 * 1024)
#define STDIN_TAG UINT64_MAX

struct conn {
    int fd;
    int done;          /* 1 = all written, half-closed; 2 = closed */
    size_t off;        /* byte offset in the cyclic buffer */
    uint64_t quota;    /* messages this connection may still start (UINT64_MAX = no limit) */
    uint64_t messages; /* whole messages written */
    uint64_t bytes;
    int stopping;      /* time is up: finish the current line, then stop */
};

static char *buf;       /* the file's bytes, LF-terminated lines */
static size_t buf_len;
static size_t *starts;  /* byte offset of each line */
static size_t n_lines;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(const char *msg) {
    printf("{\"type\":\"error\",\"message\":\"%s (%s)\"}\n", msg, strerror(errno));
    fflush(stdout);
    exit(1);
}

static void load_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail("cannot open --lines file");
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0) fail("empty --lines file");
    buf_len = (size_t)st.st_size;
    buf = malloc(buf_len);
    if (!buf || fread(buf, 1, buf_len, f) != buf_len) fail("cannot read --lines file");
    fclose(f);
    if (buf[buf_len - 1] != '\n') {
        errno = EINVAL;
        fail("--lines file must end with LF");
    }
    for (size_t i = 0; i < buf_len; i++) n_lines += buf[i] == '\n';
    starts = malloc(n_lines * sizeof *starts);
    if (!starts) fail("out of memory");
    size_t k = 0, s = 0;
    for (size_t i = 0; i < buf_len; i++) {
        if (buf[i] == '\n') {
            starts[k++] = s;
            s = i + 1;
        }
    }
}

/* Newlines in buf[from, to) (to <= buf_len). */
static uint64_t count_lf(size_t from, size_t to) {
    uint64_t n = 0;
    const char *p = buf + from, *end = buf + to;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

int main(int argc, char **argv) {
    int port = 0, conns = 8, no_wait = 0, sources = 0;
    double seconds = 10;
    uint64_t max_messages = 0;
    int64_t timeout_ns = 10000LL * 1000000;
    const char *lines = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-wait")) { no_wait = 1; continue; }
        if (!v) { errno = EINVAL; fail("option without a value"); }
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--conns")) conns = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--messages")) max_messages = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--timeout-ms")) timeout_ns = atoll(v) * 1000000LL;
        else if (!strcmp(a, "--lines")) lines = v;
        else if (!strcmp(a, "--sources")) sources = atoi(v);
        else { errno = EINVAL; fail("unknown option"); }
        i++;
    }
    if (port <= 0 || conns <= 0 || !lines) { errno = EINVAL; fail("--port, --conns and --lines are required"); }
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)(seconds + timeout_ns / 1e9 + 120)); /* hard bound on the whole run */
    load_lines(lines);

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    int ep = epoll_create1(0);
    if (ep < 0) fail("epoll_create1");
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    for (int i = 0; i < conns; i++) {
        struct conn *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0) fail("socket");
        if (sources > 1) { /* connection i from 127.0.0.(10 + i % sources): appliances the gateway routes apart */
            struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = 0};
            char ip[32];
            snprintf(ip, sizeof ip, "127.0.0.%d", 10 + i % sources);
            inet_pton(AF_INET, ip, &from.sin_addr);
            if (bind(c->fd, (struct sockaddr *)&from, sizeof from) != 0) fail("bind");
        }
        if (connect(c->fd, (struct sockaddr *)&to, sizeof to) != 0) fail("connect");
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->off = starts[((size_t)i * n_lines) / (size_t)conns];
        c->quota = max_messages ? max_messages / (uint64_t)conns + ((uint64_t)i < max_messages % (uint64_t)conns) : UINT64_MAX;
    }
    printf("{\"type\":\"ready\"}\n");
    fflush(stdout);
    struct epoll_event sev = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
    if (!no_wait) {
        char line[64];
        if (!fgets(line, sizeof line, stdin) || strncmp(line, "go", 2) != 0) return 0;
    }

    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    int64_t t0 = now_ns();
    int64_t deadline = t0 + (int64_t)(seconds * 1e9);
    int64_t t_last_write = t0;
    uint64_t errors = 0;
    char first_error[128] = "";
    int active = conns;
    for (int i = 0; i < conns; i++) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    int64_t close_deadline = 0;
    struct epoll_event evs[256];
    while (active > 0) {
        int64_t t = now_ns();
        if (t >= deadline) {
            for (int i = 0; i < conns; i++) cs[i].stopping = 1;
            if (!close_deadline) close_deadline = t + timeout_ns;
        }
        if (close_deadline && t >= close_deadline) break;
        int n = epoll_wait(ep, evs, 256, 50);
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u64 == STDIN_TAG) {
                char tmp[256];
                if (read(0, tmp, sizeof tmp) <= 0) exit(0); /* the harness is gone */
                continue;
            }
            struct conn *c = &cs[evs[k].data.u64];
            if (c->done == 1) {
                /* Half-closed: wait for the receiver's EOF (it has read everything). */
                char tmp[4096];
                ssize_t r = read(c->fd, tmp, sizeof tmp);
                if (r > 0 || (r < 0 && errno == EAGAIN)) continue;
                close(c->fd);
                c->done = 2;
                active--;
                continue;
            }
            if (c->done) continue;
            for (;;) {
                /* How far this write may go: the end of the buffer, WRITE_MAX, and, when stopping or at
                 * the quota, the end of the current line. */
                size_t end = buf_len;
                if (end - c->off > WRITE_MAX) end = c->off + WRITE_MAX;
                int at_boundary = c->off == 0 || buf[c->off - 1] == '\n';
                if (c->stopping || c->quota == 0) {
                    if (at_boundary) {
                        shutdown(c->fd, SHUT_WR);
                        c->done = 1;
                        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = evs[k].data.u64};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                        break;
                    }
                    const char *lf = memchr(buf + c->off, '\n', buf_len - c->off);
                    end = (size_t)(lf - buf) + 1;
                } else if (c->quota != UINT64_MAX) {
                    /* Do not start more lines than the quota: cut after the quota-th LF. */
                    uint64_t left = c->quota;
                    const char *p = buf + c->off;
                    while (left > 0 && p < buf + end) {
                        const char *lf = memchr(p, '\n', (size_t)(buf + end - p));
                        if (!lf) break;
                        p = lf + 1;
                        left--;
                    }
                    if (left == 0) end = (size_t)(p - buf);
                }
                ssize_t w = write(c->fd, buf + c->off, end - c->off);
                if (w < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                    errors++;
                    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", strerror(errno));
                    close(c->fd);
                    c->done = 2;
                    active--;
                    break;
                }
                uint64_t m = count_lf(c->off, c->off + (size_t)w);
                c->messages += m;
                if (c->quota != UINT64_MAX) c->quota -= m;
                c->bytes += (uint64_t)w;
                c->off += (size_t)w;
                if (c->off == buf_len) c->off = 0;
                t_last_write = now_ns();
                if (now_ns() >= deadline) c->stopping = 1;
            }
        }
    }
    int64_t t1 = t_last_write;
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    uint64_t messages = 0, bytes = 0;
    for (int i = 0; i < conns; i++) {
        messages += cs[i].messages;
        bytes += cs[i].bytes;
        if (cs[i].done != 2) close(cs[i].fd);
    }
    double usr = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    double sys = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("{\"type\":\"result\",\"result\":{\"messages\":%llu,\"bytes\":%llu,\"errors\":%llu,\"firstError\":\"%s\",\"unclosed\":%d},"
           "\"cpuSec\":%.3f,\"cpuUserSec\":%.3f,\"wallSec\":%.3f}\n",
           (unsigned long long)messages, (unsigned long long)bytes, (unsigned long long)errors, first_error, active, usr + sys, usr,
           (double)(t1 - t0) / 1e9);
    fflush(stdout);
    return 0;
}
