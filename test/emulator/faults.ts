/** Fault injection for the emulator: matched per request, consumed in the order they were added. */
export type EmulatedApi = 'logsIngestion' | 'dataCollector' | 'token' | 'managedIdentity';

export interface FaultMatch {
  /** Which API the fault hits; all when absent. */
  api?: EmulatedApi;
  /** DCR immutable id (Logs Ingestion) or workspace id (Data Collector). */
  target?: string;
  /** Stream (Logs Ingestion) or Log-Type (Data Collector). */
  stream?: string;
}

export type FaultAction =
  /** Answer with this status (and the API's error body); Retry-After in seconds and/or retry-after-ms. */
  | { kind: 'status'; status: number; retryAfterSec?: number; retryAfterMs?: number; code?: string; message?: string }
  /** Destroy the connection without an answer (the client sees a reset / socket hang up). */
  | { kind: 'reset' }
  /** Wait this long, then handle the request normally. */
  | { kind: 'delay'; ms: number };

export interface FaultSpec extends FaultMatch {
  action: FaultAction;
  /** How many matching requests it hits (default 1; Infinity for "until cancelled or untilMs"). */
  times?: number;
  /** Epoch ms after which the fault no longer applies (outage windows). */
  untilMs?: number;
}

export interface FaultHandle {
  readonly spec: FaultSpec;
  /** Requests this fault has hit so far. */
  hits(): number;
  /** Times of each hit (epoch ms). */
  hitTimes(): number[];
  cancel(): void;
}

interface ActiveFault {
  spec: FaultSpec;
  left: number;
  hitTimes: number[];
  cancelled: boolean;
}

export class FaultPlan {
  private faults: ActiveFault[] = [];

  add(spec: FaultSpec): FaultHandle {
    const f: ActiveFault = { spec, left: spec.times ?? 1, hitTimes: [], cancelled: false };
    this.faults.push(f);
    return {
      spec,
      hits: () => f.hitTimes.length,
      hitTimes: () => [...f.hitTimes],
      cancel: () => {
        f.cancelled = true;
      },
    };
  }

  /** "Refuse everything (matching) for durationMs": status 503 by default, with Retry-After. */
  outage(durationMs: number, opts: FaultMatch & { status?: number; retryAfterSec?: number } = {}): FaultHandle {
    const { status, retryAfterSec, ...match } = opts;
    const action: FaultAction = { kind: 'status', status: status ?? 503 };
    if (retryAfterSec !== undefined) action.retryAfterSec = retryAfterSec;
    return this.add({ ...match, action, times: Number.POSITIVE_INFINITY, untilMs: Date.now() + durationMs });
  }

  clear(): void {
    this.faults = [];
  }

  /** The fault for this request, consumed; undefined when none applies. */
  take(api: EmulatedApi, target: string | undefined, stream: string | undefined, now = Date.now()): FaultAction | undefined {
    this.faults = this.faults.filter((f) => !f.cancelled && f.left > 0 && (f.spec.untilMs === undefined || f.spec.untilMs > now));
    for (const f of this.faults) {
      const s = f.spec;
      if (s.api !== undefined && s.api !== api) continue;
      if (s.target !== undefined && s.target !== target) continue;
      if (s.stream !== undefined && s.stream !== stream) continue;
      f.left -= 1;
      f.hitTimes.push(now);
      return s.action;
    }
    return undefined;
  }
}
