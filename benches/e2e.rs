//! End-to-end benchmark (issue 5): in one run, the same load against the mock directly, through nginx and
//! through aibridged (io_uring with recording on and off, epoll with recording on, io_uring recording into a
//! throwaway PostgreSQL server on the load side's CPUs); prints markdown tables
//! and the target checks and writes JSON under `target/bench/`. Figures are ratios within this run; the
//! absolute times of a shared machine are noise. It orchestrates processes; it never measures in-process
//! (the load generator is `aibridged-loadgen`, a separate process).
//!
//! `cargo bench --bench e2e` (about 2–3 minutes); `BENCH_QUICK=1` for a ~1 minute smoke run; `BENCH_FULL=1`
//! adds the 10k idle streams point (capped by the open-file limit; ~8 minutes, mostly waiting for the
//! mock to let go of the previous hold's streams); `BENCH_PIN=1` pins the server under test and the load to separate CPUs
//! (`scripts/bench` sets it); `BENCH_WORKERS=N` (default 1) for both nginx and the gateway;
//! `BENCH_RATES=1000,4000` for the open-loop rates; `BENCH_PHASES=latency,saturation,open,streams,idle,confined`
//! to run only some phases (`confined`, issue 13: nginx and every gateway thread on the same CPUs, saturated
//! by aibridged-loadgen and wrk in rounds; benches/e2e/confined.rs); `BENCH_AIBRIDGED_BIN=PATH` benchmarks another gateway
//! build against this one's harness. `cargo test --bench e2e` runs the harness's self-checks.

#[allow(dead_code)]
#[path = "e2e/confined.rs"]
mod confined;
#[path = "../tests/support/pg_cluster.rs"]
mod pg_cluster;
#[allow(dead_code)]
#[path = "e2e/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../src/bin/loadgen/proto.rs"]
mod proto;
#[allow(dead_code)]
#[path = "e2e/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use procs::{BenchError, Gateway, GatewaySpec, Loadgen, NginxParams, Pinning, Proc};
use proto::{Job, JobResult, RequestSpec, Target};
use report::{HoldRow, Kind, OpenLoopRow, Row};

/// Non-streaming chat completion: small, like a typical agent's tool-free turn (the mock answers in µs).
const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}"#;
/// The same request, streamed.
const STREAM_BODY: &str =
    r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello."}]}"#;
/// Route of the openai instance through nginx and the gateway.
const PROXY_PATH: &str = "/api/v2/aibridge/openai/v1/chat/completions";
/// Route of the mock.
const DIRECT_PATH: &str = "/v1/chat/completions";
/// Idle streams: the mock sends the head and a first event, then nothing for 20 s — longer than a hold's
/// measurement, yet short enough that the mock (which notices a closed client only at its second write
/// after the close) lets go of the previous hold's streams within 40 s.
const IDLE_EVENTS: &str = "1000000";
const IDLE_DELAY_MS: &str = "20000";
/// The mock uses two descriptors per connection (a reader and a writer handle).
const MOCK_FDS_PER_STREAM: u64 = 2;
/// A hold is measured only if at least this share of its streams got their response head end to end.
const MIN_HEADS_SHARE: f64 = 0.9;
/// A server under saturation should keep its workers' CPUs at least this busy; below, the figure is a
/// lower bound set by the load generator or the machine, and the report says so.
const SATURATED_BUSY: f64 = 0.85;
/// Longest wait for the mock to let go of the previous hold's streams.
const MOCK_DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Extra file descriptors beyond two per held stream (listeners, logs, databases, pools).
const FD_HEADROOM: u64 = 2048;

/// Run sizes, from the environment.
#[derive(Debug, Clone, serde::Serialize)]
struct Settings {
    mode: &'static str,
    workers: usize,
    pin: bool,
    c1_rounds: u32,
    c1_per_round: u32,
    c1_warmup: u32,
    sat_connections: u32,
    sat_ms: u64,
    rates: Vec<u32>,
    open_ms: u64,
    open_connections: u32,
    streams: u32,
    stream_events: u32,
    stream_delay_ms: u32,
    stream_rounds: u32,
    holds: Vec<u32>,
    /// Phases to run (`BENCH_PHASES=latency,saturation,open,streams,idle,confined`; default all).
    phases: Vec<String>,
}

