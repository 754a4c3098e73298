//! A connector's lifecycle on this node: install (load, validate the
//! manifest against the exports), activate, roll back, remove, and the
//! preflight that refuses a version asking for more than the operator
//! granted. Each step bumps the registry so every node re-resolves.

use std::sync::Arc;

use crate::capabilities::CallContext;
use crate::limits::SandboxLimits;
use crate::model::Manifest;
use crate::queue::now_ms;
use crate::registry::Candidate;
use crate::storage::InstalledConnector;

use super::{SyncError, Synchronizer};

/// Which roles a component can play, from its manifest's operations and
/// its exports: an adapter declares search/read/create/write/delete, a
/// mapper import/export.
pub(super) fn roles(manifest: &Manifest) -> (bool, bool) {
    let ops = |names: &[&str]| {
        manifest
            .models
            .iter()
            .any(|m| m.operations.iter().any(|o| names.contains(&o.as_str())))
    };
    (
        ops(&["search", "read", "create", "write", "delete"]),
        ops(&["import", "export"]),
    )
}

impl Synchronizer {
    /// Install a connector component and make it the active version of
    /// its connector ([`Synchronizer::install_as`] with `activate`).
    pub async fn install(&self, bytes: &[u8]) -> Result<InstalledConnector, SyncError> {
        self.install_as(bytes, true, false).await
    }

    /// Install a connector component: it is loaded (type-checked), its
    /// manifest read and validated, and its exports checked against the
    /// operations it declares. Installing the same bytes again changes
    /// nothing. With `activate`, it then becomes the active version
    /// ([`Synchronizer::activate_connector`], which may refuse it; it
    /// stays installed then, inactive).
    pub async fn install_as(
        &self,
        bytes: &[u8],
        activate: bool,
        approve: bool,
    ) -> Result<InstalledConnector, SyncError> {
        let unit = self.host.load(bytes).await?;
        let ctx = Arc::new(CallContext::detached(SandboxLimits::default()));
        let manifest =
            unit.describe(&ctx)
                .await
                .into_result()
                .map_err(|e| SyncError::Connector {
                    name: unit.digest().to_string(),
                    reason: format!("its manifest could not be read: {e}"),
                })?;
        let exports = unit.exports();
        let (adapter, mapper) = roles(&manifest);
        let bad = |reason: String| SyncError::Connector {
            name: format!("{} {}", manifest.name, manifest.version),
            reason,
        };
        if adapter && !exports.adapter {
            return Err(bad("declares adapter operations (search, read, create, write, delete) but does not export the adapter interface".into()));
        }
        if mapper && !exports.mapper {
            return Err(bad(
                "declares import or export but does not export the mapper interface".into(),
            ));
        }
        if !adapter && !mapper {
            return Err(bad("declares no operations on any model, so it can serve as neither adapter nor mapper".into()));
        }
        let installed = InstalledConnector {
            digest: unit.digest().to_string(),
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            backend_kind: manifest.backend_kind.clone(),
            backend_versions: manifest.backend_versions.clone(),
            manifest: serde_json::to_string(&manifest).map_err(|e| bad(e.to_string()))?,
            installed_at: now_ms(),
            active: false,
        };
        self.storage.install_connector(&installed, bytes).await?;
        self.units
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(installed.digest.clone(), unit);
        if activate {
            return self.activate_connector(&installed.digest, approve).await;
        }
        self.connector(&installed.digest).await
    }

