//! Confined mode of the end-to-end bench (issue 13): nginx's workers and the whole gateway process (worker,
//! sink and every helper thread) confined to the same CPUs, the mock and the load on the others, the way an
//! operator gives a proxy a CPU budget. Each server is saturated in interleaved rounds by
//! `aibridged-loadgen` and, when installed, by `wrk`; the CPU per request by thread and the busiest
//! thread's involuntary context switches are read from /proc. Reports medians over the rounds with their
//! spread, and checks issue 13's targets against them. Runs its own servers and mock; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::{self, BenchError, Gateway, GatewaySpec, Loadgen, NginxParams, Proc};
use crate::proto::{Job, JobResult, RequestSpec, Target};
use crate::report::{Check, Kind};

/// Target: recording on keeps at least this share of recording off's saturated req/s.
const LIMIT_RECORDING_SHARE: f64 = 0.9;
/// Target: recording on relays at least nginx's saturated req/s on the same CPUs.
const LIMIT_NGINX_SHARE: f64 = 1.0;
/// Target: CPU µs per interception that recording may add, all gateway threads together.
const LIMIT_RECORDING_CPU_US: f64 = 3.0;
/// Target: involuntary switches per second of the busiest thread (the worker) at full load.
const LIMIT_WORKER_INVOLUNTARY_PER_S: f64 = 50.0;

/// How the confined phase runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfinedSettings {
    pub rounds: u32,
    pub run_ms: u64,
    pub connections: u32,
    pub workers: usize,
}

/// Median and spread of one figure over the rounds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[v.len() - 1], n: v.len() })
    }

    fn cell(s: &Option<Spread>, decimals: usize) -> String {
        match s {
            Some(s) if s.n > 1 => {
                format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = decimals)
            }
            Some(s) => format!("{:.d$}", s.median, d = decimals),
            None => "—".into(),
        }
    }
}

/// One confined server's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfinedRow {
    pub name: String,
    pub kind: Kind,
    pub driver: String,
    pub recording: Option<bool>,
    /// Saturated req/s per round, driven by aibridged-loadgen.
    pub loadgen_rps: Vec<f64>,
    /// Saturated req/s per round, driven by wrk (empty when wrk is not installed).
    pub wrk_rps: Vec<f64>,
    /// Server CPU µs per request per loadgen round (all threads / processes).
    pub cpu_us_per_req: Vec<f64>,
    /// CPU µs per request by thread name over all loadgen rounds, busiest first.
    pub cpu_by_thread: Vec<(String, f64)>,
    /// Involuntary context switches per second of the busiest thread, per loadgen round.
    pub busiest_involuntary_per_s: Vec<f64>,
    pub problems: Vec<String>,
    #[serde(skip)]
    target: Option<Target>,
    #[serde(skip)]
    pids: Vec<u32>,
}

impl ConfinedRow {
    fn new(name: &str, kind: Kind, driver: &str, recording: Option<bool>) -> ConfinedRow {
        ConfinedRow {
            name: name.into(),
            kind,
            driver: driver.into(),
            recording,
            loadgen_rps: Vec::new(),
            wrk_rps: Vec::new(),
            cpu_us_per_req: Vec::new(),
            cpu_by_thread: Vec::new(),
            busiest_involuntary_per_s: Vec::new(),
            problems: Vec::new(),
            target: None,
            pids: Vec::new(),
        }
    }

    pub fn loadgen(&self) -> Option<Spread> {
        Spread::of(&self.loadgen_rps)
    }

    pub fn wrk(&self) -> Option<Spread> {
        Spread::of(&self.wrk_rps)
    }

    pub fn cpu(&self) -> Option<Spread> {
        Spread::of(&self.cpu_us_per_req)
    }

    pub fn involuntary(&self) -> Option<Spread> {
        Spread::of(&self.busiest_involuntary_per_s)
    }
}

/// What the confined phase needs from the run.
pub struct Context<'a> {
    pub gateway_bin: &'a Path,
    pub mock_bin: &'a Path,
    pub loadgen_bin: &'a Path,
    pub nginx_template: &'a Path,
    pub body: &'a str,
    pub proxy_path: &'a str,
    pub dir: &'a Path,
}

/// The result of the phase: rows, the CPU sets used, and notes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Confined {
    pub server_cpus: Vec<usize>,
    pub load_cpus: Vec<usize>,
    pub rows: Vec<ConfinedRow>,
    pub notes: Vec<String>,
}

