//! Processes of the end-to-end bench: starting the mock, nginx, the gateway and the load generator,
//! pinning them to CPUs, reading their RSS and CPU time from /proc, and always stopping them (a guard
//! kills on drop). Every wait here is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::proto::{Job, JobResult};

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopped process may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Polling step while waiting for a process or a port.
const POLL: Duration = Duration::from_millis(20);

/// Why a bench step failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0} did not become ready in time")]
    NotReady(String),
    #[error("{what} exited early ({status}); log: {log}")]
    Exited { what: String, status: String, log: String },
    #[error("load generator: {0}")]
    Loadgen(String),
    #[error("{0} not found")]
    Missing(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// A child process that is stopped (SIGTERM, then SIGKILL after a grace) when dropped.
pub struct Proc {
    /// Name for messages.
    pub name: String,
    child: Child,
}

impl Proc {
    /// Process id (for /proc readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn exit_status(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(s)) => s.to_string(),
            _ => "running".into(),
        }
    }

    /// Stops the process: SIGTERM, bounded wait, SIGKILL.
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; the child is not reaped yet, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU sets for the processes, when pinning is on.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Pinning {
    /// CPUs of the server under test (nginx or the gateway).
    pub proxy: Vec<usize>,
    /// CPUs of the mock upstream and the load generator.
    pub load: Vec<usize>,
}

/// Restricts a command to `cpus` (no-op when empty).
pub fn pin(cmd: &mut Command, cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    let cpus = cpus.to_vec();
    // SAFETY: the closure runs between fork and exec and only calls sched_setaffinity on a set built on
    // its own stack: no allocation, no lock, async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in &cpus {
                libc::CPU_SET(c, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
}

/// Moves a running process (and, through fork, whatever it starts later) onto `cpus`; for servers
/// started by someone else, such as PostgreSQL's postmaster and its helpers.
pub fn pin_running(pid: u32, cpus: &[usize]) -> Result<(), BenchError> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: sched_setaffinity reads one cpu_set_t built on this stack.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(pid as libc::pid_t, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(BenchError::Io { what: format!("pin process {pid}"), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// A loopback port free right now (the small race until the server binds it is acceptable here).
pub fn free_port() -> Result<u16, BenchError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("bind a free port"))?;
    Ok(l.local_addr().map_err(io_err("read a free port"))?.port())
}

/// `GET path` on a fresh connection; the status code, if any answer came.
pub fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let addr: SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn wait_healthy(p: &mut Proc, addr: &str, path: &str, log: &Path) -> Result<(), BenchError> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if !p.alive() {
            return Err(BenchError::Exited { what: p.name.clone(), status: p.exit_status(), log: tail(log) });
        }
        if http_get_status(addr, path) == Some(200) {
            return Ok(());
        }
        std::thread::sleep(POLL * 5);
    }
    Err(BenchError::NotReady(p.name.clone()))
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// Starts `mock-upstream --listen 127.0.0.1:0 --no-record` and reads its address from stdout.
pub fn start_mock(bin: &Path, cpus: &[usize], dir: &Path) -> Result<(Proc, String), BenchError> {
    if !bin.exists() {
        return Err(BenchError::Missing(bin.display().to_string()));
    }
    let log = dir.join("mock.log");
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0", "--no-record"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).map_err(io_err("create mock log"))?);
    pin(&mut cmd, cpus);
    let mut child = cmd.spawn().map_err(io_err("start mock-upstream"))?;
    let stdout = child.stdout.take();
    let mut p = Proc { name: "mock-upstream".into(), child };
    let (tx, rx) = mpsc::channel();
    if let Some(out) = stdout {
        std::thread::spawn(move || {
            // Keep draining stdout for the mock's whole life so it never blocks on a full pipe.
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
    }
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(addr) => Ok((p, addr)),
        Err(_) => {
            let status = p.exit_status();
            p.stop();
            Err(BenchError::Exited { what: "mock-upstream (no `listening on` line)".into(), status, log: tail(&log) })
        }
    }
}

/// Finds nginx: `$NGINX_BIN`, then `nginx` on PATH, then Debian's /usr/sbin/nginx.
pub fn find_nginx() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NGINX_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').map(|d| Path::new(d).join("nginx")).chain([PathBuf::from("/usr/sbin/nginx")]).find(|p| p.is_file())
}

/// Values substituted into the nginx template.
pub struct NginxParams<'a> {
    pub workers: usize,
    pub listen: &'a str,
    pub upstream: &'a str,
    pub max_connections: usize,
    /// The open-file limit nginx inherits (asking for more only earns an alert in its log).
    pub nofile: usize,
}

