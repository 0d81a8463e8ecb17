/**
 * docs/operator-guide.md's "Troubleshoot by event code" table covers every event the gateway logs
 * (src/log/events.ts): a new event code needs a line saying what an operator does about it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Events } from '../../src/log/events.js';

const GUIDE = readFileSync(new URL('../../docs/operator-guide.md', import.meta.url), 'utf8');

function documentedEvents(): Set<number> {
  const section = GUIDE.split('## Troubleshoot by event code')[1]?.split('\n## ')[0] ?? '';
  const codes = new Set<number>();
  for (const line of section.split('\n')) {
    const first = /^\|\s*([0-9, ]+)\s*\|/.exec(line)?.[1];
    for (const n of first?.split(',') ?? []) codes.add(Number(n.trim()));
  }
  return codes;
}

describe('docs/operator-guide.md', () => {
  it('has a line for every event code in src/log/events.ts, and none that does not exist', () => {
    const documented = documentedEvents();
    const codes = new Set<number>(Object.values(Events));
    expect([...codes].filter((c) => !documented.has(c)).sort()).toEqual([]);
    expect([...documented].filter((c) => !codes.has(c)).sort()).toEqual([]);
  });
});
