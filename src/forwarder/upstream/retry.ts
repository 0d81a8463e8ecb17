/**
 * What is retried, and when. Only network errors, 408, 429, 500, 502, 503, 504 are retried;
 * Retry-After (seconds or an HTTP date) and retry-after-ms / x-ms-retry-after-ms are honoured
 * exactly; otherwise exponential backoff with jitter (base doubling per attempt, capped at retry.maxMs).
 */
export const RETRYABLE_STATUS: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

type Headers = Record<string, string | string[] | undefined>;

function first(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/** The server's requested delay in ms, or null when it gave none (or gave nonsense). */
export function retryAfterMs(headers: Headers, now = Date.now()): number | null {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const v = first(headers[name]);
    if (v !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.ceil(Number(v));
  }
  const ra = first(headers['retry-after']);
  if (ra === undefined) return null;
  if (/^\s*\d+\s*$/.test(ra)) return Number(ra) * 1000;
  const when = Date.parse(ra);
  if (Number.isNaN(when)) return null;
  return Math.max(0, when - now);
}

/**
 * Equal jitter: uniform in [cap/2, cap] with cap = min(max, base * 2^attempt); spreads a fleet's
 * retries out, and never retries at once (a full-jitter 0 would hammer a struggling upstream).
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + (random() * cap) / 2);
}
