import { afterAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { defaultConfig } from '../../src/config/index.js';
import { nativeRelayStatus, relayConfigCheck, relayInUse, RELAY_END_CAUSES } from '../../src/relay/index.js';
import { ADDON_PATH } from '../../src/relay/probe.js';
import { startGateway } from '../helpers/gateway.js';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { startTcpEcho } from '../helpers/servers.js';

const status = nativeRelayStatus();

describe('native relay availability', () => {
  // Off CI a machine without a compiler runs the JavaScript relay (skipped, with the reason); on
  // CI the native one must exist, or every tunnel test would silently measure the fallback.
  it('is built and loads on this Node version', (ctx) => {
    if (process.env.CI !== 'true') ctx.skip(!status.available, `native relay not built here: ${status.reason}`);
    expect(status).toEqual({ available: true, reason: '' });
    expect(relayInUse('auto')).toEqual({ relay: 'native', warning: null });
    const wantsNative = defaultConfig({});
    wantsNative.proxy.relay = 'native';
    expect(relayConfigCheck(wantsNative)).toEqual([]);
  });

  it('names its end causes as TypeScript does (one list: RELAY_CAUSES in native/relay.c)', (ctx) => {
    if (process.env.CI !== 'true') ctx.skip(!status.available, `native relay not built here: ${status.reason}`);
    // A mismatch also makes the module refuse the addon (and the test above fail with the reason).
    const addon = createRequire(import.meta.url)(ADDON_PATH) as { causes: unknown };
    expect(addon.causes).toEqual([...RELAY_END_CAUSES]);
  });

  it('is not driven from a worker thread (its state belongs to the main thread)', async () => {
    const mod = new URL('../../dist/relay/index.js', import.meta.url).href;
    const w = new Worker(`import(${JSON.stringify(mod)}).then((m) => require('node:worker_threads').parentPort.postMessage(m.nativeRelayStatus()))`, {
      eval: true,
    });
    const [msg] = (await once(w, 'message')) as [{ available: boolean; reason: string }];
    await w.terminate();
    expect(msg).toEqual({ available: false, reason: 'not on the main thread' });
  });

  it('relay: js is honoured even where the native relay exists', () => {
    expect(relayInUse('js')).toEqual({ relay: 'js', warning: null });
  });
});

describe('the start-up line names the relay in use', () => {
  it.each([
    ['auto', status.available ? 'native' : 'js'],
    ['js', 'js'],
  ] as const)('relay: %s → %s', async (relay, expected) => {
    const gw = await startGateway({ proxy: { relay }, allow: { presets: [], rules: [{ name: 'x', hosts: ['x.example.com'] }] } });
    try {
      const line = await gw.waitForLog((l) => l.msg === 'proxy listening');
      expect(line.relay).toBe(expected);
    } finally {
      await gw.stop();
    }
  });
});

describe('an install where the native relay could not be built', () => {
  // The built gateway without build/Release: what a machine without a compiler ends up with.
  const repo = resolve(import.meta.dirname, '../..');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-nonative-'));
  cpSync(join(repo, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(repo, 'package.json'), join(dir, 'package.json'));
  cpSync(join(repo, 'config'), join(dir, 'config'), { recursive: true });
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  const cli = join(dir, 'dist', 'cli', 'main.js');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('relay: auto warns at start and relays in JavaScript', async () => {
    const echo = await startTcpEcho();
    const gw = await startGateway(
      { proxy: { relay: 'auto' }, allow: { presets: [], rules: [{ name: 'echo', hosts: ['127.0.0.1'], ports: [echo.port], allowPrivate: true }] } },
      // The copy has no build/: no sanitizer build either (test/sanitize.sh points the loader there).
      { cli, env: { PORTCULLIS_RELAY_ADDON: '' } },
    );
    try {
      const warn = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('native tunnel relay not available'));
      expect(warn.level).toBe('warn');
      expect((await gw.waitForLog((l) => l.msg === 'proxy listening')).relay).toBe('js');
      const t = await openTunnel(gw.port, `127.0.0.1:${echo.port}`);
      t.socket.write('ping');
      expect((await readBytes(t.socket, 4, t.rest)).toString()).toBe('ping');
      t.socket.end();
      expect(await gw.waitForLog((l) => l.event === 103)).toMatchObject({ relay: 'js', relayFallback: 'unavailable' });
    } finally {
      await gw.stop();
      await echo.close();
    }
  });

  it('relay: native is refused by check-config, naming the key', () => {
    const file = join(dir, 'native.yaml');
    writeFileSync(file, 'proxy:\n  relay: native\n');
    const r = spawnSync(process.execPath, [cli, 'check-config', file], { encoding: 'utf8', env: { ...process.env, PORTCULLIS_RELAY_ADDON: '' } });
    expect(r.status).toBe(1);
    expect(r.stderr + r.stdout).toMatch(/proxy\.relay.*native relay not available/);
  });
});
