/*
 * portcullis_relay: the byte-moving half of a CONNECT tunnel, off the JavaScript heap.
 *
 * Why: in Node every read becomes a fresh 64 KiB ArrayBuffer and every chunk walks the stream
 * machinery. Measured on the gateway, that costs ~3 µs of user CPU per relayed chunk and, in bulk
 * transfers, a constant stream of major GCs (external memory pressure), which is what bounded
 * single-tunnel throughput and p99 latency. Here one thread per process moves the bytes of every
 * tunnel with read/write on one reused buffer, like Squid does, and JavaScript only hears about a
 * tunnel when it starts and when it ends.
 *
 * Ownership: JavaScript keeps the net.Socket objects (and so the file descriptors), stops libuv
 * reading from them, and hands both descriptors over. From then on only this thread touches them,
 * until it reports the tunnel finished; JavaScript closes the sockets only after that report
 * (its destroy path is routed through relay_close, see src/relay/native.ts). So a descriptor
 * number is never reused under our feet.
 *
 * Edge-triggered epoll, both descriptors registered once for IN|OUT|RDHUP: no epoll_ctl per chunk.
 * Direction d has source fd[d] and destination fd[1-d] (d = 0: client -> upstream, "up").
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 65536
#define BUF_SIZE 65536
#define READS_PER_TURN 16 /* fairness: at most 1 MiB per direction per event before others get a turn */
#define SWEEP_MS 250

enum cause { CAUSE_DONE = 0, CAUSE_CLIENT_ERROR = 1, CAUSE_UPSTREAM_ERROR = 2, CAUSE_IDLE = 3, CAUSE_CLOSED = 4 };

typedef struct slot {
  int fd[2];
  /* Bytes read from fd[d] that fd[1-d] did not take yet. While set, fd[d] is not read. */
  char *pend[2];
  size_t pend_len[2], pend_off[2];
  size_t uncounted[2]; /* leading bytes of direction d that are not payload (the 200 answer) */
  uint8_t eof[2];    /* fd[d] reached end of stream */
  uint8_t fin_seen[2]; /* epoll said fd[d]'s peer finished sending: read on to the 0 even after a short read */
  uint8_t active;    /* owned by the relay thread */
  uint8_t queued;    /* on the retry list */
  uint32_t gen;      /* bumped on every use, so stale events and stale closes are ignored */
  int64_t last_ms, idle_ms;
  struct slot *prev, *next; /* active list, for the idle sweep */
  struct slot *retry_next;
} slot_t;

typedef struct { uint32_t slot, gen; int cause; } done_t;
/* op 1 = start (with everything the slot needs), 2 = close. */
typedef struct {
  int op;
  uint32_t slot, gen;
  int fd[2];
  int64_t idle_ms;
  char *pend[2];
  size_t pend_len[2];
} cmd_t;

static slot_t *slots;
/* Bytes per slot and direction, read by JavaScript at scrape time through a Float64Array. */
static double *counters;
static uint32_t *free_list;
static uint32_t free_top;
/* Generation per slot as JavaScript knows it; only the JavaScript thread touches this. */
static uint32_t *js_gens;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static cmd_t *cmds;
static size_t cmd_len, cmd_cap;
static done_t *dones;
static size_t done_len, done_cap;
static int done_signalled;

static int ep = -1, evfd = -1;
static pthread_t thread;
static int thread_started, stopping;
/* The one JavaScript environment (main thread) the relay belongs to: its state is per process,
 * so a worker_threads Worker that loads the addon too must not drive it. */
static napi_env owner_env;
static napi_threadsafe_function tsfn;
static napi_ref counters_ref;
static int64_t now_ms;
static char rbuf[BUF_SIZE];
static slot_t active_head; /* sentinel */
static slot_t *retry_head;
static size_t active_count;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Counts what the destination's socket accepted: payload delivered, not merely read. */
static void add_count(uint32_t s, int d, size_t n) {
  slot_t *t = &slots[s];
  if (t->uncounted[d]) {
    size_t skip = n < t->uncounted[d] ? n : t->uncounted[d];
    t->uncounted[d] -= skip;
    n -= skip;
  }
  if (!n) return;
  double v = counters[s * 2 + d] + (double)n;
  __atomic_store(&counters[s * 2 + d], &v, __ATOMIC_RELAXED);
}

