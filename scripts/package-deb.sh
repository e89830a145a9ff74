#!/usr/bin/env bash
# Debian packages of the two binaries, made with dpkg-deb alone (no cargo-deb):
#
#   kura-server_VERSION_ARCH.deb  the service: /usr/bin/kura-server, kura-server.service,
#                                 /etc/kura/server.toml (conffile), the system user kura
#   kura_VERSION_ARCH.deb         the agent: /usr/bin/kura, kura-agent.service
#
#   scripts/package-deb.sh [--profile release|dev] [--out DIR] [--no-build] [--no-lintian]
#
# --profile release (default) builds with `cargo build --release --locked` first, unless
# --no-build; --profile dev packages the debug binaries already built (by nextest, say).
# Binaries come from $CARGO_TARGET_DIR (default ~/.cache/kura-target), the packages go to
# --out (default $CARGO_TARGET_DIR/debian). Binaries are stripped; a release build also
# gets kura-server-dbgsym and kura-dbgsym packages with the line tables the release
# profile keeps (/usr/lib/debug/.build-id/, where gdb and Rust backtraces look), and is
# checked with lintian when it is installed (errors fail the build). The version is the
# workspace's (Cargo.toml), the architecture dpkg's. What goes where: docs/packages.md.
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(…) fails the build too
cd "$(dirname "$0")/.."
umask 022

profile=release
out=
build=1
lintian=1
while (($#)); do
  case $1 in
    --profile) profile=${2:?--profile needs release or dev}; shift 2 ;;
    --profile=*) profile=${1#*=}; shift ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --no-build) build=0; shift ;;
    --no-lintian) lintian=0; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kura-target}
case $profile in
  release) bindir=$CARGO_TARGET_DIR/release ;;
  dev) bindir=$CARGO_TARGET_DIR/debug; build=0 ;;
  *) echo "package-deb.sh: --profile is release or dev, not $profile" >&2; exit 2 ;;
esac
out=${out:-$CARGO_TARGET_DIR/debian}

die() { echo "package-deb.sh: $*" >&2; exit 1; }

for tool in dpkg-deb objcopy; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg binutils)"
done

if ((build)); then
  cargo build --release --locked -p kura-server -p kura
fi

