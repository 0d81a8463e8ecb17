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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
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
#define CLOSES_PER_TUNNEL 2 /* one per socket: each socket's destroy asks once */

/* How a tunnel ended: the one list. The enum numbers cross to JavaScript, and the addon exports the
 * names in this order as `causes`, so src/relay/native.ts reads them instead of keeping a copy. */
#define RELAY_CAUSES(X)                                                                           \
  X(CAUSE_DONE, "done")                                                                           \
  X(CAUSE_CLIENT_ERROR, "client_error")                                                           \
  X(CAUSE_UPSTREAM_ERROR, "upstream_error")                                                       \
  X(CAUSE_IDLE, "idle_timeout")                                                                   \
  X(CAUSE_CLOSED, "closed")         /* JavaScript asked, or the relay was stopped */              \
  X(CAUSE_NO_MEMORY, "out_of_memory") /* the relay could not allocate; no fault of either peer */  \
  X(CAUSE_RELAY_ERROR, "relay_error") /* epoll refused a descriptor: a fault of the relay */
#define AS_ENUM(id, name) id,
#define AS_NAME(id, name) name,
enum cause { RELAY_CAUSES(AS_ENUM) CAUSE_COUNT };
static const char *const cause_names[CAUSE_COUNT] = { RELAY_CAUSES(AS_NAME) };

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

/*
 * Who touches what (the audit behind "cross-thread state"):
 * - relay thread only, while it runs: slots[], rbuf, now_ms, active_head/active_count, retry_head.
 *   Between two threads (stop, then init) pthread_join/pthread_create order the hand-over.
 * - JavaScript thread only: free_list/free_top, js_gens, close_budget, close_reserved, owner_env,
 *   thread_running, cmd_cap, slot_limit, and set-up/teardown of everything below.
 * - under mu: cmds/cmd_len (JS pushes, relay pops), done_fill/done_len/done_signalled (relay pushes,
 *   JS swaps them out).
 * - atomics: stopping (JS sets, relay polls once per wake-up, never per chunk); counters[]
 *   (relay stores relaxed, JS reads through a Float64Array at scrape time); stat_* (relay stores
 *   relaxed, JS loads in stats() at scrape time).
 * - written before the thread starts, read-only after: ep, evfd, tsfn, slots/counters pointers.
 */
static slot_t *slots;
/* Bytes per slot and direction, read by JavaScript at scrape time through a Float64Array. */
static double *counters;
static uint32_t *free_list;
static uint32_t free_top;
/* Generation per slot as JavaScript knows it. */
static uint32_t *js_gens;
/* Close commands a live tunnel may still send, and their sum: the command queue always has room
 * for them, so relay_close never allocates (a destroy must not fail for want of memory). */
static uint8_t *close_budget;
static size_t close_reserved;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static cmd_t *cmds;
static size_t cmd_len, cmd_cap;
/* Ends waiting for JavaScript fill one buffer while JavaScript delivers the other. A slot is in
 * the filling buffer at most once (it is reused only after its end was delivered, from the other
 * buffer), so MAX_SLOTS entries each never run out: reporting an end cannot fail. */
static done_t *done_bufs[2];
static done_t *done_fill;
static size_t done_len;
static int done_signalled;

static int ep = -1, evfd = -1;
static pthread_t thread;
static bool thread_running;
static atomic_bool stopping;
/* The one JavaScript environment (main thread) the relay belongs to: its state is per process,
 * so a worker_threads Worker that loads the addon too must not drive it. */
static napi_env owner_env;
static napi_threadsafe_function tsfn;
static napi_ref counters_ref;
static bool hook_added;
static int64_t now_ms;
static char rbuf[BUF_SIZE];
static slot_t active_head; /* sentinel */
static slot_t *retry_head;
static size_t active_count;
/* Slots JavaScript may hand out (init's second argument; MAX_SLOTS unless lowered). JS thread only. */
static uint32_t slot_limit = MAX_SLOTS;

/* What an operator sees of the relay thread (stats(), read at scrape time). The relay thread is
 * the only writer, so a relaxed load and store is enough (no locked add per update); JavaScript
 * reads each one relaxed: a scrape may see them a moment apart, never torn. */
