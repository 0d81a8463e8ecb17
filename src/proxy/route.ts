import { isPortcullisError } from '../util/errors.js';
import { Errors, entryForCode, withDetail, type Refusal } from '../errors/catalogue.js';
import { ANONYMOUS, type ClientIdentity, type Policy, type Target, type CompiledRule } from '../policy/index.js';
import { toResolved, type Dialer, type DialTarget, type ResolvedAddress } from '../dial/index.js';
import type { AccessRecord, Reason } from './access.js';
import { admitRoute, targetLabel, type ConnState, type ProxyContext } from './context.js';
import { networkRefusal, policyRefusal } from './refusal.js';

/**
 * A destination the policy lets through: the addresses it may be dialled at and the dialer that
 * reaches it (itself a DialTarget, so it is handed to the dialer as it is).
 */
export interface Route extends DialTarget {
  rule: CompiledRule | null;
  /** 'report': policy would refuse (reportReason), report mode lets it through. */
  verdict: 'allow' | 'report';
  reportReason: Reason | null;
  addresses: readonly ResolvedAddress[];
  dnsMs: number;
  dialer: Dialer;
}

/** The relay proxies in force (upstreamProxy), and the destinations that bypass them. */
export interface RelayChoice {
  readonly dialer: Dialer;
  readonly bypass: { matches(target: Target): boolean };
}

export interface RouteRefused {
  refused: Refusal;
  rule: CompiledRule | null;
  /** Why, beyond the reason (a group allowlist that left the destination out): for the access record. */
  detail?: string;
}

/** What routing needs from the proxy context (policy and resolver are swapped on reload). */
export type RouteContext = Pick<ProxyContext, 'policy' | 'resolver' | 'dialer'> & { readonly relay?: RelayChoice | null };

/**
 * Decide, resolve, and vet the resolved addresses (private-address guard), in that order, so a
 * refused name is never even looked up; then choose the dialer. The addresses returned are the
 * only ones that may be dialled: the name is never resolved again, so DNS rebinding cannot slip
 * past the guard.
 */
export async function route(ctx: RouteContext, target: Target, client: string, identity: ClientIdentity = ANONYMOUS): Promise<Route | RouteRefused> {
  const { policy } = ctx;
  const decision = policy.decide({ target, client, identity });
  if (decision.verdict === 'deny') {
    const refused = policyRefusal(decision.reason);
    if (decision.detail === undefined) return { refused, rule: decision.rule };
    return { refused: withDetail(refused, decision.detail), rule: decision.rule, detail: decision.detail };
  }
  const rule = decision.rule;
  let reportReason: Reason | null = decision.verdict === 'report' ? decision.reason : null;
  const relay = ctx.relay;
  if (relay && !relay.bypass.matches(target)) return routeViaRelay(ctx, target, rule, reportReason, relay.dialer);

  const t0 = performance.now();
  let resolved: readonly ResolvedAddress[];
  try {
    resolved = await ctx.resolver.resolve(target.host);
  } catch (err) {
    return { refused: networkRefusal(err), rule };
  }
  const dnsMs = performance.now() - t0;
  const { host, port } = target;
  // Chosen after the decision and vetting: a relay proxy is chosen above, before any lookup.
  const dialer = ctx.dialer;

  if (rule === null) {
    // Only report mode gets here without a rule: everything is let through and logged.
    return { rule, verdict: 'report', reportReason, host, port, addresses: resolved, dnsMs, dialer };
  }
  const vetted = vetAddresses(policy, rule, resolved);
  if (vetted.addresses.length === 0) return { refused: Errors.PRIVATE_ADDRESS, rule };
  if (vetted.report) reportReason ??= 'private_address';
  return { rule, verdict: reportReason ? 'report' : 'allow', reportReason, host, port, addresses: vetted.addresses, dnsMs, dialer };
}

/**
 * Through a relay proxy the relay resolves the name and picks the address, so the gateway cannot
 * dial a vetted address. What stays is the policy's need: a rule that does not allow private
 * addresses still refuses a destination that resolves to one. So the name is resolved locally only
 * for that check (never when the rule allows private addresses, nor for an IP literal, which is
 * judged as it is), and, unlike a direct dial, which just skips a private answer, any private
 * answer refuses it: the relay might connect to that one. A name the gateway cannot resolve is
 * refused as today (the DNS error): that check cannot be made. The address the relay connects to
 * comes from its own lookup, a moment later: the rebinding window a direct dial closes is open
 * here (docs/relay-proxies.md).
 */
async function routeViaRelay(
  ctx: RouteContext,
  target: Target,
  rule: CompiledRule | null,
  reportReason: Reason | null,
  dialer: Dialer,
): Promise<Route | RouteRefused> {
  const { host, port } = target;
  if (rule === null) return { rule, verdict: 'report', reportReason, host, port, addresses: [], dnsMs: 0, dialer };
  if (ctx.policy.decideAddress(rule, false).verdict === 'allow') {
    return { rule, verdict: reportReason ? 'report' : 'allow', reportReason, host, port, addresses: [], dnsMs: 0, dialer };
  }
  let resolved: readonly ResolvedAddress[];
  const t0 = performance.now();
  if (target.kind === 'name') {
    try {
      resolved = await ctx.resolver.resolve(host);
    } catch (err) {
      return { refused: networkRefusal(err), rule };
    }
  } else resolved = [toResolved(host)];
  const dnsMs = performance.now() - t0;
  for (const a of resolved) {
    if (a.isPublic) continue;
    const d = ctx.policy.decideAddress(rule, false);
    if (d.verdict === 'deny') return { refused: Errors.PRIVATE_ADDRESS, rule };
    reportReason ??= 'private_address';
  }
  return { rule, verdict: reportReason ? 'report' : 'allow', reportReason, host, port, addresses: resolved, dnsMs, dialer };
}

/** The resolved addresses this rule may dial (report: a private one got in by report mode). */
function vetAddresses(policy: Policy, rule: CompiledRule, resolved: readonly ResolvedAddress[]): { addresses: ResolvedAddress[]; report: boolean } {
  const addresses: ResolvedAddress[] = [];
  let report = false;
  for (const a of resolved) {
    if (a.isPublic) {
      addresses.push(a);
      continue;
    }
    const d = policy.decideAddress(rule, false);
    if (d.verdict === 'allow') addresses.push(a);
    else if (d.verdict === 'report') {
      addresses.push(a);
      report = true;
    }
  }
  return { addresses, report };
}

export function isRefused(r: Route | RouteRefused): r is RouteRefused {
  return 'refused' in r;
}

/** A request-target that did not parse: its parser's code when the catalogue has it, else `fallback`. */
function badTargetRefusal(err: unknown, fallback: Refusal): Refusal {
  const entry = isPortcullisError(err) ? entryForCode(err.code) : undefined;
  return entry !== undefined && entry.kind === 'rejection' ? entry : fallback;
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
  badTarget: Refusal,
  refuse: (r: Refusal) => void,
  identity: ClientIdentity = ANONYMOUS,
): Promise<{ target: Target; routed: Route } | null> {
  let target: Target;
  try {
    target = parse();
  } catch (err) {
    refuse(badTargetRefusal(err, badTarget));
    return null;
  }
  rec.target = targetLabel(target);
  const routed = await route(ctx, target, state.ip, identity);
  if (isRefused(routed)) {
    rec.rule = routed.rule?.name ?? null;
    if (routed.detail !== undefined) rec.detail = routed.detail;
    refuse(routed.refused);
    return null;
  }
  admitRoute(ctx, rec, routed, state);
  return { target, routed };
}