impl Settings {
    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }

    fn from_env() -> Settings {
        let flag = |k: &str| matches!(std::env::var(k).as_deref(), Ok("1") | Ok("true") | Ok("yes"));
        let (quick, full) = (flag("BENCH_QUICK"), flag("BENCH_FULL"));
        let workers = std::env::var("BENCH_WORKERS").ok().and_then(|v| v.parse().ok()).filter(|&w| w >= 1).unwrap_or(1);
        let rates = std::env::var("BENCH_RATES")
            .ok()
            .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).filter(|&r: &u32| r > 0).collect::<Vec<u32>>())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| if quick { vec![1000] } else { vec![1000, 4000] });
        Settings {
            mode: if quick {
                "quick"
            } else if full {
                "full"
            } else {
                "default"
            },
            workers,
            pin: flag("BENCH_PIN"),
            c1_rounds: if quick { 20 } else { 100 },
            c1_per_round: if quick { 50 } else { 100 },
            c1_warmup: if quick { 50 } else { 300 },
            sat_connections: 32,
            sat_ms: if quick { 1500 } else { 4000 },
            rates,
            open_ms: if quick { 1500 } else { 4000 },
            open_connections: 32,
            streams: if quick { 20 } else { 100 },
            stream_events: if quick { 10 } else { 20 },
            // Token-stream pacing of a real model (20 events/s per stream): 100 such streams are 2000
            // events/s, a relay test rather than a throughput test.
            stream_delay_ms: 50,
            stream_rounds: if quick { 2 } else { 4 },
            holds: if full { vec![1000, 10_000] } else { vec![1000] },
            phases: std::env::var("BENCH_PHASES")
                .ok()
                .map(|v| v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect::<Vec<_>>())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| {
                    ["latency", "saturation", "open", "streams", "idle", "confined"].map(String::from).to_vec()
                }),
        }
    }
}

/// A path under test (direct, nginx, a gateway variant): its row, the target the load generator aims
/// at, and the processes to read.
struct Subject {
    row: Row,
    target: Target,
    /// Process whose RSS/CPU is the path's cost (mock for direct, nginx master, gateway).
    pid: Option<u32>,
    /// Whether RSS/CPU include the process's children (nginx workers).
    children: bool,
    alive: bool,
}

impl Subject {
    /// A path that could not be started: its row says why, and no phase loads it.
    fn unstarted(row: Row) -> Subject {
        let name = row.name.clone();
        Subject {
            row,
            target: Target { name, addr: String::new(), path: String::new(), headers: vec![] },
            pid: None,
            children: false,
            alive: false,
        }
    }

    fn pids(&self) -> Vec<u32> {
        match (self.pid, self.children) {
            (Some(p), true) => procs::with_children(p),
            (Some(p), false) => vec![p],
            (None, _) => Vec::new(),
        }
    }
}

fn request(body: &str, headers: &[(&str, &str)]) -> RequestSpec {
    RequestSpec { body: body.into(), headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
}

fn bench_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench")
}

fn main() -> ExitCode {
    // `cargo bench` passes --bench; `cargo test --bench e2e` does not: then only the self-checks run.
    if !std::env::args().any(|a| a == "--bench") {
        report::self_test::run();
        procs::self_test::run();
        confined::self_test::run();
        println!("e2e: self-checks passed (run the benchmark with `cargo bench --bench e2e`)");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The store a gateway variant records into.
#[derive(Clone, Copy)]
enum Store {
    Sqlite,
    Postgres,
}

/// Starts a throwaway PostgreSQL cluster with a database for the bench, and moves the postmaster and its
/// helpers onto `cpus` (backends forked later inherit them). The cluster and its URL, or why there is none.
fn start_postgres(cpus: &[usize]) -> Result<(pg_cluster::PgCluster, String), String> {
    // The cluster helper panics with the reason (no server binaries, initdb failed): a bench row says it.
    let cluster = std::panic::catch_unwind(pg_cluster::PgCluster::start).map_err(|panic| {
        panic.downcast_ref::<String>().cloned().unwrap_or_else(|| "PostgreSQL did not start".to_string())
    })?;
    let url = cluster.create_database("aibridged_bench");
    let pid_file = cluster.root().join("data/postmaster.pid");
    let postmaster: u32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.lines().next().and_then(|line| line.trim().parse().ok()))
        .ok_or_else(|| format!("cannot read {}", pid_file.display()))?;
    for pid in procs::with_children(postmaster) {
        procs::pin_running(pid, cpus).map_err(|e| e.to_string())?;
    }
    Ok((cluster, url))
}

/// Everything the run started, stopped when dropped (gateways and nginx before the mock).
struct Fleet {
    servers: Vec<Proc>,
    mock: Option<Proc>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for p in self.servers.iter_mut() {
            p.stop();
        }
        if let Some(m) = self.mock.as_mut() {
            m.stop();
        }
    }
}

