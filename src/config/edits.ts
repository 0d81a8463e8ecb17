/**
 * The changes an operator makes to the config file, written once for both the admin API and the
 * management CLI (when the gateway is not running): the Log Analytics gateway's cmdlets
 * (Add/Remove-OMSGatewayAllowedHost, Set-OMSGatewayRelayProxy, Add/Remove-...ClientCertificate,
 * Set-OMSGatewayConfig) as edits of a ConfigStore. Each edit changes the YAML document only; the
 * store validates the whole result on save, and `applyEdit` says what changed.
 */
import { PortcullisError } from '../util/errors.js';
import { defaultConfig } from './load.js';
import type { ConfigPath, ConfigStore, SaveResult } from './store.js';
import type { ConfigIssue } from './errors.js';
import type { EnforcementMode, PortcullisConfig } from './types.js';
import { diffConfigs, parseDottedPath, valueAt, type ConfigChange } from './views.js';

/** Why an edit cannot be made as asked; nothing is written. */
export type EditErrorKind = 'not_found' | 'bad_request';

export class EditError extends PortcullisError {
  constructor(
    readonly kind: EditErrorKind,
    message: string,
  ) {
    super(kind === 'not_found' ? 'PCL_ERR_API_NOT_FOUND' : 'PCL_ERR_API_BAD_REQUEST', message);
    this.name = 'EditError';
  }
}

/** One sentence for the operator: what the edit did (or why it had nothing to do). */
export interface EditSummary {
  message: string;
}

export type Edit = (store: ConfigStore) => EditSummary;

/** The rule `allow add` puts hosts in when no rule is named. */
export const DEFAULT_RULE_NAME = 'allowed-hosts';

const ALLOW_RULES: ConfigPath = ['allow', 'rules'];

/** A list key the file may leave out (its default applies): write the default first, so an edit starts from what is in force. */
function materialiseList(store: ConfigStore, path: ConfigPath): unknown[] {
  const current = store.get(path);
  if (Array.isArray(current)) return current;
  if (current !== undefined) throw new EditError('bad_request', `${path.join('.')} is not a list in the file`);
  const fallback = valueAt(defaultConfig({}), path);
  const list = Array.isArray(fallback) ? structuredClone(fallback) : [];
  store.set(path, list);
  return list;
}

function ruleIndex(store: ConfigStore, name: string): number {
  const rules = store.get(ALLOW_RULES);
  if (!Array.isArray(rules)) return -1;
  return rules.findIndex((r) => typeof r === 'object' && r !== null && (r as { name?: unknown }).name === name);
}

export interface AddHostsInput {
  /** Rule to add to, created when absent. Default DEFAULT_RULE_NAME. */
  rule?: string;
  hosts: string[];
  ports?: number[];
  allowPrivate?: boolean;
  mode?: EnforcementMode;
}

/**
 * "Allow these hosts" in one step: adds them to the named rule (its ports gain any given here;
 * allowPrivate and mode, when given, are set), or creates the rule (ports default 443).
 */
export function addHosts(input: AddHostsInput): Edit {
  return (store) => {
    const name = input.rule ?? DEFAULT_RULE_NAME;
    const hosts = input.hosts.map((h) => h.trim());
    if (hosts.length === 0 || hosts.some((h) => h === '')) throw new EditError('bad_request', 'give at least one host, none empty');
    const i = ruleIndex(store, name);
    if (i < 0) {
      store.addToList(ALLOW_RULES, {
        name,
        hosts,
        ...(input.ports !== undefined ? { ports: input.ports } : {}),
        ...(input.allowPrivate !== undefined ? { allowPrivate: input.allowPrivate } : {}),
        ...(input.mode !== undefined ? { mode: input.mode } : {}),
      });
      return { message: `rule ${name} created with ${hosts.join(', ')}` };
    }
    const rule = [...ALLOW_RULES, i];
    const added = hosts.filter((h) => store.addToList([...rule, 'hosts'], h));
    const addedPorts: number[] = [];
    if (input.ports !== undefined) {
      if (store.get([...rule, 'ports']) === undefined) materialiseRulePorts(store, rule);
      for (const p of input.ports) if (store.addToList([...rule, 'ports'], p)) addedPorts.push(p);
    }
    for (const key of ['allowPrivate', 'mode'] as const) {
      const want = input[key];
      if (want !== undefined && store.get([...rule, key]) !== want) store.set([...rule, key], want);
    }
    const parts = [added.length ? `added ${added.join(', ')}` : 'hosts already listed'];
    if (addedPorts.length) parts.push(`ports ${addedPorts.join(', ')} added`);
    return { message: `rule ${name}: ${parts.join('; ')}` };
  };
}

