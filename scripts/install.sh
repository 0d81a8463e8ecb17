#!/usr/bin/env bash
# Install, upgrade or remove Portcullis on a Debian or Ubuntu server (RHEL-family: see
# docs/operator-guide.md). Run as root, from the directory holding the npm tarball:
#
#   sudo bash install.sh [--tarball portcullis-X.Y.Z.tgz]   # install, or upgrade (same command)
#   sudo bash install.sh --uninstall [--purge]                # remove (--purge: config, spool, user too)
#
# What it does: checks Node.js (>= 20.18; it downloads nothing), creates the `portcullis` system
# user, installs the tarball with npm under /opt/portcullis (the tarball carries a prebuilt native
# relay: no compiler needed), puts the example config in /etc/portcullis/portcullis.yaml
# (root:portcullis 0640) unless one is there, creates /var/lib/portcullis (the forwarder's spool),
# installs the systemd unit and, where systemd runs, enables and starts it (a re-run restarts
# it on the new version). Where systemd does not run (a container, a chroot) it says how to start
# the gateway by hand. Re-running it is an upgrade: /etc/portcullis is never overwritten.
set -euo pipefail

PREFIX=/opt/portcullis
ETC=/etc/portcullis
STATE=/var/lib/portcullis
UNIT_DIR=/etc/systemd/system
USER_NAME=portcullis
MIN_NODE=20.18.0

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf 'portcullis install: %s\n' "$*"; }
die() {
  printf 'portcullis install: %s\n' "$*" >&2
  exit "${2:-1}"
}