/// Per-thread readings of a set of processes: CPU µs and involuntary switches, keyed by (pid, tid).
type ThreadStats = std::collections::BTreeMap<(u32, u32), (String, u64, u64)>;

fn thread_stats(pids: &[u32]) -> ThreadStats {
    let cpu = procs::thread_cpu_us(pids);
    cpu.into_iter()
        .map(|((pid, tid), (name, us))| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
            let invol = status
                .lines()
                .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            ((pid, tid), (name, us, invol))
        })
        .collect()
}

/// Differences between two readings: (name, CPU µs, involuntary switches) per thread, busiest first.
fn thread_deltas(before: &ThreadStats, after: &ThreadStats) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = after
        .iter()
        .map(|(k, (name, us, inv))| {
            let (us0, inv0) = before.get(k).map_or((0, 0), |(_, u, i)| (*u, *i));
            (name.clone(), us.saturating_sub(us0), inv.saturating_sub(inv0))
        })
        .collect();
    out.sort_by_key(|t| std::cmp::Reverse(t.1));
    out
}

/// `wrk`, when installed.
pub fn find_wrk() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("wrk"))
        .find(|p| p.is_file());
    from_path.or_else(|| Some(PathBuf::from("/usr/bin/wrk")).filter(|p| p.is_file()))
}

/// The `Requests/sec:` figure of wrk's report, and its non-2xx count.
pub fn parse_wrk(out: &str) -> Option<(f64, u64)> {
    let rps = out.lines().find_map(|l| l.trim().strip_prefix("Requests/sec:"))?.trim().parse().ok()?;
    let bad = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some((rps, bad))
}

/// The Lua script wrk posts `body` with (headers of the target included).
fn wrk_script(dir: &Path, target: &Target, body: &str) -> Result<PathBuf, BenchError> {
    let lua_str = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut text = format!(
        "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
        lua_str(body)
    );
    for (k, v) in &target.headers {
        text.push_str(&format!("wrk.headers[{}] = {}\n", lua_str(k), lua_str(v)));
    }
    let path = dir.join(format!("wrk-{}.lua", target.name));
    std::fs::write(&path, text).map_err(|source| BenchError::Io { what: "write wrk script".into(), source })?;
    Ok(path)
}

/// One wrk saturation run (one thread on the load CPUs, killed if it overruns).
fn run_wrk(wrk: &Path, script: &Path, target: &Target, s: &ConfinedSettings, cpus: &[usize]) -> Result<f64, String> {
    let secs = (s.run_ms as f64 / 1000.0).ceil().max(1.0) as u64;
    let mut cmd = Command::new(wrk);
    cmd.args(["-t1", &format!("-c{}", s.connections), &format!("-d{secs}s"), "-s"])
        .arg(script)
        .arg(format!("http://{}{}", target.addr, target.path))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    procs::pin(&mut cmd, cpus);
    let mut child = cmd.spawn().map_err(|e| format!("start wrk: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("wrk overran its time".into());
            }
        }
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    match parse_wrk(&out) {
        Some((_, bad)) if bad > 0 => Err(format!("wrk: {bad} non-2xx responses")),
        Some((rps, _)) => Ok(rps),
        None => Err(format!("unreadable wrk output: {}", out.trim())),
    }
}

