// Mapping helpers in the spirit of OCA's `Mapper`, as the Rust and Python
// SDKs have them: direct copies, converters, relations through the
// binder, children (order lines), fields only on create, constants, and on
// export of an update only the fields that changed (OCA's `@changed_by`).
// Records are plain objects, so mappers run under `node --test` natively;
// source fields may be dotted paths (`properties.email`).

import { ConnectorError, Permanent, Retryable } from './errors.js';

export const IMPORT = 'import';
export const EXPORT = 'export';

const MISSING = Symbol('missing');

function get(source, path) {
  let value = source;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !(part in value)) {
      return MISSING;
    }
    value = value[part];
  }
  return value;
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Builds one output record from one source record. */
export class Mapping {
  constructor(source) {
    if (!isObject(source)) {
      throw new Permanent('a record to map must be a JSON object');
    }
    this.source = source;
    this.out = {};
    this.creating = true;
    this.changed = null;
    this.binderImpl = null;
    this.direction = IMPORT;
    this.problem = null;
  }

  /** An update: `onCreate` fields are skipped, and with `changed` only
   * fields whose source (first path segment) changed are mapped. */
  update(changed = null) {
    this.creating = false;
    this.changed = changed == null ? null : new Set(changed);
    return this;
  }

  /** Look relations up through `binder` (`toLocal` / `toExternal`). */
  binder(binder, direction = IMPORT) {
    if (direction !== IMPORT && direction !== EXPORT) {
      throw new TypeError(`direction must be '${IMPORT}' or '${EXPORT}', not '${direction}'`);
    }
    this.binderImpl = binder;
    this.direction = direction;
    return this;
  }

  fail(error) {
    if (this.problem === null) this.problem = error;
  }

  wanted(path) {
    return this.changed === null || this.changed.has(path.split('.')[0]);
  }

  /** Copy `source` to `to` through `f` (absent stays absent). */
  convert(source, to, f) {
    if (!this.wanted(source)) return this;
    const value = get(this.source, source);
    if (value === MISSING) return this;
    try {
      this.out[to] = f(value);
    } catch (e) {
      this.fail(e instanceof ConnectorError ? e : new Permanent(`field ${source}: ${e.message ?? e}`));
    }
    return this;
  }

  direct(source, to) {
    return this.convert(source, to, (v) => v);
  }

  /** Like `direct`, but only when creating. */
  onCreate(source, to) {
    return this.creating ? this.direct(source, to) : this;
  }

  constant(to, value) {
    if (this.creating || this.changed === null) this.out[to] = value;
    return this;
  }

  /** Map an id of a `model` record through the binder. A missing binding
   * is retryable: the related record is not synced yet. */
  relation(source, to, model) {
    if (!this.wanted(source)) return this;
    const value = get(this.source, source);
    if (value === MISSING || value === null || value === '') return this;
    if (this.binderImpl === null) {
      this.fail(new Permanent(`relation ${source}: no binder given to the mapping`));
      return this;
    }
    const key = String(value);
    const found =
      this.direction === IMPORT ? this.binderImpl.toLocal(model, key) : this.binderImpl.toExternal(model, key);
    if (found == null) {
      this.fail(new Retryable(`${model} ${key} is not bound yet`));
    } else {
      this.out[to] = found;
    }
    return this;
  }

  /** Map each element of the list `source` with `child` into `to`. */
  children(source, to, child) {
    if (!this.wanted(source)) return this;
    const items = get(this.source, source);
    if (items === MISSING || items === null) return this;
    if (!Array.isArray(items)) {
      this.fail(new Permanent(`${source} is not a list`));
      return this;
    }
    const mapped = [];
    for (const [i, item] of items.entries()) {
      if (!isObject(item)) {
        this.fail(new Permanent(`${source}[${i}] is not an object`));
        return this;
      }
      const inner = new Mapping(item);
      inner.binderImpl = this.binderImpl;
      inner.direction = this.direction;
      try {
        mapped.push(child(inner).finish());
      } catch (e) {
        if (!(e instanceof ConnectorError)) throw e;
        this.fail(e);
        return this;
      }
    }
    this.out[to] = mapped;
    return this;
  }

  /** The mapped record, or the first error met on the way. */
  finish() {
    if (this.problem !== null) throw this.problem;
    return this.out;
  }
}
