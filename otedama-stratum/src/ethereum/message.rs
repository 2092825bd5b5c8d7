//! EthereumStratum's messages: typed requests and results, and their wire forms.

use otedama_core::{decode_hex, encode_hex, Difficulty, DifficultyConvention, Target};
use serde_json::{json, Value};

use crate::v1::message::{
    difficulty_json, format_hex_u32, parse_hex_u32, Authorize, ParamsError, Request, RequestId,
};
use crate::v1::miner::MAX_JOB_ID;

/// The protocol name NiceHash miners and pools exchange.
pub const ETH_STRATUM_PROTOCOL: &str = "EthereumStratum/1.0.0";

/// The longest extranonce the NiceHash specification allows (and
/// [`EthPoolSession`](crate::EthPoolSession) hands
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
pub(crate) fn cut(text: &str) -> String {
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

/// A finite positive number, from a JSON number or a numeric string.
pub(crate) fn positive_number(v: &Value) -> Option<f64> {
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
