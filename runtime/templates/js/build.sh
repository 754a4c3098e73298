#!/bin/sh
# Builds {{name}}.wasm with junction-componentize, the JavaScript SDK's
# build command (installed by `npm install`): componentize-js for the
# `connector-http` world, with clocks for the OAuth2 token's expiry, then
# `junction connector inspect` on the result when junction is on PATH (or
# in $JUNCTION).
set -eu
cd "$(dirname "$0")"
exec npx --no-install junction-componentize component.js --wit "${JUNCTION_WIT:-{{wit}}}" \
  --world connector-http --enable clocks -o {{name}}.wasm "$@"
