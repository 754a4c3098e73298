#!/usr/bin/env node
// Builds a JavaScript unit into a WebAssembly component with
// componentize-js, offline:
//
//   junction-componentize <entry.js> --wit <dir> --world <world> [--enable clocks] -o <out.wasm> [--no-inspect]
//
// After building, `junction connector inspect` (found on PATH or in
// $JUNCTION) checks the component the way the host will at install:
// world, exports and manifest; a component it refuses is deleted and the
// command fails with the reason.
//
// componentize-js is called directly (not through `jco componentize`,
// whose 1.35 release cannot read WIT folders) and without `--aot`, which
// would download a compiler. The component gets no WASI features beyond
// what the world imports and what `--enable` names: a unit has no clock,
// randomness or stdio unless asked for (an adapter keeping OAuth2 tokens
// wants `clocks` for `Date.now()`). HTTP goes through the SDK's
// `wasi-http.js` on the world's `wasi:http/outgoing-handler`, never
// through `fetch`, whose promises a synchronous export cannot wait for.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { componentize } from '@bytecodealliance/componentize-js';

const FEATURES = ['random', 'stdio', 'clocks', 'http', 'fetch-event'];
const usage = `usage: junction-componentize <entry.js> --wit <dir> --world <world> [--enable <${FEATURES.join('|')}>]... -o <out.wasm> [--no-inspect]`;

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      wit: { type: 'string' },
      world: { type: 'string' },
      out: { type: 'string', short: 'o' },
      enable: { type: 'string', multiple: true, default: [] },
      'no-inspect': { type: 'boolean', default: false },
    },
  });
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}
const { values, positionals } = parsed;
if (positionals.length !== 1 || !values.wit || !values.world || !values.out) {
  console.error(usage);
  process.exit(2);
}
const unknown = values.enable.filter((f) => !FEATURES.includes(f));
if (unknown.length > 0) {
  console.error(`unknown feature ${unknown.join(', ')}: --enable takes ${FEATURES.join(', ')}`);
  process.exit(2);
}

const started = Date.now();
try {
  const { component } = await componentize({
    sourcePath: resolve(positionals[0]),
    witPath: resolve(values.wit),
    worldName: values.world,
    disableFeatures: FEATURES.filter((f) => !values.enable.includes(f)),
  });
  await writeFile(values.out, component);
  console.log(`built ${values.out} (${(component.length / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  console.error(`componentize-js failed on ${positionals[0]} (world ${values.world}): ${e.stack ?? e}`);
  process.exit(1);
}

/** `junction` from $JUNCTION or PATH, or null. */
function junction() {
  if (process.env.JUNCTION) return process.env.JUNCTION;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'junction'))) return join(dir, 'junction');
  }
  return null;
}

if (!values['no-inspect']) {
  const cli = junction();
  if (cli === null) {
    console.log(`not checked against the contract: put junction on PATH (or set JUNCTION), or run \`junction connector inspect ${values.out}\``);
  } else {
    const done = spawnSync(cli, ['connector', 'inspect', values.out], { encoding: 'utf8' });
    if (done.status !== 0) {
      // What the host would refuse at install is not left behind.
      await rm(values.out, { force: true });
      console.error(`error: the built component fails \`junction connector inspect\`: ${(done.stderr || done.error?.message || '').trim()}`);
      process.exit(1);
    }
    process.stdout.write(done.stdout);
  }
}
