#!/usr/bin/env bash
# CI: static analysis of the native addons (native/relay.c, native/cef.c, native/json.c, native/deflate.c, native/notify.c) with cppcheck, which Debian ships
# (test/system-deps.sh installs it). Warnings, style, performance and portability checks, against
# the running Node's headers, so N-API types and macros are what the compiler sees. A finding
# fails CI; a false positive is suppressed inline in relay.c with the reason next to it.
# (The compiler's own -Wall -Wextra -Werror runs in CI's build: native/build.mjs.)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cppcheck >/dev/null 2>&1; then
  echo "static-analysis: cppcheck is missing (bash test/system-deps.sh installs it)" >&2
  exit 1
fi
include=""
for dir in "${npm_config_nodedir:+$npm_config_nodedir/include/node}" "$(dirname "$(dirname "$(command -v node)")")/include/node" "$HOME/.cache/node-gyp/$(node -p process.versions.node)/include/node"; do
  if [ -n "$dir" ] && [ -f "$dir/node_api.h" ]; then include=$dir; break; fi
done
[ -n "$include" ] || { echo "static-analysis: no Node headers (node_api.h) found" >&2; exit 1; }
echo "static-analysis: $(cppcheck --version) on native/relay.c, native/cef.c, native/json.c, native/deflate.c and native/notify.c (not the vendored libdeflate)"
# Findings in Node's own headers are not ours to fix (and are not reported: only relay.c is checked).
cppcheck --quiet --error-exitcode=1 --inline-suppr --std=c11 \
  --enable=warning,style,performance,portability \
  --suppress=missingIncludeSystem --suppress="*:$include/*" \
  -I "$include" -D__linux__ -D__x86_64__ -DNAPI_VERSION=8 -DNODE_GYP_MODULE_NAME=portcullis_relay \
  --suppress="*:native/vendor/*" -I native/vendor/libdeflate \
  native/relay.c native/cef.c native/json.c native/deflate.c native/notify.c
echo "static-analysis: no findings"
