/**
 * The allowlist compiled into lookup tables, and the decisions made against it.
 *
 * Names: one Map of exact hosts and one Map of wildcard suffixes; a lookup walks the host's label
 * boundaries left to right, so the first wildcard hit is the longest suffix. O(labels).
 * IPs: short lists of CIDRs (IPv4 as integers), most specific first.
 * Decision objects are built once per rule at compile time and shared (they are read-only).
 */
import type { CloudPreset, PortcullisConfig, RuleTlsConfig } from '../config/types.js';
import { builtinChecks } from '../config/checks.js';
import { PortcullisError } from '../util/errors.js';
import { ipv4ToInt, type Target } from '../address/host.js';
import { cidrMatchesV4, cidrMatchesV6, parseAddress, parseCidr, type Cidr } from '../address/cidr.js';
import { expandPattern, isSharedSuffix, normaliseRegion, normaliseWorkspaceId, parsePattern, type ExpandedPattern } from '../address/patterns.js';
import { presetRules } from './presets.js';
import { compileCertificateAllowlist, versionNumber, type CertificateAllowlist } from '../tls/index.js';
import ipaddr from 'ipaddr.js';

export interface CompiledRule {
  readonly name: string;
  readonly ports: ReadonlySet<number>;
  readonly allowPrivate: boolean;
  readonly mode: 'enforce' | 'report';
  /** What to check in this rule's tunnels' TLS handshakes; null = not inspected (proxy.tlsInspection.enabled: false). */
  readonly tls: TlsChecks | null;
}

/** A rule's TLS inspection settings, with proxy.tlsInspection's defaults filled in (versions as wire numbers). */
export interface TlsChecks {
  readonly require: boolean;
  readonly sniMustMatch: boolean;
  readonly minVersion: number;
  /** The highest version the server may choose; null = no limit (the ServerHello is not read for it). */
  readonly maxVersion: number | null;
  readonly peekTimeoutMs: number;
}

export type DenyReason = 'client_denied' | 'host_not_allowed' | 'port_not_allowed' | 'ip_literal' | 'private_address';

export type Decision =
  | { readonly verdict: 'allow'; readonly rule: CompiledRule }
  | { readonly verdict: 'deny' | 'report'; readonly rule: CompiledRule | null; readonly reason: DenyReason };

/**
 * Who is asking, beyond the source address. Only anonymous today; the client-identity work adds
 * kinds (proxy Basic user, mTLS certificate subject) without changing decide's signature.
 */
export interface ClientIdentity {
  readonly kind: 'anonymous';
}

export const ANONYMOUS: ClientIdentity = Object.freeze({ kind: 'anonymous' });

/** One argument object (like Smokescreen's DecideArgs), so a new field does not change the signature. */
export interface DecideArgs {
  /** From parseConnectAuthority / targetFromAbsoluteUrl (or normalised the same way): a
   *  non-canonical host simply matches nothing. */
  readonly target: Target;
  /** The client's source address (normalised, as checkClient sees it). */
  readonly client: string;
  /** Absent = anonymous. */
  readonly identity?: ClientIdentity | null;
}

export interface Policy {
  readonly mode: 'enforce' | 'report';
  /** Every compiled rule (preset rules too), for metrics labels. */
  readonly rules: readonly CompiledRule[];
  /** Source-IP ACL. Deny beats allow; no allow list = any source. */
  checkClient(ip: string): Decision;
  /** May this client reach target's host + port? */
  decide(args: DecideArgs): Decision;
  /** After DNS (or for an IP literal): a non-public address needs rule.allowPrivate. */
  decideAddress(rule: CompiledRule, addressIsPublic: boolean): Decision;
  /** clients.certificates: the agent certificates allowed in TLS 1.2 tunnels (empty: no check). */
  readonly clientCertificates: CertificateAllowlist;
}

/** The rule reported in the allow decision of checkClient (it is not a destination rule). */
export const CLIENT_ACL_RULE_NAME = 'client-acl';

interface RuleDecisions {
  readonly allow: Decision;
  readonly port: Decision;
  readonly privateAddr: Decision;
}

interface RuleInfo {
  readonly rule: CompiledRule;
  readonly decisions: RuleDecisions;
  /** Expanded host patterns, for describePolicy. */
  readonly display: string[];
  /** The exact names among them (no wildcard, no address block): what a tool can check one by one. */
  readonly exactHosts: string[];
  readonly notes: string[];
}

interface Description {
  readonly mode: 'enforce' | 'report';
  readonly infos: readonly RuleInfo[];
  readonly clientsAllow: readonly string[] | undefined;
  readonly clientsDeny: readonly string[];
}