static void push_done(uint32_t s, uint32_t gen, int cause) {
  pthread_mutex_lock(&mu);
  if (done_len == done_cap) {
    size_t cap = done_cap ? done_cap * 2 : 256;
    done_t *n = realloc(dones, cap * sizeof *n);
    if (!n) abort(); /* out of memory: nothing sane left to do */
    dones = n;
    done_cap = cap;
  }
  dones[done_len++] = (done_t){ s, gen, cause };
  int signal = !done_signalled;
  done_signalled = 1;
  pthread_mutex_unlock(&mu);
  if (signal) napi_call_threadsafe_function(tsfn, NULL, napi_tsfn_nonblocking);
}

/* Stop relaying: deregister, drop what was pending, report. The descriptors stay open for JS. */
static void finish(uint32_t s, int cause) {
  slot_t *t = &slots[s];
  if (!t->active) return;
  epoll_ctl(ep, EPOLL_CTL_DEL, t->fd[0], NULL);
  epoll_ctl(ep, EPOLL_CTL_DEL, t->fd[1], NULL);
  for (int d = 0; d < 2; d++) {
    free(t->pend[d]);
    t->pend[d] = NULL;
    t->pend_len[d] = t->pend_off[d] = 0;
  }
  t->active = 0;
  t->prev->next = t->next;
  t->next->prev = t->prev;
  active_count--;
  push_done(s, t->gen, cause);
}

/* A socket error ends the tunnel. After that side's own FIN it is just how a peer that closed
 * completely answers the last bytes (a reset): the tunnel ended normally. */
static void fail(uint32_t s, int side) {
  finish(s, slots[s].eof[side] ? CAUSE_DONE : (side == 0 ? CAUSE_CLIENT_ERROR : CAUSE_UPSTREAM_ERROR));
}

static void maybe_done(uint32_t s) {
  slot_t *t = &slots[s];
  if (t->active && t->eof[0] && t->eof[1] && !t->pend[0] && !t->pend[1]) finish(s, CAUSE_DONE);
}

/* Write n bytes of direction d; keep what the destination does not take. 0 = stop reading d. */
static int forward(uint32_t s, int d, const char *p, size_t n) {
  slot_t *t = &slots[s];
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(t->fd[1 - d], p + off, n - off, MSG_NOSIGNAL);
    if (w > 0) { off += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    fail(s, 1 - d);
    return 0;
  }
  if (off > 0) { t->last_ms = now_ms; add_count(s, d, off); }
  if (off == n) return 1;
  t->pend[d] = malloc(n - off);
  if (!t->pend[d]) { fail(s, 1 - d); return 0; }
  memcpy(t->pend[d], p + off, n - off);
  t->pend_len[d] = n - off;
  t->pend_off[d] = 0;
  return 0;
}

static void queue_retry(slot_t *t) {
  if (t->queued) return;
  t->queued = 1;
  t->retry_next = retry_head;
  retry_head = t;
}

/* Read fd[d] and pass it on, until it is drained, blocked, or has had its turn. */
static void pump(uint32_t s, int d) {
  slot_t *t = &slots[s];
  for (int i = 0; i < READS_PER_TURN; i++) {
    if (!t->active || t->eof[d] || t->pend[d]) return;
    ssize_t n = recv(t->fd[d], rbuf, BUF_SIZE, 0);
    if (n > 0) {
      t->last_ms = now_ms;
      if (!forward(s, d, rbuf, (size_t)n)) return;
      /* A short read on a stream socket means no more data was queued, and the next byte brings
       * a new edge. Not so a FIN that arrived while this direction was blocked: its edge is gone. */
      if (n < BUF_SIZE && !t->fin_seen[d]) return;
      continue;
    }
    if (n == 0) {
      t->eof[d] = 1;
      /* Pass the half-close on; the other direction keeps flowing. */
      shutdown(t->fd[1 - d], SHUT_WR);
      maybe_done(s);
      return;
    }
    if (errno == EINTR) { i--; continue; }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    fail(s, d);
    return;
  }
  queue_retry(t); /* still readable: come back after everyone else had a turn */
}

