#!/usr/bin/env bash
# The Debian packages, installed on this machine: builds them from the dev binaries
# (scripts/package-deb.sh --profile dev), installs both with dpkg -i, starts the service
# as systemd would (user kura, umask 077, the packaged configuration with free ports on
# loopback) and checks what the packages promise: the account, modes and owners, the
# units, the conffile, /healthz, the first operator steps of docs/packages.md, every
# commented default of server.toml. Then it purges both and checks that the data in
# /var/lib/kura was kept and that a new install serves it again, and leaves the machine
# as it found it (also on failure, and after an interrupted run).
#
#   tests/packages/deb.sh          (as root; binaries from $CARGO_TARGET_DIR/debug)
#
# It refuses to run where Kura is installed or a user kura, /var/lib/kura or /etc/kura
# exist that an earlier run of this test did not make.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kura-target}

started=$SECONDS
name=tests/packages/deb.sh
data=/var/lib/kura
# Exists while this test owns the user kura, /var/lib/kura and the packages.
marker=/var/tmp/kura-packages-test.owned
work=
server_pid=

say() { echo "$name: $*"; }
fail() {
  echo "$name: FAILED: $*" >&2
  exit 1
}

if [ "$(id -u)" != 0 ]; then
  echo "FAIL $name: must run as root (it installs packages)" >&2
  exit 1
fi

# One run at a time on a machine.
exec 9>/var/lock/kura-packages-test.lock
flock -w 120 9 || {
  echo "FAIL $name: another run holds /var/lock/kura-packages-test.lock" >&2
  exit 1
}

installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qvx 'not-installed'; }

