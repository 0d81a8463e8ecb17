#!/usr/bin/env node
// Builds build/Release/portcullis_relay.node (the native tunnel relay) with node-gyp, when its
// sources are newer than the binary. Without a compiler the gateway still works (relay: auto falls
// back to JavaScript), so a failure only warns, except under CI=true or PORTCULLIS_REQUIRE_NATIVE=1,
// where a missing relay would make every measurement and test of it meaningless.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'Release', 'portcullis_relay.node');
const sources = [join(root, 'native', 'relay.c'), join(root, 'binding.gyp')];
const strict = process.env.CI === 'true' || process.env.PORTCULLIS_REQUIRE_NATIVE === '1';

if (process.platform !== 'linux') {
  console.warn(`portcullis: native relay is Linux-only (${process.platform}); tunnels will be relayed in JavaScript`);
  process.exit(0);
}
if (existsSync(out) && sources.every((s) => statSync(s).mtimeMs <= statSync(out).mtimeMs)) process.exit(0);

// npm passes its bundled node-gyp to scripts; otherwise look next to npm, then on PATH.
const prefix = dirname(dirname(process.execPath));
const gypCandidates = [process.env.npm_config_node_gyp, join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].filter(
  (p) => p && existsSync(p),
);
const args = ['rebuild', '--release'];
// Headers of the running Node (Debian's nodejs ships them): no download, which is often not possible on a gateway.
const nodedir = process.env.npm_config_nodedir || (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : '');
if (nodedir) args.push(`--nodedir=${nodedir}`);
const cmd = gypCandidates[0] ? process.execPath : 'node-gyp';
const cmdArgs = gypCandidates[0] ? [gypCandidates[0], ...args] : args;
const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
if (r.status === 0 && existsSync(out)) process.exit(0);
const why = r.error
  ? r.error.message
  : (r.stderr || '')
      .split('\n')
      .filter((l) => /error|ERR!/.test(l))
      .slice(0, 8)
      .join('\n');
console.warn(`portcullis: could not build the native tunnel relay; tunnels will be relayed in JavaScript.\n${why}`);
process.exit(strict ? 1 : 0);
