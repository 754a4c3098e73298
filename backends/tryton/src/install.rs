//! Tryton installed once per folder: the virtualenv from `tryton.lock` and
//! the template database `setup.py` makes, redone only when either file
//! changes (a stamp holds their digest), and never left half-made: both
//! are built under temporary names and renamed into place.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, io, python};

/// The database name in the template and in every server's copy.
pub const DATABASE: &str = "junction";
/// The admin user's REST application key in the template. Loopback
/// servers for tests and the demo only: it is public.
pub const KEY: &str = "junction-test-rest-key-0123456789";

const LOCK: &str = include_str!("../tryton.lock");
const SETUP: &str = include_str!("../setup.py");

/// An installed Tryton.
#[derive(Debug, Clone)]
pub struct Install {
    /// The virtualenv's python.
    pub python: PathBuf,
    /// The folder with the template database, `company.json` and
    /// `context`.
    pub template: PathBuf,
}

impl Install {
    /// The template company's id.
    pub fn company(&self) -> Result<i64, Error> {
        let path = self.template.join("company.json");
        let text = fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["company"].as_i64())
            .ok_or_else(|| Error::Io {
                what: format!("reading {}", path.display()),
                source: std::io::Error::other(
                    "no \"company\" id in it; delete the folder to install again",
                ),
            })
    }
}

fn stamp() -> String {
    let mut h = DefaultHasher::new();
    (LOCK, SETUP).hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Tryton in `dir` (`dir/venv`, `dir/template`): installed now unless an
/// earlier install of the same lock and setup script is there.
pub fn install(dir: &Path) -> Result<Install, Error> {
    // Absolute: the path goes into trytond.conf, which trytond reads
    // relative to nothing the caller chose (`junction-demo/tryton` failed).
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let dir = &fs::canonicalize(dir).map_err(io(format!("resolving {}", dir.display())))?;
    let venv = dir.join("venv");
    let template = dir.join("template");
    let done = Install {
        python: venv.join("bin/python"),
        template: template.clone(),
    };
    let stamp_file = dir.join(".installed");
    if fs::read_to_string(&stamp_file).unwrap_or_default() == stamp()
        && done.python.exists()
        && template.join(format!("{DATABASE}.sqlite")).exists()
    {
        return Ok(done);
    }
    for old in [&venv, &template] {
        if old.exists() {
            fs::remove_dir_all(old).map_err(io(format!("removing the old {}", old.display())))?;
        }
    }
    let _ = fs::remove_file(&stamp_file);
    let lock = dir.join("tryton.lock");
    fs::write(&lock, LOCK).map_err(io(format!("writing {}", lock.display())))?;
    let setup = dir.join("setup.py");
    fs::write(&setup, SETUP).map_err(io(format!("writing {}", setup.display())))?;

    // A virtualenv records its own path: it is made where it will stay,
    // and the stamp (written last) says when it is whole.
    python::locked_venv(&venv, &lock, "Tryton (tryton.lock)")?;
    let making = dir.join("template.making");
    if making.exists() {
        fs::remove_dir_all(&making).map_err(io(format!("removing {}", making.display())))?;
    }
    fs::create_dir_all(&making).map_err(io(format!("creating {}", making.display())))?;
    fs::write(making.join(format!("{DATABASE}.sqlite")), b"")
        .map_err(io("creating the template database file"))?;
    let config = making.join("trytond.conf");
    fs::write(
        &config,
        format!("[database]\nuri = sqlite://\npath = {}\n", making.display()),
    )
    .map_err(io("writing the template's trytond.conf"))?;
    python::run(
        Command::new(&done.python)
            .arg(&setup)
            .arg(&config)
            .arg(DATABASE)
            .arg(KEY)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "creating the Tryton template database (trytond-admin, then a company and a REST key)",
        "the virtualenv's python could not run",
    )?;
    fs::rename(&making, &template)
        .map_err(io(format!("moving the template to {}", template.display())))?;
    fs::write(&stamp_file, stamp()).map_err(io("writing the install stamp"))?;
    Ok(done)
}