/** A rule without `ports` allows 443: write that down before adding to it. */
function materialiseRulePorts(store: ConfigStore, rule: ConfigPath): void {
  store.set([...rule, 'ports'], [443]);
}

/** Removes a rule by name. */
export function removeRule(name: string): Edit {
  return (store) => {
    const i = ruleIndex(store, name);
    if (i < 0) throw new EditError('not_found', `no rule named ${name}`);
    store.delete([...ALLOW_RULES, i]);
    return { message: `rule ${name} removed` };
  };
}

/**
 * Removes a host from the named rule, or from every rule that lists it (Remove-OMSGatewayAllowedHost).
 * A rule left without hosts is removed (a rule needs at least one).
 */
export function removeHost(host: string, rule?: string): Edit {
  return (store) => {
    const rules = store.get(ALLOW_RULES);
    const touched: string[] = [];
    const emptied: string[] = [];
    if (Array.isArray(rules)) {
      // From the end, so removing a whole rule does not shift the ones still to visit.
      for (let i = rules.length - 1; i >= 0; i--) {
        const r = rules[i] as { name?: unknown; hosts?: unknown };
        if (typeof r.name !== 'string' || (rule !== undefined && r.name !== rule)) continue;
        if (!Array.isArray(r.hosts) || !r.hosts.includes(host)) continue;
        if (r.hosts.length === 1) {
          store.delete([...ALLOW_RULES, i]);
          emptied.push(r.name);
        } else {
          store.removeFromList([...ALLOW_RULES, i, 'hosts'], host);
        }
        touched.push(r.name);
      }
    }
    if (touched.length === 0) throw new EditError('not_found', rule !== undefined ? `rule ${rule} does not list ${host}` : `no rule lists ${host}`);
    const gone = emptied.length ? `; now empty and removed: ${emptied.reverse().join(', ')}` : '';
    return { message: `${host} removed from ${touched.reverse().join(', ')}${gone}` };
  };
}

export function addPreset(preset: string): Edit {
  return (store) => {
    // Already in force by default: nothing to write.
    if (store.get(['allow', 'presets']) === undefined && defaultConfig({}).allow.presets.some((p) => p === preset))
      return { message: `preset ${preset} already in use` };
    materialiseList(store, ['allow', 'presets']);
    return { message: store.addToList(['allow', 'presets'], preset) ? `preset ${preset} added` : `preset ${preset} already in use` };
  };
}

export function removePreset(preset: string): Edit {
  return (store) => {
    materialiseList(store, ['allow', 'presets']);
    if (!store.removeFromList(['allow', 'presets'], preset)) throw new EditError('not_found', `preset ${preset} is not in use`);
    return { message: `preset ${preset} removed` };
  };
}

function workspaceIndex(store: ConfigStore, id: string): number {
  const list = store.get(['allow', 'workspaces']);
  if (!Array.isArray(list)) return -1;
  return list.findIndex((w) => typeof w === 'object' && w !== null && String((w as { id?: unknown }).id).toLowerCase() === id.toLowerCase());
}

/** Adds a workspace, or sets the region of one already listed. */
export function addWorkspace(input: { id: string; region?: string }): Edit {
  return (store) => {
    const i = workspaceIndex(store, input.id);
    if (i < 0) {
      store.addToList(['allow', 'workspaces'], { id: input.id, ...(input.region !== undefined ? { region: input.region } : {}) });
      return { message: `workspace ${input.id} added` };
    }
    if (input.region !== undefined && store.get(['allow', 'workspaces', i, 'region']) !== input.region) {
      store.set(['allow', 'workspaces', i, 'region'], input.region);
      return { message: `workspace ${input.id}: region set to ${input.region}` };
    }
    return { message: `workspace ${input.id} already listed` };
  };
}

