//! The Monero stratum dialect (xmrig, nodejs-pool, p2pool): JSON-RPC 2.0 objects with named
//! params, one per line.
//!
//! | message | shape |
//! |---|---|
//! | `login` | `{"login", "pass", "agent", "rigid"?, "algo"?: [..]}` → `{"id", "job", "status": "OK", "extensions"}` |
//! | `job` | notification `{"blob", "job_id", "target", "algo"?, "height"?, "seed_hash"?}` |
//! | `submit` | `{"id", "job_id", "nonce": 8 hex (4 little-endian bytes), "result": 64 hex, "algo"?}` → `{"status": "OK"}` |
//! | `keepalived` | `{"id"}` → `{"status": "KEEPALIVED"}` (p2pool sends no reply) |
//! | errors | `{"code": -1, "message": ..}`, or a message alone (p2pool) |
//!
//! The target is little-endian hex in a 4-byte or 8-byte form ([`MoneroTarget`]). The nonce
//! sits at byte [`MONERO_NONCE_OFFSET`] of the hashing blob.
//!
//! [`MoneroPoolSession`] is the pool side and [`MoneroMinerSession`] the miner side, both
//! sans-IO in the shape of [`PoolSession`](crate::PoolSession) and
//! [`MinerSession`](crate::MinerSession). The pool session never hashes: it checks what it can
//! without RandomX (job known, nonce and result well formed, no duplicate, the claimed hash
//! under the target) and hands the share to the caller.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::{decode_hex, encode_hex, MoneroTarget};
use serde_json::{json, Map, Value};

use crate::liveness::Liveness;
use crate::v1::frame::LineBuffer;
use crate::v1::message::{Message, ParamsError, ParseError, Request, RequestId};
use crate::v1::miner::{our_id, MinerCloseReason, MAX_JOB_ID, MAX_PENDING, VERSION_STRING};
use crate::v1::pool::{CloseReason, ShareVerdict};

/// Where the 4-byte nonce sits in a Monero hashing blob.
pub const MONERO_NONCE_OFFSET: usize = 39;

/// The longest hashing blob accepted, in bytes (real blobs are about 76).
pub const MONERO_MAX_BLOB: usize = 512;

/// The `status` of an accepted submit.
pub const MONERO_STATUS_OK: &str = "OK";

/// The `status` answering `keepalived`.
pub const MONERO_STATUS_KEEPALIVED: &str = "KEEPALIVED";

fn bad(method: &str, reason: impl Into<String>) -> ParamsError {
    ParamsError {
        method: method.to_owned(),
        reason: reason.into(),
    }
}

fn object<'a>(method: &str, params: &'a Value) -> Result<&'a Map<String, Value>, ParamsError> {
    params
        .as_object()
        .ok_or_else(|| bad(method, "params is not an object"))
}

fn req_str(method: &str, map: &Map<String, Value>, key: &str) -> Result<String, ParamsError> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(method, format!("{key} is not a string"))),
        None => Err(bad(method, format!("{key} is missing"))),
    }
}

fn opt_str(
    method: &str,
    map: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ParamsError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(method, format!("{key} is not a string"))),
    }
}

fn hex_exact<const N: usize>(
    method: &str,
    map: &Map<String, Value>,
    key: &str,
) -> Result<[u8; N], ParamsError> {
    let text = req_str(method, map, key)?;
    if text.len() != 2 * N {
        return Err(bad(
            method,
            format!("{key} is not {} hex digits: {:?}", 2 * N, cut(&text)),
        ));
    }
    decode_hex(&text)
        .ok()
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| bad(method, format!("{key} is not hex: {:?}", cut(&text))))
}

/// At most 80 characters of peer text, for error messages.
fn cut(text: &str) -> String {
    text.chars().take(80).collect()
}

fn job_id(method: &str, map: &Map<String, Value>) -> Result<String, ParamsError> {
    let id = req_str(method, map, "job_id")?;
    if id.is_empty() || id.len() > MAX_JOB_ID {
        return Err(bad(
            method,
            format!("job_id of {} bytes (1 to {MAX_JOB_ID})", id.len()),
        ));
    }
    Ok(id)
}

/// The JSON text of an optional id, written exactly as it was received; `null` when absent.
fn id_text(id: Option<&RequestId>) -> &str {
    id.map_or("null", RequestId::as_json)
}

/// A request line in xmrig's key order: `{"id", "jsonrpc", "method", "params"}`; a
/// notification (no id) leaves the id out.
fn request_line(id: Option<&RequestId>, method: &str, params: &Value) -> String {
    let method = Value::from(method);
    match id {
        Some(id) => format!(
            "{{\"id\":{},\"jsonrpc\":\"2.0\",\"method\":{method},\"params\":{params}}}\n",
            id.as_json()
        ),
        None => format!("{{\"jsonrpc\":\"2.0\",\"method\":{method},\"params\":{params}}}\n"),
    }
}

/// `{"status": status}`, the result of a submit or keepalived.
pub fn monero_status(status: &str) -> Value {
    json!({ "status": status })
}

/// An error in a Monero stratum response: `{"code": -1, "message": ..}` (nodejs-pool,
/// xmrig-proxy) or a message alone (p2pool).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("monero stratum error{}: {message}", code_text(.code))]
pub struct MoneroError {
    /// The code, when sent (pools use -1).
    pub code: Option<i64>,
    /// The reason, such as "Low difficulty share".
    pub message: String,
}

fn code_text(code: &Option<i64>) -> String {
    code.map(|c| format!(" {c}")).unwrap_or_default()
}

impl MoneroError {
    /// An error with code -1, as nodejs-pool sends.
    pub fn new(message: impl Into<String>) -> Self {
        MoneroError {
            code: Some(-1),
            message: message.into(),
        }
    }

    /// The error object.
    pub fn to_json(&self) -> Value {
        match self.code {
            Some(code) => json!({"code": code, "message": self.message}),
            None => json!({ "message": self.message }),
        }
    }

    /// Reads an error object, a bare string, or a `[code, message]` array; `None` for `null`
    /// and anything else.
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::Object(map) => Some(MoneroError {
                code: map.get("code").and_then(Value::as_i64),
                message: map
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            }),
            Value::String(s) => Some(MoneroError {
                code: None,
                message: s.clone(),
            }),
            Value::Array(items) => Some(MoneroError {
                code: items.first().and_then(Value::as_i64),
                message: items
                    .get(1)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            }),
            _ => None,
        }
    }
}

/// `login` params.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MoneroLogin {
    /// The wallet address, often with a worker or difficulty suffix.
    pub login: String,
    /// The password; some miners omit it.
    pub pass: Option<String>,
    /// The miner's name and version.
    pub agent: Option<String>,
    /// The rig id.
    pub rigid: Option<String>,
    /// The algorithms the miner supports (`"rx/0"`, ..), in its order.
    pub algo: Vec<String>,
}

impl MoneroLogin {
    /// Reads `login` params.
    pub fn from_params(params: &Value) -> Result<Self, ParamsError> {
        let m = "login";
        let map = object(m, params)?;
        let algo = match map.get("algo") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(_) => return Err(bad(m, "algo is not an array")),
        };
        Ok(MoneroLogin {
            login: req_str(m, map, "login")?,
            pass: opt_str(m, map, "pass")?,
            agent: opt_str(m, map, "agent")?,
            rigid: opt_str(m, map, "rigid")?,
            algo,
        })
    }

    /// The params object.
    pub fn to_params(&self) -> Value {
        let mut map = Map::new();
        map.insert("login".into(), Value::from(self.login.clone()));
        for (key, value) in [
            ("pass", &self.pass),
            ("agent", &self.agent),
            ("rigid", &self.rigid),
        ] {
            if let Some(v) = value {
                map.insert(key.into(), Value::from(v.clone()));
            }
        }
        if !self.algo.is_empty() {
            map.insert("algo".into(), json!(self.algo));
        }
        Value::Object(map)
    }
}

/// A Monero job: the `job` of a login result or a `job` notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroJob {
    /// The hashing blob (at least [`MONERO_NONCE_OFFSET`] + 4 bytes).
    pub blob: Vec<u8>,
    /// The job id, opaque.
    pub job_id: String,
    /// The share target.
    pub target: MoneroTarget,
    /// The algorithm, such as `"rx/0"`.
    pub algo: Option<String>,
    /// The height of the block being mined.
    pub height: Option<u64>,
    /// The RandomX seed hash.
    pub seed_hash: Option<[u8; 32]>,
}

