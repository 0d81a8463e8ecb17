/*
 * portcullis_cef: the syslog collector's byte fast path (src/syslog/parse/fast.ts) in C, a block
 * of messages per call.
 *
 * Why: in JavaScript the fast path still costs ~8 µs of pool CPU per ~400-byte CEF message (a
 * typed-array access per byte read and per byte written); the same reading here costs well under
 * one. It accepts exactly what fast.ts accepts, or less, and writes the same bytes: anything it
 * does not take it hands back, one message at a time, to fast.ts and then the plain parser (which
 * stay the reference: test/syslog/native-cef.unit.test.ts holds all three to the same output).
 *
 * One call: writeBlock(input, pos, end, newline, out, outLen, inEntry, max, prefix, collector,
 * source, dropMask, maxSeverity, result). It reads messages from input[pos, end) (newline-framed,
 * or the "<len> <msg>" frames the listeners pack), writes each accepted message's
 * CommonSecurityLog record into out (records joined by ',' in the current entry, out[0, outLen),
 * with inEntry records in it, at most max bytes), and stops at the end of the block, at a message
 * it does not take, or at a record that does not fit the entry. What happened goes into
 * result (a Float64Array, see enum slot), never into a thrown error: bad bytes are just declined.
 *
 * No allocation per call, no state kept between calls except the per-thread key table (init).
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define FAST_MAX_LINE 8192
#define MAX_KEYS 512
#define TABLE_SIZE 2048 /* a power of two, at least 2 x MAX_KEYS */
#define MAX_KEY_LEN 64
#define MAX_COLUMN_JSON 64
#define MAX_UNMAPPED 128

enum type { T_STRING = 0, T_INT = 1, T_LONG = 2, T_OTHER = 3 };

/* result[] slots. */
enum slot { R_STATUS, R_POS, R_OUT_LEN, R_IN_ENTRY, R_RECORDS, R_MESSAGES, R_FILTERED, R_MSG_START, R_MSG_END, R_COUNT };
/* R_STATUS: */
enum status {
  S_DONE = 0,     /* the block is read */
  S_DECLINED = 1, /* input[R_MSG_START, R_MSG_END) is a message this does not take; R_POS is after it */
  S_FULL = 2,     /* the record at R_POS does not fit the current entry: close it and call again */
  S_REST = 3,     /* frames this does not read (a malformed length): the caller reads from R_POS */
};

typedef struct {
  int nkeys;
  uint8_t key[MAX_KEYS][MAX_KEY_LEN];
  uint32_t key_len[MAX_KEYS];
  uint64_t tail[MAX_KEYS]; /* key_tail() of each key */
  uint8_t column[MAX_KEYS][MAX_COLUMN_JSON]; /* ,"Column": */
  uint32_t column_len[MAX_KEYS];
  uint8_t type[MAX_KEYS];
  int16_t slot[TABLE_SIZE];
  uint32_t written[MAX_KEYS]; /* the record number that last wrote each key: a repeated key declines */
  uint32_t record;
  uint32_t unmapped[2 * MAX_UNMAPPED];
  uint8_t extra[2 * FAST_MAX_LINE + 64]; /* AdditionalExtensions, JSON-escaped: values at most double */
} state_t;

/*
 * A key's last (up to) 8 bytes as one word, the bytes before them zero: read as the 8 bytes that
 * end where the key does, so the caller guarantees 8 readable bytes there (a message's extension
 * starts well past its first 8 bytes; init() pads). Two keys of one length up to 8 are the same
 * key exactly when their words are equal.
 */
static inline uint64_t key_tail(const uint8_t *key_end, size_t n) {
  uint64_t v;
  memcpy(&v, key_end - 8, 8);
  if (n >= 8) return v;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return v & (~0ull >> (8 * (8 - n)));
#else
  return v >> (8 * (8 - n));
#endif
}

/* A key's slot, from its tail word, first byte and length (the per-byte hash this replaces was a tenth of the fast path's time). */
static inline uint32_t key_slot(uint64_t tail, uint8_t first, size_t n) {
  uint64_t h = (tail ^ ((uint64_t)first << 56) ^ (uint64_t)n) * 0xff51afd7ed558ccdull;
  return (uint32_t)(h >> 40) & (TABLE_SIZE - 1);
}

