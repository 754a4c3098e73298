// Junction's JavaScript guest SDK: connector units (adapter, mapper,
// listener) written in JavaScript and built into WebAssembly components
// with componentize-js, against the WIT contract
// `junction:connector@0.1.2`. This module is the part that runs anywhere;
// `component.js` and `wasi-http.js` exist only inside a component, `node.js`
// only natively.

export * from './errors.js';
export * from './http.js';
export * from './mapping.js';
export * from './oauth.js';
export * from './paging.js';
export * from './units.js';
