//! The pool's operator surface over HTTP (feature `http`): a REST and WebSocket API with
//! token auth, a live dashboard, Prometheus metrics, and health for probes and load
//! balancers, as axum [`Router`]s an embedder mounts in its own server (or serves with
//! [`serve`]), on one address or on three.
//!
//! | router | path | answer |
//! |---|---|---|
//! | [`api`] | `/` | the dashboard: one page, every asset inline, live through the WebSocket |
//! | | `GET /api/status` | role, state, version, uptime, algorithms and ports, node and database state |
//! | | `GET /api/stats` | hashrate over 1 min / 5 min / 1 h, shares by result and reason, blocks, network difficulty, effort |
//! | | `GET /api/workers` | per worker: hashrate, last share, difficulty, accepted, rejected |
//! | | `GET /api/blocks` | the newest blocks found, with status |
//! | | `GET /api/payments?address=` | an address's balances and payments |
//! | | `POST /api/mining/start`, `/stop` | the local miner's switch (a bearer token when auth is on) |
//! | | `GET /api/ws` | WebSocket: share, job, block, worker and periodic stats events as JSON |
//! | | `GET /api/openapi.json` | the OpenAPI document generated from the handlers |
//! | [`metrics`] | `/metrics` | Prometheus text: shares, hashrate, blocks, connections, latencies |
//! | [`health`] | `/health/live` | 200 while the process serves HTTP at all |
//! | | `/health/ready` | 200 when the pool can serve miners (fresh work, the database answering), else 503 with the reasons |
//!
//! Errors are JSON (`{"error": ..., "status": ...}`), never a bare status. With a
//! [`TokenAuth`], the mutating endpoints need `Authorization: Bearer <token>`; reads stay
//! public unless [`ApiOptions::protect_reads`].
//!
//! ```no_run
//! # async fn demo(view: otedama_pool::service::PoolView) -> std::io::Result<()> {
//! use otedama_pool::http::{self, ApiOptions, Served, TokenAuth};
//!
//! let options = ApiOptions {
//!     auth: TokenAuth::new(*b"a secret of sixteen bytes or more").ok(),
//!     ..ApiOptions::default()
//! };
//! let pools = vec![Served { view: view.clone(), node: "devnet".into() }];
//! let app = http::api(pools, options)
//!     .merge(http::metrics(vec![view.clone()]))
//!     .merge(http::health(vec![view]));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! http::serve(listener, app, std::future::pending()).await
//! # }
//! ```

mod api;
mod metrics;
mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use crate::auth::{ShortSecret, TokenAuth, TokenError, MIN_SECRET_LEN};
pub use api::{
    openapi, AlgorithmBody, BalanceBody, BansBody, BlockBody, BlocksBody, ConfigReload,
    ConnectionsBody, ErrorBody, HashrateBody, MinerControl, MinerState, PaymentBody, PaymentsBody,
    RejectedBody, ReloadBody, ReloadError, Served, SharechainBody, SharechainPayoutBody,
    SharechainPeerBody, SharechainStatus, SharesBody, StatsBody, StatusBody, WorkerBody,
};
pub use metrics::{render, render_pools, to_text_format, Extra};
pub use ws::event_json;

use crate::service::PoolView;

/// How long `/health/ready` waits for the database.
const READY_PATIENCE: Duration = Duration::from_secs(2);

/// The dashboard page: small, self-contained, no asset from elsewhere.
const DASHBOARD: &str = include_str!("dashboard.html");

/// How the API is served.
#[derive(Clone, Default)]
pub struct ApiOptions {
    /// Checks bearer tokens; `None` leaves every endpoint open.
    pub auth: Option<TokenAuth>,
    /// Whether reads need a token too (with `auth`).
    pub protect_reads: bool,
    /// The local miner the API switches on and off.
    pub miner: Option<Arc<dyn MinerControl>>,
    /// Whether `/` serves the dashboard.
    pub dashboard: bool,
    /// The sharechain the main pool mines on, for `/api/sharechain`.
    pub sharechain: Option<Arc<dyn SharechainStatus>>,
    /// The configuration `POST /api/config/reload` reads again.
    pub reload: Option<Arc<dyn ConfigReload>>,
}

impl std::fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiOptions")
            .field("auth", &self.auth.is_some())
            .field("protect_reads", &self.protect_reads)
            .field("miner", &self.miner.is_some())
            .field("dashboard", &self.dashboard)
            .field("sharechain", &self.sharechain.is_some())
            .field("reload", &self.reload.is_some())
            .finish()
    }
}

