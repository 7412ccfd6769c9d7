//! Data-plane latency while the sessions API is hammered (issue 12 item 3): one gateway (recording on,
//! sessions API on) over a database filled with many interceptions (default 100 000 in 10 000 sessions of
//! 20 users, all inside the list's default 7-day window), measured at concurrency 1 by the load generator
//! in alternating segments: quiet (nothing else talks to the gateway) and hammered (client threads in this
//! process loop over the heaviest API reads: a 1000-session page grouped from the whole window, a
//! 1000-interception page and the usage report). Every segment also measures the mock directly, so
//! the gateway's added latency is a difference within the segment. Reports medians over segments with
//! their spread, the hammered/quiet ratio, and what the API answered meanwhile; JSON under `target/bench/`.
//!
//! `cargo bench --bench sessions_api` (`scripts/bench sessions`; about 2 minutes); `BENCH_QUICK=1` for a
//! smaller database and fewer segments; `BENCH_INTERCEPTIONS=N`, `BENCH_SEGMENTS=N` (per condition),
//! `BENCH_API_CLIENTS=N` (hammering threads, default 2). `cargo test --bench sessions_api` runs the
//! self-checks only.

#[allow(dead_code)]
#[path = "e2e/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../src/bin/loadgen/proto.rs"]
mod proto;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use procs::{BenchError, GatewaySpec, Loadgen, Pinning};
use proto::{Job, JobResult, RequestSpec, Target};

/// The request measured at concurrency 1 (as in the e2e bench).
const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}"#;
const PROXY_PATH: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const DIRECT_PATH: &str = "/v1/chat/completions";
/// Interceptions per generated session (two threads of five).
const PER_SESSION: usize = 10;
/// Users the generated sessions belong to.
const USERS: usize = 20;
/// The API reads each hammering client loops over: the largest pages the API serves.
const API_READS: [(&str, &str); 3] = [
    ("sessions page (1000, default 7-day window)", "/api/v2/aibridge/sessions?limit=1000"),
    ("interceptions page (1000)", "/api/v2/aibridge/interceptions?limit=1000"),
    ("usage by user, model, day (7d)", "/api/v2/aibridge/usage?group_by=user,model,day&since=7d"),
];

#[derive(Debug, Clone, serde::Serialize)]
struct Settings {
    interceptions: usize,
    segments: u32,
    api_clients: usize,
    warmup: u32,
    rounds: u32,
    per_round: u32,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = matches!(std::env::var("BENCH_QUICK").as_deref(), Ok("1") | Ok("true") | Ok("yes"));
        let num =
            |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(d);
        Settings {
            interceptions: num("BENCH_INTERCEPTIONS", if quick { 20_000 } else { 100_000 }),
            segments: num("BENCH_SEGMENTS", if quick { 3 } else { 6 }) as u32,
            api_clients: num("BENCH_API_CLIENTS", 2),
            warmup: 100,
            rounds: if quick { 30 } else { 100 },
            per_round: 100,
        }
    }
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        self_test();
        println!("sessions_api: self-checks passed (run the benchmark with `cargo bench --bench sessions_api`)");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessions_api bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io { what: what.into(), source }
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> BenchError {
    move |e| BenchError::Loadgen(format!("fill the database ({what}): {e}"))
}