const descriptions = new WeakMap<Policy, Description>();

function freezeDecision(d: Decision): Decision {
  return Object.freeze(d);
}

interface IpEntry {
  readonly cidr: Cidr;
  readonly info: RuleInfo;
  readonly order: number;
}

function pushUnique(map: Map<string, RuleInfo[]>, key: string, info: RuleInfo): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [info]);
  else if (!list.includes(info)) list.push(info);
}

function displayPattern(p: ExpandedPattern): string {
  if (p.kind === 'exact') return p.host;
  if (p.kind === 'wildcard') return `*.${p.suffix}`;
  return p.cidr.text;
}

/** A value the schema and builtinChecks already accepted: null here is a bug in those, not bad input. */
function checked<T>(value: T | null, raw: string): T {
  if (value === null) throw new PortcullisError('PCL_ERR_POLICY', `invalid allowlist value ${JSON.stringify(raw)} passed the config checks`);
  return value;
}

export function compilePolicy(config: PortcullisConfig): Policy {
  // The loader's built-in checks (written once, in src/config), so nothing the loader would refuse
  // compiles; not the schema, whose validator would cost each worker most of its start time.
  const issues = builtinChecks(config);
  if (issues.length > 0) {
    const first = issues[0];
    throw new PortcullisError(
      'PCL_ERR_POLICY',
      `invalid allowlist at ${first?.path.join('.')}: ${first?.message}` + (issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''),
    );
  }
  const globalMode = config.proxy.mode;
  const report = globalMode === 'report';

  const workspaceIds = [...new Set(config.allow.workspaces.map((w) => checked(normaliseWorkspaceId(w.id), w.id)))];
  const regions = [
    ...new Set(
      [...config.allow.workspaces.flatMap((w) => (w.region === undefined ? [] : [w.region])), ...config.allow.regions].map((r) =>
        checked(normaliseRegion(r), r),
      ),
    ),
  ];
  const values = { workspaceId: workspaceIds, region: regions };

  // User rules first: where several rules match equally well, the operator's own rule (e.g. one
  // with allowPrivate for Private Link) is the one that decides.
  const specs: Array<{
    name: string;
    hosts: readonly string[];
    ports: readonly number[];
    allowPrivate: boolean;
    mode: 'enforce' | 'report';
    tls: RuleTlsConfig | undefined;
  }> = [
    ...config.allow.rules.map((r) => ({ name: r.name, hosts: r.hosts, ports: r.ports, allowPrivate: r.allowPrivate, mode: r.mode, tls: r.tls })),
    // Every preset endpoint is TLS on 443: a tunnel to one that does not start with a ClientHello is not an agent.
    ...dedupePresets(config.allow.presets).flatMap((p) =>
      presetRules(p).map((r) => ({ ...r, allowPrivate: false, mode: 'enforce' as const, tls: PRESET_TLS })),
    ),
  ];

  const exact = new Map<string, RuleInfo[]>();
  const wild = new Map<string, RuleInfo[]>();
  const ipEntries: IpEntry[] = [];
  const infos: RuleInfo[] = [];

  specs.forEach((spec, order) => {
    const rule: CompiledRule = Object.freeze({
      name: spec.name,
      ports: new Set(spec.ports),
      allowPrivate: spec.allowPrivate,
      mode: spec.mode,
      tls: tlsChecks(config, spec.tls),
    });
    const verdictFor = (ruleReport: boolean): 'deny' | 'report' => (report || ruleReport ? 'report' : 'deny');
    const info: RuleInfo = {
      rule,
      decisions: {
        allow: freezeDecision({ verdict: 'allow', rule }),
        port: freezeDecision({ verdict: verdictFor(spec.mode === 'report'), rule, reason: 'port_not_allowed' }),
        privateAddr: freezeDecision({ verdict: verdictFor(spec.mode === 'report'), rule, reason: 'private_address' }),
      },
      display: [],
      exactHosts: [],
      notes: [],
    };
    infos.push(info);
    for (const raw of spec.hosts) {
      const parsed = parsePattern(raw);
      if (!parsed.ok) throw new PortcullisError('PCL_ERR_POLICY', `rule "${spec.name}": ${parsed.message}`);
      const expanded = expandPattern(parsed.pattern, values);
      if (parsed.pattern.kind === 'template' && values[parsed.pattern.placeholder].length === 0) {
        info.notes.push(`no ${parsed.pattern.placeholder === 'workspaceId' ? 'workspaces' : 'regions'} configured: "${raw}" matches any`);
      }
      for (const p of expanded) {
        const shown = displayPattern(p);
        if (!info.display.includes(shown)) info.display.push(shown);
        if (p.kind === 'exact') {
          pushUnique(exact, p.host, info);
          if (!info.exactHosts.includes(p.host)) info.exactHosts.push(p.host);
        } else if (p.kind === 'wildcard') {
          pushUnique(wild, p.suffix, info);
          if (isSharedSuffix(p.suffix)) {
            info.notes.push(`"*.${p.suffix}" is a shared suffix: it matches every customer's subdomain of it`);
          }
        } else ipEntries.push({ cidr: p.cidr, info, order });
      }
    }
  });

  // Most specific block first, then rule order: that is the rule named in the decision.
  ipEntries.sort((a, b) => b.cidr.prefix - a.cidr.prefix || a.order - b.order);
  const ipv4 = ipEntries.filter((e) => e.cidr.family === 4);
  const ipv6 = ipEntries.filter((e) => e.cidr.family === 6);

  const hostNotAllowed = freezeDecision({ verdict: report ? 'report' : 'deny', rule: null, reason: 'host_not_allowed' });
  const ipLiteral = freezeDecision({ verdict: report ? 'report' : 'deny', rule: null, reason: 'ip_literal' });
  const clientDenied = freezeDecision({ verdict: report ? 'report' : 'deny', rule: null, reason: 'client_denied' });
  const clientRule: CompiledRule = Object.freeze({
    name: CLIENT_ACL_RULE_NAME,
    ports: new Set<number>(),
    allowPrivate: false,
    mode: globalMode,
    tls: null,
  });
  const clientAllowed = freezeDecision({ verdict: 'allow', rule: clientRule });

  const clientAllow = config.clients.allow?.map((c) => checked(parseCidr(c), c));
  const clientDeny = config.clients.deny.map((c) => checked(parseCidr(c), c));

  const byRule = new Map<CompiledRule, RuleInfo>(infos.map((i) => [i.rule, i]));

  function decideName(host: string, port: number): Decision {
    let first: RuleInfo | undefined;
    const ex = exact.get(host);
    if (ex !== undefined) {
      for (const info of ex) {
        if (info.rule.ports.has(port)) return info.decisions.allow;
      }
      first = ex[0];
    }
    // Walk label boundaries: "a.b.c" tries "b.c", then "c" — longest suffix first.
    if (wild.size > 0) {
      let dot = host.indexOf('.');
      while (dot >= 0) {
        const list = wild.get(host.slice(dot + 1));
        if (list !== undefined) {
          for (const info of list) {
            if (info.rule.ports.has(port)) return info.decisions.allow;
          }
          if (first === undefined) first = list[0];
        }
        dot = host.indexOf('.', dot + 1);
      }
    }
    return first === undefined ? hostNotAllowed : first.decisions.port;
  }

  function decideV4(n: number, port: number): Decision {
    let first: IpEntry | undefined;
    for (const e of ipv4) {
      if (!cidrMatchesV4(e.cidr, n)) continue;
      if (e.info.rule.ports.has(port)) return e.info.decisions.allow;
      if (first === undefined) first = e;
    }
    return first === undefined ? ipLiteral : first.info.decisions.port;
  }

  function decideV6(addr: ipaddr.IPv6, port: number): Decision {
    let first: IpEntry | undefined;
    for (const e of ipv6) {
      if (!cidrMatchesV6(e.cidr, addr)) continue;
      if (e.info.rule.ports.has(port)) return e.info.decisions.allow;
      if (first === undefined) first = e;
    }
    return first === undefined ? ipLiteral : first.info.decisions.port;
  }

  function anyMatch(list: readonly Cidr[], a: NonNullable<ReturnType<typeof parseAddress>>): boolean {
    for (const c of list) {
      if (a.family === 4 ? cidrMatchesV4(c, a.n) : cidrMatchesV6(c, a.addr)) return true;
    }
    return false;
  }

  const policy: Policy = {
    mode: globalMode,
    clientCertificates: compileCertificateAllowlist(config.clients.certificates),
    rules: Object.freeze(infos.map((i) => i.rule)),
    checkClient(ip: string): Decision {
      const a = parseAddress(ip);
      if (a === null) return clientDenied;
      if (anyMatch(clientDeny, a)) return clientDenied;
      if (clientAllow !== undefined && !anyMatch(clientAllow, a)) return clientDenied;
      return clientAllowed;
    },
    decide(args: DecideArgs): Decision {
      const target = args?.target;
      const host = target?.host;
      if (typeof host !== 'string') return hostNotAllowed;
      const port = target.port;
      switch (target.kind) {
        case 'name':
          return decideName(host, port);
        case 'ipv4': {
          const n = ipv4ToInt(host);
          if (Number.isNaN(n)) return ipLiteral;
          return decideV4(n, port);
        }
        case 'ipv6': {
          if (ipv6.length === 0 || !ipaddr.IPv6.isValid(host)) return ipLiteral;
          const addr = ipaddr.IPv6.parse(host);
          return decideV6(addr, port);
        }
        default:
          return hostNotAllowed;
      }
    },
    decideAddress(rule: CompiledRule, addressIsPublic: boolean): Decision {
      const info = byRule.get(rule);
      if (info === undefined) {
        // A rule from another policy (e.g. across a reload): judge it by its own flags.
        if (addressIsPublic || rule.allowPrivate) return { verdict: 'allow', rule };
        return { verdict: report || rule.mode === 'report' ? 'report' : 'deny', rule, reason: 'private_address' };
      }
      if (addressIsPublic || rule.allowPrivate) return info.decisions.allow;
      return info.decisions.privateAddr;
    },
  };

  descriptions.set(policy, {
    mode: globalMode,
    infos,
    clientsAllow: clientAllow?.map((c) => c.text),
    clientsDeny: clientDeny.map((c) => c.text),
  });
  return policy;
}

