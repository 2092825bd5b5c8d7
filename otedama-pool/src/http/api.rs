//! The REST API: status, stats, workers, blocks, payments, the local miner's switch, and
//! the OpenAPI document generated from these handlers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::activity::Hashrates;
use crate::auth::TokenAuth;
use crate::service::{PoolSnapshot, PoolView};

/// How long a status call waits for the database.
const STATUS_PATIENCE: Duration = Duration::from_secs(1);
/// The most blocks `/api/blocks` lists.
const MAX_BLOCKS: usize = 100;
/// The longest address `/api/payments` takes.
const MAX_ADDRESS_LEN: usize = 128;

/// The local miner, as the API switches it on and off. The application that runs a miner
/// beside the pool implements it.
pub trait MinerControl: Send + Sync + 'static {
    /// Starts mining (no change when it runs); what the miner is doing after.
    fn start(&self) -> Result<MinerState, String>;
    /// Stops mining (no change when it is stopped); what the miner is doing after.
    fn stop(&self) -> Result<MinerState, String>;
    /// What the miner is doing now.
    fn state(&self) -> MinerState;
}

/// The configuration `POST /api/config/reload` reads again on an operator's request, as a
/// SIGHUP does. The application that owns the configuration file implements it.
pub trait ConfigReload: Send + Sync + 'static {
    /// Reads the configuration again, writes `actor`'s reload to every pool's audit log, and
    /// then puts in force what can change while the pool runs. An unreadable or invalid file
    /// changes nothing. Blocks on the file and the database.
    fn reload(&self, actor: &str) -> Result<ReloadBody, ReloadError>;
}

/// Why a configuration reload changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file cannot be read, or what it says is invalid.
    #[error("{0}")]
    Config(String),
    /// The audit line could not be written, so nothing was put in force.
    #[error("the audit log: {0}")]
    Audit(String),
}

/// `POST /api/config/reload`: what a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ReloadBody {
    /// Settings put in force at once, as `key: old -> new`.
    pub applied: Vec<String>,
    /// Settings the file changes that take a restart; the pool runs on as before with them.
    pub needs_restart: Vec<String>,
}

/// What a miner is doing.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MinerState {
    /// Whether it mines now.
    pub running: bool,
    /// The pool it mines on.
    pub pool: String,
    /// The algorithm.
    pub algorithm: String,
    /// CPU threads hashing.
    pub threads: usize,
    /// Since it started, seconds (0 while stopped).
    pub uptime_seconds: f64,
    /// Its hashrate over the three windows, from hashes counted.
    pub hashrate: HashrateBody,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Shares the pool rejected.
    pub rejected: u64,
}

/// Hashes per second over a minute, five minutes and an hour.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, ToSchema)]
pub struct HashrateBody {
    /// Over the last minute.
    #[serde(rename = "1m")]
    pub one_minute: f64,
    /// Over the last five minutes.
    #[serde(rename = "5m")]
    pub five_minutes: f64,
    /// Over the last hour.
    #[serde(rename = "1h")]
    pub one_hour: f64,
}

impl From<Hashrates> for HashrateBody {
    fn from(h: Hashrates) -> Self {
        HashrateBody {
            one_minute: h.one_minute,
            five_minutes: h.five_minutes,
            one_hour: h.one_hour,
        }
    }
}

/// One pool the API serves: its view and how its work source is described.
#[derive(Debug, Clone)]
pub struct Served {
    /// The running pool.
    pub view: PoolView,
    /// Its work source as the status shows it: `devnet`, or the node's URL.
    pub node: String,
}

/// Everything the API handlers read.
#[derive(Clone)]
pub(super) struct ApiState {
    pub(super) pools: Arc<Vec<Served>>,
    pub(super) auth: Option<TokenAuth>,
    pub(super) protect_reads: bool,
    pub(super) miner: Option<Arc<dyn MinerControl>>,
    pub(super) started: std::time::Instant,
    /// Database calls the API may have in flight at once: they share the share log's writer
    /// thread and the blocking pool with share judging, so readers queue here instead.
    pub(super) database: Arc<tokio::sync::Semaphore>,
    /// WebSocket clients served at once.
    pub(super) ws_clients: Arc<tokio::sync::Semaphore>,
    /// The sharechain the pool mines on, when it does.
    pub(super) sharechain: Option<Arc<dyn SharechainStatus>>,
    /// The configuration an operator may reload.
    pub(super) reload: Option<Arc<dyn ConfigReload>>,
}

