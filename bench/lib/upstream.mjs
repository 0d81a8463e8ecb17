// Upstream ("origin") servers, run in their own child process so that their
// CPU is not mixed with the load generator's or the proxy's.
//
//   echo  : TCP echo (socket.pipe(socket))
//   sink  : TCP discard; counts bytes received (bulk case reads the counter)
//   fleet : framed request/answer: client sends [u32 BE len][len bytes];
//           once all len bytes arrived the server answers [u32 BE n][n bytes]
//           with n = FLEET_ANSWER_BYTES (1 KiB)
//   http  : keep-alive HTTP/1.1 server, 200 with a 64-byte body
//
// Talks to the parent over IPC: sends {type:'ready', ports}, answers
// {type:'rpc', id, cmd} with {type:'rpc', id, value}.

import net from 'node:net';
import http from 'node:http';

export const FLEET_ANSWER_BYTES = 1024;

let sinkBytes = 0;
const conns = { echo: 0, sink: 0, fleet: 0 };

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve(server.address().port));
  });
}

const echo = net.createServer({ noDelay: true }, (s) => {
  conns.echo++;
  s.setNoDelay(true);
  s.on('error', () => {});
  s.once('close', () => conns.echo--);
  s.pipe(s);
});

const sink = net.createServer({ noDelay: true }, (s) => {
  conns.sink++;
  s.on('error', () => {});
  s.once('close', () => conns.sink--);
  s.on('data', (d) => {
    sinkBytes += d.length;
  });
});

const answer = Buffer.alloc(4 + FLEET_ANSWER_BYTES, 0x61);
answer.writeUInt32BE(FLEET_ANSWER_BYTES, 0);
const fleet = net.createServer({ noDelay: true }, (s) => {
  conns.fleet++;
  s.setNoDelay(true);
  s.on('error', () => {});
  s.once('close', () => conns.fleet--);
  let hdr = Buffer.alloc(0); // partial length prefix
  let remaining = -1; // payload bytes still expected; -1 = reading header
  s.on('data', (d) => {
    let off = 0;
    while (off < d.length) {
      if (remaining < 0) {
        const need = 4 - hdr.length;
        hdr = Buffer.concat([hdr, d.subarray(off, off + need)]);
        off += Math.min(need, d.length - off);
        if (hdr.length === 4) {
          remaining = hdr.readUInt32BE(0);
          hdr = Buffer.alloc(0);
        }
      }
      if (remaining >= 0) {
        const take = Math.min(remaining, d.length - off);
        remaining -= take;
        off += take;
        if (remaining === 0) {
          s.write(answer);
          remaining = -1;
        }
      }
    }
  });
});

const body = Buffer.alloc(64, 0x62);
const httpServer = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
});
httpServer.keepAliveTimeout = 120_000;
httpServer.headersTimeout = 130_000;
httpServer.maxRequestsPerSocket = 0;
httpServer.on('connection', (s) => s.setNoDelay(true));

const ports = {
  echo: await listen(echo),
  sink: await listen(sink),
  fleet: await listen(fleet),
  http: await listen(httpServer),
};

process.on('message', (m) => {
  if (m?.type !== 'rpc') return;
  let value = null;
  if (m.cmd === 'sinkBytes') value = sinkBytes;
  else if (m.cmd === 'conns') value = { ...conns };
  else if (m.cmd === 'cpu') {
    const u = process.cpuUsage();
    value = (u.user + u.system) / 1e6;
  }
  process.send({ type: 'rpc', id: m.id, value });
});
process.on('disconnect', () => process.exit(0)); // parent gone: never linger
process.send({ type: 'ready', ports, pid: process.pid });
