/*
 * Portcullis benchmark: native load generator (single thread, epoll).
 *
 * Built by the harness (bench/lib/native.mjs) with
 *     cc -O2 -o .bench-out/native/loadgen bench/native/loadgen.c
 * C11 + libc/POSIX/Linux (epoll) only. Talks only to an IPv4 address
 * (the harness always uses 127.0.0.1).
 *
 * Modes (same semantics as bench/cases/<mode>.mjs):
 *   tunnels    C concurrent loops: connect, CONNECT dest (unless direct), read
 *              the head (status must be 200), send P bytes, read P bytes back,
 *              close; repeat until the duration is over. In-flight iterations
 *              finish (bounded by --timeout-ms). Result {ok, errors, firstError}.
 *   roundtrips C tunnels opened before the clock starts; each loops
 *              "write P bytes, wait for the P-byte echo" until the duration is
 *              over. Result {count, errors}.
 *   latency    one tunnel, --warmup round trips, then --n timed sequential
 *              P-byte round trips. Result {p50us, p90us, p99us, maxus, n}.
 *   bulk       C tunnels (to the sink); each writes a --chunk buffer as fast as
 *              the socket drains until the duration is over. Result
 *              {errors, bytesWritten}; the harness counts what the sink got.
 *
 * Protocol with the harness (stdout = JSON lines, stdin = commands):
 *   -> {"type":"ready"}            after setup (tunnels opened)
 *   <- "go\n"                      start the measured run (--no-wait: start at once)
 *   -> {"type":"result","result":{...},"cpuSec":s,"wallSec":s}
 *   -> {"type":"error","message":"..."}   setup failed (exit code 1)
 * cpuSec = user+system CPU of this process during the run (getrusage), cpuUserSec
 * the user part (the rest is kernel TCP work, on loopback including the peer's
 * receive path).
 * stdin EOF (the harness is gone) exits the process; so does SIGTERM, and a
 * hard alarm() bounds setup and run time.
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
#include <time.h>
#include <unistd.h>

enum mode { M_TUNNELS, M_ROUNDTRIPS, M_LATENCY, M_BULK };
enum state { S_DONE, S_CONNECTING, S_HEAD, S_IDLE, S_ECHO, S_BULK, S_RETRY };

#define HEAD_MAX 16384
#define STDIN_TAG UINT64_MAX

struct conn {
    int fd;
    int st;
    uint32_t events;       /* current epoll interest, 0 = not registered */
    char *head;            /* CONNECT response head buffer (lazily allocated) */
    size_t hlen;
    const char *out;       /* pending write */
    size_t out_len, out_off;
    size_t got;            /* echo bytes received and not yet consumed */
    int64_t op_start;      /* ns: start of the current op (timeout, latency) */
    int64_t retry_at;      /* ns */
    size_t bulk_off;
};

/* ------------------------------------------------------------ options */
static int mode = -1;
static struct sockaddr_in target;  /* where we connect: proxy or dest */
static int direct = 1;
static int dest_port = 0;
static int conc = 1;
static int64_t duration_ns = 3000LL * 1000000;
static long n_timed = 5000, warmup = 500;
static size_t payload_len = 64, chunk_len = 65536;
static int64_t timeout_ns = 5000LL * 1000000;       /* per op (tunnels: whole iteration) */
static int64_t setup_timeout_ns = 10000LL * 1000000; /* per tunnel during setup */
static long long max_ops = 1000000000LL;
static int no_wait = 0;

/* ------------------------------------------------------------ state */
static int ep;
static struct conn *conns;
static char connect_req[256];
static size_t connect_req_len;
static char *payload, *chunk;
static char scratch[262144];
static int64_t deadline;       /* ns; 0 during setup */
static int running = 0;
static int active = 0;         /* slots not yet done */
static int opened = 0;         /* setup: tunnels established */
static long long ok_count = 0, rt_count = 0, err_count = 0, latency_i = 0;
static unsigned long long bytes_written = 0;
static double *lat_us;
static char first_error[512];
static const char *setup_error = NULL;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_sec(double *user) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    return *user + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') { fputc('\\', f); fputc(ch, f); }
        else if (ch < 0x20 || ch >= 0x7f) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void die_json(const char *msg) {
    printf("{\"type\":\"error\",\"message\":");
    json_str(stdout, msg);
    printf("}\n");
    fflush(stdout);
    exit(1);
}

