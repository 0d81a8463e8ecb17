/*
 * portcullis_deflate: gzip for upstream batches with libdeflate (vendored, native/vendor/libdeflate,
 * MIT). Its level 1 compresses the gateway's JSON batches ~1.7x faster than Node's zlib at the
 * same level, and batch gzip is the collector's largest single use of CPU (docs/design-notes.md).
 * Node's zlib (gzipSync) is the fallback where the addon is not built, and what the tests hold
 * this one to: any output inflates, with Node's gunzip, to the input.
 *
 * gzip(input: Uint8Array, level: 0..12, maxOutput: number) -> Buffer | null
 *   the gzip member of input (a Buffer with an ArrayBuffer of its own, so it can be moved to
 *   another thread), or null when it does not fit in maxOutput bytes (0: no limit).
 * deflateRun(input: Uint8Array, level: 1..12) -> Buffer
 *   a deflate run of input (below), for syslog entries spooled compressed.
 * gunzip(input: Uint8Array, outBytes: number) -> Buffer | null
 *   the data of the one gzip member that input is, when it inflates to exactly outBytes (the
 *   caller reads them from the trailer and bounds them); null for anything else: corrupt data, a
 *   different size, more than one member, bytes after the member. The caller then asks Node's
 *   zlib, which has the final word (and the error message). libdeflate never writes past
 *   outBytes, so a body that lies about its size cannot inflate beyond it here.
 * gunzip(input, outBytes, into: Uint8Array) -> Uint8Array | null
 *   the same, inflated into `into` (at least outBytes long, apart from input; a TypeError
 *   otherwise): a view of its first outBytes bytes, or null. For a caller that reads the data
 *   and lets it go at once (the emulator's count mode): no new buffer per body, so no external
 *   memory for V8 to collect.
 * crc32(input: Uint8Array, value: uint32) -> number
 *   the CRC-32 of input continued from value (0 to start), as zlib's crc32: libdeflate's uses
 *   PCLMULQDQ where the CPU has it, ~6x Node's zlib.crc32 on a 9 KB spool frame.
 *
 * A whole body at a time, synchronously: the callers are pool threads, and a batch is at most
 * the upstream limit. Each thread that loads the addon has its own compressors (one per level,
 * made on first use) and its own output buffer, kept as N-API instance data and freed with the
 * thread's environment: no state is shared between threads.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include "vendor/libdeflate/libdeflate.h"

#define MAX_LEVEL 12

typedef struct {
  struct libdeflate_compressor *compressors[MAX_LEVEL + 1];
  struct libdeflate_decompressor *decompressor;
  uint8_t *out;
  size_t out_cap;
} thread_state;

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  thread_state *s = data;
  for (int i = 0; i <= MAX_LEVEL; i++)
    if (s->compressors[i]) libdeflate_free_compressor(s->compressors[i]);
  if (s->decompressor) libdeflate_free_decompressor(s->decompressor);
  free(s->out);
  free(s);
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* The compressor for `level`, made on first use by this thread. */
static struct libdeflate_compressor *compressor_for(thread_state *s, int32_t level) {
  if (s->compressors[level] == NULL) s->compressors[level] = libdeflate_alloc_compressor(level);
  return s->compressors[level];
}

/* This thread's output buffer, grown to at least cap bytes; 0 if out of memory. */
static int reserve_out(thread_state *s, size_t cap) {
  if (s->out_cap >= cap) return 1;
  uint8_t *grown = malloc(cap);
  if (grown == NULL) return 0;
  free(s->out);
  s->out = grown;
  s->out_cap = cap;
  return 1;
}

/* What both functions take first: (input: Uint8Array, level: min_level..12, ...). 0 once thrown. */
typedef struct {
  thread_state *s;
  void *data;
  size_t n;
  int32_t level;
} input_args;