const PRESET_TLS: RuleTlsConfig = Object.freeze({ require: true });

/** The rule's TLS settings over proxy.tlsInspection's; null when inspection is off. */
function tlsChecks(config: PortcullisConfig, rule: RuleTlsConfig | undefined): TlsChecks | null {
  const g = config.proxy.tlsInspection;
  if (!g.enabled) return null;
  return Object.freeze({
    require: rule?.require ?? g.requireTls,
    sniMustMatch: rule?.sniMustMatch ?? g.sniMustMatch,
    minVersion: versionNumber(rule?.minVersion ?? g.minVersion),
    maxVersion: rule?.maxVersion === undefined ? null : versionNumber(rule.maxVersion),
    peekTimeoutMs: g.peekTimeoutMs,
  });
}

function dedupePresets(presets: readonly CloudPreset[]): CloudPreset[] {
  return [...new Set(presets)];
}

/** Human-readable lines of what is allowed (for `portcullis check-config` and the startup log). */
/** What a rule of a compiled policy allows, for tools that check the destinations (portcullis doctor). */
export interface AllowedDestinations {
  readonly rule: string;
  readonly ports: readonly number[];
  /** Names that can be looked up and dialled as they are. */
  readonly hosts: readonly string[];
  /** Wildcards and address blocks: they name no single host. */
  readonly patterns: readonly string[];
}

