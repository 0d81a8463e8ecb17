/*
 * Portcullis benchmark: native upstream servers (single thread, epoll).
 *
 * Built by the harness (bench/lib/native.mjs) with
 *     cc -O2 -o .bench-out/native/upstream bench/native/upstream.c
 * Replaces the echo and sink servers of bench/lib/upstream.mjs for the TCP
 * cases (the fleet and HTTP servers stay in Node). Both listen on
 * 127.0.0.1:<ephemeral>, backlog 4096, TCP_NODELAY on every accepted socket.
 *
 *   echo : TCP echo (what is read is written back; reading pauses while a
 *          write is pending, i.e. backpressure like socket.pipe(socket))
 *   sink : TCP discard; counts the bytes received
 *
 * Protocol with the harness (stdout = JSON lines, stdin = commands):
 *   -> {"type":"ready","ports":{"echo":E,"sink":S},"pid":P}
 *   <- "<id> sinkBytes|cpu|conns|newEcho\n"   (newEcho: one more echo listener, value = its port)
 *   -> {"type":"rpc","id":<id>,"value":...}
 * stdin EOF (the harness is gone) exits; so does SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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
#include <unistd.h>

enum kind { K_NONE, K_ECHO_LISTEN, K_SINK_LISTEN, K_ECHO, K_SINK, K_STDIN };

struct fdinfo {
    unsigned char kind;
    char *pend;          /* echo: bytes read but not yet written back */
    size_t pend_len, pend_off;
};

static int ep;
static struct fdinfo *fds;
static size_t nfds;
static unsigned long long sink_bytes = 0;
static long conns_echo = 0, conns_sink = 0;
static char buf[262144];

static struct fdinfo *info(int fd) {
    if ((size_t)fd >= nfds) {
        size_t n = nfds ? nfds : 1024;
        while (n <= (size_t)fd) n *= 2;
        fds = realloc(fds, n * sizeof *fds);
        memset(fds + nfds, 0, (n - nfds) * sizeof *fds);
        nfds = n;
    }
    return &fds[fd];
}

static void ctl(int op, int fd, uint32_t ev) {
    struct epoll_event e = { .events = ev, .data.fd = fd };
    epoll_ctl(ep, op, fd, &e);
}

static int listen_on(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) { perror("bind/listen"); exit(2); }
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void drop(int fd) {
    struct fdinfo *f = info(fd);
    if (f->kind == K_ECHO) conns_echo--;
    else if (f->kind == K_SINK) conns_sink--;
    free(f->pend);
    f->pend = NULL;
    f->pend_len = f->pend_off = 0;
    f->kind = K_NONE;
    close(fd);
}

static void accept_all(int lfd, unsigned char kind) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or EMFILE: retried on the next event */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct fdinfo *f = info(fd);
        f->kind = kind;
        f->pend = NULL;
        f->pend_len = f->pend_off = 0;
        if (kind == K_ECHO) conns_echo++; else conns_sink++;
        ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP);
    }
}

/* echo: write pending bytes; 0 = all written, 1 = still pending, -1 = error */
static int echo_flush(int fd, struct fdinfo *f) {
    while (f->pend_off < f->pend_len) {
        ssize_t n = send(fd, f->pend + f->pend_off, f->pend_len - f->pend_off, MSG_NOSIGNAL);
        if (n > 0) { f->pend_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        return -1;
    }
    free(f->pend);
    f->pend = NULL;
    f->pend_len = f->pend_off = 0;
    return 0;
}

static void on_echo(int fd, uint32_t ev) {
    struct fdinfo *f = info(fd);
    if (f->pend) {
        if (!(ev & EPOLLOUT)) { if (ev & (EPOLLERR | EPOLLHUP)) drop(fd); return; }
        int r = echo_flush(fd, f);
        if (r < 0) { drop(fd); return; }
        if (r == 0) ctl(EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLRDHUP); /* resume reading */
        return;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) { drop(fd); return; }
    if (n < 0) { if (errno != EAGAIN && errno != EINTR) drop(fd); return; }
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = send(fd, buf + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w > 0) { off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        drop(fd);
        return;
    }
    if (off < (size_t)n) { /* pause reading until the rest is written (backpressure) */
        f->pend_len = (size_t)n - off;
        f->pend = malloc(f->pend_len);
        memcpy(f->pend, buf + off, f->pend_len);
        f->pend_off = 0;
        ctl(EPOLL_CTL_MOD, fd, EPOLLOUT | EPOLLRDHUP);
    }
}

static void on_sink(int fd) {
    for (int i = 0; i < 4; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) { sink_bytes += (unsigned long long)n; if ((size_t)n < sizeof buf) return; continue; }
        if (n == 0) { drop(fd); return; }
        if (errno != EAGAIN && errno != EINTR) drop(fd);
        return;
    }
}