impl MoneroJob {
    /// Reads a job object.
    pub fn from_json(v: &Value) -> Result<Self, ParamsError> {
        let m = "job";
        let map = object(m, v)?;
        let blob_hex = req_str(m, map, "blob")?;
        let blob = decode_hex(&blob_hex).map_err(|e| bad(m, format!("blob is not hex: {e}")))?;
        if !(MONERO_NONCE_OFFSET + 4..=MONERO_MAX_BLOB).contains(&blob.len()) {
            return Err(bad(
                m,
                format!(
                    "blob of {} bytes ({} to {MONERO_MAX_BLOB})",
                    blob.len(),
                    MONERO_NONCE_OFFSET + 4
                ),
            ));
        }
        let target = MoneroTarget::from_hex(&req_str(m, map, "target")?)
            .map_err(|e| bad(m, e.to_string()))?;
        let height = match map.get("height") {
            None | Some(Value::Null) => None,
            Some(h) => Some(
                h.as_u64()
                    .ok_or_else(|| bad(m, "height is not an unsigned integer"))?,
            ),
        };
        let seed_hash = match map.get("seed_hash") {
            None | Some(Value::Null) => None,
            Some(_) => Some(hex_exact::<32>(m, map, "seed_hash")?),
        };
        Ok(MoneroJob {
            blob,
            job_id: job_id(m, map)?,
            target,
            algo: opt_str(m, map, "algo")?,
            height,
            seed_hash,
        })
    }

    /// The job object.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("blob".into(), Value::from(encode_hex(&self.blob)));
        map.insert("job_id".into(), Value::from(self.job_id.clone()));
        map.insert("target".into(), Value::from(self.target.to_hex()));
        if let Some(algo) = &self.algo {
            map.insert("algo".into(), Value::from(algo.clone()));
        }
        if let Some(height) = self.height {
            map.insert("height".into(), Value::from(height));
        }
        if let Some(seed) = &self.seed_hash {
            map.insert("seed_hash".into(), Value::from(encode_hex(seed)));
        }
        Value::Object(map)
    }

    /// The share difficulty, from the target.
    pub fn difficulty(&self) -> u64 {
        self.target.difficulty()
    }

    /// The blob with `nonce` written little-endian at [`MONERO_NONCE_OFFSET`]; `None` when
    /// the blob is too short to hold it.
    pub fn blob_with_nonce(&self, nonce: u32) -> Option<Vec<u8>> {
        let mut blob = self.blob.clone();
        blob.get_mut(MONERO_NONCE_OFFSET..MONERO_NONCE_OFFSET + 4)?
            .copy_from_slice(&nonce.to_le_bytes());
        Some(blob)
    }
}

/// The result of `login`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroLoginResult {
    /// The session id the miner quotes in every submit.
    pub id: String,
    /// The first job.
    pub job: Option<MoneroJob>,
    /// `"OK"`.
    pub status: String,
    /// The extensions the pool speaks (`algo`, `nicehash`, `connect`, `keepalive`).
    pub extensions: Vec<String>,
}

impl MoneroLoginResult {
    /// Reads a login result.
    pub fn from_json(v: &Value) -> Result<Self, ParamsError> {
        let m = "login result";
        let map = object(m, v)?;
        let job = match map.get("job") {
            None | Some(Value::Null) => None,
            Some(job) => Some(MoneroJob::from_json(job)?),
        };
        let extensions = match map.get("extensions") {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Ok(MoneroLoginResult {
            id: req_str(m, map, "id")?,
            job,
            status: opt_str(m, map, "status")?.unwrap_or_default(),
            extensions,
        })
    }

    /// The result object.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("id".into(), Value::from(self.id.clone()));
        if let Some(job) = &self.job {
            map.insert("job".into(), job.to_json());
        }
        map.insert("status".into(), Value::from(self.status.clone()));
        map.insert("extensions".into(), json!(self.extensions));
        Value::Object(map)
    }
}

/// `submit` params, with the hex fields decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroSubmit {
    /// The session id from the login result.
    pub id: String,
    /// The job.
    pub job_id: String,
    /// The nonce: the four blob bytes at [`MONERO_NONCE_OFFSET`] read little-endian (the wire
    /// carries those bytes as 8 hex digits).
    pub nonce: u32,
    /// The hash the miner claims for the blob.
    pub result: [u8; 32],
    /// The algorithm.
    pub algo: Option<String>,
}

impl MoneroSubmit {
    /// Reads `submit` params.
    pub fn from_params(params: &Value) -> Result<Self, ParamsError> {
        let m = "submit";
        let map = object(m, params)?;
        Ok(MoneroSubmit {
            id: req_str(m, map, "id")?,
            job_id: job_id(m, map)?,
            nonce: u32::from_le_bytes(hex_exact::<4>(m, map, "nonce")?),
            result: hex_exact::<32>(m, map, "result")?,
            algo: opt_str(m, map, "algo")?,
        })
    }

    /// The params object.
    pub fn to_params(&self) -> Value {
        let mut map = Map::new();
        map.insert("id".into(), Value::from(self.id.clone()));
        map.insert("job_id".into(), Value::from(self.job_id.clone()));
        map.insert(
            "nonce".into(),
            Value::from(encode_hex(&self.nonce.to_le_bytes())),
        );
        map.insert("result".into(), Value::from(encode_hex(&self.result)));
        if let Some(algo) = &self.algo {
            map.insert("algo".into(), Value::from(algo.clone()));
        }
        Value::Object(map)
    }
}

/// What a Monero miner sends a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoneroClientRequest {
    /// `login`.
    Login(MoneroLogin),
    /// `submit`.
    Submit(MoneroSubmit),
    /// `keepalived`, with the session id when sent.
    Keepalived(Option<String>),
    /// Any other method.
    Unknown {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
}

impl MoneroClientRequest {
    /// Reads a request's method and params.
    pub fn from_request(req: &Request) -> Result<Self, ParamsError> {
        Ok(match req.method.as_str() {
            "login" => MoneroClientRequest::Login(MoneroLogin::from_params(&req.params)?),
            "submit" => MoneroClientRequest::Submit(MoneroSubmit::from_params(&req.params)?),
            "keepalived" => MoneroClientRequest::Keepalived(match &req.params {
                Value::Object(map) => opt_str("keepalived", map, "id")?,
                _ => None,
            }),
            _ => MoneroClientRequest::Unknown {
                method: req.method.clone(),
                params: req.params.clone(),
            },
        })
    }

    /// The method name.
    pub fn method(&self) -> &str {
        match self {
            MoneroClientRequest::Login(_) => "login",
            MoneroClientRequest::Submit(_) => "submit",
            MoneroClientRequest::Keepalived(_) => "keepalived",
            MoneroClientRequest::Unknown { method, .. } => method,
        }
    }

    /// The line for this request, with its newline.
    pub fn to_line(&self, id: Option<RequestId>) -> String {
        let params = match self {
            MoneroClientRequest::Login(l) => l.to_params(),
            MoneroClientRequest::Submit(s) => s.to_params(),
            MoneroClientRequest::Keepalived(Some(id)) => json!({ "id": id }),
            MoneroClientRequest::Keepalived(None) => json!({}),
            MoneroClientRequest::Unknown { params, .. } => params.clone(),
        };
        request_line(id.as_ref(), self.method(), &params)
    }
}

/// What a Monero pool sends unprompted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoneroServerRequest {
    /// `job`.
    Job(MoneroJob),
    /// Any other method.
    Unknown {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
}

impl MoneroServerRequest {
    /// Reads a request's method and params.
    pub fn from_request(req: &Request) -> Result<Self, ParamsError> {
        Ok(match req.method.as_str() {
            "job" => MoneroServerRequest::Job(MoneroJob::from_json(&req.params)?),
            _ => MoneroServerRequest::Unknown {
                method: req.method.clone(),
                params: req.params.clone(),
            },
        })
    }

    /// The line for this notification, with its newline.
    pub fn to_line(&self) -> String {
        let (method, params) = match self {
            MoneroServerRequest::Job(job) => ("job", job.to_json()),
            MoneroServerRequest::Unknown { method, params } => (method.as_str(), params.clone()),
        };
        request_line(None, method, &params)
    }
}

/// A response in the Monero dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct MoneroResponse {
    /// The id of the request answered.
    pub id: Option<RequestId>,
    /// The result, or the error.
    pub result: Result<Value, MoneroError>,
}

impl MoneroResponse {
    /// The line for this response, with its newline, in the key order pools send:
    /// `{"id", "jsonrpc": "2.0", "error", "result"}`. The id is written exactly as the
    /// request carried it.
    pub fn to_line(&self) -> String {
        let (result, error) = match &self.result {
            Ok(v) => (v.clone(), Value::Null),
            Err(e) => (Value::Null, e.to_json()),
        };
        format!(
            "{{\"id\":{},\"jsonrpc\":\"2.0\",\"error\":{error},\"result\":{result}}}\n",
            id_text(self.id.as_ref())
        )
    }
}

/// One line of the Monero dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum MoneroMessage {
    /// A request or notification (`login`, `job`, ..).
    Request(Request),
    /// A response.
    Response(MoneroResponse),
}

