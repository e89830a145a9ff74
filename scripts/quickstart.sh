#!/usr/bin/env bash
# Quick start on the embedded default (SQLite + a local data directory): builds
# `kura-server` and `kura`, then runs the whole service in the foreground. On first start
# it makes a CA and certificates, an operator token, a demo tenant with its admin and a
# registration token, and prints them with the commands to go on with. Run it again with
# the same data directory to reuse everything. Ctrl-C stops it.
#
#   scripts/quickstart.sh [DATA_DIR]      (default ~/kura-data)
#   KURA_CUSTOMER_LISTEN=127.0.0.1:8443 KURA_MANAGEMENT_LISTEN=127.0.0.1:9443 (defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kura-target}
data=${1:-$HOME/kura-data}
cargo build --release --locked -p kura-server -p kura
bin="$CARGO_TARGET_DIR/release"
echo "binaries: $bin/kura-server (service) and $bin/kura (agent); add $bin to PATH"
exec "$bin/kura-server" quickstart --data "$data" \
  --customer-listen "${KURA_CUSTOMER_LISTEN:-127.0.0.1:8443}" \
  --management-listen "${KURA_MANAGEMENT_LISTEN:-127.0.0.1:9443}"
