#!/bin/sh
# Builds {{name}}.wasm with junction-componentize, the Python SDK's build
# command: it checks the unit against its world before componentize-py
# runs, and the component with `junction connector inspect` after (when
# junction is on PATH or in $JUNCTION).
set -eu
cd "$(dirname "$0")"
exec junction-componentize app -p . --wit "${JUNCTION_WIT:-{{wit}}}" -o {{name}}.wasm "$@"
