// Native (C) load generator and upstream servers: build + parent-side runners.
//
// bench/native/loadgen.c, upstream.c and sysload.c (the syslog bench's sender) are compiled on demand
// with `cc -O2` into .bench-out/native/ (git-ignored; rebuilt when the source
// is newer than the binary). If no compiler is available or the build fails,
// buildNative() returns the reason and the harness falls back to the Node
// generators / upstream.
//
// runNativeGens() has the same contract as runGens() in gens.mjs (see there):
// one loadgen process per argv entry, setup in all, onReady(pids), "go" to
// all at once, then { results, genCpuPct, wallSec, extra }.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnTracked, stopChild } from './procs.mjs';
import { driveGenerators } from './gens.mjs';

const REPO = resolve(new URL('../..', import.meta.url).pathname);
const SRC_DIR = join(REPO, 'bench/native');
const OUT_DIR = join(REPO, '.bench-out/native');

/** Compile the programs if needed. Returns { loadgen, upstream, sysload } paths, or { error }. */
export function buildNative() {
  const cc = process.env.CC || 'cc';
  try {
    execFileSync(cc, ['--version'], { stdio: 'ignore' });
  } catch {
    return { error: `no C compiler (\`${cc} --version\` failed)` };
  }
  mkdirSync(OUT_DIR, { recursive: true });
  const out = {};
  for (const name of ['loadgen', 'upstream', 'sysload']) {
    const src = join(SRC_DIR, `${name}.c`);
    const bin = join(OUT_DIR, name);
    if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
      try {
        execFileSync(cc, ['-O2', '-std=c11', '-Wall', '-o', bin, src], { stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        return {
          error: `\`${cc} -O2 -o ${bin} ${src}\` failed: ${String(err.stderr ?? err.message)
            .trim()
            .slice(0, 2000)}`,
        };
      }
    }
    out[name] = bin;
  }
  return out;
}

/** Calls onLine(obj) for every JSON line the child writes to stdout. */
function jsonLines(child, onLine) {
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        msg = { type: 'garbage', line };
      }
      onLine(msg);
    }
  });
}

/** loadgen arguments for a tunnel target: proxy = {host, port} | null (direct). */
export function targetArgs(proxy, destPort) {
  return proxy ? ['--proxy', `${proxy.host}:${proxy.port}`, '--dest-port', String(destPort)] : ['--dest-port', String(destPort)];
}

export async function runNativeGens(bin, argvList, hooks = {}) {
  const kids = argvList.map((argv) => spawnTracked(bin, argv.map(String), { stdio: ['pipe', 'pipe', 'pipe'] }));
  const state = kids.map((k) => {
    const st = { msgs: [], waiters: [], stderr: '', exited: null };
    jsonLines(k, (m) => {
      st.msgs.push(m);
      for (const w of st.waiters.splice(0)) w();
    });
    k.stderr.setEncoding('utf8');
    k.stderr.on('data', (d) => {
      st.stderr = (st.stderr + d).slice(-2000);
    });
    k.stdin.on('error', () => {});
    k.once('exit', (code, sig) => {
      st.exited = { code, sig };
      for (const w of st.waiters.splice(0)) w();
    });
    return st;
  });
  const waitFor = (i, type) =>
    new Promise((resolve, reject) => {
      const st = state[i];
      const check = () => {
        const m = st.msgs.find((x) => x.type === type || x.type === 'error');
        if (m?.type === 'error') return reject(new Error(`native generator: ${m.message}`));
        if (m) return resolve(m);
        if (st.exited) {
          return reject(
            new Error(`native generator exited early (code ${st.exited.code}, signal ${st.exited.sig})${st.stderr ? `: ${st.stderr.trim()}` : ''}`),
          );
        }
        st.waiters.push(check);
      };
      check();
    });
  try {
    return await driveGenerators(
      {
        label: 'native generators',
        pids: kids.map((k) => k.pid),
        readies: kids.map((_, i) => waitFor(i, 'ready')),
        waitResults: () => kids.map((_, i) => waitFor(i, 'result')),
        go: () => {
          for (const k of kids) k.stdin.write('go\n');
        },
      },
      hooks,
    );
  } finally {
    for (const k of kids) {
      try {
        k.stdin.end();
      } catch {
        /* gone */
      }
    }
    await Promise.all(kids.map((k) => stopChild(k, 1000)));
  }
}

/** Start the native echo/sink servers: { child, ports: {echo, sink}, pid, rpc(cmd) }. */
export async function startNativeUpstream(bin) {
  const child = spawnTracked(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {});
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-2000);
  });
  let seq = 0;
  const pending = new Map();
  let onReady;
  const ready = new Promise((res, rej) => {
    onReady = res;
    child.once('exit', (c, s) => rej(new Error(`native upstream exited (code ${c}, signal ${s}) ${stderr.trim()}`)));
  });
  jsonLines(child, (m) => {
    if (m.type === 'ready') onReady(m);
    else if (m.type === 'rpc' && pending.has(m.id)) {
      pending.get(m.id)(m.value);
      pending.delete(m.id);
    }
  });
  const r = await ready;
  const rpc = (cmd) =>
    new Promise((res) => {
      const id = ++seq;
      pending.set(id, res);
      child.stdin.write(`${id} ${cmd}\n`);
    });
  return { child, ports: r.ports, pid: r.pid, rpc };
}
