//! Open-loop job: a fixed request rate whatever the server does. Request i is due at start + i/rate and
//! goes out on connection i mod C; its latency counts from the due time, so a stalled server is charged
//! for every request it delayed (coordinated-omission correction, as in wrk2), not just the one it held.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::http::{encode_request, monotonic_ns, Conn};
use crate::proto::{JobResult, RequestSpec, Target};
use crate::stats::{new_histogram, record, summarize_hist};
use crate::THREAD_STACK;

/// A request that takes longer than this is a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After the sending window, requests still not sent this long past their due time are dropped (and
/// counted as unsent) so a stalled server cannot make the job run unbounded.
const LATE_GRACE: Duration = Duration::from_secs(5);
/// Lead before the first due time, so every thread is connected and waiting when sending starts.
const START_LEAD: Duration = Duration::from_millis(50);

/// Lets this thread's sleeps end within about a microsecond of the asked time instead of the default
/// 50 µs slack: an oversleep would be charged to the server as latency.
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and only affects the calling thread.
    unsafe {
        libc::prctl(
            libc::PR_SET_TIMERSLACK,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
}

fn sleep_until(due_ns: i64) {
    let now = monotonic_ns();
    if due_ns > now {
        std::thread::sleep(Duration::from_nanos((due_ns - now) as u64));
    }
}

/// See [`crate::proto::Job::OpenLoop`].
pub fn open_loop(target: &Target, spec: &RequestSpec, rate: u32, duration: Duration, connections: u32) -> JobResult {
    let rate = rate.max(1);
    let connections = connections.max(1) as u64;
    let total = (u128::from(rate) * duration.as_millis() / 1000) as u64;
    let interval_ns = 1_000_000_000f64 / f64::from(rate);
    let request = Arc::new(encode_request(target, spec));
    let barrier = Arc::new(Barrier::new(connections as usize + 1));
    let start_ns = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut handles = Vec::new();
    for k in 0..connections {
        let (request, barrier, start_ns, addr) =
            (request.clone(), barrier.clone(), start_ns.clone(), target.addr.clone());
        let spawned = std::thread::Builder::new().stack_size(THREAD_STACK).spawn(move || {
            tighten_timer_slack();
            let mut lat = new_histogram();
            let mut svc = new_histogram();
            let (mut completed, mut errors, mut unsent) = (0u64, 0u64, 0u64);
            let mut first_error: Option<String> = None;
            let mut conn = Conn::connect(&addr, Some(REQUEST_TIMEOUT)).ok();
            barrier.wait();
            let t0 = start_ns.load(std::sync::atomic::Ordering::Acquire);
            let hard_end = t0 + duration.as_nanos() as i64 + LATE_GRACE.as_nanos() as i64;
            let mut i = k;
            while i < total {
                let due = t0 + (i as f64 * interval_ns) as i64;
                i += connections;
                if monotonic_ns() > hard_end {
                    unsent += 1;
                    continue;
                }
                sleep_until(due);
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Conn::connect(&addr, Some(REQUEST_TIMEOUT)) {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| e.to_string());
                            continue;
                        }
                    },
                };
                let result = c.send(&request).and_then(|sent| c.read_response(sent, |_, _| {}));
                match result {
                    Ok(ex) => {
                        completed += 1;
                        record(&mut lat, ex.done_ns - due);
                        record(&mut svc, ex.done_ns - ex.sent_ns);
                        if !c.reusable {
                            conn = None;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                        conn = None;
                    }
                }
            }
            (lat, svc, completed, errors, unsent, first_error)
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                return JobResult::OpenLoop {
                    name: target.name.clone(),
                    rate,
                    latency: Default::default(),
                    service: Default::default(),
                    completed: 0,
                    errors: 0,
                    unsent: total,
                    achieved_rate: 0.0,
                    first_error: Some(format!("cannot start sender thread: {e}")),
                };
            }
        }
    }
    let t0 = monotonic_ns() + START_LEAD.as_nanos() as i64;
    start_ns.store(t0, std::sync::atomic::Ordering::Release);
    barrier.wait();
    let mut lat = new_histogram();
    let mut svc = new_histogram();
    let (mut completed, mut errors, mut unsent) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    for h in handles {
        if let Ok((l, s, c, e, u, fe)) = h.join() {
            let _ = lat.add(&l);
            let _ = svc.add(&s);
            completed += c;
            errors += e;
            unsent += u;
            if first_error.is_none() {
                first_error = fe;
            }
        }
    }
    let elapsed_s = ((monotonic_ns() - t0) as f64 / 1e9).max(1e-9);
    JobResult::OpenLoop {
        name: target.name.clone(),
        rate,
        latency: summarize_hist(&lat),
        service: summarize_hist(&svc),
        completed,
        errors,
        unsent,
        achieved_rate: completed as f64 / elapsed_s,
        first_error,
    }
}
