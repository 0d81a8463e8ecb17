// The compiled HTTP POST load generator (bench/native/httpload.c): build on demand, run one phase.
//
// Built with `cc -O2` into .bench-out/native/httpload (git-ignored; rebuilt when the source is
// newer). buildHttpLoad() returns { bin } or { error } so the caller can fall back to autocannon.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const REPO = resolve(new URL('../..', import.meta.url).pathname);
const SRC = join(REPO, 'bench/native/httpload.c');
const OUT_DIR = join(REPO, '.bench-out/native');

export function buildHttpLoad() {
  const cc = process.env.CC || 'cc';
  const bin = join(OUT_DIR, 'httpload');
  mkdirSync(OUT_DIR, { recursive: true });
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(SRC).mtimeMs) return { bin };
  try {
    execFileSync(cc, ['-O2', '-std=c11', '-Wall', '-o', bin, SRC], { stdio: ['ignore', 'pipe', 'pipe'] });
    return { bin };
  } catch (err) {
    return {
      error: `\`${cc} -O2 -o ${bin} ${SRC}\` failed: ${String(err.stderr ?? err.message)
        .trim()
        .slice(0, 2000)}`,
    };
  }
}

/** Writes the bodies (Buffers or strings) in httpload's "<length>[ <path>]\n<bytes>" format. */
export function writeBodies(file, bodies, paths = []) {
  const parts = [];
  bodies.forEach((b, i) => {
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b);
    parts.push(Buffer.from(`${buf.length}${paths[i] ? ` ${paths[i]}` : ''}\n`), buf);
  });
  writeFileSync(file, Buffer.concat(parts));
}

/**
 * One run: { port, path, headers: string[], bodiesFile, connections, seconds, rate? }.
 * Resolves with httpload's JSON result (sent, ok, non2xx, errors, latencyUs, cpuSec, wallSec ...).
 */
export function runHttpLoad(bin, o) {
  const args = [
    '--port',
    String(o.port),
    '--path',
    o.path,
    '--bodies',
    o.bodiesFile,
    '--conns',
    String(o.connections),
    '--duration-ms',
    String(Math.round(o.seconds * 1000)),
  ];
  for (const h of o.headers) args.push('--header', h);
  if (o.rate) args.push('--rate', String(o.rate));
  return new Promise((resolvePromise, reject) => {
    execFile(bin, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`httpload failed: ${err.message} ${stderr}`));
      try {
        resolvePromise(JSON.parse(stdout));
      } catch {
        reject(new Error(`httpload printed no result: ${stdout} ${stderr}`));
      }
    });
  });
}