/// Starts the confined servers, saturates each in interleaved rounds, and stops them.
pub fn run(ctx: &Context, s: &ConfinedSettings) -> Confined {
    let mut out = Confined::default();
    let cpus = procs::allowed_cpus();
    if cpus.len() < 2 {
        out.notes.push(format!("confined mode needs 2 CPUs, {} allowed: skipped", cpus.len()));
        return out;
    }
    let k = s.workers.min(cpus.len() - 1);
    out.server_cpus = cpus[cpus.len() - k..].to_vec();
    out.load_cpus = cpus[..cpus.len() - k].to_vec();
    let dir = ctx.dir.join("confined");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        out.notes.push(format!("confined mode: {e}"));
        return out;
    }
    let mut servers: Vec<Proc> = Vec::new();
    let (mock, mock_addr) = match procs::start_mock(ctx.mock_bin, &out.load_cpus, &dir) {
        Ok(m) => m,
        Err(e) => {
            out.notes.push(format!("confined mode: mock did not start: {e}"));
            return out;
        }
    };

    let mut nginx = ConfinedRow::new("nginx-confined", Kind::Nginx, "epoll", None);
    match procs::find_nginx() {
        None => nginx.problems.push("nginx not installed".into()),
        Some(bin) => match procs::free_port() {
            Err(e) => nginx.problems.push(e.to_string()),
            Ok(port) => {
                let listen = format!("127.0.0.1:{port}");
                let params = NginxParams {
                    workers: s.workers,
                    listen: &listen,
                    upstream: &mock_addr,
                    max_connections: 4096,
                    nofile: 16_384,
                };
                match procs::start_nginx(&bin, ctx.nginx_template, &params, &out.server_cpus, &dir) {
                    Ok(p) => {
                        nginx.pids = procs::with_children(p.pid());
                        nginx.target = Some(Target {
                            name: nginx.name.clone(),
                            addr: listen,
                            path: ctx.proxy_path.into(),
                            headers: vec![],
                        });
                        servers.push(p);
                    }
                    Err(e) => nginx.problems.push(format!("nginx did not start: {e}")),
                }
            }
        },
    }
    out.rows.push(nginx);
    for (name, driver, recording) in [
        ("aibridged-uring-rec-on-confined", "io_uring", true),
        ("aibridged-uring-rec-off-confined", "io_uring", false),
        ("aibridged-epoll-rec-on-confined", "epoll", true),
        ("aibridged-epoll-rec-off-confined", "epoll", false),
    ] {
        let mut row = ConfinedRow::new(name, Kind::Gateway, driver, Some(recording));
        let spec = GatewaySpec {
            name,
            driver,
            recording,
            workers: s.workers,
            mock_addr: &mock_addr,
            metrics: false,
            database_url: None,
        };
        match procs::start_gateway(ctx.gateway_bin, &spec, &out.server_cpus, &dir) {
            Ok(Gateway { proc, addr, token, driver_reported }) => {
                if !driver_reported.starts_with(driver) {
                    row.problems.push(format!("asked for {driver}, gateway reports {driver_reported}"));
                }
                row.driver = driver_reported;
                row.pids = vec![proc.pid()];
                row.target = Some(Target {
                    name: name.into(),
                    addr,
                    path: ctx.proxy_path.into(),
                    headers: vec![("Authorization".into(), format!("Bearer {token}"))],
                });
                servers.push(proc);
            }
            Err(e) => row.problems.push(format!("gateway did not start: {e}")),
        }
        out.rows.push(row);
    }

    let loadgen = Loadgen {
        bin: ctx.loadgen_bin.to_path_buf(),
        cpus: out.load_cpus.clone(),
        dir: dir.clone(),
        seq: Default::default(),
    };
    let wrk = find_wrk();
    if wrk.is_none() {
        out.notes.push("wrk not installed: the confined rows have no wrk column".into());
    }
    let request = RequestSpec { body: ctx.body.into(), headers: Vec::new() };
    let mut by_thread: Vec<Vec<(String, u64)>> = vec![Vec::new(); out.rows.len()];
    let mut completed = vec![0u64; out.rows.len()];
    for round in 0..s.rounds {
        for (i, row) in out.rows.iter_mut().enumerate() {
            let Some(target) = row.target.clone() else { continue };
            if row.pids.first().is_some_and(|&p| !procs::running(p)) {
                row.problems.push("the server exited".into());
                row.target = None;
                continue;
            }
            eprintln!("e2e: confined round {}/{} through {}", round + 1, s.rounds, row.name);
            let pids = if row.kind == Kind::Nginx { procs::with_children(row.pids[0]) } else { row.pids.clone() };
            let before = thread_stats(&pids);
            let job = Job::Saturate {
                target: target.clone(),
                request: request.clone(),
                connections: s.connections,
                duration_ms: s.run_ms,
            };
            let res = loadgen.run(&job, Duration::from_millis(s.run_ms) + Duration::from_secs(60));
            let deltas = thread_deltas(&before, &thread_stats(&pids));
            match res {
                Ok(JobResult::Saturate { completed: n, errors, requests_per_sec, elapsed_ms, first_error, .. }) => {
                    if errors > 0 {
                        row.problems.push(format!("{errors} errors ({})", first_error.unwrap_or_default()));
                    }
                    row.loadgen_rps.push(requests_per_sec);
                    if n > 0 {
                        let cpu: u64 = deltas.iter().map(|t| t.1).sum();
                        row.cpu_us_per_req.push(cpu as f64 / n as f64);
                        completed[i] += n;
                        for (name, us, _) in &deltas {
                            match by_thread[i].iter_mut().find(|(n, _)| n == name) {
                                Some((_, v)) => *v += us,
                                None => by_thread[i].push((name.clone(), *us)),
                            }
                        }
                    }
                    if let Some((_, _, inv)) = deltas.first().filter(|_| elapsed_ms > 0) {
                        row.busiest_involuntary_per_s.push(*inv as f64 * 1000.0 / elapsed_ms as f64);
                    }
                }
                Ok(_) => row.problems.push("unexpected loadgen result".into()),
                Err(e) => row.problems.push(format!("loadgen saturation failed: {e}")),
            }
            if let Some(wrk) = &wrk {
                let result = wrk_script(&dir, &target, ctx.body)
                    .map_err(|e| e.to_string())
                    .and_then(|script| run_wrk(wrk, &script, &target, s, &out.load_cpus));
                match result {
                    Ok(rps) => row.wrk_rps.push(rps),
                    Err(e) => row.problems.push(e),
                }
            }
        }
    }
    for (i, row) in out.rows.iter_mut().enumerate() {
        if completed[i] > 0 {
            let mut t: Vec<(String, f64)> = by_thread[i]
                .iter()
                .map(|(n, us)| (n.clone(), *us as f64 / completed[i] as f64))
                .filter(|(_, v)| *v >= 0.05)
                .collect();
            t.sort_by(|a, b| b.1.total_cmp(&a.1));
            row.cpu_by_thread = t;
        }
    }
    for mut p in servers {
        p.stop();
    }
    drop(mock);
    out
}

