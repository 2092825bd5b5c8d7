//! EthereumStratum/1.0.0 (NiceHash) for Ethash-family coins, and the kawpowminer variant for
//! KawPow.
//!
//! | message | shape |
//! |---|---|
//! | `mining.subscribe` | `["Miner/1.0", "EthereumStratum/1.0.0"]` → `[["mining.notify", sid, "EthereumStratum/1.0.0"], extranonce_hex]` (kawpowminer: `[null, prefix_hex]`) |
//! | `mining.set_difficulty` | `[d]`: boundary = Bitcoin's diff-1 target / d, from the next job; 1 until set |
//! | `mining.set_extranonce` | `[extranonce_hex]`, from the next job |
//! | `mining.set_target` | `[target_hex]` (kawpowminer; a short target is left-padded) |
//! | `mining.notify` | `[job_id, seed_hash, header_hash, clean]`, or kawpowminer's `[job_id, header_hash, seed_hash, share_target, clean, height, nbits]` |
//! | `mining.submit` | `[worker, job_id, miner_nonce]`: the full 8-byte nonce is extranonce ‖ miner_nonce; kawpowminer sends `[worker, job_id, "0x"+nonce16, "0x"+header, "0x"+mix]` |
//!
//! Hex may carry a `0x` prefix on input; NiceHash forms are written without one. Ethash and
//! KawPow compare hashes with the boundary as **big-endian** numbers
//! ([`Target::is_met_by_be`]).
//!
//! [`EthPoolSession`] is the pool side for the NiceHash form, in the shape of
//! [`PoolSession`](crate::PoolSession): it checks shares for job, nonce size and duplicates
//! and hands them to the caller, who runs Ethash and answers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::{decode_hex, encode_hex, Difficulty, DifficultyConvention, Target};
use serde_json::{json, Value};

use crate::liveness::Liveness;
use crate::v1::error::{ErrorCode, StratumError};
use crate::v1::extranonce::{Extranonce1, ExtranonceAllocator};
use crate::v1::frame::LineBuffer;
use crate::v1::message::{
    difficulty_json, format_hex_u32, parse_hex_u32, Authorize, Message, ParamsError, Request,
    RequestId, Response,
};
use crate::v1::miner::MAX_JOB_ID;
use crate::v1::pool::{CloseReason, ShareVerdict};

/// The protocol name NiceHash miners and pools exchange.
pub const ETH_STRATUM_PROTOCOL: &str = "EthereumStratum/1.0.0";

/// The longest extranonce the NiceHash specification allows (and [`EthPoolSession`] hands
/// out), in bytes. Parsing accepts up to 7, leaving the miner at least one nonce byte.
pub const ETH_MAX_EXTRANONCE: usize = 3;

/// The longest extranonce or nonce prefix parsed, in bytes.
const ETH_PARSE_MAX_EXTRANONCE: usize = 7;

fn bad(method: &str, reason: impl Into<String>) -> ParamsError {
    ParamsError {
        method: method.to_owned(),
        reason: reason.into(),
    }
}

fn array<'a>(method: &str, params: &'a Value) -> Result<&'a [Value], ParamsError> {
    match params {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(bad(method, "params is not an array")),
    }
}

fn string_at(method: &str, items: &[Value], i: usize, what: &str) -> Result<String, ParamsError> {
    match items.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(method, format!("{what} is not a string"))),
        None => Err(bad(method, format!("{what} is missing"))),
    }
}

fn opt_string_at(items: &[Value], i: usize) -> Option<String> {
    items.get(i).and_then(Value::as_str).map(str::to_owned)
}

fn strip_0x(s: &str) -> &str {
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
}

/// At most 80 characters of peer text, for error messages.
fn cut(text: &str) -> String {
    text.chars().take(80).collect()
}

fn hex_at(
    method: &str,
    items: &[Value],
    i: usize,
    what: &str,
    max: usize,
) -> Result<Vec<u8>, ParamsError> {
    let text = string_at(method, items, i, what)?;
    let bytes = decode_hex(strip_0x(&text))
        .map_err(|e| bad(method, format!("{what} {:?}: {e}", cut(&text))))?;
    if bytes.len() > max {
        return Err(bad(
            method,
            format!("{what} of {} bytes (at most {max})", bytes.len()),
        ));
    }
    Ok(bytes)
}

fn hash_at(method: &str, items: &[Value], i: usize, what: &str) -> Result<[u8; 32], ParamsError> {
    let bytes = hex_at(method, items, i, what, 32)?;
    <[u8; 32]>::try_from(bytes)
        .map_err(|b| bad(method, format!("{what} of {} bytes, not 32", b.len())))
}

fn opt_hash_at(
    method: &str,
    items: &[Value],
    i: usize,
    what: &str,
) -> Result<Option<[u8; 32]>, ParamsError> {
    match items.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => hash_at(method, items, i, what).map(Some),
    }
}

fn job_id_at(method: &str, items: &[Value], i: usize) -> Result<String, ParamsError> {
    let id = string_at(method, items, i, "job id")?;
    if id.is_empty() || id.len() > MAX_JOB_ID {
        return Err(bad(
            method,
            format!("job id of {} bytes (1 to {MAX_JOB_ID})", id.len()),
        ));
    }
    Ok(id)
}

/// A 256-bit target from hex of up to 64 digits; a short one is a number, so it is padded on
/// the left (kawpowminer's "coinmine.pl fix").
fn target_at(method: &str, items: &[Value], i: usize, what: &str) -> Result<Target, ParamsError> {
    let text = string_at(method, items, i, what)?;
    let digits = strip_0x(&text);
    if digits.is_empty() || digits.len() > 64 {
        return Err(bad(
            method,
            format!("{what} of {} hex digits (1 to 64)", digits.len()),
        ));
    }
    let padded = format!("{digits:0>64}");
    let bytes = decode_hex(&padded).map_err(|e| bad(method, format!("{what}: {e}")))?;
    let mut be = [0u8; 32];
    be.copy_from_slice(bytes.get(..32).ok_or_else(|| bad(method, "short target"))?);
    Ok(Target::from_be_bytes(be))
}

fn positive_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|d: &f64| d.is_finite() && *d > 0.0)
}

