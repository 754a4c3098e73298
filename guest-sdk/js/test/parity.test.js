// The test double tells the truth: `FakeHost` offers exactly the methods
// and getters of the host a unit gets in the sandbox (`SandboxHost` in
// component.js, read from the source since it imports the component's
// bindings), with the same parameters, so a unit that passes natively
// cannot meet a missing member inside the component. Fields only tests
// touch are listed in `INSPECTION`.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { FakeHost, INSPECTION } from '../src/testing.js';

function sandboxSurface() {
  const source = readFileSync(new URL('../src/component.js', import.meta.url), 'utf8');
  const body = source.split('class SandboxHost {')[1]?.split('\n}\n')[0];
  assert.ok(body, 'SandboxHost not found in component.js');
  const out = {};
  for (const m of body.matchAll(/^ {2}(get )?([A-Za-z]\w*)\(([^)]*)\) \{/gm)) {
    out[m[2]] = m[1] ? 'getter' : `method(${m[3].split(',').map((p) => p.split('=')[0].trim()).filter(Boolean).join(', ')})`;
  }
  return out;
}

function fakeSurface() {
  const host = new FakeHost();
  const out = {};
  for (const name of Object.keys(host)) {
    if (!INSPECTION.includes(name)) out[name] = 'getter';
  }
  for (const name of Object.getOwnPropertyNames(FakeHost.prototype)) {
    if (name === 'constructor') continue;
    const params = FakeHost.prototype[name].toString().match(/^\w+\(([^)]*)\)/)[1];
    out[name] = `method(${params.split(',').map((p) => p.split('=')[0].trim()).filter(Boolean).join(', ')})`;
  }
  return out;
}

test('the fake host has exactly the sandbox host surface', () => {
  const sandbox = sandboxSurface();
  const fake = fakeSurface();
  assert.deepEqual(fake, sandbox);
});

test('inspection fields are the fake host only', () => {
  const sandbox = sandboxSurface();
  const host = new FakeHost();
  for (const name of INSPECTION) {
    assert.ok(name in host, name);
    assert.ok(!(name in sandbox), `${name} is on the real host too`);
  }
});
