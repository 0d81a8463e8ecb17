import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import fc from 'fast-check';
import { once } from 'node:events';
import { startInProcess, waitUntilIdle, type InProcessGateway } from '../helpers/inprocess.js';
import { defaultHandler, startHttpServer, startTcpEcho, type TestServer } from '../helpers/servers.js';
import { statusOf } from '../helpers/raw.js';

/**
 * The request line and Host on a real gateway (issue 13, items 1 and 2). Two destinations on
 * loopback are allowed: a TCP echo (CONNECT) and an HTTP server that answers with the Host it
 * received (plain HTTP). A refused request must never reach either: their connection counters
 * are the "before any dial" check. Runs on every Node version CI runs (20, 22, 24): what Node's
 * own parser lets through differs by version, what the gateway lets through must not.
 */
let echo: TestServer;
let web: TestServer;
/** Requests the web destination received (its pooled connections are reused, so connections do not count them). */
let webRequests = 0;
let gw: InProcessGateway;
let ECHO: string;
let WEB: string;

beforeAll(async () => {
  echo = await startTcpEcho();
  web = await startHttpServer((req, res) => {
    webRequests++;
    defaultHandler(req, res);
  });
  gw = await startInProcess({
    proxy: { timeouts: { headersMs: 2_000 } },
    allow: {
      presets: [],
      rules: [
        { name: 'echo', hosts: ['echo.example.com'], ports: [echo.port], allowPrivate: true },
        { name: 'web', hosts: ['web.example.com'], ports: [web.port], allowPrivate: true },
      ],
    },
    dns: { overrides: { 'echo.example.com': '127.0.0.1', 'web.example.com': '127.0.0.1' } },
  });
  ECHO = `echo.example.com:${echo.port}`;
  WEB = `web.example.com:${web.port}`;
});

afterAll(async () => {
  await gw?.stop();
  await echo?.close();
  await web?.close();
});

interface Outcome {
  status: number;
  /** The first response head (status line and fields). */
  head: string;
  /** The gateway reset the connection (a close that can cut a response in flight), or closed it for reading while the client still sent. */
  reset: boolean;
  /** A tunnel carried a probe both ways. */
  tunnelled: boolean;
  /** The body of a non-tunnel answer. */
  body: string;
  closed: boolean;
}

const PROBE = 'ping-through-the-tunnel';

/**
 * Send `parts` as separate writes, each after the previous one was handed to the kernel and the
 * event loop had a turn (the gateway runs in this process, so it reads each part on its own as a
 * rule; the outcome must not depend on whether it does). Resolves on the answer: a 200 to a
 * CONNECT is checked by a probe through the tunnel, anything else is read until the gateway closes.
 */
function exchange(port: number, parts: Buffer[], timeoutMs = 5_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let status = 0;
    let headEnd = -1;
    let tunnel = false;
    let done = false;
    let reset = false;
    let head = '';
    const finish = (o: Omit<Outcome, 'head' | 'reset'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...o, head, reset });
    };
    const timer = setTimeout(() => finish({ status, tunnelled: false, body: buf.toString('latin1'), closed: false }), timeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') reset = true;
    });
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (headEnd < 0) {
        headEnd = buf.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        head = buf.subarray(0, headEnd).toString('latin1');
        status = statusOf(head);
        if (status === 200 && /^HTTP\/1\.1 200 Connection Established/.test(buf.toString('latin1'))) {
          tunnel = true;
          buf = buf.subarray(headEnd + 4);
          socket.write(PROBE);
        }
      }
      if (tunnel && buf.toString('latin1').includes(PROBE)) finish({ status, tunnelled: true, body: '', closed: false });
    });
    socket.on('close', () => finish({ status, tunnelled: false, body: headEnd >= 0 ? buf.subarray(headEnd + 4).toString('latin1') : '', closed: true }));
    socket.once('connect', () => {
      void (async () => {
        for (const p of parts) {
          if (socket.destroyed) return;
          await new Promise<void>((r) => socket.write(p, () => r()));
          await new Promise<void>((r) => setImmediate(r));
        }
      })();
    });
  });
}

const whole = (text: string): Buffer[] => [Buffer.from(text, 'latin1')];

function splitAt(text: string, i: number): Buffer[] {
  const b = Buffer.from(text, 'latin1');
  return [b.subarray(0, i), b.subarray(i)];
}