/// The API, WebSocket and dashboard over `pools` (the first is the main one, whose stats
/// the dashboard and the WebSocket show).
pub fn api(pools: Vec<Served>, options: ApiOptions) -> Router {
    let state = api::ApiState {
        pools: Arc::new(pools),
        auth: options.auth,
        protect_reads: options.protect_reads,
        miner: options.miner,
        started: std::time::Instant::now(),
        database: Arc::new(tokio::sync::Semaphore::new(api::DATABASE_CALLS)),
        ws_clients: Arc::new(tokio::sync::Semaphore::new(api::WS_CLIENTS)),
        sharechain: options.sharechain,
        reload: options.reload,
    };
    let routes = Router::new()
        .route("/api/status", get(api::status))
        .route("/api/stats", get(api::stats))
        .route("/api/workers", get(api::workers))
        .route("/api/blocks", get(api::blocks))
        .route("/api/payments", get(api::payments))
        .route("/api/sharechain", get(api::sharechain))
        .route("/api/mining/start", post(api::mining_start))
        .route("/api/mining/stop", post(api::mining_stop))
        .route("/api/config/reload", post(api::config_reload))
        .route("/api/ws", get(ws::upgrade))
        .route("/api/openapi.json", get(api::openapi_json));
    let routes = if options.dashboard {
        routes.route("/", get(dashboard))
    } else {
        routes
    };
    routes.fallback(not_found).with_state(state)
}

/// `/metrics` over `pools`, every sample labelled with its pool's algorithm.
pub fn metrics(pools: Vec<PoolView>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(Arc::new(pools))
}

/// `/health/live` and `/health/ready` over `pools`: ready when every pool is.
pub fn health(pools: Vec<PoolView>) -> Router {
    let probes = Arc::new(tokio::sync::Semaphore::new(1));
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state((Arc::new(pools), probes))
}

/// A miner's own API: `/api/status` and `/api/stats` in the pool's shape, the switch, and
/// `/health/live`.
pub fn miner(miner: Arc<dyn MinerControl>, auth: Option<TokenAuth>) -> Router {
    let state = api::ApiState {
        pools: Arc::new(Vec::new()),
        auth,
        protect_reads: false,
        miner: Some(miner),
        started: std::time::Instant::now(),
        database: Arc::new(tokio::sync::Semaphore::new(api::DATABASE_CALLS)),
        ws_clients: Arc::new(tokio::sync::Semaphore::new(api::WS_CLIENTS)),
        sharechain: None,
        reload: None,
    };
    Router::new()
        .route("/api/status", get(miner_status))
        .route("/api/stats", get(miner_stats))
        .route("/api/mining/start", post(api::mining_start))
        .route("/api/mining/stop", post(api::mining_stop))
        .route("/health/live", get(live))
        .fallback(not_found)
        .with_state(state)
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

async fn dashboard() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:",
            ),
        ],
        Html(DASHBOARD),
    )
        .into_response()
}

async fn not_found() -> api::ApiError {
    api::ApiError(StatusCode::NOT_FOUND, "no such endpoint".into())
}

async fn live() -> &'static str {
    "ok\n"
}

/// The views, and the one readiness probe that may run at a time (each asks the database).
type HealthState = (Arc<Vec<PoolView>>, Arc<tokio::sync::Semaphore>);

async fn ready(State((views, probes)): State<HealthState>) -> Response {
    let Ok(_probe) = probes.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let readiness = tokio::task::spawn_blocking(move || {
        views
            .iter()
            .flat_map(|v| v.readiness(READY_PATIENCE).problems)
            .collect::<Vec<_>>()
    })
    .await;
    match readiness {
        Ok(problems) if problems.is_empty() => {
            (StatusCode::OK, Json(json!({"ready": true}))).into_response()
        }
        Ok(problems) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "problems": problems})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "problems": ["the readiness check failed"]})),
        )
            .into_response(),
    }
}

async fn miner_status(
    State(state): State<api::ApiState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, api::ApiError> {
    state.authorize(&headers, false)?;
    let m = state.miner.as_ref().map(|m| m.state());
    Ok(Json(json!({
        "role": "miner",
        "state": if m.as_ref().is_some_and(|m| m.running) { "running" } else { "stopped" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "algorithms": m.as_ref().map(|m| vec![json!({"algorithm": m.algorithm, "pool": m.pool})]),
        "problems": [],
        "miner": m,
    })))
}

async fn miner_stats(
    State(state): State<api::ApiState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, api::ApiError> {
    state.authorize(&headers, false)?;
    let Some(m) = state.miner.as_ref().map(|m| m.state()) else {
        return Err(api::ApiError(StatusCode::NOT_FOUND, "no miner".into()));
    };
    Ok(Json(json!({
        "algorithm": m.algorithm,
        "uptime_seconds": m.uptime_seconds,
        "hashrate": m.hashrate,
        "shares": {"accepted": m.accepted, "rejected": m.rejected},
        "workers": usize::from(m.running),
    })))
}
