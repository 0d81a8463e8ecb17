/** A gateway whose config file an operator wrote by hand (comments, flow lists, key order), and an admin API client. */
import { readFileSync, writeFileSync } from 'node:fs';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';

export const TOKEN = 'test-token-0123456789abcdef';

/** The operator's file: every comment and the key order must survive API and CLI edits. */
export function commentedConfig(echoPort: number, opts: { token?: string | null; adminListen?: string } = {}): string {
  const token = opts.token === undefined ? TOKEN : opts.token;
  return [
    '# Portcullis test gateway: comments must survive API edits',
    'proxy:',
    '  listen: ["127.0.0.1:0"]   # bound by the test',
    '  workers: 1',
    '  timeouts:',
    '    idleMs: 300000          # five minutes',
    'allow:',
    '  presets: [azure-public]   # the cloud we use',
    '  rules:',
    '    # echo servers on loopback',
    '    - name: echo',
    '      hosts: ["echo.example.com"]',
    `      ports: [${echoPort}]`,
    '      allowPrivate: true    # loopback is private',
    'dns:',
    '  # names the tests reach, all on loopback',
    '  overrides: { "echo.example.com": "127.0.0.1", "new.example.com": "127.0.0.1" }',
    'admin:',
    `  listen: "${opts.adminListen ?? '127.0.0.1:0'}"`,
    ...(token !== null ? [`  token: "${token}"   # inline for the test`] : []),
    'log:',
    '  level: info',
    '  access: true',
    '',
  ].join('\n');
}

/** Comment lines and top-level keys of a YAML text, in order. */
export function commentsOf(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.includes('#'))
    .map((l) => l.slice(l.indexOf('#')));
}

export function topLevelKeys(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => /^[a-zA-Z]\w*:/.test(l))
    .map((l) => l.slice(0, l.indexOf(':')));
}

/**
 * Starts a gateway, then puts the operator's commented file in place and reloads it through the
 * API, so the test edits a file a person wrote (the start helper writes plain YAML).
 */
export async function startWithCommentedFile(echoPort: number, opts: { token?: string | null } = {}): Promise<GatewayProcess> {
  const token = opts.token === undefined ? TOKEN : opts.token;
  const gw = await startGateway(
    {
      allow: { presets: ['azure-public'], rules: [{ name: 'echo', hosts: ['echo.example.com'], ports: [echoPort], allowPrivate: true }] },
      dns: { overrides: { 'echo.example.com': '127.0.0.1', 'new.example.com': '127.0.0.1' } },
      ...(token !== null ? { admin: { token } } : {}),
    },
    // The relay test switches the password to passwordEnv: the gateway resolves it at reload.
    { env: { RELAY_PASSWORD: 'relay-secret-from-env' } },
  );
  writeFileSync(gw.configFile, commentedConfig(echoPort, { token }));
  const before = gw.logs.length;
  gw.proc.kill('SIGHUP');
  await gw.waitForLog((r) => r.msg === 'configuration reloaded', 10_000, before);
  return gw;
}

export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

export function apiClient(adminPort: number | undefined, token: string | null = TOKEN) {
  if (adminPort === undefined) throw new Error('the gateway logged no admin port');
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer> => {
    const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
      method,
      headers: {
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
}

export function fileText(gw: GatewayProcess): string {
  return readFileSync(gw.configFile, 'utf8');
}