/// A sharechain node as `GET /api/sharechain` shows it (a pool on a sharechain implements it:
/// `otedama_pool::sharechain::SharechainNode`, features `http` and `p2p`).
pub trait SharechainStatus: Send + Sync {
    /// The node's state now; `None` once it has stopped.
    fn status(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<SharechainBody>> + Send + '_>>;
}

/// `GET /api/sharechain`: the pool's sharechain node, its peers and the window at its tip.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SharechainBody {
    /// The chain's name (its rules hash to its consensus id).
    pub chain: String,
    /// Whether the node holds a usable chain and waits for no share (miners get work only
    /// then).
    pub synced: bool,
    /// The tip's height, when the chain has one.
    pub height: Option<u64>,
    /// The tip's id, hex.
    pub tip: Option<String>,
    /// Shares held (the horizon).
    pub shares: usize,
    /// Shares received from peers.
    pub received: u64,
    /// Shares refused as invalid.
    pub refused: u64,
    /// The connected peers.
    pub peers: Vec<SharechainPeerBody>,
    /// What a block at the tip pays, in the coinbase's order.
    pub window: Vec<SharechainPayoutBody>,
}

/// One peer in [`SharechainBody`].
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SharechainPeerBody {
    /// Its address.
    pub address: String,
    /// Whether it dialled this node.
    pub inbound: bool,
    /// Its public key, hex.
    pub key: String,
}

/// One output in [`SharechainBody::window`].
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SharechainPayoutBody {
    /// The address paid (the script in hex when no address stands for it).
    pub address: String,
    /// The amount, in the coin's smallest unit.
    pub amount: u64,
}

/// Database calls the API runs at once.
pub(super) const DATABASE_CALLS: usize = 2;
/// WebSocket clients served at once.
pub(super) const WS_CLIENTS: usize = 64;

/// Refuses a request a browser sent from another site's page: its `Origin` names a host other
/// than the one it was sent to. Without auth, a page the operator visits could otherwise stop
/// the miner or read the feed.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(ApiError(
            StatusCode::FORBIDDEN,
            "cross-site request refused: the Origin is not this API's host".into(),
        )),
    }
}

/// A JSON error: `{"error": "...", "status": 401}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// The HTTP status.
    pub status: u16,
}

/// An error answer.
#[derive(Debug)]
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.0,
            Json(ErrorBody {
                error: self.1,
                status: self.0.as_u16(),
            }),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl ApiState {
    /// Checks the caller's token where one is needed; who the caller is, for the audit log
    /// (`token <id>`, or `api` when no token is needed).
    pub(super) fn authorize(
        &self,
        headers: &HeaderMap,
        mutating: bool,
    ) -> Result<String, ApiError> {
        if mutating {
            same_origin(headers)?;
        }
        let Some(auth) = &self.auth else {
            return Ok("api".into());
        };
        if !mutating && !self.protect_reads {
            return Ok("api".into());
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        auth.verify_header(value, SystemTime::now())
            .map_err(|e| ApiError(StatusCode::UNAUTHORIZED, e.to_string()))?;
        let id = value
            .and_then(|v| v.split_whitespace().nth(1))
            .and_then(TokenAuth::token_id)
            .unwrap_or("?");
        Ok(format!("token {id}"))
    }

    /// Writes an operator's action to every pool's audit log (their databases may differ);
    /// a failure is logged in the answer's place, never hidden.
    async fn audit(&self, actor: String, action: &str, detail: String) -> Result<(), ApiError> {
        let pools = Arc::clone(&self.pools);
        let action = action.to_owned();
        blocking(&self.database, move || {
            for served in pools.iter() {
                served.view.audit(&actor, &action, &detail)?;
            }
            Ok(())
        })
        .await
    }

    fn main(&self) -> Result<&Served, ApiError> {
        self.pools
            .first()
            .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "no pool runs".into()))
    }
}

/// `GET /api/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    /// `pool`, or `miner` for a miner's own API.
    pub role: String,
    /// `running`, `stopping`, or `not_ready` while the pool cannot serve miners.
    pub state: String,
    /// The software's version.
    pub version: String,
    /// Since the process started, seconds.
    pub uptime_seconds: f64,
    /// Each algorithm served and its Stratum ports.
    pub algorithms: Vec<AlgorithmBody>,
    /// Why the pool is not ready, when it is not.
    pub problems: Vec<String>,
    /// The local miner, when one runs beside the pool.
    pub miner: Option<MinerState>,
}

