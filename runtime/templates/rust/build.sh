#!/bin/sh
# Builds {{module}}.wasm with cargo (the Rust SDK's build command is plain
# cargo for wasm32-wasip2), then checks it with `junction connector
# inspect` when junction is on PATH (or in $JUNCTION).
set -eu
cd "$(dirname "$0")"
# rustup does not add rust-toolchain.toml's target to a toolchain that is
# already installed.
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 "$@"
wasm="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{module}}.wasm"
junction="${JUNCTION:-$(command -v junction || true)}"
if [ -n "$junction" ]; then
  "$junction" connector inspect "$wasm"
else
  echo "built $wasm; not checked against the contract: put junction on PATH (or set JUNCTION), or run \`junction connector inspect $wasm\`"
fi
