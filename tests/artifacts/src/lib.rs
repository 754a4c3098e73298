//! Paths of the guest components this crate's build script builds from
//! source: the Rust fixtures in `tests/fixtures/*` (`PROBE`,
//! `MAPPER_ONLY`, `BROKEN_DESCRIBE`, `CRM_MAPPER`), the Python CRM connector
//! (`CRM_PYTHON`), the JavaScript CRM connector (`CRM_JS`) and its mapper
//! alone (`CRM_JS_MAPPER`); and the pinned toolchains it used (`PYTHON`,
//! `NODE_TOOLS`), with which the tests run the Python and JavaScript
//! units' own tests. Tests and
//! benchmarks read the `.wasm` files at these paths; nothing is committed
//! as a binary.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