# Stops the server started below as systemd would: SIGTERM to kura-server itself (not to
# runuser, which would answer it by killing its child and then itself), SIGKILL to both
# if it does not end within 15 s. Fails unless the server exited with 0.
stop_server() {
  [ -n "$server_pid" ] || return 0
  local pids rc=0
  pids="$server_pid $(pgrep -P "$server_pid" -x kura-server || true)"
  # shellcheck disable=SC2086 # a list of process ids
  kill -TERM ${pids#"$server_pid"} 2>/dev/null || kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    # shellcheck disable=SC2086 # a list of process ids
    kill -KILL $pids 2>/dev/null || true
    rc=1
  fi
  wait "$server_pid" 2>/dev/null || rc=$?
  server_pid=
  return "$rc"
}

# Puts the machine back as it was: no packages, no user, no data, no marker.
restore_machine() {
  local pkg pids
  # A server an interrupted run left behind (the user kura is this test's own).
  if getent passwd kura >/dev/null && pids=$(pgrep -u kura); then
    # shellcheck disable=SC2086 # a list of process ids
    kill -TERM $pids 2>/dev/null || true
    sleep 2
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
  for pkg in kura-server kura; do
    if installed "$pkg"; then
      dpkg --purge "$pkg" >/dev/null 2>&1 || echo "$name: could not purge $pkg" >&2
    fi
  done
  rm -rf "$data"
  getent passwd kura >/dev/null && userdel kura
  getent group kura >/dev/null && groupdel kura
  rm -f "$marker"
}

finish() {
  local rc=$?
  set +e
  stop_server >/dev/null 2>&1
  if [ -e "$marker" ]; then
    restore_machine
  fi
  if ((rc)) && [ -n "$work" ] && [ -s "$work/server.log" ]; then
    echo "--- last lines of the server's log:" >&2
    tail -n 20 "$work/server.log" >&2
  fi
  [ -n "$work" ] && rm -rf "$work"
  if ((rc)); then
    echo "FAIL $name ($((SECONDS - started))s)"
  else
    echo "PASS $name ($((SECONDS - started))s)"
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM HUP

if [ -e "$marker" ]; then
  say "cleaning up after an interrupted run"
  restore_machine
  rm -rf /tmp/kura-packages-test.*
fi
for pkg in kura-server kura; do
  if installed "$pkg"; then fail "$pkg is installed on this machine: not touching it"; fi
done
if getent passwd kura >/dev/null || getent group kura >/dev/null; then
  fail "a user or group kura exists on this machine: not touching it"
fi
for path in "$data" /etc/kura; do
  if [ -e "$path" ]; then fail "$path exists on this machine: not touching it"; fi
done

for tool in dpkg-deb curl python3 runuser flock pgrep; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done

work=$(mktemp -d /tmp/kura-packages-test.XXXXXX)
chmod 0755 "$work" # the server (user kura) reads its configuration below it
scripts/package-deb.sh --profile dev --out "$work/debs" >"$work/package.log" 2>&1 ||
  { cat "$work/package.log" >&2; fail "scripts/package-deb.sh --profile dev failed"; }
version=$(sed -n 's/^kura \(.*\)$/\1/p' <<<"$("$CARGO_TARGET_DIR/debug/kura" --version)")
arch=$(dpkg --print-architecture)
server_deb=$work/debs/kura-server_${version}_${arch}.deb
agent_deb=$work/debs/kura_${version}_${arch}.deb
if [ ! -f "$server_deb" ] || [ ! -f "$agent_deb" ]; then
  fail "no $server_deb and $agent_deb: $(ls "$work/debs")"
fi
say "built $(basename "$server_deb") and $(basename "$agent_deb") ($((SECONDS - started))s)"

touch "$marker"
dpkg -i "$server_deb" "$agent_deb" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "dpkg -i failed"; }
say "installed"

# --- What dpkg knows ------------------------------------------------------------------
for pkg in kura-server kura; do
  dpkg -s "$pkg" | grep -qx 'Status: install ok installed' || fail "dpkg -s $pkg: not installed"
  dpkg -s "$pkg" | grep -q '^Depends: .*libc6 (>= ' || fail "dpkg -s $pkg: Depends names no libc6"
done
dpkg -s kura-server | grep -q '^Depends: .*adduser' || fail "kura-server does not depend on adduser"
for path in /usr/bin/kura-server /lib/systemd/system/kura-server.service /etc/kura/server.toml \
  /usr/share/doc/kura-server/copyright; do
  dpkg -L kura-server | grep -qx "$path" || fail "dpkg -L kura-server lists no $path"
done
for path in /usr/bin/kura /lib/systemd/system/kura-agent.service /usr/share/doc/kura/copyright; do
  dpkg -L kura | grep -qx "$path" || fail "dpkg -L kura lists no $path"
done
dpkg-query -W -f='${Conffiles}\n' kura-server | grep -q '^ /etc/kura/server.toml ' ||
  fail "/etc/kura/server.toml is not a conffile of kura-server"
grep -q 'AGPL-3.0-only' /usr/share/doc/kura-server/copyright || fail "the copyright does not name AGPL-3.0-only"
cmp -s dist/systemd/kura-server.service /lib/systemd/system/kura-server.service ||
  fail "the installed kura-server.service is not dist/systemd's"
# shellcheck disable=SC2016 # systemd expands it
grep -qxF 'ExecStart=/usr/bin/kura agent run --config /etc/kura/agent.toml --state-dir ${STATE_DIRECTORY}' \
  /lib/systemd/system/kura-agent.service || fail "kura-agent.service does not run /usr/bin/kura"
say "ok - dpkg -s, dpkg -L, conffile, Depends, copyright, units"

# --- What postinst made ---------------------------------------------------------------
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd kura) || fail "no user kura"
((uid < 1000)) || fail "user kura is not a system user (uid $uid)"
[ "$home" = "$data" ] || fail "user kura's home is $home, not $data"
case $shell in */nologin | */false) ;; *) fail "user kura has a login shell ($shell)" ;; esac
getent group kura >/dev/null || fail "no group kura"
[ "$(stat -c '%U:%G %a' "$data")" = "kura:kura 700" ] || fail "$data is $(stat -c '%U:%G %a' "$data")"
[ "$(stat -c '%U:%G %a' /etc/kura/server.toml)" = "root:kura 640" ] ||
  fail "/etc/kura/server.toml is $(stat -c '%U:%G %a' /etc/kura/server.toml)"
[ "$(/usr/bin/kura --version)" = "kura $version" ] || fail "/usr/bin/kura --version: $(/usr/bin/kura --version)"
[ "$(/usr/bin/kura-server --version)" = "kura-server $version" ] ||
  fail "/usr/bin/kura-server --version: $(/usr/bin/kura-server --version)"
say "ok - user kura (uid $uid), $data kura:kura 0700, server.toml root:kura 0640, --version"

