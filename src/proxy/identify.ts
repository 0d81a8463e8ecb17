import { ANONYMOUS, identityLabel, type ClientIdentity } from '../policy/index.js';
import { Errors, type Refusal } from '../errors/catalogue.js';
import type { AccessRecord } from './access.js';
import type { ConnState, ProxyContext } from './context.js';
import type { Authenticator } from '../auth/index.js';

/**
 * Who is asking: the connection's verified client certificate, else the proxy Basic user when
 * proxy.auth is on (a refusal when the credentials are missing, wrong, or the address has failed
 * too often), else anonymous. The identity goes on the access record; the password never does.
 */
export function identify(
  ctx: ProxyContext,
  state: ConnState,
  rec: AccessRecord,
  proxyAuthorization: string | undefined,
): ClientIdentity | Refusal | Promise<ClientIdentity | Refusal> {
  if (state.identity !== null) {
    rec.identity = identityLabel(state.identity) ?? '';
    return state.identity;
  }
  // No await without authentication: the common case costs no extra tick.
  if (ctx.auth === null) return ANONYMOUS;
  return checkBasic(ctx.auth, state, rec, proxyAuthorization);
}

async function checkBasic(auth: Authenticator, state: ConnState, rec: AccessRecord, proxyAuthorization: string | undefined): Promise<ClientIdentity | Refusal> {
  const r = await auth.check(proxyAuthorization, state.ip);
  if (!r.ok) {
    if (r.userKnown === true && r.user !== undefined) rec.authUser = r.user;
    return r.why === 'missing' ? Errors.PROXY_AUTH_REQUIRED : r.why === 'limited' ? Errors.PROXY_AUTH_RATE_LIMITED : Errors.PROXY_AUTH_FAILED;
  }
  rec.identity = r.user;
  return { kind: 'user', user: r.user };
}

export function isRefusal(x: ClientIdentity | Refusal): x is Refusal {
  return 'code' in x;
}

/** The realm a 407 names (proxy.auth.realm). */
export function realmOf(ctx: ProxyContext): string {
  return ctx.auth?.realm ?? 'portcullis';
}

/** One field's value from a raw request head (the front door reads CONNECT heads itself); the first one wins. */
export function headField(head: Buffer, name: string): string | undefined {
  const text = head.toString('latin1');
  const want = name.toLowerCase();
  let at = text.indexOf('\n');
  while (at >= 0 && at + 1 < text.length) {
    const end = text.indexOf('\n', at + 1);
    const line = text.slice(at + 1, end < 0 ? undefined : end).replace(/\r$/, '');
    if (line === '') return undefined;
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).toLowerCase() === want) return line.slice(colon + 1).trim();
    at = end;
  }
  return undefined;
}
