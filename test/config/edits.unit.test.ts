/** The operator's changes as ConfigStore edits: defaults written down before an edit changes them, and secrets never shown in a diff. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { applyEdit, ConfigStore, defaultConfig, diffConfigs, edits, loadConfigFile, REDACTED } from '../../src/config/index.js';
import { writeTemp } from './helpers.js';

async function storeOf(text: string): Promise<{ store: ConfigStore; file: string }> {
  const file = writeTemp('portcullis.yaml', text);
  return { store: await ConfigStore.open(file), file };
}

describe('edits', () => {
  it('a preset in force by default is "already in use" and nothing is written; removing it writes the rest of the default list', async () => {
    const { store, file } = await storeOf('log:\n  level: info\n');
    const before = loadConfigFile(file);
    expect(await applyEdit(store, before, edits.addPreset('azure-public'))).toMatchObject({ ok: true, written: false });
    expect(readFileSync(file, 'utf8')).toBe('log:\n  level: info\n');
    const removed = await applyEdit(store, before, edits.removePreset('azure-public'));
    expect(removed).toMatchObject({ ok: true, written: true, changed: [{ path: 'allow.presets', before: ['azure-public'], after: [] }] });
  });

  it('adding a port to a rule that relied on the default 443 keeps 443', async () => {
    const { store, file } = await storeOf('allow:\n  rules:\n    - name: web\n      hosts: [a.example.com]\n');
    const r = await applyEdit(store, loadConfigFile(file), edits.addHosts({ rule: 'web', hosts: ['b.example.com'], ports: [8443] }));
    expect(r.ok).toBe(true);
    expect(loadConfigFile(file).allow.rules[0]).toMatchObject({ hosts: ['a.example.com', 'b.example.com'], ports: [443, 8443] });
  });

  it('normalises thumbprints and refuses what is not one', () => {
    expect(edits.normaliseThumbprint('ab'.repeat(32))).toBe(Array(32).fill('AB').join(':'));
    expect(edits.normaliseThumbprint(Array(32).fill('0f').join(':'))).toBe(Array(32).fill('0F').join(':'));
    expect(edits.normaliseThumbprint('ab'.repeat(31))).toBeNull();
  });

  it('a changed secret shows as a change, redacted on both sides', () => {
    const a = defaultConfig({});
    const b = structuredClone(a);
    a.admin.token = 'old-token-0123456789';
    b.admin.token = 'new-token-0123456789';
    expect(diffConfigs(a, b)).toEqual([{ path: 'admin.token', before: REDACTED, after: REDACTED }]);
  });
});