/// The share boundary for an EthereumStratum difficulty: Bitcoin's diff-1 target
/// (`0x00000000ffff0000…`) divided by `difficulty`, as the NiceHash specification has it. A
/// difficulty that is not a positive number gives difficulty 1.
pub fn eth_share_target(difficulty: f64) -> Target {
    match Difficulty::new(difficulty) {
        Ok(d) => DifficultyConvention::Bitcoin.target_for(d),
        Err(_) => DifficultyConvention::Bitcoin.diff1_target(),
    }
}

/// `mining.subscribe` params: `[agent, protocol]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EthSubscribe {
    /// The miner's name and version, e.g. `"Miner/1.0"`.
    pub agent: Option<String>,
    /// The protocol asked for, [`ETH_STRATUM_PROTOCOL`] for NiceHash.
    pub protocol: Option<String>,
}

/// The result of `mining.subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthSubscribeResult {
    /// The subscription id (absent in kawpowminer's `[null, prefix]` form).
    pub session_id: Option<String>,
    /// The protocol the pool speaks.
    pub protocol: Option<String>,
    /// The extranonce (nonce prefix), at most 7 bytes (NiceHash: 3).
    pub extranonce: Vec<u8>,
}

impl EthSubscribeResult {
    /// The result as JSON.
    pub fn to_json(&self) -> Value {
        let subscription = match (&self.session_id, &self.protocol) {
            (Some(sid), Some(protocol)) => json!(["mining.notify", sid, protocol]),
            (Some(sid), None) => json!(["mining.notify", sid]),
            (None, _) => Value::Null,
        };
        json!([subscription, encode_hex(&self.extranonce)])
    }

    /// Reads a subscribe result in either form.
    pub fn from_json(v: &Value) -> Result<Self, ParamsError> {
        let m = "mining.subscribe result";
        let items = v.as_array().ok_or_else(|| bad(m, "not an array"))?;
        let (session_id, protocol) = match items.first() {
            Some(Value::Array(sub)) => (opt_string_at(sub, 1), opt_string_at(sub, 2)),
            Some(Value::Null) => (None, None),
            _ => return Err(bad(m, "the subscription is neither an array nor null")),
        };
        Ok(EthSubscribeResult {
            session_id,
            protocol,
            extranonce: hex_at(m, items, 1, "extranonce", ETH_PARSE_MAX_EXTRANONCE)?,
        })
    }
}

/// `mining.submit` params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthSubmit {
    /// The worker name.
    pub worker: String,
    /// The job.
    pub job_id: String,
    /// The nonce bytes as sent: NiceHash's miner part (8 − extranonce bytes), or
    /// kawpowminer's full 8 bytes.
    pub nonce: Vec<u8>,
    /// kawpowminer: the header hash mined.
    pub header_hash: Option<[u8; 32]>,
    /// kawpowminer: the mix hash.
    pub mix_hash: Option<[u8; 32]>,
}

impl EthSubmit {
    /// The full 64-bit nonce for a session's extranonce: extranonce ‖ nonce read big-endian,
    /// or the nonce alone when it is all 8 bytes and starts with the extranonce. `None` when
    /// the sizes do not fit.
    pub fn full_nonce(&self, extranonce: &[u8]) -> Option<u64> {
        let mut full = Vec::with_capacity(8);
        if self.nonce.len() == 8 {
            if !self.nonce.starts_with(extranonce) {
                return None;
            }
        } else {
            full.extend_from_slice(extranonce);
        }
        full.extend_from_slice(&self.nonce);
        let bytes: [u8; 8] = full.try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }
}

/// What an EthereumStratum miner sends a pool.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EthClientRequest {
    /// `mining.subscribe`.
    Subscribe(EthSubscribe),
    /// `mining.authorize`.
    Authorize(Authorize),
    /// `mining.extranonce.subscribe`.
    ExtranonceSubscribe,
    /// `mining.submit`.
    Submit(EthSubmit),
    /// Any other method.
    Unknown {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
}

impl EthClientRequest {
    /// Reads a request's method and params.
    pub fn from_request(req: &Request) -> Result<Self, ParamsError> {
        let m = req.method.as_str();
        let p = &req.params;
        Ok(match m {
            "mining.subscribe" => {
                let items = array(m, p)?;
                EthClientRequest::Subscribe(EthSubscribe {
                    agent: opt_string_at(items, 0),
                    protocol: opt_string_at(items, 1),
                })
            }
            "mining.authorize" => {
                let items = array(m, p)?;
                EthClientRequest::Authorize(Authorize {
                    username: string_at(m, items, 0, "username")?,
                    password: opt_string_at(items, 1),
                })
            }
            "mining.extranonce.subscribe" => EthClientRequest::ExtranonceSubscribe,
            "mining.submit" => {
                let items = array(m, p)?;
                let nonce = hex_at(m, items, 2, "nonce", 8)?;
                if nonce.is_empty() {
                    return Err(bad(m, "nonce is empty"));
                }
                EthClientRequest::Submit(EthSubmit {
                    worker: string_at(m, items, 0, "worker")?,
                    job_id: job_id_at(m, items, 1)?,
                    nonce,
                    header_hash: opt_hash_at(m, items, 3, "header hash")?,
                    mix_hash: opt_hash_at(m, items, 4, "mix hash")?,
                })
            }
            _ => EthClientRequest::Unknown {
                method: req.method.clone(),
                params: req.params.clone(),
            },
        })
    }

    /// The method name.
    pub fn method(&self) -> &str {
        match self {
            EthClientRequest::Subscribe(_) => "mining.subscribe",
            EthClientRequest::Authorize(_) => "mining.authorize",
            EthClientRequest::ExtranonceSubscribe => "mining.extranonce.subscribe",
            EthClientRequest::Submit(_) => "mining.submit",
            EthClientRequest::Unknown { method, .. } => method,
        }
    }

