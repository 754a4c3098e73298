//! Picks the unit (adapter or mapper) a backend uses for each model: among
//! installed components whose backend kind matches, whose backend-version
//! range contains the backend's version and whose manifest claims the
//! model (OCA's `_apply_on`), the narrowest range wins; none, or two
//! equally narrow, is an error that lists the candidates. So several
//! vendors' connectors serve one backend side by side, each for the models
//! it lists.

use std::fmt;

use semver::{Comparator, Op, Version, VersionReq};

/// Which part of a connector is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitRole {
    Adapter,
    Mapper,
}

impl fmt::Display for UnitRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnitRole::Adapter => "adapter",
            UnitRole::Mapper => "mapper",
        })
    }
}

/// An installed component, as the registry sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub digest: String,
    pub name: String,
    pub version: String,
    pub backend_kind: String,
    /// A semver range such as `>=2.4, <3`.
    pub backend_versions: String,
    pub adapter: bool,
    pub mapper: bool,
    /// The models its manifest lists: the only ones it is picked for.
    pub models: Vec<String>,
    /// The version of its connector that new calls use; inactive versions
    /// are kept for rollback.
    pub active: bool,
}

impl Candidate {
    fn plays(&self, role: UnitRole) -> bool {
        match role {
            UnitRole::Adapter => self.adapter,
            UnitRole::Mapper => self.mapper,
        }
    }

    fn label(&self) -> String {
        let short = self.digest.strip_prefix("sha256:").unwrap_or(&self.digest);
        format!(
            "{} {} ({} {}, {})",
            self.name,
            self.version,
            self.backend_kind,
            self.backend_versions,
            &short[..short.len().min(12)]
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("backend version {version:?} is not a semver version such as 2.4.6")]
    BadVersion { version: String },
    #[error("no installed {role}{} supports {kind} {version}; installed for {kind}: {}", for_model(.model), list(.candidates))]
    NoMatch {
        role: UnitRole,
        kind: String,
        version: String,
        model: Option<String>,
        candidates: Vec<String>,
    },
    #[error("more than one {role}{} fits {kind} {version} equally well: {}; remove one, or narrow its backend-versions range or its models", for_model(.model), list(.candidates))]
    Tie {
        role: UnitRole,
        kind: String,
        version: String,
        model: Option<String>,
        candidates: Vec<String>,
    },
}

fn for_model(model: &Option<String>) -> String {
    model
        .as_ref()
        .map(|m| format!(" for model {m:?}"))
        .unwrap_or_default()
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join("; ")
    }
}

/// A version interval `[lo, hi)`; `hi = None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    lo: Version,
    hi: Option<Version>,
}

impl Interval {
    fn within(&self, other: &Interval) -> bool {
        self.lo >= other.lo
            && match (&self.hi, &other.hi) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a <= b,
            }
    }
}

fn v(major: u64, minor: u64, patch: u64) -> Version {
    Version::new(major, minor, patch)
}

/// The interval one comparator allows (pre-releases ignored).
fn comparator_interval(c: &Comparator) -> Interval {
    let (maj, min, pat) = (c.major, c.minor, c.patch);
    let floor = v(maj, min.unwrap_or(0), pat.unwrap_or(0));
    // The first version past the comparator's precision: 1 → 2.0.0,
    // 1.2 → 1.3.0, 1.2.3 → 1.2.4.
    let next = match (min, pat) {
        (None, _) => v(maj + 1, 0, 0),
        (Some(m), None) => v(maj, m + 1, 0),
        (Some(m), Some(p)) => v(maj, m, p + 1),
    };
    let zero = v(0, 0, 0);
    match c.op {
        Op::Exact | Op::Wildcard => Interval {
            lo: floor,
            hi: Some(next),
        },
        Op::Greater => Interval { lo: next, hi: None },
        Op::GreaterEq => Interval {
            lo: floor,
            hi: None,
        },
        Op::Less => Interval {
            lo: zero,
            hi: Some(floor),
        },
        Op::LessEq => Interval {
            lo: zero,
            hi: Some(next),
        },
        Op::Tilde => Interval {
            lo: floor,
            hi: Some(match min {
                None => v(maj + 1, 0, 0),
                Some(m) => v(maj, m + 1, 0),
            }),
        },
        Op::Caret => Interval {
            hi: Some(match (maj, min, pat) {
                (0, None, _) => v(1, 0, 0),
                (0, Some(0), None) => v(0, 1, 0),
                (0, Some(0), Some(p)) => v(0, 0, p + 1),
                (0, Some(m), _) => v(0, m + 1, 0),
                (major, _, _) => v(major + 1, 0, 0),
            }),
            lo: floor,
        },
        _ => Interval { lo: zero, hi: None },
    }
}

