//! The watched folder of `junction serve` (`watch_dir` in junction.toml):
//! dropping a `.wasm` file there installs it and makes it the active
//! version, with the same checks and refusals as `connector install`.
//! A file is taken once its size and modification time have stayed the
//! same for one poll (so a copy still being written is not read), and
//! again only when it changes. At start, files whose component is already
//! installed are left alone: a version the operator rolled back is not
//! re-activated by a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use junction_runtime::sync::Synchronizer;

type Stamp = (u64, SystemTime);

fn wasm_files(dir: &Path) -> Vec<(PathBuf, Stamp)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let modified = meta.modified().ok()?;
            meta.is_file().then(|| (e.path(), (meta.len(), modified)))
        })
        .collect()
}

/// Install one dropped file; a line for the log.
async fn take(sync: &Synchronizer, path: &Path) -> String {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return format!("{}: could not be read: {e}", path.display()),
    };
    match sync.install(&bytes).await {
        Ok(c) => format!(
            "{}: installed and activated {} {} ({})",
            path.display(),
            c.name,
            c.version,
            c.digest
        ),
        Err(e @ junction_runtime::sync::SyncError::NeedsApproval { .. }) => {
            format!("{}: installed, not active: {e}", path.display())
        }
        Err(e) => format!("{}: not installed: {e}", path.display()),
    }
}

/// Watch `dir` every `every` until the task is aborted; lines for the
/// operator go to `report`.
pub fn start(
    dir: PathBuf,
    sync: Arc<Synchronizer>,
    every: Duration,
    report: impl Fn(String) + Send + Sync + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let installed: Vec<String> = match sync.storage().connectors().await {
            Ok(list) => list.into_iter().map(|c| c.digest).collect(),
            Err(e) => {
                report(format!(
                    "watch_dir {}: connectors unreadable: {e}",
                    dir.display()
                ));
                Vec::new()
            }
        };
        // What was taken (or found already installed), and what was seen
        // last poll but not yet stable.
        let mut taken: HashMap<PathBuf, Stamp> = HashMap::new();
        for (path, stamp) in wasm_files(&dir) {
            let digest = std::fs::read(&path)
                .map(|b| junction_runtime::host::digest(&b))
                .unwrap_or_default();
            if installed.contains(&digest) {
                taken.insert(path, stamp);
            }
        }
        let mut pending: HashMap<PathBuf, Stamp> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            for (path, stamp) in wasm_files(&dir) {
                if taken.get(&path) == Some(&stamp) {
                    continue;
                }
                if pending.get(&path) == Some(&stamp) {
                    pending.remove(&path);
                    report(take(&sync, &path).await);
                    taken.insert(path, stamp);
                } else {
                    pending.insert(path, stamp);
                }
            }
        }
    })
}