    /// The request on the wire, with `id`.
    pub fn to_request(&self, id: Option<RequestId>) -> Request {
        let params = match self {
            EthClientRequest::Subscribe(s) => {
                let fields = [s.agent.clone(), s.protocol.clone()];
                let used = fields
                    .iter()
                    .rposition(Option::is_some)
                    .map_or(0, |i| i + 1);
                Value::Array(
                    fields
                        .into_iter()
                        .take(used)
                        .map(|f| f.map_or(Value::Null, Value::String))
                        .collect(),
                )
            }
            EthClientRequest::Authorize(a) => {
                json!([a.username, a.password.clone().unwrap_or_default()])
            }
            EthClientRequest::ExtranonceSubscribe => json!([]),
            EthClientRequest::Submit(s) => {
                if s.header_hash.is_none() && s.mix_hash.is_none() {
                    json!([s.worker, s.job_id, encode_hex(&s.nonce)])
                } else {
                    let prefixed = |h: &Option<[u8; 32]>| {
                        h.map_or(Value::Null, |h| {
                            Value::from(format!("0x{}", encode_hex(&h)))
                        })
                    };
                    json!([
                        s.worker,
                        s.job_id,
                        format!("0x{}", encode_hex(&s.nonce)),
                        prefixed(&s.header_hash),
                        prefixed(&s.mix_hash),
                    ])
                }
            }
            EthClientRequest::Unknown { params, .. } => params.clone(),
        };
        Request {
            id,
            method: self.method().to_owned(),
            params,
        }
    }
}

/// NiceHash's `mining.notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthNotify {
    /// The job id.
    pub job_id: String,
    /// The seed hash (selects the DAG epoch).
    pub seed_hash: [u8; 32],
    /// The header hash to mine.
    pub header_hash: [u8; 32],
    /// Whether earlier jobs are void.
    pub clean: bool,
}

/// kawpowminer's `mining.notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KawpowNotify {
    /// The job id.
    pub job_id: String,
    /// The header hash to mine.
    pub header_hash: [u8; 32],
    /// The seed hash.
    pub seed_hash: [u8; 32],
    /// The share boundary.
    pub share_target: Target,
    /// Whether earlier jobs are void.
    pub clean: bool,
    /// The block height (selects the epoch and the program).
    pub height: u64,
    /// The block's compact target, when sent.
    pub nbits: Option<u32>,
}

/// What an EthereumStratum pool sends unprompted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EthServerRequest {
    /// NiceHash `mining.notify`.
    Notify(EthNotify),
    /// kawpowminer `mining.notify`.
    KawpowNotify(KawpowNotify),
    /// `mining.set_difficulty` (boundary: [`eth_share_target`]).
    SetDifficulty(f64),
    /// `mining.set_target`.
    SetTarget(Target),
    /// `mining.set_extranonce`.
    SetExtranonce(Vec<u8>),
    /// Any other method.
    Unknown {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
}

impl EthServerRequest {
    /// Reads a request's method and params. A notify of six or more params is
    /// kawpowminer's; otherwise NiceHash's.
    pub fn from_request(req: &Request) -> Result<Self, ParamsError> {
        let m = req.method.as_str();
        let p = &req.params;
        Ok(match m {
            "mining.notify" => {
                let items = array(m, p)?;
                if items.len() >= 6 {
                    let nbits = match items.get(6) {
                        None | Some(Value::Null) => None,
                        Some(_) => {
                            let text = string_at(m, items, 6, "nbits")?;
                            Some(parse_hex_u32(strip_0x(&text)).ok_or_else(|| {
                                bad(m, format!("nbits is not 8 hex digits: {:?}", cut(&text)))
                            })?)
                        }
                    };
                    EthServerRequest::KawpowNotify(KawpowNotify {
                        job_id: job_id_at(m, items, 0)?,
                        header_hash: hash_at(m, items, 1, "header hash")?,
                        seed_hash: hash_at(m, items, 2, "seed hash")?,
                        share_target: target_at(m, items, 3, "share target")?,
                        clean: items.get(4).and_then(Value::as_bool).unwrap_or(false),
                        height: items
                            .get(5)
                            .and_then(Value::as_u64)
                            .ok_or_else(|| bad(m, "height is not an unsigned integer"))?,
                        nbits,
                    })
                } else {
                    EthServerRequest::Notify(EthNotify {
                        job_id: job_id_at(m, items, 0)?,
                        seed_hash: hash_at(m, items, 1, "seed hash")?,
                        header_hash: hash_at(m, items, 2, "header hash")?,
                        clean: items.get(3).and_then(Value::as_bool).unwrap_or(false),
                    })
                }
            }
            "mining.set_difficulty" => {
                let items = array(m, p)?;
                EthServerRequest::SetDifficulty(
                    items
                        .first()
                        .and_then(positive_number)
                        .ok_or_else(|| bad(m, "difficulty is not a positive number"))?,
                )
            }
            "mining.set_target" => {
                let items = array(m, p)?;
                EthServerRequest::SetTarget(target_at(m, items, 0, "target")?)
            }
            "mining.set_extranonce" => {
                let items = array(m, p)?;
                EthServerRequest::SetExtranonce(hex_at(
                    m,
                    items,
                    0,
                    "extranonce",
                    ETH_PARSE_MAX_EXTRANONCE,
                )?)
            }
            _ => EthServerRequest::Unknown {
                method: req.method.clone(),
                params: req.params.clone(),
            },
        })
    }

    /// The method name.
    pub fn method(&self) -> &str {
        match self {
            EthServerRequest::Notify(_) | EthServerRequest::KawpowNotify(_) => "mining.notify",
            EthServerRequest::SetDifficulty(_) => "mining.set_difficulty",
            EthServerRequest::SetTarget(_) => "mining.set_target",
            EthServerRequest::SetExtranonce(_) => "mining.set_extranonce",
            EthServerRequest::Unknown { method, .. } => method,
        }
    }