/// One algorithm a pool serves.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlgorithmBody {
    /// sha256d, scrypt or randomx.
    pub algorithm: String,
    /// Its Stratum ports.
    pub ports: Vec<String>,
    /// Its work source: `devnet` or the node's URL.
    pub node: String,
    /// Whether work arrives from the source (the newest job is fresh).
    pub node_reachable: bool,
    /// The height mined.
    pub height: Option<u64>,
    /// How old the newest job is, seconds.
    pub job_age_seconds: Option<f64>,
    /// Calls to the source that failed.
    pub node_errors: u64,
    /// Whether the database takes writes.
    pub database_ok: bool,
}

#[utoipa::path(get, path = "/api/status", tag = "pool",
    responses((status = 200, description = "What runs and whether it is ready", body = StatusBody)))]
pub(super) async fn status(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<StatusBody>, ApiError> {
    state.authorize(&headers, false)?;
    let pools = Arc::clone(&state.pools);
    let _permit = state.database.acquire().await.map_err(|_| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API is stopping".into(),
        )
    })?;
    let checked = tokio::task::spawn_blocking(move || {
        pools
            .iter()
            .map(|p| (p.view.snapshot(), p.view.readiness(STATUS_PATIENCE)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|_| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "status check failed".into(),
        )
    })?;
    let mut problems = Vec::new();
    let mut algorithms = Vec::new();
    let mut stopping = false;
    for (served, (snapshot, readiness)) in state.pools.iter().zip(checked) {
        stopping |= snapshot.stopping;
        algorithms.push(AlgorithmBody {
            algorithm: snapshot.algorithm.clone(),
            ports: snapshot.ports.iter().map(ToString::to_string).collect(),
            node: served.node.clone(),
            node_reachable: readiness.work_fresh,
            height: snapshot.tip.map(|t| t.height),
            job_age_seconds: snapshot.job_age.map(|a| a.as_secs_f64()),
            node_errors: served.view.telemetry().node_error_count(),
            database_ok: readiness.database_ok,
        });
        problems.extend(
            readiness
                .problems
                .into_iter()
                .map(|p| format!("{}: {p}", snapshot.algorithm)),
        );
    }
    let state_name = if stopping {
        "stopping"
    } else if problems.is_empty() {
        "running"
    } else {
        "not_ready"
    };
    Ok(Json(StatusBody {
        role: "pool".into(),
        state: state_name.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        algorithms,
        problems,
        miner: state.miner.as_ref().map(|m| m.state()),
    }))
}

/// `GET /api/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsBody {
    /// The algorithm.
    pub algorithm: String,
    /// Since the pool started, seconds.
    pub uptime_seconds: f64,
    /// The pool's hashrate from accepted difficulty.
    pub hashrate: HashrateBody,
    /// Share counters.
    pub shares: SharesBody,
    /// Block counters.
    pub blocks: BlocksBody,
    /// The network difficulty in share-difficulty units, once there is a job.
    pub network_difficulty: Option<f64>,
    /// The height mined.
    pub height: Option<u64>,
    /// Work since the last block found, in percent of the network difficulty.
    pub effort_percent: Option<f64>,
    /// Workers logged in.
    pub workers: usize,
    /// Connection counters.
    pub connections: ConnectionsBody,
    /// How old the newest job is, seconds.
    pub job_age_seconds: Option<f64>,
    /// Bans.
    pub bans: BansBody,
}

/// Share counters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SharesBody {
    /// Accepted (durable).
    pub accepted: u64,
    /// Rejected, every reason.
    pub rejected: u64,
    /// Rejected, by reason.
    pub rejected_by_reason: RejectedBody,
    /// Between submission and answer now.
    pub in_flight: usize,
    /// The sum of accepted difficulty.
    pub difficulty_sum: f64,
}

/// Rejections by reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RejectedBody {
    /// The job was no longer valid.
    pub stale: u64,
    /// Below the share difficulty.
    pub low_difficulty: u64,
    /// Invalid otherwise.
    pub invalid: u64,
    /// Not judged or not recorded by the pool.
    pub pool_error: u64,
}

/// Block counters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlocksBody {
    /// Found since the start.
    pub found: u64,
}