fn run() -> Result<(), BenchError> {
    let settings = Settings::from_env();
    let started = Instant::now();
    let stamp = time::OffsetDateTime::now_utc();
    let tmp = std::env::temp_dir().join(format!("aibridged-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|source| BenchError::Io { what: "create temp dir".into(), source })?;
    let mut notes: Vec<String> = Vec::new();

    let cpus = procs::allowed_cpus();
    let pinning = if settings.pin && cpus.len() >= 2 {
        let k = settings.workers.min(cpus.len() - 1);
        Pinning { proxy: cpus[cpus.len() - k..].to_vec(), load: cpus[..cpus.len() - k].to_vec() }
    } else {
        Pinning::default()
    };
    let max_hold = u64::from(settings.holds.iter().copied().max().unwrap_or(0));
    let nofile = procs::raise_nofile(2 * max_hold + FD_HEADROOM);
    let holds: Vec<u32> = settings
        .holds
        .iter()
        .map(|&n| {
            let fit = nofile.saturating_sub(FD_HEADROOM) / 2;
            if u64::from(n) > fit {
                notes.push(format!("open-file limit {nofile}: idle streams point {n} reduced to {fit}"));
                fit as u32
            } else {
                n
            }
        })
        .collect();

    eprintln!(
        "e2e: mode {}, {} worker(s), pinning {:?}, temp dir {}",
        settings.mode,
        settings.workers,
        pinning,
        tmp.display()
    );
    let bin = |name: &str| -> PathBuf {
        match name {
            "aibridged" => std::env::var_os("BENCH_AIBRIDGED_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_aibridged"))),
            "mock-upstream" => PathBuf::from(env!("CARGO_BIN_EXE_mock-upstream")),
            _ => PathBuf::from(env!("CARGO_BIN_EXE_aibridged-loadgen")),
        }
    };
    let mut fleet = Fleet { servers: Vec::new(), mock: None };
    let (mock, mock_addr) = match procs::start_mock(&bin("mock-upstream"), &pinning.load, &tmp) {
        Ok(m) => m,
        Err(e) => {
            // Without the mock there is nothing to measure: say so and skip rather than fail the bench run.
            println!("e2e bench SKIPPED: the mock upstream is not available ({e})");
            return Ok(());
        }
    };
    let mock_pid = mock.pid();
    fleet.mock = Some(mock);
    let loadgen = Loadgen {
        bin: bin("aibridged-loadgen"),
        cpus: pinning.load.clone(),
        dir: tmp.clone(),
        seq: Default::default(),
    };

    let mut paths: Vec<Subject> = vec![Subject {
        row: Row::new("direct", Kind::Direct, "—", None, None),
        target: Target {
            name: "direct".into(),
            addr: mock_addr.clone(),
            path: DIRECT_PATH.into(),
            headers: vec![("Authorization".into(), "Bearer sk-bench".into())],
        },
        pid: Some(mock_pid),
        children: false,
        alive: true,
    }];

    // nginx, when installed.
    let mut nginx_row = Row::new("nginx", Kind::Nginx, "epoll", None, Some(settings.workers));
    match procs::find_nginx() {
        None => nginx_row.problems.push("nginx not installed (scripts/bench installs it)".into()),
        Some(nginx_bin) => {
            let listen = format!("127.0.0.1:{}", procs::free_port()?);
            let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nginx.conf.template");
            let params = NginxParams {
                workers: settings.workers,
                listen: &listen,
                upstream: &mock_addr,
                max_connections: (2 * max_hold as usize).max(4096) + 1024,
                nofile: nofile as usize,
            };
            match procs::start_nginx(&nginx_bin, &template, &params, &pinning.proxy, &tmp) {
                Ok(p) => {
                    let pid = p.pid();
                    fleet.servers.push(p);
                    paths.push(Subject {
                        row: nginx_row.clone(),
                        target: Target { name: "nginx".into(), addr: listen, path: PROXY_PATH.into(), headers: vec![] },
                        pid: Some(pid),
                        children: true,
                        alive: true,
                    });
                }
                Err(e) => nginx_row.problems.push(format!("nginx did not start: {e}")),
            }
        }
    }
    if !nginx_row.problems.is_empty() {
        paths.push(Subject::unstarted(nginx_row));
    }

    // Recording into PostgreSQL (issue 11): a throwaway server on the load side's CPUs, standing in for a
    // database server on another machine, so that it never takes the gateway's CPU.
    let postgres = start_postgres(&pinning.load);
    if postgres.is_ok() && !pinning.load.is_empty() {
        notes.push(format!("PostgreSQL (the -postgres row's store) runs on the load CPUs {:?}", pinning.load));
    }

    // The gateway variants, all started now; only the one under load is busy at any moment.
    for (name, driver, recording, metrics, store) in [
        ("aibridged-uring-rec-on", "io_uring", true, false, Store::Sqlite),
        ("aibridged-uring-rec-off", "io_uring", false, false, Store::Sqlite),
        ("aibridged-epoll-rec-on", "epoll", true, false, Store::Sqlite),
        // The same as the first with /metrics served: the metrics' cost on the request path.
        ("aibridged-uring-rec-on-metrics", "io_uring", true, true, Store::Sqlite),
        // The same as the first recording into PostgreSQL, as several gateways would.
        ("aibridged-uring-rec-on-postgres", "io_uring", true, false, Store::Postgres),
    ] {
        let unstarted = |problem: String| {
            let mut row = Row::new(name, Kind::Gateway, driver, Some(recording), Some(settings.workers));
            row.problems.push(problem);
            Subject::unstarted(row)
        };
        let database_url = match (store, &postgres) {
            (Store::Sqlite, _) => None,
            (Store::Postgres, Ok((_, url))) => Some(url.as_str()),
            (Store::Postgres, Err(why)) => {
                paths.push(unstarted(format!("no PostgreSQL server: {why}")));
                continue;
            }
        };
        let spec = GatewaySpec {
            name,
            driver,
            recording,
            metrics,
            workers: settings.workers,
            mock_addr: &mock_addr,
            database_url,
        };
        match procs::start_gateway(&bin("aibridged"), &spec, &pinning.proxy, &tmp) {
            Ok(Gateway { proc, addr, token, driver_reported }) => {
                let pid = proc.pid();
                fleet.servers.push(proc);
                let mut row = Row::new(name, Kind::Gateway, &driver_reported, Some(recording), Some(settings.workers));
                if !driver_reported.starts_with(driver) {
                    row.problems.push(format!("asked for {driver}, gateway reports {driver_reported}"));
                }
                paths.push(Subject {
                    row,
                    target: Target {
                        name: name.into(),
                        addr,
                        path: PROXY_PATH.into(),
                        headers: vec![("Authorization".into(), format!("Bearer {token}"))],
                    },
                    pid: Some(pid),
                    children: false,
                    alive: true,
                });
            }
            Err(e) => paths.push(unstarted(format!("gateway did not start: {e}"))),
        }
    }

    let log_of = |name: &str| tmp.join(format!("{name}.log"));
    let check = |paths: &mut [Subject], phase: &str| {
        for p in paths.iter_mut().filter(|p| p.alive) {
            if let Some(pid) = p.pid.filter(|&pid| !procs::running(pid)) {
                p.alive = false;
                let log = if p.row.kind == Kind::Gateway { procs::tail(&log_of(&p.row.name)) } else { String::new() };
                p.row.problems.push(format!("process {pid} died during {phase}; log: {log}"));
            }
        }
    };
    phase_sanity(&loadgen, &mut paths);
    check(&mut paths, "the sanity check");
    for p in paths.iter_mut().filter(|p| p.alive) {
        p.row.rss_idle_kib = Some(procs::rss_kib(&p.pids()));
    }
    let mut raw: Vec<JobResult> = Vec::new();
    if settings.runs("latency") {
        phase_latency(&loadgen, &settings, &mut paths, &mut raw);
    }
    check(&mut paths, "the latency phase");
    if settings.runs("saturation") {
        phase_saturation(&loadgen, &settings, &mut paths, &mut raw);
    }
    check(&mut paths, "saturation");
    if settings.runs("open") {
        phase_open_loop(&loadgen, &settings, &mut paths, &mut raw);
    }
    check(&mut paths, "the open-loop phase");
    if settings.runs("streams") {
        phase_streams(&loadgen, &settings, &mut paths, &mut raw);
    }
    check(&mut paths, "the streams phase");
    for p in paths.iter_mut().filter(|p| p.alive) {
        p.row.rss_after_load_kib = Some(procs::rss_kib(&p.pids()));
    }
    let mock_room = MockRoom { pid: mock_pid, nofile };
    if settings.runs("idle") {
        phase_idle_streams(&loadgen, &holds, &mut paths, &mock_room);
    }
    check(&mut paths, "the idle-streams phase");
    drop(fleet);
    drop(postgres);
    // Issue 13: every server confined to the same CPUs, after the shared servers above are stopped.
    let confined = if settings.runs("confined") {
        let settings = confined::ConfinedSettings {
            rounds: 3,
            run_ms: if settings.mode == "quick" { 1000 } else { 2000 },
            connections: settings.sat_connections,
            workers: settings.workers,
        };
        let (gateway_bin, mock_bin, loadgen_bin) = (bin("aibridged"), bin("mock-upstream"), bin("loadgen"));
        let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nginx.conf.template");
        let ctx = confined::Context {
            gateway_bin: &gateway_bin,
            mock_bin: &mock_bin,
            loadgen_bin: &loadgen_bin,
            nginx_template: &template,
            body: BODY,
            proxy_path: PROXY_PATH,
            dir: &tmp,
        };
        eprintln!("e2e: confined mode, {} rounds of {} ms per server and tool", settings.rounds, settings.run_ms);
        confined::run(&ctx, &settings)
    } else {
        confined::Confined::default()
    };
    for r in &confined.rows {
        for p in &r.problems {
            notes.push(format!("{}: {p}", r.name));
        }
    }
    notes.extend(confined.notes.iter().cloned());

    let rows: Vec<Row> = paths.into_iter().map(|p| p.row).collect();
    let checks = report::checks(&rows);
    let mut out = String::new();
    out.push_str(&format!(
        "\n## aibridged end-to-end bench ({} run, {} worker(s), {} CPUs, pinning {})\n\n",
        settings.mode,
        settings.workers,
        cpus.len(),
        if pinning.proxy.is_empty() {
            "off".to_string()
        } else {
            format!("proxy on {:?}, mock+load on {:?}", pinning.proxy, pinning.load)
        }
    ));
    out.push_str(
        "Added = path minus direct-to-mock, measured in this run (c=1: interleaved rounds, percentile difference;\n\
         stream TTFB: difference of medians; per event: each event's delay minus the direct path's median of the\n\
         same round). Absolute times on a shared machine are noise; compare rows.\n\n",
    );
    out.push_str(&report::main_table(&rows, &holds));
    out.push_str("\nOpen loop (latency from each request's due time: coordinated-omission corrected)\n\n");
    out.push_str(&report::open_loop_table(&rows));
    out.push_str("\nCPU µs per saturated request, by thread\n\n");
    out.push_str(&report::cpu_breakdown(&rows));
    out.push_str("\nTargets (issue 5)\n\n");
    out.push_str(&report::checks_table(&checks));
    let confined_checks = confined::checks(&confined);
    if !confined.rows.is_empty() {
        out.push_str(&format!(
            "\nConfined (issue 13): nginx's workers and every gateway thread on CPUs {:?}, mock and load on {:?}; \
             saturated with {} connections, medians (min–max) of interleaved rounds\n\n",
            confined.server_cpus, confined.load_cpus, settings.sat_connections
        ));
        out.push_str(&confined::table(&confined));
        out.push_str("\nTargets (issue 13, confined rows)\n\n");
        out.push_str(&report::checks_table(&confined_checks));
    }
    for r in &rows {
        for p in &r.problems {
            notes.push(format!("{}: {p}", r.name));
        }
    }
    if !notes.is_empty() {
        out.push_str("\nNotes\n\n");
        for n in &notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    let dir = bench_dir();
    let ts = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    );
    let json_path = dir.join(format!("e2e-{ts}.json"));
    let json = serde_json::json!({
        "timestamp": ts,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "cpus": cpus.len(),
        "pinning": pinning,
        "settings": settings,
        "rows": rows,
        "checks": checks,
        "confined": confined,
        "confined_checks": confined_checks,
        "notes": notes,
        "raw": raw,
    });
    std::fs::create_dir_all(&dir)
        .map_err(|source| BenchError::Io { what: format!("create {}", dir.display()), source })?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&json).unwrap_or_default())
        .map_err(|source| BenchError::Io { what: format!("write {}", json_path.display()), source })?;
    out.push_str(&format!("\nJSON: {}  (run took {:.0} s)\n", json_path.display(), started.elapsed().as_secs_f64()));
    println!("{out}");
    if notes.is_empty() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        eprintln!("e2e: problems noted; logs, job files and databases kept in {}", tmp.display());
    }
    Ok(())
}