static void set_events(struct conn *c, uint32_t ev) {
    if (c->events == ev) return;
    struct epoll_event e = { .events = ev, .data.u64 = (uint64_t)(c - conns) };
    int op = c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(ep, op, c->fd, &e) < 0) { perror("epoll_ctl"); exit(2); }
    c->events = ev;
}

static void close_conn(struct conn *c) {
    if (c->fd >= 0) close(c->fd); /* close() also removes it from the epoll set */
    c->fd = -1;
    c->events = 0;
    c->hlen = 0;
    c->out = NULL;
    c->got = 0;
}

static void start_conn(struct conn *c);
static void op_error(struct conn *c, const char *msg);
static void tunnel_ready(struct conn *c);

static void slot_done(struct conn *c) {
    close_conn(c);
    c->st = S_DONE;
    active--;
}

/* Write c->out[c->out_off..]; returns 0 when all written, 1 when pending (EPOLLOUT armed), -1 on error. */
static int flush_out(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) { c->out_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { set_events(c, EPOLLIN | EPOLLOUT); return 1; }
        return -1;
    }
    c->out = NULL;
    set_events(c, EPOLLIN);
    return 0;
}

static void send_buf(struct conn *c, const char *buf, size_t len) {
    c->out = buf; c->out_len = len; c->out_off = 0;
    if (flush_out(c) < 0) op_error(c, strerror(errno));
}

static void send_ping(struct conn *c) {
    c->st = S_ECHO;
    c->op_start = now_ns();
    send_buf(c, payload, payload_len);
}

static void op_error(struct conn *c, const char *msg) {
    err_count++;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", msg);
    close_conn(c);
    if (!running) {               /* setup: fatal, like the Node generator's genSetup */
        setup_error = first_error;
        c->st = S_DONE;
        return;
    }
    if (mode == M_TUNNELS && now_ns() < deadline && ok_count + err_count < max_ops) {
        c->st = S_RETRY;          /* the Node loop sleeps 5 ms after an error */
        c->retry_at = now_ns() + 5000000LL;
    } else {
        c->st = S_DONE;
        active--;
    }
}

static void start_conn(struct conn *c) {
    c->op_start = now_ns();
    c->hlen = 0; c->got = 0; c->out = NULL; c->events = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { op_error(c, strerror(errno)); return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&target, sizeof target) == 0) {
        c->st = S_CONNECTING;
        set_events(c, EPOLLOUT); /* handled uniformly below */
        return;
    }
    if (errno != EINPROGRESS) { op_error(c, strerror(errno)); return; }
    c->st = S_CONNECTING;
    set_events(c, EPOLLOUT);
}

static void on_connected(struct conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { op_error(c, strerror(err)); return; }
    if (direct) { set_events(c, EPOLLIN); tunnel_ready(c); return; }
    c->st = S_HEAD;
    send_buf(c, connect_req, connect_req_len);
}

static void tunnel_ready(struct conn *c) {
    if (mode == M_TUNNELS) { send_ping(c); return; }
    c->st = S_IDLE;
    opened++;
}

/* One echo of payload_len bytes has completed on c. */
static void echo_done(struct conn *c) {
    int64_t t = now_ns();
    switch (mode) {
    case M_TUNNELS:
        ok_count++;
        close_conn(c);
        if (t < deadline && ok_count + err_count < max_ops) start_conn(c);
        else { c->st = S_DONE; active--; }
        return;
    case M_ROUNDTRIPS:
        rt_count++;
        if (t < deadline && rt_count < max_ops) send_ping(c);
        else slot_done(c);
        return;
    case M_LATENCY:
        if (latency_i >= warmup) lat_us[latency_i - warmup] = (double)(t - c->op_start) / 1000.0;
        latency_i++;
        if (latency_i < warmup + n_timed) send_ping(c);
        else slot_done(c);
        return;
    }
}

