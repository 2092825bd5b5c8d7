//! Stratum v1 messages: the JSON-RPC envelope and a typed form of every method.

use std::fmt;

use otedama_core::{decode_hex, encode_hex, prevhash_from_stratum, prevhash_to_stratum};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::error::StratumError;

/// A JSON-RPC request id, kept as the exact JSON text the peer sent, so that a reply echoes
/// it unchanged whatever its type (cpuminer sends numbers, bfgminer strings such as
/// `"auth"`, some clients objects).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Box<str>);

impl RequestId {
    /// A numeric id.
    pub fn number(n: u64) -> Self {
        RequestId(n.to_string().into_boxed_str())
    }

    /// A string id.
    pub fn string(s: &str) -> Self {
        RequestId(Value::String(s.to_owned()).to_string().into_boxed_str())
    }

    /// The id as JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The id as a number, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    fn from_raw(raw: &RawValue) -> Option<Self> {
        let text = raw.get().trim();
        (text != "null").then(|| RequestId(text.into()))
    }
}

/// The JSON text of an optional id: `null` when absent.
fn id_json(id: Option<&RequestId>) -> &str {
    id.map_or("null", RequestId::as_json)
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A line that is not a Stratum message at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not UTF-8 (binary garbage, a TLS ClientHello).
    #[error("line is not utf-8")]
    NotUtf8,
    /// Not JSON, or JSON that is not an object.
    #[error("line is not a json object: {0}")]
    NotJson(String),
    /// A JSON object with neither a method nor a result.
    #[error("json object has neither a method nor a result")]
    NeitherRequestNorResponse,
}

/// Parameters that do not fit the method; the request can be answered with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad params for {method}: {reason}")]
pub struct ParamsError {
    /// The method.
    pub method: String,
    /// What is wrong.
    pub reason: String,
}

fn bad(method: &str, reason: impl Into<String>) -> ParamsError {
    ParamsError {
        method: method.to_owned(),
        reason: reason.into(),
    }
}

/// A request or notification (`id` absent or null).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id; `None` for a notification.
    pub id: Option<RequestId>,
    /// The method name.
    pub method: String,
    /// The params as sent (usually an array; an object for the Monero dialect).
    pub params: Value,
}

/// A response to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request answered.
    pub id: Option<RequestId>,
    /// The result (`null` on error).
    pub result: Value,
    /// The error, in whichever of the three shapes it came.
    pub error: Option<StratumError>,
}

/// One Stratum line.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request or notification.
    Request(Request),
    /// A response.
    Response(Response),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
    // `Some` whenever the key is present, `null` included: `{"id":1,"result":null,"error":null}`
    // is a response.
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default, rename = "reject-reason")]
    reject_reason: Option<String>,
}

/// The object key serde_json's `raw_value` feature reserves for itself.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Refuses values holding serde_json's private raw-value key. When that key comes first in an
/// object, serde_json reads the object as embedded JSON text; anywhere else it is an ordinary
/// key, but one that sorts first when the value is written out again, so the line we would
/// write could not be read back (found by the `stratum_v1_message` fuzz target).
fn reject_raw_value_key(value: &Value) -> Result<(), ParseError> {
    let found = match value {
        Value::Object(map) => {
            map.contains_key(RAW_VALUE_TOKEN)
                || map.values().any(|v| reject_raw_value_key(v).is_err())
        }
        Value::Array(items) => items.iter().any(|v| reject_raw_value_key(v).is_err()),
        _ => false,
    };
    if found {
        return Err(ParseError::NotJson(format!(
            "reserved key {RAW_VALUE_TOKEN:?}"
        )));
    }
    Ok(())
}

/// Deserializes a field that is present, even as `null`, to `Some`.
fn present<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

