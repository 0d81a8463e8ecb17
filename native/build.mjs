#!/usr/bin/env node
// Builds build/Release/portcullis_relay.node (the native tunnel relay), portcullis_cef.node (the
// syslog collector's CEF fast path), portcullis_json.node (the forwarder's JSON validator),
// portcullis_deflate.node (batch gzip with the vendored libdeflate) and portcullis_notify.node (sd_notify for systemd's
// Type=notify) with node-gyp, when their sources are newer than the
// binaries, unless prebuilt addons that load in this Node came with the package (the npm tarball
// ships prebuilds/linux-x64/*.napi.node: N-API, one build for Node 20, 22 and 24), so a server
// without a compiler still gets them. Without a compiler the gateway still works (relay: auto falls
// back to JavaScript, and so do the CEF fast path and the JSON validator; batches are gzipped with zlib), so a failure only warns, except under CI=true or PORTCULLIS_REQUIRE_NATIVE=1,
// where a missing relay would make every measurement and test of it meaningless.
//
// `node native/build.mjs --prebuild` (npm's prepack) builds here and copies the addons to
// prebuilds/<platform>-<arch>/<name>.napi.node for the tarball; `--clean-prebuilds` (postpack)
// removes them again, so a working tree always loads its own fresh build.
//
// `node native/build.mjs --sanitize` builds build/Sanitize/portcullis_relay.node,
// portcullis_cef.node, portcullis_json.node and portcullis_deflate.node instead, with
// AddressSanitizer and UndefinedBehaviorSanitizer, straight with the C compiler (node-gyp has one
// build directory, and the normal build must stay as it is). test/sanitize.sh loads it through
// PORTCULLIS_RELAY_ADDON, PORTCULLIS_CEF_ADDON, PORTCULLIS_JSON_ADDON and PORTCULLIS_DEFLATE_ADDON, with the ASan runtime preloaded into Node.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/**
 * binding.gyp's libdeflate target (the vendored compressor and decompressor), read from there so that one
 * list serves node-gyp, the freshness check and the sanitizer build. binding.gyp is kept plain
 * JSON (gyp reads a Python literal; no comments, no trailing commas) for this.
 */
const libdeflateTarget = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')).targets.find((t) => t.target_name === 'libdeflate');
const LIBDEFLATE_SOURCES = libdeflateTarget.sources.map((f) => join(root, f));
/** Its warnings relaxed (-Wno-...): someone else's code, compiled as it is. */
const LIBDEFLATE_NO_WARN = libdeflateTarget.cflags.filter((f) => f.startsWith('-Wno-'));
const ADDONS = ['portcullis_relay', 'portcullis_cef', 'portcullis_json', 'portcullis_deflate', 'portcullis_notify'];
const outputs = ADDONS.map((name) => join(root, 'build', 'Release', `${name}.node`));
const prebuildDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const prebuilds = ADDONS.map((name) => join(prebuildDir, `${name}.napi.node`));
const sources = [
  join(root, 'native', 'relay.c'),
  join(root, 'native', 'cef.c'),
  join(root, 'native', 'json.c'),
  join(root, 'native', 'deflate.c'),
  join(root, 'native', 'notify.c'),
  join(root, 'binding.gyp'),
  // The vendored libdeflate: a newer copy must rebuild the addon even if binding.gyp is unchanged.
  ...LIBDEFLATE_SOURCES,
];
const strict = process.env.CI === 'true' || process.env.PORTCULLIS_REQUIRE_NATIVE === '1';

/** Warnings are errors where warnings get fixed (CI, and the sanitizer build); elsewhere a newer compiler's new warning must not cost an operator the native relay. */
const WERROR = '-Werror';

if (process.argv.includes('--sanitize')) process.exit(buildSanitized());
if (process.argv.includes('--clean-prebuilds')) {
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  process.exit(0);
}
const packing = process.argv.includes('--prebuild');