if command -v systemd-analyze >/dev/null; then
  for unit in kura-server kura-agent; do
    # Any word from it fails: an unknown or misspelt directive is only a warning to
    # systemd, which then runs the service without it.
    if ! systemd-analyze verify "/lib/systemd/system/$unit.service" >"$work/verify.log" 2>&1 ||
      [ -s "$work/verify.log" ]; then
      cat "$work/verify.log" >&2
      fail "systemd-analyze verify $unit.service"
    fi
  done
  say "ok - systemd-analyze verify kura-server.service kura-agent.service"
else
  say "SKIP - systemd-analyze verify: systemd-analyze is not installed"
fi

# --- The service, started as systemd would --------------------------------------------
read -r customer_port management_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
management=https://127.0.0.1:$management_port
ca=$data/tls/ca.pem

# A copy of the installed configuration, only the two listeners changed (free ports, so
# that tests running beside this one do not collide), readable as the unit's would be.
install -d -m 0750 -o root -g kura "$work/conf"
config=$work/conf/server.toml
sed -e "s|^#customer_listen = .*|customer_listen = \"127.0.0.1:$customer_port\"|" \
  -e "s|^#management_listen = .*|management_listen = \"127.0.0.1:$management_port\"|" \
  /etc/kura/server.toml >"$config"
[ "$(grep -c '^[a-z]' "$config")" = 3 ] || fail "the configuration copy sets $(grep '^[a-z]' "$config")"
# Every other key uncommented: the defaults the file shows must be what the server takes
# (all but the files the server would read: TLS, the metrics token, the passphrase).
sed -E -e '/^#(tls_cert|tls_key|metrics_token_file|metadata_backup_passphrase_file) = /!s/^#([a-z0-9_]+ = )/\1/' "$config" >"$work/conf/all-keys.toml"
[ "$(grep -c '^#[a-z0-9_]* = ' "$work/conf/all-keys.toml")" = 4 ] ||
  fail "expected 4 keys left commented out, got: $(grep '^#[a-z0-9_]* = ' "$work/conf/all-keys.toml")"
chown root:kura "$config" "$work/conf/all-keys.toml"
chmod 0640 "$config" "$work/conf/all-keys.toml"

start_server() { # CONFIG
  (
    umask 077
    exec runuser -u kura -- /usr/bin/kura-server serve --config "$1" 9>&- # not the lock
  ) >>"$work/server.log" 2>&1 &
  server_pid=$!
  local code=
  for _ in $(seq 300); do
    kill -0 "$server_pid" 2>/dev/null || fail "kura-server exited at start"
    if [ -f "$ca" ] &&
      code=$(curl -sS -o "$work/healthz.json" -w '%{http_code}' --cacert "$ca" "$management/healthz" 2>/dev/null) &&
      [ "$code" = 200 ]; then
      grep -q '"status": *"ok"' "$work/healthz.json" || fail "/healthz: $(cat "$work/healthz.json")"
      return 0
    fi
    sleep 0.1
  done
  fail "no 200 from $management/healthz within 30 s (last: ${code:-no answer})"
}

start_server "$config"
say "ok - kura-server serve (user kura, umask 077): $management/healthz 200 with the generated CA"

# First steps, as docs/packages.md gives them.
token=$(runuser -u kura -- cat "$data/operator-token") || fail "user kura cannot read $data/operator-token"
[ -n "$token" ] || fail "$data/operator-token is empty"
KURA_OPERATOR_TOKEN=$token /usr/bin/kura-server tenant list --management-url "$management" --ca-cert "$ca" \
  >"$work/tenants.txt" 2>&1 || { cat "$work/tenants.txt" >&2; fail "kura-server tenant list with the operator token"; }
(umask 077 && runuser -u kura -- /usr/bin/kura-server operator create --config "$config" \
  --login first.admin --role operator-admin) >"$work/operator.txt" 2>&1 ||
  { cat "$work/operator.txt" >&2; fail "kura-server operator create as user kura"; }
grep -q 'one-time password' "$work/operator.txt" || fail "operator create printed no one-time password"
say "ok - operator token read as kura, tenant list with KURA_OPERATOR_TOKEN, operator create"

# Everything the service wrote: owned by kura, for kura alone.
loose=$(find "$data" \( ! -user kura -o ! -group kura -o \( -type d ! -perm 0700 \) -o \
  \( -type f ! -perm 0600 \) -o \( ! -type d ! -type f \) \) -printf '%p %u:%g %m\n')
