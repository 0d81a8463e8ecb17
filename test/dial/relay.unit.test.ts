/**
 * The relay dialer in process, against scripted relays on 127.0.0.1: how it reads a relay's
 * answer to CONNECT (strictly, bounded, bytes after the head kept for the tunnel), what it sends
 * (Proxy-Authorization only with credentials), failover and back-off, and the bypass list.
 */
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  basicAuth,
  BypassList,
  connectThroughRelay,
  MAX_RELAY_HEAD_BYTES,
  RelayDialer,
  RelayFailure,
  RelayHealth,
  type RelayEndpoint,
  type RelayEvent,
} from '../../src/dial/index.js';
import { parseConnectAuthority } from '../../src/policy/index.js';
import { PortcullisError } from '../../src/util/errors.js';
import { freePort } from '../helpers/servers.js';

interface ScriptedRelay {
  endpoint: RelayEndpoint;
  /** The request heads it received. */
  heads: string[];
  close(): Promise<void>;
}

const open: ScriptedRelay[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close()));
});

/** A relay that reads a CONNECT head and then runs `answer` on the socket. */
async function scriptedRelay(answer: (socket: Socket) => void, auth: string | null = null): Promise<ScriptedRelay> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    let buf = '';
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.removeListener('data', onData);
      heads.push(buf.slice(0, end));
      answer(socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const { port } = server.address() as net.AddressInfo;
  const relay: ScriptedRelay = {
    endpoint: { label: `127.0.0.1:${port}`, host: '127.0.0.1', port, auth },
    heads,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  open.push(relay);
  return relay;
}

/** Answers 200, then echoes. */
const tunnelling = (extra = ''): ((s: Socket) => void) => {
  return (s) => {
    s.write(`HTTP/1.1 200 Connection established\r\n\r\n${extra}`);
    s.pipe(s);
  };
};

async function failure(p: Promise<unknown>): Promise<RelayFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RelayFailure) return err;
    throw err;
  }
  throw new Error('expected a RelayFailure');
}

function readSome(socket: Socket, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (buf.length >= n) resolve(buf);
    });
    socket.once('error', reject);
    socket.resume();
  });
}

