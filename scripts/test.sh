#!/usr/bin/env bash
# Runs every test of the workspace: unit, property and integration tests (the latter
# drive the real `kura` binary). Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kura-target}
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
# Tests that inspect extended attributes and sparse files need these tools' libraries only;
# nothing else to install yet.
cargo nextest run --workspace --locked --no-fail-fast "$@"
