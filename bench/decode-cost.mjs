// What decoding one upload of the official SDK's shape costs on one core, per step: a chunk of
// ~1 MB of realistic records (bench/lib/records.mjs), gzip level 6 as the SDK sends it.
//   npm run build && node bench/decode-cost.mjs
import { gunzipSync, gzipSync } from 'node:zlib';
import { makeRecords } from './lib/records.mjs';
import { scanJson, scanJsonJs } from '../dist/forwarder/pool/json-scan.js';
import { nativeJsonStatus } from '../dist/forwarder/pool/json-native.js';
import { gunzipMember, nativeDeflateStatus } from '../dist/forwarder/pool/gzip.js';

const raw = Buffer.from(JSON.stringify(makeRecords(2148)));
const gz6 = gzipSync(raw, { level: 6 });
const rows = [];
function time(name, fn, runs = 200) {
  for (let i = 0; i < 20; i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) fn();
  rows.push({ step: name, msPerChunk: +(Number(process.hrtime.bigint() - t0) / 1e6 / runs).toFixed(2) });
}
time('gunzip (SDK gzip-6 body)', () => gunzipSync(gz6));
// As decode.ts inflates: one output chunk of the trailer's size, not 16 KiB pieces joined.
time('gunzip, one chunk (as decode does)', () => gunzipSync(gz6, { maxOutputLength: 1048576, chunkSize: raw.length + 1 }));
if (nativeDeflateStatus().available) time('gunzip, libdeflate (as decode does when built)', () => gunzipMember(gz6, raw.length));
time('JSON.parse (with toString)', () => JSON.parse(raw.toString('utf8')));
time('scanJson, JavaScript', () => scanJsonJs(raw));
if (nativeJsonStatus().available) time('scanJson, C (native/json.c)', () => scanJson(raw));
time('gzip level 1 (what re-compression cost)', () => gzipSync(raw, { level: 1 }), 100);
console.log(JSON.stringify({ chunkBytes: raw.length, wireBytes: gz6.length, records: 2148, native: nativeJsonStatus(), rows }, null, 2));
