//! Hash-pinned Python virtualenvs: `python -m venv`, then `pip install
//! --require-hashes --only-binary=:all: -r LOCK`, so that what runs is
//! exactly what the lock names, from wheels only.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The Python the virtualenvs are made from: `JUNCTION_PYTHON`, else
/// `python3`.
pub fn system_python() -> String {
    std::env::var("JUNCTION_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Run `cmd`; `what` names it in the error.
pub fn run(cmd: &mut Command, what: &str, hint: &str) -> Result<(), Error> {
    let status = cmd.status().map_err(|source| Error::Spawn {
        what: what.to_string(),
        hint: hint.to_string(),
        source,
    })?;
    if !status.success() {
        return Err(Error::Failed {
            what: what.to_string(),
            status,
        });
    }
    Ok(())
}

/// Make a virtualenv at `venv` (which must not exist) with exactly what
/// `lock` pins; its python. `name` names the lock in errors.
pub fn locked_venv(venv: &Path, lock: &Path, name: &str) -> Result<PathBuf, Error> {
    let system = system_python();
    run(
        Command::new(&system).args(["-m", "venv"]).arg(venv),
        &format!("creating a Python virtualenv with `{system} -m venv`"),
        "it needs Python 3.9 or later with its venv module (on Debian or Ubuntu: `apt install python3 python3-venv`), or JUNCTION_PYTHON set to a python3",
    )?;
    let python = venv.join(if cfg!(windows) {
        "Scripts/python.exe"
    } else {
        "bin/python"
    });
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "--only-binary=:all:",
                "-r",
            ])
            .arg(lock),
        &format!("installing {name} with pip"),
        "the first install needs PyPI or a pip cache that has its wheels",
    )?;
    Ok(python)
}
