//! The component host: loads connector components, checks them against the
//! contract, and runs each call in a fresh sandboxed instance.
//!
//! - [`Host`] owns the engine, the linker and the compiled-artifact cache;
//! - [`Unit`] is one loaded component, ready to instantiate (`InstancePre`);
//! - `call` runs one export under the call's limits and returns a
//!   [`CallReport`] with the result, the log and the HTTP audit;
//! - `pool` keeps instances warm between successful calls of a backend.

mod cache;
mod call;
pub mod compile;
mod convert;
mod engine;
mod optional;
mod pool;

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

use crate::capabilities::{bindings, stdio, store};

pub use cache::CompileInfo;
pub use call::CallReport;
pub use engine::HostConfig;
pub use stdio::{LogLevel, LogLine, LogSource};

use bindings::{adapter, describe, features, listener, lookup, mapper, tasks, webhooks};
use store::CallState;

/// The contract package and version this host speaks. Components built
/// against an older version of the same compatible line (semver as Cargo
/// reads it: `0.1.x` for 0.1, `1.x` for 1) keep working: the contract only
/// grows within a line, under `@since` gates, and wasmtime links a
/// component's `…@0.1.0` imports and exports to this version's.
pub const CONTRACT_PACKAGE: &str = "junction:connector";
pub const CONTRACT_VERSION: &str = "0.1.2";

/// Why a file could not be loaded as a connector component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "not a WebAssembly file: it starts with {found} instead of the \\0asm magic; pass the .wasm a wasm32-wasip2 build produced"
    )]
    NotWasm { found: String },
    #[error(
        "this is a core WebAssembly module, not a component; build the connector for wasm32-wasip2 (or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("unsupported WebAssembly binary (version/layer bytes {found}); expected a component")]
    UnsupportedBinary { found: String },
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(transparent)]
    Compile(#[from] compile::CompileError),
    #[error(
        "the component is {size} bytes, over the limit of {limit} bytes; it was not compiled \
         (raise max_component_bytes in junction.toml if it is trusted and this large)"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("the component exports none of the {CONTRACT_PACKAGE} interfaces (it exports: {}); implement the adapter-unit, mapper-unit or connector world from wit/", if .exports.is_empty() { "nothing".to_string() } else { .exports.join(", ") })]
    NoContract { exports: Vec<String> },
    #[error(
        "the component implements {CONTRACT_PACKAGE} version {found}, which this runtime (contract {CONTRACT_VERSION}) cannot run: {why}"
    )]
    UnknownContractVersion { found: String, why: &'static str },
    #[error(
        "the component does not export {CONTRACT_PACKAGE}/{interface}@{CONTRACT_VERSION}: {hint}"
    )]
    MissingExport {
        interface: &'static str,
        hint: &'static str,
    },
    #[error(
        "the export {CONTRACT_PACKAGE}/{interface}@{CONTRACT_VERSION} does not match the contract: {message}"
    )]
    WrongShape {
        interface: &'static str,
        message: String,
    },
    #[error("the component needs an import the sandbox does not provide: {0}")]
    UnsatisfiedImport(String),
}

/// The engine, linker and cache shared by all calls.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    linker: Linker<CallState>,
    cache: cache::ArtifactCache,
    config: HostConfig,
    /// One permit per pooling-allocator instance slot that calls may use:
    /// `max_instances` less those idle warm instances may hold.
    slots: tokio::sync::Semaphore,
    /// Warm instances idle across all units.
    idle: Arc<std::sync::atomic::AtomicUsize>,
    /// One compilation at a time: each may take seconds and much memory.
    compiling: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// The host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot configure the wasmtime engine: {0}")]
    Engine(String),
    #[error("cannot use the artifact cache at {path}: {source}")]
    Cache {
        path: String,
        source: std::io::Error,
    },
}

