// Drives the native relay through every way a tunnel ends, in one small process, for
// LeakSanitizer (test/sanitize.sh runs it with the ASan build and detect_leaks=1; a leak check
// at the exit of a whole gateway takes LeakSanitizer a minute or more, this one seconds).
// Ends clean, by a reset while the relay holds pending bytes, by a destroy from JavaScript, by
// stopNativeRelay() with tunnels live, then a fresh relay thread, and a last tunnel left to the
// environment's cleanup at exit. Exits 0 when every tunnel ended as expected.
import net from 'node:net';
import { once } from 'node:events';

const relay = await import(new URL('../dist/relay/index.js', import.meta.url).href);
if (!relay.nativeRelayStatus().available) throw new Error(`native relay not available: ${relay.nativeRelayStatus().reason}`);

const echo = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {});
  s.pipe(s);
});
echo.listen(0, '127.0.0.1');
await once(echo, 'listening');
const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
front.listen(0, '127.0.0.1');
await once(front, 'listening');

/** A relayed tunnel: the test's user socket, and a promise of how the relay ended it. One at a time (one accept each). */
async function tunnel() {
  const accepted = once(front, 'connection');
  const user = net.connect({ port: front.address().port, host: '127.0.0.1', allowHalfOpen: true });
  user.on('error', () => {});
  const [client] = await accepted;
  client.on('error', () => {});
  const upstream = net.connect({ port: echo.address().port, host: '127.0.0.1', allowHalfOpen: true });
  upstream.on('error', () => {});
  await once(upstream, 'connect');
  let ended;
  const end = new Promise((resolve) => (ended = resolve));
  // toUpstream is copied into the relay's memory too: a leak there would show.
  const t = relay.relayTunnel(client, upstream, { idleMs: 0, toClient: Buffer.from('+'), toUpstream: Buffer.from('hi') }, (e) => {
    client.destroy();
    upstream.destroy();
    ended(e.cause);
  });
  if (typeof t === 'string') throw new Error(`tunnel not relayed: ${t}`);
  await once(user, 'data'); // '+', and maybe the echoed 'hi'
  return { user, client, end };
}

const expect = (what, got, want) => {
  if (got !== want) throw new Error(`${what}: ${got}, expected ${want}`);
};

// Clean ends, several live at once.
const clean = [];
for (let i = 0; i < 4; i++) clean.push(await tunnel());
for (const t of clean) {
  t.user.resume();
  t.user.end();
}
for (const t of clean) expect('clean end', await t.end, 'done');

// A reset while the relay holds bytes the user did not take: its pending buffer must be freed.
const stalled = await tunnel();
stalled.user.pause();
const chunk = Buffer.alloc(1 << 20, 0x61);
for (let i = 0; i < 128 && relay.nativeRelayStats().pendingBytes === 0; i++) {
  stalled.user.write(chunk);
  await new Promise((r) => setTimeout(r, 5));
}
expect('bytes pending before the reset', relay.nativeRelayStats().pendingBytes > 0, true);
stalled.user.resetAndDestroy();
expect('reset with pending bytes', await stalled.end, 'client_error');
expect('pending bytes after the reset', relay.nativeRelayStats().pendingBytes, 0);

// JavaScript destroys a socket the relay owns.
const destroyed = await tunnel();
destroyed.client.destroy();
expect('destroyed from JavaScript', await destroyed.end, 'closed');

// The relay thread stops with tunnels live, and a new one starts for the next tunnel.
const live = [await tunnel(), await tunnel()];
await relay.stopNativeRelay();
for (const t of live) expect('stopped relay', await t.end, 'closed');
const after = await tunnel();
after.user.resume();
after.user.end();
expect('tunnel on the new relay thread', await after.end, 'done');

// One tunnel still live at exit: the addon's cleanup hook ends it and frees everything.
await tunnel();
console.log('sanitize-leaks: every tunnel ended as expected');
process.exit(0);