/// The confined rows as a markdown table.
pub fn table(c: &Confined) -> String {
    let mut out = String::from(
        "| path | driver | req/s (loadgen) | req/s (wrk) | CPU µs/req | by thread (µs/req) | busiest thread invol. switches/s |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in &c.rows {
        let threads: Vec<String> = r.cpu_by_thread.iter().take(4).map(|(n, v)| format!("{n} {v:.1}")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.driver,
            Spread::cell(&r.loadgen(), 0),
            Spread::cell(&r.wrk(), 0),
            Spread::cell(&r.cpu(), 1),
            if threads.is_empty() { "—".into() } else { threads.join(", ") },
            Spread::cell(&r.involuntary(), 0),
        ));
    }
    out
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    }
}

fn ratio(a: Option<Spread>, b: Option<Spread>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| b.median > 0.0).map(|(a, b)| a.median / b.median)
}

fn num(v: Option<f64>, d: usize) -> String {
    v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "—".into())
}

/// Issue 13's targets on the confined rows (medians over the rounds).
pub fn checks(c: &Confined) -> Vec<Check> {
    let mut out = Vec::new();
    let nginx = c.rows.iter().find(|r| r.kind == Kind::Nginx);
    let driver_of = |r: &ConfinedRow| r.name.split('-').nth(1).map(str::to_owned);
    for on in c.rows.iter().filter(|r| r.recording == Some(true)) {
        let off = c.rows.iter().find(|r| r.recording == Some(false) && driver_of(r) == driver_of(on));
        for (tool, get) in
            [("loadgen", ConfinedRow::loadgen as fn(&ConfinedRow) -> Option<Spread>), ("wrk", ConfinedRow::wrk)]
        {
            if let Some(off) = off {
                let r = ratio(get(on), get(off));
                out.push(Check {
                    target: format!("recording on ≥ {LIMIT_RECORDING_SHARE}× recording off, confined ({tool} req/s)"),
                    row: format!("{} / {}", on.name, off.name),
                    measured: num(r, 3),
                    limit: format!("≥ {LIMIT_RECORDING_SHARE}"),
                    verdict: verdict(r.map(|r| r >= LIMIT_RECORDING_SHARE)),
                });
            }
            let r = ratio(get(on), nginx.and_then(get));
            out.push(Check {
                target: format!("recording on ≥ {LIMIT_NGINX_SHARE}× nginx, same CPUs ({tool} req/s)"),
                row: format!("{} / nginx-confined", on.name),
                measured: num(r, 3),
                limit: format!("≥ {LIMIT_NGINX_SHARE}"),
                verdict: verdict(r.map(|r| r >= LIMIT_NGINX_SHARE)),
            });
        }
        if let Some(off) = off {
            let added = on.cpu().zip(off.cpu()).map(|(a, b)| a.median - b.median);
            out.push(Check {
                target: format!("recording adds ≤ {LIMIT_RECORDING_CPU_US} µs CPU per interception (all threads)"),
                row: format!("{} − {}", on.name, off.name),
                measured: format!("{} µs", num(added, 1)),
                limit: format!("≤ {LIMIT_RECORDING_CPU_US} µs"),
                verdict: verdict(added.map(|a| a <= LIMIT_RECORDING_CPU_US)),
            });
        }
        let inv = on.involuntary().map(|s| s.median);
        out.push(Check {
            target: format!("worker involuntary switches ≤ {LIMIT_WORKER_INVOLUNTARY_PER_S}/s at full load"),
            row: on.name.clone(),
            measured: format!("{}/s", num(inv, 0)),
            limit: format!("≤ {LIMIT_WORKER_INVOLUNTARY_PER_S}/s"),
            verdict: verdict(inv.map(|i| i <= LIMIT_WORKER_INVOLUNTARY_PER_S)),
        });
    }
    let uring = c.rows.iter().find(|r| r.recording == Some(true) && driver_of(r).as_deref() == Some("uring"));
    let epoll = c.rows.iter().find(|r| r.recording == Some(true) && driver_of(r).as_deref() == Some("epoll"));
    if let (Some(u), Some(e)) = (uring, epoll) {
        let (cu, ce) = (u.cpu().map(|s| s.median), e.cpu().map(|s| s.median));
        out.push(Check {
            target: "io_uring with recording costs ≤ epoll with recording (CPU µs/req, load on the other CPU)".into(),
            row: format!("{} / {}", u.name, e.name),
            measured: format!("{} vs {}", num(cu, 1), num(ce, 1)),
            limit: "≤".into(),
            verdict: verdict(cu.zip(ce).map(|(u, e)| u <= e)),
        });
    }
    out
}

