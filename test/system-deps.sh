#!/usr/bin/env bash
# System programs the test suite drives for real (curl as a client, Squid as a relay (with
# basic_ncsa_auth, htpasswd entries made by openssl) and a benchmark peer, Prometheus/promtool, HAProxy, Tinyproxy), the toolchain node-gyp needs to
# build the native tunnel relay (g++, make, python3; .ci/run runs this before npm ci), and cppcheck
# for the relay's static analysis (test/static-analysis.sh; gcc's ASan/UBSan runtimes come with g++). Installs the missing ones from
# Debian's packages when it can (root or passwordless sudo); otherwise says what is missing.
# Tests that need a missing binary fail under CI=true and are skipped (loudly) otherwise.
set -u
declare -A pkg_of=( [curl]=curl [squid]=squid [prometheus]=prometheus [promtool]=prometheus [haproxy]=haproxy [tinyproxy]=tinyproxy [g++]=g++ [make]=make [python3]=python3 [systemd-analyze]=systemd [systemd-notify]=systemd [cppcheck]=cppcheck [openssl]=openssl [htpasswd]=apache2-utils [rsyslogd]=rsyslog [logger]=bsdutils )
missing_pkgs=()
for bin in "${!pkg_of[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ]; then
    missing_pkgs+=("${pkg_of[$bin]}")
  fi
done
# Not binaries on PATH: Squid's Basic-auth helper (the relay-proxy tests' corporate relay runs it).
[ -x /usr/lib/squid/basic_ncsa_auth ] || missing_pkgs+=(squid)
# rsyslog's TLS driver and RELP modules are plugins, not binaries (the syslog collector's tests).
compgen -G '/usr/lib/*/rsyslog/lmnsd_gtls.so' >/dev/null || missing_pkgs+=(rsyslog-gnutls)
compgen -G '/usr/lib/*/rsyslog/omrelp.so' >/dev/null || missing_pkgs+=(rsyslog-relp)
[ ${#missing_pkgs[@]} -eq 0 ] && exit 0
pkgs=$(printf '%s\n' "${missing_pkgs[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "system-deps: missing packages: $pkgs (install them: apt-get install $pkgs)" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
echo "system-deps: installing $pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# --no-install-recommends keeps it small; the daemons are run by the tests, not by the init system.
$sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
# Debian starts these services on install; the tests run their own instances on other ports.
for svc in squid tinyproxy prometheus haproxy rsyslog; do
  $sudo systemctl stop "$svc" >/dev/null 2>&1 || $sudo service "$svc" stop >/dev/null 2>&1 || true
done
exit 0
