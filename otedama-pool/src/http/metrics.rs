//! `/metrics`: the pool's state in Prometheus' text formats.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::service::{PoolSnapshot, PoolView};
use crate::telemetry::LatencySnapshot;

pub(super) async fn metrics(
    State(views): State<Arc<Vec<PoolView>>>,
    headers: HeaderMap,
) -> Response {
    // Prometheus asks for OpenMetrics first; anything else (curl, promtool, older scrapers)
    // gets the classic text format.
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let rendered = tokio::task::spawn_blocking(move || {
        let pools: Vec<(PoolSnapshot, Extra)> = views
            .iter()
            .map(|view| {
                let blocks = view.block_counts().unwrap_or_default();
                (view.snapshot(), Extra::from_view(view, blocks))
            })
            .collect();
        render_pools(&pools)
    })
    .await;
    match rendered {
        Ok(Ok(text)) if openmetrics => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            to_text_format(&text),
        )
            .into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// OpenMetrics text as the classic Prometheus text format: a counter family's `HELP` and
/// `TYPE` name its `_total` samples, and there is no `# EOF`.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

type Labels = Vec<(String, String)>;

/// A latency histogram read from the pool's telemetry.
#[derive(Debug, Default)]
struct Histogram(std::sync::Mutex<Option<LatencySnapshot>>);

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = guard.as_ref() else {
            return Ok(());
        };
        // The encoder sums the buckets itself and writes `+Inf` for `f64::MAX`.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = s
            .buckets
            .iter()
            .map(|&(le, cumulative)| {
                let own = cumulative.saturating_sub(below);
                below = cumulative;
                (if le.is_finite() { le } else { f64::MAX }, own)
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// What the metrics show beyond the snapshot: latencies, node errors, and blocks by status.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// New work to job announced.
    pub job: Option<LatencySnapshot>,
    /// Asking the node for work.
    pub node_work: Option<LatencySnapshot>,
    /// Submitting a block to the node.
    pub node_submit: Option<LatencySnapshot>,
    /// Failed node calls.
    pub node_errors: u64,
    /// One share made durable.
    pub commit: Option<LatencySnapshot>,
    /// Blocks recorded, by status.
    pub blocks: Vec<(String, u64)>,
}

impl Extra {
    fn from_view(view: &PoolView, blocks: Vec<(String, u64)>) -> Extra {
        let t = view.telemetry();
        Extra {
            job: Some(t.job.snapshot()),
            node_work: Some(t.node_work.snapshot()),
            node_submit: Some(t.node_submit.snapshot()),
            node_errors: t.node_error_count(),
            commit: Some(t.commit.snapshot()),
            blocks,
        }
    }
}

/// Metric families labelled by algorithm (and more), filled pool by pool.
struct Families<'a> {
    algorithm: &'a str,
}

impl Families<'_> {
    fn labels(&self, more: &[(&str, &str)]) -> Labels {
        std::iter::once(("algorithm".to_owned(), self.algorithm.to_owned()))
            .chain(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .collect()
    }
}

fn int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// One pool's snapshot in Prometheus' text format (OpenMetrics).
pub fn render(s: &PoolSnapshot) -> Result<String, std::fmt::Error> {
    render_pools(&[(s.clone(), Extra::default())])
}

/// Several pools' snapshots in Prometheus' text format (OpenMetrics); every sample carries
/// its pool's `algorithm` label.
pub fn render_pools(pools: &[(PoolSnapshot, Extra)]) -> Result<String, std::fmt::Error> {
    let shares = Family::<Labels, Counter>::default();
    let work = Family::<Labels, Counter<f64, AtomicU64>>::default();
    let hashrate = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let workers = Family::<Labels, Gauge>::default();
    let found = Family::<Labels, Counter>::default();
    let blocks = Family::<Labels, Gauge>::default();
    let height = Family::<Labels, Gauge>::default();
    let network = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let effort = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let in_flight = Family::<Labels, Gauge>::default();
    let connections = Family::<Labels, Gauge>::default();
    let accepted_connections = Family::<Labels, Counter>::default();
    let refused = Family::<Labels, Counter>::default();
    let rate_limited = Family::<Labels, Counter>::default();
    let bans = Family::<Labels, Counter>::default();
    let bans_in_force = Family::<Labels, Gauge>::default();
    let job_age = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let uptime = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let node_errors = Family::<Labels, Counter>::default();
    let latencies: [Family<Labels, Histogram>; 4] = Default::default();
    for (s, extra) in pools {
        let f = Families {
            algorithm: &s.algorithm,
        };
        shares
            .get_or_create(&f.labels(&[("result", "accepted"), ("reason", "")]))
            .inc_by(s.engine.accepted);
        let r = s.rejections;
        for (reason, n) in [
            ("stale", r.stale),
            ("low_difficulty", r.low_difficulty),
            ("invalid", r.invalid),
            ("pool_error", r.pool_error),
        ] {
            shares
                .get_or_create(&f.labels(&[("result", "rejected"), ("reason", reason)]))
                .inc_by(n);
        }
        work.get_or_create(&f.labels(&[]))
            .inc_by(s.engine.difficulty_sum);
        for (window, value) in [
            ("1m", s.hashrate.one_minute),
            ("5m", s.hashrate.five_minutes),
            ("1h", s.hashrate.one_hour),
        ] {
            hashrate
                .get_or_create(&f.labels(&[("window", window)]))
                .set(value);
        }
        workers.get_or_create(&f.labels(&[])).set(int(s.workers));
        found.get_or_create(&f.labels(&[])).inc_by(s.engine.blocks);
        for (status, n) in &extra.blocks {
            blocks
                .get_or_create(&f.labels(&[("status", status)]))
                .set(int(*n));
        }
        if let Some(tip) = s.tip {
            height.get_or_create(&f.labels(&[])).set(int(tip.height));
            network
                .get_or_create(&f.labels(&[]))
                .set(tip.network_difficulty);
        }
        if let Some(e) = s.effort_percent {
            effort.get_or_create(&f.labels(&[])).set(e);
        }
        in_flight
            .get_or_create(&f.labels(&[]))
            .set(int(s.in_flight));
        connections
            .get_or_create(&f.labels(&[]))
            .set(int(s.connections));
        accepted_connections
            .get_or_create(&f.labels(&[]))
            .inc_by(s.accepted_connections);
        let other = s
            .refused_connections
            .saturating_sub(s.refused_banned + s.refused_too_fast + s.proxy_failed);
        for (reason, n) in [
            ("banned", s.refused_banned),
            ("too_fast", s.refused_too_fast),
            ("proxy_header", s.proxy_failed),
            ("limit", other),
        ] {
            refused
                .get_or_create(&f.labels(&[("reason", reason)]))
                .inc_by(n);
        }
        rate_limited
            .get_or_create(&f.labels(&[]))
            .inc_by(s.rate_limited);
        bans.get_or_create(&f.labels(&[])).inc_by(s.bans_issued);
        bans_in_force
            .get_or_create(&f.labels(&[]))
            .set(int(s.bans_in_force));
        job_age
            .get_or_create(&f.labels(&[]))
            .set(s.job_age.map_or(f64::NAN, |a| a.as_secs_f64()));
        uptime
            .get_or_create(&f.labels(&[]))
            .set(s.uptime.as_secs_f64());
        node_errors
            .get_or_create(&f.labels(&[]))
            .inc_by(extra.node_errors);
        for (family, latency) in latencies.iter().zip([
            &extra.job,
            &extra.node_work,
            &extra.node_submit,
            &extra.commit,
        ]) {
            if let Some(latency) = latency {
                *family
                    .get_or_create(&f.labels(&[]))
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(latency.clone());
            }
        }
    }
    let mut registry = Registry::with_prefix("otedama");
    registry.register("shares", "Shares answered, by result and reason", shares);
    registry.register(
        "share_difficulty",
        "The sum of accepted shares' difficulties: the pool's work in share units",
        work,
    );
    registry.register(
        "hashrate",
        "The pool's hashrate in hashes per second, from accepted difficulty over a window",
        hashrate,
    );
    registry.register("workers", "Workers logged in", workers);
    registry.register("blocks_found", "Blocks found since the start", found);
    registry.register("blocks", "Blocks recorded, by status", blocks);
    registry.register("height", "The height being mined", height);
    registry.register(
        "network_difficulty",
        "The network difficulty, in share-difficulty units",
        network,
    );
    registry.register(
        "effort_percent",
        "Work since the last block found, in percent of the network difficulty",
        effort,
    );
    registry.register(
        "shares_in_flight",
        "Shares between submission and answer",
        in_flight,
    );
    registry.register("connections", "Miner connections served now", connections);
    registry.register(
        "connections_accepted",
        "Miner connections accepted",
        accepted_connections,
    );
    registry.register(
        "connections_refused",
        "Miner connections refused at arrival, by reason",
        refused,
    );
    registry.register(
        "connections_rate_limited",
        "Connections closed for sending lines too fast",
        rate_limited,
    );
    registry.register("bans", "Addresses banned", bans);
    registry.register("bans_in_force", "Bans in force", bans_in_force);
    registry.register(
        "job_age_seconds",
        "How old the newest job is (NaN before the first)",
        job_age,
    );
    registry.register("uptime_seconds", "Since the pool started", uptime);
    registry.register(
        "node_errors",
        "Calls to the node (or devnet) that failed",
        node_errors,
    );
    let [job, node_work, node_submit, commit] = latencies;
    registry.register_with_unit(
        "job_latency",
        "From new work to the job announced to miners",
        Unit::Seconds,
        job,
    );
    registry.register_with_unit(
        "node_work_latency",
        "Asking the node for work",
        Unit::Seconds,
        node_work,
    );
    registry.register_with_unit(
        "node_submit_latency",
        "Submitting a found block to the node",
        Unit::Seconds,
        node_submit,
    );
    registry.register_with_unit(
        "commit_latency",
        "Making one share durable in the database",
        Unit::Seconds,
        commit,
    );
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_samples_in_the_text_format() {
        let om = "# HELP otedama_blocks Blocks found.\n# TYPE otedama_blocks counter\notedama_blocks_total 2\n# HELP otedama_connections Live.\n# TYPE otedama_connections gauge\notedama_connections 5\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP otedama_blocks_total Blocks found.\n# TYPE otedama_blocks_total counter\notedama_blocks_total 2\n# HELP otedama_connections Live.\n# TYPE otedama_connections gauge\notedama_connections 5\n"
        );
    }

    #[test]
    fn histograms_encode_as_cumulative_buckets() {
        let latency = crate::telemetry::Latency::default();
        latency.observe(std::time::Duration::from_millis(2));
        let family = Family::<Labels, Histogram>::default();
        *family
            .get_or_create(&vec![("algorithm".into(), "sha256d".into())])
            .0
            .lock()
            .expect("unpoisoned") = Some(latency.snapshot());
        let mut registry = Registry::default();
        registry.register_with_unit("commit_latency", "test", Unit::Seconds, family);
        let mut out = String::new();
        encode(&mut out, &registry).expect("encodes");
        assert!(
            out.contains("# TYPE commit_latency_seconds histogram"),
            "{out}"
        );
        assert!(
            out.contains("commit_latency_seconds_bucket{le=\"0.0025\",algorithm=\"sha256d\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("le=\"+Inf\",algorithm=\"sha256d\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("le=\"0.001\",algorithm=\"sha256d\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("commit_latency_seconds_count{algorithm=\"sha256d\"} 1"),
            "{out}"
        );
    }
}