static _Atomic uint64_t stat_tunnels;       /* tunnels the thread holds (active_count) */
static _Atomic uint64_t stat_pending_bytes; /* bytes read from one side that the other did not take yet */
static _Atomic uint64_t stat_blocked;       /* directions holding such bytes (a full destination) */
static _Atomic uint64_t stat_loops;         /* epoll_wait returns: how often the thread woke up */

static void stat_add(_Atomic uint64_t *v, int64_t delta) {
  atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + (uint64_t)delta, memory_order_relaxed);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* cannot fail for a valid clock id */
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wake the relay thread. EAGAIN means the counter is already non-zero: a wake-up is pending. */
static bool wake(void) {
  uint64_t one = 1;
  for (;;) {
    if (write(evfd, &one, sizeof one) == (ssize_t)sizeof one) return true;
    if (errno == EINTR) continue;
    return errno == EAGAIN;
  }
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
  if (done_len == MAX_SLOTS) {
    /* Impossible by construction (see done_bufs); losing an end would leak a tunnel silently. */
    fprintf(stderr, "portcullis_relay: end queue overflow\n");
    abort();
  }
  done_fill[done_len++] = (done_t){ s, gen, cause };
  int signal = !done_signalled;
  done_signalled = 1;
  pthread_mutex_unlock(&mu);
  if (!signal) return;
  napi_status st = napi_call_threadsafe_function(tsfn, NULL, napi_tsfn_nonblocking);
  if (st != napi_ok) {
    /* napi_closing: the environment is going away and nobody is left to hear. Otherwise let the
     * next end try again rather than leave every later end waiting for a call that never came. */
    pthread_mutex_lock(&mu);
    done_signalled = 0;
    pthread_mutex_unlock(&mu);
  }
}

/* Stop relaying: deregister, drop what was pending, report. The descriptors stay open for JS. */
static void finish(uint32_t s, int cause) {
  slot_t *t = &slots[s];
  if (!t->active) return;
  for (int d = 0; d < 2; d++) {
    /* ENOENT: registration failed at start, nothing to undo. Anything else means the descriptor
     * was closed under us, which the ownership rules forbid: say so in the cause. */
    if (epoll_ctl(ep, EPOLL_CTL_DEL, t->fd[d], NULL) != 0 && errno != ENOENT) cause = CAUSE_RELAY_ERROR;
  }
  for (int d = 0; d < 2; d++) {
    if (t->pend[d]) { stat_add(&stat_pending_bytes, -(int64_t)(t->pend_len[d] - t->pend_off[d])); stat_add(&stat_blocked, -1); }
    free(t->pend[d]);
    t->pend[d] = NULL;
    t->pend_len[d] = t->pend_off[d] = 0;
  }
  t->active = 0;
  t->prev->next = t->next;
  t->next->prev = t->prev;
  active_count--;
  stat_add(&stat_tunnels, -1);
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
  if (!t->pend[d]) { finish(s, CAUSE_NO_MEMORY); return 0; }
  memcpy(t->pend[d], p + off, n - off);
  t->pend_len[d] = n - off;
  t->pend_off[d] = 0;
  stat_add(&stat_pending_bytes, (int64_t)(n - off));
  stat_add(&stat_blocked, 1);
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
      /* Pass the half-close on; the other direction keeps flowing. A failure (the peer is gone
       * already) shows up as an error on that socket's next event. */
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
      stat_add(&stat_pending_bytes, -(int64_t)w);
      if (t->pend_off[d] == t->pend_len[d]) {
        stat_add(&stat_blocked, -1);
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
    /* The tunnel is over either way, but the peer's FIN may be queued ahead of its reset (a peer
     * that closed completely answers bytes reaching it afterwards with one, and both can arrive
     * in one wake-up). Read what is queued first: its bytes were sent, and its FIN makes this the
     * normal end it is. */
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
      t->fin_seen[side] = 1;
      pump(s, (int)side);
    }
    if (t->active && t->gen == gen) fail(s, (int)side);
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
  for (int d = 0; d < 2; d++) {
    if (!t->pend[d]) continue;
    stat_add(&stat_pending_bytes, (int64_t)t->pend_len[d]);
    stat_add(&stat_blocked, 1);
  }
  t->active = 1;
  t->last_ms = now_ms;
  t->next = active_head.next;
  t->prev = &active_head;
  active_head.next->prev = t;
  active_head.next = t;
  active_count++;
  stat_add(&stat_tunnels, 1);
  for (uint32_t side = 0; side < 2; side++) {
    struct epoll_event e = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
    e.data.u64 = ((uint64_t)s << 33) | ((uint64_t)side << 32) | t->gen;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, t->fd[side], &e) != 0) {
      /* The kernel's own memory or the epoll watch limit: neither peer's fault. */
      finish(s, errno == ENOMEM || errno == ENOSPC ? CAUSE_NO_MEMORY : CAUSE_RELAY_ERROR);
      return;
    }
  }
  /* Bytes JS had already (the 200 answer, the CONNECT head), then whatever is readable now. */
  for (int d = 0; d < 2; d++) if (t->pend[d]) flush(s, d); else pump(s, d);
}