static void on_readable(struct conn *c) {
    if (c->st == S_HEAD) {
        if (!c->head) c->head = malloc(HEAD_MAX);
        ssize_t n = recv(c->fd, c->head + c->hlen, HEAD_MAX - c->hlen, 0);
        if (n == 0) { op_error(c, "closed during CONNECT"); return; }
        if (n < 0) { if (errno != EAGAIN && errno != EINTR) op_error(c, strerror(errno)); return; }
        size_t from = c->hlen > 3 ? c->hlen - 3 : 0;
        c->hlen += (size_t)n;
        char *end = memmem(c->head + from, c->hlen - from, "\r\n\r\n", 4);
        if (!end) {
            if (c->hlen >= HEAD_MAX) op_error(c, "CONNECT response head too large");
            return;
        }
        if (!(c->hlen >= 12 && memcmp(c->head, "HTTP/1.", 7) == 0 && (c->head[7] == '0' || c->head[7] == '1') &&
              memcmp(c->head + 8, " 200", 4) == 0)) {
            char msg[300];
            size_t l = 0;
            while (l < c->hlen && l < 200 && c->head[l] != '\r') l++;
            snprintf(msg, sizeof msg, "CONNECT refused: %.*s", (int)l, c->head);
            op_error(c, msg);
            return;
        }
        c->got = c->hlen - (size_t)(end + 4 - c->head); /* bytes after the head belong to the tunnel */
        c->hlen = 0;
        tunnel_ready(c);
        if (c->st == S_ECHO && c->got >= payload_len) { c->got -= payload_len; echo_done(c); }
        return;
    }
    ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
    if (n == 0) { op_error(c, "closed"); return; }
    if (n < 0) { if (errno != EAGAIN && errno != EINTR) op_error(c, strerror(errno)); return; }
    if (c->st == S_ECHO) {
        c->got += (size_t)n;
        if (c->got >= payload_len && c->out == NULL) { c->got -= payload_len; echo_done(c); }
    }
    /* S_IDLE / S_BULK: discard (the sink never answers) */
}

static void bulk_write(struct conn *c) {
    for (int i = 0; i < 64; i++) {
        if (now_ns() >= deadline) { slot_done(c); return; }
        ssize_t n = send(c->fd, chunk + c->bulk_off, chunk_len - c->bulk_off, MSG_NOSIGNAL);
        if (n > 0) {
            bytes_written += (unsigned long long)n;
            c->bulk_off = (c->bulk_off + (size_t)n) % chunk_len;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        op_error(c, strerror(errno));
        return;
    }
}

static void on_event(struct conn *c, uint32_t ev) {
    if (c->st == S_DONE || c->st == S_RETRY || c->fd < 0) return;
    if (c->st == S_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
        return;
    }
    if (c->st == S_BULK) {
        if (ev & EPOLLIN) { ssize_t n = recv(c->fd, scratch, sizeof scratch, 0); if (n == 0) { op_error(c, "closed"); return; } }
        if (ev & (EPOLLERR | EPOLLHUP)) { op_error(c, "connection error"); return; }
        if (ev & EPOLLOUT) bulk_write(c);
        return;
    }
    if ((ev & EPOLLOUT) && c->out) {
        if (flush_out(c) < 0) { op_error(c, strerror(errno)); return; }
        if (c->st == S_ECHO && c->got >= payload_len && c->out == NULL) { c->got -= payload_len; echo_done(c); return; }
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
}

/* Timeouts and retries; called at most every few ms. */
static void housekeeping(int64_t t) {
    for (int i = 0; i < conc; i++) {
        struct conn *c = &conns[i];
        if (c->st == S_RETRY) {
            if (t >= deadline || ok_count + err_count >= max_ops) { c->st = S_DONE; active--; }
            else if (t >= c->retry_at) start_conn(c);
            continue;
        }
        if (c->st == S_CONNECTING || c->st == S_HEAD || c->st == S_ECHO) {
            int64_t lim = running ? timeout_ns : setup_timeout_ns;
            if (t - c->op_start > lim) op_error(c, c->st == S_ECHO ? "echo timeout" : "tunnel timeout");
        }
    }
}

static int wait_timeout_ms(int64_t t) {
    int ms = 50;
    if (running && deadline > t) {
        int64_t left = (deadline - t) / 1000000 + 1;
        if (left < ms) ms = (int)left;
    }
    for (int i = 0; i < conc; i++) if (conns[i].st == S_RETRY) { ms = ms > 5 ? 5 : ms; break; }
    return ms;
}

/* Run the event loop until no slot is in state `until_not` (setup) or until all slots are done (run). */
static void loop(int setup) {
    struct epoll_event evs[256];
    int64_t last_hk = now_ns();
    for (;;) {
        if (setup) {
            if (setup_error) die_json(setup_error);
            if (opened == conc) return;
        } else if (active == 0) return;
        int64_t t = now_ns();
        int n = epoll_wait(ep, evs, 256, wait_timeout_ms(t));
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); exit(2); }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == STDIN_TAG) {
                char b[64];
                ssize_t r = read(0, b, sizeof b);
                if (r == 0) exit(1); /* harness gone: never linger */
                continue;
            }
            on_event(&conns[evs[i].data.u64], evs[i].events);
        }
        t = now_ns();
        if (t - last_hk >= 2000000LL) { housekeeping(t); last_hk = t; }
        if (!setup && mode == M_BULK && t >= deadline) {
            for (int i = 0; i < conc; i++) if (conns[i].st != S_DONE) slot_done(&conns[i]);
        }
        if (!setup && (mode == M_ROUNDTRIPS) && t >= deadline + timeout_ns) {
            for (int i = 0; i < conc; i++) if (conns[i].st != S_DONE) slot_done(&conns[i]);
        }
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Same definition as bench/lib/tunnel.mjs percentile(). */
static double pct(const double *s, long n, double p) {
    long idx = (long)((p / 100.0) * n + 0.999999999) - 1;
    if (idx < 0) idx = 0;
    if (idx > n - 1) idx = n - 1;
    return s[idx];
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --mode tunnels|roundtrips|latency|bulk --dest-port P [--proxy HOST:PORT]\n"
            "               [--conc C] [--duration-ms MS] [--n N] [--warmup N] [--payload B] [--chunk B]\n"
            "               [--timeout-ms MS] [--max-ops N] [--no-wait]\n"
            "  without --proxy, connects straight to 127.0.0.1:P (the 'direct' target).\n");

    exit(2);
}

