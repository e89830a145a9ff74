#!/usr/bin/env bash
# Runs every test of the workspace: unit, property and integration tests (the latter
# drive the real `kura` binary and a real `kura-server` over TLS). Database tests run on
# SQLite and on PostgreSQL at 127.0.0.1:5432 (database `test`, override with
# KURA_TEST_POSTGRES_URL); vaults in S3 against a one-node Garage on loopback
# (scripts/garage.sh; or any S3 given as KURA_TEST_S3_*). Installs and starts what it
# needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kura-target}
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked

# Image tests build disks with sfdisk, mkfs.ext4, mkswap and qemu-img; the package test
# strips binaries with objcopy and asks the installed service with curl.
missing=()
for tool in sfdisk:fdisk mkfs.ext4:e2fsprogs mkswap:util-linux qemu-img:qemu-utils objcopy:binutils curl:curl; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The portal is tested in a real browser: Debian's chromium (with a Japanese font, so
# screenshots show the Japanese pages) driven by playwright-core, with axe-core.
browser_missing=()
command -v chromium >/dev/null || browser_missing+=(chromium)
command -v node >/dev/null || browser_missing+=(nodejs npm)
fc-list 2>/dev/null | grep -qi "noto sans cjk" || browser_missing+=(fonts-noto-cjk)
if ((${#browser_missing[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${browser_missing[@]}" >/dev/null
fi
if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/axe-core ]; then
  npm ci --prefix tests/e2e --no-audit --no-fund >/dev/null
fi

# The monitoring tests scrape the server with a real Prometheus and check dist/prometheus
# with promtool (both in Debian's prometheus package).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi

# The password-reset test delivers mail to a real SMTP server on loopback.
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install -q aiosmtpd

# PostgreSQL: running already on machines of this kind; start it if it is not.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  service postgresql start >/dev/null 2>&1 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi

# S3: Garage on loopback, unless an S3 store is given already. The first run on a machine
# builds garage into ~/.cargo/bin (cargo install, 8-15 min on 2 cores; reused afterwards).
# KURA_TEST_GARAGE=skip does without: the S3 tests then say loudly that they did not run.
if [ -z "${KURA_TEST_S3_ENDPOINT:-}" ] && [ "${KURA_TEST_GARAGE:-}" != skip ]; then
  if ! scripts/garage.sh status; then
    trap 'scripts/garage.sh stop' EXIT # leave no daemon behind that this run started
  fi
  if s3_env=$(scripts/garage.sh); then
    eval "$s3_env"
  else
    echo "WARNING: Garage did not start (see above): the S3 tests will NOT run" >&2
  fi
fi

# Compile-fail proofs (a handler cannot make a tenant scope) are doc tests, which nextest
# does not run.
cargo test --doc --locked -p kura-service
cargo nextest run --workspace --locked --no-fail-fast "$@"

# The Debian packages (scripts/package-deb.sh) from the debug binaries nextest just built:
# installed on this machine, started, upgraded and purged; the machine is left as it was.
# Needs root; only on a full run (a filtered one may not have built both binaries).
if [ "$#" -eq 0 ] && [ "$(id -u)" = 0 ]; then
  tests/packages/deb.sh
else
  echo "WARNING: the Debian package test (tests/packages/deb.sh) did NOT run (needs root and a full run)" >&2
fi
