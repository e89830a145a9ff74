#!/usr/bin/env bash
# A one-node Garage (S3-compatible object store) on loopback, for tests and trials of
# vaults in S3. Idempotent: installs garage if missing, writes a config once, starts the
# daemon unless it runs, lays out the one-node cluster, creates a key and a bucket, and
# prints the settings as shell lines, so that
#
#   eval "$(scripts/garage.sh)"        # exports KURA_TEST_S3_ENDPOINT, _REGION, _BUCKET,
#                                      # _ACCESS_KEY, _SECRET_KEY
#   scripts/garage.sh status           # exit 0 when this directory's Garage runs
#   scripts/garage.sh stop             # stops the daemon (data kept)
#   scripts/garage.sh purge            # stops it and deletes its directory
#
# Settings (environment): GARAGE_DIR (~/.cache/kura-garage: config, metadata, data, log,
# pid), GARAGE_S3_PORT (3900), GARAGE_RPC_PORT (3901), GARAGE_ADMIN_PORT (3903),
# GARAGE_BUCKET (kura-test). Everything listens on 127.0.0.1 only.
#
# Installing: `cargo install garage --locked` builds it into ~/.cargo/bin once (about
# 8-15 minutes on 2 cores; later runs reuse the binary). Its build directory is
# deleted afterwards: it is large and only the binary is needed.
set -euo pipefail

dir=${GARAGE_DIR:-$HOME/.cache/kura-garage}
s3_port=${GARAGE_S3_PORT:-3900}
rpc_port=${GARAGE_RPC_PORT:-3901}
admin_port=${GARAGE_ADMIN_PORT:-3903}
bucket=${GARAGE_BUCKET:-kura-test}
key_name=kura-test
config="$dir/garage.toml"
pidfile="$dir/garage.pid"
export PATH="$HOME/.cargo/bin:$PATH"

say() { echo "garage.sh: $*" >&2; }
die() { say "$*"; exit 1; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

stop() {
  if running; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 50); do running || break; sleep 0.2; done
    say "stopped"
  fi
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) ;;
  status) running; exit ;;
  stop) stop; exit 0 ;;
  purge) stop; rm -rf "$dir"; exit 0 ;;
  *) die "usage: $0 [start|status|stop|purge]" ;;
esac

if ! command -v garage >/dev/null; then
  say "installing garage with cargo (once; about 8-15 minutes on 2 cores) ..."
  build="$HOME/.cache/garage-build"
  CARGO_TARGET_DIR="$build" cargo install garage --locked --quiet >&2
  rm -rf "$build"
fi
garage=$(command -v garage)

mkdir -p "$dir/meta" "$dir/data"
chmod 700 "$dir"
if [ ! -f "$config" ]; then
  # The RPC secret and admin token are made once per directory and stay in the config
  # (mode 0600): the node identity in meta/ must keep meeting the same secret.
  umask 077
  cat >"$config" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$(openssl rand -hex 32)"
TOML
fi

g() { "$garage" -c "$config" "$@"; }

if ! running; then
  # Something else on our S3 port would take our requests: refuse rather than mix up.
  if (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; then
    die "port $s3_port is in use by another process; set GARAGE_S3_PORT (and GARAGE_DIR) for a second Garage"
  fi
  RUST_LOG=${RUST_LOG:-warn} nohup "$garage" -c "$config" server >>"$dir/garage.log" 2>&1 &
  echo $! >"$pidfile"
  say "started (pid $(cat "$pidfile"), log $dir/garage.log)"
fi

ready=
for _ in $(seq 100); do
  if g status >/dev/null 2>&1; then ready=1; break; fi
  running || die "garage exited; see $dir/garage.log"
  sleep 0.2
done
[ -n "$ready" ] || die "garage did not answer within 20 s; see $dir/garage.log"

# One node with one role; the layout is applied once (version 1).
if g status 2>/dev/null | grep -q "NO ROLE ASSIGNED"; then
  node=$(g node id -q | cut -d@ -f1)
  g layout assign -z dc1 -c 1G "$node" >/dev/null
  g layout apply --version 1 >/dev/null
  say "cluster layout applied"
fi

if ! g key info "$key_name" >/dev/null 2>&1; then
  g key create "$key_name" >/dev/null
fi
if ! g bucket info "$bucket" >/dev/null 2>&1; then
  for _ in $(seq 50); do
    g bucket create "$bucket" >/dev/null 2>&1 && break
    sleep 0.2 # the new layout takes a moment to be in force
  done
  g bucket info "$bucket" >/dev/null 2>&1 || die "cannot create bucket $bucket; see $dir/garage.log"
fi
g bucket allow --read --write --owner "$bucket" --key "$key_name" >/dev/null

key_id=$(g key info "$key_name" --key-id)
secret=$(g key info "$key_name" --secret-key)
[ -n "$key_id" ] && [ -n "$secret" ] || die "cannot read the key of $key_name from 'garage key info'"

# The S3 API answers once the bucket is usable.
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break
  sleep 0.2
done

cat <<ENV
export KURA_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export KURA_TEST_S3_REGION=garage
export KURA_TEST_S3_BUCKET=$bucket
export KURA_TEST_S3_ACCESS_KEY=$key_id
export KURA_TEST_S3_SECRET_KEY=$secret
ENV
