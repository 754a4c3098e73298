//! Integration tests of the runtime: one binary, one module per area.
//! Guest fixtures come from `tests/fixtures`, built by
//! `junction-test-artifacts`.

mod adoption;
mod api;
mod browser;
mod cache;
mod cli;
mod cluster;
mod connections;
mod crash;
mod egress;
mod events;
mod fairness;
mod hostile;
mod hotswap;
mod inspect;
mod outage;
mod pg_server;
mod polyglot;
mod postgres;
mod queue;
mod repair;
mod resources;
mod sandbox;
mod scaffold;
mod semantics;
mod storage;
mod support;
mod sync;
mod telemetry;
mod tidy;
mod tryton;
mod units;
mod warm;
