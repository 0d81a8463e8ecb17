/**
 * Batches the upstream refused for good (400, 401/403 after a token refresh, 413): the records
 * (uncompressed JSON) and the upstream's answer, side by side, in the dead-letter folder.
 */
import { mkdir, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

export interface DeadLetter {
  destination: string;
  stream: string;
  status: number;
  /** The upstream's answer body (truncated) and headers worth keeping. */
  answer: string;
  requestId: string | null;
  records: number;
  entryIds: number[];
  reason: string;
}

let seq = 0;

/** Writes `<dir>/<destination>/<time>-<n>.json` (records) and `.meta.json` (why); returns the records file. */
export async function writeDeadLetter(dir: string, letter: DeadLetter, body: Uint8Array): Promise<string> {
  const folder = join(dir, letter.destination.replace(/[^A-Za-z0-9._-]/g, '_'));
  await mkdir(folder, { recursive: true });
  const base = `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}-${++seq}`;
  const meta = { ...letter, at: new Date().toISOString() };
  // Write then rename: a crash never leaves a half-written file under the final name.
  await writeFile(join(folder, `${base}.meta.json.tmp`), JSON.stringify(meta, null, 2));
  await writeFile(join(folder, `${base}.json.tmp`), body);
  await rename(join(folder, `${base}.meta.json.tmp`), join(folder, `${base}.meta.json`));
  await rename(join(folder, `${base}.json.tmp`), join(folder, `${base}.json`));
  return join(folder, `${base}.json`);
}