    /// The request on the wire; notifications carry no id.
    pub fn to_request(&self, id: Option<RequestId>) -> Request {
        let params = match self {
            EthServerRequest::Notify(n) => json!([
                n.job_id,
                encode_hex(&n.seed_hash),
                encode_hex(&n.header_hash),
                n.clean
            ]),
            EthServerRequest::KawpowNotify(n) => {
                let mut items = vec![
                    json!(n.job_id),
                    json!(encode_hex(&n.header_hash)),
                    json!(encode_hex(&n.seed_hash)),
                    json!(encode_hex(&n.share_target.to_be_bytes())),
                    json!(n.clean),
                    json!(n.height),
                ];
                if let Some(nbits) = n.nbits {
                    items.push(json!(format_hex_u32(nbits)));
                }
                Value::Array(items)
            }
            EthServerRequest::SetDifficulty(d) => json!([difficulty_json(*d)]),
            EthServerRequest::SetTarget(t) => json!([encode_hex(&t.to_be_bytes())]),
            EthServerRequest::SetExtranonce(e) => json!([encode_hex(e)]),
            EthServerRequest::Unknown { params, .. } => params.clone(),
        };
        Request {
            id,
            method: self.method().to_owned(),
            params,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pool side
// ---------------------------------------------------------------------------------------------

/// Pool-side settings for EthereumStratum.
#[derive(Debug, Clone, PartialEq)]
pub struct EthPoolConfig {
    /// Difficulty for a new session (NiceHash convention: Bitcoin's diff-1 boundary / d).
    pub initial_difficulty: f64,
    /// How long a connection may stay without subscribing.
    pub subscribe_timeout: Duration,
    /// How long a connection may stay silent.
    pub idle_timeout: Duration,
    /// How many recent jobs stay valid for shares.
    pub max_jobs: usize,
    /// How many submitted shares are remembered for duplicate detection.
    pub max_seen_shares: usize,
    /// Score at or below which the connection is dropped for bad shares.
    pub ban_threshold: i32,
}

impl Default for EthPoolConfig {
    fn default() -> Self {
        EthPoolConfig {
            initial_difficulty: 1.0,
            subscribe_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_jobs: 8,
            max_seen_shares: 65_536,
            ban_threshold: -30,
        }
    }
}

/// Why an [`EthPoolSession`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EthConfigError {
    /// The allocator hands out extranonces longer than EthereumStratum allows.
    #[error(
        "extranonce of {len} bytes is too long for ethereumstratum (at most {ETH_MAX_EXTRANONCE})"
    )]
    ExtranonceTooLong {
        /// The allocator's value length.
        len: usize,
    },
}

/// Identifies an authorization awaiting the caller's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthAuthorizeToken(u64);

/// Identifies a share awaiting the caller's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthShareToken(u64);

/// A share that passed the session's checks, for the caller to verify with Ethash: hash
/// `header_hash` with `nonce` in the epoch of `seed_hash`, check the result against `target`
/// (big-endian) and, if sent, against `mix_hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct EthShareSubmission {
    /// Answer with [`EthPoolSession::share_result`].
    pub token: EthShareToken,
    /// The authorized worker name it was submitted under.
    pub worker: String,
    /// The job.
    pub job_id: String,
    /// The full nonce, extranonce ‖ miner nonce.
    pub nonce: u64,
    /// The job's seed hash.
    pub seed_hash: [u8; 32],
    /// The job's header hash.
    pub header_hash: [u8; 32],
    /// The mix hash, when the miner sent one.
    pub mix_hash: Option<[u8; 32]>,
    /// The difficulty the job was announced with.
    pub difficulty: f64,
    /// The boundary for that difficulty.
    pub target: Target,
}

/// What an [`EthPoolSession`] needs the caller to decide.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EthPoolEvent {
    /// A worker asks to be authorized; answer with [`EthPoolSession::authorize_result`].
    Authorize {
        /// The request to answer.
        token: EthAuthorizeToken,
        /// The worker name.
        username: String,
        /// The password, if sent.
        password: Option<String>,
    },
    /// A share to verify; answer with [`EthPoolSession::share_result`].
    Share(EthShareSubmission),
    /// The session ended; close the connection.
    Closed(CloseReason),
}

#[derive(Debug, Clone)]
struct EthActiveJob {
    job_id: String,
    seed_hash: [u8; 32],
    header_hash: [u8; 32],
    difficulty: f64,
}

/// One EthereumStratum/1.0.0 miner connection, pool side.
#[derive(Debug)]
pub struct EthPoolSession {
    config: Arc<EthPoolConfig>,
    allocator: Arc<ExtranonceAllocator>,
    extranonce: Option<Extranonce1>,
    liveness: Liveness,
    authorized: HashSet<String>,
    pending_authorize: HashMap<u64, (Option<RequestId>, String)>,
    pending_shares: HashMap<u64, Option<RequestId>>,
    next_token: u64,
    extranonce_subscribed: bool,
    difficulty: f64,
    announced_difficulty: Option<f64>,
    jobs: VecDeque<EthActiveJob>,
    seen: HashSet<(String, u64)>,
    seen_order: VecDeque<(String, u64)>,
    ban_score: i32,
    accepted: u64,
    rejected: u64,
    output: VecDeque<String>,
    events: VecDeque<EthPoolEvent>,
    closed: Option<CloseReason>,
}

impl EthPoolSession {
    /// A new connection at `now`, drawing its extranonce from `allocator`, whose values must
    /// be at most [`ETH_MAX_EXTRANONCE`] bytes.
    pub fn new(
        config: Arc<EthPoolConfig>,
        allocator: Arc<ExtranonceAllocator>,
        now: Instant,
    ) -> Result<Self, EthConfigError> {
        if allocator.len() > ETH_MAX_EXTRANONCE {
            return Err(EthConfigError::ExtranonceTooLong {
                len: allocator.len(),
            });
        }
        let difficulty = positive_number(&Value::from(config.initial_difficulty)).unwrap_or(1.0);
        let liveness = Liveness::new(now, config.subscribe_timeout, config.idle_timeout);
        Ok(EthPoolSession {
            config,
            allocator,
            extranonce: None,
            liveness,
            authorized: HashSet::new(),
            pending_authorize: HashMap::new(),
            pending_shares: HashMap::new(),
            next_token: 0,
            extranonce_subscribed: false,
            difficulty,
            announced_difficulty: None,
            jobs: VecDeque::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            ban_score: 0,
            accepted: 0,
            rejected: 0,
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        })
    }

    /// The next line to write to the miner.
    pub fn poll_output(&mut self) -> Option<String> {
        self.output.pop_front()
    }

    /// The next decision needed from the caller.
    pub fn poll_event(&mut self) -> Option<EthPoolEvent> {
        self.events.pop_front()
    }

