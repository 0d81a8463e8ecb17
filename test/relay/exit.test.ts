/**
 * The process around the relay ends cleanly while it runs: process.exit() with busy tunnels (the
 * relay thread is mid-transfer), and a natural exit once every tunnel is over (Node tears the
 * environment down and the addon's cleanup hook stops the thread through the stop flag). A hang
 * shows as a timeout, a crash as a signal or a non-zero code. Child processes: the exit is the test.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { nativeRelayExpected } from '../helpers/relayed.js';

const MOD = new URL('../../dist/relay/index.js', import.meta.url).href;

const SCRIPT = `
import net from 'node:net';
import { once } from 'node:events';
const { relayTunnel, nativeRelayStatus } = await import(${JSON.stringify(MOD)});
if (!nativeRelayStatus().available) { console.error('no native relay: ' + nativeRelayStatus().reason); process.exit(3); }
const echo = net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); s.pipe(s); });
echo.listen(0, '127.0.0.1');
await once(echo, 'listening');
const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
front.listen(0, '127.0.0.1');
await once(front, 'listening');
const users = [];
const ends = [];
let allEnded;
const over = new Promise((r) => { allEnded = r; });
for (let i = 0; i < 4; i++) {
  const accepted = once(front, 'connection');
  const user = net.connect(front.address().port, '127.0.0.1');
  user.on('error', () => {});
  const [client] = await accepted;
  client.on('error', () => {});
  const upstream = net.connect(echo.address().port, '127.0.0.1');
  upstream.on('error', () => {});
  await once(upstream, 'connect');
  const t = relayTunnel(client, upstream, { idleMs: 0, toClient: Buffer.from('+'), toUpstream: Buffer.alloc(0) }, (end) => {
    ends.push(end.cause);
    client.destroy();
    upstream.destroy();
    if (ends.length === 4) allEnded();
  });
  if (typeof t === 'string') { console.error('tunnel not relayed: ' + t); process.exit(4); }
  await once(user, 'data'); // the relay's greeting: it carries this tunnel
  users.push(user);
}
if (process.env.MODE === 'exit') {
  for (const u of users) { u.pause(); u.write(Buffer.alloc(4 << 20, 97)); }
  setImmediate(() => process.exit(0));
} else {
  for (const u of users) { u.resume(); u.end(); }
  await over;
  console.log('ends ' + ends.join(','));
  echo.close();
  front.close();
}
`;

function runChild(mode: 'exit' | 'natural'): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT], { env: { ...process.env, MODE: mode }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe.runIf(nativeRelayExpected)('the process exits cleanly around the native relay', () => {
  it('process.exit() while tunnels are busy', async () => {
    const r = await runChild('exit');
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
  });

  it('a natural exit after every tunnel ended (the cleanup hook stops the thread)', async () => {
    const r = await runChild('natural');
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(r.stdout.trim()).toBe('ends done,done,done,done');
  });
});
