//! `junction connector new NAME --lang rust|python|js`: a connector
//! skeleton that builds, passes its own tests and imports the reference
//! CRM's companies as it is, for an author to change into theirs.
//!
//! The templates are files under `runtime/templates/<lang>/`, compiled
//! into the binary; `{{name}}`, `{{module}}`, `{{sdk}}`, `{{wit}}` and
//! `{{toolchain}}` in their paths and text are filled in. The skeleton
//! refers to the SDK by path (a Junction checkout's `guest-sdk/` and
//! `wit/`): the SDKs are not published to any registry.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The languages a skeleton can be made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

macro_rules! templates {
    ($lang:literal: $($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../templates/", $lang, "/", $path)))),*]
    };
}

/// (path in the skeleton, text) per language.
fn templates(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::Python => templates!("python":
            "README.md", "pyproject.toml", "app.py", "module/__init__.py",
            "tests/test_module.py", "build.sh", "gitignore"),
        Lang::Js => templates!("js":
            "README.md", "package.json", "npmrc", "connector.js", "component.js",
            "test/connector.test.js", "build.sh", "gitignore"),
        Lang::Rust => templates!("rust":
            "README.md", "cargo.toml", "toolchain.toml", "src/lib.rs",
            "tests/connector.rs", "build.sh", "gitignore"),
    }
}

/// Where a template goes in the skeleton. Files that tools act on where
/// they lie are kept under other names in the source tree: a
/// `.gitignore` would apply to the templates themselves, a
/// `rust-toolchain.toml` with a placeholder would break rustup in that
/// folder, and a `Cargo.toml` would be taken for a package of the
/// workspace. `module` is the package's name.
fn target_path(template: &str, module: &str) -> String {
    match template {
        "gitignore" => ".gitignore".into(),
        "npmrc" => ".npmrc".into(),
        "cargo.toml" => "Cargo.toml".into(),
        "toolchain.toml" => "rust-toolchain.toml".into(),
        other => other
            .replace("module/", &format!("{module}/"))
            .replace("test_module", &format!("test_{module}")),
    }
}

/// A connector name: what the manifest, the package and the file are
/// called. Lowercase ASCII letters, digits and single dashes, starting
/// with a letter — a valid name in Cargo, PyPI and npm alike.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "{:?} is not a usable connector name: use 2 to 64 lowercase letters, digits and single dashes, starting with a letter (such as acme-crm)",
            junction_runtime::text::clean(name)
        );
    }
    Ok(())
}

/// The Junction checkout the skeleton builds against: `--sdk`, else the
/// one this binary was built from, when it is still there.
fn sdk_root(sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidate = match sdk {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    };
    let root = candidate
        .canonicalize()
        .ok()
        .filter(|r| r.join("guest-sdk/Cargo.toml").is_file() && r.join("wit/worlds.wit").is_file());
    match root {
        Some(r) => Ok(r),
        None if sdk.is_some() => bail!(
            "{} is not a Junction checkout (no guest-sdk/ and wit/ in it): pass --sdk the folder you cloned Junction into",
            candidate.display()
        ),
        None => bail!(
            "the Junction checkout this binary was built from ({}) is gone: pass --sdk the folder you cloned Junction into",
            candidate.display()
        ),
    }
}

/// The Rust release Junction pins, for the skeleton's own toolchain file.
fn toolchain() -> &'static str {
    include_str!("../../../rust-toolchain.toml")
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .map(|v| v.trim().trim_matches('"'))
        .unwrap_or("stable")
}

/// Write the skeleton of `name` in `lang` into `dir/name`; the folder made
/// and the Junction checkout it builds with.
pub fn run(
    name: &str,
    lang: Lang,
    dir: &Path,
    sdk: Option<&Path>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    check_name(name)?;
    let sdk = sdk_root(sdk)?;
    let out = dir.join(name);
    if out.exists()
        && std::fs::read_dir(&out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty: choose another name or --dir, or move it away",
            out.display()
        );
    }
    let module = name.replace('-', "_");
    let sdk_text = sdk.display().to_string();
    let wit = sdk.join("wit").display().to_string();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{module}}", &module)
            .replace("{{sdk}}", &sdk_text)
            .replace("{{wit}}", &wit)
            .replace("{{toolchain}}", toolchain())
    };
    // Written into a sibling folder first and renamed into place, so a
    // failure leaves nothing half-written behind.
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let staging = Staging(dir.join(format!(".{name}.partial-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&staging.0);
    for (template, text) in templates(lang) {
        let path = staging.0.join(target_path(template, &module));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, fill(text)).with_context(|| format!("writing {}", path.display()))?;
        if template.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    // Cargo then resolves offline, to the versions the SDK is tested with.
    if lang == Lang::Rust {
        std::fs::copy(sdk.join("Cargo.lock"), staging.0.join("Cargo.lock"))
            .context("copying Junction's Cargo.lock into the skeleton")?;
    }
    if out.exists() {
        std::fs::remove_dir(&out)
            .with_context(|| format!("replacing the empty {}", out.display()))?;
    }
    std::fs::rename(&staging.0, &out)
        .with_context(|| format!("moving the skeleton to {}", out.display()))?;
    Ok((out, sdk))
}

/// A folder removed when dropped (after a rename, there is none left).
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What to do next, for the operator's terminal.
pub fn next_steps(out: &Path, lang: Lang, sdk: &Path) -> String {
    let sdk = sdk.display();
    let steps = match lang {
        Lang::Python => format!(
            "python3 -m venv .venv && . .venv/bin/activate\n  pip install \"{sdk}/guest-sdk/python[build,test]\"\n  pytest\n  ./build.sh"
        ),
        Lang::Js => "npm install\n  npm test\n  npm run build".into(),
        Lang::Rust => "cargo test\n  ./build.sh".into(),
    };
    format!(
        "created {}\nnext:\n  cd {}\n  {steps}\nits README.md says how to install it and import from the reference CRM",
        out.display(),
        out.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_every_package_registry() {
        for good in ["acme-crm", "ab", "shop2erp"] {
            check_name(good).unwrap();
        }
        for bad in [
            "", "a", "Acme", "-x", "x-", "a--b", "a_b", "a b", "../x", "é",
        ] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("not a usable connector name"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_placeholder_is_filled_and_known() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for (path, text) in templates(lang) {
                let mut rest = *text;
                while let Some(i) = rest.find("{{") {
                    let end = rest[i..].find("}}").map(|e| i + e + 2).unwrap();
                    let key = &rest[i..end];
                    assert!(
                        [
                            "{{name}}",
                            "{{module}}",
                            "{{sdk}}",
                            "{{wit}}",
                            "{{toolchain}}"
                        ]
                        .contains(&key),
                        "{path}: unknown placeholder {key}"
                    );
                    rest = &rest[end..];
                }
            }
        }
        assert!(toolchain().starts_with("1."));
    }
}