static void run_commands(void) {
  uint64_t v;
  /* Reset the eventfd counter; EAGAIN (already zero) ends it, and any other error cannot lose a
   * command: the queue below is read regardless. */
  while (read(evfd, &v, sizeof v) > 0 || errno == EINTR) {}
  for (;;) {
    pthread_mutex_lock(&mu);
    if (cmd_len == 0) { pthread_mutex_unlock(&mu); return; }
    cmd_t batch[64];
    size_t n = cmd_len < 64 ? cmd_len : 64;
    memcpy(batch, cmds, n * sizeof *batch);
    memmove(cmds, cmds + n, (cmd_len - n) * sizeof *cmds);
    cmd_len -= n;
    pthread_mutex_unlock(&mu);
    /* cppcheck 2.10 takes n for 0 here (knownConditionTrueFalse), as if the cmd_len == 0 return
     * above were not taken; it was, so n >= 1. */
    // cppcheck-suppress knownConditionTrueFalse
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

/* The thread is leaving: tunnels queued or running end as `closed`, so JavaScript hears about
 * every one of them and closes its sockets; the next thread starts from an empty slate. */
static void end_everything(void) {
  run_commands();
  while (active_head.next != &active_head) finish((uint32_t)(active_head.next - slots), CAUSE_CLOSED);
  for (slot_t *r = retry_head, *nx; r; r = nx) {
    nx = r->retry_next;
    r->queued = 0;
  }
  retry_head = NULL;
}

static void *relay_main(void *arg) {
  (void)arg;
  struct epoll_event evs[256];
  now_ms = mono_ms();
  int64_t next_sweep = now_ms + SWEEP_MS;
  /* One acquire load per wake-up, not per chunk; a stop always comes with an eventfd wake-up. */
  while (!atomic_load_explicit(&stopping, memory_order_acquire)) {
    int timeout = retry_head ? 0 : (active_count ? SWEEP_MS : -1);
    int n = epoll_wait(ep, evs, 256, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      /* EBADF/EINVAL/EFAULT: our own epoll descriptor is gone. Nothing can be relayed any more,
       * and carrying on would spin; a crash with a reason beats tunnels that silently hang. */
      perror("portcullis_relay: epoll_wait");
      abort();
    }
    now_ms = mono_ms();
    stat_add(&stat_loops, 1);
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
  end_everything();
  return NULL;
}

/* ------------------------------------------------------------------ JavaScript side */

/* A failed N-API call: make sure JavaScript gets an exception naming it, return NULL. */
static napi_value napi_failed(napi_env env, const char *what) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return NULL;
  const napi_extended_error_info *info = NULL;
  char msg[256];
  snprintf(msg, sizeof msg, "%s failed: %s", what,
           napi_get_last_error_info(env, &info) == napi_ok && info && info->error_message ? info->error_message : "unknown error");
  napi_throw_error(env, "PCL_ERR_RELAY_NAPI", msg);
  return NULL;
}

#define NAPI_CALL(env, call)                                              \
  do {                                                                    \
    if ((call) != napi_ok) return napi_failed((env), #call);              \
  } while (0)

static napi_value throw_msg(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

/*
 * An end callback threw. The exception is cleared so the rest of the batch is still delivered
 * (otherwise every later N-API call in this batch fails, and those tunnels never close), then
 * raised at once as an uncaught exception, exactly what Node does with an exception left pending
 * by a thread-safe function call: under the gateway's crash guards (process.on('uncaughtException'))
 * it is logged and the process lives on; with no handler the process dies as it would have anyway.
 * Raising each one at once, in order, loses none of them and needs no references kept.
 */
static void raise_as_uncaught(napi_env env) {
  bool pending = false;
  napi_value err;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
  if (napi_get_and_clear_last_exception(env, &err) != napi_ok) return;
  if (napi_fatal_exception(env, err) != napi_ok) {
    /* JavaScript cannot run any more (the environment is stopping): nothing left to tell. */
  }
}

static napi_status deliver(napi_env env, napi_value cb, napi_value undef, const done_t *d) {
  uint32_t s = d->slot;
  napi_value args[5];
  napi_status st;
  double up, down;
  __atomic_load(&counters[s * 2], &up, __ATOMIC_RELAXED);
  __atomic_load(&counters[s * 2 + 1], &down, __ATOMIC_RELAXED);
  if ((st = napi_create_uint32(env, s, &args[0])) != napi_ok) return st;
  if ((st = napi_create_uint32(env, d->gen, &args[1])) != napi_ok) return st;
  if ((st = napi_create_int32(env, d->cause, &args[2])) != napi_ok) return st;
  if ((st = napi_create_double(env, up, &args[3])) != napi_ok) return st;
  if ((st = napi_create_double(env, down, &args[4])) != napi_ok) return st;
  return napi_call_function(env, undef, cb, 5, args, NULL);
}

static void call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  (void)ctx; (void)data;
  if (!env || !cb) return; /* the environment is being torn down */
  pthread_mutex_lock(&mu);
  done_t *batch = done_fill;
  size_t n = done_len;
  done_fill = batch == done_bufs[0] ? done_bufs[1] : done_bufs[0];
  done_len = 0;
  done_signalled = 0;
  pthread_mutex_unlock(&mu);
  napi_value undef;
  if (napi_get_undefined(env, &undef) != napi_ok) return;
  for (size_t i = 0; i < n; i++) {
    uint32_t s = batch[i].slot;
    /* The slot is free again once JS has heard: JS never refers to it after this call. Its
     * unused close commands are no longer needed either. */
    close_reserved -= close_budget[s];
    close_budget[s] = 0;
    free_list[free_top++] = s;
    if (deliver(env, cb, undef, &batch[i]) != napi_ok) raise_as_uncaught(env);
  }
}

/* Stop the relay thread; it ends every tunnel it had (reported as `closed`) before it returns. */
static void stop_thread(void) {
  if (!thread_running) return;
  atomic_store_explicit(&stopping, true, memory_order_release);
  if (!wake()) {
    /* Cannot happen while evfd is ours; joining a thread we cannot wake would hang for ever. */
    perror("portcullis_relay: eventfd write");
    abort();
  }
  pthread_join(thread, NULL);
  thread_running = false;
  atomic_store_explicit(&stopping, false, memory_order_relaxed);
}

static void env_cleanup(void *arg);

/* Undo set_up, last made first. Safe on a partial set-up. The thread is not running. */
static void tear_down(napi_env env, bool from_hook) {
  if (hook_added && !from_hook) napi_remove_env_cleanup_hook(env, env_cleanup, NULL);
  hook_added = false;
  /* Node does not free references for us at teardown (LeakSanitizer saw this one). */
  if (counters_ref) napi_delete_reference(env, counters_ref);
  counters_ref = NULL;
  /* At environment teardown Node finalises the thread-safe function itself. */
  if (tsfn && !from_hook) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  tsfn = NULL;
  if (evfd >= 0) close(evfd);
  evfd = -1;
  if (ep >= 0) close(ep);
  ep = -1;
  counters = NULL; /* the ArrayBuffer's memory belongs to V8 */
  for (size_t i = 0; i < cmd_len; i++) { free(cmds[i].pend[0]); free(cmds[i].pend[1]); }
  free(cmds); cmds = NULL; cmd_len = cmd_cap = 0;
  free(done_bufs[1]); free(done_bufs[0]);
  done_bufs[0] = done_bufs[1] = done_fill = NULL;
  done_len = 0;
  done_signalled = 0;
  free(close_budget); close_budget = NULL; close_reserved = 0;
  free(js_gens); js_gens = NULL;
  free(free_list); free_list = NULL; free_top = 0;
  free(slots); slots = NULL;
  owner_env = NULL;
}

static void env_cleanup(void *arg) {
  (void)arg;
  stop_thread();
  tear_down(owner_env, true);
}

/* Everything the thread needs, made once per environment. On failure: exception pending, NULL. */
static napi_value set_up(napi_env env, napi_value on_done) {
  slots = calloc(MAX_SLOTS, sizeof *slots);
  free_list = malloc(MAX_SLOTS * sizeof *free_list);
  js_gens = calloc(MAX_SLOTS, sizeof *js_gens);
  close_budget = calloc(MAX_SLOTS, sizeof *close_budget);
  done_bufs[0] = malloc(MAX_SLOTS * sizeof(done_t));
  done_bufs[1] = malloc(MAX_SLOTS * sizeof(done_t));
  if (!slots || !free_list || !js_gens || !close_budget || !done_bufs[0] || !done_bufs[1])
    return throw_msg(env, "PCL_ERR_RELAY_INIT", "native relay: out of memory");
  done_fill = done_bufs[0];
  for (uint32_t i = 0; i < MAX_SLOTS; i++) free_list[i] = MAX_SLOTS - 1 - i;
  free_top = MAX_SLOTS;
  active_head.next = active_head.prev = &active_head;
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return throw_msg(env, "PCL_ERR_RELAY_INIT", "native relay: epoll_create1 failed");
  evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (evfd < 0) return throw_msg(env, "PCL_ERR_RELAY_INIT", "native relay: eventfd failed");
  struct epoll_event e = { .events = EPOLLIN };
  e.data.u64 = UINT64_MAX;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, evfd, &e) != 0) return throw_msg(env, "PCL_ERR_RELAY_INIT", "native relay: epoll_ctl(eventfd) failed");
  void *ab_data = NULL;
  napi_value ab, arr, name;
  NAPI_CALL(env, napi_create_arraybuffer(env, MAX_SLOTS * 2 * sizeof(double), &ab_data, &ab));
  counters = ab_data; /* zero-filled by V8 */
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, MAX_SLOTS * 2, ab, 0, &arr));
  NAPI_CALL(env, napi_create_reference(env, arr, 1, &counters_ref));
  NAPI_CALL(env, napi_create_string_utf8(env, "portcullis-relay", NAPI_AUTO_LENGTH, &name));
  NAPI_CALL(env, napi_create_threadsafe_function(env, on_done, NULL, name, 0, 1, NULL, NULL, NULL, call_js, &tsfn));
  /* Live tunnels keep the process up through relay.ref(true), not through this. */
  NAPI_CALL(env, napi_unref_threadsafe_function(env, tsfn));
  /* Registered after the thread-safe function, so it runs before Node finalises that (LIFO). */
  NAPI_CALL(env, napi_add_env_cleanup_hook(env, env_cleanup, NULL));
  hook_added = true;
  owner_env = env;
  return arr;
}

