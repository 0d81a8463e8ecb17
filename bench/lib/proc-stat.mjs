// /proc readings and child start-up helpers shared by the forwarder and syslog benches.
import { readFileSync, readdirSync } from 'node:fs';

function statFields(path) {
  return readFileSync(path, 'utf8').split(') ')[1].split(' ');
}

/** utime + stime of a process in seconds (clock ticks of 1/100 s); 0 once it has gone. */
export function cpuSeconds(pid) {
  try {
    const f = statFields(`/proc/${pid}/stat`);
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds of each thread of a process, grouped: 'main' (tid = pid) and the others by name. */
export function threadCpu(pid) {
  const out = {};
  let tids = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const f = statFields(`/proc/${pid}/task/${tid}/stat`);
      const name = Number(tid) === pid ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** Resident set size in MB; 0 once the process has gone. */
export function rssMB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The process and its children (a cluster supervisor and its workers). */
export function treePids(pid) {
  const out = [pid];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (Number(statFields(`/proc/${p}/stat`)[1]) === pid) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

/** Reads a child's stdout until `pick` returns a value for the text so far, then keeps draining it. */
export function readUntil(child, what, pick) {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk) => {
      text += chunk;
      const v = pick(text);
      if (v !== undefined) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve(v);
      }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready`)));
  });
}
