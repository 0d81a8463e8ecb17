/**
 * A raw RELP client for the RELP listener's tests: what a sender can get wrong, and the promise
 * itself (which frames are acknowledged, and when).
 */
import { connect, type Socket } from 'node:net';

/** The open command's offers of a sender that speaks syslog. */
export const OFFERS = 'relp_version=0\nrelp_software=test\ncommands=syslog';

/** Collects what the server sends. */
export class RawClient {
  received = '';
  closed: Promise<void>;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => (this.received += d.toString('latin1')));
    socket.on('error', () => undefined);
    this.closed = new Promise((r) => socket.once('close', () => r()));
  }
  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }
  /** One frame, written on its own. */
  frame(txnr: number, command: string, data = ''): void {
    this.socket.write(encodeFrame(txnr, command, data));
  }
  /** The txnrs answered 200 OK so far. */
  acked(): Set<number> {
    return new Set([...this.received.matchAll(/^(\d+) rsp 6 200 OK$/gm)].map((m) => Number(m[1])));
  }
}

/** A RELP frame as librelp writes it. */
export function encodeFrame(txnr: number, command: string, data: string | Buffer = ''): Buffer {
  const d = Buffer.from(data);
  return Buffer.concat([Buffer.from(d.length ? `${txnr} ${command} ${d.length} ` : `${txnr} ${command} 0`), d, Buffer.from('\n')]);
}