static char cmdbuf[4096];
static size_t cmdlen = 0;

static void on_stdin(void) {
    ssize_t n = read(0, cmdbuf + cmdlen, sizeof cmdbuf - 1 - cmdlen);
    if (n == 0) exit(0); /* harness gone: never linger */
    if (n < 0) return;
    cmdlen += (size_t)n;
    cmdbuf[cmdlen] = 0;
    char *line = cmdbuf, *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = 0;
        long id = 0;
        char cmd[64] = "";
        if (sscanf(line, "%ld %63s", &id, cmd) == 2) {
            if (!strcmp(cmd, "sinkBytes")) printf("{\"type\":\"rpc\",\"id\":%ld,\"value\":%llu}\n", id, sink_bytes);
            else if (!strcmp(cmd, "cpu")) {
                struct rusage ru;
                getrusage(RUSAGE_SELF, &ru);
                double s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
                printf("{\"type\":\"rpc\",\"id\":%ld,\"value\":%.6f}\n", id, s);
            } else if (!strcmp(cmd, "newEcho")) {
                /* one more echo listener, so a case can start on a port without a TIME_WAIT backlog */
                int port, fd = listen_on(&port);
                info(fd)->kind = K_ECHO_LISTEN;
                ctl(EPOLL_CTL_ADD, fd, EPOLLIN);
                printf("{\"type\":\"rpc\",\"id\":%ld,\"value\":%d}\n", id, port);
            } else if (!strcmp(cmd, "conns"))
                printf("{\"type\":\"rpc\",\"id\":%ld,\"value\":{\"echo\":%ld,\"sink\":%ld}}\n", id, conns_echo, conns_sink);
            else printf("{\"type\":\"rpc\",\"id\":%ld,\"value\":null}\n", id);
            fflush(stdout);
        }
        line = nl + 1;
    }
    cmdlen = strlen(line);
    memmove(cmdbuf, line, cmdlen + 1);
    if (cmdlen >= sizeof cmdbuf - 1) cmdlen = 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    ep = epoll_create1(EPOLL_CLOEXEC);
    int pe, ps;
    int le = listen_on(&pe), ls = listen_on(&ps);
    info(le)->kind = K_ECHO_LISTEN;
    info(ls)->kind = K_SINK_LISTEN;
    info(0)->kind = K_STDIN;
    ctl(EPOLL_CTL_ADD, le, EPOLLIN);
    ctl(EPOLL_CTL_ADD, ls, EPOLLIN);
    ctl(EPOLL_CTL_ADD, 0, EPOLLIN);
    printf("{\"type\":\"ready\",\"ports\":{\"echo\":%d,\"sink\":%d},\"pid\":%d}\n", pe, ps, (int)getpid());
    fflush(stdout);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 2; }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            uint32_t ev = evs[i].events;
            switch (info(fd)->kind) {
            case K_ECHO_LISTEN: accept_all(fd, K_ECHO); break;
            case K_SINK_LISTEN: accept_all(fd, K_SINK); break;
            case K_ECHO: on_echo(fd, ev); break;
            case K_SINK: on_sink(fd); break;
            case K_STDIN: on_stdin(); break;
            default: break;
            }
        }
    }
}