export function removeWorkspace(id: string): Edit {
  return (store) => {
    const i = workspaceIndex(store, id);
    if (i < 0) throw new EditError('not_found', `workspace ${id} is not listed`);
    store.delete(['allow', 'workspaces', i]);
    return { message: `workspace ${id} removed` };
  };
}

// ---- relay (upstreamProxy) ----

export interface RelayProxyInput {
  url: string;
  username?: string;
  password?: string;
  passwordFile?: string;
  passwordEnv?: string;
}

export interface RelayInput {
  proxies: RelayProxyInput[];
  bypass?: string[];
  backoffMs?: number;
  connectMs?: number;
}

const PASSWORD_KEYS = ['password', 'passwordFile', 'passwordEnv'] as const;

/**
 * Sets upstreamProxy. A proxy given without any password spelling keeps the one the file has for
 * the same url and username, so reading the relay (which never shows the password) and writing it
 * back does not lose it. Keys not given (bypass, backoffMs, connectMs) are removed: their defaults apply.
 */
export function setRelay(input: RelayInput): Edit {
  return (store) => {
    if (input.proxies.length === 0) throw new EditError('bad_request', 'give at least one relay proxy (to dial directly, clear the relay)');
    const existing = store.get(['upstreamProxy', 'proxies']);
    const old = Array.isArray(existing) ? (existing as Array<Record<string, unknown>>) : [];
    const kept: string[] = [];
    const proxies = input.proxies.map((p) => {
      const entry: Record<string, unknown> = { url: p.url };
      if (p.username !== undefined) entry.username = p.username;
      const given = PASSWORD_KEYS.filter((k) => p[k] !== undefined);
      if (given.length > 0) {
        for (const k of given) entry[k] = p[k];
        return entry;
      }
      const same = old.find((o) => o.url === p.url && o.username === p.username);
      const spelling = same ? PASSWORD_KEYS.find((k) => same[k] !== undefined) : undefined;
      if (same && spelling) {
        entry[spelling] = same[spelling];
        kept.push(p.url);
      }
      return entry;
    });
    // Key by key, so comments on the keys that stay are kept.
    store.set(['upstreamProxy', 'proxies'], proxies);
    for (const key of ['bypass', 'backoffMs', 'connectMs'] as const) {
      const v = input[key];
      if (v === undefined) store.delete(['upstreamProxy', key]);
      else store.set(['upstreamProxy', key], v);
    }
    const keptNote = kept.length ? ` (password kept for ${kept.join(', ')})` : '';
    return { message: `relay set: ${input.proxies.map((p) => p.url).join(', ')}${keptNote}` };
  };
}

export function clearRelay(): Edit {
  return (store) => {
    if (!store.delete(['upstreamProxy'])) return { message: 'no relay configured: destinations are dialled directly' };
    return { message: 'relay cleared: destinations are dialled directly' };
  };
}

// ---- client certificates ----

const SUBJECTS: ConfigPath = ['clients', 'certificates', 'subjects'];
const THUMBPRINTS: ConfigPath = ['clients', 'certificates', 'thumbprintsSha256'];

