//! Bearer tokens for the API: `otd1.<expiry>.<mac>`, where the expiry is Unix seconds and
//! the MAC is HMAC-SHA256 of `otd1.<expiry>` under the operator's secret. A token carries
//! no state on the server: whoever holds the secret can issue one (`otedama-cli
//! api-token`), and a token stops working at its expiry or when the secret changes.
//! No feature needed: an embedder with its own HTTP server checks tokens with this alone.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use otedama_pool::auth::{TokenAuth, TokenError};
//!
//! let auth = TokenAuth::new(*b"a secret of sixteen bytes or more")?;
//! let now = SystemTime::now();
//! let token = auth.issue(now, Duration::from_secs(3600));
//! assert!(auth.verify_header(Some(&format!("Bearer {token}")), now).is_ok());
//! assert_eq!(
//!     auth.verify(&token, now + Duration::from_secs(3600)),
//!     Err(TokenError::Expired)
//! );
//! # Ok::<(), otedama_pool::auth::ShortSecret>(())
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otedama_core::bitcoin::hashes::{hmac, sha256, Hash, HashEngine};

/// The version prefix of every token.
const PREFIX: &str = "otd1";

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Issues and checks API tokens under one secret.
#[derive(Clone)]
pub struct TokenAuth {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("TokenAuth").finish_non_exhaustive()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error(
        "no bearer token: send Authorization: Bearer <token> (otedama-cli api-token prints one)"
    )]
    Missing,
    /// Not a token of this form.
    #[error("not an otedama API token")]
    Malformed,
    /// Not issued under this pool's secret.
    #[error("the token is not valid for this pool")]
    BadSignature,
    /// Past its expiry.
    #[error("the token expired")]
    Expired,
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an API secret needs at least {MIN_SECRET_LEN} bytes, this one has {0}")]
pub struct ShortSecret(pub usize);

impl TokenAuth {
    /// Tokens under `secret` (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<TokenAuth, ShortSecret> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(ShortSecret(secret.len()));
        }
        Ok(TokenAuth { secret })
    }

    fn mac(&self, body: &str) -> String {
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(&self.secret);
        engine.input(body.as_bytes());
        let mac = hmac::Hmac::<sha256::Hash>::from_engine(engine);
        mac.to_byte_array()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A token valid from `now` for `valid_for`.
    pub fn issue(&self, now: SystemTime, valid_for: Duration) -> String {
        // An expiry past what the clock can hold is as good as never.
        let expiry = now
            .checked_add(valid_for)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(i64::MAX as u64, |d| d.as_secs());
        let body = format!("{PREFIX}.{expiry}");
        let mac = self.mac(&body);
        format!("{body}.{mac}")
    }

    /// Checks `token` at `now`; on success, when it expires.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<SystemTime, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(PREFIX), Some(expiry), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let secs: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        let expected = self.mac(&format!("{PREFIX}.{expiry}"));
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Err(TokenError::BadSignature);
        }
        let expires = UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or(TokenError::Malformed)?;
        if now >= expires {
            return Err(TokenError::Expired);
        }
        Ok(expires)
    }

    /// A token's id for audit logs: the first 8 hex digits of its MAC, which name it without
    /// giving it away.
    pub fn token_id(token: &str) -> Option<&str> {
        let mac = token.trim().rsplit('.').next()?;
        mac.get(..8)
    }

    /// Checks an `Authorization` header's value (`Bearer <token>`).
    pub fn verify_header(
        &self,
        header: Option<&str>,
        now: SystemTime,
    ) -> Result<SystemTime, TokenError> {
        let value = header.ok_or(TokenError::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(TokenError::Missing)?;
        self.verify(token, now)
    }
}

/// Compares without stopping at the first difference, so timing tells nothing of the MAC.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn auth() -> TokenAuth {
        TokenAuth::new(*b"0123456789abcdef0123").expect("long enough")
    }

    #[test]
    fn a_token_works_until_it_expires() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = auth().issue(now, Duration::from_secs(60));
        assert!(token.starts_with("otd1.1000060."));
        assert_eq!(
            auth().verify(&token, now),
            Ok(UNIX_EPOCH + Duration::from_secs(1_000_060))
        );
        assert_eq!(
            auth().verify(&token, now + Duration::from_secs(60)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn another_secret_or_a_changed_expiry_is_refused() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = auth().issue(now, Duration::from_secs(60));
        let other = TokenAuth::new(*b"another secret, long enough").expect("long enough");
        assert_eq!(other.verify(&token, now), Err(TokenError::BadSignature));
        let stretched = token.replacen("1000060", "9000060", 1);
        assert_eq!(
            auth().verify(&stretched, now),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn headers_need_the_bearer_scheme() {
        let now = UNIX_EPOCH + Duration::from_secs(5);
        let token = auth().issue(now, Duration::from_secs(60));
        assert!(auth()
            .verify_header(Some(&format!("Bearer {token}")), now)
            .is_ok());
        assert_eq!(
            auth().verify_header(Some(&format!("Basic {token}")), now),
            Err(TokenError::Missing)
        );
        assert_eq!(auth().verify_header(None, now), Err(TokenError::Missing));
    }

    #[test]
    fn a_token_id_is_the_start_of_its_mac() {
        let now = UNIX_EPOCH + Duration::from_secs(5);
        let token = auth().issue(now, Duration::from_secs(60));
        let id = TokenAuth::token_id(&token).expect("an id");
        assert_eq!(id.len(), 8);
        assert!(token.ends_with(&token[token.len() - 64..]));
        assert!(token[token.len() - 64..].starts_with(id));
        assert_eq!(TokenAuth::token_id("otd1.5.ab"), None);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(TokenAuth::new(*b"short").err(), Some(ShortSecret(5)));
    }

    proptest! {
        #[test]
        fn arbitrary_text_is_never_a_valid_token(text in ".{0,120}") {
            let now = UNIX_EPOCH + Duration::from_secs(5);
            prop_assert!(auth().verify(&text, now).is_err());
        }
    }
}
