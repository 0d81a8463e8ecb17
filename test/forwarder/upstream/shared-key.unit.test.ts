/** SharedKey signing and verification (pure; the emulator test checks the signer against an independent verifier). */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sharedKeyAuthorization, signDataCollectorRequest, stringToSign, verifySharedKey } from '../../../src/forwarder/upstream/shared-key.js';

const WS = 'ws-1';
const KEY = Buffer.from('k'.repeat(64)).toString('base64');
const DATE = 'Mon, 30 Nov 2026 12:00:00 GMT';
const NOW = Date.parse(DATE);

describe('SharedKey', () => {
  it('builds the documented string to sign and HMAC', () => {
    expect(stringToSign({ contentLength: 12, date: DATE })).toBe(`POST\n12\napplication/json\nx-ms-date:${DATE}\n/api/logs`);
    const sig = createHmac('sha256', Buffer.from(KEY, 'base64')).update(`POST\n12\napplication/json\nx-ms-date:${DATE}\n/api/logs`).digest('base64');
    expect(sharedKeyAuthorization({ workspaceId: WS, sharedKey: KEY, contentLength: 12, date: DATE })).toBe(`SharedKey ${WS}:${sig}`);
  });

  it('counts the body length in bytes, not characters', () => {
    const headers = signDataCollectorRequest({ workspaceId: WS, sharedKey: KEY, body: Buffer.from('[{"é":1}]'), logType: 'T', now: new Date(NOW) });
    const ok = verifySharedKey({
      authorization: headers['authorization'],
      date: headers['x-ms-date'],
      contentType: 'application/json',
      contentLength: 10,
      keysFor: () => [KEY],
      now: NOW,
    });
    expect(ok).toEqual({ ok: true, workspaceId: WS });
  });

  const verify = (over: Partial<Parameters<typeof verifySharedKey>[0]>): ReturnType<typeof verifySharedKey> =>
    verifySharedKey({
      authorization: sharedKeyAuthorization({ workspaceId: WS, sharedKey: KEY, contentLength: 5, date: DATE }),
      date: DATE,
      contentType: 'application/json',
      contentLength: 5,
      keysFor: (ws) => (ws === WS ? [Buffer.from('other').toString('base64'), KEY] : undefined),
      now: NOW,
      ...over,
    });

  it('accepts any of the workspace keys; refuses with a reason otherwise', () => {
    expect(verify({})).toEqual({ ok: true, workspaceId: WS });
    expect(verify({ contentLength: 6 })).toEqual({ ok: false, reason: 'signature' });
    expect(verify({ authorization: undefined })).toEqual({ ok: false, reason: 'missing' });
    expect(verify({ authorization: 'Bearer abc' })).toEqual({ ok: false, reason: 'scheme' });
    expect(verify({ authorization: 'SharedKey nocolon' })).toEqual({ ok: false, reason: 'malformed' });
    expect(verify({ keysFor: () => undefined })).toEqual({ ok: false, reason: 'workspace' });
    expect(verify({ date: 'yesterday' })).toEqual({ ok: false, reason: 'date' });
    expect(verify({ now: NOW + 16 * 60 * 1000 })).toEqual({ ok: false, reason: 'skew' });
    expect(verify({ now: NOW + 16 * 60 * 1000, maxClockSkewMs: 20 * 60 * 1000 })).toEqual({ ok: true, workspaceId: WS });
  });
});
