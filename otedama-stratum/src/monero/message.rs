//! The Monero dialect's messages: typed requests, responses and jobs, and their lines.

use otedama_core::{decode_hex, encode_hex, MoneroTarget};
use serde_json::{json, Map, Value};

use crate::v1::message::{Message, ParamsError, ParseError, Request, RequestId};
use crate::v1::miner::MAX_JOB_ID;

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
pub(crate) fn cut(text: &str) -> String {
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
                // The v1 parser folds a missing code into 20; read the error as sent. Only the
                // error is read into values: an id the peer chose (echoed as it came, a number
                // too large for a float among them) is skipped, not converted.
                #[derive(serde::Deserialize)]
                struct ErrorField<'a> {
                    #[serde(borrow, default)]
                    error: Option<&'a serde_json::value::RawValue>,
                }
                let raw: ErrorField<'_> =
                    serde_json::from_slice(line).map_err(|e| ParseError::NotJson(e.to_string()))?;
                let error = raw
                    .error
                    .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
                    .as_ref()
                    .and_then(MoneroError::from_json);
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
