/**
 * TLS inspection: look at the cleartext start of the TLS handshake inside an established tunnel,
 * without decrypting anything, before the tunnel's sockets go to the relay.
 *
 * 1. The ClientHello (held, not forwarded, until judged): its SNI against the CONNECT host, the
 *    versions it offers against the rule's minimum; bytes that are not TLS on a rule that requires it.
 * 2. Only when needed (a rule maxVersion, or clients.certificates listed and a client that may
 *    speak TLS 1.2): the handshake goes on through here, both directions forwarded as they are
 *    parsed, until the server has chosen its version and, in TLS 1.2 with a CertificateRequest,
 *    the client's Certificate message (which travels in clear) has been read and checked. The
 *    Certificate is held until it passes; a refused one never reaches the server.
 *
 * Bounded: at most MAX_HELLO_BYTES of the client before the ClientHello is decided, MAX_FLIGHT_BYTES
 * per direction for step 2, and the rule's peekTimeoutMs overall. Whatever was read and not yet
 * forwarded is handed back for the relay to write first: the bytes pass unchanged.
 */
import type { Socket } from 'node:net';
import { Errors, withDetail, type Refusal } from '../errors/catalogue.js';
import type { TlsChecks } from '../policy/index.js';
import {
  CONTENT_ALERT,
  CONTENT_CHANGE_CIPHER_SPEC,
  HS_CERTIFICATE,
  HS_CERTIFICATE_REQUEST,
  HS_CLIENT_HELLO,
  HS_SERVER_HELLO,
  HS_SERVER_HELLO_DONE,
  HandshakeStream,
  certificateIdentity,
  parseCertificateList,
  parseClientHello,
  parseServerHello,
  versionLabel,
  type CertificateAllowlist,
  type TlsEvent,
  type VersionLabel,
} from '../tls/index.js';

/** A ClientHello is a few hundred bytes (about 2 KiB with post-quantum key shares). */
export const MAX_HELLO_BYTES = 16 * 1024;
/** The server's first flight (certificate chain included) and the client's certificate chain. */
export const MAX_FLIGHT_BYTES = 128 * 1024;
const TLS13 = 0x0304;
const TLS12 = 0x0303;

/** What inspection found: the access record's `tls` field; `result` is a metrics label. */
export interface TlsSeen {
  /**
   * passed: TLS, every check passed; not_tls: not TLS, allowed (the rule does not require it);
   * silent: nothing to judge in time (no client bytes, or the server spoke first), allowed;
   * refused: the tunnel was closed; reported: would be refused, report mode let it through.
   */
  result: 'passed' | 'not_tls' | 'silent' | 'refused' | 'reported';
  /** The highest version the ClientHello offers. */
  offered?: VersionLabel;
  /** The version the server chose (read only when step 2 ran). */
  chosen?: VersionLabel;
  sni?: string;
  /** TLS 1.2 client certificate seen: subject (Node's form, pairs joined by ', ') and SHA-256 thumbprint. */
  clientCert?: { subject: string; thumbprint: string };
}

export interface PeekInput {
  readonly client: Socket;
  readonly upstream: Socket;
  /** The CONNECT host, normalised (lower case, no root dot). */
  readonly host: string;
  readonly checks: TlsChecks;
  readonly certificates: CertificateAllowlist;
  /** The 200 answer: written here once the client's first bytes are needed, else handed back. */
  readonly established: Buffer;
  /** Bytes that came with the CONNECT. */
  readonly head: Buffer;
}

export type PeekOutcome =
  | {
      readonly kind: 'decided';
      /** null: pass the tunnel on. */
      readonly refusal: Refusal | null;
      readonly seen: TlsSeen;
      /** To write to the client first (the 200 when it was not sent, then server bytes read and not forwarded). */
      readonly toClient: Buffer;
      /** Client bytes read and not forwarded. */
      readonly toUpstream: Buffer;
    }
  /** A socket ended, failed or closed during the peek: the tunnel's own handlers close it. */
  | { readonly kind: 'aborted' };

type Phase = 'hello' | 'server' | 'client-cert';

/** Run the peek; resolves once decided (the sockets are paused then, with no listener of ours left). */
export function peekTls(input: PeekInput): Promise<PeekOutcome> {
  return new Promise((resolve) => new Peek(input, resolve).begin());
}

class Peek {
  private phase: Phase = 'hello';
  private readonly fromClient = new HandshakeStream(MAX_FLIGHT_BYTES);
  /** Made only when step 2 runs (most tunnels never need it). */
  private fromServer: HandshakeStream | null = null;
  /** Client bytes read and not yet written upstream. */
  private clientHeld: Buffer[] = [];
  /** Server bytes read and not yet written to the client (before step 2 they are held, after it forwarded). */
  private serverHeld: Buffer[] = [];
  private sent200 = false;
  private certRequested = false;
  private timer: NodeJS.Timeout | null = null;
  private done = false;
  private readonly seen: TlsSeen = { result: 'passed' };