/// Connection counters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionsBody {
    /// Served now.
    pub live: usize,
    /// Accepted since the start.
    pub accepted: u64,
    /// Refused at arrival, every reason.
    pub refused: u64,
    /// Refused: the address is banned.
    pub refused_banned: u64,
    /// Refused: the address connects too fast.
    pub refused_too_fast: u64,
    /// Closed for sending lines too fast.
    pub rate_limited: u64,
    /// A PROXY header was missing, bad or late.
    pub proxy_failed: u64,
}

/// Ban counters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BansBody {
    /// Issued since the start.
    pub issued: u64,
    /// In force now.
    pub in_force: usize,
}

impl From<&PoolSnapshot> for StatsBody {
    fn from(s: &PoolSnapshot) -> Self {
        let r = s.rejections;
        StatsBody {
            algorithm: s.algorithm.clone(),
            uptime_seconds: s.uptime.as_secs_f64(),
            hashrate: s.hashrate.into(),
            shares: SharesBody {
                accepted: s.engine.accepted,
                rejected: s.engine.rejected,
                rejected_by_reason: RejectedBody {
                    stale: r.stale,
                    low_difficulty: r.low_difficulty,
                    invalid: r.invalid,
                    pool_error: r.pool_error,
                },
                in_flight: s.in_flight,
                difficulty_sum: s.engine.difficulty_sum,
            },
            blocks: BlocksBody {
                found: s.engine.blocks,
            },
            network_difficulty: s.tip.map(|t| t.network_difficulty),
            height: s.tip.map(|t| t.height),
            effort_percent: s.effort_percent,
            workers: s.workers,
            connections: ConnectionsBody {
                live: s.connections,
                accepted: s.accepted_connections,
                refused: s.refused_connections,
                refused_banned: s.refused_banned,
                refused_too_fast: s.refused_too_fast,
                rate_limited: s.rate_limited,
                proxy_failed: s.proxy_failed,
            },
            job_age_seconds: s.job_age.map(|a| a.as_secs_f64()),
            bans: BansBody {
                issued: s.bans_issued,
                in_force: s.bans_in_force,
            },
        }
    }
}

/// `?algorithm=` of the per-pool endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct AlgorithmQuery {
    /// Which pool (sha256d, scrypt, randomx); the first one when absent.
    algorithm: Option<String>,
}

fn bad_query(e: &QueryRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.body_text())
}

impl ApiState {
    fn pick(&self, algorithm: Option<&str>) -> Result<&Served, ApiError> {
        match algorithm {
            None => self.main(),
            Some(name) => self
                .pools
                .iter()
                .find(|p| p.view.algorithm() == name)
                .ok_or_else(|| {
                    ApiError(
                        StatusCode::NOT_FOUND,
                        format!("no pool serves the algorithm {name:?}"),
                    )
                }),
        }
    }
}

#[utoipa::path(get, path = "/api/stats", tag = "pool", params(AlgorithmQuery),
    responses(
        (status = 200, description = "The pool's counters and hashrate", body = StatsBody),
        (status = 404, description = "No pool serves that algorithm", body = ErrorBody)))]
pub(super) async fn stats(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<AlgorithmQuery>, QueryRejection>,
) -> Result<Json<StatsBody>, ApiError> {
    state.authorize(&headers, false)?;
    let Query(query) = query.map_err(|e| bad_query(&e))?;
    let served = state.pick(query.algorithm.as_deref())?;
    Ok(Json(StatsBody::from(&served.view.snapshot())))
}

/// One worker in `GET /api/workers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerBody {
    /// The name it logged in with.
    pub name: String,
    /// The algorithm it mines.
    pub algorithm: String,
    /// Connections logged in as it now.
    pub connections: usize,
    /// Its hashrate from accepted difficulty.
    pub hashrate: HashrateBody,
    /// The difficulty of its last share.
    pub difficulty: f64,
    /// Accepted shares.
    pub accepted: u64,
    /// Rejected shares.
    pub rejected: u64,
    /// When its last share came, Unix milliseconds.
    pub last_share_unix_ms: Option<i64>,
}

#[utoipa::path(get, path = "/api/sharechain", tag = "pool",
    responses(
        (status = 200, description = "The pool's sharechain node", body = SharechainBody),
        (status = 404, description = "The pool does not mine on a sharechain", body = ErrorBody)))]
