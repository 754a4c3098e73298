//! Paths of the guest components built from `tests/fixtures/*` by this
//! crate's build script, one constant per fixture (`PROBE`, `MAPPER_ONLY`,
//! `BROKEN_DESCRIBE`). Tests and benchmarks read the `.wasm` files at these
//! paths; nothing is committed as a binary.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