impl Message {
    /// Parses one line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Message, ParseError> {
        let text = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
        // serde would also read a struct from an array (`[1, "mining.subscribe", []]`).
        if !text.trim_start().starts_with('{') {
            return Err(ParseError::NotJson("not an object".into()));
        }
        let env: Envelope<'_> =
            serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
        let id = env.id.and_then(RequestId::from_raw);
        if let Some(method) = env.method {
            let params = env.params.unwrap_or(Value::Null);
            reject_raw_value_key(&params)?;
            return Ok(Message::Request(Request { id, method, params }));
        }
        if env.result.is_none() && env.error.is_none() {
            return Err(ParseError::NeitherRequestNorResponse);
        }
        let result = env
            .result
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null);
        reject_raw_value_key(&result)?;
        let mut error = env.error.as_ref().and_then(StratumError::from_json);
        if error.is_none() && result == Value::Bool(false) {
            if let Some(reason) = env.reject_reason {
                error = StratumError::from_json(&Value::String(reason));
            }
        }
        Ok(Message::Response(Response { id, result, error }))
    }
}

impl Request {
    /// The line for this request, with its newline. The id is written exactly as it was
    /// received.
    pub fn to_line(&self) -> String {
        let method = Value::from(self.method.as_str()).to_string();
        format!(
            "{{\"id\":{},\"method\":{method},\"params\":{}}}\n",
            id_json(self.id.as_ref()),
            self.params
        )
    }
}

impl Response {
    /// A successful response.
    pub fn ok(id: Option<RequestId>, result: Value) -> Self {
        Response {
            id,
            result,
            error: None,
        }
    }

    /// An error response.
    pub fn err(id: Option<RequestId>, error: StratumError) -> Self {
        Response {
            id,
            result: Value::Null,
            error: Some(error),
        }
    }

    /// The line for this response, with its newline; the error in the `[code, message, null]`
    /// form.
    ///
    /// The id is written byte for byte as the request carried it (`1.50`, `1e2` or
    /// `{"b": 1, "a": 2}` come back unchanged), so any client finds its own id again.
    pub fn to_line(&self) -> String {
        let error = self
            .error
            .as_ref()
            .map_or(Value::Null, StratumError::to_json);
        format!(
            "{{\"error\":{error},\"id\":{},\"result\":{}}}\n",
            id_json(self.id.as_ref()),
            self.result
        )
    }
}

fn params_array<'a>(method: &str, params: &'a Value) -> Result<&'a [Value], ParamsError> {
    match params {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(bad(method, "params is not an array")),
    }
}

fn string_at(
    method: &str,
    items: &[Value],
    index: usize,
    what: &str,
) -> Result<String, ParamsError> {
    match items.get(index) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(method, format!("{what} is not a string"))),
        None => Err(bad(method, format!("{what} is missing"))),
    }
}

fn opt_string_at(items: &[Value], index: usize) -> Option<String> {
    items.get(index).and_then(Value::as_str).map(str::to_owned)
}

/// Parses exactly eight hex digits (either case) as a big-endian u32, Stratum's form for
/// version, nbits, ntime and nonce.
pub fn parse_hex_u32(text: &str) -> Option<u32> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// Formats a u32 as Stratum sends it: eight lowercase hex digits, big-endian.
pub fn format_hex_u32(v: u32) -> String {
    format!("{v:08x}")
}

fn hex_u32_at(method: &str, items: &[Value], index: usize, what: &str) -> Result<u32, ParamsError> {
    let text = string_at(method, items, index, what)?;
    parse_hex_u32(&text).ok_or_else(|| bad(method, format!("{what} is not 8 hex digits: {text:?}")))
}

fn hex_bytes_at(
    method: &str,
    items: &[Value],
    index: usize,
    what: &str,
) -> Result<Vec<u8>, ParamsError> {
    let text = string_at(method, items, index, what)?;
    decode_hex(&text).map_err(|e| bad(method, format!("{what}: {e}")))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        // Some clients quote numbers.
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|d: &f64| d.is_finite())
}

