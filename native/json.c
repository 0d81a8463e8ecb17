/*
 * portcullis_json: the forwarder's JSON validator in C (src/forwarder/pool/json-scan.ts is the
 * same scanner in JavaScript, its fallback and its reference). It says whether a text is JSON
 * (RFC 8259) and what its top level is, building nothing: the decode step keeps the client's
 * bytes, so it needs the verdict, not the values.
 *
 * scan(input: Uint8Array, result: Float64Array(5)) fills
 *   result[0] ok (1 or 0), [1] top (0 other, 1 array, 2 object), [2] items of a top-level array,
 *   [3] every such item an object (1 or 0), [4] where it failed (when not ok).
 * Bytes of 0x80 and above are taken as they are inside strings and refused outside them, as
 * JSON.parse does after UTF-8 decoding. Every read is bounds-checked; nesting depth is bounded
 * only by memory (the stack is on the heap), as JSON.parse's is.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { R_OK, R_TOP, R_ITEMS, R_ALL_OBJECTS, R_AT, R_SLOTS };
enum { TOP_OTHER = 0, TOP_ARRAY = 1, TOP_OBJECT = 2 };
enum { IN_ARRAY = 1, IN_OBJECT = 2 };
enum { VALUE, VALUE_OR_END, KEY_OR_END, KEY, AFTER };

/*
 * 1 for the bytes that end a run of plain string bytes: '"', '\\' and the control characters.
 * Constant, so the threads that load the addon (every decode lane thread) never write it.
 */
static const uint8_t string_stop[256] = {[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1};

static int is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static int is_hex(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/*
 * The index of the first string_stop byte at or after i (or n). Records are mostly string bytes:
 * with SSE2 (every x86-64) 16 are looked at per step, each 16-byte load wholly inside [0, n).
 */
static size_t skip_plain(const uint8_t *b, size_t n, size_t i) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i ctl_max = _mm_set1_epi8(0x1f);
  while (n - i >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
    /* max(v, 0x1f) == 0x1f exactly for the bytes 0x00-0x1f (unsigned). */
    __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), _mm_cmpeq_epi8(_mm_max_epu8(v, ctl_max), ctl_max));
    unsigned mask = (unsigned)_mm_movemask_epi8(stop);
    if (mask != 0) return i + (size_t)__builtin_ctz(mask);
    i += 16;
  }
#endif
  while (i < n && !string_stop[b[i]]) i++;
  return i;
}

