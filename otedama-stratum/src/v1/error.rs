//! Stratum v1 errors as they travel in responses.

use serde_json::{json, Value};

/// The error codes pools conventionally use (the slush-era numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 20: anything else.
    Other,
    /// 21: the job is unknown or stale.
    JobNotFound,
    /// 22: the share was already submitted.
    Duplicate,
    /// 23: the share misses the session's difficulty.
    LowDifficulty,
    /// 24: the worker is not authorized.
    Unauthorized,
    /// 25: the connection has not subscribed.
    NotSubscribed,
    /// Any other number a peer sent.
    Unknown(i64),
}

impl ErrorCode {
    /// The number on the wire.
    pub fn as_i64(self) -> i64 {
        match self {
            ErrorCode::Other => 20,
            ErrorCode::JobNotFound => 21,
            ErrorCode::Duplicate => 22,
            ErrorCode::LowDifficulty => 23,
            ErrorCode::Unauthorized => 24,
            ErrorCode::NotSubscribed => 25,
            ErrorCode::Unknown(n) => n,
        }
    }

    /// The code for a wire number.
    pub fn from_i64(n: i64) -> Self {
        match n {
            20 => ErrorCode::Other,
            21 => ErrorCode::JobNotFound,
            22 => ErrorCode::Duplicate,
            23 => ErrorCode::LowDifficulty,
            24 => ErrorCode::Unauthorized,
            25 => ErrorCode::NotSubscribed,
            n => ErrorCode::Unknown(n),
        }
    }
}

/// An error in a Stratum response: a code and a message.
///
/// Three shapes are seen in the wild and all parse: `[code, message, data]` (the original
/// specification and NOMP), `{"code", "message", "data"}` (JSON-RPC 2.0, Miningcore), and a
/// bare string (ckpool, with `result: false`). Otedama emits the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stratum error {}: {message}", code.as_i64())]
pub struct StratumError {
    /// The code.
    pub code: ErrorCode,
    /// The human-readable reason.
    pub message: String,
}

impl StratumError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        StratumError {
            code,
            message: message.into(),
        }
    }

    /// The conventional array form, `[code, message, null]`.
    pub fn to_json(&self) -> Value {
        json!([self.code.as_i64(), self.message, null])
    }

    /// Reads any of the three shapes; `None` for `null` or something unrecognisable.
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::Array(items) => {
                let code = items.first()?.as_i64()?;
                let message = items.get(1).and_then(Value::as_str).unwrap_or_default();
                Some(StratumError::new(ErrorCode::from_i64(code), message))
            }
            Value::Object(map) => {
                let code = map.get("code").and_then(Value::as_i64).unwrap_or(20);
                let message = map
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Some(StratumError::new(ErrorCode::from_i64(code), message))
            }
            Value::String(message) => {
                Some(StratumError::new(code_for_text(message), message.clone()))
            }
            _ => None,
        }
    }
}

/// Maps ckpool's reject strings onto the numbered codes.
fn code_for_text(message: &str) -> ErrorCode {
    let lower = message.to_ascii_lowercase();
    if lower.contains("stale") || lower.contains("job") {
        ErrorCode::JobNotFound
    } else if lower.contains("duplicate") {
        ErrorCode::Duplicate
    } else if lower.contains("difficulty") || lower.contains("low diff") {
        ErrorCode::LowDifficulty
    } else if lower.contains("unauthori") {
        ErrorCode::Unauthorized
    } else if lower.contains("subscribe") {
        ErrorCode::NotSubscribed
    } else {
        ErrorCode::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_shapes_parse() {
        let array =
            StratumError::from_json(&json!([23, "Low difficulty share", null])).expect("array");
        assert_eq!(array.code, ErrorCode::LowDifficulty);
        let object =
            StratumError::from_json(&json!({"code": 21, "message": "Stale", "data": null}))
                .expect("object");
        assert_eq!(object.code, ErrorCode::JobNotFound);
        let text = StratumError::from_json(&json!("Duplicate")).expect("string");
        assert_eq!(text.code, ErrorCode::Duplicate);
        assert_eq!(StratumError::from_json(&Value::Null), None);
        let odd = StratumError::from_json(&json!([-1, "Job not found"])).expect("short array");
        assert_eq!(odd.code, ErrorCode::Unknown(-1));
    }

    #[test]
    fn emits_the_array_form() {
        let e = StratumError::new(ErrorCode::Duplicate, "Duplicate share");
        assert_eq!(e.to_json(), json!([22, "Duplicate share", null]));
        assert_eq!(StratumError::from_json(&e.to_json()), Some(e));
    }
}