/// A difficulty as JSON: integral values without a fraction, as most pools send them.
pub fn difficulty_json(d: f64) -> Value {
    if d.fract() == 0.0 && d.abs() < 9.0e15 {
        json!(d as i64)
    } else {
        json!(d)
    }
}

/// `mining.subscribe` params; every element is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    /// The miner's name and version.
    pub user_agent: Option<String>,
    /// A session id to resume, when `params[1]` is a string (NiceHash puts other things there).
    pub session_id: Option<String>,
    /// The host the miner connected to.
    pub host: Option<String>,
    /// The port the miner connected to.
    pub port: Option<u16>,
}

/// `mining.authorize` params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorize {
    /// `address` or `address.worker`.
    pub username: String,
    /// The password; some miners omit it.
    pub password: Option<String>,
}

/// `mining.submit` params, with the hex fields decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The worker name as sent.
    pub worker: String,
    /// The job id.
    pub job_id: String,
    /// The extranonce2 bytes.
    pub extranonce2: Vec<u8>,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// BIP310 rolled version bits, when sent.
    pub version_bits: Option<u32>,
}

/// What `mining.configure` asks for `version-rolling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRollingRequest {
    /// The bits the miner wants to roll (default all).
    pub mask: u32,
    /// The fewest bits the miner can work with (default 0).
    pub min_bit_count: u32,
}

/// `mining.configure` (BIP310) params.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Configure {
    /// The extension names in the order sent.
    pub extensions: Vec<String>,
    /// `version-rolling` parameters, when that extension is asked for.
    pub version_rolling: Option<VersionRollingRequest>,
    /// `minimum-difficulty.value`, when that extension is asked for.
    pub minimum_difficulty: Option<f64>,
    /// Whether `subscribe-extranonce` is asked for.
    pub subscribe_extranonce: bool,
    /// The `info.*` strings.
    pub info: Vec<(String, String)>,
}

/// What a miner sends a pool.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientRequest {
    /// `mining.subscribe`.
    Subscribe(Subscribe),
    /// `mining.authorize`.
    Authorize(Authorize),
    /// `mining.submit`.
    Submit(Submit),
    /// `mining.configure`.
    Configure(Configure),
    /// `mining.extranonce.subscribe`.
    ExtranonceSubscribe,
    /// `mining.suggest_difficulty`.
    SuggestDifficulty(f64),
    /// `mining.suggest_target`, the target as a big-endian 256-bit number.
    SuggestTarget([u8; 32]),
    /// Any other method (`mining.multi_version`, `mining.capabilities`, ...): tolerated.
    Unknown {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
}

impl ClientRequest {
    /// Reads a request's method and params.
    pub fn from_request(req: &Request) -> Result<Self, ParamsError> {
        let m = req.method.as_str();
        let p = &req.params;
        Ok(match m {
            "mining.subscribe" => {
                let items = params_array(m, p)?;
                let port = items.get(3).and_then(|v| match v {
                    Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                });
                ClientRequest::Subscribe(Subscribe {
                    user_agent: opt_string_at(items, 0),
                    session_id: opt_string_at(items, 1),
                    host: opt_string_at(items, 2),
                    port,
                })
            }
            "mining.authorize" => {
                let items = params_array(m, p)?;
                ClientRequest::Authorize(Authorize {
                    username: string_at(m, items, 0, "username")?,
                    password: opt_string_at(items, 1),
                })
            }
            "mining.submit" => {
                let items = params_array(m, p)?;
                let version_bits = match items.get(5) {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(hex_u32_at(m, items, 5, "version bits")?),
                };
                ClientRequest::Submit(Submit {
                    worker: string_at(m, items, 0, "worker")?,
                    job_id: string_at(m, items, 1, "job id")?,
                    extranonce2: hex_bytes_at(m, items, 2, "extranonce2")?,
                    ntime: hex_u32_at(m, items, 3, "ntime")?,
                    nonce: hex_u32_at(m, items, 4, "nonce")?,
                    version_bits,
                })
            }
            "mining.configure" => ClientRequest::Configure(parse_configure(m, p)?),
            "mining.extranonce.subscribe" => ClientRequest::ExtranonceSubscribe,
            "mining.suggest_difficulty" => {
                let items = params_array(m, p)?;
                let d = items
                    .first()
                    .and_then(number)
                    .filter(|d| *d > 0.0)
                    .ok_or_else(|| bad(m, "difficulty is not a positive number"))?;
                ClientRequest::SuggestDifficulty(d)
            }
            "mining.suggest_target" => {
                let items = params_array(m, p)?;
                let text = string_at(m, items, 0, "target")?;
                let bytes = decode_hex(&text).map_err(|e| bad(m, format!("target: {e}")))?;
                if bytes.len() > 32 {
                    return Err(bad(m, "target is longer than 32 bytes"));
                }
                // A short target is a number: pad on the left.
                let mut target = [0u8; 32];
                target[32 - bytes.len()..].copy_from_slice(&bytes);
                ClientRequest::SuggestTarget(target)
            }
            _ => ClientRequest::Unknown {
                method: req.method.clone(),
                params: req.params.clone(),
            },
        })
    }

