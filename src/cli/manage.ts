/**
 * `portcullis allow|relay|clients|config`: the Log Analytics gateway's management cmdlets. Each
 * command calls the running gateway's admin API (address and token from the config file, or
 * --admin-url / --token-file), which validates, writes and applies the change live; when no gateway
 * answers there it edits the config file itself through ConfigStore, with the same edits
 * (src/config/edits.ts) and the same validation, and the change applies at the next start or reload.
 */
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { Agent, request, type Dispatcher } from 'undici';
import type { Command } from 'commander';
import {
  ConfigError,
  ConfigStore,
  DEFAULT_CONFIG_PATH,
  EditError,
  allowView,
  applyEdit,
  certificatesView,
  edits,
  formatIssue,
  loadConfigFile,
  nativeRelayCheck,
  parseDottedPath,
  parseListenAddress,
  redactedConfig,
  relayView,
  valueAt,
  type ConfigIssue,
  type Edit,
  type PortcullisConfig,
  type SemanticCheck,
} from '../config/index.js';
import { nativeRelayBuilt } from '../relay/probe.js';
import { forwarderConfigCheck } from '../forwarder/routes.js';
import { errorCode, errorMessage } from '../util/errors.js';
import { parse as parseYaml } from 'yaml';

/** Exit statuses of the management commands (docs/admin-api.md lists them). */
export const ManageExit = {
  OK: 0,
  /** The change was refused (the result would not load, or what to remove is not there); nothing was written. */
  REFUSED: 1,
  /** Bad arguments, or the config / token file cannot be read. */
  USAGE: 2,
  /** A gateway answered but could not be used: API off, token refused, or an error inside it. */
  GATEWAY: 3,
} as const;

export interface CommonOptions {
  config?: string;
  adminUrl?: string;
  tokenFile?: string;
  caFile?: string;
  offline?: boolean;
  json?: boolean;
}

interface Io {
  out(s: string): void;
  err(s: string): void;
}

const stdio: Io = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
};

/** A failure with the exit status it ends the command with. */
class CommandFailure extends Error {
  constructor(
    readonly exit: number,
    message: string,
    readonly issues?: ConfigIssue[],
    readonly source?: string,
  ) {
    super(message);
  }
}

/** The same host-fact checks as check-config (this command loads nothing native). */
function fileChecks(): SemanticCheck[] {
  return [nativeRelayCheck(nativeRelayBuilt()), (c: PortcullisConfig) => forwarderConfigCheck(c)];
}

function configFileOf(opts: CommonOptions): string {
  return opts.config ?? DEFAULT_CONFIG_PATH;
}

function loadFile(file: string): PortcullisConfig {
  try {
    return loadConfigFile(file, { checks: fileChecks() });
  } catch (err) {
    if (err instanceof ConfigError) throw new CommandFailure(ManageExit.USAGE, `${file} does not load`, err.issues, file);
    throw err;
  }
}

// ---- talking to the gateway ----

interface ApiTarget {
  base: string;
  token: string | undefined;
  dispatcher: Dispatcher;
}

