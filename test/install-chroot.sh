#!/usr/bin/env bash
# Manual check (not CI: debootstrap takes minutes): docs/operator-guide.md's install steps, as
# written, in a clean Debian 12 chroot without a compiler, ending with the gateway answering
# /healthz and /readyz; then the upgrade (a re-run keeps the config) and the uninstall.
#
#   bash test/install-chroot.sh portcullis-X.Y.Z.tgz [NODE_BINARY]     (as root; npm pack makes the tarball)
#
# The chroot is made once (debootstrap --variant=minbase bookworm + curl) and kept in
# $CHROOT_CACHE (default /tmp/portcullis-bookworm.pristine); each run works on a fresh copy.
# Node (>= 20.18) is placed as the official tarball places it: /usr/local/bin/node with npm in
# /usr/local/lib/node_modules/npm (copied from this machine's npm). Systemd does not run in a
# chroot: the script must say so, and the gateway is started with the command it prints, as the
# portcullis user, on the default ports 8080 and 9464 (which must be free here).
set -euo pipefail
tarball=$(readlink -f "${1:?usage: install-chroot.sh portcullis-X.Y.Z.tgz [node]}")
node_bin=$(readlink -f "${2:-$(command -v node)}")
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${CHROOT_CACHE:-/tmp/portcullis-bookworm.pristine}
root=$(mktemp -d /tmp/portcullis-chroot.XXXXXX)

if [ ! -d "$cache" ]; then
  command -v debootstrap >/dev/null || apt-get install -y --no-install-recommends debootstrap
  debootstrap --variant=minbase bookworm "$cache" http://deb.debian.org/debian
  cp /etc/resolv.conf "$cache/etc/resolv.conf"
  chroot "$cache" apt-get install -y --no-install-recommends curl ca-certificates
fi
cp -a "$cache/." "$root/"
cleanup() {
  [ -n "${gw:-}" ] && kill -TERM "$gw" 2>/dev/null || true
  umount "$root/proc" 2>/dev/null || true
  # Never remove a tree with /proc still mounted in it.
  grep -q " $root/proc " /proc/mounts || rm -rf "$root" "$root.gw.log"
}
trap cleanup EXIT
mount -t proc proc "$root/proc"

# Node as the official tarball installs it; the tarball and the script in /root.
install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules" && cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
cp "$tarball" "$root/root/"
tar -xzf "$tarball" -C "$root/root" --strip-components=2 package/scripts/install.sh
# This machine's CA bundle, for a TLS-intercepting proxy between npm and the registry (if any).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt /bin/bash -c "$1"; }

echo "== no compiler in the chroot:"; in_root 'command -v cc gcc g++ make python3 || echo none'
echo "== install (the guide: sudo bash install.sh)"
out=$(in_root 'cd /root && bash install.sh' 2>&1) || { echo "$out"; exit 1; }
echo "$out"
start=$(echo "$out" | grep -A1 'systemd is not running' | tail -n1 | sed 's/^ *//')
[ -n "$start" ] || { echo "FAIL: the script did not print a start command"; exit 1; }
in_root 'ls -l /etc/portcullis /var/lib | grep -E "portcullis"; id portcullis'

echo "== start, as printed: $start"
# chroot itself in the background (not through in_root, a function: $! would be its subshell),
# exec'd down to runuser, which passes SIGTERM on to the gateway and waits for it.
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "cd / && exec $start" >"$root.gw.log" 2>&1 &
gw=$!
for _ in $(seq 1 120); do
  [ "$(in_root 'curl -s -o /dev/null -w %{http_code} http://127.0.0.1:9464/readyz' || true)" = 200 ] && break
  sleep 1
done
[ "$(in_root 'curl -s -o /dev/null -w %{http_code} http://127.0.0.1:9464/readyz' || true)" = 200 ] || {
  echo "FAIL: not ready; the gateway's output:"
  tail -n 20 "$root.gw.log"
  exit 1
}
echo "healthz: $(in_root 'curl -fsS http://127.0.0.1:9464/healthz')"
echo "readyz:  $(in_root 'curl -sS http://127.0.0.1:9464/readyz')"
grep -o '"relay":"[a-z]*"' "$root.gw.log" | head -n1
in_root 'portcullis info'
kill -TERM "$gw"; wait "$gw" || true; gw=""
grep -q '"msg":"stopped"' "$root.gw.log" && echo "drained and stopped on SIGTERM"

echo "== upgrade (re-run): keeps the config"
in_root 'echo "# mine" >> /etc/portcullis/portcullis.yaml && cd /root && bash install.sh' | grep -E 'keeping|installing'
in_root 'tail -n1 /etc/portcullis/portcullis.yaml'
echo "== uninstall, then --purge"
in_root 'cd /root && bash install.sh --uninstall && ls /etc/portcullis /var/lib/portcullis >/dev/null && echo "config and spool kept"'
in_root 'cd /root && bash install.sh --uninstall --purge && ! id portcullis 2>/dev/null && ! ls /etc/portcullis 2>/dev/null && echo "purged"'
echo "OK"
