//! Sink throughput: interceptions per second (start, end, one token usage, one prompt each) committed to
//! SQLite by the single sink thread, without and with the JSON interception log, and into PostgreSQL (a
//! throwaway local cluster) in the same run, alternated over three rounds. A plain harness that prints
//! rates; targets are ≥ 150k/s without logs, ≥ 100k/s with the JSON log to a file, and PostgreSQL ≥ 0.5×
//! SQLite. It also compares the two ways to bulk-load a batch into PostgreSQL (binary `COPY` and one
//! `INSERT … SELECT FROM unnest`). `SINK_BENCH_SKIP=label,…` skips the extra runs (`sqlite+json`,
//! `sqlite-v4-ids`, `pg-load`); `SINK_BENCH_PG=name=value,…` sizes the server (`ALTER SYSTEM`, restart).

#[path = "../tests/support/pg_cluster.rs"]
mod pg_cluster;

use std::time::{Duration, Instant, SystemTime};

use aibridged::records::*;
use aibridged::sink::{new_interception_id, start, DatabaseUrl, SinkOptions};
use uuid::Uuid;

/// Interceptions per run: enough for many batches and a few WAL checkpoints.
const INTERCEPTIONS: u64 = 200_000;

/// Producer threads standing in for workers.
const PRODUCERS: u64 = 2;

/// CPU time the thread named `name` has used so far (Linux schedstat), if it is alive.
fn thread_cpu(name: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(ns));
        }
    }
    None
}