/* init(onDone(slot, gen, cause, bytesUp, bytesDown), slotLimit?) -> Float64Array of counters. Starts
 * the relay thread if it is not running (first call, or after stop()); onDone is kept from the
 * first. slotLimit (1..MAX_SLOTS, default MAX_SLOTS) caps the tunnels start() takes from now on. */
static napi_value relay_init(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], arr;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (owner_env && env != owner_env) return throw_msg(env, "PCL_ERR_RELAY_ENV", "the relay belongs to the main thread");
  uint32_t limit = MAX_SLOTS;
  napi_valuetype limit_type = napi_undefined;
  if (argc >= 2) NAPI_CALL(env, napi_typeof(env, argv[1], &limit_type));
  if (limit_type != napi_undefined) {
    double v = 0;
    NAPI_CALL(env, napi_get_value_double(env, argv[1], &v));
    if (!(v >= 1 && v <= MAX_SLOTS) || v != (double)(uint32_t)v) return throw_msg(env, "PCL_ERR_RELAY_ARG", "init(onDone, slotLimit): slotLimit must be an integer from 1 to 65536");
    limit = (uint32_t)v;
  }
  bool made_now = false;
  if (!owner_env) {
    napi_valuetype type;
    NAPI_CALL(env, argc < 1 ? napi_invalid_arg : napi_typeof(env, argv[0], &type));
    if (type != napi_function) return throw_msg(env, "PCL_ERR_RELAY_ARG", "init(onDone): onDone must be a function");
    if (!set_up(env, argv[0])) { tear_down(env, false); return NULL; }
    made_now = true;
  }
  if (!thread_running) {
    int err = pthread_create(&thread, NULL, relay_main, NULL);
    if (err != 0) {
      /* Free what this call made; a set-up from an earlier call stays for its undelivered ends. */
      if (made_now) tear_down(env, false);
      char msg[128];
      snprintf(msg, sizeof msg, "native relay: could not start its thread: %s", strerror(err));
      return throw_msg(env, "PCL_ERR_RELAY_INIT", msg);
    }
    thread_running = true;
    /* Visible in top -H and /proc/<pid>/task/<tid>/comm; a nameless thread works just as well. */
    if (pthread_setname_np(thread, "pcl-relay") != 0) {}
  }
  slot_limit = limit;
  NAPI_CALL(env, napi_get_reference_value(env, counters_ref, &arr));
  return arr;
}