/// One request per path; a path that fails is reported and left out of the rest of the run.
fn phase_sanity(loadgen: &Loadgen, paths: &mut [Subject]) {
    for p in paths.iter_mut().filter(|p| p.alive) {
        let job = Job::Latency {
            targets: vec![p.target.clone()],
            request: request(BODY, &[]),
            warmup: 0,
            rounds: 1,
            per_round: 3,
            time_limit_ms: 10_000,
        };
        match loadgen.run(&job, Duration::from_secs(60)) {
            Ok(JobResult::Latency { targets, .. }) => {
                if let Some(t) = targets.first().filter(|t| t.errors > 0) {
                    p.alive = false;
                    p.row
                        .problems
                        .push(format!("sanity request failed: {}", t.first_error.clone().unwrap_or_default()));
                }
            }
            Ok(_) => {}
            Err(e) => {
                p.alive = false;
                p.row.problems.push(format!("sanity request failed: {e}"));
            }
        }
    }
}

fn phase_latency(loadgen: &Loadgen, s: &Settings, paths: &mut [Subject], raw: &mut Vec<JobResult>) {
    let live: Vec<usize> = (0..paths.len()).filter(|&i| paths[i].alive).collect();
    eprintln!("e2e: latency at concurrency 1, {} paths interleaved", live.len());
    let job = Job::Latency {
        targets: live.iter().map(|&i| paths[i].target.clone()).collect(),
        request: request(BODY, &[]),
        warmup: s.c1_warmup,
        rounds: s.c1_rounds,
        per_round: s.c1_per_round,
        time_limit_ms: 150_000,
    };
    match loadgen.run(&job, Duration::from_secs(200)) {
        Ok(res) => {
            if let JobResult::Latency { targets, .. } = &res {
                let direct = targets.iter().find(|t| t.name == "direct").map(|t| t.latency.clone());
                for t in targets {
                    let Some(p) = paths.iter_mut().find(|p| p.target.name == t.name) else { continue };
                    if t.errors > 0 {
                        p.row.problems.push(format!(
                            "c=1: {} errors ({})",
                            t.errors,
                            t.first_error.clone().unwrap_or_default()
                        ));
                    }
                    if let Some(d) = direct.as_ref().filter(|_| t.latency.count > 0) {
                        p.row.c1_added_p50_ns = Some(t.latency.p50 - d.p50);
                        p.row.c1_added_p99_ns = Some(t.latency.p99 - d.p99);
                    }
                    p.row.c1 = Some(t.latency.clone());
                }
            }
            raw.push(res);
        }
        Err(e) => eprintln!("e2e: latency phase failed: {e}"),
    }
}