    /// The method name.
    pub fn method(&self) -> &str {
        match self {
            ClientRequest::Subscribe(_) => "mining.subscribe",
            ClientRequest::Authorize(_) => "mining.authorize",
            ClientRequest::Submit(_) => "mining.submit",
            ClientRequest::Configure(_) => "mining.configure",
            ClientRequest::ExtranonceSubscribe => "mining.extranonce.subscribe",
            ClientRequest::SuggestDifficulty(_) => "mining.suggest_difficulty",
            ClientRequest::SuggestTarget(_) => "mining.suggest_target",
            ClientRequest::Unknown { method, .. } => method,
        }
    }

    /// The request on the wire, with `id`.
    pub fn to_request(&self, id: Option<RequestId>) -> Request {
        let params = match self {
            ClientRequest::Subscribe(s) => {
                let mut items = vec![];
                let fields = [
                    s.user_agent.clone().map(Value::String),
                    s.session_id.clone().map(Value::String),
                    s.host.clone().map(Value::String),
                    s.port.map(|p| json!(p)),
                ];
                let last = fields.iter().rposition(Option::is_some);
                if let Some(last) = last {
                    for f in fields.into_iter().take(last + 1) {
                        items.push(f.unwrap_or(Value::Null));
                    }
                }
                Value::Array(items)
            }
            ClientRequest::Authorize(a) => {
                json!([a.username, a.password.clone().unwrap_or_default()])
            }
            ClientRequest::Submit(s) => {
                let mut items = vec![
                    json!(s.worker),
                    json!(s.job_id),
                    json!(encode_hex(&s.extranonce2)),
                    json!(format_hex_u32(s.ntime)),
                    json!(format_hex_u32(s.nonce)),
                ];
                if let Some(v) = s.version_bits {
                    items.push(json!(format_hex_u32(v)));
                }
                Value::Array(items)
            }
            ClientRequest::Configure(c) => {
                let mut map = Map::new();
                if let Some(vr) = c.version_rolling {
                    map.insert(
                        "version-rolling.mask".into(),
                        json!(format_hex_u32(vr.mask)),
                    );
                    map.insert(
                        "version-rolling.min-bit-count".into(),
                        json!(vr.min_bit_count),
                    );
                }
                if let Some(d) = c.minimum_difficulty {
                    map.insert("minimum-difficulty.value".into(), difficulty_json(d));
                }
                for (k, v) in &c.info {
                    map.insert(format!("info.{k}"), json!(v));
                }
                json!([c.extensions, map])
            }
            ClientRequest::ExtranonceSubscribe => json!([]),
            ClientRequest::SuggestDifficulty(d) => json!([difficulty_json(*d)]),
            ClientRequest::SuggestTarget(t) => json!([encode_hex(t)]),
            ClientRequest::Unknown { params, .. } => params.clone(),
        };
        Request {
            id,
            method: self.method().to_owned(),
            params,
        }
    }
}

