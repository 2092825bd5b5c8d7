//! The pool's operator surface over HTTP (feature `http`): health for probes and load
//! balancers, Prometheus metrics, and the pool's counters as JSON, as an axum [`Router`] an
//! embedder mounts in its own server or serves with [`serve`].
//!
//! | path | answer |
//! |---|---|
//! | `/health/live` | 200 while the process serves HTTP at all |
//! | `/health/ready` | 200 when the pool can serve miners (work fresh from its source, the database answering), else 503 with the reasons |
//! | `/metrics` | Prometheus text: shares, blocks, connections, refusals, bans, job age |
//! | `/api/stats` | the same counters as JSON |

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::service::{PoolSnapshot, PoolView};

/// How long `/health/ready` waits for the database.
const READY_PATIENCE: Duration = Duration::from_secs(2);

/// The routes above, over `view`; `/metrics` only `with_metrics`.
pub fn router(view: PoolView, with_metrics: bool) -> Router {
    let routes = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/api/stats", get(stats));
    let routes = if with_metrics {
        routes.route("/metrics", get(metrics))
    } else {
        routes
    };
    routes.with_state(view)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(view): State<PoolView>) -> Response {
    let readiness = tokio::task::spawn_blocking(move || view.readiness(READY_PATIENCE)).await;
    match readiness {
        Ok(r) if r.is_ready() => (StatusCode::OK, Json(json!({"ready": true}))).into_response(),
        Ok(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "problems": r.problems})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "problems": ["the readiness check failed"]})),
        )
            .into_response(),
    }
}

async fn stats(State(view): State<PoolView>) -> Json<serde_json::Value> {
    let s = view.snapshot();
    Json(json!({
        "algorithm": s.algorithm,
        "ports": s.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "uptime_seconds": s.uptime.as_secs_f64(),
        "shares": {
            "accepted": s.engine.accepted,
            "rejected": s.engine.rejected,
            "in_flight": s.in_flight,
            "difficulty_sum": s.engine.difficulty_sum,
        },
        "blocks": s.engine.blocks,
        "job_age_seconds": s.job_age.map(|a| a.as_secs_f64()),
        "connections": {
            "live": s.connections,
            "accepted": s.accepted_connections,
            "refused": s.refused_connections,
            "refused_banned": s.refused_banned,
            "refused_too_fast": s.refused_too_fast,
            "rate_limited": s.rate_limited,
            "proxy_failed": s.proxy_failed,
        },
        "bans": {"issued": s.bans_issued, "in_force": s.bans_in_force},
    }))
}

async fn metrics(State(view): State<PoolView>, headers: axum::http::HeaderMap) -> Response {
    // Prometheus asks for OpenMetrics first; anything else (curl, promtool, older scrapers)
    // gets the classic text format.
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    match render(&view.snapshot()) {
        Ok(text) if openmetrics => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            to_text_format(&text),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
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

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// The snapshot in Prometheus' text format (OpenMetrics).
pub fn render(s: &PoolSnapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("otedama");
    let shares = Family::<Labels, Counter>::default();
    for (result, n) in [
        ("accepted", s.engine.accepted),
        ("rejected", s.engine.rejected),
    ] {
        shares
            .get_or_create(&vec![("result".into(), result.into())])
            .inc_by(n);
    }
    registry.register("shares", "Shares answered, by result", shares);
    let work: Counter<f64, std::sync::atomic::AtomicU64> = Counter::default();
    work.inc_by(s.engine.difficulty_sum);
    registry.register(
        "share_difficulty",
        "The sum of accepted shares' difficulties: the pool's work in share units",
        work,
    );
    registry.register("blocks", "Blocks found", counter(s.engine.blocks));
    registry.register(
        "shares_in_flight",
        "Shares between submission and answer",
        gauge(i64::try_from(s.in_flight).unwrap_or(i64::MAX)),
    );
    registry.register(
        "connections",
        "Miner connections served now",
        gauge(i64::try_from(s.connections).unwrap_or(i64::MAX)),
    );
    registry.register(
        "connections_accepted",
        "Miner connections accepted",
        counter(s.accepted_connections),
    );
    let refused = Family::<Labels, Counter>::default();
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
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc_by(n);
    }
    registry.register(
        "connections_refused",
        "Miner connections refused at arrival, by reason",
        refused,
    );
    registry.register(
        "connections_rate_limited",
        "Connections closed for sending lines too fast",
        counter(s.rate_limited),
    );
    registry.register("bans", "Addresses banned", counter(s.bans_issued));
    registry.register(
        "bans_in_force",
        "Bans in force",
        gauge(i64::try_from(s.bans_in_force).unwrap_or(i64::MAX)),
    );
    let age: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    age.set(s.job_age.map_or(f64::NAN, |a| a.as_secs_f64()));
    registry.register(
        "job_age_seconds",
        "How old the newest job is (NaN before the first)",
        age,
    );
    let uptime: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    uptime.set(s.uptime.as_secs_f64());
    registry.register("uptime_seconds", "Since the pool started", uptime);
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
}
