#!/usr/bin/env bash
# CI: the native addons (native/relay.c, native/cef.c, native/json.c, native/deflate.c) under
# AddressSanitizer and UndefinedBehaviorSanitizer. Builds build/Sanitize/portcullis_relay.node,
# portcullis_cef.node, portcullis_json.node and portcullis_deflate.node (with the vendored libdeflate)
# (node native/build.mjs --sanitize; the normal build in build/Release is left as it is), then,
# with those addons:
#  1. the relay and tunnel tests: Node is not built with ASan, so its runtime is preloaded
#     (LD_PRELOAD) into every Node process of the run (vitest's workers, the gateways the tests
#     spawn), and PORTCULLIS_RELAY_ADDON points the loader at the sanitized build. System programs
#     the tests drive (curl) run without the preload (test/helpers/system.ts). Any ASan or UBSan
#     report aborts the process that made it (a crash the tests see) and fails this script.
#  2. the CEF fast path's agreement tests (test/syslog/native-cef.unit.test.ts: corpus, bench
#     lines and generated messages) with PORTCULLIS_CEF_ADDON pointing at the sanitized build.
#  3. the JSON validator's agreement tests (test/forwarder/unit/json-scan.unit.test.ts) with
#     PORTCULLIS_JSON_ADDON pointing at the sanitized build, LeakSanitizer on (as in 4, only a
#     leak json.c allocated itself fails the script).
#  4. the batch gzip's tests (test/forwarder/unit/gzip.unit.test.ts: libdeflate's output inflates
#     back with Node's gunzip, the output limit, its gunzip of one member, bad arguments), the
#     upload decode's (decode.unit.test.ts: libdeflate's inflate against zlib's on bent and
#     lying gzip bodies), the deflate runs' and stitching's
#     (stitch.unit.test.ts: the patched libdeflate's sync-flushed runs), the spool frames' CRC-32
#     (crc32.unit.test.ts: libdeflate's against zlib's) and the pool's build tests (the
#     addon loaded in worker threads, its per-thread state freed as they end) with
#     PORTCULLIS_DEFLATE_ADDON pointing at the sanitized build, LeakSanitizer on as in 3.
#  5. LeakSanitizer on test/sanitize-leaks.mjs, one small process that ends tunnels every way.
#     Not on the test run: Node and V8 free little of what they hold at exit, so LeakSanitizer
#     reports hundreds of allocations per process that are not ours, and scanning a gateway's heap
#     at exit takes it a minute or more (the tests' gateways would be killed first). Those reports
#     cannot be suppressed by pattern (every call into the addon passes through Node's frames), so
#     leaks do not set the exit code (exitcode=0); the script fails on a leak that relay.c or json.c
#     allocated itself (frame #1, right above malloc); for deflate.c, a leak whose stack passes
#     through it (its compressors are allocated inside libdeflate).
# Usage: bash test/sanitize.sh [test files...]   (default: test/relay and the proxy's tunnel tests)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

cc=${CC:-cc}
asan=$("$cc" -print-file-name=libasan.so)
if [ ! -e "$asan" ]; then
  echo "sanitize: the ASan runtime (libasan.so) is missing: apt-get install gcc" >&2
  exit 1
fi
# The normal build first: a node-gyp rebuild starts by deleting build/, Sanitize/ included.
npm run build --silent
node native/build.mjs --sanitize
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

export LD_PRELOAD="$asan"
export PORTCULLIS_RELAY_ADDON="$PWD/build/Sanitize/portcullis_relay.node"
# abort_on_error: a report ends the process at once (a crash the tests see), never a quiet exit 1.
asan_options="abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:log_path=$logs/asan"
# gcc's UBSan runtime, loaded with the addon, reports on stderr whatever log_path says: the report
# aborts the process, so its test fails with the gateway's stderr in the message.
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"