/* The key b[start, end) (8 readable bytes before end, see key_tail): its index, or -1. */
static int lookup_key(const state_t *st, const uint8_t *b, size_t start, size_t end) {
  size_t n = end - start;
  uint64_t tail = key_tail(b + end, n);
  uint32_t slot = key_slot(tail, b[start], n);
  for (;;) {
    int k = st->slot[slot];
    if (k < 0) return -1;
    if (st->key_len[k] == n && st->tail[k] == tail && (n <= 8 || memcmp(st->key[k], b + start, n - 8) == 0)) return k;
    slot = (slot + 1) & (TABLE_SIZE - 1);
  }
}

static inline bool printable(uint8_t c) { return c >= 0x20 && c <= 0x7e; }
static inline bool digit(uint8_t c) { return c >= '0' && c <= '9'; }
static inline bool upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }
static inline bool lower(uint8_t c) { return c >= 'a' && c <= 'z'; }
/* [A-Za-z0-9_.\-[\]]: an extension key's characters (cef.ts), as a table: one load per byte. */
#define KEY_CHARS_RANGE(lo, hi) [lo... hi] = true
static const bool KEY_CHARS[256] = {
  KEY_CHARS_RANGE('a', 'z'), KEY_CHARS_RANGE('A', 'Z'), KEY_CHARS_RANGE('0', '9'), ['_'] = true, ['.'] = true, ['-'] = true, ['['] = true, [']'] = true,
};
static inline bool key_char(uint8_t c) { return KEY_CHARS[c]; }

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
/*
 * Every byte of b[start, end) printable ASCII (0x20..0x7e), eight at a time: a byte below 0x20
 * borrows into its high bit when 0x20 is taken from it; one above 0x7e carries into it (or has
 * it) when 1 is added. A borrow or carry crossing into the next byte only follows a byte that is
 * already out of range, so the answer for the whole word is exact.
 */
static bool all_printable(const uint8_t *b, size_t start, size_t end) {
  size_t j = start;
#if defined(__SSE2__)
  /* Sixteen at a time: as signed bytes, 0x20..0x7e is exactly (0x1f, 0x7f). */
  const __m128i below = _mm_set1_epi8(0x1f), above = _mm_set1_epi8(0x7f);
  __m128i ok = _mm_set1_epi8(-1);
  for (; j + 16 <= end; j += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + j));
    ok = _mm_and_si128(ok, _mm_and_si128(_mm_cmpgt_epi8(v, below), _mm_cmplt_epi8(v, above)));
  }
  if (_mm_movemask_epi8(ok) != 0xffff) return false;
#endif
  uint64_t bad = 0;
  for (; j + 8 <= end; j += 8) {
    uint64_t x;
    memcpy(&x, b + j, 8);
    bad |= ((x - 0x20 * ONES) & ~x) | ((x + ONES) | x);
  }
  if ((bad & HIGHS) != 0) return false;
  for (; j < end; j++)
    if (!printable(b[j])) return false;
  return true;
}
/* [A-Za-z0-9._:%-]: an RFC 3164 hostname's characters (syslog.ts). */
static inline bool host_char(uint8_t c) {
  return lower(c) || upper(c) || digit(c) || c == '.' || c == '_' || c == ':' || c == '%' || c == '-';
}
static inline bool starts_cef(const uint8_t *b, size_t p, size_t end) {
  return p + 4 <= end && b[p] == 'C' && b[p + 1] == 'E' && b[p + 2] == 'F' && b[p + 3] == ':';
}

