import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { apiCatalogue, catalogue, entryForCode, Errors, forwarderCatalogue, ForwarderErrors, noticeCatalogue } from '../../src/errors/catalogue.js';
import { DC, LI } from '../../src/forwarder/ingest/answers.js';
import { renderErrorsDoc } from '../../src/errors/docs.js';
import { Events } from '../../src/log/events.js';
import { networkRefusal, upstreamRefusal } from '../../src/proxy/refusal.js';
import { PortcullisError } from '../../src/util/errors.js';

const root = new URL('../../', import.meta.url);

describe('error catalogue', () => {
  it('docs/errors.md is what the catalogue generates (run `npm run docs:errors` after changing it)', () => {
    expect(readFileSync(new URL('docs/errors.md', root), 'utf8')).toBe(renderErrorsDoc());
  });

  it('declares each code once, with a PCL_ERR_ code, a snake_case reason, an event that exists and a status a client can see', () => {
    const all = [...catalogue, ...forwarderCatalogue, ...apiCatalogue];
    const codes = all.map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    const events = new Set<number>(Object.values(Events));
    for (const e of all) {
      expect(e.code).toMatch(/^PCL_ERR_[A-Z0-9_]+$/);
      expect(e.reason).toMatch(/^[a-z]+(_[a-z]+)*$/);
      if (e.event !== null) expect(events.has(e.event)).toBe(true);
      expect(e.status === 0 || e.status === 499 || (e.status >= 400 && e.status < 600)).toBe(true);
    }
    for (const e of catalogue) expect(entryForCode(e.code)).toBe(e);
  });

  it('every PCL_ERR_* code in src/ is declared in the catalogue, so docs/errors.md explains every code an operator can meet', () => {
    const declared = new Set([...catalogue, ...forwarderCatalogue, ...apiCatalogue, ...noticeCatalogue].map((e) => e.code));
    const srcDir = new URL('src/', root);
    const used = new Map<string, string>();
    /** Codes written outside src/errors: where they are raised. */
    const raised = new Set<string>();
    for (const file of readdirSync(srcDir, { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts')) continue;
      // A code ends in a letter or digit: "PCL_ERR_API_*" in a description is a family, not a code.
      for (const m of readFileSync(new URL(file, srcDir), 'utf8').matchAll(/PCL_ERR_[A-Z0-9_]*[A-Z0-9]\b(?!\*)/g)) {
        used.set(m[0], file);
        if (!file.startsWith('errors/')) raised.add(m[0]);
      }
    }
    expect(used.size).toBeGreaterThan(100);
    const missing = [...used].filter(([code]) => !declared.has(code)).map(([code, file]) => `${code} (${file})`);
    expect(missing).toEqual([]);
    // Notices are raised where the layering puts them (config/, policy/, cli/ may not import
    // errors/), so each is spelled there too: one that nothing raises any more is a stale entry.
    const notices = noticeCatalogue.map((e) => e.code);
    expect(notices.filter((code) => !raised.has(code))).toEqual([]);
    // Each code once: a notice is not also a refusal.
    expect(new Set(notices).size).toBe(notices.length);
    expect([...catalogue, ...forwarderCatalogue, ...apiCatalogue].filter((e) => notices.includes(e.code))).toEqual([]);
  });

  it("the forwarder's answers take code, reason and event from the catalogue; each API only adds its status and body code", () => {
    const forwarderCodes = new Map(forwarderCatalogue.map((e) => [e.code, e]));
    for (const answer of [...Object.values(LI), ...Object.values(DC)]) {
      const entry = forwarderCodes.get(answer.code);
      expect(entry, answer.code).toBeDefined();
      expect({ reason: answer.reason, event: answer.event }).toEqual({ reason: entry?.reason, event: entry?.event });
      expect(answer.retryAfter === true).toBe(answer.status === 429 || answer.status === 503);
    }
    // The same refusal is the same code under both APIs, even where the statuses differ.
    expect(LI.spoolFull).toMatchObject({ code: ForwarderErrors.SPOOL_FULL.code, status: 429, api: 'TooManyRequests' });
    expect(DC.spoolFull).toMatchObject({ code: ForwarderErrors.SPOOL_FULL.code, status: 503, api: 'ServiceUnavailable' });
  });

  it('agrees with the README status table: every answered status is in a row listing its event', () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const table = readme.slice(readme.indexOf('### Status codes and event codes'));
    const rows = table
      .split('\n')
      .slice(3)
      .filter((l) => l.startsWith('| '))
      .map((l) => {
        const [status = '', , event = ''] = l
          .split('|')
          .slice(1)
          .map((c) => c.trim());
        return { statuses: status.split('/').map((s) => Number(s.trim())), events: event.split(',').map((s) => Number(s.trim())) };
      });
    expect(readme).toContain('(docs/errors.md)');
    for (const e of catalogue) {
      if (e.kind === 'outcome' || e.status === 0) continue;
      const row = rows.find((r) => r.statuses.includes(e.status));
      expect(row, `${e.code}: status ${e.status} has no README row`).toBeDefined();
      expect(row?.events, `${e.code}: README row for ${e.status} lacks event ${e.event}`).toContain(e.event);
    }
  });
});

describe('failures map to their catalogue entry', () => {
  it('a dial error keeps its code, status, reason and event; the catch-alls carry the error text', () => {
    expect(networkRefusal(new PortcullisError('PCL_ERR_CONNECT_REFUSED', 'connect to 10.0.0.1:80 refused'))).toBe(Errors.CONNECT_REFUSED);
    expect(networkRefusal(new PortcullisError('PCL_ERR_DNS_TIMEOUT', 'x: timed out'))).toBe(Errors.DNS_TIMEOUT);
    const dns = networkRefusal(new PortcullisError('PCL_ERR_DNS', 'x: DNS lookup failed (EAI_AGAIN)'));
    expect(dns).toMatchObject({ code: 'PCL_ERR_DNS', status: 502, reason: 'dns_error', event: Events.NETWORK_ERROR });
    expect(dns.message).toContain('EAI_AGAIN');
    expect(networkRefusal(new Error('odd'))).toMatchObject({ code: 'PCL_ERR_CONNECT', reason: 'connect_error', message: expect.stringContaining('odd') });
  });

  it('plain-HTTP upstream failures: the same entries as CONNECT for the same failure', () => {
    expect(upstreamRefusal(new PortcullisError('PCL_ERR_CONNECT_TIMEOUT', 't'))).toBe(Errors.CONNECT_TIMEOUT);
    expect(upstreamRefusal(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBe(Errors.CONNECT_REFUSED);
    expect(upstreamRefusal(Object.assign(new Error('slow'), { code: 'UND_ERR_HEADERS_TIMEOUT' }))).toBe(Errors.UPSTREAM_TIMEOUT);
    expect(upstreamRefusal(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toMatchObject({
      code: 'PCL_ERR_UPSTREAM',
      status: 502,
      message: 'destination failed: ECONNRESET',
    });
  });

  it('the drain refusal is a 503 with Retry-After under the capacity event, as the README says', () => {
    expect(Errors.DRAINING).toMatchObject({ status: 503, reason: 'draining', event: Events.LIMIT_REACHED, retryAfterS: 5 });
  });
});