fn interval(req: &VersionReq) -> Interval {
    req.comparators.iter().map(comparator_interval).fold(
        Interval {
            lo: v(0, 0, 0),
            hi: None,
        },
        |acc, i| Interval {
            lo: acc.lo.max(i.lo),
            hi: match (acc.hi, i.hi) {
                (None, h) | (h, None) => h,
                (Some(a), Some(b)) => Some(a.min(b)),
            },
        },
    )
}

/// The `role` units of `kind` that claim `model` (any, with `None`), and
/// those of them whose range contains `version`, with their intervals; no
/// fitting one is `NoMatch`, listing the others.
fn matching<'a>(
    candidates: &'a [Candidate],
    role: UnitRole,
    kind: &str,
    version: &str,
    model: Option<&str>,
) -> Result<Vec<(&'a Candidate, Interval)>, RegistryError> {
    let wanted = Version::parse(version).map_err(|_| RegistryError::BadVersion {
        version: version.to_string(),
    })?;
    let of_kind: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.backend_kind == kind && c.plays(role))
        .filter(|c| model.is_none_or(|m| c.models.iter().any(|x| x == m)))
        .collect();
    let fitting: Vec<(&Candidate, Interval)> = of_kind
        .iter()
        .filter_map(|c| {
            let req = VersionReq::parse(&c.backend_versions).ok()?;
            req.matches(&wanted).then(|| (*c, interval(&req)))
        })
        .collect();
    if fitting.is_empty() {
        return Err(RegistryError::NoMatch {
            role,
            kind: kind.to_string(),
            version: version.to_string(),
            model: model.map(str::to_string),
            candidates: of_kind.iter().map(|c| c.label()).collect(),
        });
    }
    Ok(fitting)
}