/// Renders `template` (`@@NAME@@` placeholders) into `dir/nginx.conf` and starts nginx in the foreground.
pub fn start_nginx(
    bin: &Path,
    template: &Path,
    params: &NginxParams,
    cpus: &[usize],
    dir: &Path,
) -> Result<Proc, BenchError> {
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).map_err(io_err("create nginx prefix"))?;
    let text = std::fs::read_to_string(template).map_err(io_err(format!("read {}", template.display())))?;
    let conf = text
        .replace("@@WORKERS@@", &params.workers.to_string())
        .replace("@@LISTEN@@", params.listen)
        .replace("@@UPSTREAM@@", params.upstream)
        .replace("@@PREFIX@@", &prefix.display().to_string())
        .replace("@@CONNECTIONS@@", &params.max_connections.to_string())
        .replace("@@NOFILE@@", &(params.max_connections * 2 + 1024).min(params.nofile).to_string());
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(io_err("write nginx.conf"))?;
    let log = prefix.join("logs/stderr.log");
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(prefix.join("logs/error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(io_err("create nginx log"))?);
    pin(&mut cmd, cpus);
    let child = cmd.spawn().map_err(io_err(format!("start {}", bin.display())))?;
    let mut p = Proc { name: "nginx".into(), child };
    wait_healthy(&mut p, params.listen, "/healthz", &log)?;
    Ok(p)
}

/// One gateway variant to start.
pub struct GatewaySpec<'a> {
    pub name: &'a str,
    pub driver: &'a str,
    pub recording: bool,
    /// Serve `/metrics` (on a free port) so its cost on the request path is measured.
    pub metrics: bool,
    pub workers: usize,
    pub mock_addr: &'a str,
    /// Where it records: `None` for its own SQLite file in the run's directory (the default deployment),
    /// or a `postgres://` URL (several gateways on one server, issue 11).
    pub database_url: Option<&'a str>,
}

/// A started gateway.
pub struct Gateway {
    pub proc: Proc,
    pub addr: String,
    pub token: String,
    /// What its start-up log says about the I/O driver.
    pub driver_reported: String,
}

fn gateway_env(cmd: &mut Command, db_url: &str) {
    cmd.env("CODER_AIBRIDGE_DATABASE_URL", db_url)
        .env("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai")
        .env("CODER_AIBRIDGE_PROVIDER_0_NAME", "openai")
        .env("CODER_AIBRIDGE_PROVIDER_0_KEY", "sk-bench")
        .env_remove("CODER_AIBRIDGE_OPENAI_KEY")
        .env_remove("CODER_AIBRIDGE_ANTHROPIC_KEY");
}

/// Runs a command to completion with a time bound; its stdout.
fn run_bounded(mut cmd: Command, what: &str, limit: Duration) -> Result<String, BenchError> {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(io_err(what))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        if let Some(s) = out.as_mut() {
            let _ = s.read_to_string(&mut o);
        }
        if let Some(s) = err.as_mut() {
            let _ = s.read_to_string(&mut e);
        }
        (o, e)
    });
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let (o, e) = reader.join().unwrap_or_default();
                if !status.success() {
                    return Err(BenchError::Exited {
                        what: what.into(),
                        status: status.to_string(),
                        log: e.trim().to_string(),
                    });
                }
                return Ok(o);
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::NotReady(what.into()));
            }
        }
    }
}

/// Removes terminal colour sequences (the gateway's human log may carry them).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `driver=` field of the gateway's "listening on" line.
fn driver_field(line: &str) -> Option<String> {
    let rest = &line[line.find("driver=")? + "driver=".len()..];
    if let Some(q) = rest.strip_prefix('"') {
        return Some(q[..q.find('"')?].to_string());
    }
    Some(rest.split_whitespace().next()?.to_string())
}

/// The database file of a gateway variant started in `dir` (created, and migrated, by its first token).
pub fn gateway_db(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.db"))
}

/// The `CODER_AIBRIDGE_DATABASE_URL` of an SQLite database file.
pub fn sqlite_url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