pub(super) async fn sharechain(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<SharechainBody>, ApiError> {
    state.authorize(&headers, false)?;
    let Some(node) = &state.sharechain else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "this pool does not mine on a sharechain".into(),
        ));
    };
    node.status().await.map(Json).ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the sharechain node has stopped".into(),
        )
    })
}

#[utoipa::path(get, path = "/api/workers", tag = "pool",
    responses((status = 200, description = "Every worker seen in the last hour", body = [WorkerBody])))]
pub(super) async fn workers(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<WorkerBody>>, ApiError> {
    state.authorize(&headers, false)?;
    let mut list = Vec::new();
    for served in state.pools.iter() {
        let algorithm = served.view.algorithm();
        list.extend(served.view.workers().into_iter().map(|w| WorkerBody {
            name: w.name,
            algorithm: algorithm.clone(),
            connections: w.connections,
            hashrate: w.hashrate.into(),
            difficulty: w.difficulty,
            accepted: w.accepted,
            rejected: w.rejected,
            last_share_unix_ms: w.last_share_unix_ms,
        }));
    }
    Ok(Json(list))
}

/// One block in `GET /api/blocks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockBody {
    /// Its height.
    pub height: u64,
    /// Its hash, display order hex.
    pub hash: String,
    /// `submitted`, `accepted`, `confirmed`, `orphaned` or `rejected`.
    pub status: String,
    /// The coinbase value, smallest unit.
    pub reward: u64,
    /// The address that found it.
    pub finder: String,
    /// The worker that found it.
    pub worker: String,
    /// When, Unix milliseconds.
    pub time_unix_ms: i64,
    /// The algorithm.
    pub algorithm: String,
}

async fn blocking<T: Send + 'static>(
    permits: &tokio::sync::Semaphore,
    work: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = permits.acquire().await.map_err(|_| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API is stopping".into(),
        )
    })?;
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database: {}", crate::ErrorChain(&e)),
        )),
        Err(_) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the database call failed".into(),
        )),
    }
}

#[utoipa::path(get, path = "/api/blocks", tag = "pool",
    responses(
        (status = 200, description = "The newest blocks found, newest first (at most 100)", body = [BlockBody]),
        (status = 503, description = "The database does not answer", body = ErrorBody)))]
pub(super) async fn blocks(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<BlockBody>>, ApiError> {
    state.authorize(&headers, false)?;
    let view = state.main()?.view.clone();
    let blocks = blocking(&state.database, move || view.blocks(MAX_BLOCKS)).await?;
    Ok(Json(
        blocks
            .into_iter()
            .map(|b| BlockBody {
                height: b.height,
                hash: b.hash,
                status: b.status.as_str().into(),
                reward: b.reward,
                finder: b.address,
                worker: b.worker,
                time_unix_ms: b.time_ms,
                algorithm: b.algorithm,
            })
            .collect(),
    ))
}

/// `?address=` of `/api/payments`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct AddressQuery {
    /// The payout address.
    address: Option<String>,
}

/// `GET /api/payments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentsBody {
    /// The address asked about.
    pub address: String,
    /// Its balance in each coin, smallest unit.
    pub balances: Vec<BalanceBody>,
    /// Every payment to it, oldest first.
    pub payments: Vec<PaymentBody>,
}

/// A balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceBody {
    /// The coin, by algorithm.
    pub coin: String,
    /// Owed, smallest unit.
    pub amount: i64,
}

/// A payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentBody {
    /// Its number.
    pub id: i64,
    /// The coin, by algorithm.
    pub coin: String,
    /// When, Unix milliseconds.
    pub time_unix_ms: i64,
    /// Paid to the address, smallest unit.
    pub amount: u64,
    /// `sending`, `sent`, `confirmed`, `failed` or `unknown`.
    pub status: String,
    /// The transaction's id.
    pub txid: Option<String>,
}

#[utoipa::path(get, path = "/api/payments", tag = "pool", params(AddressQuery),
    responses(
        (status = 200, description = "The address's balances and payments", body = PaymentsBody),
        (status = 400, description = "No address, or not one", body = ErrorBody)))]