/// Every `role` unit fitting a backend of `kind` at `version`, whatever
/// its models (in the order given).
pub fn fitting<'a>(
    candidates: &'a [Candidate],
    role: UnitRole,
    kind: &str,
    version: &str,
) -> Result<Vec<&'a Candidate>, RegistryError> {
    Ok(matching(candidates, role, kind, version, None)?
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

/// Pick the `role` unit for `model` of a backend of `kind` at `version`
/// (`None`: any model, as before units claimed models).
pub fn pick<'a>(
    candidates: &'a [Candidate],
    role: UnitRole,
    kind: &str,
    version: &str,
    model: Option<&str>,
) -> Result<&'a Candidate, RegistryError> {
    let fitting = matching(candidates, role, kind, version, model)?;
    // The narrowest: within every other fitting range. Two with the same
    // range (or ranges that overlap without nesting) cannot be ordered.
    let narrowest: Vec<&(&Candidate, Interval)> = fitting
        .iter()
        .filter(|(c, i)| {
            fitting
                .iter()
                .all(|(o, oi)| o.digest == c.digest || (i.within(oi) && !oi.within(i)))
        })
        .collect();
    match narrowest.as_slice() {
        [(winner, _)] => Ok(winner),
        _ => Err(RegistryError::Tie {
            role,
            kind: kind.to_string(),
            version: version.to_string(),
            model: model.map(str::to_string),
            candidates: fitting.iter().map(|(c, _)| c.label()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(digest: &str, range: &str, adapter: bool, mapper: bool) -> Candidate {
        Candidate {
            digest: format!("sha256:{digest}"),
            name: format!("magento-{digest}"),
            version: "1.0.0".into(),
            backend_kind: "magento".into(),
            backend_versions: range.into(),
            adapter,
            mapper,
            models: vec!["product".into()],
            active: true,
        }
    }

    #[test]
    fn the_narrowest_fitting_range_wins() {
        let all = [
            unit("a", ">=2.0.0, <3.0.0", true, true),
            unit("b", ">=2.4.0, <2.5.0", false, true),
            unit("c", "~2.3", false, true),
        ];
        assert_eq!(
            pick(&all, UnitRole::Mapper, "magento", "2.4.6", None)
                .unwrap()
                .digest,
            "sha256:b"
        );
        assert_eq!(
            pick(&all, UnitRole::Mapper, "magento", "2.3.1", None)
                .unwrap()
                .digest,
            "sha256:c"
        );
        assert_eq!(
            pick(&all, UnitRole::Mapper, "magento", "2.9.0", None)
                .unwrap()
                .digest,
            "sha256:a"
        );
        // The adapter comes from another component than the mapper.
        assert_eq!(
            pick(&all, UnitRole::Adapter, "magento", "2.4.6", None)
                .unwrap()
                .digest,
            "sha256:a"
        );
    }

    #[test]
    fn none_or_a_tie_lists_the_candidates() {
        let all = [
            unit("a", "^2", true, true),
            unit("b", ">=2.0.0, <3.0.0", true, false),
        ];
        let err = pick(&all, UnitRole::Adapter, "magento", "2.4.0", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("equally well") && err.contains("magento-a") && err.contains("magento-b"),
            "{err}"
        );
        let err = pick(&all, UnitRole::Mapper, "magento", "3.1.0", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no installed mapper supports magento 3.1.0"),
            "{err}"
        );
        assert!(err.contains("magento-a 1.0.0 (magento ^2"), "{err}");
        let err = pick(&all, UnitRole::Adapter, "shopify", "1.0.0", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("(none)"), "{err}");
        let err = pick(&all, UnitRole::Adapter, "magento", "two", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a semver version"), "{err}");
    }

    #[test]
    fn units_are_picked_per_model_they_claim() {
        let claims = |mut c: Candidate, models: &[&str]| {
            c.models = models.iter().map(|m| m.to_string()).collect();
            c
        };
        let all = [
            claims(unit("contacts", "^3", true, true), &["contacts"]),
            claims(unit("deals", "^3", true, true), &["companies", "deals"]),
            claims(unit("narrow", "~3.1", false, true), &["deals"]),
        ];
        let at = |role, model| {
            pick(&all, role, "magento", "3.1.2", Some(model))
                .map(|c| c.digest.as_str())
                .map_err(|e| e.to_string())
        };
        assert_eq!(at(UnitRole::Adapter, "contacts"), Ok("sha256:contacts"));
        assert_eq!(at(UnitRole::Adapter, "companies"), Ok("sha256:deals"));
        assert_eq!(at(UnitRole::Mapper, "companies"), Ok("sha256:deals"));
        // The narrowest range still wins, among the units claiming the model.
        assert_eq!(at(UnitRole::Mapper, "deals"), Ok("sha256:narrow"));
        let none = at(UnitRole::Adapter, "tickets").unwrap_err();
        assert!(
            none.contains("no installed adapter for model \"tickets\" supports magento 3.1.2"),
            "{none}"
        );
        // A true tie on one model names both units and the model.
        let tied = [
            claims(unit("one", "^3", true, true), &["contacts"]),
            claims(
                unit("two", ">=3.0.0, <4.0.0", true, false),
                &["contacts", "deals"],
            ),
        ];
        let err = pick(
            &tied,
            UnitRole::Adapter,
            "magento",
            "3.0.0",
            Some("contacts"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("for model \"contacts\"")
                && err.contains("magento-one")
                && err.contains("magento-two"),
            "{err}"
        );
        // ... while the model only one claims is not tied.
        assert_eq!(
            pick(&tied, UnitRole::Adapter, "magento", "3.0.0", Some("deals"))
                .unwrap()
                .digest,
            "sha256:two"
        );
        let all_fitting = fitting(&all, UnitRole::Adapter, "magento", "3.0.0").unwrap();
        assert_eq!(all_fitting.len(), 2);
    }

    #[test]
    fn intervals_follow_semver_operators() {
        let i = |r: &str| interval(&VersionReq::parse(r).unwrap());
        assert_eq!(
            i("^1.2.3"),
            Interval {
                lo: v(1, 2, 3),
                hi: Some(v(2, 0, 0))
            }
        );
        assert_eq!(
            i("^0.2.3"),
            Interval {
                lo: v(0, 2, 3),
                hi: Some(v(0, 3, 0))
            }
        );
        assert_eq!(
            i("~1.2"),
            Interval {
                lo: v(1, 2, 0),
                hi: Some(v(1, 3, 0))
            }
        );
        assert_eq!(
            i("=1.2.3"),
            Interval {
                lo: v(1, 2, 3),
                hi: Some(v(1, 2, 4))
            }
        );
        assert_eq!(
            i(">1.2, <=1.9"),
            Interval {
                lo: v(1, 3, 0),
                hi: Some(v(1, 10, 0))
            }
        );
        assert_eq!(
            i("1.*"),
            Interval {
                lo: v(1, 0, 0),
                hi: Some(v(2, 0, 0))
            }
        );
        assert!(i("~2.4").within(&i("^2")));
        assert!(!i("^2").within(&i("~2.4")));
    }
}