/** 64 hex digits, colons optional → upper case with colons (as `openssl x509 -fingerprint -sha256` prints it). */
export function normaliseThumbprint(t: string): string | null {
  const hex = t.trim().replace(/:/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return null;
  return (hex.toUpperCase().match(/../g) ?? []).join(':');
}

function listIndex(store: ConfigStore, path: ConfigPath, same: (item: string) => boolean): number {
  const list = store.get(path);
  return Array.isArray(list) ? list.findIndex((item) => typeof item === 'string' && same(item)) : -1;
}

const sameSubject =
  (subject: string) =>
  (item: string): boolean =>
    item.toLowerCase() === subject.trim().toLowerCase();
const sameThumbprint =
  (norm: string) =>
  (item: string): boolean =>
    normaliseThumbprint(item) === norm;

export interface CertificateInput {
  subject?: string;
  thumbprintSha256?: string;
}

function checkCertificateInput(input: CertificateInput): { subject?: string; thumbprint?: string } {
  if (input.subject === undefined && input.thumbprintSha256 === undefined) throw new EditError('bad_request', 'give a subject or a SHA-256 thumbprint');
  const out: { subject?: string; thumbprint?: string } = {};
  if (input.subject !== undefined) {
    if (input.subject.trim() === '') throw new EditError('bad_request', 'the subject must not be empty');
    out.subject = input.subject.trim();
  }
  if (input.thumbprintSha256 !== undefined) {
    const t = normaliseThumbprint(input.thumbprintSha256);
    if (t === null) throw new EditError('bad_request', 'a SHA-256 thumbprint is 64 hex digits (colons optional)');
    out.thumbprint = t;
  }
  return out;
}

/** Allows a client certificate by subject (matched case-insensitively) and/or SHA-256 thumbprint. */
export function addCertificate(input: CertificateInput): Edit {
  return (store) => {
    const { subject, thumbprint } = checkCertificateInput(input);
    const said: string[] = [];
    if (subject !== undefined) {
      if (listIndex(store, SUBJECTS, sameSubject(subject)) >= 0) said.push(`subject already allowed`);
      else {
        store.addToList(SUBJECTS, subject);
        said.push(`subject "${subject}" allowed`);
      }
    }
    if (thumbprint !== undefined) {
      if (listIndex(store, THUMBPRINTS, sameThumbprint(thumbprint)) >= 0) said.push('thumbprint already allowed');
      else {
        store.addToList(THUMBPRINTS, thumbprint);
        said.push(`thumbprint ${thumbprint} allowed`);
      }
    }
    return { message: said.join('; ') };
  };
}

export function removeCertificate(input: CertificateInput): Edit {
  return (store) => {
    const { subject, thumbprint } = checkCertificateInput(input);
    const said: string[] = [];
    const drop = (path: ConfigPath, same: (item: string) => boolean, what: string): void => {
      const i = listIndex(store, path, same);
      if (i < 0) throw new EditError('not_found', `${what} is not allowed`);
      store.delete([...path, i]);
      said.push(`${what} removed`);
    };
    if (subject !== undefined) drop(SUBJECTS, sameSubject(subject), `subject "${subject}"`);
    if (thumbprint !== undefined) drop(THUMBPRINTS, sameThumbprint(thumbprint), `thumbprint ${thumbprint}`);
    return { message: said.join('; ') };
  };
}

// ---- any key ----

export function configPathOrThrow(dotted: string): Array<string | number> {
  const path = parseDottedPath(dotted);
  if (!path) throw new EditError('bad_request', `not a key path: ${JSON.stringify(dotted)} (like proxy.timeouts.idleMs)`);
  return path;
}

/** Sets any key (Set-OMSGatewayConfig); the whole result is validated on save. */
export function setValue(dotted: string, value: unknown): Edit {
  return (store) => {
    const path = configPathOrThrow(dotted);
    store.set(path, value);
    return { message: `${dotted} set` };
  };
}

/** Removes a key from the file, so its default applies. */
export function unsetValue(dotted: string): Edit {
  return (store) => {
    const path = configPathOrThrow(dotted);
    if (!store.delete(path)) throw new EditError('not_found', `${dotted} is not set in the file`);
    return { message: `${dotted} removed: its default applies` };
  };
}

// ---- applying an edit ----

export type EditOutcome =
  | { ok: true; written: boolean; message: string; config: PortcullisConfig; changed: ConfigChange[] }
  | { ok: false; reason: 'invalid' | 'conflict'; message: string; issues: ConfigIssue[] };

/**
 * Runs `edit` on the store and saves (validated; atomic; nothing written when invalid). `before` is
 * the configuration the changes are measured against (the running one, or the file's). An edit
 * that leaves the text as it was writes nothing.
 */
export async function applyEdit(store: ConfigStore, before: PortcullisConfig, edit: Edit): Promise<EditOutcome> {
  const original = store.text();
  const { message } = edit(store);
  if (store.text() === original) return { ok: true, written: false, message, config: before, changed: [] };
  const saved: SaveResult = await store.save();
  if (!saved.ok)
    return {
      ok: false,
      reason: saved.reason,
      message: saved.reason === 'invalid' ? 'the change is refused: the result would not load' : message,
      issues: saved.issues,
    };
  return { ok: true, written: true, message, config: saved.config, changed: diffConfigs(before, saved.config) };
}
