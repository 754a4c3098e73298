//! Compiled-artifact cache on disk, keyed by the component's digest and the
//! engine's fingerprint, so a restart does not recompile (components made
//! by componentize-py or -js take seconds to compile).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

    /// Load the compiled form of `bytes` (whose sha256 is `digest`), or
    /// compile it and store the result.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CompileInfo)> {
        let started = Instant::now();
        let path = self.path(digest);
        if let Some(path) = &path
            && path.exists()
        {
            match deserialize(engine, path) {
                Ok(component) => {
                    return Ok((
                        component,
                        CompileInfo {
                            cached: true,
                            duration: started.elapsed(),
                        },
                    ));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), %e, "compiled artifact unusable; compiling again");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        let info = CompileInfo {
            cached: false,
            duration: started.elapsed(),
        };
        if let Some(path) = &path
            && let Err(e) = store(&component, path)
        {
            tracing::warn!(path = %path.display(), %e, "could not write compiled artifact to the cache");
        }
        Ok((component, info))
    }
}

/// Write to a temporary file and rename, so a crash never leaves a
/// half-written artifact under the final name.
fn store(component: &Component, path: &Path) -> wasmtime::Result<()> {
    let bytes = component.serialize()?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
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