/// A stored timestamp (`2026-11-27T05:59:04.123456Z`, the store's fixed-width text form).
fn stamp(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// A deterministic id of the UUID shape for generated row `n` of kind `kind`.
fn id(kind: u16, n: usize) -> String {
    format!("0190{kind:04x}-0000-7000-8000-{n:012x}")
}

/// Fills the (migrated) database with `n` interceptions in sessions of [`PER_SESSION`]: each with its
/// token usage, a prompt on every thread root and a tool call on every other interception, spread over
/// the last six days (inside the sessions list's default window). One transaction.
fn fill(db: &Path, n: usize) -> Result<(), BenchError> {
    let mut conn = rusqlite::Connection::open(db).map_err(sql("open"))?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(sql("busy timeout"))?;
    let tx = conn.transaction().map_err(sql("begin"))?;
    {
        let mut ins = tx
            .prepare(
                "INSERT INTO aibridge_interceptions (id, initiator_id, provider, provider_name, model, client, \
                 client_session_id, user_agent, credential_kind, started_at, ended_at, status, upstream_status, \
                 correlating_tool_call_id, thread_root_id) \
                 VALUES (?1, ?2, 'anthropic', 'anthropic', ?3, 'claude-code', ?4, 'claude-cli/2.0.14', 'central', \
                 ?5, ?6, 'completed', 200, ?7, ?8)",
            )
            .map_err(sql("prepare interceptions"))?;
        let mut tokens = tx
            .prepare(
                "INSERT INTO aibridge_token_usages (interception_id, msg_id, input_tokens, output_tokens, \
                 cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, extra, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, '{}', ?6)",
            )
            .map_err(sql("prepare token usages"))?;
        let mut prompts = tx
            .prepare(
                "INSERT INTO aibridge_user_prompts (interception_id, msg_id, prompt, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql("prepare prompts"))?;
        let mut tools = tx
            .prepare(
                "INSERT INTO aibridge_tool_usages (interception_id, msg_id, tool, tool_call_id, input, injected, \
                 created_at) VALUES (?1, ?2, 'get_weather', ?3, '{\"city\":\"Paris\"}', 0, ?4)",
            )
            .map_err(sql("prepare tool usages"))?;
        let models = ["claude-sonnet-4-5-20250929", "claude-haiku-4-5", "claude-opus-4-1"];
        let now = time::OffsetDateTime::now_utc();
        let span_us = 6 * 86_400 * 1_000_000i64;
        let mut root = String::new();
        for i in 0..n {
            let session = i / PER_SESSION;
            let step = i % PER_SESSION;
            let iid = id(1, i);
            let at = now - time::Duration::microseconds(span_us - span_us * i as i64 / n as i64);
            let (start, end) = (stamp(at), stamp(at + time::Duration::milliseconds(800)));
            let starts_thread = step.is_multiple_of(PER_SESSION / 2);
            if starts_thread {
                root = iid.clone();
            }
            let correlating = (!starts_thread).then(|| id(2, i - 1));
            let thread_root = (!starts_thread).then(|| root.clone());
            let user = format!("user-{}", session % USERS);
            let model = models[session % models.len()];
            ins.execute(rusqlite::params![iid, user, model, id(3, session), start, end, correlating, thread_root])
                .map_err(sql("interception"))?;
            let msg = format!("msg_{i}");
            let input = 1_000 + (i % 977) as i64;
            tokens.execute(rusqlite::params![iid, msg, input, 200, 500, end]).map_err(sql("token usage"))?;
            if starts_thread {
                prompts
                    .execute(rusqlite::params![iid, msg, format!("Prompt {i}: what is the weather in Paris?"), start])
                    .map_err(sql("prompt"))?;
            }
            if step.is_multiple_of(2) {
                tools.execute(rusqlite::params![iid, msg, id(2, i), end]).map_err(sql("tool usage"))?;
            }
        }
    }
    tx.commit().map_err(sql("commit"))?;
    Ok(())
}

/// A blocking `GET path` with a token on a fresh connection: status and body length.
fn get(addr: SocketAddr, path: &str, token: &str) -> Result<(u16, usize), std::io::Error> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").map_or(buf.len(), |p| p + 4);
    let status = std::str::from_utf8(&buf[..head_end.min(buf.len())])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, buf.len() - head_end))
}

/// What one API read did over the hammered segments.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct ReadStats {
    name: String,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    /// Milliseconds per answered read.
    millis: Vec<f64>,
    bytes: usize,
}

/// Client threads reading the API in a loop until stopped.
struct Hammer {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<ReadStats>>>,
}