function byteByByte(text: string): Buffer[] {
  const b = Buffer.from(text, 'latin1');
  return [...b].map((_, i) => b.subarray(i, i + 1));
}

/** What reached a destination (tunnels to the echo, requests to the web server): a refused request must leave it where it was. */
function dials(): number {
  return echo.connections + webRequests;
}

/** Malformed first lines, each in a CONNECT and in a plain-HTTP shape. Built lazily: the ports are known after beforeAll. */
function malformedLines(): Array<[string, string, number]> {
  const get = `http://${WEB}/x`;
  return [
    ['no version', `CONNECT ${ECHO}\r\n\r\n`, 400],
    ['no version (GET)', `GET ${get}\r\n\r\n`, 400],
    ['two spaces before the target', `CONNECT  ${ECHO} HTTP/1.1\r\n\r\n`, 400],
    ['two spaces before the target (GET)', `GET  ${get} HTTP/1.1\r\nHost: a\r\n\r\n`, 400],
    ['two spaces before the version', `CONNECT ${ECHO}  HTTP/1.1\r\n\r\n`, 400],
    ['two spaces before the version (GET)', `GET ${get}  HTTP/1.1\r\nHost: a\r\n\r\n`, 400],
    ['a tab for a space', `CONNECT ${ECHO}\tHTTP/1.1\r\n\r\n`, 400],
    ['text after the version', `CONNECT ${ECHO} HTTP/1.1 x\r\n\r\n`, 400],
    ['a space after the version', `GET ${get} HTTP/1.1 \r\nHost: a\r\n\r\n`, 400],
    ['bare LF', `CONNECT ${ECHO} HTTP/1.1\n\n`, 400],
    ['a leading empty line', `\r\nCONNECT ${ECHO} HTTP/1.1\r\n\r\n`, 400],
    ['RTSP/1.0 as the version of a GET', `GET ${get} RTSP/1.0\r\nHost: a\r\n\r\n`, 400],
    ['a fragment', `GET ${get}#frag HTTP/1.1\r\nHost: a\r\n\r\n`, 400],
    ['a non-URI character', `GET ${get}|y HTTP/1.1\r\nHost: a\r\n\r\n`, 400],
    ['an obs-folded header on a CONNECT', `CONNECT ${ECHO} HTTP/1.1\r\nX: a\r\n b\r\n\r\n`, 400],
    ['space before a header colon on a CONNECT', `CONNECT ${ECHO} HTTP/1.1\r\nHost : a\r\n\r\n`, 400],
    ['HTTP/2.0', `CONNECT ${ECHO} HTTP/2.0\r\n\r\n`, 505],
    ['HTTP/0.9 spelled out', `GET ${get} HTTP/0.9\r\n\r\n`, 400],
  ];
}

describe('request line: method SP request-target SP HTTP-version CRLF, nothing else', () => {
  it('answers each malformed line 400 (505 for a version it does not speak), event 400, closes, and dials nothing', async () => {
    for (const [name, text, want] of malformedLines()) {
      const before = dials();
      const recs = gw.records.length;
      const o = await exchange(gw.port, whole(text));
      expect({ name, status: o.status, closed: o.closed }).toEqual({ name, status: want, closed: true });
      expect({ name, dials: dials() - before }).toEqual({ name, dials: 0 });
      const rec = gw.records.slice(recs).find((r) => r.status === want);
      expect({ name, event: rec?.event, verdict: rec?.verdict }).toEqual({ name, event: 400, verdict: 'deny' });
      expect(rec?.code).toMatch(want === 505 ? /^PCL_ERR_HTTP_VERSION$/ : /^PCL_ERR_(REQUEST_LINE|PARSE)$/);
    }
  });

  it('still serves the well-formed lines: CONNECT on HTTP/1.1 and 1.0, with headers, and plain HTTP', async () => {
    expect(await exchange(gw.port, whole(`CONNECT ${ECHO} HTTP/1.1\r\nHost: ${ECHO}\r\nUser-Agent: t\r\n\r\n`))).toMatchObject({ tunnelled: true });
    expect(await exchange(gw.port, whole(`CONNECT ${ECHO} HTTP/1.0\r\n\r\n`))).toMatchObject({ tunnelled: true });
    const o = await exchange(gw.port, whole(`GET http://${WEB}/a%20b?q=(1) HTTP/1.1\r\nHost: ${WEB}\r\nConnection: close\r\n\r\n`));
    expect(o.status).toBe(200);
    expect(JSON.parse(o.body)).toMatchObject({ url: '/a%20b?q=(1)' });
  });

  it('carries bytes sent in the same write as the CONNECT into the tunnel', async () => {
    const o = await exchange(gw.port, whole(`CONNECT ${ECHO} HTTP/1.1\r\n\r\n${PROBE}`));
    expect(o).toMatchObject({ status: 200, tunnelled: true });
  });
});

