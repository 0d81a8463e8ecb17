import { chmodSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ConfigError, ConfigStore, loadConfigFile, nativeRelayCheck, type PortcullisConfig } from '../../src/config/index.js';
import { configError, tempDir, writeTemp } from './helpers.js';

const EXAMPLE = readFileSync(new URL('../../config/portcullis.yaml', import.meta.url), 'utf8');

const COMMENTED = `# Operator's header: do not remove
proxy:
  listen: ["127.0.0.1:0"]   # inline note on listen
  mode: enforce
# a comment between sections
allow:
  presets: []
  rules:
    # the CRL servers
    - name: crl
      hosts: [crl.example.com, ocsp.example.com]  # keep these two
      ports: [80]
    - name: api
      hosts:
        - api.example.com   # block style list
log:
  level: info
`;

function commentLines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.includes('#'))
    .map((l) => l.slice(l.indexOf('#')).trim());
}

function entries(dir: string): string[] {
  return readdirSync(dir).sort();
}

describe('ConfigStore: edits keep the operator’s file', () => {
  it('keeps every comment and the key order of the shipped example through an edit, and the edit loads', async () => {
    const file = writeTemp('portcullis.yaml', EXAMPLE);
    const store = await ConfigStore.open(file);
    expect(store.addToList(['allow', 'rules', 0, 'hosts'], 'crl.example.org')).toBe(true);
    store.set(['proxy', 'mode'], 'report');
    expect(await store.save()).toMatchObject({ ok: true });

    const after = readFileSync(file, 'utf8');
    expect(commentLines(after)).toEqual(commentLines(EXAMPLE));
    const topKeys = (t: string): string[] =>
      t
        .split('\n')
        .filter((l) => /^[a-z]+:/.test(l))
        .map((l) => l.split(':')[0]!);
    expect(topKeys(after)).toEqual(topKeys(EXAMPLE));
    // Only the edited lines differ: every other line, its spacing and aligned comments included, is as written.
    const before = EXAMPLE.split('\n');
    const lines = after.split('\n');
    expect(lines.filter((l) => !before.includes(l))).toEqual(['  mode: report', '        - crl.example.org']);
    expect(before.filter((l) => !lines.includes(l))).toEqual(['  mode: enforce']);
    expect(lines).toHaveLength(before.length + 1);
    const loaded = loadConfigFile(file, { env: {} });
    expect(loaded.proxy.mode).toBe('report');
    expect(loaded.allow.rules[0]!.hosts).toContain('crl.example.org');
  });

  it('set() on a scalar keeps the comment on its line, and a value of another type drops the old quoting', async () => {
    const file = writeTemp('portcullis.yaml', 'proxy:\n  timeouts:\n    idleMs: 300000   # five minutes\n  mode: "enforce"  # quoted\n');
    const store = await ConfigStore.open(file);
    store.set(['proxy', 'timeouts', 'idleMs'], 60000);
    store.set(['proxy', 'mode'], 'report');
    expect(await store.save()).toMatchObject({ ok: true });
    const after = readFileSync(file, 'utf8');
    expect(after).toMatch(/idleMs: 60000 +# five minutes/);
    expect(after).toMatch(/mode: "report" +# quoted/);
  });

  it('get/set/delete and the list helpers work on paths, keeping a flow list flow and a block list block', async () => {
    const file = writeTemp('c.yaml', COMMENTED);
    const store = await ConfigStore.open(file);
    expect(store.get(['allow', 'rules', 0, 'hosts'])).toEqual(['crl.example.com', 'ocsp.example.com']);
    expect(store.get(['allow', 'rules', 5])).toBeUndefined();
    expect(store.addToList(['allow', 'rules', 0, 'hosts'], 'crl.example.com')).toBe(false);
    expect(store.addToList(['allow', 'rules', 0, 'hosts'], 'crl2.example.com')).toBe(true);
    expect(store.addToList(['allow', 'rules', 1, 'hosts'], 'api2.example.com')).toBe(true);
    expect(store.removeFromList(['allow', 'rules', 0, 'hosts'], 'ocsp.example.com')).toBe(true);
    expect(store.removeFromList(['allow', 'rules', 0, 'hosts'], 'ocsp.example.com')).toBe(false);
    expect(store.addToList(['clients', 'allow'], '10.0.0.0/8')).toBe(true); // created with its parents
    store.set(['dns', 'overrides', 'api.example.com'], '127.0.0.1');
    expect(store.delete(['log', 'level'])).toBe(true);
    expect(store.delete(['log', 'level'])).toBe(false);

    const text = store.text();
    // An edited line is printed by yaml (one space before its comment); the lines around it are as written.
    expect(text).toContain('      hosts: [crl.example.com, crl2.example.com] # keep these two\n');
    expect(text).toContain('  listen: ["127.0.0.1:0"]   # inline note on listen\n');
    expect(text).toContain('        - api.example.com   # block style list\n        - api2.example.com\n');
    expect(commentLines(text)).toEqual(commentLines(COMMENTED));
    const saved = await store.save();
    expect(saved.ok).toBe(true);
    const loaded = loadConfigFile(file, { env: {} });
    expect(loaded.clients.allow).toEqual(['10.0.0.0/8']);
    expect(loaded.dns.overrides).toEqual({ 'api.example.com': '127.0.0.1' });
    expect(loaded.log.level).toBe('info'); // back to the default
  });

  it('validate() reports issues located in the text it would write', async () => {
    const store = await ConfigStore.open(writeTemp('c.yaml', COMMENTED));
    expect(store.validate()).toEqual([]);
    store.addToList(['allow', 'rules', 1, 'hosts'], '*.com');
    store.set(['proxy', 'mode'], 'maybe');
    const issues = store.validate();
    expect(issues.map((i) => i.path).sort()).toEqual(['allow.rules[1].hosts[1]', 'proxy.mode']);
    const hostIssue = issues.find((i) => i.path === 'allow.rules[1].hosts[1]');
    const lines = store.text().split('\n');
    expect(lines[(hostIssue?.line ?? 0) - 1]).toContain('*.com');
  });
});

describe('ConfigStore: save', () => {
  it('refuses an invalid edit: nothing written, the file byte-identical, no temp file, no reload', async () => {
    const dir = tempDir();
    const file = join(dir, 'c.yaml');
    writeFileSync(file, COMMENTED);
    const before = readFileSync(file);
    let reloads = 0;
    const store = await ConfigStore.open(file, { onSaved: () => void reloads++ });
    store.set(['allow', 'rules', 1, 'name'], 'CRL'); // same name as rule 0, another case
    store.set(['clients', 'deny'], ['10.0.0.0/33']);
    const r = await store.save();
    expect(r).toMatchObject({ ok: false, reason: 'invalid' });
    expect(r.ok ? [] : r.issues.map((i) => i.path).sort()).toEqual(['allow.rules[1].name', 'clients.deny[0]']);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(entries(dir)).toEqual(['c.yaml']);
    expect(reloads).toBe(0);
  });

  it('applies the injected host-fact checks, as the loader does', async () => {
    const store = await ConfigStore.open(writeTemp('c.yaml', COMMENTED), {
      checks: [nativeRelayCheck({ available: false, reason: 'not built (npm run build)' })],
    });
    store.set(['proxy', 'relay'], 'native');
    const r = await store.save();
    expect(r.ok ? [] : r.issues).toEqual([expect.objectContaining({ path: 'proxy.relay', message: expect.stringContaining('native relay not available') })]);
  });

  it('writes atomically: the new text, the file mode kept, no temp file left, then the reload callback with the config', async () => {
    for (const mode of [0o600, 0o640]) {
      const dir = tempDir();
      const file = join(dir, 'c.yaml');
      writeFileSync(file, COMMENTED);
      chmodSync(file, mode);
      const seen: PortcullisConfig[] = [];
      const store = await ConfigStore.open(file, { onSaved: (c) => void seen.push(c) });
      store.set(['proxy', 'mode'], 'report');
      const r = await store.save();
      expect(r.ok).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe(store.text());
      expect(statSync(file).mode & 0o7777).toBe(mode);
      expect(entries(dir)).toEqual(['c.yaml']);
      expect(seen.map((c) => c.proxy.mode)).toEqual(['report']);
    }
  });

  it('writes through a symlink to the file it points at, keeping the link', async () => {
    const dir = tempDir();
    const real = join(dir, 'real.yaml');
    const link = join(dir, 'portcullis.yaml');
    writeFileSync(real, COMMENTED);
    symlinkSync(real, link);
    const store = await ConfigStore.open(link);
    store.set(['proxy', 'mode'], 'report');
    expect((await store.save()).ok).toBe(true);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(loadConfigFile(real, { env: {} }).proxy.mode).toBe('report');
    expect(entries(dir)).toEqual(['portcullis.yaml', 'real.yaml']);
  });

  it('refuses to overwrite a file someone else changed since it was read', async () => {
    const file = writeTemp('c.yaml', COMMENTED);
    const store = await ConfigStore.open(file);
    const theirs = COMMENTED.replace('level: info', 'level: debug');
    writeFileSync(file, theirs);
    store.set(['proxy', 'mode'], 'report');
    expect(await store.save()).toMatchObject({ ok: false, reason: 'conflict' });
    expect(readFileSync(file, 'utf8')).toBe(theirs);
    // Its own earlier save is not a conflict.
    const again = await ConfigStore.open(file);
    again.set(['proxy', 'mode'], 'report');
    expect((await again.save()).ok).toBe(true);
    again.set(['proxy', 'mode'], 'enforce');
    expect((await again.save()).ok).toBe(true);
  });

  it('runs saves one at a time: two saves started together both land, neither is a conflict', async () => {
    const file = writeTemp('c.yaml', COMMENTED);
    const store = await ConfigStore.open(file);
    store.set(['proxy', 'mode'], 'report');
    const first = store.save();
    store.set(['log', 'level'], 'debug');
    const second = store.save();
    expect([await first, await second]).toMatchObject([{ ok: true }, { ok: true }]);
    expect(readFileSync(file, 'utf8')).toBe(store.text());
    const loaded = loadConfigFile(file, { env: {} });
    expect([loaded.proxy.mode, loaded.log.level]).toEqual(['report', 'debug']);
  });

  it('a reader never sees a half-written file while the store saves again and again', async () => {
    // A file big enough that a write is many syscalls: a non-atomic writer shows torn reads here.
    const hosts = Array.from({ length: 400 }, (_, i) => `        - h${i}.example.com\n`).join('');
    const text = `${COMMENTED}  # big\n`.replace(
      '        - api.example.com   # block style list\n',
      `        - api.example.com   # block style list\n${hosts}`,
    );
    const dir = tempDir();
    const file = join(dir, 'c.yaml');
    writeFileSync(file, text);
    const store = await ConfigStore.open(file);
    const written = new Set([text]);

    const stop = new Int32Array(new SharedArrayBuffer(4));
    const reader = new Worker(
      `const { readFileSync } = require('node:fs');
       const { workerData, parentPort } = require('node:worker_threads');
       const stop = new Int32Array(workerData.stop);
       const seen = new Set(); let reads = 0; const errors = [];
       parentPort.postMessage('reading');
       while (Atomics.load(stop, 0) === 0) {
         try { seen.add(readFileSync(workerData.file, 'utf8')); reads++; } catch (e) { errors.push(String(e.code || e)); }
       }
       parentPort.postMessage({ reads, errors, seen: [...seen] });`,
      { eval: true, workerData: { file, stop: stop.buffer } },
    );
    const result = new Promise<{ reads: number; errors: string[]; seen: string[] }>((resolve, reject) => {
      reader.on('message', (m: unknown) => {
        if (m !== 'reading') resolve(m as { reads: number; errors: string[]; seen: string[] });
      });
      reader.on('error', reject);
    });
    await new Promise<void>((resolve) => reader.once('message', () => resolve()));

    for (let i = 0; i < 8; i++) {
      store.set(['proxy', 'timeouts', 'idleMs'], 60_000 + i);
      const r = await store.save();
      expect(r.ok).toBe(true);
      written.add(store.text());
    }
    Atomics.store(stop, 0, 1);
    const { reads, errors, seen } = await result;
    await reader.terminate();

    expect(errors).toEqual([]);
    expect(reads).toBeGreaterThan(0);
    for (const t of seen) expect(written.has(t), `torn read of ${t.length} bytes`).toBe(true);
    // The reader ran alongside the saves: it saw more than one version.
    expect(seen.length).toBeGreaterThan(1);
    expect(entries(dir)).toEqual(['c.yaml']);
  });
});

describe('ConfigStore.open', () => {
  it('refuses a file that is not YAML, saying where', async () => {
    const file = writeTemp('c.yaml', 'proxy:\n  mode: [enforce\n');
    const err = await ConfigStore.open(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues[0]).toMatchObject({ line: expect.any(Number), message: expect.stringContaining('YAML') });
  });

  it('opens a semantically invalid file, so it can be fixed through the store', async () => {
    const file = writeTemp('c.yaml', 'proxy:\n  mode: maybe\n');
    expect(() => loadConfigFile(file, { env: {} })).toThrow(ConfigError);
    const store = await ConfigStore.open(file);
    expect(store.validate().map((i) => i.path)).toEqual(['proxy.mode']);
    store.set(['proxy', 'mode'], 'report');
    expect((await store.save()).ok).toBe(true);
    expect(configError(() => loadConfigFile(join(file, '..', 'missing.yaml'))).issues[0]?.message).toContain('no such file');
  });
});