# The run must really use the sanitized addon with both runtimes loaded, or it proves nothing.
ASAN_OPTIONS="$asan_options:detect_leaks=0" node --input-type=module -e "
  const relay = await import('./dist/relay/index.js');
  const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');
  const status = relay.nativeRelayStatus();
  if (!status.available) throw new Error('sanitized relay did not load: ' + status.reason);
  for (const want of [process.env.PORTCULLIS_RELAY_ADDON, 'libasan.so', 'libubsan.so'])
    if (!maps.includes(want)) throw new Error(want + ' is not mapped');
  console.log('sanitize: loaded ' + process.env.PORTCULLIS_RELAY_ADDON + ' with the ASan and UBSan runtimes');
"

status=0
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test/relay test/proxy/connect.test.ts test/proxy/leaks.test.ts)
echo "=== sanitize: ${tests[*]}"
# Node under ASan starts and runs slower (its allocator checks every allocation of Node and V8 too):
# stretch the gateways' start-up wait and the tests' time limits, not the tests' assertions.
PORTCULLIS_TEST_START_WAIT_FACTOR=3 ASAN_OPTIONS="$asan_options:detect_leaks=0" \
  node node_modules/vitest/vitest.mjs run --project integration --testTimeout=90000 --hookTimeout=180000 "${tests[@]}" || status=$?

echo "=== sanitize: the CEF fast path (native/cef.c)"
PORTCULLIS_CEF_ADDON="$PWD/build/Sanitize/portcullis_cef.node" ASAN_OPTIONS="$asan_options:detect_leaks=0" \
  node node_modules/vitest/vitest.mjs run --project unit --testTimeout=120000 test/syslog/native-cef.unit.test.ts || status=$?

echo "=== sanitize: the JSON validator (native/json.c)"
PORTCULLIS_JSON_ADDON="$PWD/build/Sanitize/portcullis_json.node" ASAN_OPTIONS="$asan_options:detect_leaks=1:exitcode=0" \
  node node_modules/vitest/vitest.mjs run --project unit --testTimeout=120000 test/forwarder/unit/json-scan.unit.test.ts || status=$?

echo "=== sanitize: the batch gzip (native/deflate.c, libdeflate)"
PORTCULLIS_DEFLATE_ADDON="$PWD/build/Sanitize/portcullis_deflate.node" ASAN_OPTIONS="$asan_options:detect_leaks=1:exitcode=0" \
  node node_modules/vitest/vitest.mjs run --project unit --testTimeout=120000 test/forwarder/unit/gzip.unit.test.ts test/forwarder/unit/decode.unit.test.ts test/forwarder/unit/stitch.unit.test.ts test/forwarder/unit/crc32.unit.test.ts test/forwarder/unit/pool.unit.test.ts || status=$?

echo "=== sanitize: LeakSanitizer on test/sanitize-leaks.mjs"
ASAN_OPTIONS="$asan_options:detect_leaks=1:exitcode=0" node test/sanitize-leaks.mjs 2>"$logs/leak-run.stderr" || status=$?
cat "$logs/leak-run.stderr" >&2

errors=$(grep -lE 'ERROR: AddressSanitizer|runtime error:' "$logs"/* 2>/dev/null || true)
ours=$(awk '/^(Direct|Indirect) leak of/ { block = $0; mine = 0; next }
  block != "" { block = block "\n" $0; if (($1 == "#1" && $0 ~ /(relay|json)\.c:/) || $0 ~ /native\/deflate\.c:/) mine = 1 }
  /^$/ { if (mine) print block; block = ""; mine = 0 }' "$logs"/asan.* 2>/dev/null || true)
if [ -n "$errors" ]; then
  for f in $errors; do echo "=== $f"; cat "$f"; done
  echo "sanitize: memory errors or undefined behaviour in the native addons (above)" >&2
  status=1
fi
if [ -n "$ours" ]; then
  printf '%s\n' "$ours"
  echo "sanitize: LeakSanitizer found memory that the native addons allocated and never freed (above)" >&2
  status=1
fi
echo "sanitize: ASan/UBSan reports: $([ -n "$errors" ] && echo yes || echo none); addon leaks: $([ -n "$ours" ] && echo yes || echo none); tests exit $status; $(($(date +%s) - start))s"
exit $status