fn parse_configure(m: &str, p: &Value) -> Result<Configure, ParamsError> {
    let items = params_array(m, p)?;
    let extensions: Vec<String> = match items.first() {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return Err(bad(m, "the extension list is not an array")),
    };
    let empty = Map::new();
    let params = match items.get(1) {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(bad(m, "the extension params are not an object")),
    };
    let mut out = Configure {
        extensions: extensions.clone(),
        ..Configure::default()
    };
    for ext in &extensions {
        match ext.as_str() {
            "version-rolling" => {
                let mask = match params.get("version-rolling.mask") {
                    None => u32::MAX,
                    Some(Value::String(s)) => u32::from_str_radix(s.trim_start_matches("0x"), 16)
                        .map_err(|_| {
                        bad(m, format!("version-rolling.mask is not hex: {s:?}"))
                    })?,
                    Some(_) => return Err(bad(m, "version-rolling.mask is not a string")),
                };
                // Integers as sent; a string is read as hex, as the SRI translator does; a
                // negative or absurd count is treated as no requirement.
                let min_bit_count = match params.get("version-rolling.min-bit-count") {
                    Some(Value::Number(n)) => n.as_u64().map_or(0, |n| n.min(32) as u32),
                    Some(Value::String(s)) => u32::from_str_radix(s, 16).map_or(0, |n| n.min(32)),
                    _ => 0,
                };
                out.version_rolling = Some(VersionRollingRequest {
                    mask,
                    min_bit_count,
                });
            }
            "minimum-difficulty" => {
                out.minimum_difficulty = params
                    .get("minimum-difficulty.value")
                    .and_then(number)
                    .filter(|d| *d >= 0.0);
            }
            "subscribe-extranonce" => out.subscribe_extranonce = true,
            _ => {}
        }
    }
    for (k, v) in params {
        if let (Some(name), Some(text)) = (k.strip_prefix("info."), v.as_str()) {
            out.info.push((name.to_owned(), text.to_owned()));
        }
    }
    Ok(out)
}

/// `mining.notify` params, with the prevhash in header byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The job id.
    pub job_id: String,
    /// The previous block hash in header (internal) order; on the wire it is word-swapped.
    pub prevhash: [u8; 32],
    /// Coinbase before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase after the extranonces.
    pub coinb2: Vec<u8>,
    /// The merkle branch, raw sha256d bytes.
    pub merkle_branch: Vec<[u8; 32]>,
    /// Block version.
    pub version: u32,
    /// Compact network target.
    pub nbits: u32,
    /// Header time.
    pub ntime: u32,
    /// Whether earlier jobs are void.
    pub clean_jobs: bool,
}

/// `client.reconnect` params; all optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconnect {
    /// New host; the same host when absent.
    pub host: Option<String>,
    /// New port; the same port when absent (on the wire: null, missing or 0).
    pub port: Option<u16>,
    /// Seconds to wait before reconnecting.
    pub wait_secs: Option<u64>,
}

/// What a pool sends a miner unprompted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerRequest {
    /// `mining.notify`.
    Notify(Notify),
    /// `mining.set_difficulty`.
    SetDifficulty(f64),
    /// `mining.set_extranonce`.
    SetExtranonce {
        /// The new extranonce1.
        extranonce1: Vec<u8>,
        /// The new extranonce2 size.
        extranonce2_size: usize,
    },
    /// `mining.set_version_mask`.
    SetVersionMask(u32),
    /// `client.reconnect`.
    Reconnect(Reconnect),
    /// `client.get_version`.
    GetVersion,
    /// `client.show_message`.
    ShowMessage(String),
    /// `mining.ping`.
    Ping,
    /// Any other method: tolerated.
    Unknown {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
}

