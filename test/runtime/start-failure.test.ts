import net from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, type SpawnedGateway } from '../helpers/gateway.js';

/** A port held by this test process, so the gateway's bind fails with EADDRINUSE. */
let holder: net.Server;
let taken: number;

beforeAll(async () => {
  holder = net.createServer();
  holder.listen({ host: '127.0.0.1', port: 0 });
  await once(holder, 'listening');
  taken = (holder.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => holder.close(() => r()));
});

/**
 * A bound generous enough for a loaded 2-core machine: the old behaviour (workers replaced forever)
 * never exits at all. Wait until the gateway and every process it started have gone (their shared stdout and stderr
 * close), at most `withinMs`: past it the process is killed and the exit code reads null.
 */
async function runToExit(g: SpawnedGateway, withinMs = 60_000): Promise<{ code: number | null; stderr: string; fatal: string[] }> {
  const timer = setTimeout(() => g.proc.kill('SIGKILL'), withinMs);
  const [code] = (await once(g.proc, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stderr: g.stderr(), fatal: g.logs.filter((l) => l.level === 'fatal').map((l) => String(l.msg)) };
}

describe('a service that cannot start stops the gateway with one sentence', () => {
  it.each([
    ['single process', 1],
    ['cluster', 2],
  ])(
    '%s: proxy address in use',
    async (_mode, workers) => {
      const g = spawnGateway({ proxy: { workers } }, { env: { PORTCULLIS_LISTEN: `127.0.0.1:${taken}` } });
      const { code, stderr, fatal } = await runToExit(g);
      const sentence = `proxy.listen: address 127.0.0.1:${taken} already in use (EADDRINUSE)`;
      expect(code).toBe(1);
      expect(fatal).toEqual([sentence]);
      // On a terminal: the sentence, no stack trace.
      expect(stderr).toBe(`portcullis: ${sentence}\n`);
      // Workers that cannot bind are not replaced (the old behaviour: a restart loop).
      expect(g.logs.filter((l) => l.msg === 'worker exited unexpectedly: replacing it')).toEqual([]);
      expect(g.logs.some((l) => l.msg === 'proxy listening')).toBe(false);
    },
    90_000,
  );

  it('cluster: admin address in use', async () => {
    const g = spawnGateway({ proxy: { workers: 2 }, admin: { listen: `127.0.0.1:${taken}` } });
    const { code, stderr, fatal } = await runToExit(g);
    const sentence = `admin.listen: address 127.0.0.1:${taken} already in use (EADDRINUSE)`;
    expect(code).toBe(1);
    expect(fatal).toEqual([sentence]);
    expect(stderr).toBe(`portcullis: ${sentence}\n`);
    // The admin listener starts first: no worker was forked.
    expect(g.logs.some((l) => l.msg === 'worker listening')).toBe(false);
  }, 90_000);
});

describe('a SIGTERM during the start', () => {
  it('cluster: before the workers listen, stops them too: exit 0, nothing on stderr, no process left', async () => {
    const g = spawnGateway({ proxy: { workers: 2 } });
    // The admin listener is up before the workers are forked, and a worker takes a while to boot:
    // the signal lands while the pool starts (the supervisor used to exit under its workers, whose
    // first IPC send then crashed them with an unhandled EPIPE on stderr).
    await g.waitForLog((l) => l.msg === 'admin listening', 30_000);
    g.proc.kill('SIGTERM');
    // Closes only once every process sharing its stdout and stderr (the workers too) has gone.
    const { code, stderr, fatal } = await runToExit(g);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(fatal).toEqual([]);
    expect(g.logs.some((l) => l.msg === 'stopped')).toBe(true);
  }, 90_000);
});