impl MoneroMessage {
    /// Parses one line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        match Message::parse(line)? {
            Message::Request(r) => Ok(MoneroMessage::Request(r)),
            Message::Response(r) => {
                // The v1 parser folds a missing code into 20; read the error as sent.
                let raw: Value =
                    serde_json::from_slice(line).map_err(|e| ParseError::NotJson(e.to_string()))?;
                let error = raw.get("error").and_then(MoneroError::from_json);
                Ok(MoneroMessage::Response(MoneroResponse {
                    id: r.id,
                    result: match error {
                        Some(e) => Err(e),
                        None => Ok(r.result),
                    },
                }))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pool side
// ---------------------------------------------------------------------------------------------

/// Pool-side settings for the Monero dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroPoolConfig {
    /// How long a connection may stay without logging in.
    pub login_timeout: Duration,
    /// How long a connection may stay silent.
    pub idle_timeout: Duration,
    /// How many recent jobs stay valid for shares.
    pub max_jobs: usize,
    /// How many submitted shares are remembered for duplicate detection.
    pub max_seen_shares: usize,
    /// Score at or below which the connection is dropped for bad shares.
    pub ban_threshold: i32,
    /// The extensions announced in the login result.
    pub extensions: Vec<String>,
    /// Whether `keepalived` is answered (nodejs-pool does; p2pool does not).
    pub reply_keepalived: bool,
}

impl Default for MoneroPoolConfig {
    fn default() -> Self {
        MoneroPoolConfig {
            login_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_jobs: 4,
            max_seen_shares: 65_536,
            ban_threshold: -30,
            extensions: vec!["algo".to_owned(), "keepalive".to_owned()],
            reply_keepalived: true,
        }
    }
}

/// Identifies a login awaiting the caller's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MoneroLoginToken(u64);

/// Identifies a share awaiting the caller's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MoneroShareToken(u64);

/// A share that passed the session's checks, for the caller to verify with RandomX (or the
/// job's algorithm): hash `blob`, compare with `result`, and check it against `difficulty`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroShareSubmission {
    /// Answer with [`MoneroPoolSession::share_result`].
    pub token: MoneroShareToken,
    /// The login the session was accepted under.
    pub worker: String,
    /// The job.
    pub job_id: String,
    /// The nonce (little-endian at [`MONERO_NONCE_OFFSET`]).
    pub nonce: u32,
    /// The job's blob with the nonce written in.
    pub blob: Vec<u8>,
    /// The hash the miner claims (already under the target).
    pub result: [u8; 32],
    /// The job's share difficulty.
    pub difficulty: u64,
    /// The job's share target.
    pub target: MoneroTarget,
    /// The algorithm: the submit's, else the job's.
    pub algo: Option<String>,
    /// The job's seed hash.
    pub seed_hash: Option<[u8; 32]>,
    /// The job's height.
    pub height: Option<u64>,
}

/// What a [`MoneroPoolSession`] needs the caller to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoneroPoolEvent {
    /// A miner logs in; check the payout address and answer with
    /// [`MoneroPoolSession::login_result`].
    Login {
        /// The request to answer.
        token: MoneroLoginToken,
        /// What the miner sent.
        login: MoneroLogin,
    },
    /// A share to verify; answer with [`MoneroPoolSession::share_result`].
    Share(MoneroShareSubmission),
    /// The session ended; close the connection.
    Closed(CloseReason),
}

/// One xmrig-style miner connection, pool side.
#[derive(Debug)]
pub struct MoneroPoolSession {
    config: Arc<MoneroPoolConfig>,
    session_id: String,
    liveness: Liveness,
    worker: Option<String>,
    pending_login: Option<(u64, Option<RequestId>, String)>,
    pending_shares: HashMap<u64, Option<RequestId>>,
    next_token: u64,
    jobs: VecDeque<MoneroJob>,
    stale: VecDeque<String>,
    seen: HashSet<(String, u32)>,
    seen_order: VecDeque<(String, u32)>,
    ban_score: i32,
    accepted: u64,
    rejected: u64,
    output: VecDeque<String>,
    events: VecDeque<MoneroPoolEvent>,
    closed: Option<CloseReason>,
}

/// How many retired job ids are remembered to tell "stale" from "unknown".
const MAX_STALE_IDS: usize = 64;

impl MoneroPoolSession {
    /// A new connection at `now`; `session_id` is the id the login result hands the miner
    /// (the caller picks it, e.g. from a counter or its random source).
    pub fn new(config: Arc<MoneroPoolConfig>, session_id: impl Into<String>, now: Instant) -> Self {
        let liveness = Liveness::new(now, config.login_timeout, config.idle_timeout);
        MoneroPoolSession {
            config,
            session_id: session_id.into(),
            liveness,
            worker: None,
            pending_login: None,
            pending_shares: HashMap::new(),
            next_token: 0,
            jobs: VecDeque::new(),
            stale: VecDeque::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            ban_score: 0,
            accepted: 0,
            rejected: 0,
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// The next line to write to the miner.
    pub fn poll_output(&mut self) -> Option<String> {
        self.output.pop_front()
    }

    /// The next decision needed from the caller.
    pub fn poll_event(&mut self) -> Option<MoneroPoolEvent> {
        self.events.pop_front()
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The accepted login, once the caller has accepted it.
    pub fn worker(&self) -> Option<&str> {
        self.worker.as_deref()
    }

    /// Whether the login was accepted.
    pub fn is_logged_in(&self) -> bool {
        self.worker.is_some()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Shares accepted and rejected so far.
    pub fn share_counts(&self) -> (u64, u64) {
        (self.accepted, self.rejected)
    }

    /// The instant by which [`handle_timeout`](MoneroPoolSession::handle_timeout) must be
    /// called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        Some(self.liveness.deadline(self.is_logged_in()))
    }

    /// Checks the timeouts at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if let Some(reason) = self.liveness.expired(now, self.is_logged_in()) {
            self.close(reason);
        }
    }

    /// Ends the session.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(MoneroPoolEvent::Closed(reason));
        }
    }

    fn reply(&mut self, id: Option<RequestId>, result: Result<Value, MoneroError>) {
        if id.is_some() {
            self.output
                .push_back(MoneroResponse { id, result }.to_line());
        }
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn penalize(&mut self, points: i32) {
        self.ban_score = self.ban_score.saturating_sub(points);
        if self.ban_score <= self.config.ban_threshold {
            self.close(CloseReason::Banned);
        }
    }

    /// Handles one line from the miner (without its newline).
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.liveness.seen(now);
        let parsed = if line.len() > LineBuffer::DEFAULT_MAX_LINE {
            Err(ParseError::NeitherRequestNorResponse)
        } else {
            Message::parse(line)
        };
        let request = match parsed {
            Ok(Message::Request(r)) => r,
            Ok(Message::Response(_)) => return,
            Err(_) if self.worker.is_none() && self.pending_login.is_none() => {
                self.close(CloseReason::NotStratum);
                return;
            }
            Err(_) => {
                self.penalize(5);
                return;
            }
        };
        let id = request.id.clone();
        match MoneroClientRequest::from_request(&request) {
            Ok(msg) => self.dispatch(id, msg),
            Err(e) => {
                self.rejected += u64::from(request.method == "submit");
                self.reply(id, Err(MoneroError::new(e.to_string())));
                self.penalize(5);
            }
        }
    }

    fn dispatch(&mut self, id: Option<RequestId>, msg: MoneroClientRequest) {
        match msg {
            MoneroClientRequest::Login(login) => {
                if self.worker.is_some() || self.pending_login.is_some() {
                    self.reply(id, Err(MoneroError::new("already logged in")));
                    return;
                }
                let token = self.token();
                self.pending_login = Some((token, id, login.login.clone()));
                self.events.push_back(MoneroPoolEvent::Login {
                    token: MoneroLoginToken(token),
                    login,
                });
            }
            MoneroClientRequest::Submit(s) => self.submit(id, s),
            MoneroClientRequest::Keepalived(_) => {
                if self.config.reply_keepalived {
                    self.reply(id, Ok(monero_status(MONERO_STATUS_KEEPALIVED)));
                }
            }
            MoneroClientRequest::Unknown { method, .. } => {
                let message = format!("unsupported method {}", cut(&method));
                self.reply(id, Err(MoneroError::new(message)));
            }
        }
    }

    /// Answers a login: `Ok(job)` accepts it and sends the result with that first job;
    /// `Err(reason)` refuses it (e.g. "invalid payout address").
    pub fn login_result(&mut self, token: MoneroLoginToken, result: Result<MoneroJob, String>) {
        let Some((t, id, worker)) = self.pending_login.take() else {
            return;
        };
        if t != token.0 {
            self.pending_login = Some((t, id, worker));
            return;
        }
        match result {
            Ok(job) => {
                self.worker = Some(worker);
                let login = MoneroLoginResult {
                    id: self.session_id.clone(),
                    job: Some(job.clone()),
                    status: MONERO_STATUS_OK.to_owned(),
                    extensions: self.config.extensions.clone(),
                };
                self.register_job(job);
                self.reply(id, Ok(login.to_json()));
            }
            Err(reason) => {
                self.reply(id, Err(MoneroError::new(reason)));
                self.penalize(5);
            }
        }
    }

    /// Sends a new job (after the login was accepted). A job at a greater height retires the
    /// jobs of lower heights at once; otherwise the last `max_jobs` stay valid.
    pub fn send_job(&mut self, job: &MoneroJob) {
        if self.closed.is_some() || !self.is_logged_in() {
            return;
        }
        self.register_job(job.clone());
        self.output
            .push_back(MoneroServerRequest::Job(job.clone()).to_line());
    }

    fn retire(&mut self, job_id: String) {
        self.stale.push_back(job_id);
        while self.stale.len() > MAX_STALE_IDS {
            self.stale.pop_front();
        }
    }

    fn register_job(&mut self, job: MoneroJob) {
        let mut keep = VecDeque::with_capacity(self.jobs.len() + 1);
        for old in std::mem::take(&mut self.jobs) {
            let older_tip = matches!((old.height, job.height), (Some(a), Some(b)) if a < b);
            if old.job_id == job.job_id {
                continue;
            }
            if older_tip {
                self.retire(old.job_id);
            } else {
                keep.push_back(old);
            }
        }
        self.jobs = keep;
        self.stale.retain(|id| *id != job.job_id);
        self.jobs.push_back(job);
        while self.jobs.len() > self.config.max_jobs.max(1) {
            if let Some(old) = self.jobs.pop_front() {
                self.retire(old.job_id);
            }
        }
    }

    fn submit(&mut self, id: Option<RequestId>, s: MoneroSubmit) {
        let reject = |this: &mut Self, id: Option<RequestId>, message: &str, points: i32| {
            this.rejected += 1;
            this.reply(id, Err(MoneroError::new(message)));
            this.penalize(points);
        };
        let Some(worker) = self.worker.clone() else {
            return reject(self, id, "Unauthenticated", 5);
        };
        if s.id != self.session_id {
            return reject(self, id, "Unauthenticated", 5);
        }
        let Some(job) = self.jobs.iter().find(|j| j.job_id == s.job_id).cloned() else {
            // Stale shares happen to honest miners around block changes: a light penalty.
            if self.stale.contains(&s.job_id) {
                return reject(self, id, "Stale share", 1);
            }
            return reject(self, id, "Invalid job id", 5);
        };
        let key = (s.job_id.clone(), s.nonce);
        if self.seen.contains(&key) {
            return reject(self, id, "Duplicate share", 5);
        }
        self.seen.insert(key.clone());
        self.seen_order.push_back(key);
        while self.seen_order.len() > self.config.max_seen_shares.max(1) {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        let Some(blob) = job.blob_with_nonce(s.nonce) else {
            return reject(self, id, "Invalid job", 0);
        };
        if !job.target.is_met_by(&s.result) {
            return reject(self, id, "Low difficulty share", 5);
        }
        let token = self.token();
        self.pending_shares.insert(token, id);
        self.events
            .push_back(MoneroPoolEvent::Share(MoneroShareSubmission {
                token: MoneroShareToken(token),
                worker,
                job_id: s.job_id,
                nonce: s.nonce,
                blob,
                result: s.result,
                difficulty: job.difficulty(),
                target: job.target,
                algo: s.algo.or(job.algo),
                seed_hash: job.seed_hash,
                height: job.height,
            }));
    }

    /// Answers a share. Call it only once the share is durably recorded when accepting.
    pub fn share_result(&mut self, token: MoneroShareToken, verdict: ShareVerdict) {
        let Some(id) = self.pending_shares.remove(&token.0) else {
            return;
        };
        let (message, points) = match verdict {
            ShareVerdict::Accepted => {
                self.accepted += 1;
                self.ban_score = (self.ban_score + 1).min(10);
                self.reply(id, Ok(monero_status(MONERO_STATUS_OK)));
                return;
            }
            ShareVerdict::LowDifficulty => ("Low difficulty share".to_owned(), 5),
            ShareVerdict::Stale => ("Stale share".to_owned(), 1),
            ShareVerdict::Invalid(reason) => (reason, 5),
        };
        self.rejected += 1;
        self.reply(id, Err(MoneroError::new(message)));
        self.penalize(points);
    }
}

