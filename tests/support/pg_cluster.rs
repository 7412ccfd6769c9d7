//! A throwaway PostgreSQL cluster for tests: `initdb` into a fresh temp dir as the `postgres` user, a
//! server on a free loopback port with its own socket dir and log file, stopped and removed on drop (so
//! also when a test panics). Missing server binaries fail the test with a clear message, never skip.
//! Standard library only: the e2e tests and the library's own store tests both include this file.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One running cluster; dropping it stops the server and deletes its directory.
pub struct PgCluster {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// The newest installed server's bin dir, or a panic saying how to get one (CI installs it in `.ci/run`).
fn server_bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (CI={}): \
             install them with `apt-get install -y postgresql` (.ci/run does this)",
            std::env::var("CI").unwrap_or_default()
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs a server binary as the `postgres` user (initdb and postgres refuse root).
fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|err| panic!("{what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PgCluster {
    /// Creates and starts a cluster whose superuser `postgres` connects over loopback with trust auth.
    pub fn start() -> PgCluster {
        let bin = server_bin_dir();
        let unique = format!(
            "aibridged-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        );
        let root = std::env::temp_dir().join(unique);
        std::fs::create_dir(&root).unwrap();
        // The postgres user must traverse the root and own data/ and sock/.
        run(Command::new("chmod").arg("0711").arg(&root), "chmod root");
        for dir in ["data", "sock"] {
            std::fs::create_dir(root.join(dir)).unwrap();
        }
        run(
            Command::new("chown").arg("-R").arg("postgres:postgres").arg(root.join("data")).arg(root.join("sock")),
            "chown cluster dirs",
        );
        run(Command::new("chmod").arg("0700").arg(root.join("data")), "chmod data");
        let cluster = PgCluster { root, bin, port: free_port() };
        let mut initdb = as_postgres(&cluster.bin.join("initdb"));
        initdb.args(["-E", "UTF8", "--locale=C.UTF-8", "-A", "trust", "-U", "postgres", "-D"]).arg(cluster.data_dir());
        run(&mut initdb, "initdb");
        cluster.pg_ctl(&["start", "-w"]);
        cluster
    }

    /// Applies server settings (`ALTER SYSTEM`, then a restart), for benches that size the server like a
    /// production one rather than with the stock 128 MB of shared buffers.
    pub fn configure(&self, settings: &[(&str, &str)]) {
        for (name, value) in settings {
            self.psql(&format!("ALTER SYSTEM SET {name} = '{value}'"));
        }
        self.pg_ctl(&["restart", "-w", "-m", "fast"]);
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The log file, inside the postgres-owned data dir.
    pub fn log_file(&self) -> PathBuf {
        self.data_dir().join("server.log")
    }

    /// The server's loopback TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `pg_ctl ACTION` with this cluster's data dir, port, socket dir and log file.
    pub fn pg_ctl(&self, action: &[&str]) {
        let mut pg_ctl = as_postgres(&self.bin.join("pg_ctl"));
        pg_ctl.args(action).arg("-D").arg(self.data_dir()).arg("-l").arg(self.log_file()).arg("-o").arg(format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.root.join("sock").display()
        ));
        run(&mut pg_ctl, &format!("pg_ctl {action:?}"));
    }

    /// Runs one SQL statement through `psql` over TCP and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .expect("run psql");
        assert!(output.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Creates a login role and a database it owns (PostgreSQL 15: only the owner may create tables in
    /// `public`, and the gateway needs no superuser), and returns the URL a gateway connects with.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(&format!("CREATE ROLE {name} LOGIN PASSWORD 'pw-{name}-secret'"));
        self.psql(&format!("CREATE DATABASE {name} OWNER {name}"));
        format!("postgres://{name}:pw-{name}-secret@127.0.0.1:{}/{name}?sslmode=disable", self.port)
    }

    /// Runs one SQL statement in database `db` (as the superuser) and returns its unaligned output.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres", "-d", db])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .expect("run psql");
        assert!(output.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The cluster's directory (removed on drop).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Waits (bounded) until the server accepts a query.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "server on port {} never became ready", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data_dir())
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
