//! Backends: storing and removing configurations (credentials sealed),
//! resolving each backend to its units through the
//! [`registry`](crate::registry), the per-node cache of resolutions, and
//! registering the active adapters' event listeners.

use std::sync::Arc;

use crate::backend::BackendConfig;
use crate::events::GuestListener;
use crate::host::Unit;
use crate::model::Manifest;
use crate::queue::now_ms;
use crate::registry::{Candidate, RegistryError, UnitRole, pick};
use crate::secrets::SecretKey;
use crate::storage::{StorageError, StoredBackend};

use super::{BackendAdapter, BackendUnits, MapperUnit, Route, SyncError, Synchronizer, deliver};

use super::lifecycle::roles;

impl Synchronizer {
    /// `check` a configured backend with every adapter serving it; their
    /// lines and labels (joined by `; ` and `, `).
    pub async fn check_backend(&self, name: &str) -> Result<(String, String), SyncError> {
        let units = self.backend(name).await?;
        let mut lines = Vec::new();
        for a in &units.adapters {
            let line = a
                .unit
                .check(&units.ctx, &units.ctx.settings)
                .await
                .into_result()
                .map_err(|e| SyncError::Connector {
                    name: a.label.clone(),
                    reason: format!("check against backend {name:?} failed: {e}"),
                })?;
            lines.push(line);
        }
        Ok((lines.join("; "), units.adapter_labels()))
    }

    /// Store a backend's configuration (validated) and resolve its units,
    /// so that a configuration no installed connector serves is refused
    /// with the candidates listed.
    pub async fn configure(&self, config: &BackendConfig) -> Result<Arc<BackendUnits>, SyncError> {
        config.validate()?;
        let units = self.resolve(config.clone()).await?;
        self.put_backend(config).await?;
        self.activate(units.clone());
        Ok(units)
    }

    async fn put_backend(&self, config: &BackendConfig) -> Result<(), SyncError> {
        // Credentials never reach the database in clear.
        let sealed = config.sealed(&self.secret_key);
        let text = serde_json::to_string(&sealed).map_err(|e| SyncError::StoredBackend {
            name: config.name.clone(),
            reason: e.to_string(),
        })?;
        self.storage
            .put_backend(&config.name, &config.kind, &config.version, &text, now_ms())
            .await?;
        Ok(())
    }