// ---------------------------------------------------------------------------------------------
// Miner side
// ---------------------------------------------------------------------------------------------

/// Miner-side settings for the Monero dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroMinerConfig {
    /// The wallet address (with any worker suffix the pool understands).
    pub login: String,
    /// The password.
    pub pass: String,
    /// The user agent.
    pub agent: String,
    /// The rig id.
    pub rigid: Option<String>,
    /// The algorithms offered, in order of preference.
    pub algos: Vec<String>,
    /// Send `keepalived` after this long without sending anything (xmrig's `--keepalive`
    /// uses 60 s).
    pub keepalive: Option<Duration>,
    /// How long a request may wait for its answer.
    pub response_timeout: Duration,
    /// How long the pool may stay silent.
    pub idle_timeout: Duration,
}

impl Default for MoneroMinerConfig {
    fn default() -> Self {
        MoneroMinerConfig {
            login: String::new(),
            pass: "x".to_owned(),
            agent: VERSION_STRING.to_owned(),
            rigid: None,
            algos: vec!["rx/0".to_owned()],
            keepalive: None,
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// A share to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroMinerShare {
    /// The job.
    pub job_id: String,
    /// The nonce written at [`MONERO_NONCE_OFFSET`].
    pub nonce: u32,
    /// The hash of the blob with that nonce.
    pub result: [u8; 32],
    /// The algorithm, when the pool takes it.
    pub algo: Option<String>,
}

/// Something wrong with what a Monero pool sent; the session carries on unless it also
/// reports [`MoneroMinerEvent::Closed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneroMinerError {
    /// The line is not JSON-RPC.
    #[error("pool line is not stratum: {0}")]
    Parse(ParseError),
    /// The line is longer than any real line.
    #[error("pool line of {len} bytes exceeds the {limit}-byte limit")]
    LineTooLong {
        /// The line's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A job that cannot be mined.
    #[error("pool sent {0}")]
    BadJob(ParamsError),
    /// A login result that cannot be used.
    #[error("pool sent {0}")]
    BadLoginResult(ParamsError),
}

/// What a [`MoneroMinerSession`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoneroMinerEvent {
    /// The pool accepted the login.
    LoggedIn {
        /// The session id quoted in submits.
        session_id: String,
        /// The extensions the pool speaks.
        extensions: Vec<String>,
    },
    /// The pool refused the login; the session is closed.
    LoginFailed(MoneroError),
    /// A job to mine.
    NewJob {
        /// The job.
        job: MoneroJob,
        /// Its share difficulty, decoded from the target.
        difficulty: u64,
    },
    /// The fate of a share from [`MoneroMinerSession::submit`].
    ShareResult {
        /// The number `submit` returned.
        sequence: u64,
        /// Whether the pool accepted it.
        accepted: bool,
        /// Why not.
        error: Option<MoneroError>,
    },
    /// The pool sent something unusable.
    Error(MoneroMinerError),
    /// The session ended; close the connection.
    Closed(MinerCloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoneroPending {
    Login,
    Submit { sequence: u64 },
    Keepalive,
}

/// How many recent job ids the miner remembers for checking submits.
const MONERO_RECENT_JOBS: usize = 8;

/// One pool connection in the Monero dialect, miner side.
#[derive(Debug)]
pub struct MoneroMinerSession {
    config: MoneroMinerConfig,
    started: bool,
    next_id: u64,
    next_sequence: u64,
    pending: HashMap<u64, (MoneroPending, Option<Instant>)>,
    session_id: Option<String>,
    extensions: Vec<String>,
    jobs: VecDeque<String>,
    last_seen: Instant,
    last_sent: Instant,
    output: VecDeque<String>,
    events: VecDeque<MoneroMinerEvent>,
    closed: Option<MinerCloseReason>,
}

impl MoneroMinerSession {
    /// A new connection at `now`; call [`start`](MoneroMinerSession::start) to log in.
    pub fn new(config: MoneroMinerConfig, now: Instant) -> Self {
        MoneroMinerSession {
            config,
            started: false,
            next_id: 0,
            next_sequence: 0,
            pending: HashMap::new(),
            session_id: None,
            extensions: Vec::new(),
            jobs: VecDeque::new(),
            last_seen: now,
            last_sent: now,
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// Queues `login`. Only the first call counts.
    pub fn start(&mut self) {
        if self.started || self.closed.is_some() {
            return;
        }
        self.started = true;
        let login = MoneroLogin {
            login: self.config.login.clone(),
            pass: Some(self.config.pass.clone()),
            agent: Some(self.config.agent.clone()),
            rigid: self.config.rigid.clone(),
            algo: self.config.algos.clone(),
        };
        self.request(MoneroClientRequest::Login(login), MoneroPending::Login);
    }

    /// The next line to write to the pool.
    pub fn poll_output(&mut self) -> Option<String> {
        self.output.pop_front()
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<MoneroMinerEvent> {
        self.events.pop_front()
    }

    /// The session id, once logged in.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The extensions the pool announced.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Ends the session.
    pub fn close(&mut self, reason: MinerCloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(MoneroMinerEvent::Closed(reason));
        }
    }

    fn request(&mut self, request: MoneroClientRequest, kind: MoneroPending) {
        self.next_id += 1;
        let id = self.next_id;
        self.output
            .push_back(request.to_line(Some(RequestId::number(id))));
        self.pending.insert(id, (kind, None));
    }

    fn stamp(&mut self, now: Instant) {
        let mut sent = false;
        for (_, at) in self.pending.values_mut() {
            if at.is_none() {
                *at = Some(now);
                sent = true;
            }
        }
        if sent {
            self.last_sent = now;
        }
    }

    /// The instant by which [`handle_timeout`](MoneroMinerSession::handle_timeout) must be
    /// called next (at once when requests were queued since the time was last passed in).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let mut deadline = self.last_seen + self.config.idle_timeout;
        for (_, at) in self.pending.values() {
            deadline =
                deadline.min(at.map_or(self.last_seen, |s| s + self.config.response_timeout));
        }
        if let (Some(every), Some(_)) = (self.config.keepalive, &self.session_id) {
            deadline = deadline.min(self.last_sent + every);
        }
        Some(deadline)
    }

    /// Checks the timeouts at `now`: unanswered shares fail, an unanswered login or a silent
    /// pool ends the session, and `keepalived` goes out when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.stamp(now);
        let mut expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (_, at))| at.is_some_and(|s| now >= s + self.config.response_timeout))
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        for id in expired {
            match self.pending.remove(&id).map(|(kind, _)| kind) {
                Some(MoneroPending::Submit { sequence }) => {
                    self.events.push_back(MoneroMinerEvent::ShareResult {
                        sequence,
                        accepted: false,
                        error: Some(MoneroError {
                            code: None,
                            message: "no answer from the pool".to_owned(),
                        }),
                    });
                }
                Some(MoneroPending::Login) => {
                    self.close(MinerCloseReason::Timeout);
                    return;
                }
                // p2pool never answers keepalived.
                Some(MoneroPending::Keepalive) | None => {}
            }
        }
        if now >= self.last_seen + self.config.idle_timeout {
            self.close(MinerCloseReason::Idle);
            return;
        }
        if let (Some(every), Some(sid)) = (self.config.keepalive, self.session_id.clone()) {
            if now >= self.last_sent + every {
                self.request(
                    MoneroClientRequest::Keepalived(Some(sid)),
                    MoneroPending::Keepalive,
                );
                self.stamp(now);
            }
        }
    }

    /// Queues `submit` and returns the sequence number its
    /// [`MoneroMinerEvent::ShareResult`] will carry. A share that cannot be sent (not logged
    /// in, a job this session never saw, too many unanswered requests) fails at once.
    pub fn submit(&mut self, share: MoneroMinerShare) -> u64 {
        self.next_sequence += 1;
        let sequence = self.next_sequence;
        let problem = if self.closed.is_some() {
            Some("session closed".to_owned())
        } else if self.session_id.is_none() {
            Some("not logged in".to_owned())
        } else if !self.jobs.contains(&share.job_id) {
            Some(format!("job {} is unknown", share.job_id))
        } else if self.pending.len() >= MAX_PENDING {
            Some(format!("{MAX_PENDING} requests await an answer"))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.events.push_back(MoneroMinerEvent::ShareResult {
                sequence,
                accepted: false,
                error: Some(MoneroError {
                    code: None,
                    message: format!("not sent: {problem}"),
                }),
            });
            return sequence;
        }
        let submit = MoneroSubmit {
            id: self.session_id.clone().unwrap_or_default(),
            job_id: share.job_id,
            nonce: share.nonce,
            result: share.result,
            algo: share.algo,
        };
        self.request(
            MoneroClientRequest::Submit(submit),
            MoneroPending::Submit { sequence },
        );
        sequence
    }

    /// Handles one line from the pool (without its newline).
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.stamp(now);
        self.last_seen = now;
        if line.len() > LineBuffer::DEFAULT_MAX_LINE {
            self.events
                .push_back(MoneroMinerEvent::Error(MoneroMinerError::LineTooLong {
                    len: line.len(),
                    limit: LineBuffer::DEFAULT_MAX_LINE,
                }));
            return;
        }
        match MoneroMessage::parse(line) {
            Ok(MoneroMessage::Response(r)) => self.handle_response(r),
            Ok(MoneroMessage::Request(r)) => match MoneroServerRequest::from_request(&r) {
                Ok(MoneroServerRequest::Job(job)) => {
                    if self.session_id.is_some() {
                        self.new_job(job);
                    }
                }
                Ok(_) => {}
                Err(e) => self
                    .events
                    .push_back(MoneroMinerEvent::Error(MoneroMinerError::BadJob(e))),
            },
            Err(e) => self
                .events
                .push_back(MoneroMinerEvent::Error(MoneroMinerError::Parse(e))),
        }
    }

