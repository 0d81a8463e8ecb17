// Parent side of the generator processes.
import { fileURLToPath } from 'node:url';
import { forkTracked, stopChild } from './procs.mjs';

const GEN = fileURLToPath(new URL('./gen.mjs', import.meta.url));

/**
 * Fork one generator per params entry, run caseFile's genSetup in all of them,
 * await onReady(pids) in the parent (e.g. to sample the proxy), then start
 * genRun in all at once; onRunning() is called right after 'go' (its promise
 * is awaited at the end), onDone() once every generator has reported. Resolves with
 *   { results: [...], genCpuPct, wallSec, extra }
 * where extra is what onReady/onRunning returned, and genCpuPct is the summed
 * CPU of all generators over their run in % of one core.
 */
export async function runGens(caseFile, paramsList, hooks = {}) {
  const kids = paramsList.map(() => forkTracked(GEN));
  try {
    const waitFor = (kid, type) =>
      new Promise((resolve, reject) => {
        const onMsg = (m) => {
          if (m?.type === type) {
            cleanup();
            resolve(m);
          } else if (m?.type === 'error') {
            cleanup();
            reject(new Error(`generator: ${m.message}`));
          }
        };
        const onExit = (code) => {
          cleanup();
          reject(new Error(`generator exited early (code ${code})`));
        };
        const cleanup = () => {
          kid.off('message', onMsg);
          kid.off('exit', onExit);
        };
        kid.on('message', onMsg);
        kid.once('exit', onExit);
      });
    const readies = kids.map((k) => waitFor(k, 'ready'));
    kids.forEach((k, i) => k.send({ type: 'task', caseFile, params: paramsList[i] }));
    return await driveGenerators(
      {
        label: 'generators',
        pids: kids.map((k) => k.pid),
        readies,
        waitResults: () => kids.map((k) => waitFor(k, 'result')),
        go: () => {
          for (const k of kids) k.send({ type: 'go' });
        },
      },
      hooks,
    );
  } finally {
    await Promise.all(kids.map((k) => stopChild(k, 1000)));
  }
}

/**
 * The run every generator transport shares (Node IPC, native stdin/stdout): wait until all are
 * ready, onReady(pids), 'go', onRunning(), wait for every result, onDone(); bounded by timeoutMs.
 */
export async function driveGenerators({ label, pids, readies, waitResults, go }, { onReady, onRunning, onDone, timeoutMs = 600000 } = {}) {
  const extra = {};
  let timer;
  const overall = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([Promise.all(readies), overall]);
    if (onReady) extra.ready = await onReady(pids);
    const resultsP = waitResults();
    go();
    const running = onRunning ? onRunning() : null;
    const msgs = await Promise.race([Promise.all(resultsP), overall]);
    if (onDone) extra.done = await onDone();
    if (running) extra.running = await running;
    return summariseGenerators(msgs, extra);
  } finally {
    clearTimeout(timer);
  }
}

/** Split total into n near-equal integer parts. */
export function split(total, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(Math.floor(total / n) + (i < total % n ? 1 : 0));
  return out.filter((x) => x > 0);
}

/** Sum the generator processes' results and CPU (shared by the Node and native generators). */
function summariseGenerators(msgs, extra) {
  const cpu = msgs.reduce((a, m) => a + m.cpuSec, 0);
  const wall = Math.max(...msgs.map((m) => m.wallSec));
  const user = msgs.reduce((a, m) => a + (m.cpuUserSec ?? 0), 0);
  return { results: msgs.map((m) => m.result), genCpuPct: (100 * cpu) / wall, genUserCpuPct: (100 * user) / wall, wallSec: wall, extra };
}

/** The CPU shares every case reports from one run of its generators. */
export function cpuFields(r) {
  return { proxyCpuPct: r.proxyCpuPct, genCpuPct: r.genCpuPct, genUserCpuPct: r.genUserCpuPct, upstreamCpuPct: r.upstreamCpuPct, sysCpuPct: r.sysCpuPct };
}
