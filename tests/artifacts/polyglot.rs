//! Builds the Python and JavaScript guest components from source with the
//! pinned toolchains: componentize-py in a virtualenv made from
//! `guest-sdk/python/requirements.lock` (hashes required), componentize-js
//! from `guest-sdk/js/package-lock.json` (`npm ci`). The tools live under
//! the cargo target dir and are set up again only when a lock file
//! changes; a component is rebuilt only when one of its inputs changed.
//! Missing Python or Node.js stops the build with what to install.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// Where the tools and components go: `<dir>/tools`,
/// `<dir>/<name>.wasm`.
pub struct Polyglot {
    pub root: PathBuf,
    pub dir: PathBuf,
}

impl Polyglot {
    pub fn new(root: &Path, dir: PathBuf) -> Polyglot {
        fs::create_dir_all(dir.join("tools")).unwrap();
        Polyglot {
            root: root.to_path_buf(),
            dir,
        }
    }

    /// The virtualenv's Python with componentize-py and pytest installed.
    pub fn python(&self) -> PathBuf {
        let lock = self.root.join("guest-sdk/python/requirements.lock");
        let venv = self.dir.join("tools/python");
        let python = venv.join(if cfg!(windows) {
            "Scripts/python.exe"
        } else {
            "bin/python"
        });
        let stamp = venv.join(".junction-lock");
        let want = digest(std::slice::from_ref(&lock));
        if python.exists() && read(&stamp) == want {
            return python;
        }
        let _ = fs::remove_dir_all(&venv);
        locked_venv(&venv, &lock, "guest-sdk/python/requirements.lock");
        fs::write(&stamp, want).unwrap();
        python
    }

    /// The `node_modules` folder with componentize-js and jco.
    pub fn node_tools(&self) -> PathBuf {
        let sdk = self.root.join("guest-sdk/js");
        let tools = self.dir.join("tools/js");
        let stamp = tools.join(".junction-lock");
        let inputs = [sdk.join("package.json"), sdk.join("package-lock.json")];
        let want = digest(&inputs);
        if tools.join("node_modules").exists() && read(&stamp) == want {
            return tools;
        }
        let _ = fs::remove_dir_all(&tools);
        fs::create_dir_all(&tools).unwrap();
        for file in &inputs {
            fs::copy(file, tools.join(file.file_name().unwrap())).unwrap();
        }
        run(
            Command::new(npm())
                // Packages already in npm's cache are taken from it without
                // asking the registry, so a rebuild works offline.
                .args([
                    "ci",
                    "--prefer-offline",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                ])
                .current_dir(&tools),
            "installing guest-sdk/js/package-lock.json with `npm ci` (the JavaScript connectors need Node.js 18 or later with npm; \
             on Debian or Ubuntu: `apt install nodejs npm`; the first build needs the npm registry or a cache that has its packages)",
        );
        fs::write(&stamp, want).unwrap();
        tools
    }