/* The destination of direction d became writable: flush what is pending, then read again. */
static void flush(uint32_t s, int d) {
  slot_t *t = &slots[s];
  while (t->active && t->pend[d]) {
    ssize_t w = send(t->fd[1 - d], t->pend[d] + t->pend_off[d], t->pend_len[d] - t->pend_off[d], MSG_NOSIGNAL);
    if (w > 0) {
      t->last_ms = now_ms;
      add_count(s, d, (size_t)w);
      t->pend_off[d] += (size_t)w;
      if (t->pend_off[d] == t->pend_len[d]) {
        free(t->pend[d]);
        t->pend[d] = NULL;
        t->pend_len[d] = t->pend_off[d] = 0;
      }
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    fail(s, 1 - d);
    return;
  }
  if (!t->active) return;
  if (t->eof[d]) { shutdown(t->fd[1 - d], SHUT_WR); maybe_done(s); return; }
  pump(s, d);
}

static void on_event(uint64_t data, uint32_t ev) {
  uint32_t s = (uint32_t)(data >> 33), gen = (uint32_t)data, side = (uint32_t)(data >> 32) & 1;
  if (s >= MAX_SLOTS) return;
  slot_t *t = &slots[s];
  if (!t->active || t->gen != gen) return; /* stale: the tunnel ended earlier in this batch */
  if (ev & EPOLLERR) {
    /* A pending read may still tell us more precisely, but the tunnel is over either way. */
    fail(s, (int)side);
    return;
  }
  /* Every wake-up reports EPOLLOUT while there is room; only pending bytes need it. */
  if ((ev & EPOLLOUT) && t->pend[1 - side]) flush(s, 1 - (int)side);
  if (ev & (EPOLLRDHUP | EPOLLHUP)) t->fin_seen[side] = 1;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) pump(s, (int)side);
}

/* Only the relay thread writes a slot. queued/retry_next survive: the slot may still be on this
 * turn's retry list from its previous use, and the list walk skips nothing it should not. */
static void start_slot(const cmd_t *c) {
  uint32_t s = c->slot;
  slot_t *t = &slots[s];
  t->fd[0] = c->fd[0];
  t->fd[1] = c->fd[1];
  t->gen = c->gen;
  t->idle_ms = c->idle_ms;
  for (int d = 0; d < 2; d++) {
    t->pend[d] = c->pend[d];
    t->pend_len[d] = c->pend_len[d];
    t->pend_off[d] = 0;
    t->eof[d] = 0;
    t->fin_seen[d] = 0;
    t->uncounted[d] = 0;
  }
  t->uncounted[1] = c->pend_len[1]; /* the 200 answer goes to the client first */
  t->active = 1;
  t->last_ms = now_ms;
  t->next = active_head.next;
  t->prev = &active_head;
  active_head.next->prev = t;
  active_head.next = t;
  active_count++;
  for (uint32_t side = 0; side < 2; side++) {
    struct epoll_event e = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
    e.data.u64 = ((uint64_t)s << 33) | ((uint64_t)side << 32) | t->gen;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, t->fd[side], &e) != 0) { fail(s, (int)side); return; }
  }
  /* Bytes JS had already (the 200 answer, the CONNECT head), then whatever is readable now. */
  for (int d = 0; d < 2; d++) if (t->pend[d]) flush(s, d); else pump(s, d);
}

static void run_commands(void) {
  uint64_t v;
  while (read(evfd, &v, sizeof v) > 0) {}
  for (;;) {
    pthread_mutex_lock(&mu);
    if (cmd_len == 0) { pthread_mutex_unlock(&mu); return; }
    cmd_t batch[64];
    size_t n = cmd_len < 64 ? cmd_len : 64;
    memcpy(batch, cmds, n * sizeof *batch);
    memmove(cmds, cmds + n, (cmd_len - n) * sizeof *cmds);
    cmd_len -= n;
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < n; i++) {
      slot_t *t = &slots[batch[i].slot];
      if (batch[i].op == 1) start_slot(&batch[i]);
      else if (t->active && t->gen == batch[i].gen) finish(batch[i].slot, CAUSE_CLOSED);
    }
  }
}

static void sweep_idle(void) {
  for (slot_t *t = active_head.next, *next; t != &active_head; t = next) {
    next = t->next;
    if (t->idle_ms > 0 && now_ms - t->last_ms >= t->idle_ms) finish((uint32_t)(t - slots), CAUSE_IDLE);
  }
}