    /// Store a backend's configuration (validated) even if no installed
    /// connector serves it yet (a service starting from its config file
    /// before connectors are installed); what keeps it from resolving is
    /// returned, for the operator.
    pub async fn store_backend(
        &self,
        config: &BackendConfig,
    ) -> Result<Option<SyncError>, SyncError> {
        config.validate()?;
        self.put_backend(config).await?;
        // Only this backend's resolution is stale; the others stay cached.
        self.backends
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&config.name);
        let failed = self.backend(&config.name).await.err();
        if failed.is_some() {
            self.listen_unresolved(
                &config.name,
                Some(&(config.grants.clone(), config.jobs.clone())),
            );
        }
        Ok(failed)
    }

    /// Remove a configured backend: its configuration goes (and with
    /// `how.purge` its bindings and state), its listener stops here at
    /// once and on other nodes when they next follow the registry. Refused
    /// while it has unfinished jobs unless `how.cancel_jobs`.
    pub async fn remove_backend(
        &self,
        name: &str,
        how: crate::storage::RemoveBackend,
    ) -> Result<crate::storage::RemovedBackend, SyncError> {
        let removed = self
            .storage
            .remove_backend(name, how, now_ms())
            .await?
            .ok_or_else(|| {
                SyncError::NotFound(format!(
                    "backend {name:?} is not configured; `junction backend list` shows the configured ones"
                ))
            })?;
        self.reload_listening().await?;
        Ok(removed)
    }

    /// Forget resolved backends, so that the next job resolves them again
    /// against the installed connectors and stored configurations.
    pub fn reload(&self) {
        self.backends
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The installed components, as registry candidates with their
    /// manifests.
    pub(super) async fn installed(&self) -> Result<Vec<(Candidate, Manifest)>, SyncError> {
        let mut out = Vec::new();
        for c in self.storage.connectors().await? {
            let manifest: Manifest =
                serde_json::from_str(&c.manifest).map_err(|e| SyncError::Connector {
                    name: format!("{} {}", c.name, c.version),
                    reason: format!("its stored manifest is unreadable: {e}"),
                })?;
            let (adapter, mapper) = roles(&manifest);
            let candidate = Candidate {
                active: c.active,
                digest: c.digest,
                name: c.name,
                version: c.version,
                backend_kind: c.backend_kind,
                backend_versions: c.backend_versions,
                adapter,
                mapper,
                models: manifest.models.iter().map(|m| m.name.clone()).collect(),
            };
            out.push((candidate, manifest));
        }
        Ok(out)
    }

    async fn unit(&self, digest: &str) -> Result<Unit, SyncError> {
        if let Some(u) = self
            .units
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            return Ok(u.clone());
        }
        let bytes = self
            .storage
            .connector_component(digest)
            .await?
            .ok_or_else(|| SyncError::Connector {
                name: digest.to_string(),
                reason: "was removed while in use".into(),
            })?;
        let unit = self.host.load(&bytes).await?;
        self.units
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string(), unit.clone());
        Ok(unit)
    }

    /// The configured backends.
    pub async fn backend_configs(&self) -> Result<Vec<BackendConfig>, SyncError> {
        self.storage
            .backends()
            .await?
            .into_iter()
            .map(|b| parse_backend(b, &self.secret_key))
            .collect()
    }

    /// Resolve every configured backend not resolved yet (registering its
    /// listener); the backends that could not be resolved, with the reason.
    pub async fn resolve_all(&self) -> Result<Vec<(String, SyncError)>, StorageError> {
        let mut failed = Vec::new();
        let stored = self.storage.backends().await?;
        // A backend removed (here or on another node) stops listening.
        self.listening
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| {
                let keep = stored.iter().any(|b| &b.name == name);
                if !keep {
                    self.bus.set_listener(&format!("backend:{name}"), None);
                    self.queue.notify.set(&format!("backend:{name}"), None);
                }
                keep
            });
        for stored in stored {
            if self.cached(&stored.name).is_some() {
                continue;
            }
            let name = stored.name.clone();
            let mut placement = None;
            let resolved = match parse_backend(stored, &self.secret_key) {
                Ok(config) => {
                    placement = Some((config.grants.clone(), config.jobs.clone()));
                    self.resolve(config).await
                }
                Err(e) => Err(e),
            };
            match resolved {
                Ok(units) => self.activate(units),
                Err(e) => {
                    self.listen_unresolved(&name, placement.as_ref());
                    failed.push((name, e));
                }
            }
        }
        Ok(failed)
    }

    /// A backend that cannot be resolved still hears every event (but its
    /// own): each becomes a delivery job that waits until the backend can
    /// be resolved, and then decides with its listener's own patterns, so
    /// no event is lost for it meanwhile.
    fn listen_unresolved(
        &self,
        name: &str,
        placement: Option<&(crate::grants::GrantConfig, crate::grants::JobPlacement)>,
    ) {
        let grants = match placement {
            Some((config, jobs)) => {
                crate::grants::Grants::new(name, &crate::grants::Requests::default(), config, jobs)
            }
            None => crate::grants::Grants::unrestricted(name),
        };
        let listener = Arc::new(deliver::UnresolvedListener {
            backend: name.to_string(),
            grants,
        });
        self.bus
            .set_listener(&format!("backend:{name}"), Some(listener));
        self.listening
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Some(deliver::UNRESOLVED.to_string()));
    }

    fn cached(&self, name: &str) -> Option<Arc<BackendUnits>> {
        self.backends
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// A backend's units, resolved through the registry.
    pub async fn backend(&self, name: &str) -> Result<Arc<BackendUnits>, SyncError> {
        if let Some(b) = self.cached(name) {
            return Ok(b);
        }
        let config = self
            .backend_configs()
            .await?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| SyncError::UnknownBackend(name.to_string()))?;
        let units = self.resolve(config).await?;
        self.activate(units.clone());
        Ok(units)
    }

    /// Pick and load a backend's units; no side effects, so that a
    /// configuration nothing serves is refused before anything changes.
    async fn resolve(&self, config: BackendConfig) -> Result<Arc<BackendUnits>, SyncError> {
        let installed = self.installed().await?;
        self.resolve_among(config, &installed).await
    }

    /// Resolve among the active ones of `installed`.
    pub(super) async fn resolve_among(
        &self,
        config: BackendConfig,
        installed: &[(Candidate, Manifest)],
    ) -> Result<Arc<BackendUnits>, SyncError> {
        let candidates: Vec<Candidate> = installed
            .iter()
            .filter(|(c, _)| c.active)
            .map(|(c, _)| c.clone())
            .collect();
        let (kind, version) = (&config.kind, &config.version);
        let manifest = |digest: &str| {
            installed
                .iter()
                .find(|(c, _)| c.digest == digest)
                .map(|(_, m)| m)
        };
        // Every model some fitting adapter claims, connectors by name and
        // each in its manifest's order; each gets its own adapter and mapper.
        let mut models: Vec<&str> = Vec::new();
        for a in crate::registry::fitting(&candidates, UnitRole::Adapter, kind, version)? {
            for m in &a.models {
                if !models.contains(&m.as_str()) {
                    models.push(m);
                }
            }
        }
        let mut picked: Vec<(&str, &Candidate, &Candidate)> = Vec::new();
        for model in &models {
            let a = pick(&candidates, UnitRole::Adapter, kind, version, Some(model))?;
            match pick(&candidates, UnitRole::Mapper, kind, version, Some(model)) {
                Ok(m) => picked.push((model, a, m)),
                // An adapter's model without a mapper is not served; a tie
                // is the operator's to settle.
                Err(RegistryError::NoMatch { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // A lone connector also serves what its manifest does not list.
        let default = match (
            pick(&candidates, UnitRole::Adapter, kind, version, None),
            pick(&candidates, UnitRole::Mapper, kind, version, None),
        ) {
            (Ok(a), Ok(m)) => Ok((a, m)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let default = match default {
            Ok(pair) => Some(pair),
            // Nothing serves the backend at all: the backend-wide reason
            // lists every candidate of the kind.
            Err(e) if picked.is_empty() => return Err(e.into()),
            Err(_) => None,
        };
        let label = |c: &Candidate| format!("{} {}", c.name, c.version);
        let route_of = async |a: &Candidate, m: &Candidate| -> Result<Route, SyncError> {
            Ok(Route {
                adapter: self.unit(&a.digest).await?,
                adapter_label: label(a),
                mapper: Arc::new(self.unit(&m.digest).await?),
                mapper_label: label(m),
                mapper_digest: m.digest.clone(),
            })
        };
        let mut routes = std::collections::BTreeMap::new();
        let mut used: Vec<&Candidate> = Vec::new();
        for (model, a, m) in &picked {
            routes.insert(model.to_string(), route_of(a, m).await?);
            used.extend([*a, *m]);
        }
        let fallback = match default {
            Some((a, m)) => {
                used.extend([a, m]);
                Some(route_of(a, m).await?)
            }
            None => None,
        };
        // The connector's grant is what its components' manifests request
        // (every unit in use together), narrowed by the backend's config.
        let mut requests = crate::grants::Requests::default();
        let mut adapters: Vec<BackendAdapter> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in used {
            if !seen.insert(c.digest.as_str()) {
                continue;
            }
            let Some(manifest) = manifest(&c.digest) else {
                continue;
            };
            requests.extend(&crate::grants::Requests::of(manifest));
            let serving = routes
                .values()
                .chain(fallback.as_ref())
                .find(|r| r.adapter.digest() == c.digest);
            if let Some(route) = serving {
                let unit = route.adapter.clone();
                // An adapter's component is a connector that knows the
                // backend; its listener (if any) turns local events into
                // exports.
                let listens = if unit.exports().listener {
                    manifest.events.clone()
                } else {
                    Vec::new()
                };
                adapters.push(BackendAdapter {
                    unit,
                    label: label(c),
                    listens,
                });
            }
        }
        let ctx = config.context(self.services.clone(), &requests, &self.pools)?;
        let mut listens: Vec<String> = Vec::new();
        for p in adapters.iter().flat_map(|a| &a.listens) {
            if !listens.contains(p) {
                listens.push(p.clone());
            }
        }
        let importable: Vec<String> = models
            .iter()
            .filter(|model| {
                let route = routes.get(**model).or(fallback.as_ref());
                route
                    .and_then(|r| manifest(&r.mapper_digest))
                    .is_some_and(|m| {
                        m.models.iter().any(|x| {
                            x.name == **model && x.operations.iter().any(|o| o == "import")
                        })
                    })
            })
            .map(|m| m.to_string())
            .collect();
        Ok(Arc::new(BackendUnits {
            importable,
            requests,
            routes,
            fallback,
            adapters,
            listens,
            config,
            ctx,
        }))
    }

    /// Put resolved units to use: cache them and make the adapter
    /// component's listener the backend's listener (replacing the one of
    /// a version no longer active; an event being handled finishes on it).
    fn activate(&self, units: Arc<BackendUnits>) {
        let name = units.name().to_string();
        let listener_unit = units.adapters.iter().find(|a| !a.listens.is_empty());
        let listening = listener_unit.map(|a| a.unit.digest().to_string());
        let mut current = self.listening.write().unwrap_or_else(|p| p.into_inner());
        // Replaced whenever the backend is resolved again, not only when its
        // component changes: a reconfigured backend's listener must run
        // with the new settings and grants.
        if listening.is_some() || current.get(&name).is_some_and(Option::is_some) {
            let listener = listener_unit.map(|a| {
                Arc::new(GuestListener {
                    backend: name.clone(),
                    unit: a.unit.clone(),
                    ctx: units.ctx.clone(),
                    patterns: units.listens.clone(),
                }) as Arc<dyn crate::events::Listener>
            });
            self.bus.set_listener(&format!("backend:{name}"), listener);
            current.insert(name.clone(), listening);
        }
        drop(current);
        self.queue
            .set_backend_workers(&name, units.config.jobs.workers);
        self.queue.breakers.set_config(&name, units.config.breaker);
        self.queue
            .notify
            .set(&format!("backend:{name}"), units.config.notify.clone());
        // Validated when the backend was configured.
        self.queue
            .set_backend_retry(&name, units.config.retry_policy().ok().flatten());
        self.backends
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, units);
    }

    /// Use `mapper` for `backend` until the next [`Synchronizer::reload`]
    /// (the sync benchmark's native baseline).
    pub async fn replace_mapper(
        &self,
        backend: &str,
        mapper: Arc<dyn MapperUnit>,
        label: &str,
    ) -> Result<(), SyncError> {
        let b = self.backend(backend).await?;
        let swap = |r: &Route| Route {
            mapper: mapper.clone(),
            mapper_label: label.to_string(),
            ..r.clone()
        };
        let replaced = Arc::new(BackendUnits {
            config: b.config.clone(),
            ctx: b.ctx.clone(),
            routes: b.routes.iter().map(|(m, r)| (m.clone(), swap(r))).collect(),
            fallback: b.fallback.as_ref().map(swap),
            adapters: b.adapters.clone(),
            listens: b.listens.clone(),
            importable: b.importable.clone(),
            requests: b.requests.clone(),
        });
        self.backends
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(backend.to_string(), replaced);
        Ok(())
    }
}

/// A stored configuration read back, its credential opened with `key`.
fn parse_backend(stored: StoredBackend, key: &SecretKey) -> Result<BackendConfig, SyncError> {
    let config: BackendConfig =
        serde_json::from_str(&stored.config).map_err(|e| SyncError::StoredBackend {
            name: stored.name.clone(),
            reason: e.to_string(),
        })?;
    config.opened(key).map_err(|e| SyncError::StoredBackend {
        name: stored.name,
        reason: e.to_string(),
    })
}
