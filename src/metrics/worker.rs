//! The counters workers write on the request path: one cache-line-aligned block of relaxed atomics per
//! worker (no sharing between workers, no lock, no allocation per request), summed by the scrape thread.
//! Only fixed labels live here (instance, API, method, route group, phase), so every series has a slot
//! computed at start-up; labels known only at run time (model, initiator, client) are counted by the sink
//! (`recorded`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::records::Api;

use super::histogram::{bucket_of, nanos_of, Histogram, OVERHEAD_BUCKETS, REQUEST_BUCKETS};

/// Every API, in slot order.
pub(crate) const APIS: [Api; 3] = [Api::ChatCompletions, Api::Responses, Api::Messages];

/// The `route` label of an intercepted API (the path as the provider documents it).
pub(crate) fn api_route(api: Api) -> &'static str {
    match api {
        Api::ChatCompletions => "/v1/chat/completions",
        Api::Responses => "/v1/responses",
        Api::Messages => "/v1/messages",
    }
}

fn api_slot(api: Api) -> usize {
    match api {
        Api::ChatCompletions => 0,
        Api::Responses => 1,
        Api::Messages => 2,
    }
}

/// The `method` label values of `passthrough_total`; anything else counts as `OTHER`.
pub(crate) const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER"];

/// The `route` label values of `passthrough_total`: the allow-listed prefixes of README "Providers"
/// (`providers::routes`), so a path with ids in it (`/v1/models/gpt-4o`) does not become a series of
/// its own. Anything else is `other`.
pub(crate) const PASSTHROUGH_ROUTES: [&str; 11] = [
    "/v1/models",
    "/models",
    "/v1/messages/count_tokens",
    "/v1/responses",
    "/responses",
    "/v1/conversations",
    "/conversations",
    "/agents",
    "/mcp",
    "/.well-known",
    "other",
];

fn method_slot(method: &str) -> usize {
    METHODS[..METHODS.len() - 1].iter().position(|m| method.eq_ignore_ascii_case(m)).unwrap_or(METHODS.len() - 1)
}

/// The route group of a passthrough path (after the instance name; a query is ignored).
pub(crate) fn passthrough_route_slot(rest: &str) -> usize {
    let path = rest.split('?').next().unwrap_or(rest);
    PASSTHROUGH_ROUTES[..PASSTHROUGH_ROUTES.len() - 1]
        .iter()
        .position(|g| path.strip_prefix(g).is_some_and(|r| r.is_empty() || r.starts_with('/')))
        .unwrap_or(PASSTHROUGH_ROUTES.len() - 1)
}

/// The parts of a request the gateway itself spends time on (`overhead_seconds{phase}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// From the end of the request head to the end of its body.
    RequestRead,
    /// From the end of the body to a ready upstream connection: inspection, credential choice, pool
    /// checkout or connect (and the attempts key failover gave up on).
    UpstreamConnect,
    /// From the upstream's response head to the first bytes written to the client.
    ResponseRelay,
}

/// Every phase, in slot order, with its label value.
pub(crate) const PHASES: [(Phase, &str); 3] = [
    (Phase::RequestRead, "request_read"),
    (Phase::UpstreamConnect, "upstream_connect"),
    (Phase::ResponseRelay, "response_relay"),
];

/// Counters per cache line: 128 bytes, so adjacent-line prefetching never couples two workers either.
const PER_LINE: usize = 16;

#[repr(align(128))]
struct Line([AtomicU64; PER_LINE]);

/// Where each series lives in a worker's block. The same for every worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) instances: usize,
}