/// `aibridged tokens create --user USER --role ROLE` on a variant's database (creating and migrating it);
/// the token it printed.
pub fn create_token(bin: &Path, db_url: &str, user: &str, role: &str) -> Result<String, BenchError> {
    if !bin.exists() {
        return Err(BenchError::Missing(bin.display().to_string()));
    }
    let mut tok = Command::new(bin);
    tok.args(["tokens", "create", "--user", user, "--role", role]);
    gateway_env(&mut tok, db_url);
    let token = run_bounded(tok, "aibridged tokens create", START_TIMEOUT)?.trim().to_string();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(BenchError::Loadgen(format!("`tokens create` printed an unexpected line ({} chars)", token.len())));
    }
    Ok(token)
}

/// Creates a token and starts `aibridged server` for one variant; waits for its "listening on" line and
/// a 200 from /healthz.
pub fn start_gateway(bin: &Path, spec: &GatewaySpec, cpus: &[usize], dir: &Path) -> Result<Gateway, BenchError> {
    start_gateway_with_env(bin, spec, cpus, dir, &[])
}

/// [`start_gateway`] with extra environment for the server (applied last, so it overrides the defaults,
/// e.g. `CODER_AIBRIDGE_ADMIN_ADDRESS` to turn the sessions API on).
pub fn start_gateway_with_env(
    bin: &Path,
    spec: &GatewaySpec,
    cpus: &[usize],
    dir: &Path,
    extra_env: &[(&str, &str)],
) -> Result<Gateway, BenchError> {
    let db_url = spec.database_url.map_or_else(|| sqlite_url(&gateway_db(dir, spec.name)), str::to_string);
    let token = create_token(bin, &db_url, "bench", "user")?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let log = dir.join(format!("{}.log", spec.name));
    let mut cmd = Command::new(bin);
    cmd.arg("server")
        .env("CODER_HTTP_ADDRESS", &addr)
        .env("CODER_AIBRIDGE_WORKERS", spec.workers.to_string())
        .env("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", format!("http://{}/v1", spec.mock_addr))
        .env("AIBRIDGED_IO_DRIVER", spec.driver)
        .env("AIBRIDGED_RECORDING", if spec.recording { "on" } else { "off" })
        .env("CODER_PROMETHEUS_ENABLE", if spec.metrics { "true" } else { "false" })
        .env("CODER_PROMETHEUS_ADDRESS", "127.0.0.1:0")
        // No sessions API in the latency runs unless a variant asks for one (several gateways may run).
        .env("CODER_AIBRIDGE_ADMIN_ADDRESS", "")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(io_err("create gateway log"))?);
    gateway_env(&mut cmd, &db_url);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    pin(&mut cmd, cpus);
    let child = cmd.spawn().map_err(io_err("start aibridged server"))?;
    let mut proc = Proc { name: spec.name.to_string(), child };
    let deadline = Instant::now() + START_TIMEOUT;
    let mut driver_reported = None;
    while Instant::now() < deadline && driver_reported.is_none() {
        if !proc.alive() {
            return Err(BenchError::Exited { what: spec.name.into(), status: proc.exit_status(), log: tail(&log) });
        }
        let text = strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default());
        if let Some(line) = text.lines().find(|l| l.contains("listening on http://")) {
            driver_reported = Some(driver_field(line).unwrap_or_else(|| "unknown".into()));
        } else {
            std::thread::sleep(POLL);
        }
    }
    let driver_reported = driver_reported.ok_or_else(|| BenchError::NotReady(spec.name.into()))?;
    wait_healthy(&mut proc, &addr, "/healthz", &log)?;
    Ok(Gateway { proc, addr, token, driver_reported })
}

/// Pids of a process and its direct children (nginx master and workers).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // Fields after the parenthesised command name: state, ppid, ...
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
                out.push(child);
            }
        }
    }
    out
}

/// Whether a process exists and is not a zombie.
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

/// Resident set of the processes, KiB.
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// User + system CPU microseconds in a /proc `stat` line, with the command name it carries.
fn stat_cpu_us(stat: &str) -> Option<(String, u64)> {
    // SAFETY: sysconf with a valid name has no side effects.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let (head, after) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let f: Vec<&str> = after.split_whitespace().collect();
    // After ')': state(0) ppid(1) ... utime is field 14 of stat, i.e. index 11 here; stime 12.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((comm, ticks * 1_000_000 / tck))
}

/// User + system CPU time of the processes (all their threads), microseconds.
pub fn cpu_us(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| stat_cpu_us(&s).map(|(_, us)| us))
        .sum()
}

