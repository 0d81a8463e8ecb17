/**
 * The layout in docs/design-notes.md ("Layout"), enforced: each folder of src/ may import only the
 * folders listed for it, so every import points down and a new capability cannot quietly pull the
 * runtime into the data path. A new folder must be added here (and to the doc) before it is used.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/** folder -> folders it may import (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  util: [],
  address: ['util'],
  log: ['config'],
  config: ['address', 'util'],
  errors: ['log'],
  tls: [],
  dial: ['address', 'util'],
  policy: ['address', 'config', 'tls', 'util'],
  relay: ['config', 'util'],
  auth: ['util'],
  certs: ['util'],
  proxy: ['auth', 'config', 'dial', 'errors', 'log', 'policy', 'relay', 'tls', 'util'],
  metrics: ['errors', 'proxy'],
  gateway: ['config', 'dial', 'errors', 'log', 'policy', 'proxy', 'relay', 'util'],
  admin: ['config', 'errors', 'gateway', 'log', 'util'],
  forwarder: ['address', 'config', 'dial', 'errors', 'gateway', 'log', 'policy', 'proxy', 'util'],
  syslog: ['address', 'config', 'forwarder', 'gateway', 'log', 'util'],
  doctor: ['config', 'dial', 'policy', 'proxy', 'util'],
  runtime: ['admin', 'config', 'errors', 'forwarder', 'gateway', 'log', 'metrics', 'policy', 'proxy', 'relay', 'syslog', 'util'],
  cli: ['certs', 'config', 'doctor', 'forwarder', 'log', 'relay', 'runtime', 'util'],
};

function* sourceFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sourceFiles(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

function folderOf(file: string): string {
  return relative(SRC, file).split(sep)[0] ?? '';
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => m[1] ?? '');
  return specs.map((s) => resolve(dirname(file), s));
}

describe('source layout', () => {
  const files = [...sourceFiles(SRC)];

  it('knows every folder of src/', () => {
    const folders = new Set(files.map(folderOf).filter((f) => !f.endsWith('.ts')));
    expect([...folders].filter((f) => !(f in ALLOWED))).toEqual([]);
  });

  it('has every import point to a folder its layer may use', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      const allowed = ALLOWED[from] ?? [];
      for (const target of importsOf(file)) {
        const to = folderOf(target);
        if (to !== from && !allowed.includes(to)) wrong.push(`${relative(SRC, file)} imports ${relative(SRC, target)} (${from} -> ${to})`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
