/**
 * Per-destination admission: an AIMD concurrency limit (grows by one after a window of successes,
 * halves on throttling or errors) under a hard maximum, and a request-rate budget (the Logs
 * Ingestion API allows 12,000 requests per minute per data collection rule).
 */
export class AdaptiveLimit {
  #limit: number;
  #inFlight = 0;
  #successes = 0;
  readonly #waiters: Array<() => void> = [];
  // Token bucket for the request rate.
  #tokens: number;
  #refilledAt = Date.now();
  readonly #perMs: number;
  readonly #burst: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly max: number,
    requestsPerMinute: number,
    initial = Math.min(2, max),
  ) {
    this.#limit = Math.max(1, initial);
    this.#perMs = requestsPerMinute / 60_000;
    // One second's worth at most: a burst after idling stays within the per-minute average.
    this.#burst = Math.max(1, Math.ceil(requestsPerMinute / 60));
    this.#tokens = this.#burst;
  }

  get limit(): number {
    return this.#limit;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Resolves when a request may start; `release()` after it ends. */
  acquire(): Promise<void> {
    if (this.#canStart()) {
      this.#start();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#schedule();
    });
  }

  /** `unused`: the slot was given back without a request (aborted, or held off): no verdict. */
  release(outcome: 'success' | 'throttled' | 'error' | 'unused'): void {
    this.#inFlight--;
    if (outcome === 'unused') {
      // The token it took is returned too: no request was made.
      this.#tokens = Math.min(this.#burst, this.#tokens + 1);
    } else if (outcome === 'success') {
      if (++this.#successes >= this.#limit && this.#limit < this.max) {
        this.#limit++;
        this.#successes = 0;
      }
    } else {
      this.#limit = Math.max(1, Math.floor(this.#limit / 2));
      this.#successes = 0;
    }
    this.#pump();
  }

  /** Wake every waiter (drain): they see the abort on their own. */
  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const w of this.#waiters.splice(0)) w();
  }

  #refill(): void {
    const now = Date.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#refilledAt) * this.#perMs);
    this.#refilledAt = now;
  }

  #canStart(): boolean {
    this.#refill();
    return this.#inFlight < this.#limit && this.#tokens >= 1 && this.#waiters.length === 0;
  }

  #start(): void {
    this.#inFlight++;
    this.#tokens -= 1;
  }

  #pump(): void {
    this.#refill();
    while (this.#waiters.length > 0 && this.#inFlight < this.#limit && this.#tokens >= 1) {
      this.#start();
      this.#waiters.shift()?.();
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer || this.#waiters.length === 0 || this.#inFlight >= this.#limit) return;
    // Waiting for tokens only: wake when one will be there.
    const wait = Math.max(1, Math.ceil((1 - this.#tokens) / this.#perMs));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#pump();
    }, wait);
    this.#timer.unref();
  }
}