    /// Whether the session has subscribed.
    pub fn is_subscribed(&self) -> bool {
        self.extranonce.is_some()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The session's extranonce, once subscribed.
    pub fn extranonce(&self) -> Option<&[u8]> {
        self.extranonce.as_ref().map(Extranonce1::as_bytes)
    }

    /// Whether the miner asked for `mining.set_extranonce`.
    pub fn extranonce_subscribed(&self) -> bool {
        self.extranonce_subscribed
    }

    /// The difficulty the next job will carry.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Shares accepted and rejected so far.
    pub fn share_counts(&self) -> (u64, u64) {
        (self.accepted, self.rejected)
    }

    /// Sets the difficulty for the jobs sent from now on (a value that is not a positive
    /// number is ignored).
    pub fn set_difficulty(&mut self, difficulty: f64) {
        if let Some(d) = positive_number(&Value::from(difficulty)) {
            self.difficulty = d;
        }
    }

    /// The instant by which [`handle_timeout`](EthPoolSession::handle_timeout) must be called
    /// next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        Some(self.liveness.deadline(self.is_subscribed()))
    }

    /// Checks the timeouts at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if let Some(reason) = self.liveness.expired(now, self.is_subscribed()) {
            self.close(reason);
        }
    }

    /// Ends the session.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(EthPoolEvent::Closed(reason));
            self.extranonce = None;
        }
    }

    fn reply(&mut self, id: Option<RequestId>, result: Result<Value, StratumError>) {
        if id.is_none() {
            return;
        }
        let response = match result {
            Ok(v) => Response::ok(id, v),
            // NiceHash answers `false` with the error.
            Err(e) => Response {
                id,
                result: Value::Bool(false),
                error: Some(e),
            },
        };
        self.output.push_back(response.to_line());
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
        let parsed = (line.len() <= LineBuffer::DEFAULT_MAX_LINE)
            .then(|| Message::parse(line).ok())
            .flatten();
        let request = match parsed {
            Some(Message::Request(r)) => r,
            Some(Message::Response(_)) => return,
            None if !self.is_subscribed() => {
                self.close(CloseReason::NotStratum);
                return;
            }
            None => {
                self.penalize(5);
                return;
            }
        };
        let id = request.id.clone();
        match EthClientRequest::from_request(&request) {
            Ok(msg) => self.dispatch(id, msg),
            Err(e) => {
                self.reply(id, Err(StratumError::new(ErrorCode::Other, e.to_string())));
                self.penalize(5);
            }
        }
    }

    fn dispatch(&mut self, id: Option<RequestId>, msg: EthClientRequest) {
        match msg {
            EthClientRequest::Subscribe(_) => {
                if self.extranonce.is_none() {
                    // NiceHash's params[1] is the protocol, not a session id: no resume.
                    match self.allocator.allocate(None) {
                        Some(e) => self.extranonce = Some(e),
                        None => {
                            self.reply(
                                id,
                                Err(StratumError::new(ErrorCode::Other, "pool is full")),
                            );
                            self.close(CloseReason::PoolFull);
                            return;
                        }
                    }
                }
                let extranonce = self.extranonce().map(<[u8]>::to_vec).unwrap_or_default();
                let result = EthSubscribeResult {
                    session_id: Some(encode_hex(&extranonce)),
                    protocol: Some(ETH_STRATUM_PROTOCOL.to_owned()),
                    extranonce,
                };
                self.reply(id, Ok(result.to_json()));
            }
            EthClientRequest::Authorize(a) => {
                let token = self.token();
                self.pending_authorize
                    .insert(token, (id, a.username.clone()));
                self.events.push_back(EthPoolEvent::Authorize {
                    token: EthAuthorizeToken(token),
                    username: a.username,
                    password: a.password,
                });
            }
            EthClientRequest::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                self.reply(id, Ok(Value::Bool(true)));
            }
            EthClientRequest::Submit(s) => self.submit(id, s),
            EthClientRequest::Unknown { method, .. } => {
                let message = format!("unsupported method {}", cut(&method));
                self.reply(id, Err(StratumError::new(ErrorCode::Other, message)));
            }
        }
    }

    /// Announces a job: `mining.set_difficulty` first when the difficulty changed (it applies
    /// from this job on), then `mining.notify`. A clean job voids every earlier one.
    pub fn send_job(&mut self, job: &EthNotify) {
        if self.closed.is_some() || !self.is_subscribed() {
            return;
        }
        if self.announced_difficulty != Some(self.difficulty) {
            let line = EthServerRequest::SetDifficulty(self.difficulty)
                .to_request(None)
                .to_line();
            self.output.push_back(line);
            self.announced_difficulty = Some(self.difficulty);
        }
        if job.clean {
            self.jobs.clear();
            self.seen.clear();
            self.seen_order.clear();
        }
        self.jobs.retain(|j| j.job_id != job.job_id);
        self.jobs.push_back(EthActiveJob {
            job_id: job.job_id.clone(),
            seed_hash: job.seed_hash,
            header_hash: job.header_hash,
            difficulty: self.difficulty,
        });
        while self.jobs.len() > self.config.max_jobs.max(1) {
            self.jobs.pop_front();
        }
        let line = EthServerRequest::Notify(job.clone())
            .to_request(None)
            .to_line();
        self.output.push_back(line);
    }

    fn submit(&mut self, id: Option<RequestId>, s: EthSubmit) {
        let reject = |this: &mut Self,
                      id: Option<RequestId>,
                      code: ErrorCode,
                      message: &str,
                      points: i32| {
            this.rejected += 1;
            this.reply(id, Err(StratumError::new(code, message)));
            this.penalize(points);
        };
        let Some(extranonce) = self.extranonce().map(<[u8]>::to_vec) else {
            return reject(self, id, ErrorCode::NotSubscribed, "not subscribed", 5);
        };
        if !self.authorized.contains(&s.worker) {
            return reject(self, id, ErrorCode::Unauthorized, "unauthorized worker", 5);
        }
        let Some(job) = self.jobs.iter().find(|j| j.job_id == s.job_id).cloned() else {
            return reject(self, id, ErrorCode::JobNotFound, "job not found", 1);
        };
        let Some(nonce) = s.full_nonce(&extranonce) else {
            let message = format!(
                "nonce of {} bytes does not complete extranonce {}",
                s.nonce.len(),
                encode_hex(&extranonce)
            );
            return reject(self, id, ErrorCode::Other, &message, 5);
        };
        let key = (s.job_id.clone(), nonce);
        if self.seen.contains(&key) {
            return reject(self, id, ErrorCode::Duplicate, "duplicate share", 5);
        }
        self.seen.insert(key.clone());
        self.seen_order.push_back(key);
        while self.seen_order.len() > self.config.max_seen_shares.max(1) {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        let token = self.token();
        self.pending_shares.insert(token, id);
        self.events
            .push_back(EthPoolEvent::Share(EthShareSubmission {
                token: EthShareToken(token),
                worker: s.worker,
                job_id: s.job_id,
                nonce,
                seed_hash: job.seed_hash,
                header_hash: job.header_hash,
                mix_hash: s.mix_hash,
                difficulty: job.difficulty,
                target: eth_share_target(job.difficulty),
            }));
    }

    /// Answers an authorization: `Ok` authorizes the worker, `Err` refuses it with the reason.
    pub fn authorize_result(&mut self, token: EthAuthorizeToken, result: Result<(), String>) {
        let Some((id, username)) = self.pending_authorize.remove(&token.0) else {
            return;
        };
        match result {
            Ok(()) => {
                self.authorized.insert(username);
                self.reply(id, Ok(Value::Bool(true)));
            }
            Err(reason) => {
                self.reply(id, Err(StratumError::new(ErrorCode::Unauthorized, reason)));
                self.penalize(5);
            }
        }
    }

    /// Answers a share. Call it only once the share is durably recorded when accepting.
    pub fn share_result(&mut self, token: EthShareToken, verdict: ShareVerdict) {
        let Some(id) = self.pending_shares.remove(&token.0) else {
            return;
        };
        let (error, points) = match verdict {
            ShareVerdict::Accepted => {
                self.accepted += 1;
                self.ban_score = (self.ban_score + 1).min(10);
                self.reply(id, Ok(Value::Bool(true)));
                return;
            }
            ShareVerdict::LowDifficulty => (
                StratumError::new(ErrorCode::LowDifficulty, "low difficulty share"),
                5,
            ),
            ShareVerdict::Stale => (StratumError::new(ErrorCode::JobNotFound, "stale share"), 1),
            ShareVerdict::Invalid(reason) => (StratumError::new(ErrorCode::Other, reason), 5),
        };
        self.rejected += 1;
        self.reply(id, Err(error));
        self.penalize(points);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otedama_core::BITCOIN_DIFF1_TARGET;
    use proptest::prelude::*;

    fn parse_request(line: &str) -> Request {
        match Message::parse(line.trim_end().as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn json_of(line: &str) -> Value {
        serde_json::from_str(line.trim_end()).expect("json")
    }

    const SEED: &str = "a9b4d4f2e7f5c7ac1a5d5b3e8d1ef0c0ce6e0b3e8d1a4c5f3b2e1d0c9b8a7f60";
    const HEADER: &str = "0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcd";

    #[test]
    fn nicehash_specification_examples() {
        // Subscribe and its result.
        let req = parse_request(
            r#"{"id": 1, "method": "mining.subscribe", "params": ["MinerName/1.0.0", "EthereumStratum/1.0.0"]}"#,
        );
        assert_eq!(
            EthClientRequest::from_request(&req),
            Ok(EthClientRequest::Subscribe(EthSubscribe {
                agent: Some("MinerName/1.0.0".into()),
                protocol: Some(ETH_STRATUM_PROTOCOL.into()),
            }))
        );
        let result = EthSubscribeResult::from_json(&json!([
            [
                "mining.notify",
                "ae6812eb4cd7735a302a8a9dd95cf71f",
                "EthereumStratum/1.0.0"
            ],
            "080c"
        ]))
        .expect("result");
        assert_eq!(result.extranonce, vec![0x08, 0x0c]);
        assert_eq!(
            result.session_id.as_deref(),
            Some("ae6812eb4cd7735a302a8a9dd95cf71f")
        );
        // kawpowminer's form.
        let kaw = EthSubscribeResult::from_json(&json!([null, "a1"])).expect("kawpow");
        assert_eq!((kaw.session_id, kaw.extranonce), (None, vec![0xa1]));
        assert!(EthSubscribeResult::from_json(&json!([null, "0102030405060708"])).is_err());

        // Notify, difficulty, extranonce.
        let notify = parse_request(&format!(
            r#"{{"id": null, "method": "mining.notify", "params": ["bf0488aa", "{SEED}", "{HEADER}", true]}}"#
        ));
        let Ok(EthServerRequest::Notify(n)) = EthServerRequest::from_request(&notify) else {
            panic!("notify")
        };
        assert_eq!((n.job_id.as_str(), n.clean), ("bf0488aa", true));
        assert_eq!(encode_hex(&n.seed_hash), SEED);
        let d =
            parse_request(r#"{"id": null, "method": "mining.set_difficulty", "params": [0.5]}"#);
        assert_eq!(
            EthServerRequest::from_request(&d),
            Ok(EthServerRequest::SetDifficulty(0.5))
        );
        // diff 1 is Bitcoin's diff-1 boundary; diff 0.5 doubles it.
        assert_eq!(eth_share_target(1.0), BITCOIN_DIFF1_TARGET);
        assert_eq!(
            eth_share_target(0.5).to_string(),
            "00000001fffe0000000000000000000000000000000000000000000000000000"
        );
        let x =
            parse_request(r#"{"id": null, "method": "mining.set_extranonce", "params": ["af4c"]}"#);
        assert_eq!(
            EthServerRequest::from_request(&x),
            Ok(EthServerRequest::SetExtranonce(vec![0xaf, 0x4c]))
        );

        // Submit: extranonce af4c + miner nonce 6 bytes.
        let s = parse_request(
            r#"{"id": 244, "method": "mining.submit", "params": ["username", "bf0488aa", "6a909d9bbc0f"]}"#,
        );
        let Ok(EthClientRequest::Submit(submit)) = EthClientRequest::from_request(&s) else {
            panic!("submit")
        };
        assert_eq!(
            submit.full_nonce(&[0xaf, 0x4c]),
            Some(0xaf4c_6a90_9d9b_bc0f)
        );
        assert_eq!(submit.full_nonce(&[0xaf]), None);
    }

    #[test]
    fn kawpowminer_messages() {
        let notify = parse_request(&format!(
            r#"{{"id":null,"method":"mining.notify","params":["1a","0x{HEADER}","{SEED}","00000000ffff",false,1234567,"1b00f2e3"]}}"#
        ));
        let Ok(EthServerRequest::KawpowNotify(n)) = EthServerRequest::from_request(&notify) else {
            panic!("kawpow notify")
        };
        assert_eq!(encode_hex(&n.header_hash), HEADER);
        assert_eq!(n.height, 1_234_567);
        assert_eq!(n.nbits, Some(0x1b00_f2e3));
        // "00000000ffff" is a number: left-padded, not right-padded.
        assert_eq!(
            n.share_target,
            Target::from_be_bytes({
                let mut b = [0u8; 32];
                b[30] = 0xff;
                b[31] = 0xff;
                b
            })
        );
        let t = parse_request(&format!(
            r#"{{"id":null,"method":"mining.set_target","params":["{}"]}}"#,
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        ));
        assert_eq!(
            EthServerRequest::from_request(&t),
            Ok(EthServerRequest::SetTarget(BITCOIN_DIFF1_TARGET))
        );
        let s = parse_request(&format!(
            r#"{{"id":40,"jsonrpc":"2.0","method":"mining.submit","params":["w","1a","0xa1b2c3d4e5f60718","0x{HEADER}","0x{SEED}"]}}"#
        ));
        let Ok(EthClientRequest::Submit(submit)) = EthClientRequest::from_request(&s) else {
            panic!("submit")
        };
        assert_eq!(submit.full_nonce(&[0xa1]), Some(0xa1b2_c3d4_e5f6_0718));
        assert_eq!(submit.full_nonce(&[0xa2]), None, "prefix mismatch");
        assert_eq!(submit.full_nonce(&[]), Some(0xa1b2_c3d4_e5f6_0718));
        assert!(submit.mix_hash.is_some());
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        let cases = [
            r#"{"id":1,"method":"mining.notify","params":[1,2,3,4]}"#,
            r#"{"id":1,"method":"mining.notify","params":"x"}"#,
            r#"{"id":1,"method":"mining.notify","params":["j","00","11",true]}"#,
            r#"{"id":1,"method":"mining.notify","params":["j",null,null,null,null,null,null]}"#,
            r#"{"id":1,"method":"mining.set_difficulty","params":[-2]}"#,
            r#"{"id":1,"method":"mining.set_difficulty","params":[]}"#,
            r#"{"id":1,"method":"mining.set_target","params":[""]}"#,
            r#"{"id":1,"method":"mining.set_target","params":["zz"]}"#,
            r#"{"id":1,"method":"mining.set_extranonce","params":["0102030405060708"]}"#,
            r#"{"id":1,"method":"mining.set_extranonce","params":[7]}"#,
        ];
        for line in cases {
            assert!(
                EthServerRequest::from_request(&parse_request(line)).is_err(),
                "{line}"
            );
        }
        let client = [
            r#"{"id":1,"method":"mining.submit","params":["w","j",""]}"#,
            r#"{"id":1,"method":"mining.submit","params":["w","j","010203040506070809"]}"#,
            r#"{"id":1,"method":"mining.submit","params":["w","j",12]}"#,
            r#"{"id":1,"method":"mining.submit","params":["w","j","0x12","0x00"]}"#,
            r#"{"id":1,"method":"mining.submit","params":{"w":1}}"#,
            r#"{"id":1,"method":"mining.authorize","params":[null]}"#,
        ];
        for line in client {
            assert!(
                EthClientRequest::from_request(&parse_request(line)).is_err(),
                "{line}"
            );
        }
    }

    fn pool() -> EthPoolSession {
        let allocator = ExtranonceAllocator::new(&[0xaf], 1).expect("allocator");
        let now = Instant::now();
        let mut s = EthPoolSession::new(Arc::new(EthPoolConfig::default()), allocator, now)
            .expect("session");
        s.handle_line(
            br#"{"id": 1, "method": "mining.subscribe", "params": ["Miner/1.0", "EthereumStratum/1.0.0"]}"#,
            now,
        );
        s.handle_line(
            br#"{"id": 2, "method": "mining.authorize", "params": ["wallet.rig", "x"]}"#,
            now,
        );
        let Some(EthPoolEvent::Authorize { token, .. }) = s.poll_event() else {
            panic!("authorize")
        };
        s.authorize_result(token, Ok(()));
        s
    }

    fn job(id: &str, clean: bool) -> EthNotify {
        EthNotify {
            job_id: id.into(),
            seed_hash: [1; 32],
            header_hash: [2; 32],
            clean,
        }
    }

    #[test]
    fn pool_session_flow() {
        let now = Instant::now();
        let mut s = pool();
        let sub = json_of(&s.poll_output().expect("subscribe"));
        assert_eq!(
            sub["result"],
            json!([["mining.notify", "af00", "EthereumStratum/1.0.0"], "af00"])
        );
        assert_eq!(json_of(&s.poll_output().expect("auth"))["result"], true);
        s.set_difficulty(0.5);
        s.send_job(&job("j1", true));
        let d = json_of(&s.poll_output().expect("difficulty"));
        assert_eq!(d["method"], "mining.set_difficulty");
        assert_eq!(d["params"], json!([0.5]));
        let n = json_of(&s.poll_output().expect("notify"));
        assert_eq!(n["params"][0], "j1");
        assert_eq!(n["params"][3], true);

        let submit = |nonce: &str| {
            format!(
                r#"{{"id": 5, "method": "mining.submit", "params": ["wallet.rig", "j1", "{nonce}"]}}"#
            )
        };
        s.handle_line(submit("0102030405aa").as_bytes(), now);
        let Some(EthPoolEvent::Share(share)) = s.poll_event() else {
            panic!("share")
        };
        assert_eq!(share.nonce, 0xaf00_0102_0304_05aa);
        assert_eq!(share.difficulty, 0.5);
        assert_eq!(share.target, eth_share_target(0.5));
        s.share_result(share.token, ShareVerdict::Accepted);
        assert_eq!(
            json_of(&s.poll_output().expect("ok")),
            json!({"id": 5, "result": true, "error": null})
        );
        // Case-flipped hex is the same nonce.
        s.handle_line(submit("0102030405AA").as_bytes(), now);
        let dup = json_of(&s.poll_output().expect("dup"));
        assert_eq!(dup["result"], false);
        assert_eq!(dup["error"][0], 22);
        // Wrong nonce size, unknown job, unknown worker, unknown method, null id.
        s.handle_line(submit("01020304").as_bytes(), now);
        assert_eq!(json_of(&s.poll_output().expect("size"))["error"][0], 20);
        s.handle_line(
            br#"{"id": 6, "method": "mining.submit", "params": ["wallet.rig", "nope", "0102030405aa"]}"#,
            now,
        );
        assert_eq!(json_of(&s.poll_output().expect("job"))["error"][0], 21);
        s.handle_line(
            br#"{"id": 7, "method": "mining.submit", "params": ["other", "j1", "0102030405ab"]}"#,
            now,
        );
        assert_eq!(json_of(&s.poll_output().expect("worker"))["error"][0], 24);
        s.handle_line(
            br#"{"id": 8, "method": "eth_submitHashrate", "params": ["0x1", "0x2"]}"#,
            now,
        );
        assert_eq!(json_of(&s.poll_output().expect("unknown"))["error"][0], 20);
        s.handle_line(
            br#"{"id": null, "method": "mining.extranonce.subscribe", "params": []}"#,
            now,
        );
        assert_eq!(s.poll_output(), None);
        assert!(s.extranonce_subscribed());
        assert!(!s.is_closed());
        // A clean job voids j1.
        s.send_job(&job("j2", true));
        assert_eq!(
            json_of(&s.poll_output().expect("notify"))["params"][0],
            "j2"
        );
        s.handle_line(submit("0102030405ac").as_bytes(), now);
        assert_eq!(json_of(&s.poll_output().expect("stale"))["error"][0], 21);
        assert_eq!(s.share_counts(), (1, 5));
    }

    #[test]
    fn pool_session_limits() {
        let allocator = ExtranonceAllocator::new(&[1, 2], 2).expect("allocator");
        assert_eq!(
            EthPoolSession::new(
                Arc::new(EthPoolConfig::default()),
                allocator,
                Instant::now()
            )
            .err(),
            Some(EthConfigError::ExtranonceTooLong { len: 4 })
        );
        let t0 = Instant::now();
        let allocator = ExtranonceAllocator::new(&[], 1).expect("allocator");
        let mut s = EthPoolSession::new(Arc::new(EthPoolConfig::default()), allocator, t0)
            .expect("session");
        s.handle_line(b"GET / HTTP/1.1", t0);
        assert_eq!(
            s.poll_event(),
            Some(EthPoolEvent::Closed(CloseReason::NotStratum))
        );
        let mut s = pool();
        s.handle_timeout(Instant::now() + Duration::from_secs(601));
        assert_eq!(
            s.poll_event(),
            Some(EthPoolEvent::Closed(CloseReason::Idle))
        );
    }

    fn hash() -> impl Strategy<Value = [u8; 32]> {
        any::<[u8; 32]>()
    }

    fn reparse_server(req: &EthServerRequest) -> Result<EthServerRequest, ParamsError> {
        EthServerRequest::from_request(&parse_request(&req.to_request(None).to_line()))
    }

    fn reparse_client(req: &EthClientRequest) -> Result<EthClientRequest, ParamsError> {
        EthClientRequest::from_request(&parse_request(
            &req.to_request(Some(RequestId::number(1))).to_line(),
        ))
    }

    proptest! {
        #[test]
        fn server_messages_round_trip(
            job_id in "[0-9a-f]{1,16}",
            seed in hash(),
            header in hash(),
            target in hash(),
            clean in any::<bool>(),
            height in any::<u64>(),
            nbits in proptest::option::of(any::<u32>()),
            d in 1e-9f64..1e12,
            extranonce in proptest::collection::vec(any::<u8>(), 0..=7),
        ) {
            let messages = [
                EthServerRequest::Notify(EthNotify { job_id: job_id.clone(), seed_hash: seed, header_hash: header, clean }),
                EthServerRequest::KawpowNotify(KawpowNotify {
                    job_id, header_hash: header, seed_hash: seed,
                    share_target: Target::from_be_bytes(target), clean, height, nbits,
                }),
                EthServerRequest::SetDifficulty(d),
                EthServerRequest::SetTarget(Target::from_be_bytes(target)),
                EthServerRequest::SetExtranonce(extranonce),
            ];
            for m in messages {
                prop_assert_eq!(reparse_server(&m), Ok(m));
            }
        }

        #[test]
        fn client_messages_round_trip(
            agent in proptest::option::of("[ -~]{0,20}"),
            protocol in proptest::option::of("[ -~]{0,20}"),
            worker in "[ -~]{0,20}",
            password in proptest::option::of("[ -~]{0,20}"),
            job_id in "[0-9a-z]{1,16}",
            nonce in proptest::collection::vec(any::<u8>(), 1..=8),
            header in proptest::option::of(hash()),
            mix in proptest::option::of(hash()),
        ) {
            let messages = [
                EthClientRequest::Subscribe(EthSubscribe { agent, protocol }),
                EthClientRequest::Authorize(Authorize { username: worker.clone(), password: Some(password.unwrap_or_default()) }),
                EthClientRequest::ExtranonceSubscribe,
                EthClientRequest::Submit(EthSubmit { worker, job_id, nonce, header_hash: header, mix_hash: mix }),
            ];
            for m in messages {
                prop_assert_eq!(reparse_client(&m), Ok(m));
            }
        }

        #[test]
        fn subscribe_results_round_trip(
            sid in proptest::option::of("[0-9a-f]{1,32}"),
            protocol in proptest::option::of("[ -~]{1,24}"),
            extranonce in proptest::collection::vec(any::<u8>(), 0..=7),
        ) {
            let protocol = sid.as_ref().and(protocol);
            let r = EthSubscribeResult { session_id: sid, protocol, extranonce };
            prop_assert_eq!(EthSubscribeResult::from_json(&r.to_json()), Ok(r));
        }

        #[test]
        fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200), text in "[ -~]{0,200}") {
            let now = Instant::now();
            let mut s = pool();
            s.send_job(&job("j1", true));
            s.handle_line(&line, now);
            s.handle_line(text.as_bytes(), now);
            if let Ok(Message::Request(r)) = Message::parse(text.as_bytes()) {
                let _ = EthServerRequest::from_request(&r);
                let _ = EthClientRequest::from_request(&r);
            }
        }
    }
}