static int read_input(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage, int32_t min_level, input_args *a) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    throw_type(env, usage);
    return 0;
  }
  if (napi_get_instance_data(env, (void **)&a->s) != napi_ok || a->s == NULL) {
    throw_error(env, "addon not initialised");
    return 0;
  }
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, argv[0], &type, &a->n, &a->data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_type(env, "input must be a Uint8Array");
    return 0;
  }
  if (napi_get_value_int32(env, argv[1], &a->level) != napi_ok || a->level < min_level || a->level > MAX_LEVEL) {
    throw_type(env, min_level == 0 ? "level must be an integer 0..12" : "level must be an integer 1..12");
    return 0;
  }
  return 1;
}

static napi_value js_gzip(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  input_args a;
  if (!read_input(env, info, 3, argv, "gzip(input, level, maxOutput)", 0, &a)) return NULL;
  double max_output;
  if (napi_get_value_double(env, argv[2], &max_output) != napi_ok || !(max_output >= 0)) return throw_type(env, "maxOutput must be a number >= 0");

  struct libdeflate_compressor *c = compressor_for(a.s, a.level);
  if (c == NULL) return throw_error(env, "out of memory for a compressor");
  // The worst case of the whole input, or less when the caller only wants an output that fits:
  // libdeflate then stops (returns 0) as soon as it cannot, without compressing the rest.
  size_t cap = libdeflate_gzip_compress_bound(c, a.n);
  if (max_output > 0 && max_output < (double)cap) cap = (size_t)max_output;
  if (!reserve_out(a.s, cap)) return throw_error(env, "out of memory for the gzip output");
  size_t written = libdeflate_gzip_compress(c, a.n > 0 ? a.data : "", a.n, a.s->out, cap);
  napi_value result;
  if (written == 0) {
    napi_get_null(env, &result);
    return result;
  }
  // A copy of the output's length only: the buffer of its own can be moved to the main thread,
  // and this thread's output buffer is reused for the next batch.
  if (napi_create_buffer_copy(env, written, a.s->out, NULL, &result) != napi_ok) return NULL;
  return result;
}

#define RUN_PREFIX 8

/*
 * deflateRun(input: Uint8Array, level: 1..12) -> Buffer
 *   [CRC-32 of input, u32 LE][input length, u32 LE][raw DEFLATE of input ending in a sync flush]:
 *   a run that src/forwarder/pool/stitch.ts joins with others into one gzip member. An empty
 *   input gives the prefix alone.
 */
static napi_value js_deflate_run(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  input_args a;
  if (!read_input(env, info, 2, argv, "deflateRun(input, level)", 1, &a)) return NULL;
  if (a.n > UINT32_MAX) return throw_type(env, "input must be under 4 GiB");
  struct libdeflate_compressor *c = compressor_for(a.s, a.level);
  if (c == NULL) return throw_error(env, "out of memory for a compressor");
  size_t cap = RUN_PREFIX + libdeflate_deflate_compress_bound(c, a.n) + 16;
  if (!reserve_out(a.s, cap)) return throw_error(env, "out of memory for the deflate output");
  uint32_t crc = a.n > 0 ? libdeflate_crc32(0, a.data, a.n) : 0;
  size_t written = a.n > 0 ? libdeflate_deflate_compress_sync_flush(c, a.data, a.n, a.s->out + RUN_PREFIX, cap - RUN_PREFIX) : 0;
  if (a.n > 0 && written == 0) return throw_error(env, "deflate output over its bound");
  for (int i = 0; i < 4; i++) {
    a.s->out[i] = (uint8_t)(crc >> (8 * i));
    a.s->out[4 + i] = (uint8_t)((uint32_t)a.n >> (8 * i));
  }
  napi_value result;
  if (napi_create_buffer_copy(env, RUN_PREFIX + written, a.s->out, NULL, &result) != napi_ok) return NULL;
  return result;
}

