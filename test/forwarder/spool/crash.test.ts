/**
 * Crash durability for real: a child process appends (fsync 'always') and prints each id once its
 * append resolved; it is SIGKILLed at a random moment; on reopen every printed id is there with
 * its payload, and no entry whose ack resolved comes back. Several kills on the same directory.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { Spool } from '../../../src/forwarder/spool/index.js';
import { captureLogger, tempDir, text } from './helpers.js';

const CHILD = resolve(import.meta.dirname, 'crash-child.mjs');
const DIST = resolve(import.meta.dirname, '../../../dist/forwarder/spool/index.js');
const KILLS = 4;

interface ChildRun {
  printed: Map<number, string>;
  acked: Set<number>;
  /** Acks started: those entries may or may not be there after the kill. */
  acking: Set<number>;
}

/** Runs the child until it has printed `killAfter` appends, then SIGKILLs it. */
function runAndKill(dir: string, runTag: string, killAfter: number): Promise<ChildRun> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, runTag], { stdio: ['ignore', 'pipe', 'pipe'] });
    const printed = new Map<number, string>();
    const acked = new Set<number>();
    const acking = new Set<number>();
    let stderr = '';
    let killed = false;
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child printed only ${printed.size} appends in 20 s; stderr: ${stderr}`));
    }, 20_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [kind, id, tag] = line.split(' ');
      if (kind === 'P' && id !== undefined && tag !== undefined) printed.set(Number(id), tag);
      if (kind === 'A' && id !== undefined) acked.add(Number(id));
      if (kind === 'a' && id !== undefined) acking.add(Number(id));
      if (!killed && printed.size >= killAfter) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      if (signal === 'SIGKILL') resolveRun({ printed, acked, acking });
      else reject(new Error(`child exited ${code} before the kill; stderr: ${stderr}`));
    });
  });
}

describe('spool crash durability (SIGKILL)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  it(`every append that resolved survives ${KILLS} SIGKILLs; acked entries never come back`, async () => {
    if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does it)`);
    const t = await tempDir('crash');
    cleanups.push(t.cleanup);
    const durable = new Map<number, string>();
    const acked = new Set<number>();
    for (let k = 0; k < KILLS; k++) {
      const run = await runAndKill(t.dir, `r${k}`, 50 + Math.floor(Math.random() * 400));
      for (const [id, tag] of run.printed) durable.set(id, tag);
      for (const id of run.acking) durable.delete(id);
      for (const id of run.acked) acked.add(id);
      const spool = await Spool.open({ dir: t.dir, maxBytes: 256 * 1024 * 1024, fsync: 'always', logger: captureLogger().logger });
      try {
        const present = new Map<number, string>();
        for (const s of spool.streams()) for (const e of await spool.take(s, Number.MAX_SAFE_INTEGER)) present.set(e.id, text(e.payload).split(':')[0] ?? '');
        const missing = [...durable].filter(([id, tag]) => present.get(id) !== tag);
        expect(missing, `resolved appends missing after kill ${k + 1}`).toEqual([]);
        const back = [...acked].filter((id) => present.has(id));
        expect(back, 'acked entries replayed').toEqual([]);
        // Present but never printed: appends (or acks) in flight at the kill: the duplicate window.
        expect(spool.recovery.corruptFrames).toBe(0);
      } finally {
        await spool.close();
      }
    }
    expect(durable.size).toBeGreaterThan(KILLS * 30);
  });
});
