//! The connectors of this repository as component bytes, built from
//! source by this crate's build script (`MAGENTO`, `MAGENTO_LEGACY`,
//! `TRYTON`, and their `_PATH`s). Nothing is committed as a binary.

include!(concat!(env!("OUT_DIR"), "/connectors.rs"));