/* stop(): end every tunnel (each reported through onDone as `closed`) and stop the thread. */
static napi_value relay_stop(napi_env env, napi_callback_info info) {
  (void)info;
  if (owner_env && env != owner_env) return throw_msg(env, "PCL_ERR_RELAY_ENV", "the relay belongs to the main thread");
  stop_thread();
  return NULL;
}

/* 1 = copied (or nothing to copy), 0 = out of memory, -1 = N-API failure (exception pending). */
static int copy_initial(napi_env env, napi_value v, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  bool is_buf = false;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok) { napi_failed(env, "napi_is_buffer"); return -1; }
  if (!is_buf) return 1;
  void *data;
  size_t n;
  if (napi_get_buffer_info(env, v, &data, &n) != napi_ok) { napi_failed(env, "napi_get_buffer_info"); return -1; }
  if (n == 0) return 1;
  *out = malloc(n);
  if (!*out) return 0;
  memcpy(*out, data, n);
  *len = n;
  return 1;
}

/* Queue a command and wake the thread when the queue was empty. With `room_for` > 0, first make
 * room for that many commands beyond the reserved closes; false = out of memory or no wake-up. */
static bool push_cmd(cmd_t c, size_t room_for) {
  pthread_mutex_lock(&mu);
  size_t need = cmd_len + close_reserved + room_for;
  if (room_for && need > cmd_cap) {
    size_t cap = cmd_cap ? cmd_cap : 256;
    while (cap < need) cap *= 2;
    cmd_t *n = realloc(cmds, cap * sizeof *n);
    if (!n) { pthread_mutex_unlock(&mu); return false; }
    cmds = n;
    cmd_cap = cap;
  }
  if (cmd_len == cmd_cap) { pthread_mutex_unlock(&mu); return false; } /* a close beyond its budget */
  /* Commands already queued mean a wake-up is already on its way, and run_commands() drains the
   * queue until it is empty: under load one eventfd write serves many new tunnels. */
  bool first = cmd_len == 0;
  cmds[cmd_len++] = c;
  pthread_mutex_unlock(&mu);
  /* Wake after unlocking: the woken thread takes mu at once, and finding it still held cost a
   * futex sleep and wake-up per new tunnel (about 10% of a tunnel's set-up CPU in bench/). */
  if (!first || wake()) return true;
  /* The wake-up failed (evfd is not ours any more): take the command back unless the thread has
   * it already. JavaScript is the only producer, so a queue that is not empty holds just ours. */
  pthread_mutex_lock(&mu);
  bool taken_back = cmd_len > 0;
  cmd_len = 0;
  pthread_mutex_unlock(&mu);
  return !taken_back;
}