fn phase_saturation(loadgen: &Loadgen, s: &Settings, paths: &mut [Subject], raw: &mut Vec<JobResult>) {
    for p in paths.iter_mut().filter(|p| p.alive) {
        eprintln!("e2e: saturation through {}", p.target.name);
        let pids = p.pids();
        let cpu0 = procs::cpu_us(&pids);
        let threads0 = procs::thread_cpu_us(&pids);
        let job = Job::Saturate {
            target: p.target.clone(),
            request: request(BODY, &[]),
            connections: s.sat_connections,
            duration_ms: s.sat_ms,
        };
        let res = loadgen.run(&job, Duration::from_millis(s.sat_ms) + Duration::from_secs(60));
        let cpu = procs::cpu_us(&pids).saturating_sub(cpu0);
        // Per-thread deltas, busiest first (threads that started during the run count from zero).
        let mut threads: Vec<(String, u64)> = procs::thread_cpu_us(&pids)
            .into_iter()
            .map(|(k, (name, us))| (name, us.saturating_sub(threads0.get(&k).map_or(0, |(_, u)| *u))))
            .collect();
        threads.sort_by_key(|t| std::cmp::Reverse(t.1));
        match res {
            Ok(res) => {
                if let JobResult::Saturate {
                    completed,
                    errors,
                    requests_per_sec,
                    latency,
                    first_error,
                    elapsed_ms,
                    ..
                } = &res
                {
                    if *errors > 0 {
                        p.row
                            .problems
                            .push(format!("saturation: {errors} errors ({})", first_error.clone().unwrap_or_default()));
                    }
                    p.row.sat_rps = Some(*requests_per_sec);
                    p.row.sat_rps_per_worker = p.row.workers.map(|w| requests_per_sec / w as f64);
                    p.row.sat_latency = Some(latency.clone());
                    if *completed > 0 {
                        p.row.cpu_us_per_req = Some(cpu as f64 / *completed as f64);
                        let mut by_name: Vec<(String, f64)> = Vec::new();
                        for (name, us) in &threads {
                            let per_req = *us as f64 / *completed as f64;
                            match by_name.iter_mut().find(|(n, _)| n == name) {
                                Some((_, v)) => *v += per_req,
                                None => by_name.push((name.clone(), per_req)),
                            }
                        }
                        p.row.sat_cpu_by_thread = by_name.into_iter().filter(|(_, v)| *v >= 0.05).collect();
                    }
                    if let (Some(w), true) = (p.row.workers, *elapsed_ms > 0) {
                        // Busy = the `w` busiest threads (the workers, whatever helper threads run beside
                        // them) over the window. The CPU reading spans the load generator's whole life
                        // (connects included), a little more than the window: it can read slightly above 1.
                        let top: u64 = threads.iter().take(w).map(|(_, us)| us).sum();
                        let busy = top as f64 / (*elapsed_ms as f64 * 1000.0 * w as f64);
                        p.row.sat_cpu_busy = Some(busy);
                        if busy < SATURATED_BUSY {
                            p.row.problems.push(format!(
                                "saturation: server CPU only {:.0}% busy: the load side (or a neighbour) limited the rate",
                                busy * 100.0
                            ));
                        }
                    }
                }
                raw.push(res);
            }
            Err(e) => p.row.problems.push(format!("saturation failed: {e}")),
        }
    }
}