static const char *const MONTHS[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* `:? ` at p: the end of the match, or 0. */
static size_t ts_tail(const uint8_t *b, size_t p, size_t end) {
  if (p + 1 < end && b[p] == ':' && b[p + 1] == ' ') return p + 2;
  if (p < end && b[p] == ' ') return p + 1;
  return 0;
}

static bool uppers(const uint8_t *b, size_t p, size_t n, size_t end) {
  if (p + n > end) return false;
  for (size_t i = 0; i < n; i++)
    if (!upper(b[p + i])) return false;
  return true;
}

/*
 * syslog.ts's TS_3164 at p, with the regular expression's backtracking order:
 *   ^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (?:(\d{4}) )?(\d\d):(\d\d):(\d\d)(\.\d{1,6})?(?: ?[A-Z]{3,4})?:? 
 * and a month name it knows. The end of the match, or 0.
 */
static size_t ts_3164(const uint8_t *b, size_t p, size_t end) {
  if (p + 3 > end || !upper(b[p]) || !lower(b[p + 1]) || !lower(b[p + 2])) return 0;
  bool month = false;
  for (int m = 0; m < 12; m++)
    if (memcmp(b + p, MONTHS[m], 3) == 0) month = true;
  if (!month) return 0;
  p += 3;
  size_t spaces = 0;
  while (p < end && b[p] == ' ' && spaces < 2) p++, spaces++;
  if (spaces == 0) return 0;
  size_t d = 0;
  while (p < end && digit(b[p]) && d < 2) p++, d++;
  if (d == 0 || p >= end || b[p] != ' ') return 0;
  p++;
  if (p + 5 <= end && digit(b[p]) && digit(b[p + 1]) && digit(b[p + 2]) && digit(b[p + 3]) && b[p + 4] == ' ') p += 5;
  if (p + 8 > end) return 0;
  if (!digit(b[p]) || !digit(b[p + 1]) || b[p + 2] != ':' || !digit(b[p + 3]) || !digit(b[p + 4]) || b[p + 5] != ':' || !digit(b[p + 6]) ||
      !digit(b[p + 7]))
    return 0;
  p += 8;
  if (p < end && b[p] == '.') {
    size_t f = 0;
    while (p + 1 + f < end && digit(b[p + 1 + f]) && f < 7) f++;
    if (f == 0 || f > 6) return 0;
    p += 1 + f;
  }
  size_t t;
  if (p < end && b[p] == ' ') {
    if (uppers(b, p + 1, 4, end) && (t = ts_tail(b, p + 5, end))) return t;
    if (uppers(b, p + 1, 3, end) && (t = ts_tail(b, p + 4, end))) return t;
  }
  if (uppers(b, p, 4, end) && (t = ts_tail(b, p + 4, end))) return t;
  if (uppers(b, p, 3, end) && (t = ts_tail(b, p + 3, end))) return t;
  return ts_tail(b, p, end);
}

static bool two_digits(const uint8_t *b, size_t p, int max) {
  if (!digit(b[p]) || !digit(b[p + 1])) return false;
  return (b[p] - '0') * 10 + (b[p + 1] - '0') <= max;
}

/* A strict RFC 3339 time that Date.parse reads (so the plain path would too); others decline. */
static bool ts_5424(const uint8_t *b, size_t p, size_t end) {
  size_t n = end - p;
  if (n < 20) return false;
  for (int i = 0; i < 4; i++)
    if (!digit(b[p + i])) return false;
  if (b[p + 4] != '-' || b[p + 7] != '-' || b[p + 10] != 'T' || b[p + 13] != ':' || b[p + 16] != ':') return false;
  if (!two_digits(b, p + 5, 12) || !two_digits(b, p + 8, 31) || !two_digits(b, p + 11, 23) || !two_digits(b, p + 14, 59) || !two_digits(b, p + 17, 59))
    return false;
  if (b[p + 5] == '0' && b[p + 6] == '0') return false;
  if (b[p + 8] == '0' && b[p + 9] == '0') return false;
  size_t q = p + 19;
  if (q < end && b[q] == '.') {
    size_t f = 0;
    while (q + 1 + f < end && digit(b[q + 1 + f])) f++;
    if (f == 0 || f > 9) return false;
    q += 1 + f;
  }
  if (q + 1 == end && b[q] == 'Z') return true;
  return q + 6 == end && (b[q] == '+' || b[q] == '-') && two_digits(b, q + 1, 23) && b[q + 3] == ':' && two_digits(b, q + 4, 59);
}

/* The writer: every write checks room; a record that runs out of it is declined, never overruns. */
typedef struct {
  uint8_t *out;
  size_t o;
  size_t cap;
  bool overflow;
} writer_t;

static inline void put_byte(writer_t *w, uint8_t c) {
  if (w->o < w->cap) w->out[w->o++] = c;
  else w->overflow = true;
}

static inline void put(writer_t *w, const uint8_t *s, size_t n) {
  if (w->o <= w->cap && n <= w->cap - w->o) {
    memcpy(w->out + w->o, s, n);
    w->o += n;
  } else {
    w->overflow = true;
  }
}

/* Room for n more bytes (checked once for a value, then written byte by byte unchecked). */
static inline bool room(const writer_t *w, size_t n) { return w->o <= w->cap && n <= w->cap - w->o; }

/* A column's JSON name (a row of MAX_COLUMN_JSON bytes): copied whole when there is room, a fixed-size move. */
static inline void put_column(writer_t *w, const uint8_t column[MAX_COLUMN_JSON], size_t n) {
  if (room(w, MAX_COLUMN_JSON)) {
    memcpy(w->out + w->o, column, MAX_COLUMN_JSON);
    w->o += n;
  } else {
    put(w, column, n);
  }
}

/* b[start, end) as a JSON string: printable ASCII, so only '"' and '\' are escaped. */
static void quote_raw(writer_t *w, const uint8_t *b, size_t start, size_t end) {
  if (room(w, 2 * (end - start) + 2)) {
    uint8_t *out = w->out;
    size_t o = w->o;
    out[o++] = '"';
    for (size_t j = start; j < end; j++) {
      uint8_t c = b[j];
      if (c == '"' || c == '\\') out[o++] = '\\';
      out[o++] = c;
    }
    out[o++] = '"';
    w->o = o;
    return;
  }
  put_byte(w, '"');
  for (size_t j = start; j < end; j++) {
    uint8_t c = b[j];
    if (c == '"' || c == '\\') put_byte(w, '\\');
    put_byte(w, c);
  }
  put_byte(w, '"');
}

/* An extension value: CEF's escapes undone (unescapeValue in cef.ts), JSON's applied. */
static void copy_value(writer_t *w, const uint8_t *b, size_t start, size_t end) {
  size_t j = start;
  // The common value has neither '\\' nor '"': copied whole.
  if (room(w, end - start)) {
    uint8_t *out = w->out + w->o;
    size_t n = 0;
    for (; j < end; j++) {
      uint8_t c = b[j];
      if (c == '\\' || c == '"') break;
      out[n++] = c;
    }
    w->o += n;
  }
  for (; j < end; j++) {
    uint8_t c = b[j];
    if (c == '\\') {
      if (j + 1 >= end) {
        put_byte(w, '\\');
        put_byte(w, '\\');
        continue;
      }
      uint8_t n = b[++j];
      if (n == 'n' || n == 'r') {
        put_byte(w, '\\');
        put_byte(w, n);
      } else if (n == '=' || n == '|') {
        put_byte(w, n);
      } else if (n == '\\') {
        put_byte(w, '\\');
        put_byte(w, '\\');
      } else {
        put_byte(w, '\\');
        put_byte(w, '\\');
        if (n == '"') put_byte(w, '\\');
        put_byte(w, n);
      }
      continue;
    }
    if (c == '"') put_byte(w, '\\');
    put_byte(w, c);
  }
}

/* /^-?[0-9]{1,max_digits}$/ into *n; false when it is not that. */
static bool integer_of(const uint8_t *b, size_t start, size_t end, size_t max_digits, int64_t *n) {
  size_t j = start;
  bool negative = j < end && b[j] == '-';
  if (negative) j++;
  if (end - j < 1 || end - j > max_digits) return false;
  int64_t v = 0;
  for (; j < end; j++) {
    if (!digit(b[j])) return false;
    v = v * 10 + (b[j] - '0');
  }
  *n = negative ? -v : v;
  return true;
}

static const char DIGIT_PAIRS[201] =
  "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869"
  "707172737475767778798081828384858687888990919293949596979899";

/* String(n) in JavaScript for a safe integer (-0 is "0"): two digits per division. */
static void put_integer(writer_t *w, int64_t n) {
  uint8_t tmp[24];
  size_t k = sizeof tmp;
  uint64_t u = n < 0 ? (uint64_t)(-(n + 1)) + 1 : (uint64_t)n;
  while (u >= 100) {
    const char *pair = DIGIT_PAIRS + 2 * (u % 100);
    u /= 100;
    tmp[--k] = (uint8_t)pair[1];
    tmp[--k] = (uint8_t)pair[0];
  }
  if (u >= 10) {
    tmp[--k] = (uint8_t)DIGIT_PAIRS[2 * u + 1];
    tmp[--k] = (uint8_t)DIGIT_PAIRS[2 * u];
  } else {
    tmp[--k] = (uint8_t)('0' + u);
  }
  if (n < 0) tmp[--k] = '-';
  put(w, tmp + k, sizeof tmp - k);
}

static bool same_bytes(const uint8_t *b, size_t a0, size_t a1, size_t c0, size_t c1) {
  return a1 - a0 == c1 - c0 && memcmp(b + a0, b + c0, a1 - a0) == 0;
}

static const uint8_t DEVICE_PRODUCT[] = ",\"DeviceProduct\":";
static const uint8_t DEVICE_VERSION[] = ",\"DeviceVersion\":";
static const uint8_t DEVICE_EVENT_CLASS_ID[] = ",\"DeviceEventClassID\":";
static const uint8_t ACTIVITY[] = ",\"Activity\":";
static const uint8_t LOG_SEVERITY[] = ",\"LogSeverity\":";
static const uint8_t ADDITIONAL_EXTENSIONS[] = ",\"AdditionalExtensions\":\"";
#define PUT_LIT(w, s) put((w), (s), sizeof(s) - 1)

typedef struct {
  const uint8_t *prefix, *collector, *source;
  size_t prefix_len, collector_len, source_len;
  uint32_t drop_mask;
  int max_severity;
} consts_t;

enum outcome { O_WRITTEN, O_FILTERED, O_DECLINED };

/*
 * One message b[start, end) (CR and NUL already cut): its record at w->o (fast.ts's write, step
 * for step), or filtered, or declined.
 */
static enum outcome write_message(state_t *st, const uint8_t *b, size_t start, size_t end, const consts_t *k, writer_t *w) {
  if (end > start && b[end - 1] == '\n') end--;
  if (end - start > FAST_MAX_LINE) return O_DECLINED;
  // Whatever else a message holds, a byte outside printable ASCII sends it the plain way: checked
  // here once, so the scans below look for their delimiters only.
  if (!all_printable(b, start, end)) return O_DECLINED;
  int facility = -1, severity = -1;
  size_t p = start;
  if (p < end && b[p] == '<') {
    int n = 0;
    size_t q = p + 1;
    while (q < end && q <= p + 4 && digit(b[q])) n = n * 10 + (b[q++] - '0');
    size_t digits = q - p - 1;
    if (q >= end || b[q] != '>' || digits < 1 || digits > 3 || (digits > 1 && b[p + 1] == '0') || n > 191) return O_DECLINED;
    facility = n >> 3;
    severity = n & 7;
    p = q + 1;
  }
  size_t host_start = 0, host_end = 0;
  bool host = false;
  if (facility >= 0 && p + 1 < end && b[p] == '1' && b[p + 1] == ' ') {
    size_t tok[10];
    size_t q = p + 2;
    for (int t = 0; t < 5; t++) {
      size_t sp = q;
      while (sp < end && b[sp] != ' ') sp++;
      if (sp >= end || sp == q) return O_DECLINED;
      tok[2 * t] = q;
      tok[2 * t + 1] = sp;
      q = sp + 1;
    }
    if (!(tok[1] - tok[0] == 1 && b[tok[0]] == '-') && !ts_5424(b, tok[0], tok[1])) return O_DECLINED;
    if (!(tok[3] - tok[2] == 1 && b[tok[2]] == '-')) {
      host = true;
      host_start = tok[2];
      host_end = tok[3];
    }
    if (q + 1 >= end || b[q] != '-' || b[q + 1] != ' ') return O_DECLINED;
    q += 2;
    while (q < end && b[q] == ' ') q++;
    p = q;
  } else if (!starts_cef(b, p, end)) {
    if (facility < 0) return O_DECLINED;
    size_t t = ts_3164(b, p, end);
    if (t == 0) return O_DECLINED;
    p = t;
    if (!starts_cef(b, p, end)) {
      size_t sp = p;
      while (sp < end && b[sp] != ' ') {
        if (!host_char(b[sp])) return O_DECLINED;
        sp++;
      }
      if (sp >= end || sp == p || sp - p > 255 || b[sp - 1] == ':') return O_DECLINED;
      host = true;
      host_start = p;
      host_end = sp;
      p = sp + 1;
    }
  }
  if (!starts_cef(b, p, end)) return O_DECLINED;
  size_t f[8];
  size_t q = p + 4;
  f[0] = q;
  for (int i = 1; i <= 7; i++) {
    while (q < end && b[q] != '|') {
      if (b[q] == '\\') return O_DECLINED;
      q++;
    }
    if (q >= end) return O_DECLINED;
    q++;
    f[i] = q;
  }
  size_t v = f[0], v_end = f[1] - 1, v_digits = 0;
  int64_t version = 0;
  while (v < v_end && b[v] == ' ') v++;
  while (v < v_end && digit(b[v])) {
    if (version <= 1) version = version * 10 + (b[v] - '0');
    v++, v_digits++;
  }
  while (v < v_end && b[v] == ' ') v++;
  if (v_digits == 0 || v != v_end || version > 1) return O_DECLINED;
  if ((facility >= 0 && (k->drop_mask >> facility) & 1u) || severity > k->max_severity) return O_FILTERED;

  put(w, k->prefix, k->prefix_len);
  if (host) quote_raw(w, b, host_start, host_end);
  else put(w, k->source, k->source_len);
  put(w, k->collector, k->collector_len);
  quote_raw(w, b, f[1], f[2] - 1);
  PUT_LIT(w, DEVICE_PRODUCT);
  quote_raw(w, b, f[2], f[3] - 1);
  PUT_LIT(w, DEVICE_VERSION);
  quote_raw(w, b, f[3], f[4] - 1);
  PUT_LIT(w, DEVICE_EVENT_CLASS_ID);
  quote_raw(w, b, f[4], f[5] - 1);
  PUT_LIT(w, ACTIVITY);
  quote_raw(w, b, f[5], f[6] - 1);
  PUT_LIT(w, LOG_SEVERITY);
  quote_raw(w, b, f[6], f[7] - 1);

  uint32_t me = ++st->record;
  if (me == 0) { /* wrapped: no stale mark may equal a new record's number */
    memset(st->written, 0, sizeof st->written);
    me = st->record = 1;
  }
  writer_t x = { st->extra, 0, sizeof st->extra, false };
  size_t unmapped = 0;
  const size_t ext = f[7];
  size_t key_start = 0, key_end = 0;
  bool have_key = false;
  size_t i = ext;
  for (;;) {
    const uint8_t *eq = i < end ? memchr(b + i, '=', end - i) : NULL;
    i = eq ? (size_t)(eq - b) : end;
    size_t s = 0;
    bool is_key = false;
    if (i < end) {
      size_t bs = i;
      // b[ext - 1] is the header's last '|': neither scan runs past it, so neither tests for ext.
      while (b[bs - 1] == '\\') bs--;
      if (((i - bs) & 1) == 0) {
        s = i;
        while (key_char(b[s - 1])) s--;
        is_key = !(s == i || (s > ext && b[s - 1] != ' '));
      }
    }
    if (!is_key && i < end) {
      i++;
      continue;
    }
    if (have_key) {
      size_t ve = i < end ? s : end;
      size_t vs = key_end + 1;
      while (b[ve - 1] == ' ') ve--; /* b[vs - 1] is the key's '=' */
      int key = lookup_key(st, b, key_start, key_end);
      bool mapped = false;
      if (key >= 0) {
        if (st->written[key] == me) return O_DECLINED;
        st->written[key] = me;
        uint8_t t = st->type[key];
        if (t == T_OTHER) return O_DECLINED;
        if (t == T_STRING) {
          put_column(w, st->column[key], st->column_len[key]);
          put_byte(w, '"');
          copy_value(w, b, vs, ve);
          put_byte(w, '"');
          mapped = true;
        } else {
          int64_t n;
          if (integer_of(b, vs, ve, t == T_INT ? 10 : 18, &n) &&
              (t == T_INT ? (n >= -2147483647 && n <= 2147483647) : (n >= -9007199254740991LL && n <= 9007199254740991LL))) {
            put_column(w, st->column[key], st->column_len[key]);
            put_integer(w, n);
            mapped = true;
          }
        }
      } else {
        for (size_t u = 0; u < unmapped; u += 2)
          if (same_bytes(b, st->unmapped[u], st->unmapped[u + 1], key_start, key_end)) return O_DECLINED;
        if (unmapped + 2 > 2 * MAX_UNMAPPED) return O_DECLINED;
        st->unmapped[unmapped++] = (uint32_t)key_start;
        st->unmapped[unmapped++] = (uint32_t)key_end;
      }
      if (!mapped) {
        if (x.o > 0) put_byte(&x, ';');
        put(&x, b + key_start, key_end - key_start);
        put_byte(&x, '=');
        copy_value(&x, b, vs, ve);
      }
    }
    if (i >= end) break;
    have_key = true;
    key_start = s;
    key_end = i;
    i++;
  }
  if (x.overflow) return O_DECLINED;
  if (x.o > 0) {
    PUT_LIT(w, ADDITIONAL_EXTENSIONS);
    put(w, x.out, x.o);
    put_byte(w, '"');
  }
  put_byte(w, '}');
  return w->overflow ? O_DECLINED : O_WRITTEN;
}

/* ---- N-API ------------------------------------------------------------------------------------ */

static bool typed_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &off) != napi_ok || type != napi_uint8_array) return false;
  *data = p;
  return true;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "PCL_ERR_CEF_ARGS", msg);
  return NULL;
}

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* init(keys: string[], columnJson: string[], types: number[]): the mapped extension keys, once per thread. */
static napi_value cef_init(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return throw_type(env, "init(keys, columnJson, types)");
  uint32_t n = 0;
  if (napi_get_array_length(env, argv[0], &n) != napi_ok || n > MAX_KEYS) return throw_type(env, "init: keys must be an array of at most 512");
  state_t *st = calloc(1, sizeof *st);
  if (!st) {
    napi_throw_error(env, "PCL_ERR_CEF_NO_MEMORY", "init: out of memory");
    return NULL;
  }
  memset(st->slot, 0xff, sizeof st->slot);
  for (uint32_t i = 0; i < n; i++) {
    napi_value key, column, type;
    size_t key_len = 0, column_len = 0;
    int32_t t = 0;
    if (napi_get_element(env, argv[0], i, &key) != napi_ok || napi_get_element(env, argv[1], i, &column) != napi_ok ||
        napi_get_element(env, argv[2], i, &type) != napi_ok ||
        napi_get_value_string_latin1(env, key, (char *)st->key[i], MAX_KEY_LEN, &key_len) != napi_ok ||
        napi_get_value_string_latin1(env, column, (char *)st->column[i], MAX_COLUMN_JSON, &column_len) != napi_ok ||
        napi_get_value_int32(env, type, &t) != napi_ok || key_len == 0 || key_len >= MAX_KEY_LEN - 1 || column_len >= MAX_COLUMN_JSON - 1 ||
        t < T_STRING || t > T_OTHER) {
      free(st);
      return throw_type(env, "init: a key, column or type is missing or too long");
    }
    st->key_len[i] = (uint32_t)key_len;
    st->column_len[i] = (uint32_t)column_len;
    st->type[i] = (uint8_t)t;
    uint8_t padded[8 + MAX_KEY_LEN] = { 0 };
    memcpy(padded + 8, st->key[i], key_len);
    st->tail[i] = key_tail(padded + 8 + key_len, key_len);
    uint32_t slot = key_slot(st->tail[i], st->key[i][0], key_len);
    while (st->slot[slot] >= 0) slot = (slot + 1) & (TABLE_SIZE - 1);
    st->slot[slot] = (int16_t)i;
  }
  st->nkeys = (int)n;
  void *old = NULL;
  if (napi_get_instance_data(env, &old) == napi_ok && old) free(old);
  if (napi_set_instance_data(env, st, free_state, NULL) != napi_ok) {
    free(st);
    napi_throw_error(env, "PCL_ERR_CEF_INIT", "init: cannot keep the key table");
    return NULL;
  }
  return NULL;
}

