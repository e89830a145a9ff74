#!/usr/bin/env bash
# Checks every dependency against the RustSec advisory database, offline.
# The database is the copy in ../shared/advisory-db (these machines cannot fetch it);
# cargo-deny wants it as a git checkout in the folder named after its default URL.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${KURA_ADVISORY_DB:-../shared/advisory-db}
db="$HOME/.cache/kura-advisory-db/advisory-db-3157b0e258782691"
if [ ! -d "$src/crates" ]; then
  echo "advisory database not found at $src" >&2
  exit 1
fi
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked
stamp=$(find "$src" -type f -newer "$db/.git/HEAD" 2>/dev/null | head -1 || true)
if [ ! -d "$db/.git" ] || [ -n "$stamp" ]; then
  rm -rf "$db"
  mkdir -p "$db"
  cp -r "$src/crates" "$src/rust" "$db/"
  git -C "$db" init -q
  git -C "$db" add -A
  git -C "$db" -c user.name=kura -c user.email=kura@localhost commit -qm "RustSec advisory database snapshot"
fi
cargo fetch --locked >/dev/null
cargo deny --offline check advisories
