/*
 * Portcullis benchmark: compiled HTTP/1.1 POST load generator (single thread, epoll).
 *
 * Why: on a 2-core machine autocannon (Node) took a third of a core to post forwarder uploads,
 * CPU the gateway under test then did not have. This program does the same work for a fraction.
 *
 * Built by bench/lib/httpload.mjs with  cc -O2 -std=c11 -Wall -o .bench-out/native/httpload ...
 *
 *   httpload --port P --path /x?y --bodies FILE [--header "K: V"]... [--conns C]
 *            [--duration-ms T] [--rate R] [--timeout-ms MS] [--host 127.0.0.1]
 *
 * - C keep-alive connections to 127.0.0.1:P; each sends `POST path` with the next body of FILE
 *   (round robin over all connections), Content-Length set, the --header lines added, and waits
 *   for the whole answer (status line, headers, Content-Length body; 204/304 have none) before
 *   sending the next. A `Connection: close` answer or a closed socket reconnects.
 * - --rate R: R requests per second over all connections (0 = as fast as answers come); a
 *   connection sends only when the schedule allows. Latency is measured from the moment the
 *   request is written (as autocannon does), in microseconds, kept per request for percentiles.
 * - FILE: the bodies, each as "<length>[ <path>]\n<bytes>" one after the other; a body with a
 *   path of its own is posted there instead of --path.
 * - After T ms no new request starts; answers in flight are awaited up to --timeout-ms.
 * Output: one JSON line on stdout:
 *   {"sent","ok","non2xx","errors","firstError","bytesSent","wallSec","cpuSec","cpuUserSec",
 *    "latencyUs":{"p50","p90","p99","max"},"status":{"204":n,...}}
 * A hard alarm() bounds the whole run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define MAX_HEADERS 16

enum state { S_CONNECTING, S_WRITING, S_READING, S_WAITING };

struct body { const char *data; size_t len; const char *path; char *head; size_t head_len; };

struct conn {
    int fd;
    int st;
    uint32_t events;
    size_t body;            /* index into bodies */
    size_t off;             /* bytes of head+body written */
    int64_t sent_at;        /* ns */
    char in[HEAD_MAX];
    size_t in_len;
    long want_body;         /* body bytes of the answer still to read, -1 = head not complete */
    int status;
    int close_after;
};

static int ep;
static struct conn *conns;
static int n_conns = 64;
static int port = 0;
static const char *host = "127.0.0.1";
static const char *path = "/";
static const char *headers[MAX_HEADERS];
static int n_headers = 0;
static struct body *bodies;
static size_t n_bodies = 0;
static size_t next_body = 0;
static int64_t duration_ns = 10000000000LL;
static int64_t timeout_ns = 10000000000LL;
static double rate = 0;
static int64_t t_start, deadline;
static uint64_t scheduled = 0; /* requests the rate has allowed so far */
static uint64_t sent = 0, ok = 0, non2xx = 0, errs = 0, bytes_sent = 0;
static uint64_t status_count[600];
static char first_error[160] = "";
static uint32_t *lat_us;
static size_t lat_n = 0, lat_cap = 0;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(const char *what) {
    errs++;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s: %s", what, errno ? strerror(errno) : "protocol");
}

static void set_events(struct conn *c, uint32_t ev) {
    if (c->events == ev) return;
    struct epoll_event e = { .events = ev, .data.ptr = c };
    if (epoll_ctl(ep, c->events ? (ev ? EPOLL_CTL_MOD : EPOLL_CTL_DEL) : EPOLL_CTL_ADD, c->fd, &e) < 0 && ev) fail("epoll_ctl");
    c->events = ev;
}

static void open_conn(struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { fail("socket"); return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    c->events = 0;
    c->st = S_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) { fail("connect"); close(c->fd); c->fd = -1; return; }
    set_events(c, EPOLLOUT);
}

static void reconnect(struct conn *c) {
    if (c->fd >= 0) { set_events(c, 0); close(c->fd); }
    c->fd = -1;
    open_conn(c);
}

/* Starts the next request on c if the clock and the rate allow; else parks it. */
static void next_request(struct conn *c) {
    int64_t t = now_ns();
    if (t >= deadline) { c->st = S_WAITING; set_events(c, 0); return; }
    if (rate > 0) {
        uint64_t allowed = (uint64_t)((double)(t - t_start) / 1e9 * rate) + 1;
        if (scheduled >= allowed) { c->st = S_WAITING; set_events(c, 0); return; }
    }
    scheduled++;
    c->body = next_body++ % n_bodies;
    c->off = 0;
    c->in_len = 0;
    c->want_body = -1;
    c->close_after = 0;
    c->st = S_WRITING;
    c->sent_at = t;
    sent++;
    set_events(c, EPOLLOUT);
}

