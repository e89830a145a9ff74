#!/usr/bin/env bash
# Quick start on the embedded default: builds `kura`, creates an encrypted vault in a
# local directory, backs up a folder, lists snapshots, restores, verifies — and prints
# the commands to go on with. Safe to run again (it reuses the vault).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kura-target}
src=${1:-/usr/share/doc}
demo=${KURA_DEMO_DIR:-$HOME/kura-demo}
cargo build --release --locked -p kura
kura="$CARGO_TARGET_DIR/release/kura"
export KURA_REPO="$demo/vault"
export KURA_PASSWORD=${KURA_PASSWORD:-demo-passphrase}
mkdir -p "$demo"
if [ ! -e "$KURA_REPO/catalog.db" ]; then
  "$kura" init --encrypt
fi
"$kura" backup "$src"
"$kura" snapshots
rm -rf "$demo/restore"
"$kura" restore latest --target "$demo/restore"
diff -r "$src" "$demo/restore$src" >/dev/null && echo "restore matches $src"
"$kura" check
cat <<TXT

Kura works. Go on with:
  export KURA_REPO=$KURA_REPO KURA_PASSWORD=...    # or --repo / a prompt
  $kura backup DIR... [--exclude GLOB]          # again: unchanged files are not read
  $kura ls latest $src
  $kura restore latest --target DIR [--include PATH]
  $kura forget --keep-daily 7 --keep-weekly 4 --prune
  $kura check --read-data
  $kura --help
TXT