    /// `wit/`, which the components build from as they are (its `-http`
    /// worlds import outgoing HTTP from the vendored `wit/deps`), after
    /// checking that the vendored WASI packages are the ones the host's
    /// wasmtime-wasi-http serves and that the JavaScript SDK imports that
    /// version.
    pub fn wit(&self) -> PathBuf {
        let wit = self.root.join("wit");
        let served = wasi_http_wit(&self.root);
        for entry in fs::read_dir(&served).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let vendored = wit.join("deps").join(&name).join(format!("{name}.wit"));
            assert!(
                fs::read(&vendored).ok() == Some(fs::read(&path).unwrap()),
                "{} differs from {}, the WASI package the host serves: copy it over \
                 (wit/deps follows the wasmtime-wasi-http release in Cargo.lock)",
                vendored.display(),
                path.display()
            );
        }
        let http = fs::read_to_string(wit.join("deps/http/http.wit")).unwrap();
        let http_version = http
            .lines()
            .find_map(|l| l.trim().strip_prefix("package wasi:http@"))
            .map(|v| v.trim_end_matches(';').to_string())
            .expect("wit/deps/http/http.wit names no wasi:http package");
        // componentize-js resolves imports by their full name, version and
        // all, so the JavaScript SDK names the version it was written for.
        let sdk = self.root.join("guest-sdk/js/src/wasi-http.js");
        let import = format!("wasi:http/types@{http_version}");
        assert!(
            fs::read_to_string(&sdk).unwrap().contains(&import),
            "{} does not import {import}, the wasi:http version wasmtime-wasi-http serves: update its imports",
            sdk.display()
        );
        let worlds = fs::read_to_string(wit.join("worlds.wit")).unwrap();
        assert!(
            worlds.contains(&format!(
                "import wasi:http/outgoing-handler@{http_version};"
            )),
            "wit/worlds.wit's -http worlds do not import wasi:http {http_version}, the version wit/deps holds"
        );
        wit
    }

    /// `junction-componentize` (guest-sdk/python): `module` found on
    /// `paths` (relative to the root), built for `world` in `wit`.
    pub fn python_component(
        &self,
        python: &Path,
        name: &str,
        wit: &Path,
        world: &str,
        paths: &[&str],
        module: &str,
    ) -> PathBuf {
        let out = self.dir.join(format!("{name}.wasm"));
        let mut inputs: Vec<PathBuf> = paths.iter().map(|p| self.root.join(p)).collect();
        inputs.push(wit.to_path_buf());
        inputs.push(self.root.join("guest-sdk/python/requirements.lock"));
        self.unless_built(&out, &inputs, world, || {
            // The SDK's documented command: it checks the unit against the
            // world, then runs componentize-py (the component is inspected
            // by the tests, with the junction being built).
            let mut cmd = Command::new(python);
            cmd.args([
                "-m",
                "junction_guest.build",
                module,
                "--no-inspect",
                "--wit",
            ])
            .arg(wit)
            .args(["--world", world, "-o"])
            .arg(&out)
            .env("PYTHONPATH", self.root.join("guest-sdk/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1");
            for p in paths {
                cmd.arg("-p").arg(self.root.join(p));
            }
            run(
                &mut cmd,
                &format!("building the Python component {name} with junction-componentize"),
            );
        });
        out
    }

    /// componentize-js through the SDK's `junction-componentize`: `entry`
    /// built for `world` in `wit`, with the engine features in `enable`.
    #[allow(clippy::too_many_arguments)]
    pub fn js_component(
        &self,
        tools: &Path,
        name: &str,
        entry: &str,
        wit: &Path,
        world: &str,
        enable: &[&str],
        paths: &[&str],
    ) -> PathBuf {
        let out = self.dir.join(format!("{name}.wasm"));
        let mut inputs: Vec<PathBuf> = paths.iter().map(|p| self.root.join(p)).collect();
        inputs.push(wit.to_path_buf());
        inputs.push(self.root.join("guest-sdk/js/package-lock.json"));
        let extra = format!("{world}-{}", enable.join(","));
        self.unless_built(&out, &inputs, &extra, || {
            // The CLI runs from the tools folder so that it finds the
            // pinned componentize-js in the node_modules there.
            let cli = tools.join("componentize.mjs");
            fs::copy(self.root.join("guest-sdk/js/bin/componentize.mjs"), &cli).unwrap();
            // componentize-js maps the working directory into the engine
            // at initialisation, so relative imports must stay inside it.
            run(
                Command::new("node")
                    .current_dir(&self.root)
                    .arg(&cli)
                    .arg(self.root.join(entry))
                    .arg("--wit")
                    .arg(wit)
                    .args(["--world", world])
                    .args(enable.iter().flat_map(|f| ["--enable", f]))
                    .arg("-o")
                    .arg(&out),
                &format!("building the JavaScript component {name} with componentize-js"),
            );
        });
        out
    }

    /// Runs `build` unless `out` exists and was built from exactly these
    /// inputs.
    fn unless_built(&self, out: &Path, inputs: &[PathBuf], extra: &str, build: impl FnOnce()) {
        let stamp = out.with_extension("inputs");
        let want = format!("{}-{extra}", digest(inputs));
        if out.exists() && read(&stamp) == want {
            return;
        }
        let _ = fs::remove_file(out);
        build();
        assert!(out.exists(), "{} missing after its build", out.display());
        fs::write(&stamp, want).unwrap();
    }
}

fn npm() -> &'static str {
    if cfg!(windows) { "npm.cmd" } else { "npm" }
}

/// The `wit/deps` folder of the wasmtime-wasi-http crate this workspace
/// locks, found through `cargo metadata`.
fn wasi_http_wit(root: &Path) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("failed to run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "wasmtime-wasi-http")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("wasmtime-wasi-http is not in the workspace's dependencies");
    Path::new(manifest).parent().unwrap().join("wit/deps")
}

/// Make a virtualenv at `venv` (absent) with exactly what `lock` pins
/// (hashes required, wheels only); its python. `name` names the lock in
/// failures. One implementation with Tryton's: `junction_tryton::python`.
pub fn locked_venv(venv: &Path, lock: &Path, name: &str) -> PathBuf {
    junction_tryton::python::locked_venv(venv, lock, name).unwrap_or_else(|e| panic!("{e}"))
}

pub fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what} failed to start: {e}"));
    assert!(
        status.success(),
        "{what} failed ({status}); see its output above"
    );
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// A digest of the files under `paths` (names and contents), skipping
/// caches that tests and tools write beside the sources.
pub fn digest(paths: &[PathBuf]) -> String {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files);
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    for f in files {
        f.hash(&mut hasher);
        fs::read(&f).unwrap_or_default().hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let Ok(entries) = fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let name = entry.file_name();
        let skip = ["__pycache__", ".pytest_cache", "node_modules", "types"];
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        collect(&p, out);
    }
}
