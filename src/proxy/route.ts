import { isPortcullisError } from '../util/errors.js';
import { Events } from '../log/events.js';
import type { Policy, Target, CompiledRule } from '../policy/index.js';
import type { Resolver, ResolvedAddress } from '../dial/index.js';
import type { AccessRecord, Reason } from './access.js';
import { admitRoute, targetLabel, type ConnState, type ProxyContext } from './context.js';
import { refusal, refusalFor, type Refusal } from './refusal.js';

/** A destination the policy lets through, with the addresses it may be dialled at. */
export interface Route {
  rule: CompiledRule | null;
  /** 'report': policy would refuse (reportReason), report mode lets it through. */
  verdict: 'allow' | 'report';
  reportReason: Reason | null;
  addresses: ResolvedAddress[];
  dnsMs: number;
}

export interface RouteRefused {
  refused: Refusal;
  rule: CompiledRule | null;
}

/** Turn a dial/DNS failure into the status the client sees (502 vs 504) and a bounded reason. */
export function networkRefusal(err: unknown): Refusal {
  const code = isPortcullisError(err) ? err.code : 'PCL_ERR_CONNECT';
  const message = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'PCL_ERR_DNS_NOTFOUND':
      return refusal(502, 'dns_not_found', Events.NETWORK_ERROR, code, 'destination host name not found');
    case 'PCL_ERR_DNS_TIMEOUT':
      return refusal(504, 'dns_timeout', Events.NETWORK_ERROR, code, 'DNS lookup timed out');
    case 'PCL_ERR_DNS':
      return refusal(502, 'dns_error', Events.NETWORK_ERROR, code, message);
    case 'PCL_ERR_CONNECT_TIMEOUT':
      return refusal(504, 'connect_timeout', Events.NETWORK_ERROR, code, 'connecting to the destination timed out');
    case 'PCL_ERR_CONNECT_REFUSED':
      return refusal(502, 'connect_refused', Events.NETWORK_ERROR, code, 'destination refused the connection');
    default:
      return refusal(502, 'connect_error', Events.NETWORK_ERROR, code, message);
  }
}

/**
 * Decide, resolve, and vet the resolved addresses (private-address guard), in that order, so a
 * refused name is never even looked up. The addresses returned are the only ones that may be
 * dialled: the name is never resolved again, so DNS rebinding cannot slip past the guard.
 */
export async function route(policy: Policy, resolver: Resolver, target: Target): Promise<Route | RouteRefused> {
  const decision = policy.decide(target);
  if (decision.verdict === 'deny') return { refused: refusalFor(decision.reason), rule: decision.rule };
  const rule = decision.rule;
  let reportReason: Reason | null = decision.verdict === 'report' ? decision.reason : null;

  const t0 = performance.now();
  let resolved: ResolvedAddress[];
  try {
    resolved = await resolver.resolve(target.host);
  } catch (err) {
    return { refused: networkRefusal(err), rule };
  }
  const dnsMs = performance.now() - t0;

  if (rule === null) {
    // Only report mode gets here without a rule: everything is let through and logged.
    return { rule, verdict: 'report', reportReason, addresses: resolved, dnsMs };
  }
  const vetted: ResolvedAddress[] = [];
  let privateVerdict: 'deny' | 'report' | null = null;
  for (const a of resolved) {
    if (a.isPublic) {
      vetted.push(a);
      continue;
    }
    const d = policy.decideAddress(rule, false);
    if (d.verdict === 'allow') vetted.push(a);
    else if (d.verdict === 'report') {
      vetted.push(a);
      privateVerdict = 'report';
    } else privateVerdict ??= 'deny';
  }
  if (vetted.length === 0) return { refused: refusalFor('private_address'), rule };
  if (privateVerdict === 'report') reportReason ??= 'private_address';
  return { rule, verdict: reportReason ? 'report' : 'allow', reportReason, addresses: vetted, dnsMs };
}

export function isRefused(r: Route | RouteRefused): r is RouteRefused {
  return 'refused' in r;
}

/**
 * The steps CONNECT and plain HTTP share: parse the request-target (a parse error is a 400),
 * route it, and record the outcome on the access record. Returns null when `refuse` was called.
 */
export async function routeRequest(
  ctx: ProxyContext,
  rec: AccessRecord,
  state: ConnState,
  parse: () => Target,
  badTarget: { code: string; message: string },
  refuse: (r: Refusal) => void,
): Promise<{ target: Target; routed: Route } | null> {
  let target: Target;
  try {
    target = parse();
  } catch (err) {
    refuse(refusal(400, 'bad_request', Events.BAD_REQUEST, isPortcullisError(err) ? err.code : badTarget.code, badTarget.message));
    return null;
  }
  rec.target = targetLabel(target);
  const routed = await route(ctx.policy, ctx.resolver, target);
  if (isRefused(routed)) {
    rec.rule = routed.rule?.name ?? null;
    refuse(routed.refused);
    return null;
  }
  admitRoute(ctx, rec, routed, state);
  return { target, routed };
}