impl Hammer {
    fn start(addr: SocketAddr, token: &str, clients: usize) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|c| {
                let (stop, token) = (stop.clone(), token.to_string());
                std::thread::spawn(move || {
                    let mut stats: Vec<ReadStats> = API_READS
                        .iter()
                        .map(|(name, _)| ReadStats { name: name.to_string(), ..Default::default() })
                        .collect();
                    // Clients start at different reads so that the heavy ones overlap the light ones.
                    let mut k = c;
                    while !stop.load(Ordering::Relaxed) {
                        let i = k % API_READS.len();
                        k += 1;
                        let t0 = Instant::now();
                        match get(addr, API_READS[i].1, &token) {
                            Ok((200, bytes)) => {
                                stats[i].ok += 1;
                                stats[i].millis.push(t0.elapsed().as_secs_f64() * 1e3);
                                stats[i].bytes = bytes;
                            }
                            Ok((status, _)) => {
                                stats[i].errors += 1;
                                stats[i].first_error.get_or_insert(format!("status {status}"));
                            }
                            Err(e) => {
                                stats[i].errors += 1;
                                stats[i].first_error.get_or_insert(e.to_string());
                            }
                        }
                    }
                    stats
                })
            })
            .collect();
        Hammer { stop, threads }
    }

    /// Stops the clients (each finishes its read in flight) and merges what they saw.
    fn stop(self, into: &mut [ReadStats]) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            for (acc, s) in into.iter_mut().zip(t.join().unwrap_or_default()) {
                acc.ok += s.ok;
                acc.errors += s.errors;
                acc.millis.extend(s.millis);
                acc.bytes = acc.bytes.max(s.bytes);
                if acc.first_error.is_none() {
                    acc.first_error = s.first_error;
                }
            }
        }
    }
}

/// One segment's figures (µs).
#[derive(Debug, Clone, serde::Serialize)]
struct Segment {
    hammered: bool,
    gateway_p50_us: f64,
    gateway_p99_us: f64,
    added_p50_us: f64,
    added_p99_us: f64,
    samples: u64,
    errors: u64,
    api_reads: u64,
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Median with min–max of one figure over segments.
fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.1} ({:.1}–{:.1})", median(v), lo, hi)
}

/// Quiet/hammered order of the segments: ABBA pairs, so a drift of the machine falls on both alike.
fn schedule(pairs: u32) -> Vec<bool> {
    (0..pairs).flat_map(|i| if i % 2 == 0 { [false, true] } else { [true, false] }).collect()
}

fn bench_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench")
}

