//! Subcommands of the `junction` binary that are more than a few lines.

pub mod demo;
