//! A PostgreSQL server of a test's own, which the test may restart
//! without disturbing the shared server the other tests use.

/// A PostgreSQL server of the test's own (initdb into a temporary folder,
/// a free port), so that it can be restarted without disturbing the other
/// tests' server.
pub struct PrivateServer {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    options: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateServer {
    /// A started server for a PostgreSQL test, or `None` (said on stderr)
    /// when PostgreSQL tests are not asked for or cannot run here.
    pub async fn for_test() -> Option<PrivateServer> {
        if std::env::var_os("JUNCTION_TEST_POSTGRES_URL").is_none() {
            eprintln!("skipped: PostgreSQL tests (set JUNCTION_TEST_POSTGRES_URL)");
            return None;
        }
        tokio::task::spawn_blocking(PrivateServer::start)
            .await
            .unwrap()
    }

    /// `None` (said on stderr) where PostgreSQL's server binaries or a way
    /// to run them as the `postgres` user are missing — unless
    /// `JUNCTION_REQUIRE_PRIVATE_POSTGRES` is set (as `.ci/run` does): then
    /// the test fails, naming what is missing, instead of passing unrun.
    pub fn start() -> Option<PrivateServer> {
        let skip = |why: &str| -> Option<PrivateServer> {
            let message = format!("a database restart test cannot run here: {why}");
            if std::env::var_os("JUNCTION_REQUIRE_PRIVATE_POSTGRES").is_some() {
                panic!("{message} (JUNCTION_REQUIRE_PRIVATE_POSTGRES is set)");
            }
            eprintln!("skipped: {message}");
            None
        };
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| d.path().join("bin"))
            .find(|b| b.join("pg_ctl").exists());
        let Some(bin) = bin else {
            return skip(
                "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (Debian postgresql)",
            );
        };
        if !std::path::Path::new("/usr/sbin/runuser").exists() {
            return skip("no /usr/sbin/runuser to run them as the postgres user");
        }
        let Some(uid) = postgres_uid() else {
            return skip("no postgres user in /etc/passwd");
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if let Err(e) = std::os::unix::fs::chown(dir.path(), Some(uid), None) {
            return skip(&format!("cannot give the postgres user a data folder: {e}"));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PrivateServer {
            options: format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.path().display()
            ),
            bin,
            data,
            port,
            _dir: dir,
        };
        server.run(&[
            "initdb",
            "-D",
            &server.data.display().to_string(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        server.ctl("start");
        Some(server)
    }

    fn run(&self, args: &[&str]) {
        let out = std::process::Command::new("/usr/sbin/runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(args[0]))
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn ctl(&self, action: &str) {
        let log = self.data.with_file_name("log");
        self.run(&[
            "pg_ctl",
            "-D",
            &self.data.display().to_string(),
            "-o",
            &self.options,
            "-l",
            &log.display().to_string(),
            "-m",
            "fast",
            "-w",
            action,
        ]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("/usr/sbin/runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

fn postgres_uid() -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|uid| uid.parse().ok())
}
