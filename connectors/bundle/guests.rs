//! Builds guest components (fixtures, connectors) for `wasm32-wasip2` with
//! a nested cargo, into `<target>/wasm-guests` so it never waits on the
//! outer build's lock. Shared by the build scripts of
//! `junction-connectors` and `junction-test-artifacts` through `#[path]`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// The workspace root, from a build script in `<root>/<a>/<b>`.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    manifest_dir.join("../..").canonicalize().unwrap()
}

/// Build each package as a release cdylib for wasm and return the paths of
/// the `.wasm` files, in order. `watch` lists what, under the root, should
/// trigger a rebuild.
pub fn build(packages: &[&str], watch: &[&str]) -> Vec<PathBuf> {
    let root = workspace_root();
    for dir in watch
        .iter()
        .chain(&["wit", "guest-sdk/src", "guest-sdk/Cargo.toml", "Cargo.lock"])
    {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    ensure_target();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = guest_target_dir(&out_dir, &root);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut files = Vec::new();
    // One `cargo rustc` per package: it is the only way to ask for a cdylib
    // for wasm alone while native workspace builds see a plain rlib.
    for package in packages {
        let mut cmd = Command::new(&cargo);
        cmd.arg("rustc")
            .arg("--release")
            .arg("--target")
            .arg(TARGET)
            .arg("--crate-type")
            .arg("cdylib")
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .arg("-p")
            .arg(package);
        // The outer build's flags and wrappers (clippy, coverage) are for the host.
        // Guests ship without DWARF: a tenth of the size, so faster to
        // compile and load; the name section still names functions in traps.
        cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false");
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTC_WRAPPER",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            cmd.env_remove(var);
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("failed to run cargo to build guest {package}: {e}"));
        assert!(
            status.success(),
            "building guest {package} for {TARGET} failed; see the cargo output above"
        );
        let file = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            file.exists(),
            "guest {package} missing after build: {}",
            file.display()
        );
        files.push(file);
    }
    files
}

/// rustup 1.29 does not add a `targets` entry of rust-toolchain.toml to a
/// toolchain that is already installed, so a fresh clone on a machine with
/// the toolchain would fail with E0463. Add the target here when missing.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.as_deref().is_some_and(has_std) {
        return;
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("the {TARGET} target is missing and rustup could not be run to add it ({e}); run `rustup target add {TARGET}`")
    });
    assert!(
        status.success(),
        "`rustup target add {TARGET}` failed; run it by hand and build again"
    );
}

fn has_std(libdir: &Path) -> bool {
    std::fs::read_dir(libdir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
        .unwrap_or(false)
}

/// `<target>/wasm-guests/<checkout>`, shared by every profile of the outer
/// build. Several checkouts may share one target directory (CI reuses a
/// cache); the final `.wasm` files have fixed names, so each checkout gets
/// a folder of its own, or one would embed another's components.
pub fn guest_target_dir(out_dir: &Path, root: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut hasher);
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .unwrap_or(out_dir)
        .join("wasm-guests")
        .join(format!("{:016x}", hasher.finish()))
}