#define START_NO_SLOT -1
#define START_NO_MEMORY -2

static napi_value refused(napi_env env, int why) {
  napi_value ret;
  NAPI_CALL(env, napi_create_int32(env, why, &ret));
  return ret;
}

/* start(clientFd, upstreamFd, idleMs, toClient?: Buffer (not payload), toUpstream?: Buffer (payload))
 * -> slot * 2^32 + gen; or START_NO_SLOT (every slot under the limit taken, or a bad descriptor),
 * START_NO_MEMORY (no memory to copy the bytes or queue the command). */
static napi_value relay_start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], ret;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!thread_running || argc < 5 || env != owner_env) return throw_msg(env, "PCL_ERR_RELAY_STATE", "relay not initialised in this thread");
  int32_t cfd, ufd;
  double idle;
  NAPI_CALL(env, napi_get_value_int32(env, argv[0], &cfd));
  NAPI_CALL(env, napi_get_value_int32(env, argv[1], &ufd));
  NAPI_CALL(env, napi_get_value_double(env, argv[2], &idle));
  /* Slots in use run from the hand-over until JavaScript has heard the end (call_js frees them). */
  if (MAX_SLOTS - free_top >= slot_limit || cfd < 0 || ufd < 0) return refused(env, START_NO_SLOT);
  uint32_t s = free_list[--free_top];
  cmd_t c = { .op = 1, .slot = s, .gen = js_gens[s] + 1, .fd = { cfd, ufd }, .idle_ms = (int64_t)idle };
  /* The slot is idle: its previous tunnel was reported, so nothing writes its counters now, and
   * the thread reads them only after taking the command (under mu) queued below. */
  double zero = 0;
  __atomic_store(&counters[s * 2], &zero, __ATOMIC_RELAXED);
  __atomic_store(&counters[s * 2 + 1], &zero, __ATOMIC_RELAXED);
  /* pend[1] goes to the client (direction down), pend[0] to the upstream. Out of memory here
   * only means this tunnel is relayed in JavaScript. */
  int a = copy_initial(env, argv[3], &c.pend[1], &c.pend_len[1]);
  int b = a == 1 ? copy_initial(env, argv[4], &c.pend[0], &c.pend_len[0]) : 1;
  napi_status st = a == 1 && b == 1 ? napi_create_double(env, (double)s * 4294967296.0 + (double)c.gen, &ret) : napi_ok;
  if (st != napi_ok) napi_failed(env, "napi_create_double");
  if (a != 1 || b != 1 || st != napi_ok || !push_cmd(c, 1 + CLOSES_PER_TUNNEL)) {
    free(c.pend[0]);
    free(c.pend[1]);
    free_list[free_top++] = s;
    return a < 0 || b < 0 || st != napi_ok ? NULL : refused(env, START_NO_MEMORY);
  }
  js_gens[s] = c.gen;
  close_budget[s] = CLOSES_PER_TUNNEL;
  close_reserved += CLOSES_PER_TUNNEL;
  return ret;
}

