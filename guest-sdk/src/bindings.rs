//! wit-bindgen's output for the contract's `full-connector` world. Connector
//! authors never touch it: [`crate::export!`] wires their trait impls to it
//! and [`crate::types`] converts its records to serde values.

#![allow(unsafe_code, missing_docs, clippy::all)]

wit_bindgen::generate!({
    path: "../wit",
    world: "full-connector",
    pub_export_macro: true,
    export_macro_name: "__export_connector",
    default_bindings_module: "junction_guest::bindings",
});
