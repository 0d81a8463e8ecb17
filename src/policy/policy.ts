/**
 * The allowlist compiled into lookup tables, and the decisions made against it.
 *
 * Names: one Map of exact hosts and one Map of wildcard suffixes; a lookup walks the host's label
 * boundaries left to right, so the first wildcard hit is the longest suffix. O(labels).
 * IPs: short lists of CIDRs (IPv4 as integers), most specific first.
 * Decision objects are built once per rule at compile time and shared (they are read-only).
 */
import type { ClientGroupConfig, PortcullisConfig, PresetName, RuleTlsConfig } from '../config/types.js';
import { builtinChecks } from '../config/checks.js';
import { PortcullisError } from '../util/errors.js';
import { ipv4ToInt, type Target } from '../address/host.js';
import { cidrMatchesV4, cidrMatchesV6, parseAddress, parseCidr, type Cidr } from '../address/cidr.js';
import { expandPattern, isSharedSuffix, normaliseRegion, normaliseWorkspaceId, parsePattern, type ExpandedPattern } from '../address/patterns.js';
import { presetRules } from './presets.js';
import { compileCertificateAllowlist, subjectKey, type CertificateAllowlist } from './certificates.js';
import {
  compileCertificateAllowlist as compileTunnelCertificates,
  versionNumber,
  type CertificateAllowlist as TunnelCertificateAllowlist,
} from '../tls/index.js';
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
  | {
      readonly verdict: 'deny' | 'report';
      readonly rule: CompiledRule | null;
      readonly reason: DenyReason;
      /** Why, beyond the reason (a group allowlist that left the destination out). */
      readonly detail?: string;
    };

/**
 * Who is asking, beyond the source address: nobody in particular, a proxy Basic user, or the
 * subject of a verified client certificate (TLS proxy listener).
 */
export type ClientIdentity =
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'user'; readonly user: string }
  | { readonly kind: 'certificate'; readonly subject: string; readonly thumbprintSha256: string };

/** What the access log records of an identity: the user name or the certificate subject. */
export function identityLabel(identity: ClientIdentity | null | undefined): string | undefined {
  if (identity === null || identity === undefined) return undefined;
  if (identity.kind === 'user') return identity.user;
  if (identity.kind === 'certificate') return identity.subject;
  return undefined;
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
  /** clients.certificates: may a client certificate with this subject and SHA-256 thumbprint be used? */
  readonly certificates: CertificateAllowlist;
  /** clients.certificates: the agent certificates allowed in TLS 1.2 tunnels (empty: no check). */
  readonly clientCertificates: TunnelCertificateAllowlist;
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
  readonly groups: readonly ClientGroupConfig[];
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
    certificates: compileCertificateAllowlist(config.clients.certificates),
    clientCertificates: compileTunnelCertificates(config.clients.certificates),
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

  const grouped = config.clients.groups.length > 0 ? withGroups(policy, config) : policy;
  descriptions.set(grouped, {
    mode: globalMode,
    infos,
    clientsAllow: clientAllow?.map((c) => c.text),
    clientsDeny: clientDeny.map((c) => c.text),
    groups: config.clients.groups,
  });
  return grouped;
}

interface CompiledGroup {
  readonly name: string;
  readonly users: ReadonlySet<string>;
  readonly subjects: ReadonlySet<string>;
  readonly cidrs: readonly Cidr[];
  readonly rules: ReadonlySet<string>;
}

/** Sub-policies for combinations of groups past this many are compiled per decision, not kept. */
const MAX_GROUP_POLICIES = 256;

/**
 * clients.groups (Smokescreen's roles): an identity that matches groups may reach only their
 * rules (the union when it matches several); one that matches none keeps every rule. Each
 * combination of groups is its own policy compiled from the config with only those rules, so the
 * lookup tables stay the same O(labels) walk.
 */
function withGroups(full: Policy, config: PortcullisConfig): Policy {
  const groups: CompiledGroup[] = config.clients.groups.map((g) => ({
    name: g.name,
    users: new Set(g.users),
    subjects: new Set(g.subjects.map(subjectKey).filter((k): k is string => k !== null)),
    cidrs: g.cidrs.map((c) => checked(parseCidr(c), c)),
    rules: new Set(g.rules),
  }));
  const compiled = new Map<string, Policy>();
  const policyFor = (matched: readonly CompiledGroup[]): Policy => {
    const key = matched.map((g) => g.name).join('\u0000');
    const known = compiled.get(key);
    if (known !== undefined) return known;
    const names = new Set(matched.flatMap((g) => [...g.rules]));
    const sub = compilePolicy({
      ...config,
      allow: { ...config.allow, rules: config.allow.rules.filter((r) => names.has(r.name)), presets: config.allow.presets.filter((p) => names.has(p)) },
      clients: { ...config.clients, groups: [] },
    });
    if (compiled.size < MAX_GROUP_POLICIES) compiled.set(key, sub);
    return sub;
  };
  const matches = (g: CompiledGroup, args: DecideArgs): boolean => {
    const id = args.identity;
    if (id?.kind === 'user' && g.users.has(id.user)) return true;
    if (id?.kind === 'certificate') {
      const k = subjectKey(id.subject);
      if (k !== null && g.subjects.has(k)) return true;
    }
    if (g.cidrs.length > 0) {
      const a = parseAddress(args.client);
      if (a !== null && g.cidrs.some((c) => (a.family === 4 ? cidrMatchesV4(c, a.n) : cidrMatchesV6(c, a.addr)))) return true;
    }
    return false;
  };
  return {
    mode: full.mode,
    rules: full.rules,
    certificates: full.certificates,
    clientCertificates: full.clientCertificates,
    checkClient: (ip) => full.checkClient(ip),
    decideAddress: (rule, addressIsPublic) => full.decideAddress(rule, addressIsPublic),
    decide(args: DecideArgs): Decision {
      const matched = groups.filter((g) => matches(g, args));
      if (matched.length === 0) return full.decide(args);
      const d = policyFor(matched).decide(args);
      if (d.verdict === 'allow') return d;
      const who = identityLabel(args.identity) ?? args.client;
      const names = matched.map((g) => g.name).join(', ');
      return { ...d, detail: `${who} is in group${matched.length > 1 ? 's' : ''} ${names}, whose rules do not allow this destination` };
    },
  };
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

function dedupePresets(presets: readonly PresetName[]): PresetName[] {
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
  for (const g of d.groups) lines.push(describeGroup(g));
  if (d.groups.length > 0) lines.push('clients in no group: every rule');
  return lines;
}

/** "group NAME: users a, b; subjects ...; sources 10.0.0.0/8 -> rules x, y" (the identities that match it, and what they may reach). */
function describeGroup(g: ClientGroupConfig): string {
  const who = [
    g.users.length > 0 ? `users ${g.users.join(', ')}` : '',
    g.subjects.length > 0 ? `subjects ${g.subjects.map((x) => `"${x}"`).join(', ')}` : '',
    g.cidrs.length > 0 ? `sources ${g.cidrs.join(', ')}` : '',
  ].filter((x) => x !== '');
  return `group ${g.name}: ${who.length > 0 ? who.join('; ') : 'no identity'} -> rules ${g.rules.length > 0 ? g.rules.join(', ') : 'none'}`;
}
