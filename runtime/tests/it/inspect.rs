//! `junction connector inspect` on good and bad files, through the binary.

use std::path::Path;
use std::process::Command;

fn inspect(file: &Path, json: bool) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.args(["connector", "inspect"]).arg(file);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("junction runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_good_connector_prints_its_manifest() {
    let (ok, out, err) = inspect(junction_test_artifacts::PROBE.as_ref(), false);
    assert!(ok, "{err}");
    for needle in [
        "probe 0.1.0",
        "world:            full-connector",
        "backend:          probe >=1.0.0, <2.0.0",
        "digest:           sha256:",
        "requested hosts:  http://127.0.0.1:*",
        "secrets:          token",
        "echo",
        // What it declares beyond the manifest (contract 0.1.2).
        "webhooks:         attack",
        "tasks:            panic, echo",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

#[test]
fn json_output_is_machine_readable() {
    let (ok, out, err) = inspect(junction_test_artifacts::MAPPER_ONLY.as_ref(), true);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["world"], "mapper-unit");
    assert_eq!(v["manifest"]["name"], "upper-mapper");
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(v["size_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn a_broken_describe_is_explained() {
    let (ok, _, err) = inspect(junction_test_artifacts::BROKEN_DESCRIBE.as_ref(), false);
    assert!(!ok);
    assert!(err.contains("describe failed"), "{err}");
    assert!(err.contains("describe is broken in this fixture"), "{err}");
}

#[test]
fn bad_files_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let core = wat::parse_str("(module)").unwrap();
    let empty = wat::parse_str("(component)").unwrap();
    let future = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $f (result u32) (canon lift (core func $i "f")))
            (instance $d (export "describe" (func $f)))
            (export "junction:connector/describe@0.9.0" (instance $d)))"#,
    )
    .unwrap();
    // The same line as this runtime's contract, but newer.
    let newer = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $f (result u32) (canon lift (core func $i "f")))
            (instance $d (export "describe" (func $f)))
            (export "junction:connector/describe@0.1.7" (instance $d)))"#,
    )
    .unwrap();
    let no_describe = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $f (result u32) (canon lift (core func $i "f")))
            (instance $a (export "delete" (func $f)))
            (export "junction:connector/adapter@0.1.0" (instance $a)))"#,
    )
    .unwrap();
    let missing_function = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $f (result u32) (canon lift (core func $i "f")))
            (instance $d (export "describe" (func $f)))
            (instance $a (export "delete" (func $f)))
            (export "junction:connector/describe@0.1.0" (instance $d))
            (export "junction:connector/adapter@0.1.0" (instance $a)))"#,
    )
    .unwrap();
    // Every name is there, but every function has the wrong type.
    let wrong_types = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $f (result u32) (canon lift (core func $i "f")))
            (instance $d (export "describe" (func $f)))
            (instance $a
                (export "check" (func $f)) (export "search" (func $f))
                (export "read" (func $f)) (export "create" (func $f))
                (export "write" (func $f)) (export "delete" (func $f)))
            (export "junction:connector/describe@0.1.0" (instance $d))
            (export "junction:connector/adapter@0.1.0" (instance $a)))"#,
    )
    .unwrap();
    let cases: [(&str, &[u8], &[&str]); 9] = [
        (
            "notes.txt",
            b"hello, this is text",
            &["not a WebAssembly file", "68 65 6c 6c"],
        ),
        ("empty.wasm", b"", &["not a WebAssembly file", "empty file"]),
        (
            "core.wasm",
            &core,
            &["core WebAssembly module, not a component", "wasm32-wasip2"],
        ),
        (
            "nothing.wasm",
            &empty,
            &[
                "exports none of the junction:connector interfaces",
                "exports: nothing",
            ],
        ),
        (
            "future.wasm",
            &future,
            &["version 0.9.0", "contract 0.1.2", "another compatible line"],
        ),
        (
            "newer.wasm",
            &newer,
            &["version 0.1.7", "newer contract", "upgrade junction"],
        ),
        (
            "no-describe.wasm",
            &no_describe,
            &["does not export junction:connector/describe@0.1.2"],
        ),
        (
            "missing-function.wasm",
            &missing_function,
            &[
                "junction:connector/adapter@0.1.2 does not match the contract",
                "`check`",
            ],
        ),
        (
            "wrong-types.wasm",
            &wrong_types,
            &[
                "junction:connector/describe@0.1.2 does not match the contract",
                "type",
            ],
        ),
    ];
    for (name, bytes, needles) in cases {
        let path = write(dir.path(), name, bytes);
        let (ok, _, err) = inspect(&path, false);
        assert!(!ok, "{name} should fail");
        for needle in needles {
            assert!(err.contains(needle), "{name}: missing {needle:?} in {err}");
        }
    }
    let (ok, _, err) = inspect(&dir.path().join("missing.wasm"), false);
    assert!(!ok);
    assert!(
        err.contains("cannot read") && err.contains("missing.wasm"),
        "{err}"
    );
}