if (process.platform !== 'linux') {
  console.warn(`portcullis: native relay is Linux-only (${process.platform}); tunnels will be relayed in JavaScript`);
  process.exit(0);
}
const fresh = () => outputs.every((out) => existsSync(out) && sources.every((s) => statSync(s).mtimeMs <= statSync(out).mtimeMs));
if (packing) process.exit(buildForPack());
if (fresh()) process.exit(0);
const prebuilt = loadablePrebuilds();
if (prebuilt === true) process.exit(0);
if (prebuilt) console.warn(`portcullis: the prebuilt native addons do not load here (${prebuilt}); building them`);
process.exit(build() ? 0 : strict ? 1 : 0);

/** true when every prebuilt addon loads in this Node; else why not ('' when there are none). */
function loadablePrebuilds() {
  if (!prebuilds.every((p) => existsSync(p))) return '';
  try {
    for (const p of prebuilds) createRequire(import.meta.url)(p);
    return true;
  } catch (err) {
    return String(err instanceof Error ? err.message : err).split('\n')[0];
  }
}

/** npm pack: a fresh build (warnings are errors), copied to prebuilds/ for the tarball. */
function buildForPack() {
  if (!fresh() && !build(true)) return 1;
  mkdirSync(prebuildDir, { recursive: true });
  ADDONS.forEach((_, i) => copyFileSync(outputs[i], prebuilds[i]));
  console.warn(`portcullis: prebuilt addons for the package in ${prebuildDir}`);
  return 0;
}

/** node-gyp rebuild; true when every addon was built. Says why not (and the JS fallbacks) otherwise. */
function build(mustWork = strict) {
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
  // node-gyp's Makefile adds $CFLAGS after binding.gyp's flags (-Wall -Wextra).
  const env = mustWork ? { ...process.env, CFLAGS: `${process.env.CFLAGS ?? ''} ${WERROR}`.trim() } : process.env;
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env });
  if (r.status === 0 && outputs.every((out) => existsSync(out))) return true;
  const why = r.error
    ? r.error.message
    : (r.stderr || '')
        .split('\n')
        .filter((l) => /error|ERR!/.test(l))
        .slice(0, 8)
        .join('\n');
  console.warn(
    `portcullis: could not build the native addons: tunnels will be relayed in JavaScript, and systemd is told of readiness through systemd-notify.\n${why}`,
  );
  return false;
}

/** Node's headers: next to this Node (Debian's nodejs, official tarballs), or where node-gyp keeps them. */
function nodeIncludeDir() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(dirname(process.execPath)), 'include', 'node'),
    join(homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ];
  return candidates.find((d) => d && existsSync(join(d, 'node_api.h')));
}

function buildSanitized() {
  const include = nodeIncludeDir();
  if (!include) {
    console.error('portcullis: no Node headers found (node_api.h) for the sanitizer build; npm ci fetches them with node-gyp');
    return 1;
  }
  const dir = join(root, 'build', 'Sanitize');
  mkdirSync(dir, { recursive: true });
  const cc = process.env.CC || 'cc';
  // The flags of binding.gyp, plus the sanitizers: -O1 -g for readable reports, frame pointers
  // for whole stacks, and any undefined behaviour fatal (a report that lets the test pass is lost).
  // libdeflate is compiled in with its warnings relaxed as in binding.gyp.
  for (const name of ['portcullis_relay', 'portcullis_cef', 'portcullis_json', 'portcullis_deflate']) {
    const vendored = name === 'portcullis_deflate' ? [...LIBDEFLATE_NO_WARN, ...LIBDEFLATE_SOURCES] : [];
    const args = [
      ...['-shared', '-fPIC', '-std=gnu11', '-O1', '-g', '-Wall', '-Wextra', WERROR],
      ...['-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=undefined'],
      ...['-DNAPI_VERSION=8', `-DNODE_GYP_MODULE_NAME=${name}`, '-DBUILDING_NODE_EXTENSION', `-I${include}`],
      ...[join(root, 'native', `${name.replace('portcullis_', '')}.c`), ...vendored, '-o', join(dir, `${name}.node`), '-pthread'],
    ];
    const r = spawnSync(cc, args, { cwd: root, stdio: 'inherit' });
    if (r.error) console.error(`portcullis: ${cc}: ${r.error.message}`);
    if (r.status !== 0) return r.status ?? 1;
  }
  return 0;
}