export function allowedDestinations(policy: Policy): AllowedDestinations[] {
  const d = descriptions.get(policy);
  if (d === undefined) return [];
  return d.infos.map((info) => ({
    rule: info.rule.name,
    ports: [...info.rule.ports].sort((a, b) => a - b),
    hosts: [...info.exactHosts],
    patterns: info.display.filter((p) => !info.exactHosts.includes(p)),
  }));
}

export function describePolicy(policy: Policy): string[] {
  const d = descriptions.get(policy);
  if (d === undefined) {
    return [`mode: ${policy.mode}`, ...policy.rules.map((r) => `rule ${r.name}: ports ${[...r.ports].join(', ')}`)];
  }
  const lines: string[] = [];
  lines.push(`mode: ${d.mode}${d.mode === 'report' ? ' (refusals are logged, traffic is let through)' : ''}`);
  lines.push(
    `clients: allow ${d.clientsAllow === undefined ? 'any source' : d.clientsAllow.length === 0 ? 'none' : d.clientsAllow.join(', ')}` +
      `; deny ${d.clientsDeny.length === 0 ? 'none' : d.clientsDeny.join(', ')}`,
  );
  if (d.infos.length === 0) lines.push('no destinations allowed');
  for (const info of d.infos) {
    const r = info.rule;
    const flags = [r.mode === 'report' ? 'report' : '', r.allowPrivate ? 'private addresses allowed' : ''].filter((f) => f !== '').join(', ');
    lines.push(
      `rule ${r.name}: port ${[...r.ports].sort((a, b) => a - b).join(', ')}${flags ? ` [${flags}]` : ''}: ` +
        (info.display.length === 0 ? '(no hosts)' : info.display.join(', ')),
    );
    for (const n of info.notes) lines.push(`  note: ${n}`);
  }
  return lines;
}