/* close(slot, gen): stop relaying; onDone follows with cause CLOSED (or whatever ended it first). */
static napi_value relay_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t s, gen;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_msg(env, "PCL_ERR_RELAY_ARG", "close(slot, gen)");
  NAPI_CALL(env, napi_get_value_uint32(env, argv[0], &s));
  NAPI_CALL(env, napi_get_value_uint32(env, argv[1], &gen));
  /* No budget: the end was delivered already, or both sockets asked. Not running: stop() has
   * ended every tunnel and its report is on its way. */
  if (!thread_running || env != owner_env || s >= MAX_SLOTS || js_gens[s] != gen || close_budget[s] == 0) return NULL;
  if (!push_cmd((cmd_t){ .op = 2, .slot = s, .gen = gen }, 0)) {
    /* Only a failed eventfd write gets here (the room was reserved at start). */
    return throw_msg(env, "PCL_ERR_RELAY_STATE", "native relay: could not wake its thread");
  }
  close_budget[s]--;
  close_reserved--;
  return NULL;
}

/* ref(bool): keep the event loop alive while tunnels are relayed (their sockets are not reading). */
static napi_value relay_ref(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool on = false;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_msg(env, "PCL_ERR_RELAY_ARG", "ref(on)");
  NAPI_CALL(env, napi_get_value_bool(env, argv[0], &on));
  if (!tsfn || env != owner_env) return NULL;
  if (on) NAPI_CALL(env, napi_ref_threadsafe_function(env, tsfn));
  else NAPI_CALL(env, napi_unref_threadsafe_function(env, tsfn));
  return NULL;
}