/** The admin listener's address as a client dials it: a wildcard bind is reached on loopback. */
export function adminUrlOf(config: PortcullisConfig): string {
  const { host, port } = parseListenAddress(config.admin.listen);
  const h = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `${config.admin.tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

function readSecretFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CommandFailure(ManageExit.USAGE, `cannot read the ${what} file ${file} (${errorCode(err) ?? errorMessage(err)})`);
  }
}

function apiTarget(opts: CommonOptions): ApiTarget {
  let config: PortcullisConfig | undefined;
  if (opts.adminUrl === undefined || opts.tokenFile === undefined) config = loadFile(configFileOf(opts));
  const base = (opts.adminUrl ?? (config ? adminUrlOf(config) : '')).replace(/\/+$/, '');
  const token = opts.tokenFile !== undefined ? readSecretFile(opts.tokenFile, 'token') : config?.admin.token;
  // An admin listener with TLS usually has a self-signed certificate: trust it (or --ca-file).
  const caFile = opts.caFile ?? config?.admin.tls?.certFile;
  const ca = caFile !== undefined && base.startsWith('https:') ? readSecretFile(caFile, 'CA') : undefined;
  const dispatcher = new Agent({ connect: { timeout: 5_000, ...(ca !== undefined ? { ca } : {}) }, headersTimeout: 60_000, bodyTimeout: 60_000 });
  return { base, token, dispatcher };
}

interface ApiCall {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
}

/** The gateway is not there (nothing listens): the caller may edit the file instead. */
class NotRunning extends Error {}

async function callApi(target: ApiTarget, call: ApiCall): Promise<unknown> {
  let res;
  try {
    res = await request(`${target.base}/api/v1${call.path}`, {
      method: call.method,
      dispatcher: target.dispatcher,
      headers: {
        ...(target.token !== undefined ? { authorization: `Bearer ${target.token}` } : {}),
        ...(call.body !== undefined ? { 'content-type': 'application/json' } : {}),
        'x-portcullis-actor': `${safeUser()}@${hostname()} (portcullis CLI)`,
      },
      ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}),
    });
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ECONNREFUSED') throw new NotRunning(`no gateway answers at ${target.base}`);
    throw new CommandFailure(ManageExit.GATEWAY, `cannot reach the admin API at ${target.base}: ${errorMessage(err)}${code ? ` (${code})` : ''}`);
  }
  const text = await res.body.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CommandFailure(ManageExit.GATEWAY, `the admin API at ${target.base} answered ${res.statusCode} with something other than JSON`);
  }
  if (res.statusCode < 300) return body;
  const e = (body as { error?: { code?: string; message?: string }; issues?: ConfigIssue[] } | null) ?? {};
  const code = e.error?.code ?? `HTTP ${res.statusCode}`;
  const message = `${e.error?.message ?? 'request failed'} (${code})`;
  if (code === 'PCL_ERR_API_DISABLED')
    throw new CommandFailure(ManageExit.GATEWAY, `${message}; or use --offline to edit the file, then reload the gateway (SIGHUP)`);
  if (code === 'PCL_ERR_API_AUTH') throw new CommandFailure(ManageExit.GATEWAY, `the gateway at ${target.base} refused the token: ${message}`);
  if (code === 'PCL_ERR_API_BAD_REQUEST') throw new CommandFailure(ManageExit.USAGE, message);
  if (res.statusCode === 400 || res.statusCode === 404 || res.statusCode === 409) throw new CommandFailure(ManageExit.REFUSED, message, e.issues, 'config');
  throw new CommandFailure(ManageExit.GATEWAY, message, e.issues);
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

// ---- one command: through the API, else on the file ----

export interface ChangeResult {
  via: 'api' | 'file';
  message: string;
  written: boolean;
  applied: boolean;
  changed: Array<{ path: string; before?: unknown; after?: unknown }>;
  restartRequired?: string[];
  file?: string;
}

async function viaApiOrFile<T>(opts: CommonOptions, io: Io, api: () => Promise<T>, file: () => Promise<T>): Promise<T> {
  if (opts.offline) return file();
  try {
    return await api();
  } catch (err) {
    if (!(err instanceof NotRunning)) throw err;
    if (!opts.json) io.err(`portcullis: ${err.message}: using the config file ${configFileOf(opts)} (the change applies at the next start or reload)`);
    return file();
  }
}

async function runChange(opts: CommonOptions, io: Io, call: ApiCall, edit: Edit): Promise<ChangeResult> {
  return viaApiOrFile<ChangeResult>(
    opts,
    io,
    async () => ({ via: 'api', ...((await callApi(apiTarget(opts), call)) as Omit<ChangeResult, 'via'>) }),
    async () => {
      const file = configFileOf(opts);
      const before = loadFile(file);
      const store = await ConfigStore.open(file, { checks: fileChecks() });
      let outcome;
      try {
        outcome = await applyEdit(store, before, edit);
      } catch (err) {
        if (err instanceof EditError) throw new CommandFailure(err.kind === 'bad_request' ? ManageExit.USAGE : ManageExit.REFUSED, err.message);
        throw err;
      }
      if (!outcome.ok) throw new CommandFailure(ManageExit.REFUSED, outcome.message, outcome.issues, file);
      return { via: 'file', message: outcome.message, written: outcome.written, applied: false, changed: outcome.changed, file };
    },
  );
}

async function runRead<T>(opts: CommonOptions, io: Io, path: string, view: (config: PortcullisConfig) => T): Promise<T> {
  return viaApiOrFile(
    opts,
    io,
    async () => (await callApi(apiTarget(opts), { method: 'GET', path })) as T,
    async () => view(loadFile(configFileOf(opts))),
  );
}

function printChange(r: ChangeResult, opts: CommonOptions, io: Io): void {
  if (opts.json) return io.out(JSON.stringify(r, null, 2));
  io.out(r.message);
  for (const c of r.changed) io.out(`  changed ${c.path}`);
  for (const k of r.restartRequired ?? []) io.out(`  takes effect on restart: ${k}`);
  if (!r.written) io.out('nothing to change');
  else if (r.via === 'api') io.out('written to the config file and applied by the running gateway');
  else io.out(`written to ${r.file ?? 'the config file'}; the gateway applies it at its next start or reload`);
}

/** Runs one command body: prints what it returns, or the failure, and sets the exit status. */
async function run(opts: CommonOptions, io: Io, body: () => Promise<void>): Promise<void> {
  try {
    await body();
    process.exitCode = ManageExit.OK;
  } catch (err) {
    if (!(err instanceof CommandFailure)) throw err;
    if (opts.json) io.out(JSON.stringify({ error: { message: err.message }, ...(err.issues ? { issues: err.issues } : {}) }, null, 2));
    io.err(`portcullis: ${err.message}`);
    for (const i of err.issues ?? []) io.err(`  ${formatIssue(err.source ?? 'config', i)}`);
    process.exitCode = err.exit;
  }
}

// ---- argument helpers ----

function ports(value: string | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new CommandFailure(ManageExit.USAGE, `not a port: ${v}`);
    return n;
  });
}

/** A value on the command line as YAML (`30000`, `true`, `[a, b]`, `{a: 1}`), like in the file. */
export function parseValue(text: string): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch (err) {
    throw new CommandFailure(ManageExit.USAGE, `not a YAML value: ${errorMessage(err)}`);
  }
}

function readStdin(): string {
  return readFileSync(0, 'utf8').replace(/\r?\n$/, '');
}

function withCommon(cmd: Command): Command {
  return (
    cmd
      // Usage errors end with the documented status 2 (commander's own is 1, which here means "refused").
      .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : ManageExit.USAGE))
      .option('-c, --config <file>', `configuration file (default ${DEFAULT_CONFIG_PATH})`)
      .option('--admin-url <url>', 'admin API of the running gateway (default: from admin.listen in the config file)')
      .option('--token-file <file>', 'file holding the admin API token (default: admin.token / tokenFile / tokenEnv of the config file)')
      .option('--ca-file <file>', 'CA to trust for an HTTPS admin listener (default: admin.tls.certFile)')
      .option('--offline', 'edit the config file directly, without asking the running gateway')
      .option('--json', 'print JSON for scripts')
  );
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

// ---- the commands ----

export function registerManageCommands(program: Command, io: Io = stdio): void {
  const allow = program.command('allow').description('the destination allowlist (Get/Add/Remove-OMSGatewayAllowedHost)');
  withCommon(allow.command('list').description('show presets, workspaces and rules')).action(async (opts: CommonOptions) =>
    run(opts, io, async () => {
      const view = await runRead(opts, io, '/allow', allowView);
      if (opts.json) return io.out(JSON.stringify(view, null, 2));
      io.out(`presets: ${view.presets.join(', ') || '(none)'}`);
      io.out(`workspaces: ${view.workspaces.map((w) => (w.region ? `${w.id} (${w.region})` : w.id)).join(', ') || '(none: templates match any)'}`);
      if (view.regions.length) io.out(`regions: ${view.regions.join(', ')}`);
      if (view.rules.length === 0) return io.out('rules: (none)');
      const w = Math.max(4, ...view.rules.map((r) => r.name.length));
      io.out(`${pad('RULE', w)}  PORTS  HOSTS`);
      for (const r of view.rules) {
        const flags = [r.allowPrivate ? 'allowPrivate' : '', r.mode === 'report' ? 'report' : ''].filter(Boolean);
        io.out(`${pad(r.name, w)}  ${pad(r.ports.join(','), 5)}  ${r.hosts.join(', ')}${flags.length ? `  [${flags.join(', ')}]` : ''}`);
      }
    }),
  );
  withCommon(
    allow
      .command('add')
      .description(`allow hosts: add them to a rule (created when absent; default ${edits.DEFAULT_RULE_NAME})`)
      .argument('<hosts...>', 'exact hosts, *.suffix wildcards, templates, IP literals or CIDRs')
      .option('-r, --rule <name>', 'the rule to add to', edits.DEFAULT_RULE_NAME)
      .option('-p, --port <ports>', 'ports to allow, comma-separated (default 443 for a new rule)')
      .option('--allow-private', 'the rule may reach private addresses (Private Link)'),
  ).action(async (hosts: string[], opts: CommonOptions & { rule: string; port?: string; allowPrivate?: boolean }) =>
    run(opts, io, async () => {
      const input = {
        rule: opts.rule,
        hosts,
        ...(opts.port ? { ports: ports(opts.port) ?? [] } : {}),
        ...(opts.allowPrivate ? { allowPrivate: true } : {}),
      };
      const { rule, ...rest } = input;
      printChange(await runChange(opts, io, { method: 'POST', path: '/allow/rules', body: { name: rule, ...rest } }, edits.addHosts(input)), opts, io);
    }),
  );
  withCommon(
    allow
      .command('remove')
      .description('stop allowing a host (from every rule that lists it, or --rule); a rule left empty is removed')
      .argument('<host>', 'the host as listed')
      .option('-r, --rule <name>', 'only from this rule'),
  ).action(async (host: string, opts: CommonOptions & { rule?: string }) =>
    run(opts, io, async () => {
      const path =
        opts.rule !== undefined
          ? `/allow/rules/${encodeURIComponent(opts.rule)}/hosts/${encodeURIComponent(host)}`
          : `/allow/hosts/${encodeURIComponent(host)}`;
      printChange(await runChange(opts, io, { method: 'DELETE', path }, edits.removeHost(host, opts.rule)), opts, io);
    }),
  );
  withCommon(allow.command('remove-rule').description('remove a whole rule').argument('<name>', 'rule name')).action(
    async (name: string, opts: CommonOptions) =>
      run(opts, io, async () => {
        printChange(await runChange(opts, io, { method: 'DELETE', path: `/allow/rules/${encodeURIComponent(name)}` }, edits.removeRule(name)), opts, io);
      }),
  );

  const relay = program.command('relay').description('relay (upstream, corporate) proxies (Get/Set-OMSGatewayRelayProxy)');
  withCommon(relay.command('get').description('show the relay proxies (passwords are never shown, only where they come from)')).action(
    async (opts: CommonOptions) =>
      run(opts, io, async () => {
        const view = await runRead(opts, io, '/relay', relayView);
        if (opts.json) return io.out(JSON.stringify(view, null, 2));
        if (!view.configured) return io.out('no relay: destinations are dialled directly');
        for (const p of view.proxies) {
          const pw =
            p.password.source === 'file' ? `from file ${p.password.file}` : p.password.source === 'env' ? `from $${p.password.env}` : p.password.source;
          io.out(`${p.url}${p.username !== undefined ? `  user ${p.username}, password ${pw}` : ''}`);
        }
        io.out(`bypass: ${view.bypass.join(', ') || '(none)'}`);
        io.out(`backoffMs: ${String(view.backoffMs)}, connectMs: ${String(view.connectMs)}`);
      }),
  );
  withCommon(
    relay
      .command('set')
      .description('set the relay proxies, in order of preference; a proxy given without a password keeps its configured one')
      .argument('<urls...>', 'http://host:port of each relay')
      .option('-u, --username <name>', 'Basic-auth user for every relay given')
      .option('--password-file <file>', 'a file holding the password (the config names the file)')
      .option('--password-env <name>', 'an environment variable of the gateway holding the password')
      .option('--password-stdin', 'read the password from standard input and write it into the config file')
      .option('--bypass <hosts...>', 'destinations dialled directly')
      .option('--backoff-ms <ms>', 'skip a failed relay this long')
      .option('--connect-ms <ms>', 'connect + CONNECT answer deadline'),
  ).action(
    async (
      urls: string[],
      opts: CommonOptions & {
        username?: string;
        passwordFile?: string;
        passwordEnv?: string;
        passwordStdin?: boolean;
        bypass?: string[];
        backoffMs?: string;
        connectMs?: string;
      },
    ) =>
      run(opts, io, async () => {
        const given = [opts.passwordFile, opts.passwordEnv, opts.passwordStdin].filter((v) => v !== undefined);
        if (given.length > 1) throw new CommandFailure(ManageExit.USAGE, 'give only one of --password-file, --password-env, --password-stdin');
        const password = opts.passwordStdin ? readStdin() : undefined;
        const int = (v: string | undefined, what: string): number | undefined => {
          if (v === undefined) return undefined;
          const n = Number(v);
          if (!Number.isInteger(n)) throw new CommandFailure(ManageExit.USAGE, `${what} must be an integer`);
          return n;
        };
        const backoffMs = int(opts.backoffMs, '--backoff-ms');
        const connectMs = int(opts.connectMs, '--connect-ms');
        const input: edits.RelayInput = {
          proxies: urls.map((url) => ({
            url,
            ...(opts.username !== undefined ? { username: opts.username } : {}),
            ...(password !== undefined ? { password } : {}),
            ...(opts.passwordFile !== undefined ? { passwordFile: opts.passwordFile } : {}),
            ...(opts.passwordEnv !== undefined ? { passwordEnv: opts.passwordEnv } : {}),
          })),
          ...(opts.bypass !== undefined ? { bypass: opts.bypass } : {}),
          ...(backoffMs !== undefined ? { backoffMs } : {}),
          ...(connectMs !== undefined ? { connectMs } : {}),
        };
        printChange(await runChange(opts, io, { method: 'PUT', path: '/relay', body: input }, edits.setRelay(input)), opts, io);
      }),
  );
  withCommon(relay.command('clear').description('remove the relay: dial destinations directly')).action(async (opts: CommonOptions) =>
    run(opts, io, async () => {
      printChange(await runChange(opts, io, { method: 'DELETE', path: '/relay' }, edits.clearRelay()), opts, io);
    }),
  );

  const clients = program.command('clients').description('allowed client certificates (Get/Add/Remove-OMSGatewayAllowedClientCertificate)');
  withCommon(clients.command('list').description('show the allowed subjects and SHA-256 thumbprints')).action(async (opts: CommonOptions) =>
    run(opts, io, async () => {
      const view = await runRead(opts, io, '/clients/certificates', certificatesView);
      if (opts.json) return io.out(JSON.stringify(view, null, 2));
      if (view.subjects.length === 0 && view.thumbprintsSha256.length === 0) return io.out('no client-certificate check (no subjects or thumbprints listed)');
      for (const s of view.subjects) io.out(`subject     ${s}`);
      for (const t of view.thumbprintsSha256) io.out(`thumbprint  ${t}`);
    }),
  );
  const certOptions = (cmd: Command): Command =>
    withCommon(
      cmd
        .option('-s, --subject <subject>', 'certificate subject, e.g. "CN=<workspaceId>, CN=<agentGuid>, OU=Microsoft Monitoring Agent, O=Microsoft"')
        .option('-t, --thumbprint <sha256>', 'SHA-256 fingerprint: 64 hex digits, colons optional'),
    );
  const certInput = (opts: { subject?: string; thumbprint?: string }): edits.CertificateInput => {
    if (opts.subject === undefined && opts.thumbprint === undefined) throw new CommandFailure(ManageExit.USAGE, 'give --subject and/or --thumbprint');
    return {
      ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
      ...(opts.thumbprint !== undefined ? { thumbprintSha256: opts.thumbprint } : {}),
    };
  };
  certOptions(clients.command('add').description('allow a client certificate')).action(
    async (opts: CommonOptions & { subject?: string; thumbprint?: string }) =>
      run(opts, io, async () => {
        const input = certInput(opts);
        printChange(await runChange(opts, io, { method: 'POST', path: '/clients/certificates', body: input }, edits.addCertificate(input)), opts, io);
      }),
  );
  certOptions(clients.command('remove').description('stop allowing a client certificate')).action(
    async (opts: CommonOptions & { subject?: string; thumbprint?: string }) =>
      run(opts, io, async () => {
        const input = certInput(opts);
        const query = new URLSearchParams(Object.entries(input).filter((e): e is [string, string] => typeof e[1] === 'string')).toString();
        printChange(await runChange(opts, io, { method: 'DELETE', path: `/clients/certificates?${query}` }, edits.removeCertificate(input)), opts, io);
      }),
  );

  const config = program.command('config').description('any configuration key (Get/Set-OMSGatewayConfig)');
  withCommon(
    config
      .command('get')
      .description('show the configuration in force, or one key (secrets redacted)')
      .argument('[path]', 'dotted key path, e.g. proxy.timeouts.idleMs'),
  ).action(async (path: string | undefined, opts: CommonOptions) =>
    run(opts, io, async () => {
      let value: unknown;
      if (path === undefined) value = await runRead(opts, io, '/config', redactedConfig);
      else {
        const segs = parseDottedPath(path);
        if (!segs) throw new CommandFailure(ManageExit.USAGE, `not a key path: ${path}`);
        const r = await runRead(opts, io, `/config/${encodeURIComponent(path)}`, (c) => {
          const v = valueAt(redactedConfig(c), segs);
          if (v === undefined) throw new CommandFailure(ManageExit.REFUSED, `no key ${path} in the configuration`);
          return { path, value: v };
        });
        value = r.value;
      }
      io.out(opts.json || typeof value === 'object' || typeof value !== 'string' ? JSON.stringify(value, null, 2) : value);
    }),
  );
  withCommon(
    config
      .command('set')
      .description('set one key; the whole result is validated first')
      .argument('<path>', 'dotted key path, e.g. proxy.timeouts.idleMs')
      .argument('<value>', 'a YAML value: 30000, true, "[a, b]"'),
  ).action(async (path: string, text: string, opts: CommonOptions) =>
    run(opts, io, async () => {
      const value = parseValue(text);
      printChange(
        await runChange(opts, io, { method: 'PUT', path: `/config/${encodeURIComponent(path)}`, body: { value } }, edits.setValue(path, value)),
        opts,
        io,
      );
    }),
  );
}