/// Samples the sink thread's CPU time until it exits; returns the last sample (within 5 ms of its end).
fn watch_sink_cpu() -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(|| {
        let mut last = Duration::ZERO;
        let mut seen = false;
        loop {
            match thread_cpu("aibridge-sink") {
                Some(t) => {
                    last = t;
                    seen = true;
                }
                None if seen => return last,
                None => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

fn run(label: &str, json_log: bool, random_ids: bool) -> f64 {
    run_on(label, None, json_log, random_ids)
}

/// One run into SQLite, or into the PostgreSQL database at `pg` when given.
fn run_on(label: &str, pg: Option<&str>, json_log: bool, random_ids: bool) -> f64 {
    let dir = std::env::temp_dir().join(format!("aibridged-bench-sink-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut opts = match pg {
        Some(url) => SinkOptions::new(DatabaseUrl::parse(url).expect("postgres url")),
        None => SinkOptions::new(dir.join("bench.db")),
    };
    // The bench measures the store, so the close waits for every record however slow the machine is
    // (the default 30 s drain would spill a backlog a loaded machine has not committed yet).
    opts.shutdown_drain = Duration::from_secs(3600);
    if json_log {
        opts.structured_logging = true;
        opts.log_json = Some(dir.join("bench.json").to_string_lossy().into_owned());
    }
    let (handle, thread) = start(opts).expect("start sink");
    let sink_cpu = watch_sink_cpu();
    let began = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let h = handle.clone();
            std::thread::spawn(move || {
                for _ in 0..INTERCEPTIONS / PRODUCERS {
                    let id = if random_ids { Uuid::new_v4() } else { new_interception_id() };
                    let now = SystemTime::now();
                    h.send(Record::InterceptionStart(InterceptionStart {
                        interception_id: id,
                        initiator_id: "alice".into(),
                        provider: "anthropic",
                        provider_name: "anthropic".into(),
                        model: "claude-sonnet-4-5-20250929".into(),
                        client: "claude-code".into(),
                        client_session_id: Some("0f9b6a4e-session".into()),
                        user_agent: Some("claude-cli/2.0.14 (external, cli)".into()),
                        correlating_tool_call_id: None,
                        credential_kind: CredentialKind::Centralized,
                        credential_hint: Some("sk-a…wxyz".into()),
                        started_at: now,
                        gateway_id: "bench-gateway".into(),
                        api: Api::ChatCompletions,
                    }));
                    h.send(Record::PromptUsage(PromptUsage {
                        interception_id: id,
                        msg_id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
                        prompt: "Refactor the retry loop in src/sink/mod.rs to use exponential backoff.".into(),
                        created_at: now,
                    }));
                    h.send(Record::TokenUsage(TokenUsage {
                        interception_id: id,
                        msg_id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
                        input_tokens: 1234,
                        output_tokens: 567,
                        cache_read_input_tokens: 20_000,
                        cache_write_input_tokens: 300,
                        reasoning_tokens: 0,
                        extra: "{}".into(),
                        created_at: now,
                    }));
                    h.send(Record::InterceptionEnd(InterceptionEnd {
                        interception_id: id,
                        ended_at: now + Duration::from_millis(800),
                        status: EndStatus::Completed,
                        upstream_status: Some(200),
                    }));
                }
            })
        })
        .collect();
    drop(handle);
    for p in producers {
        p.join().expect("producer");
    }
    let s = thread.join();
    let elapsed = began.elapsed();
    let cpu = sink_cpu.join().expect("cpu watcher");
    assert_eq!(s.records_written, INTERCEPTIONS * 4, "every record committed");
    let rate = INTERCEPTIONS as f64 / elapsed.as_secs_f64();
    println!(
        "sink/{label}: {INTERCEPTIONS} interceptions ({} records) in {:.3} s = {:.0} interceptions/s \
         ({:.0} records/s); sink thread on CPU {:.3} s = {:.0} interceptions per sink-CPU-second; \
         {} batches, {} full-channel waits",
        s.records_written,
        elapsed.as_secs_f64(),
        rate,
        s.records_written as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64(),
        INTERCEPTIONS as f64 / cpu.as_secs_f64().max(1e-9),
        s.batches,
        s.full_waits,
    );
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

/// Rows of `aibridge_user_prompts` per bulk-load batch, as a full sink batch carries.
const LOAD_BATCH: usize = 1024;

/// Loads `batches` batches of prompt rows into a fresh table with binary `COPY` and with one
/// `INSERT … SELECT FROM unnest(...)` per batch (each batch its own transaction), printing rows/s of each.
fn copy_vs_insert(url: &str, batches: usize) {
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::Type;
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .batch_execute(
            "CREATE TABLE load_copy (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, interception_id uuid NOT NULL, \
             msg_id text NOT NULL, prompt text NOT NULL, created_at timestamptz NOT NULL); \
             CREATE INDEX ON load_copy (interception_id); \
             CREATE TABLE load_insert (LIKE load_copy INCLUDING ALL);",
        )
        .expect("tables");
    let ids: Vec<Uuid> = (0..LOAD_BATCH).map(|_| new_interception_id()).collect();
    let prompt = "Refactor the retry loop in src/sink/mod.rs to use exponential backoff.";
    let now = SystemTime::now();
    let mut rates = Vec::new();
    for round in 0..3 {
        let began = Instant::now();
        for _ in 0..batches {
            let mut tx = client.transaction().expect("tx");
            let sink = tx
                .copy_in("COPY load_copy (interception_id, msg_id, prompt, created_at) FROM STDIN (FORMAT binary)")
                .expect("copy");
            let mut writer = BinaryCopyInWriter::new(sink, &[Type::UUID, Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ]);
            for id in &ids {
                writer.write(&[id, &"msg_01XFDUDYJgAACzvnptvVoYEL", &prompt, &now]).expect("row");
            }
            writer.finish().expect("finish");
            tx.commit().expect("commit");
        }
        let copy = (batches * LOAD_BATCH) as f64 / began.elapsed().as_secs_f64();
        let insert = client
            .prepare(
                "INSERT INTO load_insert (interception_id, msg_id, prompt, created_at) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])",
            )
            .expect("prepare");
        let began = Instant::now();
        for _ in 0..batches {
            let mut tx = client.transaction().expect("tx");
            let msg: Vec<&str> = vec!["msg_01XFDUDYJgAACzvnptvVoYEL"; LOAD_BATCH];
            let prompts: Vec<&str> = vec![prompt; LOAD_BATCH];
            let times: Vec<SystemTime> = vec![now; LOAD_BATCH];
            tx.execute(&insert, &[&ids, &msg, &prompts, &times]).expect("insert");
            tx.commit().expect("commit");
        }
        let unnest = (batches * LOAD_BATCH) as f64 / began.elapsed().as_secs_f64();
        println!("pg-load round {round}: binary COPY {copy:.0} rows/s, INSERT … unnest {unnest:.0} rows/s");
        rates.push((copy, unnest));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let copy = median(rates.iter().map(|r| r.0).collect());
    let unnest = median(rates.iter().map(|r| r.1).collect());
    println!(
        "pg-load medians of 3: binary COPY {copy:.0} rows/s, INSERT … unnest {unnest:.0} rows/s (unnest/COPY = {:.2})",
        unnest / copy
    );
}

/// `SINK_BENCH_SKIP=label,label` leaves those runs out (`sqlite+json`, `sqlite-v4-ids`, `pg-load`), for
/// profiling one store.
fn skipped(label: &str) -> bool {
    std::env::var("SINK_BENCH_SKIP").is_ok_and(|skip| skip.split(',').any(|s| s.trim() == label))
}

/// Rounds of SQLite and PostgreSQL, alternated so that both see the same machine (its speed drifts by
/// ±15 % from minute to minute here); the ratio is the median of the rounds' ratios.
const STORE_ROUNDS: usize = 3;

/// The median and the range of `v`.
fn median_range(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    // `cargo bench` passes `--bench`; any filter argument is ignored by this plain harness.
    // PostgreSQL: a throwaway cluster on a loopback port (server defaults: fsync and synchronous_commit on).
    let cluster = pg_cluster::PgCluster::start();
    if let Ok(settings) = std::env::var("SINK_BENCH_PG") {
        let pairs: Vec<(&str, &str)> = settings.split(',').filter_map(|kv| kv.split_once('=')).collect();
        cluster.configure(&pairs);
    }
    let (mut sqlite, mut pg, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..STORE_ROUNDS {
        let lite = run(&format!("sqlite-{round}"), false, false);
        let url = cluster.create_database(&format!("bench{round}"));
        let post = run_on(&format!("postgres-{round}"), Some(&url), false, false);
        println!("sink round {round}: postgres/sqlite = {:.2}", post / lite);
        sqlite.push(lite);
        pg.push(post);
        ratios.push(post / lite);
    }
    let logged = if skipped("sqlite+json") { None } else { Some(run("sqlite+json", true, false)) };
    // For comparison: random (v4) interception ids, which scatter index inserts over the whole B-trees.
    if !skipped("sqlite-v4-ids") {
        run("sqlite-v4-ids", false, true);
    }
    if !skipped("pg-load") {
        copy_vs_insert(&cluster.create_database("load"), 100);
    }
    drop(cluster);
    let (lite, lite_lo, lite_hi) = median_range(&sqlite);
    let (post, post_lo, post_hi) = median_range(&pg);
    let (ratio, ratio_lo, ratio_hi) = median_range(&ratios);
    println!(
        "sink medians of {STORE_ROUNDS} alternated rounds: sqlite {lite:.0}/s ({lite_lo:.0}–{lite_hi:.0}), \
         postgres {post:.0}/s ({post_lo:.0}–{post_hi:.0}), postgres/sqlite {ratio:.2} ({ratio_lo:.2}–{ratio_hi:.2})"
    );
    let logged = match logged {
        Some(rate) => format!("{rate:.0}/s (target 100000) {}", if rate >= 100_000.0 { "MET" } else { "MISSED" }),
        None => "skipped".to_owned(),
    };
    println!(
        "sink targets: sqlite {lite:.0}/s (target 150000) {}, sqlite+json {logged}, \
         postgres {post:.0}/s = {ratio:.2}x sqlite (target 0.5x) {}",
        if lite >= 150_000.0 { "MET" } else { "MISSED" },
        if ratio >= 0.5 { "MET" } else { "MISSED" },
    );
}