/* pendingEnds(): ends the thread has reported that JavaScript has not been called for yet. For
 * tests that need several ends in one delivery; not used by the gateway. */
static napi_value relay_pending_ends(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value ret;
  pthread_mutex_lock(&mu);
  size_t n = done_len;
  pthread_mutex_unlock(&mu);
  NAPI_CALL(env, napi_create_uint32(env, (uint32_t)n, &ret));
  return ret;
}

/* Sets obj[key] = v. */
static napi_status put(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  napi_status st = napi_create_double(env, v, &n);
  return st == napi_ok ? napi_set_named_property(env, obj, key, n) : st;
}

/* stats() -> what /metrics shows of the relay: a handful of loads, cheap enough for every scrape.
 * Before the first init() everything is 0 and the limit is the one a start would get. */
static napi_value relay_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj;
  NAPI_CALL(env, napi_create_object(env, &obj));
  bool mine = owner_env && env == owner_env;
  /* free_top is the JavaScript thread's own; slots are taken and freed only there. */
  NAPI_CALL(env, put(env, obj, "slotsInUse", mine ? (double)(MAX_SLOTS - free_top) : 0));
  NAPI_CALL(env, put(env, obj, "slotLimit", (double)slot_limit));
  NAPI_CALL(env, put(env, obj, "tunnels", (double)atomic_load_explicit(&stat_tunnels, memory_order_relaxed)));
  NAPI_CALL(env, put(env, obj, "pendingBytes", (double)atomic_load_explicit(&stat_pending_bytes, memory_order_relaxed)));
  NAPI_CALL(env, put(env, obj, "blockedDirections", (double)atomic_load_explicit(&stat_blocked, memory_order_relaxed)));
  NAPI_CALL(env, put(env, obj, "loopIterations", (double)atomic_load_explicit(&stat_loops, memory_order_relaxed)));
  return obj;
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_value causes, name;
  NAPI_CALL(env, napi_create_array_with_length(env, CAUSE_COUNT, &causes));
  for (uint32_t i = 0; i < CAUSE_COUNT; i++) {
    NAPI_CALL(env, napi_create_string_utf8(env, cause_names[i], NAPI_AUTO_LENGTH, &name));
    NAPI_CALL(env, napi_set_element(env, causes, i, name));
  }
  NAPI_CALL(env, napi_object_freeze(env, causes));
  napi_property_descriptor props[] = {
    { "init", NULL, relay_init, NULL, NULL, NULL, napi_default, NULL },
    { "start", NULL, relay_start, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, relay_close, NULL, NULL, NULL, napi_default, NULL },
    { "ref", NULL, relay_ref, NULL, NULL, NULL, napi_default, NULL },
    { "stop", NULL, relay_stop, NULL, NULL, NULL, napi_default, NULL },
    { "pendingEnds", NULL, relay_pending_ends, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, relay_stats, NULL, NULL, NULL, napi_default, NULL },
    { "causes", NULL, NULL, NULL, NULL, causes, napi_enumerable, NULL },
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