version=$(awk '/^\[workspace\.package\]/ { s = 1; next } /^\[/ { s = 0 }
  s && /^version *=/ { gsub(/^[^"]*"|".*$/, ""); print; exit }' Cargo.toml)
[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "no workspace version in Cargo.toml (found '$version')"
arch=$(dpkg --print-architecture)
maintainer=${KURA_DEB_MAINTAINER:-Kura maintainers <kura@example.org>}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
first_year=$(git log --reverse --format=%cd --date=format:%Y 2>/dev/null | sed -n 1p || true)
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
years=${first_year:-$last_year}
[ "$years" = "$last_year" ] || years="$years-$last_year"

for bin in kura kura-server; do
  [ -x "$bindir/$bin" ] || die "$bindir/$bin is missing: build it first (cargo build$([ "$profile" = release ] && echo ' --release') -p kura -p kura-server)"
  # A stale binary of another version would be packaged under the wrong name.
  said=$("$bindir/$bin" --version) || die "$bindir/$bin --version failed"
  [ "$said" = "$bin $version" ] || die "$bindir/$bin says '$said', Cargo.toml says $version: rebuild it"
done

# The packaged server.toml names every key of ServerConfig, no more and no fewer, and
# sets only data_dir: a key added to config.rs must be added (and explained) there too.
config_keys=$(awk '/^pub struct ServerConfig \{/ { s = 1; next } s && /^}/ { exit }
  s && /#\[serde\(.*skip(_deserializing)?[,)]/ { skip = 1 }
  s && /^    pub [a-z0-9_]+:/ { f = $2; sub(/:.*/, "", f); if (!skip) print f; skip = 0 }' \
  crates/kura-server/src/config.rs | sort)
template_keys=$(sed -n 's/^#\{0,1\}\([a-z0-9_]*\) = .*/\1/p' dist/debian/server.toml | sort)
[ -n "$config_keys" ] || die "found no fields of ServerConfig in crates/kura-server/src/config.rs"
if [ "$config_keys" != "$template_keys" ]; then
  missing=$(comm -23 <(echo "$config_keys") <(echo "$template_keys") | tr '\n' ' ')
  unknown=$(comm -13 <(echo "$config_keys") <(echo "$template_keys") | tr '\n' ' ')
  die "dist/debian/server.toml does not match ServerConfig (crates/kura-server/src/config.rs):" \
    "${missing:+keys to add (commented, with meaning and default): $missing}" \
    "${unknown:+keys the server does not know: $unknown}"
fi
if [ "$(grep -c '^[a-z]' dist/debian/server.toml)" != 1 ] || ! grep -qx 'data_dir = "/var/lib/kura"' dist/debian/server.toml; then
  die 'dist/debian/server.toml must set only data_dir = "/var/lib/kura" (every other key commented out)'
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# Depends of a binary: dpkg-shlibdeps (dpkg-dev) when there is one, else libc6 at the
# newest GLIBC_ symbol version the binary uses, else a fixed floor.
shlib_depends() {
  local binary=$1 found
  if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$work/shlibs/debian"
    printf 'Source: kura\n\nPackage: kura\nArchitecture: any\n' >"$work/shlibs/debian/control"
    if found=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e"$binary" 2>/dev/null); then
      found=${found#shlibs:Depends=}
      [ -n "$found" ] && { echo "$found"; return; }
    fi
  fi
  if command -v objdump >/dev/null &&
    found=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1) &&
    [ -n "$found" ]; then
    echo "libc6 (>= $found)"
    return
  fi
  echo "libc6 (>= 2.36)"
}

# The binary without debug information, as dh_strip makes it (build id kept).
strip_into() {
  objcopy --strip-all --remove-section=.comment --remove-section=.note "$1" "$2"
  chmod 0755 "$2"
}

# /usr/share/doc/PKG: copyright, changelog.gz and a README (the project's introduction
# and what the package holds).
doc_files() {
  local pkg=$1 doc="$2/usr/share/doc/$1" about=$3
  install -d -m 0755 "$doc"
  cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Kura
Source: https://example.invalid/kura
Comment: The binary also contains the Rust crates named in the source's Cargo.lock,
 each under its own licence.

Files: *
Copyright: $years the Kura authors
License: AGPL-3.0-only
 This program is free software: you can redistribute it and/or modify it under
 the terms of the GNU Affero General Public License as published by the Free
 Software Foundation, version 3 of the License only.
 .
 This program is distributed in the hope that it will be useful, but WITHOUT ANY
 WARRANTY; without even the implied warranty of MERCHANTABILITY or FITNESS FOR A
 PARTICULAR PURPOSE. See the GNU Affero General Public License for more details.
 .
 The full text of the licence: https://www.gnu.org/licenses/agpl-3.0.txt
EOF
  {
    printf '%s (%s) unstable; urgency=medium\n\n' "$pkg" "$version"
    printf '  * Built from git commit %s (%s profile).\n\n' "$commit" "$profile"
    printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n >"$doc/changelog.gz"
  {
    awk '/^## Quick start/ { exit } { print }' README.md
    printf '## This package\n\n%s\n' "$about"
  } >"$doc/README.md"
}

# Builds one package from the staged tree $work/PKG.
#   build_deb PKG "DEPENDS" "SYNOPSIS" "EXTENDED DESCRIPTION (lines)"
build_deb() {
  local pkg=$1 depends=$2 synopsis=$3 description=$4 root="$work/$1"
  install -d -m 0755 "$root/DEBIAN"
  for script in postinst prerm postrm; do
    if [ -f "dist/debian/$pkg.$script" ]; then
      install -m 0755 "dist/debian/$pkg.$script" "$root/DEBIAN/$script"
    fi
  done
  if [ -d "$root/etc" ]; then
    (cd "$root" && find etc -type f | sed 's|^|/|' | LC_ALL=C sort) >"$root/DEBIAN/conffiles"
  fi
  # md5sums of everything but the conffiles (dpkg keeps those in its status file).
  (cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' |
    LC_ALL=C sort -z | xargs -0 -r md5sum) >"$root/DEBIAN/md5sums"
  {
    echo "Package: $pkg"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $(du -s -k --exclude=DEBIAN "$root" | cut -f1)"
    echo "Depends: $depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Description: $synopsis"
    echo "$description" | sed -e 's/^$/./' -e 's/^/ /'
  } >"$root/DEBIAN/control"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --build --root-owner-group "${compression[@]}" "$root" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
  echo "$out/${pkg}_${version}_${arch}.deb"
}

# The -dbgsym package of a release build: the line tables, found by build id.
build_dbgsym() {
  local pkg=$1 unstripped=$2 root="$work/$1-dbgsym" id
  id=$(readelf -n "$unstripped" 2>/dev/null | awk '/Build ID:/ && !found { print $3; found = 1 }')
  [ -n "$id" ] || { echo "package-deb.sh: $unstripped has no build id: no $pkg-dbgsym" >&2; return; }
  install -d -m 0755 "$root/usr/lib/debug/.build-id/${id:0:2}" "$root/usr/share/doc"
  objcopy --only-keep-debug --compress-debug-sections "$unstripped" \
    "$root/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
  chmod 0644 "$root/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
  ln -s "$pkg" "$root/usr/share/doc/$pkg-dbgsym"
  install -d -m 0755 "$root/DEBIAN"
  (cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 -r md5sum) >"$root/DEBIAN/md5sums"
  cat >"$root/DEBIAN/control" <<EOF
Package: $pkg-dbgsym
Source: kura
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -s -k --exclude=DEBIAN "$root" | cut -f1)
Depends: $pkg (= $version)
Section: debug
Priority: optional
Description: debug symbols for $pkg
Auto-Built-Package: debug-symbols
Build-Ids: $id
EOF
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --build --root-owner-group -Zxz "$root" "$out/$pkg-dbgsym_${version}_${arch}.deb" >/dev/null
  echo "$out/$pkg-dbgsym_${version}_${arch}.deb"
}

# A release build strips and splits copies, so that a build finishing meanwhile cannot
# give the package and its -dbgsym different binaries.
src=$bindir
if [ "$profile" = release ]; then
  src=$work/unstripped
  mkdir -p "$src"
  cp "$bindir/kura" "$bindir/kura-server" "$src/"
fi

# Debug binaries are large even stripped; a test does not wait for xz.
if [ "$profile" = release ]; then compression=(-Zxz); else compression=(-Zgzip -z1); fi
built=()

# kura-server
root=$work/kura-server
install -d -m 0755 "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/kura"
strip_into "$src/kura-server" "$root/usr/bin/kura-server"
install -m 0644 dist/systemd/kura-server.service "$root/lib/systemd/system/kura-server.service"
grep -qx 'ExecStart=/usr/bin/kura-server serve --config /etc/kura/server.toml' \
  "$root/lib/systemd/system/kura-server.service" ||
  die "dist/systemd/kura-server.service no longer runs /usr/bin/kura-server with /etc/kura/server.toml"
# Secrets may be added to it: never world-readable, not even before postinst gives it
# to group kura.
install -m 0640 dist/debian/server.toml "$root/etc/kura/server.toml"
install -D -m 0644 dist/debian/kura-server.lintian-overrides "$root/usr/share/lintian/overrides/kura-server"
doc_files kura-server "$root" "$(
  cat <<'EOF'
kura-server: the service, as /usr/bin/kura-server, run by kura-server.service as the
system user `kura` (created by the package). Configuration: /etc/kura/server.toml (every
key with its default, commented out). Data: /var/lib/kura (mode 0700), kept when the
package is purged. Start it with `systemctl enable --now kura-server`; the first
operator token is then in /var/lib/kura/operator-token (`sudo -u kura cat` it).
EOF
)"
built+=("$(build_deb kura-server \
  "$(shlib_depends "$root/usr/bin/kura-server"), adduser" \
  "Kura multi-tenant backup service (server)" \
  "Kura backs up whole disk images and file trees from customers' servers
into deduplicated, compressed, optionally client-side encrypted vaults.

This package is the service: the customer listener (agents and the
portal), the management listener (operator API and console, metrics,
health) and the background jobs, run by systemd as the unprivileged user
kura with its data in /var/lib/kura.")")

# kura (the agent)
root=$work/kura
install -d -m 0755 "$root/usr/bin" "$root/lib/systemd/system"
strip_into "$src/kura" "$root/usr/bin/kura"
# The unit as dist/systemd has it, with two changes: the packaged binary, and a state
# directory of its own, so that the agent (root) and kura-server never share
# /var/lib/kura (systemd would hand the tree back and forth between root and kura).
sed -e 's|^ExecStart=/usr/local/bin/kura |ExecStart=/usr/bin/kura |' \
  -e 's|^StateDirectory=kura$|StateDirectory=kura-agent|' \
  -e '0,/^\[Unit\]/s|^\[Unit\]|# Packaged (kura.deb): /usr/bin/kura, state in /var/lib/kura-agent.\n[Unit]|' \
  dist/systemd/kura-agent.service >"$root/lib/systemd/system/kura-agent.service"
chmod 0644 "$root/lib/systemd/system/kura-agent.service"
if ! grep -q '^ExecStart=/usr/bin/kura agent run ' "$root/lib/systemd/system/kura-agent.service" ||
  ! grep -qx 'StateDirectory=kura-agent' "$root/lib/systemd/system/kura-agent.service"; then
  die "dist/systemd/kura-agent.service changed: update the ExecStart=/StateDirectory= edits in package-deb.sh"
fi
doc_files kura "$root" "$(
  cat <<'EOF'
kura: the agent and command line, as /usr/bin/kura, and kura-agent.service, the daemon
that runs this machine's protection plans (as root; state in /var/lib/kura-agent). The
agent's configuration, /etc/kura/agent.toml, is written by `kura --config
/etc/kura/agent.toml register --server URL --token TOKEN` (mode 0600: it holds the
machine's credential); then `systemctl enable --now kura-agent`. A purge keeps it.
EOF
)"
built+=("$(build_deb kura \
  "$(shlib_depends "$root/usr/bin/kura")" \
  "agent and command line of the Kura backup service" \
  "Kura backs up whole disk images and file trees into deduplicated,
compressed, optionally client-side encrypted vaults, local or on a Kura
server.

This package is the agent: the kura command (backup, restore, browse,
retention, check and repair, on a local vault or the server this machine
is registered with) and kura-agent.service, the daemon that runs the
machine's protection plans on schedule.")")

if [ "$profile" = release ]; then
  for bin in kura-server kura; do
    dbgsym=$(build_dbgsym "$bin" "$src/$bin")
    if [ -n "$dbgsym" ]; then built+=("$dbgsym"); fi
  done
fi

printf '%s\n' "${built[@]}"

if [ "$profile" = release ] && ((lintian)); then
  if command -v lintian >/dev/null; then
    lintian --fail-on error "${built[@]}" ||
      die "lintian found errors (above)"
  else
    echo "package-deb.sh: lintian is not installed: packages not checked" >&2
  fi
fi