impl Layout {
    fn inflight(&self, instance: usize, api: Api) -> usize {
        instance * APIS.len() + api_slot(api)
    }
    fn passthrough(&self, instance: usize, method: usize, route: usize) -> usize {
        self.instances * APIS.len() + (instance * METHODS.len() + method) * PASSTHROUGH_ROUTES.len() + route
    }
    fn overhead(&self, phase: Phase) -> usize {
        let slot = PHASES.iter().position(|(p, _)| *p == phase).unwrap_or(0);
        self.passthrough(self.instances, 0, 0) + slot * histogram_len(OVERHEAD_BUCKETS)
    }
    fn ttfb(&self, instance: usize) -> usize {
        self.overhead(Phase::RequestRead)
            + PHASES.len() * histogram_len(OVERHEAD_BUCKETS)
            + instance * histogram_len(REQUEST_BUCKETS)
    }
    fn len(&self) -> usize {
        self.ttfb(self.instances)
    }
}

/// Buckets plus `+Inf`, sum and count.
fn histogram_len(bounds: &[u64]) -> usize {
    bounds.len() + 3
}

/// One worker's counters. Only that worker writes them; the scrape thread reads them.
pub(crate) struct WorkerMetrics {
    layout: Layout,
    lines: Box<[Line]>,
}

impl WorkerMetrics {
    pub(crate) fn new(layout: Layout) -> WorkerMetrics {
        let lines =
            (0..layout.len().div_ceil(PER_LINE)).map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0)))).collect();
        WorkerMetrics { layout, lines }
    }

    fn cell(&self, i: usize) -> &AtomicU64 {
        &self.lines[i / PER_LINE].0[i % PER_LINE]
    }

    fn add(&self, i: usize, n: u64) {
        self.cell(i).fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, i: usize) -> u64 {
        self.cell(i).load(Ordering::Relaxed)
    }

    /// An intercepted request of `api` on `instance` is in flight until the guard drops (also when its
    /// task is dropped mid-request).
    pub(crate) fn inflight(&self, instance: usize, api: Api) -> InflightGuard<'_> {
        let cell = self.cell(self.layout.inflight(instance, api));
        cell.fetch_add(1, Ordering::Relaxed);
        InflightGuard(cell)
    }

    /// Counts one passthrough request.
    pub(crate) fn passthrough(&self, instance: usize, method: &str, rest: &str) {
        self.add(self.layout.passthrough(instance, method_slot(method), passthrough_route_slot(rest)), 1);
    }

    /// Records the gateway's own time in `phase`.
    pub(crate) fn overhead(&self, phase: Phase, d: Duration) {
        self.observe(self.layout.overhead(phase), OVERHEAD_BUCKETS, d);
    }

    /// Records an upstream's time to first byte (request sent → response head).
    pub(crate) fn upstream_ttfb(&self, instance: usize, d: Duration) {
        self.observe(self.layout.ttfb(instance), REQUEST_BUCKETS, d);
    }

    fn observe(&self, base: usize, bounds: &'static [u64], d: Duration) {
        let nanos = nanos_of(d);
        self.add(base + bucket_of(bounds, nanos), 1);
        self.add(base + bounds.len() + 1, nanos);
        self.add(base + bounds.len() + 2, 1);
    }

    fn add_histogram_to(&self, base: usize, into: &mut Histogram) {
        let n = into.bounds.len();
        for (i, b) in into.buckets.iter_mut().enumerate() {
            *b += self.get(base + i);
        }
        into.sum_nanos = into.sum_nanos.saturating_add(self.get(base + n + 1));
        into.count += self.get(base + n + 2);
    }
}

/// Holds one in-flight count; gives it back on drop.
pub(crate) struct InflightGuard<'a>(&'a AtomicU64);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sum over all workers, taken by the scrape thread.
pub(crate) struct WorkerTotals {
    /// `[instance][api]`.
    pub(crate) inflight: Vec<[i64; APIS.len()]>,
    /// `[instance][method][route]`.
    pub(crate) passthrough: Vec<[[u64; PASSTHROUGH_ROUTES.len()]; METHODS.len()]>,
    /// By [`PHASES`] order.
    pub(crate) overhead: Vec<Histogram>,
    /// By instance.
    pub(crate) ttfb: Vec<Histogram>,
}

