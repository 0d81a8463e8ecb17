// Client-side helpers used inside generator processes.
import net from 'node:net';

const HDR_END = Buffer.from('\r\n\r\n');

/**
 * Open a tunnel to 127.0.0.1:destPort.
 * proxy = {host, port} -> CONNECT through the proxy; proxy = null -> direct TCP.
 * Resolves with a connected socket (TCP_NODELAY on) whose CONNECT response has
 * been consumed; any bytes after the response head are unshifted back.
 */
export function openTunnel(proxy, destPort, { timeoutMs = 10000, destHost = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const target = proxy ?? { host: destHost, port: destPort };
    const s = net.connect({ host: target.host, port: target.port, noDelay: true });
    s.setNoDelay(true);
    let done = false;
    const timer = setTimeout(() => fail(new Error('tunnel timeout')), timeoutMs);
    function fail(err) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      reject(err);
    }
    function ok() {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.removeListener('error', fail);
      s.removeListener('close', onClose);
      resolve(s);
    }
    function onClose() {
      fail(new Error('closed during CONNECT'));
    }
    s.once('error', fail);
    s.once('close', onClose);
    if (!proxy) {
      s.once('connect', ok);
      return;
    }
    s.once('connect', () => {
      s.write(`CONNECT ${destHost}:${destPort} HTTP/1.1\r\nHost: ${destHost}:${destPort}\r\n\r\n`);
    });
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const i = buf.indexOf(HDR_END);
      if (i < 0) {
        if (buf.length > 16384) fail(new Error('CONNECT response head too large'));
        return;
      }
      s.removeListener('data', onData);
      s.pause();
      const head = buf.subarray(0, i).toString('latin1');
      if (!/^HTTP\/1\.[01] 200/.test(head)) {
        fail(new Error(`CONNECT refused: ${head.split('\r\n')[0]}`));
        return;
      }
      const rest = buf.subarray(i + 4);
      if (rest.length) s.unshift(rest);
      ok();
    };
    s.on('data', onData);
  });
}

/** Read exactly n bytes (resolves when n bytes have arrived; extra bytes are an error here). */
export function makeReader(socket) {
  // Low-overhead "wait for n bytes" on a flowing socket.
  let want = 0;
  let got = 0;
  let resolveFn = null;
  let rejectFn = null;
  socket.on('data', (d) => {
    got += d.length;
    if (resolveFn && got >= want) {
      const r = resolveFn;
      resolveFn = rejectFn = null;
      got -= want;
      r();
    }
  });
  const onEnd = (err) => {
    if (rejectFn) {
      const r = rejectFn;
      resolveFn = rejectFn = null;
      r(err ?? new Error('closed'));
    }
  };
  socket.on('error', onEnd);
  socket.on('close', () => onEnd(new Error('closed')));
  socket.resume();
  return function readN(n) {
    want = n;
    if (got >= want) {
      got -= want;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      resolveFn = resolve;
      rejectFn = reject;
    });
  };
}

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