int main(int argc, char **argv) {
    const char *proxy = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--mode")) {
            if (!strcmp(v, "tunnels")) mode = M_TUNNELS;
            else if (!strcmp(v, "roundtrips")) mode = M_ROUNDTRIPS;
            else if (!strcmp(v, "latency")) mode = M_LATENCY;
            else if (!strcmp(v, "bulk")) mode = M_BULK;
            else usage();
        } else if (ARG("--proxy")) proxy = v;
        else if (ARG("--dest-port")) dest_port = atoi(v);
        else if (ARG("--conc")) conc = atoi(v);
        else if (ARG("--duration-ms")) duration_ns = atoll(v) * 1000000LL;
        else if (ARG("--n")) n_timed = atol(v);
        else if (ARG("--warmup")) warmup = atol(v);
        else if (ARG("--payload")) payload_len = (size_t)atol(v);
        else if (ARG("--chunk")) chunk_len = (size_t)atol(v);
        else if (ARG("--timeout-ms")) timeout_ns = atoll(v) * 1000000LL;
        else if (ARG("--setup-timeout-ms")) setup_timeout_ns = atoll(v) * 1000000LL;
        else if (ARG("--max-ops")) max_ops = atoll(v);
        else if (strcmp(a, "--no-wait") == 0) no_wait = 1;
        else usage();