/* From just after the opening quote: the index after the closing quote, or SIZE_MAX with *at set. */
static size_t scan_string(const uint8_t *b, size_t n, size_t i, size_t *at) {
  while (i < n) {
    i = skip_plain(b, n, i);
    if (i >= n) break;
    uint8_t c = b[i];
    if (c == '"') return i + 1;
    if (c == '\\') {
      if (i + 1 >= n) break;
      uint8_t e = b[i + 1];
      if (e == 'u') {
        if (i + 5 >= n || !is_hex(b[i + 2]) || !is_hex(b[i + 3]) || !is_hex(b[i + 4]) || !is_hex(b[i + 5])) {
          *at = i;
          return SIZE_MAX;
        }
        i += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        i += 2;
      } else {
        *at = i;
        return SIZE_MAX;
      }
    } else {
      *at = i; /* a control character */
      return SIZE_MAX;
    }
  }
  *at = n;
  return SIZE_MAX;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?: the index after it, or SIZE_MAX with *at set. */
static size_t scan_number(const uint8_t *b, size_t n, size_t i, size_t *at) {
  if (i < n && b[i] == '-') i++;
  if (i < n && b[i] == '0') {
    i++;
  } else if (i < n && b[i] >= '1' && b[i] <= '9') {
    while (i < n && is_digit(b[i])) i++;
  } else {
    *at = i;
    return SIZE_MAX;
  }
  if (i < n && b[i] == '.') {
    size_t j = i + 1;
    while (j < n && is_digit(b[j])) j++;
    if (j == i + 1) {
      *at = j;
      return SIZE_MAX;
    }
    i = j;
  }
  if (i < n && (b[i] == 'e' || b[i] == 'E')) {
    i++;
    if (i < n && (b[i] == '+' || b[i] == '-')) i++;
    size_t j = i;
    while (j < n && is_digit(b[j])) j++;
    if (j == i) {
      *at = j;
      return SIZE_MAX;
    }
    i = j;
  }
  return i;
}

static int word(const uint8_t *b, size_t n, size_t i, const char *w, size_t len) {
  return i + len <= n && memcmp(b + i, w, len) == 0;
}

typedef struct {
  int ok;
  int top;
  double items;
  int all_objects;
  size_t at;
} scan_result;

static scan_result scan(const uint8_t *b, size_t n) {
  scan_result r = {0, TOP_OTHER, 0, 1, 0};
  size_t cap = 64;
  uint8_t *stack = malloc(cap);
  if (stack == NULL) return r;
  size_t depth = 0;
  size_t i = 0;
  int state = VALUE;
  uint8_t top = 0;
  for (;;) {
    while (i < n && is_ws(b[i])) i++;
    if (state == AFTER) {
      if (depth == 0) {
        if (i != n) {
          r.at = i;
          goto done;
        }
        r.ok = 1;
        r.top = top == '[' ? TOP_ARRAY : top == '{' ? TOP_OBJECT : TOP_OTHER;
        goto done;
      }
      if (i >= n) {
        r.at = i;
        goto done;
      }
      uint8_t c = b[i];
      uint8_t inside = stack[depth - 1];
      if (c == ',') {
        i++;
        state = inside == IN_ARRAY ? VALUE : KEY;
      } else if ((inside == IN_ARRAY && c == ']') || (inside == IN_OBJECT && c == '}')) {
        i++;
        depth--;
      } else {
        r.at = i;
        goto done;
      }
      continue;
    }
    if (i >= n) {
      r.at = i;
      goto done;
    }
    uint8_t c = b[i];
    if ((state == KEY_OR_END && c == '}') || (state == VALUE_OR_END && c == ']')) {
      i++;
      depth--;
      state = AFTER;
      continue;
    }
    if (state == KEY_OR_END || state == KEY) {
      if (c != '"') {
        r.at = i;
        goto done;
      }
      i = scan_string(b, n, i + 1, &r.at);
      if (i == SIZE_MAX) goto done;
      while (i < n && is_ws(b[i])) i++;
      if (i >= n || b[i] != ':') {
        r.at = i;
        goto done;
      }
      i++;
      state = VALUE;
      continue;
    }
    /* A value. */
    if (depth == 0) {
      top = c;
    } else if (depth == 1 && top == '[') {
      r.items++;
      if (c != '{') r.all_objects = 0;
    }
    state = AFTER;
    if (c == '{' || c == '[') {
      if (depth == cap) {
        uint8_t *grown = realloc(stack, cap * 2);
        if (grown == NULL) {
          r.at = i;
          goto done;
        }
        stack = grown;
        cap *= 2;
      }
      stack[depth++] = c == '{' ? IN_OBJECT : IN_ARRAY;
      state = c == '{' ? KEY_OR_END : VALUE_OR_END;
      i++;
    } else if (c == '"') {
      i = scan_string(b, n, i + 1, &r.at);
      if (i == SIZE_MAX) goto done;
    } else if (c == 't') {
      if (!word(b, n, i, "true", 4)) {
        r.at = i;
        goto done;
      }
      i += 4;
    } else if (c == 'f') {
      if (!word(b, n, i, "false", 5)) {
        r.at = i;
        goto done;
      }
      i += 5;
    } else if (c == 'n') {
      if (!word(b, n, i, "null", 4)) {
        r.at = i;
        goto done;
      }
      i += 4;
    } else {
      i = scan_number(b, n, i, &r.at);
      if (i == SIZE_MAX) goto done;
    }
  }
done:
  free(stack);
  return r;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value js_scan(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return throw_type(env, "scan(input, result)");
  napi_typedarray_type t_in, t_out;
  size_t n_in, n_out;
  void *d_in, *d_out;
  if (napi_get_typedarray_info(env, argv[0], &t_in, &n_in, &d_in, NULL, NULL) != napi_ok || t_in != napi_uint8_array)
    return throw_type(env, "input must be a Uint8Array");
  if (napi_get_typedarray_info(env, argv[1], &t_out, &n_out, &d_out, NULL, NULL) != napi_ok || t_out != napi_float64_array || n_out < R_SLOTS)
    return throw_type(env, "result must be a Float64Array of 5");
  scan_result r = scan(n_in > 0 ? (const uint8_t *)d_in : (const uint8_t *)"", n_in);
  double *out = d_out;
  out[R_OK] = r.ok;
  out[R_TOP] = r.top;
  out[R_ITEMS] = r.items;
  out[R_ALL_OBJECTS] = r.all_objects;
  out[R_AT] = (double)r.at;
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "scan", NAPI_AUTO_LENGTH, js_scan, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "scan", fn) != napi_ok) return NULL;
  return exports;
}