impl ServerRequest {
    /// Reads a request's method and params.
    pub fn from_request(req: &Request) -> Result<Self, ParamsError> {
        let m = req.method.as_str();
        let p = &req.params;
        Ok(match m {
            "mining.notify" => {
                let items = params_array(m, p)?;
                let prev = hex_bytes_at(m, items, 1, "prevhash")?;
                let prev: [u8; 32] = prev
                    .try_into()
                    .map_err(|_| bad(m, "prevhash is not 32 bytes"))?;
                let branch = match items.get(4) {
                    Some(Value::Array(hashes)) => hashes
                        .iter()
                        .map(|h| {
                            h.as_str()
                                .and_then(|s| decode_hex(s).ok())
                                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                                .ok_or_else(|| {
                                    bad(m, "a merkle branch entry is not 32 bytes of hex")
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err(bad(m, "merkle branch is not an array")),
                };
                ServerRequest::Notify(Notify {
                    job_id: string_at(m, items, 0, "job id")?,
                    prevhash: prevhash_from_stratum(&prev),
                    coinb1: hex_bytes_at(m, items, 2, "coinb1")?,
                    coinb2: hex_bytes_at(m, items, 3, "coinb2")?,
                    merkle_branch: branch,
                    version: hex_u32_at(m, items, 5, "version")?,
                    nbits: hex_u32_at(m, items, 6, "nbits")?,
                    ntime: hex_u32_at(m, items, 7, "ntime")?,
                    clean_jobs: items.get(8).and_then(Value::as_bool).unwrap_or(false),
                })
            }
            "mining.set_difficulty" => {
                let items = params_array(m, p)?;
                let d = items
                    .first()
                    .and_then(number)
                    .filter(|d| *d > 0.0)
                    .ok_or_else(|| bad(m, "difficulty is not a positive number"))?;
                ServerRequest::SetDifficulty(d)
            }
            "mining.set_extranonce" => {
                let items = params_array(m, p)?;
                let size = items
                    .get(1)
                    .and_then(Value::as_u64)
                    .filter(|n| (1..=32).contains(n))
                    .ok_or_else(|| bad(m, "extranonce2 size is not between 1 and 32"))?;
                ServerRequest::SetExtranonce {
                    extranonce1: hex_bytes_at(m, items, 0, "extranonce1")?,
                    extranonce2_size: size as usize,
                }
            }
            "mining.set_version_mask" => {
                let items = params_array(m, p)?;
                ServerRequest::SetVersionMask(hex_u32_at(m, items, 0, "mask")?)
            }
            "client.reconnect" => {
                let items = params_array(m, p)?;
                // Port 0 means "the same port", as an absent one does.
                let port = items
                    .get(1)
                    .and_then(|v| match v {
                        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                        Value::String(s) => s.parse().ok(),
                        _ => None,
                    })
                    .filter(|p| *p != 0);
                ServerRequest::Reconnect(Reconnect {
                    host: opt_string_at(items, 0).filter(|h| !h.is_empty()),
                    port,
                    wait_secs: items.get(2).and_then(Value::as_u64),
                })
            }
            "client.get_version" => ServerRequest::GetVersion,
            "client.show_message" => {
                let items = params_array(m, p)?;
                ServerRequest::ShowMessage(opt_string_at(items, 0).unwrap_or_default())
            }
            "mining.ping" => ServerRequest::Ping,
            _ => ServerRequest::Unknown {
                method: req.method.clone(),
                params: req.params.clone(),
            },
        })
    }

    /// The method name.
    pub fn method(&self) -> &str {
        match self {
            ServerRequest::Notify(_) => "mining.notify",
            ServerRequest::SetDifficulty(_) => "mining.set_difficulty",
            ServerRequest::SetExtranonce { .. } => "mining.set_extranonce",
            ServerRequest::SetVersionMask(_) => "mining.set_version_mask",
            ServerRequest::Reconnect(_) => "client.reconnect",
            ServerRequest::GetVersion => "client.get_version",
            ServerRequest::ShowMessage(_) => "client.show_message",
            ServerRequest::Ping => "mining.ping",
            ServerRequest::Unknown { method, .. } => method,
        }
    }

    /// The request on the wire; notifications carry no id.
    pub fn to_request(&self, id: Option<RequestId>) -> Request {
        let params = match self {
            ServerRequest::Notify(n) => json!([
                n.job_id,
                encode_hex(&prevhash_to_stratum(&n.prevhash)),
                encode_hex(&n.coinb1),
                encode_hex(&n.coinb2),
                n.merkle_branch
                    .iter()
                    .map(|h| encode_hex(h))
                    .collect::<Vec<_>>(),
                format_hex_u32(n.version),
                format_hex_u32(n.nbits),
                format_hex_u32(n.ntime),
                n.clean_jobs,
            ]),
            ServerRequest::SetDifficulty(d) => json!([difficulty_json(*d)]),
            ServerRequest::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => json!([encode_hex(extranonce1), extranonce2_size]),
            ServerRequest::SetVersionMask(mask) => json!([format_hex_u32(*mask)]),
            ServerRequest::Reconnect(r) => {
                if r.host.is_none() && r.port.is_none() && r.wait_secs.is_none() {
                    json!([])
                } else {
                    // A missing port goes out as null, never as 0: cpuminer would dial port 0.
                    let mut items = vec![
                        json!(r.host.clone().unwrap_or_default()),
                        r.port.map_or(Value::Null, |p| json!(p)),
                    ];
                    if let Some(wait) = r.wait_secs {
                        items.push(json!(wait));
                    }
                    Value::Array(items)
                }
            }
            ServerRequest::GetVersion | ServerRequest::Ping => json!([]),
            ServerRequest::ShowMessage(text) => json!([text]),
            ServerRequest::Unknown { params, .. } => params.clone(),
        };
        Request {
            id,
            method: self.method().to_owned(),
            params,
        }
    }
}

/// The result of `mining.subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeResult {
    /// (method, subscription id) pairs; the id doubles as the resumable session id.
    pub subscriptions: Vec<(String, String)>,
    /// The session's extranonce1.
    pub extranonce1: Vec<u8>,
    /// How many extranonce2 bytes the miner fills in.
    pub extranonce2_size: usize,
}

impl SubscribeResult {
    /// The result as JSON.
    pub fn to_json(&self) -> Value {
        let subs: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(m, id)| json!([m, id]))
            .collect();
        json!([subs, encode_hex(&self.extranonce1), self.extranonce2_size])
    }

    /// Reads a subscribe result, including ckpool's single-pair form.
    pub fn from_json(v: &Value) -> Option<Self> {
        let items = v.as_array()?;
        let subscriptions = match items.first()? {
            Value::Array(list) if list.first().is_some_and(Value::is_string) => {
                vec![pair(list)?]
            }
            Value::Array(list) => list.iter().filter_map(|p| pair(p.as_array()?)).collect(),
            _ => Vec::new(),
        };
        let extranonce1 = decode_hex(items.get(1)?.as_str()?).ok()?;
        let size = items.get(2)?.as_u64().filter(|n| (1..=32).contains(n))?;
        Some(SubscribeResult {
            subscriptions,
            extranonce1,
            extranonce2_size: size as usize,
        })
    }

    /// The session id a later subscribe may resume with: the `mining.notify` subscription id.
    pub fn session_id(&self) -> Option<&str> {
        self.subscriptions
            .iter()
            .find(|(m, _)| m == "mining.notify")
            .map(|(_, id)| id.as_str())
    }
}

fn pair(list: &[Value]) -> Option<(String, String)> {
    Some((
        list.first()?.as_str()?.to_owned(),
        list.get(1)?.as_str()?.to_owned(),
    ))
}