static void *relay_main(void *arg) {
  (void)arg;
  struct epoll_event evs[256];
  int64_t next_sweep = mono_ms() + SWEEP_MS;
  while (!stopping) {
    int timeout = retry_head ? 0 : (active_count ? SWEEP_MS : -1);
    int n = epoll_wait(ep, evs, 256, timeout);
    now_ms = mono_ms();
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == UINT64_MAX) run_commands();
      else on_event(evs[i].data.u64, evs[i].events);
    }
    slot_t *r = retry_head;
    retry_head = NULL;
    while (r) {
      slot_t *nx = r->retry_next;
      r->queued = 0;
      uint32_t s = (uint32_t)(r - slots);
      if (r->active) { pump(s, 0); if (r->active) pump(s, 1); }
      r = nx;
    }
    if (now_ms >= next_sweep) { sweep_idle(); next_sweep = now_ms + SWEEP_MS; }
  }
  return NULL;
}

/* ------------------------------------------------------------------ JavaScript side */

static void call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  (void)ctx; (void)data;
  if (!env) return;
  pthread_mutex_lock(&mu);
  done_t *batch = dones;
  size_t n = done_len;
  dones = NULL;
  done_len = done_cap = 0;
  done_signalled = 0;
  pthread_mutex_unlock(&mu);
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (size_t i = 0; i < n; i++) {
    uint32_t s = batch[i].slot;
    napi_value args[5];
    napi_create_uint32(env, s, &args[0]);
    napi_create_uint32(env, batch[i].gen, &args[1]);
    napi_create_int32(env, batch[i].cause, &args[2]);
    napi_create_double(env, counters[s * 2], &args[3]);
    napi_create_double(env, counters[s * 2 + 1], &args[4]);
    /* The slot is free again once JS has heard: JS never refers to it after this call. */
    pthread_mutex_lock(&mu);
    free_list[free_top++] = s;
    pthread_mutex_unlock(&mu);
    napi_call_function(env, undef, cb, 5, args, NULL);
  }
  free(batch);
}

static void cleanup(void *arg) {
  (void)arg;
  if (!thread_started) return;
  stopping = 1;
  uint64_t one = 1;
  if (write(evfd, &one, sizeof one) < 0) {}
  pthread_join(thread, NULL);
  thread_started = 0;
}

static napi_value throw_msg(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

/* init(onDone(slot, gen, cause, bytesUp, bytesDown)) -> Float64Array of counters */
static napi_value relay_init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (thread_started) {
    if (env != owner_env) return throw_msg(env, "PCL_ERR_RELAY_ENV", "the relay belongs to the main thread");
    napi_value arr;
    napi_get_reference_value(env, counters_ref, &arr);
    return arr;
  }
  slots = calloc(MAX_SLOTS, sizeof *slots);
  free_list = malloc(MAX_SLOTS * sizeof *free_list);
  js_gens = calloc(MAX_SLOTS, sizeof *js_gens);
  void *ab_data = NULL;
  napi_value ab;
  if (!slots || !free_list || !js_gens) return throw_msg(env, "PCL_ERR_RELAY_INIT", "out of memory");
  if (napi_create_arraybuffer(env, MAX_SLOTS * 2 * sizeof(double), &ab_data, &ab) != napi_ok) return throw_msg(env, "PCL_ERR_RELAY_INIT", "counter buffer");
  counters = ab_data; /* zero-filled by V8 */
  for (uint32_t i = 0; i < MAX_SLOTS; i++) free_list[i] = MAX_SLOTS - 1 - i;
  free_top = MAX_SLOTS;
  active_head.next = active_head.prev = &active_head;
  ep = epoll_create1(EPOLL_CLOEXEC);
  evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ep < 0 || evfd < 0) return throw_msg(env, "PCL_ERR_RELAY_INIT", "epoll/eventfd");
  struct epoll_event e = { .events = EPOLLIN };
  e.data.u64 = UINT64_MAX;
  epoll_ctl(ep, EPOLL_CTL_ADD, evfd, &e);
  napi_value name;
  napi_create_string_utf8(env, "portcullis-relay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &tsfn) != napi_ok)
    return throw_msg(env, "PCL_ERR_RELAY_INIT", "threadsafe function");
  /* Live tunnels keep the process up through their sockets' owners, not through this. */
  napi_unref_threadsafe_function(env, tsfn);
  if (pthread_create(&thread, NULL, relay_main, NULL) != 0) return throw_msg(env, "PCL_ERR_RELAY_INIT", "thread");
  thread_started = 1;
  owner_env = env;
  napi_add_env_cleanup_hook(env, cleanup, NULL);
  napi_value arr;
  napi_create_typedarray(env, napi_float64_array, MAX_SLOTS * 2, ab, 0, &arr);
  napi_create_reference(env, arr, 1, &counters_ref);
  return arr;
}