static void record_latency(int64_t ns) {
    if (lat_n == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
        lat_us = realloc(lat_us, lat_cap * sizeof *lat_us);
        if (!lat_us) { perror("realloc"); exit(1); }
    }
    lat_us[lat_n++] = (uint32_t)(ns / 1000);
}

static void finish_answer(struct conn *c) {
    record_latency(now_ns() - c->sent_at);
    if (c->status >= 0 && c->status < 600) status_count[c->status]++;
    if (c->status >= 200 && c->status < 300) ok++; else non2xx++;
    if (c->close_after) reconnect(c);
    else next_request(c);
}

/* Parses a complete head in c->in; returns bytes of head, 0 if incomplete, -1 if bad. */
static long parse_head(struct conn *c) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return c->in_len >= HEAD_MAX ? -1 : 0;
    long head_len = end - c->in + 4;
    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.", 7) != 0) return -1;
    c->status = atoi(c->in + 9);
    c->want_body = (c->status == 204 || c->status == 304) ? 0 : -2;
    for (char *line = memchr(c->in, '\n', (size_t)head_len); line && line < end; line = memchr(line + 1, '\n', (size_t)(end - line))) {
        char *l = line + 1;
        if (!strncasecmp(l, "content-length:", 15)) c->want_body = strtol(l + 15, NULL, 10);
        else if (!strncasecmp(l, "connection:", 11)) {
            const char *v = l + 11;
            while (*v == ' ') v++;
            if (!strncasecmp(v, "close", 5)) c->close_after = 1;
        } else if (!strncasecmp(l, "transfer-encoding:", 18)) return -1; /* not expected from the gateway */
    }
    if (c->want_body == -2) { c->want_body = 0; c->close_after = 1; } /* no length: body until close; not expected */
    return head_len;
}

static void on_readable(struct conn *c) {
    for (;;) {
        if (c->want_body > 0 && c->in_len == 0) {
            char sink[65536];
            ssize_t n = read(c->fd, sink, (size_t)c->want_body < sizeof sink ? (size_t)c->want_body : sizeof sink);
            if (n > 0) { c->want_body -= n; if (c->want_body == 0) { finish_answer(c); return; } continue; }
            if (n == 0) { errno = 0; fail("closed mid-body"); reconnect(c); return; }
            if (errno == EAGAIN) return;
            fail("read"); reconnect(c); return;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, HEAD_MAX - c->in_len);
        if (n == 0) { errno = 0; fail("closed before the answer"); reconnect(c); return; }
        if (n < 0) { if (errno == EAGAIN) return; fail("read"); reconnect(c); return; }
        c->in_len += (size_t)n;
        long h = parse_head(c);
        if (h < 0) { errno = 0; fail("bad answer head"); reconnect(c); return; }
        if (h == 0) continue;
        size_t extra = c->in_len - (size_t)h;
        if ((long)extra >= c->want_body) { finish_answer(c); return; } /* no pipelining: extra is this body */
        c->want_body -= (long)extra;
        c->in_len = 0;
    }
}

