//! Builds every guest fixture for `wasm32-wasip2` with a nested cargo, into a
//! target directory of its own so it never waits on the outer build's lock.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const FIXTURES: &[&str] = &["probe", "mapper-only", "broken-describe"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    for dir in [
        "tests/fixtures",
        "wit",
        "guest-sdk/src",
        "guest-sdk/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    ensure_target();

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = guest_target_dir(&out_dir);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // One `cargo rustc` per fixture: it is the only way to ask for a cdylib
    // for wasm alone while native workspace builds see a plain rlib.
    for name in FIXTURES {
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
            .arg(format!("fixture-{name}"));
        // The outer build's flags and wrappers (clippy, coverage) are for the host.
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
            .unwrap_or_else(|e| panic!("failed to run cargo to build fixture {name}: {e}"));
        assert!(
            status.success(),
            "building guest fixture {name} for {TARGET} failed; see the cargo output above"
        );
    }

    let mut consts = String::new();
    for name in FIXTURES {
        let file = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("fixture_{}.wasm", name.replace('-', "_")));
        assert!(
            file.exists(),
            "guest fixture missing after build: {}",
            file.display()
        );
        consts.push_str(&format!(
            "/// `tests/fixtures/{name}` built for {TARGET}.\npub const {}: &str = {:?};\n",
            name.replace('-', "_").to_uppercase(),
            file.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("artifacts.rs"), consts).unwrap();
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

/// `<target>/wasm-guests`, shared by every profile of the outer build.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .unwrap_or(out_dir)
        .join("wasm-guests")
}