tarball=""
action=install
purge=no
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) tarball=${2:?--tarball needs a file}; shift 2 ;;
    --tarball=*) tarball=${1#*=}; shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) purge=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" 2 ;;
  esac
done

node_help() {
  cat >&2 <<'EOF'
Portcullis needs Node.js 20.18 or later (22 or 24 LTS recommended) and npm. Debian 12's own
`nodejs` package is 18: too old. Either:
  - NodeSource's packages (Debian/Ubuntu):
      curl -fsSL https://deb.nodesource.com/setup_22.x -o nodesource_setup.sh
      bash nodesource_setup.sh && apt-get install -y nodejs
  - or the official binary tarball from https://nodejs.org/en/download (node and npm):
      tar -xJf node-v22.*-linux-x64.tar.xz -C /usr/local --strip-components=1
Then run this script again.
EOF
}

# version_ge A B: A >= B for dotted versions (x.y.z).
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

find_node() {
  node_bin=$(command -v node || true)
  if [ -z "$node_bin" ]; then
    node_help
    die "node not found on PATH" 2
  fi
  node_bin=$(readlink -f "$node_bin")
  local v
  v=$("$node_bin" -p 'process.versions.node' 2>/dev/null || echo 0)
  if ! version_ge "$v" "$MIN_NODE"; then
    node_help
    die "found Node.js $v at $node_bin; need $MIN_NODE or later" 2
  fi
  npm_bin=$(command -v npm || true)
  if [ -z "$npm_bin" ]; then
    node_help
    die "npm not found on PATH (it comes with Node.js from NodeSource or the official tarball)" 2
  fi
  say "Node.js $v ($node_bin)"
}

systemd_running() { [ -d /run/systemd/system ]; }

pick_tarball() {
  if [ -n "$tarball" ]; then
    [ -f "$tarball" ] || die "no such tarball: $tarball"
  else
    local here
    here=$(cd "$(dirname "$0")" && pwd)
    # The newest portcullis-*.tgz next to this script, else in the current directory.
    tarball=$(ls -1t "$here"/portcullis-*.tgz ./portcullis-*.tgz 2>/dev/null | head -n1 || true)
    [ -n "$tarball" ] || die "no portcullis-*.tgz here or next to the script: give one with --tarball FILE"
  fi
  tarball=$(readlink -f "$tarball")
}

package_dir() { echo "$PREFIX/lib/node_modules/portcullis"; }

install_user() {
  getent group "$USER_NAME" >/dev/null || groupadd --system "$USER_NAME"
  if ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --system --gid "$USER_NAME" --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin \
      --comment "Portcullis egress gateway" "$USER_NAME"
    say "created system user $USER_NAME"
  fi
}

install_package() {
  say "installing $(basename "$tarball") under $PREFIX"
  mkdir -p "$PREFIX"
  # -g with --prefix: the package in $PREFIX/lib/node_modules/portcullis, its command in $PREFIX/bin.
  # An upgrade replaces the package the same way.
  npm install --global --prefix "$PREFIX" --omit=dev --no-audit --no-fund --update-notifier=false --loglevel=error "$tarball"
  ln -sfn "$PREFIX/bin/portcullis" /usr/local/bin/portcullis
}

install_config() {
  local pkg
  pkg=$(package_dir)
  install -d -m 0755 -o root -g root "$ETC"
  # The example of this version beside the live file, to compare after an upgrade.
  install -m 0644 -o root -g root "$pkg/config/portcullis.yaml" "$ETC/portcullis.yaml.example"
  if [ -e "$ETC/portcullis.yaml" ]; then
    say "keeping $ETC/portcullis.yaml (this version's example: $ETC/portcullis.yaml.example)"
  else
    install -m 0640 -o root -g "$USER_NAME" "$pkg/config/portcullis.yaml" "$ETC/portcullis.yaml"
    say "wrote $ETC/portcullis.yaml (root:$USER_NAME 0640): edit it, then: systemctl reload portcullis"
  fi
  install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
  # The config must be readable by the service user, and valid for this version.
  if ! (cd / && runuser -u "$USER_NAME" -- "$node_bin" "$pkg/dist/cli/main.js" check-config "$ETC/portcullis.yaml"); then
    die "$ETC/portcullis.yaml does not pass check-config for this version: fix it, then run this script again"
  fi
}

start_command() { echo "$node_bin $(package_dir)/dist/cli/main.js start --config $ETC/portcullis.yaml"; }

install_unit() {
  local pkg
  pkg=$(package_dir)
  # The unit as shipped, with the Node this script found (NodeSource: /usr/bin/node; tarball: /usr/local/bin/node).
  sed -e "s|^ExecStart=/usr/bin/node |ExecStart=$node_bin |" "$pkg/systemd/portcullis.service" >"$UNIT_DIR/portcullis.service.tmp"
  chmod 0644 "$UNIT_DIR/portcullis.service.tmp"
  mv "$UNIT_DIR/portcullis.service.tmp" "$UNIT_DIR/portcullis.service"
  if systemd_running; then
    systemctl daemon-reload
    systemctl enable --quiet portcullis.service
    if systemctl is-active --quiet portcullis.service; then
      say "restarting portcullis.service on the new version (drains first)"
      systemctl restart portcullis.service
    else
      systemctl start portcullis.service
    fi
    # Type=notify: start returned once every listener was bound.
    say "portcullis.service is $(systemctl is-active portcullis.service) and enabled; logs: journalctl -u portcullis -f"
  else
    say "systemd is not running here (container or chroot): the unit is installed but not started. Start the gateway with:"
    echo "  runuser -u $USER_NAME -- $(start_command)"
  fi
}

uninstall() {
  if systemd_running && [ -e "$UNIT_DIR/portcullis.service" ]; then
    systemctl disable --now --quiet portcullis.service || true
  fi
  rm -f "$UNIT_DIR/portcullis.service"
  systemd_running && systemctl daemon-reload
  if [ -L /usr/local/bin/portcullis ] && [ "$(readlink /usr/local/bin/portcullis)" = "$PREFIX/bin/portcullis" ]; then
    rm -f /usr/local/bin/portcullis
  fi
  rm -rf "$PREFIX"
  say "removed the unit and $PREFIX"
  if [ "$purge" = yes ]; then
    rm -rf "$ETC" "$STATE"
    getent passwd "$USER_NAME" >/dev/null && userdel "$USER_NAME"
    getent group "$USER_NAME" >/dev/null && groupdel "$USER_NAME"
    say "purged $ETC, $STATE and the $USER_NAME user"
  else
    say "kept $ETC (config) and $STATE (spool); --purge removes them and the $USER_NAME user"
  fi
}

need_root() { [ "$(id -u)" = 0 ] || die "run as root (sudo bash $0 ...)"; }
if [ "$action" = uninstall ]; then
  need_root
  uninstall
  exit 0
fi
find_node
need_root
pick_tarball
install_user
install_package
install_config
install_unit