fn phase_open_loop(loadgen: &Loadgen, s: &Settings, paths: &mut [Subject], raw: &mut Vec<JobResult>) {
    for &rate in &s.rates {
        for p in paths.iter_mut().filter(|p| p.alive) {
            eprintln!("e2e: open loop at {rate}/s through {}", p.target.name);
            let job = Job::OpenLoop {
                target: p.target.clone(),
                request: request(BODY, &[]),
                rate,
                duration_ms: s.open_ms,
                connections: s.open_connections,
            };
            match loadgen.run(&job, Duration::from_millis(s.open_ms) + Duration::from_secs(60)) {
                Ok(res) => {
                    if let JobResult::OpenLoop { latency, service, achieved_rate, errors, unsent, .. } = &res {
                        p.row.open_loop.push(OpenLoopRow {
                            rate,
                            latency: latency.clone(),
                            service: service.clone(),
                            achieved_rate: *achieved_rate,
                            errors: *errors,
                            unsent: *unsent,
                        });
                    }
                    raw.push(res);
                }
                Err(e) => p.row.problems.push(format!("open loop at {rate}/s failed: {e}")),
            }
        }
    }
}

fn phase_streams(loadgen: &Loadgen, s: &Settings, paths: &mut [Subject], raw: &mut Vec<JobResult>) {
    let live: Vec<usize> = (0..paths.len()).filter(|&i| paths[i].alive).collect();
    eprintln!("e2e: {} concurrent streams x {} events, {} paths interleaved", s.streams, s.stream_events, live.len());
    let events = s.stream_events.to_string();
    let delay = s.stream_delay_ms.to_string();
    let stream_ms = u64::from(s.stream_events) * u64::from(s.stream_delay_ms);
    let job = Job::Streams {
        targets: live.iter().map(|&i| paths[i].target.clone()).collect(),
        baseline: "direct".into(),
        request: request(
            STREAM_BODY,
            &[("x-mock-events", &events), ("x-mock-delay-ms", &delay), ("x-mock-stamp", "1")],
        ),
        streams: s.streams,
        stagger_ms: u64::from(s.stream_delay_ms),
        rounds: s.stream_rounds,
        time_limit_ms: 120_000,
        stream_timeout_ms: stream_ms + 10_000,
    };
    match loadgen.run(&job, Duration::from_secs(200)) {
        Ok(res) => {
            if let JobResult::Streams { targets, .. } = &res {
                let direct_ttfb = targets.iter().find(|t| t.name == "direct" && t.streams_ok > 0).map(|t| t.ttfb.p50);
                for t in targets {
                    let Some(p) = paths.iter_mut().find(|p| p.target.name == t.name) else { continue };
                    if t.errors > 0 {
                        p.row.problems.push(format!(
                            "streams: {} of {} failed ({})",
                            t.errors,
                            t.errors + t.streams_ok,
                            t.first_error.clone().unwrap_or_default()
                        ));
                    }
                    if t.streams_ok > 0 {
                        p.row.stream_ttfb = Some(t.ttfb.clone());
                        p.row.stream_event_delay = Some(t.event_delay.clone());
                        p.row.stream_added_ttfb = Some(t.added_ttfb.clone()).filter(|s| s.count > 0);
                        p.row.stream_added_ttfb_p50_ns = direct_ttfb.map(|d| t.ttfb.p50 - d);
                        p.row.stream_added_event = Some(t.added_event_delay.clone()).filter(|s| s.count > 0);
                    }
                }
            }
            raw.push(res);
        }
        Err(e) => eprintln!("e2e: streams phase failed: {e}"),
    }
}