fn run() -> Result<(), BenchError> {
    let s = Settings::from_env();
    let started = Instant::now();
    let tmp = std::env::temp_dir().join(format!("aibridged-sessions-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(io("create temp dir"))?;
    let gateway_bin = PathBuf::from(env!("CARGO_BIN_EXE_aibridged"));
    let (_mock, mock_addr) = procs::start_mock(Path::new(env!("CARGO_BIN_EXE_mock-upstream")), &[], &tmp)?;
    let name = "aibridged-sessions-api";
    let db = procs::gateway_db(&tmp, name);
    let admin_token = procs::create_token(&gateway_bin, &procs::sqlite_url(&db), "admin", "admin")?;
    let t0 = Instant::now();
    fill(&db, s.interceptions)?;
    eprintln!("sessions_api: {} interceptions written in {:.1} s", s.interceptions, t0.elapsed().as_secs_f64());

    let admin_port = procs::free_port()?;
    let admin_addr: SocketAddr =
        format!("127.0.0.1:{admin_port}").parse().map_err(|_| BenchError::NotReady("admin address".into()))?;
    let spec = GatewaySpec {
        name,
        driver: "io_uring",
        recording: true,
        metrics: false,
        workers: 1,
        mock_addr: &mock_addr,
        database_url: None,
    };
    let admin_env = admin_addr.to_string();
    let gw = procs::start_gateway_with_env(
        &gateway_bin,
        &spec,
        &[],
        &tmp,
        &[("CODER_AIBRIDGE_ADMIN_ADDRESS", admin_env.as_str())],
    )?;
    // The API must answer (and see the whole generated window) before anything is measured.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected_sessions = s.interceptions.div_ceil(PER_SESSION);
    loop {
        if let Ok((200, _)) = get(admin_addr, "/api/v2/aibridge/sessions?limit=1", &admin_token) {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::NotReady("the sessions API".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let probe = {
        let mut sock = TcpStream::connect(admin_addr).map_err(io("probe the API"))?;
        sock.set_read_timeout(Some(Duration::from_secs(120))).map_err(io("probe timeout"))?;
        write!(
            sock,
            "GET /api/v2/aibridge/sessions?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin_token}\r\nConnection: close\r\n\r\n"
        )
        .map_err(io("probe the API"))?;
        let mut text = String::new();
        sock.read_to_string(&mut text).map_err(io("read the probe"))?;
        text
    };
    let counted = probe
        .split_once("\"count\":")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    if counted != Some(expected_sessions) {
        return Err(BenchError::Loadgen(format!(
            "the sessions API counts {counted:?} sessions, the database holds {expected_sessions}"
        )));
    }

    let loadgen = Loadgen {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_aibridged-loadgen")),
        cpus: Pinning::default().load,
        dir: tmp.clone(),
        seq: Default::default(),
    };
    let targets = vec![
        Target {
            name: "direct".into(),
            addr: mock_addr.clone(),
            path: DIRECT_PATH.into(),
            headers: vec![("Authorization".into(), "Bearer sk-bench".into())],
        },
        Target {
            name: name.into(),
            addr: gw.addr.clone(),
            path: PROXY_PATH.into(),
            headers: vec![("Authorization".into(), format!("Bearer {}", gw.token))],
        },
    ];
    let mut reads: Vec<ReadStats> =
        API_READS.iter().map(|(n, _)| ReadStats { name: n.to_string(), ..Default::default() }).collect();
    let mut segments: Vec<Segment> = Vec::new();
    let mut hammered_ms = 0u64;
    for hammered in schedule(s.segments) {
        eprintln!("sessions_api: segment {} ({})", segments.len() + 1, if hammered { "hammered" } else { "quiet" });
        let before: u64 = reads.iter().map(|r| r.ok).sum();
        let hammer = hammered.then(|| Hammer::start(admin_addr, &admin_token, s.api_clients));
        if hammered {
            // Let the first heavy reads get going before the first measured request.
            std::thread::sleep(Duration::from_millis(200));
        }
        let seg_start = Instant::now();
        let job = Job::Latency {
            targets: targets.clone(),
            request: RequestSpec { body: BODY.into(), headers: vec![] },
            warmup: s.warmup,
            rounds: s.rounds,
            per_round: s.per_round,
            time_limit_ms: 120_000,
        };
        let res = loadgen.run(&job, Duration::from_secs(180));
        if let Some(h) = hammer {
            hammered_ms += seg_start.elapsed().as_millis() as u64;
            h.stop(&mut reads);
        }
        let JobResult::Latency { targets: t, .. } = res? else {
            return Err(BenchError::Loadgen("unexpected result kind".into()));
        };
        let (Some(direct), Some(gwt)) = (t.iter().find(|x| x.name == "direct"), t.iter().find(|x| x.name == name))
        else {
            return Err(BenchError::Loadgen("a target is missing from the result".into()));
        };
        let us = |ns: i64| ns as f64 / 1e3;
        segments.push(Segment {
            hammered,
            gateway_p50_us: us(gwt.latency.p50),
            gateway_p99_us: us(gwt.latency.p99),
            added_p50_us: us(gwt.latency.p50 - direct.latency.p50),
            added_p99_us: us(gwt.latency.p99 - direct.latency.p99),
            samples: gwt.latency.count,
            errors: gwt.errors + direct.errors,
            api_reads: reads.iter().map(|r| r.ok).sum::<u64>() - before,
        });
    }
    drop(gw);

    let pick = |h: bool, f: fn(&Segment) -> f64| segments.iter().filter(|x| x.hammered == h).map(f).collect::<Vec<_>>();
    let mut out = format!(
        "\n## Data-plane latency while the sessions API is hammered ({} interceptions, {} sessions, {} API clients)\n\n\
         c=1, {} requests per segment and condition, segments alternating quiet/hammered (ABBA); figures are the\n\
         median over segments (min–max); added = gateway minus direct-to-mock in the same segment.\n\n\
         | condition | segments | gateway p50 µs | gateway p99 µs | added p50 µs | added p99 µs | API reads |\n\
         |---|---|---|---|---|---|---|\n",
        s.interceptions,
        expected_sessions,
        s.api_clients,
        s.rounds * s.per_round
    );
    for h in [false, true] {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            if h { "API hammered" } else { "quiet" },
            segments.iter().filter(|x| x.hammered == h).count(),
            spread(&pick(h, |x| x.gateway_p50_us)),
            spread(&pick(h, |x| x.gateway_p99_us)),
            spread(&pick(h, |x| x.added_p50_us)),
            spread(&pick(h, |x| x.added_p99_us)),
            segments.iter().filter(|x| x.hammered == h).map(|x| x.api_reads).sum::<u64>(),
        ));
    }
    let ratio = |f: fn(&Segment) -> f64| median(&pick(true, f)) / median(&pick(false, f));
    let ratios = serde_json::json!({
        "gateway_p50": ratio(|x| x.gateway_p50_us),
        "gateway_p99": ratio(|x| x.gateway_p99_us),
        "added_p50": ratio(|x| x.added_p50_us),
        "added_p99": ratio(|x| x.added_p99_us),
    });
    out.push_str(&format!(
        "\nhammered / quiet (ratio of medians): gateway p50 {:.2}, p99 {:.2}; added p50 {:.2}, p99 {:.2}\n",
        ratios["gateway_p50"].as_f64().unwrap_or(f64::NAN),
        ratios["gateway_p99"].as_f64().unwrap_or(f64::NAN),
        ratios["added_p50"].as_f64().unwrap_or(f64::NAN),
        ratios["added_p99"].as_f64().unwrap_or(f64::NAN),
    ));
    out.push_str("\n| API read (while hammered) | answered | errors | median ms | max ms | answer KiB |\n|---|---|---|---|---|---|\n");
    for r in &reads {
        let max = r.millis.iter().copied().fold(0.0, f64::max);
        out.push_str(&format!(
            "| {} | {} | {}{} | {:.0} | {:.0} | {:.0} |\n",
            r.name,
            r.ok,
            r.errors,
            r.first_error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
            median(&r.millis),
            max,
            r.bytes as f64 / 1024.0
        ));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    out.push_str(&format!(
        "\nAPI reads/s while hammered: {:.1}; load average at the end: {}; CPUs: {}\n",
        reads.iter().map(|r| r.ok).sum::<u64>() as f64 / (hammered_ms.max(1) as f64 / 1e3),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        procs::allowed_cpus().len()
    ));
    let errors: u64 = segments.iter().map(|x| x.errors).sum();
    if errors > 0 {
        out.push_str(&format!("\nNOTE: {errors} data-plane requests failed during the run\n"));
    }

    let stamp_now = time::OffsetDateTime::now_utc();
    let ts = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        stamp_now.year(),
        u8::from(stamp_now.month()),
        stamp_now.day(),
        stamp_now.hour(),
        stamp_now.minute(),
        stamp_now.second()
    );
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).map_err(io("create target/bench"))?;
    let json_path = dir.join(format!("sessions-api-{ts}.json"));
    let json = serde_json::json!({
        "timestamp": ts,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "settings": s,
        "segments": segments,
        "ratios_hammered_over_quiet": ratios,
        "api_reads": reads.iter().map(|r| serde_json::json!({
            "name": r.name, "ok": r.ok, "errors": r.errors, "first_error": r.first_error,
            "median_ms": median(&r.millis), "bytes": r.bytes,
        })).collect::<Vec<_>>(),
        "loadavg": load.trim(),
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&json).unwrap_or_default())
        .map_err(io("write the JSON report"))?;
    out.push_str(&format!("\nJSON: {}  (run took {:.0} s)\n", json_path.display(), started.elapsed().as_secs_f64()));
    println!("{out}");
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Checks of the arithmetic and formats, run by `cargo test --bench sessions_api`.
fn self_test() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    assert!(median(&[]).is_nan());
    assert_eq!(spread(&[1.0, 3.0, 2.0]), "2.0 (1.0–3.0)");
    assert_eq!(schedule(2), vec![false, true, true, false]);
    let t = time::macros::datetime!(2026-11-27 05:59:04.123456 UTC);
    assert_eq!(stamp(t), "2026-11-27T05:59:04.123456Z");
    assert_eq!(id(1, 255), "01900001-0000-7000-8000-0000000000ff");
}
