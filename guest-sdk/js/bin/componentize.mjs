#!/usr/bin/env node
// Builds a JavaScript unit into a WebAssembly component with
// componentize-js, offline:
//
//   junction-componentize <entry.js> --wit <dir> --world <world> -o <out.wasm>
//
// componentize-js is called directly (not through `jco componentize`,
// whose 1.35 release cannot read WIT folders) and without `--aot`, which
// would download a compiler. The component gets no WASI features beyond
// what the world imports: a unit has no clock, randomness, stdio or
// `fetch` unless the contract gives it one.

import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { componentize } from '@bytecodealliance/componentize-js';

const usage = 'usage: junction-componentize <entry.js> --wit <dir> --world <world> -o <out.wasm>';

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      wit: { type: 'string' },
      world: { type: 'string' },
      out: { type: 'string', short: 'o' },
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

const started = Date.now();
try {
  const { component } = await componentize({
    sourcePath: resolve(positionals[0]),
    witPath: resolve(values.wit),
    worldName: values.world,
    disableFeatures: ['random', 'stdio', 'clocks', 'http', 'fetch-event'],
  });
  await writeFile(values.out, component);
  console.log(`built ${values.out} (${(component.length / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  console.error(`componentize-js failed on ${positionals[0]} (world ${values.world}): ${e.stack ?? e}`);
  process.exit(1);
}