/// A component's identity: `sha256:` and the hex of its bytes' digest, as
/// stored, pinned and shown everywhere.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Host {
    pub fn new(config: HostConfig) -> Result<Host, HostError> {
        let engine = engine::engine(&config).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let linker = engine::linker(&engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let cache =
            cache::ArtifactCache::new(&engine, config.cache_dir.as_deref()).map_err(|source| {
                HostError::Cache {
                    path: config
                        .cache_dir
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    source,
                }
            })?;
        if config.max_invocations == 0 {
            return Err(HostError::Engine(
                "max_invocations must be at least 1 (1 means a fresh instance for every call)"
                    .into(),
            ));
        }
        engine::start_ticker(&engine, config.epoch_tick);
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                linker,
                cache,
                slots: tokio::sync::Semaphore::new(
                    (config.max_instances - config.idle_cap()) as usize,
                ),
                idle: Default::default(),
                compiling: tokio::sync::Semaphore::new(1),
                config,
            }),
        })
    }

    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// The wasmtime engine guests run on (its pooling allocator, epochs and
    /// fuel as `HostConfig` set them): for measuring bare wasmtime beside
    /// Junction on equal terms, as the calls benchmark does.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// The compiled form of `bytes`: from the cache, or compiled one at a
    /// time, off the async workers, within the compile bounds
    /// (`compile`).
    async fn compiled(
        &self,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, CompileInfo), LoadError> {
        let started = std::time::Instant::now();
        let inner = &self.inner;
        let cached = |component| {
            Ok((
                component,
                CompileInfo {
                    cached: true,
                    duration: started.elapsed(),
                },
            ))
        };
        if let Some(component) = inner.cache.load(&inner.engine, digest) {
            return cached(component);
        }
        let _permit = inner
            .compiling
            .acquire()
            .await
            .map_err(|e| LoadError::Invalid(e.to_string()))?;
        // Another load may have compiled it while this one waited.
        if let Some(component) = inner.cache.load(&inner.engine, digest) {
            return cached(component);
        }
        let (engine, config, owned) = (inner.engine.clone(), inner.config.clone(), bytes.to_vec());
        let artifact =
            tokio::task::spawn_blocking(move || compile::compile(&engine, &config, &owned))
                .await
                .map_err(|e| LoadError::Invalid(format!("the compiler thread failed: {e}")))?
                .map_err(|e| {
                    match e {
                        compile::CompileError::Memory { .. } => {
                            crate::metrics::global().compile_refused("memory")
                        }
                        compile::CompileError::Time { .. } => {
                            crate::metrics::global().compile_refused("time")
                        }
                        _ => {}
                    }
                    LoadError::Compile(e)
                })?;
        let component = inner
            .cache
            .adopt(&inner.engine, digest, &artifact)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        Ok((
            component,
            CompileInfo {
                cached: false,
                duration: started.elapsed(),
            },
        ))
    }

    /// Load a component from a file.
    pub async fn load_file(&self, path: &Path) -> Result<Unit, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.load(&bytes).await
    }

    /// Check `bytes` against the contract and prepare it for calls. The
    /// component is instantiated once in a sandbox so that an export whose
    /// functions have the wrong types is refused here, not at its first call.
    pub async fn load(&self, bytes: &[u8]) -> Result<Unit, LoadError> {
        let limit = self.inner.config.max_component_bytes;
        if bytes.len() > limit {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        check_header(bytes)?;
        let digest = digest(bytes);
        let (component, compile) = self.compiled(&digest, bytes).await?;
        let exports = contract_exports(&self.inner.engine, &component)?;
        let pre: InstancePre<CallState> = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::UnsatisfiedImport(format!("{e:#}")))?;
        let shape = |interface: &'static str| {
            move |e: wasmtime::Error| LoadError::WrongShape {
                interface,
                message: format!("{e:#}"),
            }
        };
        let indices = Indices {
            describe: describe::GuestIndices::new(&pre).map_err(shape("describe"))?,
            adapter: exports
                .adapter
                .then(|| adapter::GuestIndices::new(&pre))
                .transpose()
                .map_err(shape("adapter"))?,
            mapper: exports
                .mapper
                .then(|| mapper::GuestIndices::new(&pre))
                .transpose()
                .map_err(shape("mapper"))?,
            listener: exports
                .listener
                .then(|| listener::GuestIndices::new(&pre))
                .transpose()
                .map_err(shape("listener"))?,
            features: exports
                .features
                .then(|| features::GuestIndices::new(&pre))
                .transpose()
                .map_err(shape("features"))?,
            lookup: exports
                .lookup
                .then(|| lookup::GuestIndices::new(&pre))
                .transpose()
                .map_err(shape("lookup"))?,
            webhooks: exports
                .webhooks
                .then(|| webhooks::GuestIndices::new(&pre))
                .transpose()
                .map_err(shape("webhooks"))?,
            tasks: exports
                .tasks
                .then(|| tasks::GuestIndices::new(&pre))
                .transpose()
                .map_err(shape("tasks"))?,
        };
        let unit = Unit {
            inner: Arc::new(UnitInner {
                host: self.clone(),
                digest,
                size: bytes.len(),
                exports,
                compile,
                pre,
                indices,
                instantiations: std::sync::atomic::AtomicU64::new(0),
                features: tokio::sync::OnceCell::new(),
                warm: pool::WarmPool::new(
                    self.inner.idle.clone(),
                    self.inner.config.idle_cap() as usize,
                    self.inner.config.max_invocations,
                ),
            }),
        };
        unit.typecheck().await?;
        Ok(unit)
    }
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let found = bytes
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(LoadError::NotWasm {
            found: if found.is_empty() {
                "nothing (empty file)".to_string()
            } else {
                found
            },
        });
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Err(LoadError::CoreModule),
        [_, _, 1, 0] => Ok(()),
        _ => Err(LoadError::UnsupportedBinary {
            found: bytes[4..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

/// Which contract interfaces a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exports {
    pub adapter: bool,
    pub mapper: bool,
    pub listener: bool,
    /// The optional exports of `full-connector` (contract 0.1.2): a
    /// component has them all or none (`features` says which it offers).
    pub features: bool,
    pub lookup: bool,
    pub webhooks: bool,
    pub tasks: bool,
}

impl Exports {
    /// The smallest world of `wit/worlds.wit` the component implements.
    pub fn world(&self) -> &'static str {
        match (self.adapter, self.mapper, self.listener) {
            (true, true, true) if self.features => "full-connector",
            (true, true, true) => "connector",
            (true, true, false) => "adapter-unit + mapper-unit",
            (true, false, _) => "adapter-unit",
            (false, true, _) => "mapper-unit",
            (false, false, _) => "none",
        }
    }
}

fn contract_exports(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<Exports, LoadError> {
    let names: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let prefix = format!("{CONTRACT_PACKAGE}/");
    let mut found = std::collections::BTreeSet::new();
    for name in &names {
        if let Some(rest) = name.strip_prefix(&prefix) {
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if let Err(why) = contract_compatible(version) {
                return Err(LoadError::UnknownContractVersion {
                    found: if version.is_empty() {
                        "(unversioned)".to_string()
                    } else {
                        version.to_string()
                    },
                    why,
                });
            }
            found.insert(interface.to_string());
        }
    }
    if found.is_empty() {
        return Err(LoadError::NoContract { exports: names });
    }
    if !found.contains("describe") {
        return Err(LoadError::MissingExport {
            interface: "describe",
            hint: "every unit exports describe so the host can read its manifest",
        });
    }
    let exports = Exports {
        adapter: found.contains("adapter"),
        mapper: found.contains("mapper"),
        listener: found.contains("listener"),
        features: found.contains("features"),
        lookup: found.contains("lookup"),
        webhooks: found.contains("webhooks"),
        tasks: found.contains("tasks"),
    };
    if !exports.adapter && !exports.mapper {
        return Err(LoadError::MissingExport {
            interface: "adapter",
            hint: "a unit exports adapter, mapper, or both",
        });
    }
    Ok(exports)
}

/// Whether a component built against contract `version` runs on this
/// host: the same compatible line and not newer; otherwise what to do.
pub fn contract_compatible(version: &str) -> Result<(), &'static str> {
    let ours = semver::Version::parse(CONTRACT_VERSION).expect("CONTRACT_VERSION is semver");
    let Ok(theirs) = semver::Version::parse(version) else {
        return Err("its version is not semver; build it against wit/ of a junction release");
    };
    let line = |v: &semver::Version| {
        if v.major > 0 {
            (v.major, 0)
        } else {
            (0, v.minor)
        }
    };
    if !theirs.pre.is_empty() || line(&theirs) != line(&ours) {
        return Err(
            "it is from another compatible line of the contract; rebuild it against wit/ of this release",
        );
    }
    if theirs > ours {
        return Err(
            "it was built against a newer contract; upgrade junction, or build it against wit/ of this release",
        );
    }
    Ok(())
}

struct Indices {
    describe: describe::GuestIndices,
    adapter: Option<adapter::GuestIndices>,
    mapper: Option<mapper::GuestIndices>,
    listener: Option<listener::GuestIndices>,
    features: Option<features::GuestIndices>,
    lookup: Option<lookup::GuestIndices>,
    webhooks: Option<webhooks::GuestIndices>,
    tasks: Option<tasks::GuestIndices>,
}

/// A loaded component: checked against the contract, compiled, and ready
/// to instantiate a fresh sandbox per call. Cheap to clone.
#[derive(Clone)]
pub struct Unit {
    inner: Arc<UnitInner>,
}

struct UnitInner {
    host: Host,
    digest: String,
    size: usize,
    exports: Exports,
    compile: CompileInfo,
    pre: InstancePre<CallState>,
    indices: Indices,
    warm: pool::WarmPool,
    /// Fresh instances made (calls not served by a warm one).
    instantiations: std::sync::atomic::AtomicU64,
    /// What `features` declared, asked once (it is the same on every call).
    features: tokio::sync::OnceCell<crate::features::Features>,
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit")
            .field("digest", &self.inner.digest)
            .field("world", &self.inner.exports.world())
            .finish()
    }
}

impl Unit {
    /// `sha256:<hex>` of the component's bytes: what pins a version.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    pub fn size(&self) -> usize {
        self.inner.size
    }

    pub fn exports(&self) -> Exports {
        self.inner.exports
    }

    pub fn compile_info(&self) -> CompileInfo {
        self.inner.compile
    }

    /// Fresh instances made so far: the calls no warm instance served.
    pub fn instantiations(&self) -> u64 {
        self.inner
            .instantiations
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Instances of this unit kept warm for its next calls.
    pub fn warm_instances(&self) -> usize {
        self.inner.warm.len()
    }
}