#undef ARG
    }
    if (mode < 0 || dest_port <= 0 || dest_port > 65535) usage();
    if (mode == M_LATENCY) conc = 1;
    if (conc < 1 || conc > 10000 || payload_len < 1 || payload_len > 65536 || chunk_len < 1 || chunk_len > (1 << 24) ||
        n_timed < 1 || n_timed > 10000000 || warmup < 0 || duration_ns <= 0 || duration_ns > 3600LL * 1000000000LL)
        usage();

    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    if (proxy) {
        char host[64];
        const char *colon = strrchr(proxy, ':');
        if (!colon || (size_t)(colon - proxy) >= sizeof host) usage();
        memcpy(host, proxy, (size_t)(colon - proxy));
        host[colon - proxy] = 0;
        if (inet_pton(AF_INET, host, &target.sin_addr) != 1) usage();
        target.sin_port = htons((uint16_t)atoi(colon + 1));
        direct = 0;
    } else {
        inet_pton(AF_INET, "127.0.0.1", &target.sin_addr);
        target.sin_port = htons((uint16_t)dest_port);
    }
    connect_req_len = (size_t)snprintf(connect_req, sizeof connect_req,
                                       "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", dest_port, dest_port);

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }

    payload = malloc(payload_len);
    memset(payload, 0x78, payload_len);
    chunk = malloc(chunk_len);
    memset(chunk, 0x7a, chunk_len);
    if (mode == M_LATENCY) lat_us = calloc((size_t)n_timed, sizeof *lat_us);
    conns = calloc((size_t)conc, sizeof *conns);
    for (int i = 0; i < conc; i++) conns[i].fd = -1;

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { perror("epoll_create1"); return 2; }

    /* setup: open the long-lived tunnels before the clock starts (all modes but tunnels) */
    alarm((unsigned)(setup_timeout_ns / 1000000000LL) + 60); /* hard bound on setup */
    if (mode != M_TUNNELS) {
        for (int i = 0; i < conc; i++) start_conn(&conns[i]);
        loop(1);
    }
    printf("{\"type\":\"ready\"}\n");
    fflush(stdout);

    if (!no_wait) {
        char line[64];
        size_t l = 0;
        for (;;) {
            ssize_t r = read(0, line + l, sizeof line - 1 - l);
            if (r == 0) return 1; /* harness gone */
            if (r < 0) { if (errno == EINTR) continue; return 1; }
            l += (size_t)r;
            line[l] = 0;
            if (strchr(line, '\n')) break;
            if (l >= sizeof line - 1) l = 0;
        }
        struct epoll_event e = { .events = EPOLLIN, .data.u64 = STDIN_TAG };
        epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e); /* fails harmlessly if stdin is a regular file */
    }

    /* hard bound: duration + per-op timeout + margin (latency: generous per-round-trip budget) */
    unsigned hard = (unsigned)((duration_ns + timeout_ns) / 1000000000LL) + 30;
    if (mode == M_LATENCY) hard = (unsigned)((n_timed + warmup) / 100) + 60;
    alarm(hard);

    double u0, u1;
    double c0 = cpu_sec(&u0);
    int64_t t0 = now_ns();
    running = 1;
    deadline = t0 + duration_ns;
    active = conc;
    for (int i = 0; i < conc; i++) {
        struct conn *c = &conns[i];
        if (mode == M_TUNNELS) start_conn(c);
        else if (mode == M_BULK) { c->st = S_BULK; c->bulk_off = 0; set_events(c, EPOLLIN | EPOLLOUT); }
        else send_ping(c);
    }
    if (mode == M_LATENCY) deadline = INT64_MAX; /* count-bounded, not time-bounded */
    loop(0);
    double wall = (double)(now_ns() - t0) / 1e9;
    double cpu = cpu_sec(&u1) - c0;

    printf("{\"type\":\"result\",\"result\":{");
    switch (mode) {
    case M_TUNNELS:
        printf("\"ok\":%lld,\"errors\":%lld,\"rate\":%.1f,\"firstError\":", ok_count, err_count,
               (double)ok_count / ((double)duration_ns / 1e9));
        if (first_error[0]) json_str(stdout, first_error); else printf("null");
        break;
    case M_ROUNDTRIPS:
        printf("\"count\":%lld,\"errors\":%lld,\"rate\":%.1f", rt_count, err_count, (double)rt_count / ((double)duration_ns / 1e9));
        break;
    case M_LATENCY: {
        long n = latency_i - warmup;
        if (n < 0) n = 0;
        if (n > 0) {
            qsort(lat_us, (size_t)n, sizeof *lat_us, cmp_double);
            printf("\"p50us\":%.2f,\"p90us\":%.2f,\"p99us\":%.2f,\"maxus\":%.2f,\"n\":%ld,\"errors\":%lld", pct(lat_us, n, 50),
                   pct(lat_us, n, 90), pct(lat_us, n, 99), lat_us[n - 1], n, err_count);
        } else {
            printf("\"p50us\":null,\"p90us\":null,\"p99us\":null,\"maxus\":null,\"n\":0,\"errors\":%lld", err_count);
        }
        break;
    }
    case M_BULK:
        printf("\"errors\":%lld,\"bytesWritten\":%llu", err_count, bytes_written);
        break;
    }
    printf("},\"cpuSec\":%.4f,\"cpuUserSec\":%.4f,\"wallSec\":%.4f}\n", cpu, u1 - u0, wall);
    fflush(stdout);
    return 0;
}