static bool get_size(napi_env env, napi_value v, size_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 9007199254740991.0) return false;
  *out = (size_t)d;
  return true;
}

static napi_value cef_write_block(napi_env env, napi_callback_info info) {
  size_t argc = 14;
  napi_value argv[14];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 14) return throw_type(env, "writeBlock: 14 arguments");
  state_t *st = NULL;
  if (napi_get_instance_data(env, (void **)&st) != napi_ok || !st) return throw_type(env, "writeBlock before init");
  uint8_t *in, *out, *prefix, *collector, *source;
  size_t in_len, out_cap, prefix_len, collector_len, source_len, pos, end, out_len, in_entry, max;
  bool newline;
  uint32_t drop_mask;
  int32_t max_severity;
  napi_typedarray_type rtype;
  size_t rlen, roff;
  void *rdata = NULL;
  napi_value rab;
  if (!typed_bytes(env, argv[0], &in, &in_len) || !get_size(env, argv[1], &pos) || !get_size(env, argv[2], &end) ||
      napi_get_value_bool(env, argv[3], &newline) != napi_ok || !typed_bytes(env, argv[4], &out, &out_cap) || !get_size(env, argv[5], &out_len) ||
      !get_size(env, argv[6], &in_entry) || !get_size(env, argv[7], &max) || !typed_bytes(env, argv[8], &prefix, &prefix_len) ||
      !typed_bytes(env, argv[9], &collector, &collector_len) || !typed_bytes(env, argv[10], &source, &source_len) ||
      napi_get_value_uint32(env, argv[11], &drop_mask) != napi_ok || napi_get_value_int32(env, argv[12], &max_severity) != napi_ok ||
      napi_get_typedarray_info(env, argv[13], &rtype, &rlen, &rdata, &rab, &roff) != napi_ok || rtype != napi_float64_array || rlen < R_COUNT)
    return throw_type(env, "writeBlock: an argument has the wrong type");
  if (end > in_len || pos > end || out_len > out_cap) return throw_type(env, "writeBlock: a position is out of range");
  double *result = rdata;
  const consts_t k = { prefix, collector, source, prefix_len, collector_len, source_len, drop_mask, max_severity };
  double records = 0, messages = 0, filtered = 0;
  enum status status = S_DONE;
  size_t msg_start = 0, msg_end = 0;
  while (pos < end) {
    size_t start, stop, next;
    if (newline) {
      const uint8_t *lf = memchr(in + pos, '\n', end - pos);
      stop = lf ? (size_t)(lf - in) : end;
      start = pos;
      next = stop + 1;
      if (stop == start) {
        pos = next;
        continue;
      }
    } else {
      size_t q = pos, len = 0, digits = 0;
      while (q < end && digit(in[q]) && digits < 9) len = len * 10 + (in[q++] - '0'), digits++;
      if (digits == 0 || q >= end || in[q] != ' ') {
        status = S_REST;
        break;
      }
      start = q + 1;
      stop = len < end - start ? start + len : end;
      next = stop;
      if (stop == start) {
        pos = next;
        continue;
      }
    }
    size_t trimmed = stop;
    while (trimmed > start && (in[trimmed - 1] == '\r' || in[trimmed - 1] == 0)) trimmed--;
    if (trimmed == start) {
      pos = next;
      continue;
    }
    size_t at = in_entry > 0 ? out_len + 1 : out_len;
    if (at >= out_cap) { /* no room at all after the entry (the caller keeps headroom past max): close it */
      status = in_entry > 0 ? S_FULL : S_DECLINED;
      msg_start = start;
      msg_end = stop;
      if (status == S_DECLINED) pos = next;
      break;
    }
    writer_t w = { out, at, out_cap, false };
    enum outcome o = write_message(st, in, start, trimmed, &k, &w);
    if (o == O_DECLINED) {
      status = S_DECLINED;
      msg_start = start;
      msg_end = stop;
      pos = next;
      break;
    }
    if (o == O_FILTERED) {
      messages++;
      filtered++;
      pos = next;
      continue;
    }
    if (w.o - at > max) { /* larger than an entry: the plain path cuts it */
      status = S_DECLINED;
      msg_start = start;
      msg_end = stop;
      pos = next;
      break;
    }
    if (in_entry > 0 && w.o > max) {
      status = S_FULL;
      break;
    }
    if (in_entry > 0) out[out_len] = ',';
    out_len = w.o;
    in_entry++;
    records++;
    messages++;
    pos = next;
  }
  result[R_STATUS] = status;
  result[R_POS] = (double)(pos < end ? pos : end);
  result[R_OUT_LEN] = (double)out_len;
  result[R_IN_ENTRY] = (double)in_entry;
  result[R_RECORDS] = records;
  result[R_MESSAGES] = messages;
  result[R_FILTERED] = filtered;
  result[R_MSG_START] = (double)msg_start;
  result[R_MSG_END] = (double)msg_end;
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "init", NULL, cef_init, NULL, NULL, NULL, napi_default, NULL },
    { "writeBlock", NULL, cef_write_block, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
