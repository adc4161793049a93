#!/usr/bin/env bash
# The Debian package: target/debian/trailwarden_<version>-1_<arch>.deb
#
#   scripts/package-deb.sh           release build (what users install)
#   scripts/package-deb.sh --dev     the binary the test build already made (target/debug),
#                                    for CI's install checks (.ci/package-checks): the same
#                                    files and scripts, without a release build's 10 minutes
#
# The man pages, completions and packaged unit come from `cargo xtask assets`; what goes
# where is [package.metadata.deb] in Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0
cargo xtask assets >/dev/null
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out="target/debian/trailwarden_${version}-1_$(dpkg --print-architecture).deb"
rm -f "$out"
case "${1:-}" in
  "")
    cargo deb --locked --output "$out" ;;
  --dev)
    # The test build's features (tokio's test-util) differ from a plain `cargo build`'s,
    # which would rebuild every dependency: take the binary the tests use, rebuilt if stale.
    cargo test --workspace --locked --no-run --quiet
    cargo deb --locked --profile dev --no-build --output "$out" 2>&1 \
      | grep -v -e 'dev profile is not supported' -e 'To enable debug symbols set' >&2 || true
    [ -s "$out" ] || { echo "package-deb: no $out" >&2; exit 1; } ;;
  *)
    echo "usage: scripts/package-deb.sh [--dev]" >&2; exit 2 ;;
esac
echo "$out"
