#!/usr/bin/env node
// The syslog collector's pool-side cost alone: runParse (split, parse RFC 3164/5424 + CEF, route,
// map to CommonSecurityLog, JSON, spool entries) on the syslog bench's CEF lines, in this thread,
// in 64 KiB blocks as the listener hands them on. Reports CPU microseconds per message (process
// CPU time, best and median of 5 repetitions), which moves much less than a rate when other work
// shares the machine. No processes, no network.
//
//   npm run build && node bench/syslog-parse.mjs [--lines 8192] [--rounds 5] [--path native|js|plain]
//
// --path: native (default; the C fast path, native/cef.c, when built), js (the same path in
// JavaScript, src/syslog/parse/fast.ts), plain (the parser both fall back to).
import { parseArgs } from 'node:util';
import { runParse } from '../dist/syslog/parse/task.js';
import { cefLines } from './lib/cef-lines.mjs';

const { values: o } = parseArgs({
  options: { lines: { type: 'string', default: '8192' }, rounds: { type: 'string', default: '5' }, path: { type: 'string', default: 'native' } },
});
const opts = o.path === 'plain' ? { fast: false } : o.path === 'js' ? { native: false } : {};
const buf = Buffer.from(cefLines(Number(o.lines)));
const blocks = [];
for (let pos = 0; pos < buf.length;) {
  let end = buf.indexOf(10, Math.min(buf.length - 1, pos + 65536));
  if (end < 0) end = buf.length - 1;
  blocks.push(buf.subarray(pos, end + 1));
  pos = end + 1;
}
const routes = [{ table: 'CommonSecurityLog', facilities: null, cefVendor: null, cefProduct: null, dropFacilities: [], maxSeverity: 7 }];
const once = () => {
  let n = 0;
  for (const bytes of blocks) {
    const task = {
      kind: 'syslog-parse',
      blocks: [{ mode: 'newline', bytes, sourceIp: '127.0.0.1', candidates: [0] }],
      routes,
      receivedAt: new Date().toISOString(),
      collector: 'gw',
      entryMaxBytes: 960 * 1024,
    };
    n += runParse(task, opts).counts.messages;
  }
  return n;
};
for (let i = 0; i < 5; i++) once(); // warm-up: optimised code
const perMessage = [];
for (let rep = 0; rep < 5; rep++) {
  const c0 = process.cpuUsage();
  let n = 0;
  for (let i = 0; i < Number(o.rounds); i++) n += once();
  const c = process.cpuUsage(c0);
  perMessage.push((c.user + c.system) / n);
}
perMessage.sort((a, b) => a - b);
const result = {
  date: new Date().toISOString(),
  lines: Number(o.lines),
  path: o.path,
  usPerMessageBest: +perMessage[0].toFixed(2),
  usPerMessageMedian: +perMessage[2].toFixed(2),
};
console.log(JSON.stringify(result));