/// CPU microseconds of every thread of the processes, keyed by (pid, tid), with the thread's name.
pub fn thread_cpu_us(pids: &[u32]) -> std::collections::BTreeMap<(u32, u32), (String, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for &pid in pids {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if let Some(v) = stat_cpu_us(&stat) {
                out.insert((pid, tid), v);
            }
        }
    }
    out
}

/// Runs the load generator on a job and returns its result line.
pub struct Loadgen {
    pub bin: PathBuf,
    pub cpus: Vec<usize>,
    pub dir: PathBuf,
    pub seq: std::cell::Cell<u32>,
}

impl Loadgen {
    fn spawn(&self, job: &Job) -> Result<(Proc, mpsc::Receiver<String>, Option<ChildStdin>), BenchError> {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let path = self.dir.join(format!("job-{n}.json"));
        let text = serde_json::to_string_pretty(job).map_err(|e| BenchError::Loadgen(e.to_string()))?;
        std::fs::write(&path, text).map_err(io_err("write job file"))?;
        let log = self.dir.join(format!("job-{n}.stderr"));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--job")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).map_err(io_err("create loadgen log"))?);
        pin(&mut cmd, &self.cpus);
        let mut child = cmd.spawn().map_err(io_err("start aibridged-loadgen"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Ok((Proc { name: "aibridged-loadgen".into(), child }, rx, stdin))
    }

    fn parse(line: &str) -> Result<JobResult, BenchError> {
        serde_json::from_str(line).map_err(|e| BenchError::Loadgen(format!("unreadable result ({e}): {line}")))
    }

    fn no_result(&self, e: mpsc::RecvTimeoutError, limit: Duration) -> BenchError {
        match e {
            mpsc::RecvTimeoutError::Timeout => BenchError::Loadgen(format!("no result within {limit:?}")),
            mpsc::RecvTimeoutError::Disconnected => {
                let log = self.dir.join(format!("job-{}.stderr", self.seq.get()));
                BenchError::Loadgen(format!("exited without a result: {}", tail(&log)))
            }
        }
    }

    /// Runs a job to completion (killed after `limit`).
    pub fn run(&self, job: &Job, limit: Duration) -> Result<JobResult, BenchError> {
        let (mut p, rx, _stdin) = self.spawn(job)?;
        let line = rx.recv_timeout(limit).map_err(|e| self.no_result(e, limit))?;
        let deadline = Instant::now() + STOP_GRACE;
        while p.alive() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        Self::parse(&line)
    }

    /// Starts a hold job; returns once the streams are open, with the readiness result and a handle whose
    /// `release` closes them.
    pub fn hold(&self, job: &Job, limit: Duration) -> Result<(JobResult, Held), BenchError> {
        let (p, rx, stdin) = self.spawn(job)?;
        let line =
            rx.recv_timeout(limit).map_err(|_| BenchError::Loadgen(format!("hold not ready within {limit:?}")))?;
        Ok((Self::parse(&line)?, Held { proc: p, stdin }))
    }
}

/// Streams held open by a load generator.
pub struct Held {
    proc: Proc,
    stdin: Option<ChildStdin>,
}

impl Held {
    /// Tells the load generator to close its streams and waits (bounded) for it to exit.
    pub fn release(mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"release\n");
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.proc.alive() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
}

/// Raises this process's open-file limit as far as allowed (children inherit it); the resulting soft limit.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit read and write one rlimit struct through valid pointers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let raised = libc::rlimit { rlim_cur: want.max(lim.rlim_cur), rlim_max: want.max(lim.rlim_max) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let soft = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills one cpu_set_t through a valid pointer.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Checks of the log parsing, run by `cargo test --bench e2e` (see `report::self_test`).
pub mod self_test {
    use super::*;

    /// Panics on a failed assertion.
    pub fn run() {
        assert_eq!(
            driver_field("INFO aibridged listening on http://x address=a driver=io_uring enabled=true").as_deref(),
            Some("io_uring")
        );
        assert_eq!(
            driver_field("x driver=\"epoll (io_uring unavailable)\" y").as_deref(),
            Some("epoll (io_uring unavailable)")
        );
        assert_eq!(strip_ansi("\u{1b}[32mINFO\u{1b}[0m ok"), "INFO ok");
        let stat = "42 (aibridged w0) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 0 0";
        // SAFETY: as in stat_cpu_us.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        assert_eq!(stat_cpu_us(stat), Some(("aibridged w0".to_string(), 300 * 1_000_000 / tck)));
    }
}
