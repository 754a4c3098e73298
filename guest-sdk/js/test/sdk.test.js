import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ConfigError,
  ConnectorError,
  EXPORT,
  Mapping,
  NotFound,
  NothingToDo,
  Permanent,
  RateLimited,
  Retryable,
  deleteRemote,
  exportRecord,
  manifest,
} from '../src/index.js';
import { FakeHost } from '../src/testing.js';

test('errors become the contract variant', () => {
  assert.deepEqual(new Retryable('later', 12.7).toWit(), { tag: 'retryable', val: { seconds: 12, message: 'later' } });
  assert.deepEqual(new RateLimited('slow').toWit(), { tag: 'rate-limited', val: { seconds: 60, message: 'slow' } });
  assert.deepEqual(new Permanent('bad').toWit(), { tag: 'permanent', val: 'bad' });
  assert.deepEqual(new NotFound('gone').toWit(), { tag: 'not-found', val: 'gone' });
  assert.deepEqual(new ConfigError('token').toWit(), { tag: 'config', val: 'token' });
  assert.deepEqual(new NothingToDo('same').toWit(), { tag: 'nothing-to-do', val: 'same' });
  assert.throws(() => new ConnectorError('x').toWit(), /use one of its subclasses/);
});

test('direct, convert, constant and dotted paths', () => {
  const out = new Mapping({ a: { b: 2 }, c: 'x' })
    .direct('a.b', 'b')
    .convert('c', 'C', (v) => v.toUpperCase())
    .direct('missing', 'm')
    .constant('k', 1)
    .finish();
  assert.deepEqual(out, { b: 2, C: 'X', k: 1 });
});

test('an update maps only changed fields and skips on-create ones', () => {
  const out = new Mapping({ name: 'n', price: 3, sku: 's' })
    .update(['price'])
    .direct('name', 'name')
    .direct('price', 'price')
    .onCreate('sku', 'sku')
    .constant('k', 1)
    .finish();
  assert.deepEqual(out, { price: 3 });
});

test('a converter that throws names the field', () => {
  const m = new Mapping({ price: 'abc' }).convert('price', 'price', () => {
    throw new TypeError('not a number');
  });
  assert.throws(() => m.finish(), (e) => e instanceof Permanent && e.message === 'field price: not a number');
});

test('relations go through the binder both ways; unbound is retryable', () => {
  const host = new FakeHost();
  host.bind('customer', '7', 'cus-1');
  assert.deepEqual(new Mapping({ c: 7 }).binder(host).relation('c', 'customer_id', 'customer').finish(), {
    customer_id: 'cus-1',
  });
  assert.deepEqual(new Mapping({ c: 'cus-1' }).binder(host, EXPORT).relation('c', 'customer_id', 'customer').finish(), {
    customer_id: '7',
  });
  assert.throws(
    () => new Mapping({ c: 8 }).binder(host).relation('c', 'x', 'customer').finish(),
    (e) => e instanceof Retryable && e.message === 'customer 8 is not bound yet',
  );
  assert.throws(() => new Mapping({ c: 8 }).relation('c', 'x', 'customer').finish(), /no binder given/);
});

test('children map each line with the parent binder', () => {
  const host = new FakeHost();
  host.bind('product', 'p1', 'prod-1');
  const out = new Mapping({ lines: [{ sku: 'p1', qty: 2 }] })
    .binder(host)
    .children('lines', 'lines', (l) => l.relation('sku', 'product_id', 'product').direct('qty', 'quantity'))
    .finish();
  assert.deepEqual(out, { lines: [{ product_id: 'prod-1', quantity: 2 }] });
  assert.throws(() => new Mapping({ lines: 3 }).children('lines', 'l', (l) => l).finish(), /lines is not a list/);
  assert.throws(() => new Mapping({ lines: [1] }).children('lines', 'l', (l) => l).finish(), /lines\[0\] is not an object/);
});

test('a record that is not an object is refused', () => {
  assert.throws(() => new Mapping([1]), Permanent);
});

test('manifests are checked and completed', () => {
  const m = manifest({ name: 'n', version: '1', backendKind: 'k', backendVersions: '>=1', models: { a: ['read'] } });
  assert.deepEqual(m.events, []);
  assert.throws(
    () => manifest({ name: 'n', version: '1', backendKind: 'k', backendVersions: '>=1', models: { a: ['fly'] } }),
    /model a: unknown operations fly/,
  );
  assert.throws(() => manifest({ name: 'n' }), /manifest.version must be a non-empty string/);
});

test('job requests for the synchronizer', () => {
  assert.deepEqual(exportRecord('crm', 'customer', 'cus-1').args, { backend: 'crm', model: 'customer', local_id: 'cus-1' });
  assert.deepEqual(exportRecord('crm', 'customer', 'cus-1', ['email']).args.fields, ['email']);
  assert.equal(deleteRemote('crm', 'customer', 'cus-1').function, 'junction.delete-remote');
});

test('the fake host keeps what a unit did', () => {
  const host = new FakeHost();
  host.setState('k', 'v');
  host.enqueue('f', { a: 1 }, { priority: 5 });
  host.log('info', 'hi');
  assert.equal(host.getState('k'), 'v');
  assert.equal(host.getState('nope'), null);
  assert.deepEqual(host.jobs, [{ function: 'f', args: { a: 1 }, priority: 5 }]);
  assert.deepEqual(host.logs, [['info', 'hi']]);
});
