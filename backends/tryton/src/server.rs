//! One Tryton server: a copy of the template database in a folder of the
//! caller's, served by Tryton's WSGI app one request at a time
//! (`serve.py`) on a free loopback port, ready when its
//! REST API answers, killed when dropped. [`Server::rest`] is a minimal
//! blocking client for checks and set-up (one request per connection).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{DATABASE, Error, Install, KEY, io, python};

const SEED: &str = include_str!("../seed.py");
const SERVE: &str = include_str!("../serve.py");

/// How long `trytond` may take to answer after it starts.
const READY_WITHIN: Duration = Duration::from_secs(60);

pub struct Server {
    pub addr: SocketAddr,
    /// The template company's id.
    pub company: i64,
    /// `X-Tryton-Context`: base64url of `{"company": ID}`, as REST calls
    /// send it (prices and sales are per company).
    pub context: String,
    dir: PathBuf,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Copy the template into `dir` (its database replaced) and serve it;
    /// returns when the REST API answers.
    pub fn start(install: &Install, dir: &Path) -> Result<Server, Error> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        // Absolute, for trytond.conf (see `install`).
        let dir =
            &std::fs::canonicalize(dir).map_err(io(format!("resolving {}", dir.display())))?;
        let db = format!("{DATABASE}.sqlite");
        std::fs::copy(install.template.join(&db), dir.join(&db)).map_err(io(format!(
            "copying the template database into {}",
            dir.display()
        )))?;
        let context = std::fs::read_to_string(install.template.join("context"))
            .map_err(io("reading the template's REST context"))?;
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("finding a free loopback port"))?;
        let config = dir.join("trytond.conf");
        std::fs::write(
            &config,
            format!("[database]\nuri = sqlite://\npath = {}\n", dir.display()),
        )
        .map_err(io("writing trytond.conf"))?;
        let log =
            std::fs::File::create(dir.join("trytond.log")).map_err(io("creating trytond.log"))?;
        // Not `trytond`: it serves with threads, which Tryton's SQLite
        // backend does not survive (see serve.py).
        let serve = dir.join("serve.py");
        std::fs::write(&serve, SERVE).map_err(io("writing serve.py"))?;
        let child = Command::new(&install.python)
            .arg(&serve)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .env("TRYTOND_CONFIG", &config)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().map_err(io("opening trytond.log"))?,
            ))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|source| Error::Spawn {
                what: format!("{} serve.py", install.python.display()),
                hint: String::from("install Tryton again by deleting its folder"),
                source,
            })?;
        let server = Server {
            addr,
            company: install.company()?,
            context: context.trim().to_string(),
            dir: dir.to_path_buf(),
            child,
        };
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = server.rest("GET", "party.party?s=1", None) {
                return Ok(server);
            }
            if started.elapsed() > READY_WITHIN {
                return Err(Error::NotReady {
                    addr,
                    seconds: READY_WITHIN.as_secs(),
                    log: server.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fill the database with `parties`, `products` and `sales` (three
    /// lines each) through trytond's own API (`seed.py`), for benchmarks.
    pub fn seed(
        &self,
        install: &Install,
        parties: usize,
        products: usize,
        sales: usize,
    ) -> Result<(), Error> {
        let script = self.dir.join("seed.py");
        std::fs::write(&script, SEED).map_err(io("writing seed.py"))?;
        python::run(
            Command::new(&install.python)
                .arg(&script)
                .arg(self.dir.join("trytond.conf"))
                .arg(DATABASE)
                .args([parties, products, sales].map(|n| n.to_string()))
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            "seeding the Tryton database",
            "the virtualenv's python could not run",
        )
    }

    /// `http://127.0.0.1:PORT/<database>`, the base of its REST API.
    pub fn base_url(&self) -> String {
        format!("http://{}/{DATABASE}", self.addr)
    }

    /// The folder with the server's database and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.dir.join(format!("{DATABASE}.sqlite"))
    }

    /// What `trytond` wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("trytond.log")).unwrap_or_default()
    }

    /// `METHOD /<database>/rest/model/<path>` with the admin's key and the
    /// company's context; the status and the JSON answer (`null` when
    /// there is none).
    pub fn rest(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        self.exchange(
            method,
            &format!("/{DATABASE}/rest/model/{path}"),
            &[
                ("Authorization", format!("bearer {KEY}")),
                ("X-Tryton-Context", self.context.clone()),
            ],
            body,
        )
    }

    /// One HTTP/1.1 request on a fresh connection.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        let failed = |reason: String| Error::Rest {
            addr: self.addr,
            reason,
        };
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| failed(format!("connecting: {e}")))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| failed(e.to_string()))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let extra: String = headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\r\n"))
            .collect();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: tryton\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| failed(format!("sending {method} {path}: {e}")))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .map_err(|e| failed(format!("reading the answer to {method} {path}: {e}")))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| failed(format!("{method} {path}: the answer has no header end")))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| failed(format!("{method} {path}: no status in {head:?}")))?;
        Ok((status, serde_json::from_str(rest).unwrap_or(Value::Null)))
    }
}