  constructor(
    private readonly input: PeekInput,
    private readonly resolve: (o: PeekOutcome) => void,
  ) {}

  begin(): void {
    const { head, client, upstream } = this.input;
    if (head.length > 0) {
      this.clientHeld.push(head);
      this.fromClient.push(head);
      // Bytes that came with the CONNECT may decide it before the 200 goes out.
      this.onClientBytes();
      if (this.done) return;
    }
    client.write(this.input.established);
    this.sent200 = true;
    client.on('data', this.onClientData);
    upstream.on('data', this.onServerData);
    for (const s of [client, upstream]) {
      s.on('end', this.onAbort);
      s.on('close', this.onAbort);
      s.on('error', this.onAbort);
    }
    client.resume();
    upstream.resume();
    this.timer = setTimeout(this.onTimeout, this.input.checks.peekTimeoutMs);
  }

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.done) return;
    this.clientHeld.push(chunk);
    this.fromClient.push(chunk);
    if (this.phase === 'server') {
      // Held until the server's flight is read (TLS 1.2 clients send nothing then); bounded all the same.
      if (this.fromClient.pushed > MAX_FLIGHT_BYTES) this.refuse(withDetail(Errors.TLS_TOO_LARGE, 'client: too much before the server answered'));
      return;
    }
    this.onClientBytes();
  };

  private readonly onServerData = (chunk: Buffer): void => {
    if (this.done) return;
    if (this.phase === 'hello') {
      // The server spoke before the client said anything TLS-like: not a TLS tunnel.
      this.serverHeld.push(chunk);
      if (this.fromClient.pushed === 0) return this.notTls(true);
      return this.notTls(false);
    }
    this.input.client.write(chunk);
    this.fromServer ??= new HandshakeStream(MAX_FLIGHT_BYTES);
    this.fromServer.push(chunk);
    this.onServerBytes(this.fromServer);
  };

  private readonly onAbort = (): void => {
    if (this.done) return;
    this.finish();
    this.resolve({ kind: 'aborted' });
  };

  private readonly onTimeout = (): void => {
    if (this.done) return;
    // Nothing at all from the client on a rule that does not require TLS: relay it unchecked (a client
    // that waits for the server, or an idle tunnel). Anything else had started and is not finished.
    if (this.phase === 'hello' && this.fromClient.pushed === 0 && !this.input.checks.require) return this.pass('silent');
    this.refuse(Errors.TLS_TIMEOUT);
  };

  private onClientBytes(): void {
    if (this.phase === 'hello') return this.judgeHello(this.fromClient.next());
    if (this.phase === 'client-cert') return this.judgeClientCert();
  }

  private judgeHello(ev: TlsEvent): void {
    if (ev.kind === 'more') {
      if (this.fromClient.pushed >= MAX_HELLO_BYTES) this.refuse(withDetail(Errors.TLS_TOO_LARGE, `no ClientHello within ${MAX_HELLO_BYTES} bytes`));
      return;
    }
    if (ev.kind === 'error') {
      if (ev.error === 'not_tls') return this.notTls(false);
      return this.refuse(withDetail(ev.error === 'too_large' ? Errors.TLS_TOO_LARGE : Errors.TLS_MALFORMED, ev.detail));
    }
    if (ev.kind !== 'message' || ev.type !== HS_CLIENT_HELLO)
      return this.refuse(withDetail(Errors.TLS_MALFORMED, 'the first handshake message is not a ClientHello'));
    const hello = parseClientHello(ev.body);
    const highest = hello?.versions[0];
    if (!hello || highest === undefined) return this.refuse(withDetail(Errors.TLS_MALFORMED, 'the ClientHello does not parse'));
    const { checks, host, certificates } = this.input;
    this.seen.offered = versionLabel(highest);
    if (hello.sni !== null) this.seen.sni = hello.sni;
    if (checks.sniMustMatch && hello.sni !== null && hello.sni !== host) return this.refuse(withDetail(Errors.TLS_SNI_MISMATCH, `SNI ${hello.sni}`));
    if (highest < checks.minVersion) return this.refuse(withDetail(Errors.TLS_VERSION, `highest offered ${this.seen.offered}`));
    // The server's choice matters only for a maximum, or for a certificate check a TLS 1.2 handshake allows.
    const certCheck = !certificates.empty && hello.versions.some((v) => v <= TLS12);
    if (checks.maxVersion === null && !certCheck) return this.pass('passed');
    this.phase = 'server';
    this.forwardClientHeld();
  }

  private onServerBytes(fromServer: HandshakeStream): void {
    for (;;) {
      const ev = fromServer.next();
      if (ev.kind === 'more') return;
      if (ev.kind === 'error') return this.refuse(withDetail(ev.error === 'too_large' ? Errors.TLS_TOO_LARGE : Errors.TLS_MALFORMED, `server: ${ev.detail}`));
      if (ev.kind === 'record') {
        // An alert ends the handshake; change_cipher_spec before ServerHelloDone is an abbreviated
        // (resumed) handshake: no certificate is exchanged in either.
        if (ev.contentType === CONTENT_ALERT || ev.contentType === CONTENT_CHANGE_CIPHER_SPEC) return this.pass('passed');
        return this.refuse(withDetail(Errors.TLS_MALFORMED, `server: record type ${ev.contentType} before the handshake`));
      }
      if (this.seen.chosen === undefined) {
        const sh = ev.type === HS_SERVER_HELLO ? parseServerHello(ev.body) : null;
        if (!sh) return this.refuse(withDetail(Errors.TLS_MALFORMED, 'server: the first handshake message is not a ServerHello'));
        this.seen.chosen = versionLabel(sh.version);
        const max = this.input.checks.maxVersion;
        if (max !== null && sh.version > max) return this.refuse(withDetail(Errors.TLS_VERSION_MAX, `server chose ${this.seen.chosen}`));
        // TLS 1.3 encrypts everything after the ServerHello, the client's certificate included.
        if (sh.version >= TLS13 || this.input.certificates.empty) return this.pass('passed');
        continue;
      }
      if (ev.type === HS_CERTIFICATE_REQUEST) this.certRequested = true;
      else if (ev.type === HS_SERVER_HELLO_DONE) {
        if (!this.certRequested) return this.pass('passed');
        this.phase = 'client-cert';
        return this.judgeClientCert();
      }
    }
  }

  private judgeClientCert(): void {
    const ev = this.fromClient.next();
    if (ev.kind === 'more') return;
    if (ev.kind === 'error') return this.refuse(withDetail(ev.error === 'too_large' ? Errors.TLS_TOO_LARGE : Errors.TLS_MALFORMED, `client: ${ev.detail}`));
    // RFC 5246 §7.4.6: asked for one, a client sends a Certificate message first (empty if it has none).
    if (ev.kind !== 'message' || ev.type !== HS_CERTIFICATE) return this.refuse(withDetail(Errors.TLS_CLIENT_CERT, 'no Certificate message'));
    const chain = parseCertificateList(ev.body);
    if (!chain) return this.refuse(withDetail(Errors.TLS_MALFORMED, 'client: the Certificate message does not parse'));
    const leaf = chain[0];
    if (leaf === undefined) return this.refuse(withDetail(Errors.TLS_CLIENT_CERT, 'the client sent no certificate'));
    const id = certificateIdentity(leaf);
    if (!id) return this.refuse(withDetail(Errors.TLS_MALFORMED, 'client: the certificate does not parse'));
    this.seen.clientCert = { subject: id.subject, thumbprint: id.thumbprint };
    if (!this.input.certificates.allows(id)) return this.refuse(withDetail(Errors.TLS_CLIENT_CERT, id.subject));
    this.pass('passed');
  }

  private notTls(serverFirst: boolean): void {
    if (this.input.checks.require) {
      return this.refuse(withDetail(Errors.TLS_REQUIRED, serverFirst ? 'the server spoke first' : 'the first bytes are not a TLS handshake record'));
    }
    this.pass(serverFirst ? 'silent' : 'not_tls');
  }

  private forwardClientHeld(): void {
    for (const b of this.clientHeld) this.input.upstream.write(b);
    this.clientHeld = [];
  }

  private pass(result: TlsSeen['result']): void {
    this.seen.result = result;
    this.decide(null);
  }

  private refuse(r: Refusal): void {
    this.seen.result = 'refused';
    this.decide(r);
  }

  private decide(refusal: Refusal | null): void {
    this.finish();
    const { client, upstream } = this.input;
    // Node may have read more into the paused sockets' buffers: it is the relay's to write.
    for (let b: unknown = client.read(); b instanceof Buffer; b = client.read()) this.clientHeld.push(b);
    for (let b: unknown = upstream.read(); b instanceof Buffer; b = upstream.read()) this.serverHeld.push(b);
    const toClient = this.sent200 ? this.serverHeld : [this.input.established, ...this.serverHeld];
    this.resolve({ kind: 'decided', refusal, seen: this.seen, toClient: joined(toClient), toUpstream: joined(this.clientHeld) });
  }

  private finish(): void {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    const { client, upstream } = this.input;
    client.pause();
    upstream.pause();
    client.removeListener('data', this.onClientData);
    upstream.removeListener('data', this.onServerData);
    for (const s of [client, upstream]) {
      s.removeListener('end', this.onAbort);
      s.removeListener('close', this.onAbort);
      s.removeListener('error', this.onAbort);
    }
  }
}

/** One buffer of `parts`, without a copy when there is only one (the usual case: one read). */
function joined(parts: Buffer[]): Buffer {
  return parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts);
}
