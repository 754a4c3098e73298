//! Compiled-artifact cache on disk, keyed by the component's digest and the
//! engine's fingerprint, so a restart does not recompile (components made
//! by componentize-py or -js take seconds to compile).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component got compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileInfo {
    /// Loaded from the cache rather than compiled.
    pub cached: bool,
    /// Time to compile, or to load from the cache.
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: Option<PathBuf>,
    fingerprint: String,
}

impl ArtifactCache {
    /// `dir` of `None` disables the cache.
    pub fn new(engine: &Engine, dir: Option<&Path>) -> std::io::Result<Self> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.map(Path::to_path_buf),
            fingerprint: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{hex}-{}.cwasm", self.fingerprint)))
    }

    /// The cached compiled form of the component whose digest is
    /// `digest`, if there is a usable one (an unusable file is removed).
    pub fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest)?;
        if !path.exists() {
            return None;
        }
        match deserialize(engine, &path) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), %e, "compiled artifact unusable; compiling again");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Load a freshly compiled artifact of `digest` and keep it in the cache.
    pub fn adopt(
        &self,
        engine: &Engine,
        digest: &str,
        artifact: &[u8],
    ) -> wasmtime::Result<Component> {
        let component = from_bytes(engine, artifact)?;
        if let Some(path) = self.path(digest)
            && let Err(e) = store(artifact, &path)
        {
            tracing::warn!(path = %path.display(), %e, "could not write compiled artifact to the cache");
        }
        Ok(component)
    }
}

/// Write to a temporary file and rename, so a crash never leaves a
/// half-written artifact under the final name.
fn store(bytes: &[u8], path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[allow(unsafe_code)]
fn from_bytes(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: the bytes are what `Engine::precompile_component` made of the
    // component just now, in this process or in the compiler child it
    // started (its own executable); wasmtime checks that they were made
    // by a compatible engine and refuses them otherwise.
    unsafe { Component::deserialize(engine, artifact) }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // Mapped, not read: a Python or JavaScript guest compiles to tens of
    // megabytes, and mapping lets the pages load lazily (a restart loads
    // such a component in a few milliseconds instead of copying it all).
    // A mapped file that is truncated or rewritten in place while in use
    // would kill the process; this cache never does either (`store` writes
    // a new file and renames it over the old name, and removing a file
    // leaves existing mappings intact).
    // SAFETY: the file is one this cache wrote with `Component::serialize`
    // from a component whose digest is in its name, in a directory the
    // operator owns; wasmtime checks that it was compiled by a compatible
    // engine and refuses it otherwise (we then recompile).
    unsafe { Component::deserialize_file(engine, path) }
}
