//! `aibridged-loadgen`: the benchmark's load generator, a process of its own so that its CPU never counts
//! as the gateway's. Reads one job (JSON, see `proto`), runs it against loopback servers, prints one JSON
//! result line on stdout. It measures; it never judges (targets and tables live in `benches/e2e.rs`).

mod closed;
mod evloop;
mod http;
mod open;
mod proto;
mod stats;
mod streams;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use proto::{Job, JobResult};

/// Stack of every client thread: they hold a 64 KiB heap buffer and a few frames, and the streaming jobs
/// start hundreds of them (thousands of 8 MiB default stacks would be wasteful address space).
pub const THREAD_STACK: usize = 256 * 1024;

/// Why the load generator could not run a job.
#[derive(Debug, thiserror::Error)]
enum LoadgenError {
    #[error("usage: aibridged-loadgen --job FILE.json")]
    Usage,
    #[error("cannot read job file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("job file is not a valid job: {0}")]
    Parse(#[from] serde_json::Error),
}

/// Writes a result as one JSON line and flushes, so a parent reading line by line sees it at once.
pub fn print_result(result: &JobResult) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(result) {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

fn run(job: Job) -> JobResult {
    match job {
        Job::Latency { targets, request, warmup, rounds, per_round, time_limit_ms } => {
            closed::latency(&targets, &request, warmup, rounds, per_round, Duration::from_millis(time_limit_ms))
        }
        Job::OpenLoop { target, request, rate, duration_ms, connections } => {
            open::open_loop(&target, &request, rate, Duration::from_millis(duration_ms), connections)
        }
        Job::Saturate { target, request, connections, duration_ms } => {
            evloop::saturate(&target, &request, connections, Duration::from_millis(duration_ms))
        }
        Job::Streams { targets, baseline, request, streams, stagger_ms, rounds, time_limit_ms, stream_timeout_ms } => {
            let shape = streams::StreamsShape {
                streams,
                stagger: Duration::from_millis(stagger_ms),
                rounds,
                time_limit: Duration::from_millis(time_limit_ms),
                stream_timeout: Duration::from_millis(stream_timeout_ms),
            };
            streams::streams(&targets, &baseline, &request, &shape)
        }
        Job::Hold { target, request, streams, head_timeout_ms, hold_limit_ms } => streams::hold(
            &target,
            &request,
            streams,
            Duration::from_millis(head_timeout_ms),
            Duration::from_millis(hold_limit_ms),
        ),
    }
}

fn load_job() -> Result<Job, LoadgenError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag, path] if flag == "--job" => path.clone(),
        _ => return Err(LoadgenError::Usage),
    };
    let text = std::fs::read_to_string(&path).map_err(|source| LoadgenError::Read { path, source })?;
    Ok(serde_json::from_str(&text)?)
}

fn main() -> ExitCode {
    let job = match load_job() {
        Ok(j) => j,
        Err(e) => {
            eprintln!("aibridged-loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let is_hold = matches!(job, Job::Hold { .. });
    let result = run(job);
    // A hold job printed its result when the streams were ready; printing again would confuse the reader.
    if !is_hold {
        print_result(&result);
    }
    ExitCode::SUCCESS
}