    /// An installed component by digest (`sha256:…`, or a unique prefix
    /// of its hex).
    pub async fn connector(&self, digest: &str) -> Result<InstalledConnector, SyncError> {
        let want = digest.strip_prefix("sha256:").unwrap_or(digest);
        let all = self.storage.connectors().await?;
        let found: Vec<_> = all
            .into_iter()
            .filter(|c| {
                c.digest
                    .strip_prefix("sha256:")
                    .unwrap_or(&c.digest)
                    .starts_with(want)
            })
            .collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(SyncError::NotFound(format!(
                "no installed connector has digest {digest}; `junction connector list` shows them"
            ))),
            n => Err(SyncError::NotFound(format!(
                "{n} installed connectors have a digest starting with {digest}; give more of it"
            ))),
        }
    }

    /// Make an installed component the active version of its connector:
    /// new calls use it, calls already running finish on the version they
    /// started with. Refused, with the old version still active, when a
    /// configured backend it would serve as adapter fails its `check`, or
    /// when a backend served today would be left without a unit.
    ///
    /// A version that requests more than the active one of its connector
    /// (a model or operation, an event, a host, a secret) is refused unless
    /// `approve` says the operator accepts the difference.
    pub async fn activate_connector(
        &self,
        digest: &str,
        approve: bool,
    ) -> Result<InstalledConnector, SyncError> {
        let target = self.connector(digest).await?;
        if !approve && let Some((active, more)) = self.escalation(&target).await? {
            return Err(SyncError::NeedsApproval {
                connector: format!("{} {}", target.name, target.version),
                active,
                digest: target.digest.clone(),
                more: Box::new(more),
            });
        }
        self.preflight(&target, approve).await?;
        self.storage
            .activate_connector(&target.digest, now_ms())
            .await?;
        self.reload_listening().await?;
        self.connector(&target.digest).await
    }

    /// Make the version that was active before the current one active
    /// again, as safely as an activation.
    pub async fn rollback_connector(&self, name: &str) -> Result<InstalledConnector, SyncError> {
        let digest = self
            .storage
            .rollback_connector(name, now_ms())
            .await?
            .ok_or_else(|| {
                SyncError::NotFound(format!(
                    "connector {name:?} has no earlier version to roll back to"
                ))
            })?;
        self.reload_listening().await?;
        self.connector(&digest).await
    }

    /// Remove an installed component that is not active.
    pub async fn remove_connector(&self, digest: &str) -> Result<InstalledConnector, SyncError> {
        let target = self.connector(digest).await?;
        if target.active {
            return Err(SyncError::Connector {
                name: format!("{} {}", target.name, target.version),
                reason: "is the active version and backends may be using it; activate another version (or roll back) first".into(),
            });
        }
        self.storage.remove_connector(&target.digest).await?;
        self.units
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&target.digest);
        Ok(target)
    }

    /// What `target` requests beyond the active version of its connector
    /// (`None`: nothing more, or no version is active yet), with that
    /// version's name.
    pub async fn escalation(
        &self,
        target: &InstalledConnector,
    ) -> Result<Option<(String, crate::grants::Requests)>, SyncError> {
        let installed = self.installed().await?;
        let Some((_, target_manifest)) = installed.iter().find(|(c, _)| c.digest == target.digest)
        else {
            return Ok(None);
        };
        let Some((active, active_manifest)) = installed
            .iter()
            .find(|(c, _)| c.active && c.name == target.name && c.digest != target.digest)
        else {
            return Ok(None);
        };
        let more = crate::grants::Requests::of(target_manifest)
            .beyond(&crate::grants::Requests::of(active_manifest));
        Ok((!more.is_empty()).then(|| (format!("{} {}", active.name, active.version), more)))
    }

    /// Before `target` becomes active: every configured backend must still
    /// resolve, and each one it would serve as adapter must pass `check`.
    /// Refuse an activation that would break a configured backend, or —
    /// unless `approve` — give a backend's credential and data to a
    /// component that requests more than the units serving it now (another
    /// connector that would take the backend over included).
    async fn preflight(&self, target: &InstalledConnector, approve: bool) -> Result<(), SyncError> {
        let installed = self.installed().await?;
        let refuse = |reason: String| SyncError::Refused {
            connector: format!("{} {}", target.name, target.version),
            reason,
        };
        let after: Vec<(Candidate, Manifest)> = installed
            .iter()
            .filter(|(c, _)| c.name != target.name || c.digest == target.digest)
            .map(|(c, m)| {
                let mut c = c.clone();
                c.active = c.active || c.digest == target.digest;
                (c, m.clone())
            })
            .collect();
        for config in self.backend_configs().await? {
            let before = self.resolve_among(config.clone(), &installed).await;
            let now = self.resolve_among(config.clone(), &after).await;
            match (before, now) {
                (Ok(_), Err(e)) => {
                    return Err(refuse(format!(
                        "backend {:?} would be left without a unit: {e}",
                        config.name
                    )));
                }
                (Ok(was), Ok(units))
                    if !approve
                        && (was.adapter_labels() != units.adapter_labels()
                            || was.mapper_labels() != units.mapper_labels())
                        && !units.requests.beyond(&was.requests).is_empty() =>
                {
                    return Err(SyncError::NeedsApproval {
                        connector: format!("{} {}", target.name, target.version),
                        active: format!("{} of backend {:?}", was.adapter_labels(), config.name),
                        digest: target.digest.clone(),
                        more: Box::new(units.requests.beyond(&was.requests)),
                    });
                }
                (_, Ok(units)) => {
                    let target_adapter = units
                        .adapters
                        .iter()
                        .find(|a| a.unit.digest() == target.digest);
                    if let Some(a) = target_adapter {
                        let report = a.unit.check(&units.ctx, &units.ctx.settings).await;
                        if let Err(e) = report.into_result() {
                            return Err(refuse(format!(
                                "its check against backend {:?} failed: {e}",
                                config.name
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Forget resolved backends and resolve them again now, so that
    /// listeners follow the active versions.
    pub(super) async fn reload_listening(&self) -> Result<(), SyncError> {
        // Read before resolving: a change landing meanwhile is newer than
        // what is recorded, so the watcher resolves once more.
        let generation = self.storage.registry_generation().await?;
        self.reload();
        for (backend, e) in self.resolve_all().await? {
            tracing::warn!(backend, error = %e, "backend not ready");
        }
        self.resolved_generation
            .store(generation, std::sync::atomic::Ordering::Release);
        Ok(())
    }
}
