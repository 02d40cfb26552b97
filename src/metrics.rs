//! Prometheus metrics: plain atomic counters on the hot path, rendered in the text exposition
//! format at `/auth/metrics`. Access is decided in the auth handler (not anonymous unless
//! configured: metrics reveal traffic and user activity, cf. Pomerium CVE-2022-24797).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

/// Upper bounds (seconds) of the upstream latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Label values of `dashgate_requests_total`.
const OUTCOMES: [&str; 6] = [
    "ok",
    "unauthenticated",
    "forbidden",
    "bad_request",
    "upstream_error",
    "error",
];
/// Label values of `dashgate_logins_total`.
pub const LOGIN_RESULTS: [&str; 4] = ["success", "failure", "csrf_failure", "throttled"];
/// Label values of `dashgate_refreshes_total`.
pub const REFRESH_RESULTS: [&str; 4] = ["rotated", "grace", "reused", "invalid"];

struct Counters<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl<const N: usize> Counters<N> {
    fn inc(&self, i: usize) {
        if let Some(c) = self.0.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self, i: usize) -> u64 {
        self.0.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// All of dashgate's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Counters<6>,
    logins: Counters<4>,
    refreshes: Counters<4>,
    revocations: AtomicU64,
    latency_buckets: Counters<12>,
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

/// Which `OUTCOMES` entry a response status counts as.
fn outcome(status: StatusCode) -> usize {
    match status.as_u16() {
        401 => 1,
        403 => 2,
        502 | 504 => 4,
        400..=499 => 3,
        500..=599 => 5,
        _ => 0,
    }
}

impl Metrics {
    pub fn request(&self, status: StatusCode) {
        self.requests.inc(outcome(status));
    }

    /// `result` is one of [`LOGIN_RESULTS`].
    pub fn login(&self, result: &str) {
        if let Some(i) = LOGIN_RESULTS.iter().position(|r| *r == result) {
            self.logins.inc(i);
        }
    }

    /// `result` is one of [`REFRESH_RESULTS`].
    pub fn refresh(&self, result: &str) {
        if let Some(i) = REFRESH_RESULTS.iter().position(|r| *r == result) {
            self.refreshes.inc(i);
        }
    }

    pub fn revocation(&self) {
        self.revocations.fetch_add(1, Ordering::Relaxed);
    }

    /// Time from sending a request upstream to its response head.
    pub fn upstream_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets.inc(i);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The text exposition format. `gauges` are point-in-time values computed by the caller.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::with_capacity(4096);
        let family = |out: &mut String, name: &str, help: &str, kind: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "dashgate_requests_total",
            "Requests answered, by outcome.",
            "counter",
        );
        for (i, o) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "dashgate_requests_total{{outcome=\"{o}\"}} {}",
                self.requests.get(i)
            );
        }
        family(
            &mut out,
            "dashgate_logins_total",
            "Login attempts, by result.",
            "counter",
        );
        for (i, r) in LOGIN_RESULTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "dashgate_logins_total{{result=\"{r}\"}} {}",
                self.logins.get(i)
            );
        }
        family(
            &mut out,
            "dashgate_refreshes_total",
            "Refresh-token presentations, by result.",
            "counter",
        );
        for (i, r) in REFRESH_RESULTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "dashgate_refreshes_total{{result=\"{r}\"}} {}",
                self.refreshes.get(i)
            );
        }
        family(
            &mut out,
            "dashgate_revocations_total",
            "Sessions and tokens revoked by this process.",
            "counter",
        );
        let _ = writeln!(
            out,
            "dashgate_revocations_total {}",
            self.revocations.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "dashgate_upstream_duration_seconds",
            "Time to the upstream's response head.",
            "histogram",
        );
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency_buckets.get(i);
            let _ = writeln!(
                out,
                "dashgate_upstream_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "dashgate_upstream_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "dashgate_upstream_duration_seconds_sum {sum}");
        let _ = writeln!(out, "dashgate_upstream_duration_seconds_count {count}");
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request(StatusCode::OK);
        m.request(StatusCode::FORBIDDEN);
        m.request(StatusCode::BAD_GATEWAY);
        m.login("success");
        m.login("nonsense");
        m.refresh("reused");
        m.upstream_latency(Duration::from_millis(3));
        m.upstream_latency(Duration::from_millis(30));
        let text = m.render(&[("dashgate_upstreams_healthy", "Healthy upstreams.", 2)]);
        for line in [
            "dashgate_requests_total{outcome=\"ok\"} 1",
            "dashgate_requests_total{outcome=\"forbidden\"} 1",
            "dashgate_requests_total{outcome=\"upstream_error\"} 1",
            "dashgate_logins_total{result=\"success\"} 1",
            "dashgate_refreshes_total{result=\"reused\"} 1",
            "dashgate_upstream_duration_seconds_bucket{le=\"0.0025\"} 0",
            "dashgate_upstream_duration_seconds_bucket{le=\"0.005\"} 1",
            "dashgate_upstream_duration_seconds_bucket{le=\"0.05\"} 2",
            "dashgate_upstream_duration_seconds_bucket{le=\"+Inf\"} 2",
            "dashgate_upstream_duration_seconds_count 2",
            "dashgate_upstreams_healthy 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