/// The mock's file descriptors, watched between idle-stream holds.
struct MockRoom {
    pid: u32,
    nofile: u64,
}

impl MockRoom {
    /// The mock (thread per connection) notices a closed stream only at its next write, up to a minute
    /// after the hold released it. Waits, bounded, until it has descriptors for `n` more streams.
    fn wait_for(&self, n: u32) -> Option<String> {
        let need = MOCK_FDS_PER_STREAM * u64::from(n) + FD_HEADROOM / 4;
        let deadline = Instant::now() + MOCK_DRAIN_LIMIT;
        loop {
            let open = procs::open_fds(self.pid);
            if open + need <= self.nofile {
                return None;
            }
            if Instant::now() > deadline {
                return Some(format!("mock still holds {open} descriptors of {}: streams may be refused", self.nofile));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// RSS before and while N idle streams are open through each proxy; per stream = the difference / N.
fn phase_idle_streams(loadgen: &Loadgen, holds: &[u32], paths: &mut [Subject], mock: &MockRoom) {
    for p in paths.iter_mut().filter(|p| p.alive && p.row.kind != Kind::Direct) {
        for &n in holds {
            if !p.pid.is_some_and(procs::running) {
                break;
            }
            if let Some(w) = mock.wait_for(n) {
                p.row.problems.push(w);
            }
            eprintln!("e2e: {n} idle streams through {}", p.target.name);
            let pids = p.pids();
            let before = procs::rss_kib(&pids);
            let job = Job::Hold {
                target: p.target.clone(),
                request: request(STREAM_BODY, &[("x-mock-events", IDLE_EVENTS), ("x-mock-delay-ms", IDLE_DELAY_MS)]),
                streams: n,
                // Opening thousands of streams on a busy machine takes a while (the mock starts a
                // thread for each).
                head_timeout_ms: 20_000 + 4 * u64::from(n),
                hold_limit_ms: 120_000,
            };
            match loadgen.hold(&job, Duration::from_millis(60_000 + 8 * u64::from(n))) {
                Ok((JobResult::Hold { opened, heads, errors, first_error, .. }, held)) => {
                    // Let the server finish whatever it does per new connection before reading.
                    std::thread::sleep(Duration::from_millis(500));
                    let during = procs::rss_kib(&p.pids());
                    held.release();
                    let note = (heads < opened || errors > 0)
                        .then(|| format!("{heads}/{n} heads, {errors} errors ({})", first_error.unwrap_or_default()));
                    // Only streams established end to end (head received) hold memory on both legs.
                    let enough = heads > 0 && f64::from(heads) >= MIN_HEADS_SHARE * f64::from(n);
                    p.row.holds.push(HoldRow {
                        streams: n,
                        opened,
                        heads,
                        rss_before_kib: before,
                        rss_kib: during,
                        kib_per_stream: enough.then(|| (during as f64 - before as f64) / f64::from(heads)),
                        note: note.clone(),
                    });
                    if let Some(note) = note {
                        p.row.problems.push(format!("idle streams: {note}"));
                    }
                }
                Ok(_) => {}
                Err(e) => p.row.problems.push(format!("{n} idle streams failed: {e}")),
            }
            // Let the closed connections drain on every leg before the next measurement.
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}