[ -z "$loose" ] || fail "under $data, not kura:kura 0700/0600: $loose"
say "ok - $(find "$data" | wc -l) paths under $data: kura:kura, directories 0700, files 0600"

stop_server || fail "kura-server did not stop cleanly on SIGTERM (see its log)"
say "ok - stopped by SIGTERM"

start_server "$work/conf/all-keys.toml"
stop_server || fail "kura-server (every default uncommented) did not stop cleanly"
say "ok - every default in server.toml uncommented: the server takes them"

# --- An upgrade keeps a changed configuration and the data ---------------------------
echo '# changed by tests/packages/deb.sh' >>/etc/kura/server.toml
dpkg-deb -R "$server_deb" "$work/upgrade"
sed -i "s/^Version: .*/Version: $version+upgrade1/" "$work/upgrade/DEBIAN/control"
dpkg-deb --build --root-owner-group -Zgzip -z1 "$work/upgrade" "$work/upgrade.deb" >/dev/null
dpkg -i "$work/upgrade.deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "the upgrade failed"; }
[ "$(dpkg-query -W -f='${Version}' kura-server)" = "$version+upgrade1" ] || fail "the upgrade did not happen"
grep -qx '# changed by tests/packages/deb.sh' /etc/kura/server.toml || fail "the upgrade lost the changed server.toml"
[ "$(stat -c '%U:%G %a' /etc/kura/server.toml)" = "root:kura 640" ] ||
  fail "after the upgrade /etc/kura/server.toml is $(stat -c '%U:%G %a' /etc/kura/server.toml)"
[ "$(cat "$data/operator-token")" = "$token" ] || fail "the upgrade changed $data"
if compgen -G '/etc/kura/server.toml.dpkg-*' >/dev/null; then fail "the upgrade left $(compgen -G '/etc/kura/server.toml.dpkg-*')"; fi
say "ok - upgraded to $version+upgrade1: the changed server.toml and the data kept"

# --- Purge: binaries go, data stays ---------------------------------------------------
dpkg --purge kura-server kura >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
grep -q "$data .*KEPT" "$work/purge.log" || { cat "$work/purge.log" >&2; fail "purge did not say that $data is kept"; }
for pkg in kura-server kura; do
  if installed "$pkg"; then fail "$pkg is still installed after the purge"; fi
done
for path in /usr/bin/kura /usr/bin/kura-server /lib/systemd/system/kura-server.service \
  /lib/systemd/system/kura-agent.service /etc/kura /usr/share/doc/kura-server /usr/share/doc/kura; do
  if [ -e "$path" ]; then fail "$path is still there after the purge"; fi
done
if getent passwd kura >/dev/null || getent group kura >/dev/null; then fail "user or group kura left after the purge"; fi
if compgen -G '/var/lib/systemd/deb-systemd-helper-*/*kura*' >/dev/null; then
  fail "deb-systemd-helper state left: $(compgen -G '/var/lib/systemd/deb-systemd-helper-*/*kura*')"
fi
for path in "$data/service.db" "$data/operator-token" "$data/tls/ca.pem"; do
  [ -f "$path" ] || fail "$path is gone after the purge: the data must be kept"
done
say "ok - purged: binaries, units, configuration, user and group gone; $data kept"

# --- A new install serves the kept data -----------------------------------------------
# As if the purged account's number had gone to another account meanwhile: the kept
# files belong to an id the new user kura will not get.
for orphan in $(seq 64000 64999); do
  getent passwd "$orphan" >/dev/null || getent group "$orphan" >/dev/null || break
done
chown -R -h "$orphan:$orphan" "$data"
dpkg -i "$server_deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -i again failed"; }
loose=$(find "$data" \( ! -user kura -o ! -group kura \) -printf '%p %u:%g\n')
[ -z "$loose" ] || fail "the kept data was not given to the new user kura: $loose"
chgrp kura "$work/conf" "$config"
start_server "$config"
KURA_OPERATOR_TOKEN=$token /usr/bin/kura-server tenant list --management-url "$management" --ca-cert "$ca" \
  >"$work/tenants.txt" 2>&1 || { cat "$work/tenants.txt" >&2; fail "the kept operator token no longer works"; }
stop_server || fail "kura-server did not stop cleanly"
dpkg --purge kura-server >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge again failed"; }
say "ok - installed again: the kept data is the new user's, the old operator token works"

restore_machine
say "machine restored: no kura packages, user, group, $data or /etc/kura"