/**
 * Send each request once the previous answer is complete (heads with Content-Length bodies);
 * resolves with the statuses once the gateway closes the connection.
 */
function keepAlive(port: number, requests: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const statuses: number[] = [];
    let buf = Buffer.alloc(0);
    let next = 0;
    const send = (): void => {
      const r = requests[next++];
      if (r !== undefined) socket.write(r);
    };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close after ${JSON.stringify(statuses)}`));
    }, 5_000);
    socket.on('error', () => undefined);
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        statuses.push(statusOf(head));
        buf = buf.subarray(end + 4 + len);
        send();
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(statuses);
    });
    socket.once('connect', send);
  });
}

/** A plain-HTTP request the gateway serves: the first one on each connection below. */
const firstGet = (): string => `GET http://${WEB}/1 HTTP/1.1\r\nHost: ${WEB}\r\n\r\n`;

/**
 * What may follow a plain-HTTP request on its connection: each shape the front door refuses on a
 * first request, a CONNECT (valid and not), and a well-formed GET. llhttp alone would accept the
 * spaces, RTSP/ICE and HTTP/1.2 lines and tunnel the CONNECT; none of them may be processed.
 */
function laterRequests(): Array<[string, string]> {
  const t = `http://${WEB}/2`;
  const h = `Host: ${WEB}\r\n`;
  return [
    ['two spaces before the target', `GET  ${t} HTTP/1.1\r\n${h}\r\n`],
    ['two spaces before the version', `GET ${t}  HTTP/1.1\r\n${h}\r\n`],
    ['a tab before the target', `GET\t${t} HTTP/1.1\r\n${h}\r\n`],
    ['a tab before the version', `GET ${t}\tHTTP/1.1\r\n${h}\r\n`],
    ['text after the version', `GET ${t} HTTP/1.1 x\r\n${h}\r\n`],
    ['RTSP/1.0', `GET ${t} RTSP/1.0\r\n${h}\r\n`],
    ['ICE/1.0', `SOURCE ${t} ICE/1.0\r\n${h}\r\n`],
    ['HTTP/1.2', `GET ${t} HTTP/1.2\r\n${h}\r\n`],
    ['no version', `GET ${t}\r\n${h}\r\n`],
    ['a duplicate Host', `GET ${t} HTTP/1.1\r\n${h}Host: evil.example.org\r\n\r\n`],
    ['a CONNECT', `CONNECT ${ECHO} HTTP/1.1\r\nHost: ${ECHO}\r\n\r\n${PROBE}`],
    ['a CONNECT without a version', `CONNECT ${ECHO}\r\n\r\n`],
    ['a well-formed GET', `GET ${t} HTTP/1.1\r\n${h}\r\n`],
  ];
}

/**
 * What a client of a plain-HTTP connection sees whatever follows its first request: that
 * request's 200 saying `Connection: close`, no second response, a close (not a reset); the web
 * destination got the first request only, no tunnel was opened, and the only access record is
 * the first request's.
 */
async function expectOneExchange(name: string, parts: Buffer[]): Promise<void> {
  const before = dials();
  const recs = gw.records.length;
  const o = await exchange(gw.port, parts);
  expect({ name, status: o.status, closed: o.closed, reset: o.reset, tunnelled: o.tunnelled }).toEqual({
    name,
    status: 200,
    closed: true,
    reset: false,
    tunnelled: false,
  });
  expect({ name, connection: /\r\nconnection: close(\r\n|$)/i.test(o.head) }).toEqual({ name, connection: true });
  expect({ name, body: o.body }).toEqual({ name, body: expect.stringMatching(/^\{"ok":true,"method":"GET","url":"\/1",[^\n]*\}$/) as unknown });
  expect({ name, dials: dials() - before }).toEqual({ name, dials: 1 });
  const records = gw.records.slice(recs).map((r) => `${r.method} ${r.target} ${r.status}`);
  expect({ name, records }).toEqual({ name, records: [`GET ${WEB} 200`] });
}

describe('later requests on a plain-HTTP connection: there are none (one request per connection)', () => {
  it('answers the first request with Connection: close and closes; a second request sent after the answer gets none', async () => {
    for (const [name, second] of laterRequests()) {
      const before = dials();
      const statuses = await keepAlive(gw.port, [firstGet(), second, firstGet()]);
      expect({ name, statuses, dials: dials() - before }).toEqual({ name, statuses: [200], dials: 1 });
    }
  });

  it('does not process a second or third request pipelined behind the first (sent whole)', async () => {
    for (const [name, later] of laterRequests()) {
      await expectOneExchange(`second: ${name}`, whole(firstGet() + later));
      await expectOneExchange(`third: ${name}`, whole(firstGet() + firstGet().replace('/1 ', '/3 ') + later));
    }
  });

  it('does not process it whatever the split: the second request cut at every position', { timeout: 180_000 }, async () => {
    for (const [name, later] of laterRequests()) {
      const first = firstGet();
      for (let i = 0; i <= later.length; i++) await expectOneExchange(`${name} @${i}`, splitAt(first + later, first.length + i));
    }
  });

  it('does not process it sent one byte per write', { timeout: 120_000 }, async () => {
    for (const [name, later] of laterRequests()) await expectOneExchange(name, byteByByte(firstGet() + later));
  });

  it('lets go of a connection whose client never closes after the response, however long it keeps sending', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: gw.port, allowHalfOpen: true });
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.write(firstGet());
    // The gateway's FIN comes after the response; this client keeps its side open and keeps writing.
    await once(socket, 'end');
    const trickle = setInterval(() => socket.write('GET  '), 50);
    try {
      await waitUntilIdle(gw, 8_000);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  });

  it('closes without a reset after refusing a request whose body it did not read', async () => {
    const body = 'x'.repeat(4 * 1024 * 1024);
    const recs = gw.records.length;
    const o = await exchange(gw.port, whole(`POST http://forbidden.example.com/ HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
    expect({ status: o.status, closed: o.closed, reset: o.reset }).toEqual({ status: 403, closed: true, reset: false });
    expect(JSON.parse(o.body)).toMatchObject({ error: { code: 'PCL_ERR_TARGET_FORBIDDEN' } });
    expect(gw.records.slice(recs).map((r) => r.code)).toEqual(['PCL_ERR_TARGET_FORBIDDEN']);
  });
});

/** Requests whose outcome is checked at every split position and byte by byte. */
function splitCases(): Array<[string, string, Partial<Outcome>]> {
  return [
    ['valid CONNECT', `CONNECT ${ECHO} HTTP/1.1\r\nHost: ${ECHO}\r\n\r\n`, { status: 200, tunnelled: true }],
    ['CONNECT without a version', `CONNECT ${ECHO}\r\nHost: x\r\n\r\n`, { status: 400, closed: true }],
    ['CONNECT with two spaces', `CONNECT ${ECHO}  HTTP/1.1\r\n\r\n`, { status: 400, closed: true }],
    ['valid GET', `GET http://${WEB}/s HTTP/1.1\r\nHost: ${WEB}\r\nConnection: close\r\n\r\n`, { status: 200, closed: true }],
    ['GET with RTSP/1.0', `GET http://${WEB}/s RTSP/1.0\r\nHost: ${WEB}\r\n\r\n`, { status: 400, closed: true }],
  ];
}

describe('the same answer however the request is cut into reads', () => {
  it('split in two at every position', { timeout: 120_000 }, async () => {
    for (const [name, text, want] of splitCases()) {
      const ok = want.status === 200;
      for (let i = 1; i < text.length; i++) {
        const before = dials();
        const o = await exchange(gw.port, splitAt(text, i));
        expect({ name, i, ...pick(o, want) }).toEqual({ name, i, ...want });
        if (!ok) expect({ name, i, dials: dials() - before }).toEqual({ name, i, dials: 0 });
      }
    }
  });

  it('sent one byte per write', { timeout: 60_000 }, async () => {
    for (const [name, text, want] of splitCases()) {
      const before = dials();
      const o = await exchange(gw.port, byteByByte(text));
      expect({ name, ...pick(o, want) }).toEqual({ name, ...want });
      if (want.status !== 200) expect({ name, dials: dials() - before }).toEqual({ name, dials: 0 });
    }
  });

  it('generated heads cut at generated points answer as they do whole, and a refused one dials nothing', { timeout: 120_000 }, async () => {
    const part = fc.constantFrom(
      'CONNECT',
      'GET',
      ' ',
      '  ',
      '\t',
      ECHO,
      `http://${WEB}/`,
      'HTTP/1.1',
      'HTTP/1.0',
      'HTTP/2.0',
      'RTSP/1.0',
      '\r\n',
      '\n',
      'X: y',
      'Host: a',
    );
    await fc.assert(
      fc.asyncProperty(fc.array(part, { minLength: 1, maxLength: 9 }), fc.array(fc.nat(), { maxLength: 4 }), async (parts, cuts) => {
        const text = parts.join('') + '\r\nConnection: close\r\n\r\n';
        const b = Buffer.from(text, 'latin1');
        const points = [...new Set(cuts.map((c) => c % b.length))].filter((p) => p > 0).sort((x, y) => x - y);
        const pieces: Buffer[] = [];
        let at = 0;
        for (const p of [...points, b.length]) {
          pieces.push(b.subarray(at, p));
          at = p;
        }
        const before = dials();
        const w = await exchange(gw.port, [b], 3_000);
        const dialledWhole = dials() - before;
        const s = await exchange(gw.port, pieces, 3_000);
        expect({ text, status: s.status, tunnelled: s.tunnelled }).toEqual({ text, status: w.status, tunnelled: w.tunnelled });
        if (w.status >= 400 && w.status !== 502 && w.status !== 504) expect({ text, dialledWhole }).toEqual({ text, dialledWhole: 0 });
      }),
      { numRuns: 60 },
    );
  });
});

function pick(o: Outcome, like: Partial<Outcome>): Partial<Outcome> {
  const out: Partial<Outcome> = {};
  if ('status' in like) out.status = o.status;
  if ('tunnelled' in like) out.tunnelled = o.tunnelled;
  if ('closed' in like) out.closed = o.closed;
  return out;
}

describe('Host on plain-HTTP forwarding: the request-target names the destination', () => {
  async function hostSeen(target: string, headers: string): Promise<{ status: number; host?: string }> {
    const o = await exchange(gw.port, whole(`GET ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`));
    if (o.status !== 200) return { status: o.status };
    const body = JSON.parse(o.body) as { host?: string };
    return body.host === undefined ? { status: o.status } : { status: o.status, host: body.host };
  }

  it('sends the authority of the request-target, not a foreign Host (domain fronting)', async () => {
    expect(await hostSeen(`http://${WEB}/`, 'Host: evil.example.org\r\n')).toEqual({ status: 200, host: WEB });
  });

  it('normalises case and a trailing dot to the name the allowlist matched', async () => {
    expect(await hostSeen(`http://WEB.Example.COM:${web.port}/`, `Host: WEB.Example.COM:${web.port}\r\n`)).toEqual({ status: 200, host: WEB });
    expect(await hostSeen(`http://web.example.com.:${web.port}/`, 'Host: web.example.com.\r\n')).toEqual({ status: 200, host: WEB });
  });

  it('keeps the port of the request-target whatever the Host says, and supplies Host when there is none', async () => {
    expect(await hostSeen(`http://${WEB}/`, 'Host: web.example.com\r\n')).toEqual({ status: 200, host: WEB });
    expect(await hostSeen(`http://${WEB}/`, 'Host: web.example.com:1\r\n')).toEqual({ status: 200, host: WEB });
    expect(await hostSeen(`http://${WEB}/`, '')).toEqual({ status: 200, host: WEB });
  });

  it('refuses a duplicated Host with 400 before any dial, even when both name the destination', async () => {
    for (const hosts of [`Host: ${WEB}\r\nHost: evil.example.org\r\n`, `Host: ${WEB}\r\nhost: ${WEB}\r\n`]) {
      const before = webRequests;
      const recs = gw.records.length;
      const o = await exchange(gw.port, whole(`GET http://${WEB}/ HTTP/1.1\r\n${hosts}\r\n`));
      expect(o).toMatchObject({ status: 400, closed: true });
      expect(webRequests).toBe(before);
      expect(gw.records.slice(recs).find((r) => r.code === 'PCL_ERR_DUPLICATE_HOST')).toMatchObject({ event: 400, status: 400 });
    }
  });
});