/// Sums every worker's block.
pub(crate) fn totals(layout: Layout, workers: &[WorkerMetrics]) -> WorkerTotals {
    let n = layout.instances;
    let mut t = WorkerTotals {
        inflight: vec![[0; APIS.len()]; n],
        passthrough: vec![[[0; PASSTHROUGH_ROUTES.len()]; METHODS.len()]; n],
        overhead: PHASES.iter().map(|_| Histogram::new(OVERHEAD_BUCKETS)).collect(),
        ttfb: (0..n).map(|_| Histogram::new(REQUEST_BUCKETS)).collect(),
    };
    for w in workers {
        for i in 0..n {
            for api in APIS {
                // A guard gives back on the worker that took, so each worker's count is never negative.
                t.inflight[i][api_slot(api)] += w.get(layout.inflight(i, api)) as i64;
            }
            for m in 0..METHODS.len() {
                for r in 0..PASSTHROUGH_ROUTES.len() {
                    t.passthrough[i][m][r] += w.get(layout.passthrough(i, m, r));
                }
            }
            w.add_histogram_to(layout.ttfb(i), &mut t.ttfb[i]);
        }
        for (slot, (phase, _)) in PHASES.iter().enumerate() {
            w.add_histogram_to(layout.overhead(*phase), &mut t.overhead[slot]);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_has_its_own_slot_and_workers_sum() {
        let layout = Layout { instances: 2 };
        let workers: Vec<_> = (0..3).map(|_| WorkerMetrics::new(layout)).collect();
        let g1 = workers[0].inflight(1, Api::Messages);
        let _g2 = workers[2].inflight(1, Api::Messages);
        {
            let _g3 = workers[1].inflight(0, Api::Responses);
        }
        workers[0].passthrough(0, "get", "/v1/models/gpt-4o?x=1");
        workers[1].passthrough(0, "GET", "/v1/models");
        workers[1].passthrough(1, "BREW", "/v1/elsewhere");
        workers[2].overhead(Phase::ResponseRelay, Duration::from_micros(7));
        workers[0].upstream_ttfb(1, Duration::from_millis(30));
        let t = totals(layout, &workers);
        assert_eq!(t.inflight[1][api_slot(Api::Messages)], 2);
        assert_eq!(t.inflight[0][api_slot(Api::Responses)], 0);
        assert_eq!(t.passthrough[0][0][0], 2);
        assert_eq!(t.passthrough[1][METHODS.len() - 1][PASSTHROUGH_ROUTES.len() - 1], 1);
        assert_eq!(t.overhead[2].count, 1);
        assert_eq!(t.overhead[0].count + t.overhead[1].count, 0);
        assert_eq!(t.ttfb[1].count, 1);
        assert_eq!(t.ttfb[1].sum_nanos, 30_000_000);
        assert_eq!(t.ttfb[0].count, 0);
        drop(g1);
        assert_eq!(totals(layout, &workers).inflight[1][api_slot(Api::Messages)], 1);
        // The last slot is inside the block.
        assert!(layout.ttfb(1) + histogram_len(REQUEST_BUCKETS) <= layout.len());
    }

    #[test]
    fn passthrough_routes_group_by_prefix() {
        assert_eq!(
            PASSTHROUGH_ROUTES[passthrough_route_slot("/v1/messages/count_tokens")],
            "/v1/messages/count_tokens"
        );
        assert_eq!(PASSTHROUGH_ROUTES[passthrough_route_slot("/v1/responses/resp_1/cancel")], "/v1/responses");
        assert_eq!(PASSTHROUGH_ROUTES[passthrough_route_slot("/mcp/readonly")], "/mcp");
        assert_eq!(PASSTHROUGH_ROUTES[passthrough_route_slot("/v1/modelsx")], "other");
    }
}