/// Checks of this file's arithmetic (run by `cargo test --bench e2e`).
pub mod self_test {
    use super::*;

    pub fn run() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(&[4.0, 1.0]).unwrap().median, 2.5);
        assert!(Spread::of(&[]).is_none());
        let wrk = "Running 3s test @ http://x\n  1 threads and 32 connections\n  9000 requests in 3.00s, 1.2MB read\n  Non-2xx or 3xx responses: 7\nRequests/sec:   3000.50\nTransfer/sec:  400KB\n";
        assert_eq!(parse_wrk(wrk), Some((3000.5, 7)));
        assert_eq!(parse_wrk("Requests/sec: 10\n"), Some((10.0, 0)));
        assert_eq!(parse_wrk("garbage"), None);

        let row = |name: &str, kind, rec, rps: &[f64], cpu: &[f64], inv: &[f64]| {
            let mut r = ConfinedRow::new(name, kind, "x", rec);
            r.loadgen_rps = rps.to_vec();
            r.cpu_us_per_req = cpu.to_vec();
            r.busiest_involuntary_per_s = inv.to_vec();
            r
        };
        let c = Confined {
            rows: vec![
                row("nginx-confined", Kind::Nginx, None, &[100.0, 110.0, 90.0], &[10.0], &[]),
                row(
                    "aibridged-uring-rec-on-confined",
                    Kind::Gateway,
                    Some(true),
                    &[95.0, 96.0, 94.0],
                    &[12.0],
                    &[40.0],
                ),
                row(
                    "aibridged-uring-rec-off-confined",
                    Kind::Gateway,
                    Some(false),
                    &[100.0, 100.0, 100.0],
                    &[10.0],
                    &[5.0],
                ),
            ],
            ..Default::default()
        };
        let checks = checks(&c);
        let find = |t: &str, tool: &str| {
            checks.iter().find(|k| k.target.contains(t) && k.target.contains(tool)).map(|k| k.verdict).unwrap()
        };
        assert_eq!(find("recording off", "loadgen"), "PASS", "0.95 ≥ 0.9");
        assert_eq!(find("nginx", "loadgen"), "FAIL", "95 < 100");
        assert_eq!(find("recording off", "wrk"), "n/a", "no wrk figures: not a pass");
        assert_eq!(find("µs CPU", ""), "PASS", "2 µs added");
        assert_eq!(find("involuntary", ""), "PASS");
        assert!(table(&c).lines().count() == 5);
    }
}