describe('CONNECT through one relay', () => {
  it('sends CONNECT with Host, and Proxy-Authorization: Basic only when the relay has credentials', async () => {
    const auth = basicAuth('agent', 'pässword');
    const withAuth = await scriptedRelay(tunnelling(), auth);
    const without = await scriptedRelay(tunnelling());
    (await connectThroughRelay(withAuth.endpoint, 'ws.ods.opinsights.azure.com', 443, 2000)).destroy();
    (await connectThroughRelay(without.endpoint, 'fd00::1', 443, 2000)).destroy();
    expect(withAuth.heads[0]).toBe(
      `CONNECT ws.ods.opinsights.azure.com:443 HTTP/1.1\r\nHost: ws.ods.opinsights.azure.com:443\r\nProxy-Authorization: Basic ${Buffer.from('agent:pässword').toString('base64')}`,
    );
    expect(without.heads[0]).toBe('CONNECT [fd00::1]:443 HTTP/1.1\r\nHost: [fd00::1]:443');
  });

  it('keeps bytes the relay sent after its head: they reach the tunnel first, in order', async () => {
    const relay = await scriptedRelay(tunnelling('banner-from-destination;'));
    const socket = await connectThroughRelay(relay.endpoint, 'smtp.example.com', 25, 2000);
    const got = readSome(socket, 'banner-from-destination;echo'.length);
    socket.write('echo');
    expect(await got).toBe('banner-from-destination;echo');
    socket.destroy();
  });

  it('reads a head split at every byte', async () => {
    const head = 'HTTP/1.0 200 OK\r\nVia: 1.1 squid\r\n\r\n';
    const relay = await scriptedRelay((s) => {
      let i = 0;
      const next = (): void => {
        if (i < head.length) s.write(head[i++] ?? '', next);
        else s.pipe(s);
      };
      next();
    });
    const socket = await connectThroughRelay(relay.endpoint, 'a.example.com', 443, 5000);
    const got = readSome(socket, 2);
    socket.write('ok');
    expect(await got).toBe('ok');
    socket.destroy();
  });

  it('407 is an auth failure; other statuses, a non-HTTP answer, an oversized head and a hang-up are failures with their reason', async () => {
    const cases: Array<[(s: Socket) => void, RelayFailure['reason'], RegExp]> = [
      [(s) => s.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\n\r\n'), 'auth', /refused the credentials \(407\)/],
      [(s) => s.end('HTTP/1.1 503 Service Unavailable\r\n\r\n'), 'status', /answered 503 to CONNECT a\.example\.com:443/],
      [(s) => s.end('SSH-2.0-OpenSSH\r\n\r\n'), 'bad_response', /not an HTTP\/1\.x answer/],
      [(s) => s.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_RELAY_HEAD_BYTES)}`), 'bad_response', /answer head over 16384 bytes/],
      [(s) => s.end(), 'closed', /closed the connection before answering/],
    ];
    for (const [answer, reason, message] of cases) {
      const relay = await scriptedRelay(answer);
      const f = await failure(connectThroughRelay(relay.endpoint, 'a.example.com', 443, 5000));
      expect(f.reason).toBe(reason);
      expect(f.message).toMatch(message);
      expect(f.message).toContain(relay.endpoint.label);
    }
  });

  it('a relay that takes the connection but never answers is an answer timeout; a closed port is a refusal', async () => {
    const silent = await scriptedRelay(() => {});
    expect((await failure(connectThroughRelay(silent.endpoint, 'a.example.com', 443, 200))).reason).toBe('answer_timeout');
    const port = await freePort();
    const closed: RelayEndpoint = { label: `127.0.0.1:${port}`, host: '127.0.0.1', port, auth: null };
    expect((await failure(connectThroughRelay(closed, 'a.example.com', 443, 2000))).reason).toBe('connect_refused');
  });
});

describe('RelayDialer: failover, back-off, health', () => {
  const target = { host: 'a.example.com', port: 443, addresses: [] };

  function dialer(relays: RelayEndpoint[], events: RelayEvent[], health = new RelayHealth()): RelayDialer {
    health.listener = (e) => events.push(e);
    return new RelayDialer({ relays, connectMs: 2000, backoffMs: 60_000, headersMs: 2000, bodyMs: 2000, health });
  }

  it('skips a failing relay for the back-off, uses the next, and says which relay carried the tunnel', async () => {
    const port = await freePort();
    const dead: RelayEndpoint = { label: `127.0.0.1:${port}`, host: '127.0.0.1', port, auth: null };
    const good = await scriptedRelay(tunnelling());
    const events: RelayEvent[] = [];
    const d = dialer([dead, good.endpoint], events);
    const s1 = await d.connect(target);
    expect(d.via(s1)).toBe(good.endpoint.label);
    const s2 = await d.connect(target);
    s1.destroy();
    s2.destroy();
    // Down once; not tried again while backing off.
    expect(events.filter((e) => e.type === 'failure')).toEqual([{ type: 'failure', relay: dead.label, reason: 'connect_refused' }]);
    expect(events.filter((e) => e.type === 'down')).toMatchObject([{ relay: dead.label, reason: 'connect_refused', backoffMs: 60_000 }]);
    expect(events.filter((e) => e.type === 'carried')).toHaveLength(2);
    expect(d.states()).toEqual([
      { relay: dead.label, up: false },
      { relay: good.endpoint.label, up: true },
    ]);
    await d.destroy();
  });

  it('every relay down: PCL_ERR_RELAY_UNAVAILABLE naming each, then refused at once while they back off', async () => {
    const a = await scriptedRelay((s) => s.end('SSH-2.0-not-a-proxy\r\n\r\n'));
    const b = await scriptedRelay((s) => s.end());
    const events: RelayEvent[] = [];
    const d = dialer([a.endpoint, b.endpoint], events);
    const err = await d.connect(target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisError);
    expect(err).toMatchObject({ code: 'PCL_ERR_RELAY_UNAVAILABLE' });
    expect((err as Error).message).toMatch(new RegExp(`${a.endpoint.label}: not an HTTP.*${b.endpoint.label} closed the connection`));
    const again = await d.connect(target).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'PCL_ERR_RELAY_UNAVAILABLE', message: 'every relay proxy is down (backing off)' });
    expect(a.heads).toHaveLength(1);
    await d.destroy();
  });

  it('relays that answer CONNECT with an error status stay up (the destination is the problem): PCL_ERR_RELAY_REFUSED, tried again next time', async () => {
    const a = await scriptedRelay((s) => s.end('HTTP/1.1 503 Service Unavailable\r\n\r\n'));
    const b = await scriptedRelay((s) => s.end('HTTP/1.1 403 Forbidden\r\n\r\n'));
    const events: RelayEvent[] = [];
    const d = dialer([a.endpoint, b.endpoint], events);
    for (let i = 0; i < 2; i++) {
      const err = await d.connect(target).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'PCL_ERR_RELAY_REFUSED' });
      expect((err as Error).message).toMatch(new RegExp(`${a.endpoint.label} answered 503.*${b.endpoint.label} answered 403`));
    }
    expect(a.heads).toHaveLength(2);
    expect(events.filter((e) => e.type === 'down')).toEqual([]);
    expect(d.states().every((r) => r.up)).toBe(true);
    await d.destroy();
  });

  it('407: PCL_ERR_RELAY_AUTH at once, the next relay not tried, the relay still up', async () => {
    const auth = await scriptedRelay((s) => s.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n'), basicAuth('u', 'wrong'));
    const spare = await scriptedRelay(tunnelling());
    const authEvents: RelayEvent[] = [];
    const d2 = dialer([auth.endpoint, spare.endpoint], authEvents);
    const authErr = await d2.connect(target).catch((e: unknown) => e);
    expect(authErr).toMatchObject({ code: 'PCL_ERR_RELAY_AUTH' });
    expect((authErr as Error).message).not.toContain('wrong');
    expect(spare.heads).toHaveLength(0);
    expect(d2.states()[0]).toEqual({ relay: auth.endpoint.label, up: true });
    expect(authEvents).toEqual([{ type: 'failure', relay: auth.endpoint.label, reason: 'auth' }]);
    await d2.destroy();
  });

  it('health survives a new dialer (a reload) and a relay that carries again is reported up', async () => {
    const port = await freePort();
    const flaky: RelayEndpoint = { label: `127.0.0.1:${port}`, host: '127.0.0.1', port, auth: null };
    const events: RelayEvent[] = [];
    const health = new RelayHealth();
    health.listener = (e) => events.push(e);
    const short = new RelayDialer({ relays: [flaky], connectMs: 2000, backoffMs: 1000, headersMs: 2000, bodyMs: 2000, health });
    await short.connect(target).catch(() => undefined);
    await short.destroy();
    // The "reload": same relay, new dialer, same health: still down.
    const reloaded = new RelayDialer({ relays: [flaky], connectMs: 2000, backoffMs: 1000, headersMs: 2000, bodyMs: 2000, health });
    expect(reloaded.states()).toEqual([{ relay: flaky.label, up: false }]);
    health.succeeded(flaky.label, 'tunnel');
    expect(events.map((e) => e.type)).toEqual(['failure', 'down', 'up', 'carried']);
    expect(reloaded.states()).toEqual([{ relay: flaky.label, up: true }]);
    await reloaded.destroy();
  });
});

describe('RelayDialer: plain HTTP', () => {
  /** An HTTP relay: records what it was asked, answers `status`. */
  async function httpRelay(
    status: number,
  ): Promise<{ endpoint: RelayEndpoint; seen: Array<{ url: string; auth: string | undefined }>; close(): Promise<void> }> {
    const seen: Array<{ url: string; auth: string | undefined }> = [];
    const server = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', auth: req.headers['proxy-authorization'] });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(`relayed ${req.url ?? ''}`);
    });
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const { port } = server.address() as net.AddressInfo;
    const auth = basicAuth('u', 'p');
    return {
      endpoint: { label: `127.0.0.1:${port}`, host: '127.0.0.1', port, auth },
      seen,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it('sends absolute-form requests with Proxy-Authorization to the first relay it can reach; a 407 is PCL_ERR_RELAY_AUTH', async () => {
    const port = await freePort();
    const dead: RelayEndpoint = { label: `127.0.0.1:${port}`, host: '127.0.0.1', port, auth: null };
    const good = await httpRelay(200);
    const events: RelayEvent[] = [];
    const health = new RelayHealth();
    health.listener = (e) => events.push(e);
    const d = new RelayDialer({ relays: [dead, good.endpoint], connectMs: 2000, backoffMs: 60_000, headersMs: 2000, bodyMs: 2000, health });
    const target = { host: 'crl.example.com', port: 80, addresses: [] };
    const res = await d.dispatcher.request({ origin: d.origin(target), path: '/pki/root.crl?x=1', method: 'GET', headers: { host: 'crl.example.com' } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('relayed http://crl.example.com:80/pki/root.crl?x=1');
    expect(good.seen).toEqual([{ url: 'http://crl.example.com:80/pki/root.crl?x=1', auth: basicAuth('u', 'p') }]);
    expect(events.filter((e) => e.type !== 'carried')).toMatchObject([
      { type: 'failure', relay: dead.label, reason: 'connect_refused' },
      { type: 'down', relay: dead.label },
    ]);
    expect(events.filter((e) => e.type === 'carried')).toEqual([{ type: 'carried', relay: good.endpoint.label, kind: 'http' }]);
    await d.destroy();
    await good.close();

    const refusing = await httpRelay(407);
    const d2 = new RelayDialer({ relays: [refusing.endpoint], connectMs: 2000, backoffMs: 60_000, headersMs: 2000, bodyMs: 2000, health: new RelayHealth() });
    const err = await d2.dispatcher.request({ origin: d2.origin(target), path: '/', method: 'GET' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PCL_ERR_RELAY_AUTH' });
    await d2.destroy();
    await refusing.close();
  });
});

describe('bypass list', () => {
  it('matches exact names, names below a wildcard (not the suffix itself), and IP literals in an IP or CIDR', () => {
    const b = new BypassList(['intranet.corp.example', '*.corp.example', '10.0.0.0/8', 'fd00::/8', '{region}.x.example']);
    const m = (a: string): boolean => b.matches(parseConnectAuthority(a));
    expect(m('intranet.corp.example:443')).toBe(true);
    expect(m('INTRANET.corp.example.:443')).toBe(true);
    expect(m('a.b.corp.example:443')).toBe(true);
    expect(m('corp.example:443')).toBe(false);
    expect(m('evilcorp.example:443')).toBe(false);
    expect(m('10.1.2.3:443')).toBe(true);
    expect(m('[fd00::5]:443')).toBe(true);
    expect(m('11.0.0.1:443')).toBe(false);
    expect(m('westeurope.x.example:443')).toBe(false);
    expect(new BypassList([]).empty).toBe(true);
  });
});