/* What gunzip and crc32 take: (input: Uint8Array, a uint32). 0 once thrown. */
static int read_bytes_u32(napi_env env, napi_callback_info info, const char *usage, const char *u32_error, void **data, size_t *n, uint32_t *u32) {
  napi_value argv[2];
  size_t argc = 2;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    throw_type(env, usage);
    return 0;
  }
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, argv[0], &type, n, data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_type(env, "input must be a Uint8Array");
    return 0;
  }
  double value;
  if (napi_get_value_double(env, argv[1], &value) != napi_ok || !(value >= 0 && value <= UINT32_MAX) || value != (double)(uint32_t)value) {
    throw_type(env, u32_error);
    return 0;
  }
  *u32 = (uint32_t)value;
  return 1;
}

static napi_value js_gunzip(napi_env env, napi_callback_info info) {
  void *data;
  size_t n;
  uint32_t want;
  if (!read_bytes_u32(env, info, "gunzip(input, outBytes)", "outBytes must be an integer 0..2^32-1", &data, &n, &want)) return NULL;
  napi_value argv[3];
  size_t argc = 3;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype into_type = napi_undefined;
  if (argc >= 3 && napi_typeof(env, argv[2], &into_type) != napi_ok) return NULL;
  void *into = NULL;
  size_t into_len = 0, into_offset = 0;
  napi_value into_ab = NULL;
  if (into_type != napi_undefined) {
    napi_typedarray_type type;
    if (napi_get_typedarray_info(env, argv[2], &type, &into_len, &into, &into_ab, &into_offset) != napi_ok || type != napi_uint8_array)
      return throw_type(env, "into must be a Uint8Array");
    if (into_len < want) return throw_type(env, "into must hold outBytes bytes");
    // libdeflate reads its input while it writes: the two must not share bytes.
    const uint8_t *in_lo = data, *out_lo = into;
    if (n > 0 && want > 0 && out_lo < in_lo + n && in_lo < out_lo + want) return throw_type(env, "into must not overlap input");
  }
  thread_state *s;
  if (napi_get_instance_data(env, (void **)&s) != napi_ok || s == NULL) return throw_error(env, "addon not initialised");
  napi_value result;
  napi_get_null(env, &result);
  if (n == 0) return result;
  if (s->decompressor == NULL) s->decompressor = libdeflate_alloc_decompressor();
  if (s->decompressor == NULL) return throw_error(env, "out of memory for a decompressor");
  // Straight into the Buffer handed back, or the caller's: no copy. (A zero-length Buffer may
  // have no data.)
  void *out;
  napi_value buf;
  if (into_ab != NULL) {
    out = into;
    if (napi_create_typedarray(env, napi_uint8_array, want, into_ab, into_offset, &buf) != napi_ok) return NULL;
  } else if (napi_create_buffer(env, want, &out, &buf) != napi_ok) {
    return NULL;
  }
  size_t in_used = 0, out_len = 0;
  uint8_t spare;
  enum libdeflate_result r = libdeflate_gzip_decompress_ex(s->decompressor, data, n, want > 0 ? out : &spare, want, &in_used, &out_len);
  if (r != LIBDEFLATE_SUCCESS || in_used != n || out_len != want) return result;
  return buf;
}

static napi_value js_crc32(napi_env env, napi_callback_info info) {
  void *data;
  size_t n;
  uint32_t value;
  if (!read_bytes_u32(env, info, "crc32(input, value)", "value must be an integer 0..2^32-1", &data, &n, &value)) return NULL;
  uint32_t crc = n > 0 ? libdeflate_crc32(value, data, n) : value;
  napi_value result;
  if (napi_create_uint32(env, crc, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  thread_state *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  if (napi_set_instance_data(env, s, free_state, NULL) != napi_ok) {
    free(s);
    return NULL;
  }
  napi_value fn;
  if (napi_create_function(env, "gzip", NAPI_AUTO_LENGTH, js_gzip, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "gzip", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "deflateRun", NAPI_AUTO_LENGTH, js_deflate_run, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "deflateRun", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "gunzip", NAPI_AUTO_LENGTH, js_gunzip, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "gunzip", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "crc32", NAPI_AUTO_LENGTH, js_crc32, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "crc32", fn) != napi_ok) return NULL;
  return exports;
}