pub(super) async fn payments(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<AddressQuery>, QueryRejection>,
) -> Result<Json<PaymentsBody>, ApiError> {
    state.authorize(&headers, false)?;
    let Query(query) = query.map_err(|e| bad_query(&e))?;
    let address = query.address.unwrap_or_default();
    if address.is_empty()
        || address.len() > MAX_ADDRESS_LEN
        || !address.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "give a payout address: /api/payments?address=<address>".into(),
        ));
    }
    let view = state.main()?.view.clone();
    let asked = address.clone();
    let account = blocking(&state.database, move || view.account(&asked)).await?;
    Ok(Json(PaymentsBody {
        address,
        balances: account
            .balances
            .into_iter()
            .map(|(coin, amount)| BalanceBody { coin, amount })
            .collect(),
        payments: account
            .payments
            .into_iter()
            .map(|p| PaymentBody {
                id: p.id,
                coin: p.coin,
                time_unix_ms: p.time_ms,
                amount: p.amount,
                status: p.status.as_str().into(),
                txid: p.txid,
            })
            .collect(),
    }))
}

fn miner_of(state: &ApiState) -> Result<&Arc<dyn MinerControl>, ApiError> {
    state.miner.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "no local miner runs beside this pool".into(),
        )
    })
}

#[utoipa::path(post, path = "/api/mining/start", tag = "miner",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The local miner mines", body = MinerState),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No local miner", body = ErrorBody),
        (status = 409, description = "It could not start", body = ErrorBody)))]
pub(super) async fn mining_start(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<MinerState>, ApiError> {
    switch(&state, &headers, Switch::Start).await
}

#[utoipa::path(post, path = "/api/mining/stop", tag = "miner",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The local miner stopped", body = MinerState),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No local miner", body = ErrorBody)))]
pub(super) async fn mining_stop(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<MinerState>, ApiError> {
    switch(&state, &headers, Switch::Stop).await
}

#[utoipa::path(post, path = "/api/config/reload", tag = "pool",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reloaded and audited: what is in force now, and what takes a restart", body = ReloadBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "The pool runs without a configuration file", body = ErrorBody),
        (status = 422, description = "The file cannot be read or is invalid; nothing changed", body = ErrorBody),
        (status = 503, description = "The audit line could not be written; nothing changed", body = ErrorBody)))]
pub(super) async fn config_reload(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<ReloadBody>, ApiError> {
    let actor = state.authorize(&headers, true)?;
    let reload = state.reload.clone().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "the pool runs without a configuration file: nothing to reload".into(),
        )
    })?;
    let _permit = state.database.acquire().await.map_err(|_| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API is stopping".into(),
        )
    })?;
    match tokio::task::spawn_blocking(move || reload.reload(&actor)).await {
        Ok(Ok(body)) => Ok(Json(body)),
        Ok(Err(e @ ReloadError::Config(_))) => {
            Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
        }
        Ok(Err(e)) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(_) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the reload failed".into(),
        )),
    }
}

/// Which way the local miner is switched.
#[derive(Debug, Clone, Copy)]
enum Switch {
    Start,
    Stop,
}

/// Throws the local miner's switch for an authorized caller, audited first: no change
/// without its audit line.
async fn switch(
    state: &ApiState,
    headers: &HeaderMap,
    way: Switch,
) -> Result<Json<MinerState>, ApiError> {
    let actor = state.authorize(headers, true)?;
    let miner = Arc::clone(miner_of(state)?);
    let action = match way {
        Switch::Start => "mining-start",
        Switch::Stop => "mining-stop",
    };
    let detail = format!("the local miner on {}", miner.state().pool);
    state.audit(actor, action, detail).await?;
    let result = tokio::task::spawn_blocking(move || match way {
        Switch::Start => miner.start(),
        Switch::Stop => miner.stop(),
    })
    .await
    .unwrap_or_else(|_| Err("the miner's switch failed".into()));
    result
        .map(Json)
        .map_err(|e| ApiError(StatusCode::CONFLICT, e))
}

/// The bearer scheme the mutating endpoints name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("otd1.<expiry>.<mac>")
                    .build(),
            ),
        );
    }
}

/// The API's OpenAPI document, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "otedama pool API", description = "The pool's state, its workers, blocks and payments, the local miner's switch, and configuration reloads. Live events: GET /api/ws (WebSocket, JSON messages)."),
    paths(status, stats, workers, blocks, payments, sharechain, mining_start, mining_stop, config_reload),
    components(schemas(ReloadBody, StatusBody, StatsBody, WorkerBody, BlockBody, PaymentsBody, SharechainBody, SharechainPeerBody, SharechainPayoutBody, MinerState, ErrorBody)),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc
}

pub(super) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