static int copy_initial(napi_env env, napi_value v, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  bool is_buf = false;
  napi_is_buffer(env, v, &is_buf);
  if (!is_buf) return 1;
  void *data;
  size_t n;
  napi_get_buffer_info(env, v, &data, &n);
  if (n == 0) return 1;
  *out = malloc(n);
  if (!*out) return 0;
  memcpy(*out, data, n);
  *len = n;
  return 1;
}

static void push_cmd(cmd_t c) {
  pthread_mutex_lock(&mu);
  if (cmd_len == cmd_cap) {
    size_t cap = cmd_cap ? cmd_cap * 2 : 256;
    cmd_t *n = realloc(cmds, cap * sizeof *n);
    if (!n) abort();
    cmds = n;
    cmd_cap = cap;
  }
  /* Commands already queued mean a wake-up is already on its way, and run_commands() drains the
   * queue until it is empty: under load one eventfd write serves many new tunnels. */
  int wake = cmd_len == 0;
  cmds[cmd_len++] = c;
  pthread_mutex_unlock(&mu);
  uint64_t one = 1;
  if (wake && write(evfd, &one, sizeof one) < 0) {}
}

/* start(clientFd, upstreamFd, idleMs, toClient?: Buffer (not payload), toUpstream?: Buffer (payload)) -> slot * 2^32 + gen, or -1 */
static napi_value relay_start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], ret;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!thread_started || argc < 5 || env != owner_env) return throw_msg(env, "PCL_ERR_RELAY_STATE", "relay not initialised in this thread");
  int32_t cfd, ufd;
  double idle;
  napi_get_value_int32(env, argv[0], &cfd);
  napi_get_value_int32(env, argv[1], &ufd);
  napi_get_value_double(env, argv[2], &idle);
  pthread_mutex_lock(&mu);
  int have = free_top > 0;
  uint32_t s = have ? free_list[--free_top] : 0;
  pthread_mutex_unlock(&mu);
  if (!have || cfd < 0 || ufd < 0) {
    if (have) { pthread_mutex_lock(&mu); free_list[free_top++] = s; pthread_mutex_unlock(&mu); }
    napi_create_double(env, -1, &ret);
    return ret;
  }
  cmd_t c = { .op = 1, .slot = s, .gen = ++js_gens[s], .fd = { cfd, ufd }, .idle_ms = (int64_t)idle };
  /* The slot is idle: its previous tunnel was reported, so nothing writes its counters now. */
  double zero = 0;
  __atomic_store(&counters[s * 2], &zero, __ATOMIC_RELAXED);
  __atomic_store(&counters[s * 2 + 1], &zero, __ATOMIC_RELAXED);
  /* pend[1] goes to the client (direction down), pend[0] to the upstream. */
  if (!copy_initial(env, argv[3], &c.pend[1], &c.pend_len[1]) || !copy_initial(env, argv[4], &c.pend[0], &c.pend_len[0])) {
    free(c.pend[1]);
    pthread_mutex_lock(&mu);
    free_list[free_top++] = s;
    pthread_mutex_unlock(&mu);
    napi_create_double(env, -1, &ret);
    return ret;
  }
  push_cmd(c);
  napi_create_double(env, (double)s * 4294967296.0 + (double)c.gen, &ret);
  return ret;
}

/* close(slot, gen): stop relaying; onDone follows with cause CLOSED (or whatever ended it first). */
static napi_value relay_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t s, gen;
  napi_get_value_uint32(env, argv[0], &s);
  napi_get_value_uint32(env, argv[1], &gen);
  if (thread_started && env == owner_env && s < MAX_SLOTS) push_cmd((cmd_t){ .op = 2, .slot = s, .gen = gen });
  return NULL;
}

/* ref(bool): keep the event loop alive while tunnels are relayed (their sockets are not reading). */
static napi_value relay_ref(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool on = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_get_value_bool(env, argv[0], &on);
  if (thread_started && env == owner_env) {
    if (on) napi_ref_threadsafe_function(env, tsfn);
    else napi_unref_threadsafe_function(env, tsfn);
  }
  return NULL;
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "init", NULL, relay_init, NULL, NULL, NULL, napi_default, NULL },
    { "start", NULL, relay_start, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, relay_close, NULL, NULL, NULL, napi_default, NULL },
    { "ref", NULL, relay_ref, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
