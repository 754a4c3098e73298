//! A real Tryton ERP for the tests: Tryton 8.2 and its party, product,
//! stock and sale modules installed into a virtualenv under the cargo
//! target dir from `tests/artifacts/tryton.lock` (hashes required, wheels
//! only), and a template SQLite database with those modules activated and
//! a REST key for the admin user (`tryton_setup.py`), which each test copies
//! and serves with its own `trytond` on a loopback port. Set up again only
//! when the lock or the setup script changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The database name in the template and every test's copy.
pub const DATABASE: &str = "junction";
/// The admin user's REST application key in the template (tests only, on
/// loopback).
pub const KEY: &str = "junction-test-rest-key-0123456789";

/// The virtualenv's python and the folder holding the template database.
pub fn tryton(root: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let lock = root.join("tests/artifacts/tryton.lock");
    let setup = root.join("tests/artifacts/tryton_setup.py");
    let venv = dir.join("tools/tryton");
    let template = dir.join("tryton-template");
    let stamp = template.join(".junction-inputs");
    let want = super::polyglot::digest(&[lock.clone(), setup.clone()]);
    if template.join(format!("{DATABASE}.sqlite")).exists()
        && fs::read_to_string(&stamp).unwrap_or_default() == want
    {
        return (venv.join("bin/python"), template);
    }
    let _ = fs::remove_dir_all(&venv);
    let _ = fs::remove_dir_all(&template);
    let python = super::polyglot::locked_venv(&venv, &lock, "tests/artifacts/tryton.lock");
    fs::create_dir_all(&template).unwrap();
    fs::write(template.join(format!("{DATABASE}.sqlite")), b"").unwrap();
    let config = template.join("trytond.conf");
    fs::write(
        &config,
        format!(
            "[database]\nuri = sqlite://\npath = {}\n",
            template.display()
        ),
    )
    .unwrap();
    super::polyglot::run(
        Command::new(&python)
            .arg(&setup)
            .arg(&config)
            .arg(DATABASE)
            .arg(KEY)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "creating the Tryton template database (trytond-admin, then a REST key)",
    );
    fs::write(&stamp, want).unwrap();
    (python, template)
}