    fn new_job(&mut self, job: MoneroJob) {
        self.jobs.retain(|id| *id != job.job_id);
        self.jobs.push_back(job.job_id.clone());
        while self.jobs.len() > MONERO_RECENT_JOBS {
            self.jobs.pop_front();
        }
        let difficulty = job.difficulty();
        self.events
            .push_back(MoneroMinerEvent::NewJob { job, difficulty });
    }

    fn handle_response(&mut self, response: MoneroResponse) {
        let Some(id) = response.id.as_ref().and_then(our_id) else {
            return;
        };
        let Some((kind, _)) = self.pending.remove(&id) else {
            return;
        };
        match kind {
            MoneroPending::Login => match response.result {
                Err(e) => {
                    self.events.push_back(MoneroMinerEvent::LoginFailed(e));
                    self.close(MinerCloseReason::Rejected);
                }
                Ok(v) => match MoneroLoginResult::from_json(&v) {
                    Ok(result) => {
                        self.session_id = Some(result.id.clone());
                        self.extensions.clone_from(&result.extensions);
                        self.events.push_back(MoneroMinerEvent::LoggedIn {
                            session_id: result.id,
                            extensions: result.extensions,
                        });
                        if let Some(job) = result.job {
                            self.new_job(job);
                        }
                    }
                    Err(e) => {
                        self.events.push_back(MoneroMinerEvent::Error(
                            MoneroMinerError::BadLoginResult(e),
                        ));
                        self.close(MinerCloseReason::Protocol);
                    }
                },
            },
            MoneroPending::Submit { sequence } => {
                // xmrig counts any answer without an error as accepted.
                let error = response.result.err();
                self.events.push_back(MoneroMinerEvent::ShareResult {
                    sequence,
                    accepted: error.is_none(),
                    error,
                });
            }
            MoneroPending::Keepalive => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// /work/shared/captures/xmrig-rx0.txt, verbatim.
    const XMRIG_CAPTURE: &str = r#"   0.000 conn0 --- listening 127.0.0.1:3333 mode=xmr
   0.411 conn1 --- accepted from 127.0.0.1:55116
   0.412 conn1 C->S {"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC","pass":"x","agent":"XMRig/6.26.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["cn/0","cn/1","cn/2","cn/r","cn/fast","cn/half","cn/xao","cn/rto","cn/rwz","cn/zls","cn/double","cn/ccx","cn-lite/0","cn-lite/1","cn-heavy/0","cn-heavy/tube","cn-heavy/xhv","cn-pico","cn-pico/tlo","cn/upx2","rx/0","rx/2","rx/wow","rx/arq","rx/graft","rx/sfx","rx/yada","argon2/chukwa","argon2/chukwav2","argon2/ninja","ghostrider"]}}
   0.412 conn1 S->C {"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"sess1","status":"OK","extensions":["algo","keepalive"],"job":{"blob":"1010e2bd93d806418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3000000002283a67870bd298fffd52723bcfb2da2008d6f0fbc679238021b2114d8b9f25f01","job_id":"job1","target":"37894100","algo":"rx/0","height":1,"seed_hash":"418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3","id":"sess1"}}}
  14.502 conn1 C->S {"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"0d040000","result":"273b8652d2a8bbe7969dbc48c3fa1098548bfd6a7ad9e5531afad8b11ac02100","algo":"rx/0"}}
  14.502 conn1 S->C {"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  15.356 conn1 C->S {"id":3,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"80050000","result":"a189e97f908b609fed06f1d358c04c3612235142a604ea7e2dcca22d82982b00","algo":"rx/0"}}
  15.356 conn1 S->C {"id":3,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  15.390 conn1 C->S {"id":4,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"8f050000","result":"06bb78461925b50b5e742d2a44e7104e6a02ccd46719a047c14971e336d92d00","algo":"rx/0"}}
  15.390 conn1 S->C {"id":4,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  15.593 conn1 C->S {"id":5,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"e8050000","result":"c203e2b89d28c2fcd5458d0463643a6ed13e5096eca6e6bb8078c20a729f0500","algo":"rx/0"}}
  15.593 conn1 S->C {"id":5,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  21.746 conn1 C->S {"id":6,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"59100000","result":"091636ca4fa368d0d7a5381ae5b8af986006a8c9d803f82c2f4500eed9004100","algo":"rx/0"}}
  21.747 conn1 S->C {"id":6,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  22.990 conn1 C->S {"id":7,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"82120000","result":"e31b876574c605aab5513899c5835bc14a274a44a1eb3e2e919eced294281d00","algo":"rx/0"}}
  22.990 conn1 S->C {"id":7,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  25.074 conn1 C->S {"id":8,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"1a160000","result":"027cfe251729ace220b58ec906b4be1b7af4a7966fc81061a54fee6342880900","algo":"rx/0"}}
  25.075 conn1 S->C {"id":8,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  28.052 conn1 C->S {"id":9,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"2d1b0000","result":"344f4071d88735fce40de3e17101b2c8c8f838cc9480a043a9bdba3a727e1000","algo":"rx/0"}}
  28.052 conn1 S->C {"id":9,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  29.383 conn1 C->S {"id":10,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"6a1d0000","result":"d512e2b0c8b7b2915d5e8bc54eed4a5b90cd24a5489543c814057bd09fe91800","algo":"rx/0"}}
  29.383 conn1 S->C {"id":10,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  35.953 conn1 C->S {"id":11,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"98280000","result":"5c3de3b29e3690b8cac091e538f4ce09a462b2e0b5113f7cecbdc7aaf7310600","algo":"rx/0"}}
  35.953 conn1 S->C {"id":11,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  37.559 conn1 C->S {"id":12,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"5a2b0000","result":"e2882bac5823beb364fb86f8aaa1daa52d3a6088e50717bbb5273c1316be2800","algo":"rx/0"}}
  37.560 conn1 S->C {"id":12,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  39.789 conn1 C->S {"id":13,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"2c2f0000","result":"192c26897c009ee746fdb2f89346712e8f2d9569073932d5876d266f480c3400","algo":"rx/0"}}
  39.789 conn1 S->C {"id":13,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  43.852 conn1 C->S {"id":14,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"24360000","result":"f75d4153988af8031647a4442bbc49b14ef7b1fab729f5696dfe87059a081100","algo":"rx/0"}}
  43.853 conn1 S->C {"id":14,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  44.254 conn1 C->S {"id":15,"jsonrpc":"2.0","method":"submit","params":{"id":"sess1","job_id":"job1","nonce":"d7360000","result":"5de530548863c01a03b80b7af727247a1672dc76bb782db95b7e45edf6e51100","algo":"rx/0"}}
  44.254 conn1 S->C {"id":15,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}
  46.400 conn1 --- client closed
  50.468 conn0 --- done
"#;

    /// (seconds, direction, raw line) for each captured line of the connection.
    fn capture() -> Vec<(f64, &'static str, &'static str)> {
        XMRIG_CAPTURE
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let (secs, rest) = l.split_once(' ')?;
                let (_conn, rest) = rest.split_once(' ')?;
                let (dir, raw) = rest.split_once(' ')?;
                (dir != "---").then(|| (secs.parse().ok().unwrap_or(0.0), dir, raw))
            })
            .collect()
    }

    fn json_of(line: &str) -> Value {
        serde_json::from_str(line.trim_end()).expect("json")
    }

    fn captured_job() -> MoneroJob {
        let (_, _, raw) = capture()[1];
        let Ok(MoneroMessage::Response(r)) = MoneroMessage::parse(raw.as_bytes()) else {
            panic!("login result")
        };
        let result = MoneroLoginResult::from_json(&r.result.expect("ok")).expect("result");
        result.job.expect("job")
    }

    #[test]
    fn replays_the_xmrig_capture_byte_exact() {
        let t0 = Instant::now();
        let lines = capture();
        assert_eq!(lines.len(), 30);
        let mut pool = MoneroPoolSession::new(Arc::new(MoneroPoolConfig::default()), "sess1", t0);

        // The login.
        let (_, dir, login_line) = lines[0];
        assert_eq!(dir, "C->S");
        pool.handle_line(login_line.as_bytes(), t0);
        let Some(MoneroPoolEvent::Login { token, login }) = pool.poll_event() else {
            panic!("login event")
        };
        assert_eq!(
            login.login,
            "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC"
        );
        assert_eq!(login.pass.as_deref(), Some("x"));
        assert_eq!(
            login.agent.as_deref(),
            Some("XMRig/6.26.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0")
        );
        assert_eq!(login.rigid, None);
        assert_eq!(login.algo.len(), 31);
        assert_eq!(login.algo[20], "rx/0");
        assert_eq!(login.algo.last().map(String::as_str), Some("ghostrider"));

        // The job the logger handed out, answered the same way.
        let job = captured_job();
        assert_eq!(job.job_id, "job1");
        assert_eq!(job.blob.len(), 76);
        assert_eq!(job.target, MoneroTarget::Short(0x0041_8937));
        assert_eq!(job.difficulty(), 1000);
        assert_eq!((job.algo.as_deref(), job.height), (Some("rx/0"), Some(1)));
        assert_eq!(
            job.seed_hash.map(|s| encode_hex(&s)).as_deref(),
            Some("418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3")
        );
        pool.login_result(token, Ok(job.clone()));
        let ours = json_of(&pool.poll_output().expect("login result"));
        let mut theirs = json_of(lines[1].2);
        // The logger also echoed the session id inside the job; xmrig ignores it.
        if let Some(job) = theirs
            .pointer_mut("/result/job")
            .and_then(Value::as_object_mut)
        {
            job.remove("id");
        }
        assert_eq!(ours, theirs);

        // Every submit, with the server's exact answers.
        let mut shares = 0;
        for pair in lines[2..].chunks(2) {
            let [(t_c, "C->S", submit), (_, "S->C", answer)] = pair else {
                panic!("pairs")
            };
            let at = t0 + Duration::from_secs_f64(*t_c);
            pool.handle_line(submit.as_bytes(), at);
            let Some(MoneroPoolEvent::Share(share)) = pool.poll_event() else {
                panic!("share event for {submit}")
            };
            let params = &json_of(submit)["params"];
            let nonce_hex = params["nonce"].as_str().expect("nonce");
            assert_eq!(encode_hex(&share.blob[39..43]), nonce_hex);
            assert_eq!(share.blob[..39], job.blob[..39]);
            assert_eq!(share.blob[43..], job.blob[43..]);
            assert_eq!(
                encode_hex(&share.result),
                params["result"].as_str().expect("result")
            );
            assert_eq!(share.difficulty, 1000);
            assert!(MoneroTarget::Short(0x0041_8937).is_met_by(&share.result));
            if shares == 0 {
                assert_eq!(share.nonce, 0x0000_040d);
                assert_eq!(share.blob[39..43], [0x0d, 0x04, 0x00, 0x00]);
                assert_eq!(share.worker, login.login);
                assert_eq!(share.algo.as_deref(), Some("rx/0"));
            }
            pool.share_result(share.token, ShareVerdict::Accepted);
            assert_eq!(
                pool.poll_output().as_deref(),
                Some(format!("{answer}\n").as_str())
            );
            shares += 1;
        }
        assert_eq!(shares, 14);
        assert_eq!(pool.share_counts(), (14, 0));
        assert!(pool.poll_event().is_none());
        // Replayed again, every one is a duplicate.
        pool.handle_line(lines[2].2.as_bytes(), t0 + Duration::from_secs(50));
        assert!(pool.poll_event().is_none());
        let answer = json_of(&pool.poll_output().expect("dup"));
        assert_eq!(answer["error"]["message"], "Duplicate share");
        assert_eq!(answer["error"]["code"], -1);
    }

    /// A logged-in pool session on the captured job, its outputs drained.
    fn logged_in(config: MoneroPoolConfig) -> MoneroPoolSession {
        let t0 = Instant::now();
        let mut pool = MoneroPoolSession::new(Arc::new(config), "sess1", t0);
        pool.handle_line(capture()[0].2.as_bytes(), t0);
        let Some(MoneroPoolEvent::Login { token, .. }) = pool.poll_event() else {
            panic!("login")
        };
        pool.login_result(token, Ok(captured_job()));
        pool.poll_output();
        pool
    }

    fn submit_line(job_id: &str, nonce: &str, result: &str) -> String {
        format!(
            r#"{{"id":9,"jsonrpc":"2.0","method":"submit","params":{{"id":"sess1","job_id":{job_id},"nonce":{nonce},"result":{result}}}}}"#
        )
    }

    const GOOD_RESULT: &str =
        r#""273b8652d2a8bbe7969dbc48c3fa1098548bfd6a7ad9e5531afad8b11ac02100""#;

    fn error_message(pool: &mut MoneroPoolSession) -> String {
        let answer = json_of(&pool.poll_output().expect("an answer"));
        assert_eq!(answer["result"], Value::Null);
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .to_owned()
    }

    #[test]
    fn malformed_submits_are_answered_not_dropped() {
        let now = Instant::now();
        let mut pool = logged_in(MoneroPoolConfig {
            ban_threshold: -1000,
            ..MoneroPoolConfig::default()
        });
        let cases = [
            (
                submit_line(r#""0""#, r#""0d040000""#, GOOD_RESULT),
                "Invalid job id",
            ),
            (
                submit_line(r#""zz""#, r#""0d040000""#, GOOD_RESULT),
                "Invalid job id",
            ),
            (
                submit_line(r#""JOB1""#, r#""0d040000""#, GOOD_RESULT),
                "Invalid job id",
            ),
            (
                submit_line("0", r#""0d040000""#, GOOD_RESULT),
                "job_id is not a string",
            ),
            (
                submit_line(r#""""#, r#""0d040000""#, GOOD_RESULT),
                "job_id of 0 bytes",
            ),
            (
                submit_line(r#""job1""#, r#""0d0400""#, GOOD_RESULT),
                "nonce is not 8 hex",
            ),
            (
                submit_line(r#""job1""#, r#""0d04000000""#, GOOD_RESULT),
                "nonce is not 8 hex",
            ),
            (
                submit_line(r#""job1""#, r#""0x040000""#, GOOD_RESULT),
                "nonce is not hex",
            ),
            (
                submit_line(r#""job1""#, "1037", GOOD_RESULT),
                "nonce is not a string",
            ),
            (
                submit_line(r#""job1""#, "null", GOOD_RESULT),
                "nonce is not a string",
            ),
            (
                submit_line(r#""job1""#, r#""0d040000""#, r#""abcd""#),
                "result is not 64 hex",
            ),
            (
                submit_line(
                    r#""job1""#,
                    r#""0d040000""#,
                    &GOOD_RESULT.replace("27", "zz"),
                ),
                "result is not hex",
            ),
            (
                submit_line(
                    r#""job1""#,
                    r#""0d040000""#,
                    &GOOD_RESULT.replace("00\"", "0000\""),
                ),
                "result is not 64 hex",
            ),
            (
                r#"{"id":9,"jsonrpc":"2.0","method":"submit","params":["sess1","job1"]}"#
                    .to_owned(),
                "params is not an object",
            ),
            (
                submit_line(r#""job1""#, r#""0d040000""#, GOOD_RESULT).replace("sess1", "sess2"),
                "Unauthenticated",
            ),
            (
                submit_line(
                    r#""job1""#,
                    r#""0d040000""#,
                    r#""ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff""#,
                ),
                "Low difficulty share",
            ),
        ];
        for (line, expected) in cases {
            pool.handle_line(line.as_bytes(), now);
            assert_eq!(pool.poll_event(), None, "{line}");
            let message = error_message(&mut pool);
            assert!(message.contains(expected), "{line}: {message}");
        }
        assert!(!pool.is_closed());
        // A case-flipped nonce is the same share.
        pool.handle_line(
            submit_line(r#""job1""#, r#""0d04000a""#, GOOD_RESULT).as_bytes(),
            now,
        );
        assert!(matches!(pool.poll_event(), Some(MoneroPoolEvent::Share(_))));
        pool.handle_line(
            submit_line(r#""job1""#, r#""0D04000A""#, GOOD_RESULT).as_bytes(),
            now,
        );
        assert_eq!(pool.poll_event(), None);
        assert_eq!(error_message(&mut pool), "Duplicate share");
    }

    #[test]
    fn keepalived_unknown_methods_and_null_ids() {
        let now = Instant::now();
        let mut pool = logged_in(MoneroPoolConfig::default());
        pool.handle_line(
            br#"{"id":7,"jsonrpc":"2.0","method":"keepalived","params":{"id":"sess1"}}"#,
            now,
        );
        assert_eq!(
            json_of(&pool.poll_output().expect("answer")),
            json!({"id": 7, "jsonrpc": "2.0", "error": null, "result": {"status": "KEEPALIVED"}})
        );
        pool.handle_line(br#"{"id":"k","jsonrpc":"2.0","method":"keepalived"}"#, now);
        assert_eq!(json_of(&pool.poll_output().expect("answer"))["id"], "k");
        pool.handle_line(
            br#"{"id":8,"jsonrpc":"2.0","method":"getjob","params":{}}"#,
            now,
        );
        assert!(error_message(&mut pool).contains("unsupported method getjob"));
        pool.handle_line(
            br#"{"id":null,"jsonrpc":"2.0","method":"mystery","params":[]}"#,
            now,
        );
        pool.handle_line(
            br#"{"id":null,"jsonrpc":"2.0","method":"keepalived","params":{"id":"sess1"}}"#,
            now,
        );
        assert_eq!(pool.poll_output(), None);
        assert!(!pool.is_closed());
        // p2pool's way: no reply at all.
        let mut quiet = logged_in(MoneroPoolConfig {
            reply_keepalived: false,
            ..MoneroPoolConfig::default()
        });
        quiet.handle_line(
            br#"{"id":7,"jsonrpc":"2.0","method":"keepalived","params":{"id":"sess1"}}"#,
            now,
        );
        assert_eq!(quiet.poll_output(), None);
    }

    #[test]
    fn new_heights_make_old_jobs_stale() {
        let now = Instant::now();
        let mut pool = logged_in(MoneroPoolConfig::default());
        let mut next = captured_job();
        next.job_id = "job2".into();
        next.height = Some(2);
        pool.send_job(&next);
        let line = json_of(&pool.poll_output().expect("job"));
        assert_eq!(line["method"], "job");
        assert_eq!(line["params"]["job_id"], "job2");
        assert_eq!(line.get("id"), None);
        pool.handle_line(
            submit_line(r#""job1""#, r#""0d040000""#, GOOD_RESULT).as_bytes(),
            now,
        );
        assert_eq!(error_message(&mut pool), "Stale share");
        pool.handle_line(
            submit_line(r#""job2""#, r#""0d040000""#, GOOD_RESULT).as_bytes(),
            now,
        );
        assert!(matches!(pool.poll_event(), Some(MoneroPoolEvent::Share(_))));
    }

    #[test]
    fn refusals_timeouts_bans_and_garbage() {
        let t0 = Instant::now();
        let config = Arc::new(MoneroPoolConfig::default());
        let mut pool = MoneroPoolSession::new(Arc::clone(&config), "s", t0);
        pool.handle_line(b"\x16\x03\x01\x02\x00", t0);
        assert_eq!(
            pool.poll_event(),
            Some(MoneroPoolEvent::Closed(CloseReason::NotStratum))
        );

        let mut pool = MoneroPoolSession::new(Arc::clone(&config), "s", t0);
        pool.handle_line(capture()[0].2.as_bytes(), t0);
        let Some(MoneroPoolEvent::Login { token, .. }) = pool.poll_event() else {
            panic!("login")
        };
        pool.handle_line(capture()[0].2.as_bytes(), t0);
        assert_eq!(error_message(&mut pool), "already logged in");
        pool.login_result(token, Err("invalid payout address".into()));
        assert_eq!(error_message(&mut pool), "invalid payout address");
        assert!(!pool.is_logged_in());
        // Submits before a login are refused.
        pool.handle_line(
            submit_line(r#""job1""#, r#""0d040000""#, GOOD_RESULT).as_bytes(),
            t0,
        );
        assert_eq!(error_message(&mut pool), "Unauthenticated");
        pool.handle_timeout(t0 + Duration::from_secs(29));
        assert!(!pool.is_closed());
        pool.handle_timeout(t0 + Duration::from_secs(30));
        assert_eq!(
            pool.poll_event(),
            Some(MoneroPoolEvent::Closed(CloseReason::SubscribeTimeout))
        );

        let mut pool = logged_in(MoneroPoolConfig::default());
        for i in 0..6 {
            pool.handle_line(
                submit_line(r#""nope""#, &format!(r#""0000000{i}""#), GOOD_RESULT).as_bytes(),
                t0,
            );
        }
        assert_eq!(
            pool.poll_event(),
            Some(MoneroPoolEvent::Closed(CloseReason::Banned))
        );
        assert_eq!(pool.poll_timeout(), None);
    }

    #[test]
    fn miner_session_against_the_captured_pool() {
        let t0 = Instant::now();
        let lines = capture();
        let config = MoneroMinerConfig {
            login: "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC".into(),
            agent: "XMRig/6.26.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0".into(),
            keepalive: Some(Duration::from_secs(60)),
            ..MoneroMinerConfig::default()
        };
        let mut miner = MoneroMinerSession::new(config, t0);
        miner.start();
        let login = json_of(&miner.poll_output().expect("login"));
        assert_eq!(login["method"], "login");
        assert_eq!(login["jsonrpc"], "2.0");
        assert_eq!(
            login["params"]["login"],
            json_of(lines[0].2)["params"]["login"]
        );
        miner.handle_line(lines[1].2.as_bytes(), t0);
        assert_eq!(
            miner.poll_event(),
            Some(MoneroMinerEvent::LoggedIn {
                session_id: "sess1".into(),
                extensions: vec!["algo".into(), "keepalive".into()],
            })
        );
        let Some(MoneroMinerEvent::NewJob { job, difficulty }) = miner.poll_event() else {
            panic!("job")
        };
        assert_eq!((job.job_id.as_str(), difficulty), ("job1", 1000));

        // The miner's submit is the captured line, field for field.
        let captured = json_of(lines[2].2);
        let params = &captured["params"];
        let mut result = [0u8; 32];
        result.copy_from_slice(&decode_hex(params["result"].as_str().expect("r")).expect("hex"));
        let seq = miner.submit(MoneroMinerShare {
            job_id: "job1".into(),
            nonce: 0x0000_040d,
            result,
            algo: Some("rx/0".into()),
        });
        assert_eq!(json_of(&miner.poll_output().expect("submit")), captured);
        miner.handle_line(lines[3].2.as_bytes(), t0);
        assert_eq!(
            miner.poll_event(),
            Some(MoneroMinerEvent::ShareResult {
                sequence: seq,
                accepted: true,
                error: None
            })
        );

        // A rejection in p2pool's code-less form.
        let seq = miner.submit(MoneroMinerShare {
            job_id: "job1".into(),
            nonce: 1,
            result,
            algo: None,
        });
        miner.poll_output();
        miner.handle_line(
            br#"{"id":3,"jsonrpc":"2.0","error":{"message":"Stale share"}}"#,
            t0,
        );
        assert_eq!(
            miner.poll_event(),
            Some(MoneroMinerEvent::ShareResult {
                sequence: seq,
                accepted: false,
                error: Some(MoneroError {
                    code: None,
                    message: "Stale share".into()
                }),
            })
        );
        // Unknown jobs fail locally.
        miner.submit(MoneroMinerShare {
            job_id: "job9".into(),
            nonce: 1,
            result,
            algo: None,
        });
        assert!(matches!(
            miner.poll_event(),
            Some(MoneroMinerEvent::ShareResult {
                accepted: false,
                ..
            })
        ));
        assert_eq!(miner.poll_output(), None);

        // A new job notification, and a hostile one.
        let mut next = job.clone();
        next.job_id = "job2".into();
        next.target = MoneroTarget::Long(u64::MAX / 5_000_000);
        miner.handle_line(MoneroServerRequest::Job(next).to_line().as_bytes(), t0);
        assert!(matches!(
            miner.poll_event(),
            Some(MoneroMinerEvent::NewJob {
                difficulty: 5_000_000,
                ..
            })
        ));
        for bad in [
            r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"00","job_id":"j","target":"ffffffff"}}"#,
            r#"{"jsonrpc":"2.0","method":"job","params":{"job_id":"j","target":"ffffffff"}}"#,
            r#"{"jsonrpc":"2.0","method":"job","params":[1,2,3]}"#,
        ] {
            miner.handle_line(bad.as_bytes(), t0);
            assert!(
                matches!(miner.poll_event(), Some(MoneroMinerEvent::Error(_))),
                "{bad}"
            );
        }

        // Keepalive after 60 s without sending.
        let t1 = t0 + Duration::from_secs(60);
        assert!(miner.poll_timeout().is_some_and(|d| d <= t1));
        miner.handle_timeout(t1);
        let keepalive = json_of(&miner.poll_output().expect("keepalived"));
        assert_eq!(keepalive["method"], "keepalived");
        assert_eq!(keepalive["params"], json!({"id": "sess1"}));
    }

    #[test]
    fn miner_login_refused_or_silent() {
        let t0 = Instant::now();
        let mut miner = MoneroMinerSession::new(MoneroMinerConfig::default(), t0);
        miner.start();
        miner.handle_line(
            br#"{"id":1,"jsonrpc":"2.0","error":{"code":-1,"message":"Invalid address"},"result":null}"#,
            t0,
        );
        assert_eq!(
            miner.poll_event(),
            Some(MoneroMinerEvent::LoginFailed(MoneroError::new(
                "Invalid address"
            )))
        );
        assert_eq!(
            miner.poll_event(),
            Some(MoneroMinerEvent::Closed(MinerCloseReason::Rejected))
        );
        let mut miner = MoneroMinerSession::new(MoneroMinerConfig::default(), t0);
        miner.start();
        miner.handle_timeout(t0);
        miner.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(
            miner.poll_event(),
            Some(MoneroMinerEvent::Closed(MinerCloseReason::Timeout))
        );
    }

    fn target() -> impl Strategy<Value = MoneroTarget> {
        prop_oneof![
            (1..=u32::MAX).prop_map(MoneroTarget::Short),
            (1..=u64::MAX).prop_map(MoneroTarget::Long),
        ]
    }

    fn job() -> impl Strategy<Value = MoneroJob> {
        (
            proptest::collection::vec(any::<u8>(), 43..=120),
            "[0-9a-zA-Z+/]{1,20}",
            target(),
            proptest::option::of("[a-z]{2}/[0-9]"),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<[u8; 32]>()),
        )
            .prop_map(
                |(blob, job_id, target, algo, height, seed_hash)| MoneroJob {
                    blob,
                    job_id,
                    target,
                    algo,
                    height,
                    seed_hash,
                },
            )
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~]{0,24}"
    }

    fn reparse_client(line: &str) -> MoneroClientRequest {
        let Ok(MoneroMessage::Request(r)) = MoneroMessage::parse(line.trim_end().as_bytes()) else {
            panic!("request")
        };
        MoneroClientRequest::from_request(&r).expect("params")
    }

    proptest! {
        #[test]
        fn logins_round_trip(
            login in text(),
            pass in proptest::option::of(text()),
            agent in proptest::option::of(text()),
            rigid in proptest::option::of(text()),
            algo in proptest::collection::vec("[a-z/0-9-]{1,12}", 0..5),
        ) {
            let req = MoneroClientRequest::Login(MoneroLogin { login, pass, agent, rigid, algo });
            prop_assert_eq!(reparse_client(&req.to_line(Some(RequestId::number(1)))), req);
        }

        #[test]
        fn submits_and_keepalives_round_trip(
            id in text(),
            job_id in "[0-9a-f]{1,16}",
            nonce in any::<u32>(),
            result in any::<[u8; 32]>(),
            algo in proptest::option::of(text()),
            keep in proptest::option::of(text()),
        ) {
            let req = MoneroClientRequest::Submit(MoneroSubmit { id, job_id, nonce, result, algo });
            prop_assert_eq!(reparse_client(&req.to_line(Some(RequestId::string("s")))), req);
            let ka = MoneroClientRequest::Keepalived(keep);
            prop_assert_eq!(reparse_client(&ka.to_line(Some(RequestId::number(3)))), ka);
        }

        #[test]
        fn jobs_and_login_results_round_trip(
            j in job(),
            id in text(),
            with_job in any::<bool>(),
            extensions in proptest::collection::vec("[a-z]{1,10}", 0..4),
        ) {
            let notification = MoneroServerRequest::Job(j.clone());
            let Ok(MoneroMessage::Request(r)) = MoneroMessage::parse(notification.to_line().trim_end().as_bytes()) else {
                return Err(TestCaseError::fail("not a request"));
            };
            prop_assert!(r.id.is_none());
            prop_assert_eq!(MoneroServerRequest::from_request(&r), Ok(notification));
            let result = MoneroLoginResult {
                id,
                job: with_job.then_some(j),
                status: "OK".into(),
                extensions,
            };
            let response = MoneroResponse { id: Some(RequestId::number(1)), result: Ok(result.to_json()) };
            let Ok(MoneroMessage::Response(back)) = MoneroMessage::parse(response.to_line().trim_end().as_bytes()) else {
                return Err(TestCaseError::fail("not a response"));
            };
            prop_assert_eq!(&back, &response);
            let Ok(v) = back.result else { return Err(TestCaseError::fail("error")) };
            prop_assert_eq!(MoneroLoginResult::from_json(&v), Ok(result));
        }

        #[test]
        fn responses_round_trip(
            id in any::<u64>(),
            code in proptest::option::of(any::<i64>()),
            message in text(),
            status in "[A-Z]{1,12}",
            ok in any::<bool>(),
        ) {
            let result = if ok { Ok(monero_status(&status)) } else { Err(MoneroError { code, message }) };
            let response = MoneroResponse { id: Some(RequestId::number(id)), result };
            let Ok(MoneroMessage::Response(back)) = MoneroMessage::parse(response.to_line().trim_end().as_bytes()) else {
                return Err(TestCaseError::fail("not a response"));
            };
            prop_assert_eq!(back, response);
        }

        #[test]
        fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200), text in "[ -~]{0,200}") {
            let now = Instant::now();
            let mut pool = logged_in(MoneroPoolConfig::default());
            pool.handle_line(&line, now);
            pool.handle_line(text.as_bytes(), now);
            let mut miner = MoneroMinerSession::new(MoneroMinerConfig::default(), now);
            miner.start();
            miner.handle_line(&line, now);
            miner.handle_line(text.as_bytes(), now);
        }
    }
}