static void on_writable(struct conn *c) {
    if (c->st == S_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { errno = err; fail("connect"); reconnect(c); return; }
        next_request(c);
        if (c->st != S_WRITING) return;
    }
    struct body *b = &bodies[c->body];
    while (c->off < b->head_len + b->len) {
        struct iovec iov[2];
        int k = 0;
        if (c->off < b->head_len) { iov[k].iov_base = b->head + c->off; iov[k++].iov_len = b->head_len - c->off; }
        size_t boff = c->off > b->head_len ? c->off - b->head_len : 0;
        iov[k].iov_base = (char *)b->data + boff; iov[k++].iov_len = b->len - boff;
        ssize_t n = writev(c->fd, iov, k);
        if (n < 0) { if (errno == EAGAIN) return; fail("write"); reconnect(c); return; }
        c->off += (size_t)n;
        bytes_sent += (uint64_t)n;
    }
    c->st = S_READING;
    set_events(c, EPOLLIN);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void load_bodies(const char *file) {
    FILE *f = fopen(file, "rb");
    if (!f) { perror(file); exit(2); }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *all = malloc((size_t)size + 1);
    if (!all || fread(all, 1, (size_t)size, f) != (size_t)size) { perror("read bodies"); exit(2); }
    fclose(f);
    size_t cap = 64;
    bodies = malloc(cap * sizeof *bodies);
    for (char *p = all; p < all + size;) {
        char *nl = memchr(p, '\n', (size_t)(all + size - p));
        if (!nl) break;
        char *after = NULL;
        size_t len = (size_t)strtoull(p, &after, 10);
        const char *own_path = NULL;
        if (after && after < nl && *after == ' ') {
            *nl = '\0';
            own_path = after + 1;
        }
        if (nl + 1 + len > all + size) { fprintf(stderr, "bodies file truncated\n"); exit(2); }
        if (n_bodies == cap) bodies = realloc(bodies, (cap *= 2) * sizeof *bodies);
        bodies[n_bodies].data = nl + 1;
        bodies[n_bodies].len = len;
        bodies[n_bodies].path = own_path;
        n_bodies++;
        p = nl + 1 + len;
    }
    if (n_bodies == 0) { fprintf(stderr, "no bodies in %s\n", file); exit(2); }
    for (size_t i = 0; i < n_bodies; i++) {
        char head[4096];
        int n = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %zu\r\n", bodies[i].path ? bodies[i].path : path, host, port, bodies[i].len);
        for (int h = 0; h < n_headers; h++) n += snprintf(head + n, sizeof head - (size_t)n, "%s\r\n", headers[h]);
        n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
        bodies[i].head = strdup(head);
        bodies[i].head_len = (size_t)n;
    }
}

static void usage(void) {
    fprintf(stderr, "usage: httpload --port P --path PATH --bodies FILE [--header 'K: V']... [--conns C] [--duration-ms T] [--rate R] [--timeout-ms MS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *bodies_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--bodies")) bodies_file = v;
        else if (!strcmp(a, "--header")) { if (n_headers == MAX_HEADERS) usage(); headers[n_headers++] = v; }
        else if (!strcmp(a, "--conns")) n_conns = atoi(v);
        else if (!strcmp(a, "--duration-ms")) duration_ns = atoll(v) * 1000000LL;
        else if (!strcmp(a, "--timeout-ms")) timeout_ns = atoll(v) * 1000000LL;
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else usage();
        i++;
    }
    if (port <= 0 || port > 65535 || !bodies_file || n_conns < 1) usage();
    alarm((unsigned)((duration_ns + timeout_ns) / 1000000000LL) + 30);
    load_bodies(bodies_file);
    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)n_conns, sizeof *conns);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    t_start = now_ns();
    deadline = t_start + duration_ns;
    for (int i = 0; i < n_conns; i++) { conns[i].fd = -1; open_conn(&conns[i]); }
    struct epoll_event evs[256];
    for (;;) {
        int64_t t = now_ns();
        int busy = 0;
        for (int i = 0; i < n_conns; i++) {
            struct conn *c = &conns[i];
            if (c->st == S_WAITING && t < deadline && c->fd >= 0) next_request(c);
            if (c->st == S_WRITING || c->st == S_READING || c->st == S_CONNECTING) busy = 1;
        }
        if (t >= deadline && (!busy || t >= deadline + timeout_ns)) break;
        int wait_ms = rate > 0 ? 1 : 50;
        int n = epoll_wait(ep, evs, 256, wait_ms);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && c->st != S_READING) { errno = 0; fail("socket error"); reconnect(c); continue; }
            if (evs[i].events & EPOLLOUT) on_writable(c);
            else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
        }
    }
    int64_t wall = now_ns() - t_start;
    getrusage(RUSAGE_SELF, &r1);
    double user = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6;
    double sys = (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    qsort(lat_us, lat_n, sizeof *lat_us, cmp_u32);
#define PCT(p) (lat_n ? lat_us[(size_t)((double)(lat_n - 1) * (p))] : 0)
    printf("{\"sent\":%llu,\"ok\":%llu,\"non2xx\":%llu,\"errors\":%llu,\"firstError\":\"%s\",\"bytesSent\":%llu,\"wallSec\":%.3f,\"cpuSec\":%.3f,\"cpuUserSec\":%.3f,"
           "\"latencyUs\":{\"p50\":%u,\"p90\":%u,\"p99\":%u,\"max\":%u},\"status\":{",
           (unsigned long long)sent, (unsigned long long)ok, (unsigned long long)non2xx, (unsigned long long)errs, first_error, (unsigned long long)bytes_sent,
           (double)wall / 1e9, user + sys, user, PCT(0.5), PCT(0.9), PCT(0.99), lat_n ? lat_us[lat_n - 1] : 0);
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (status_count[s]) { printf("%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)status_count[s]); first = 0; }
    printf("}}\n");
    return 0;
}
