//! `TokenAuth::verify` and `verify_header` on arbitrary text, and tokens issued at arbitrary
//! times.
//!
//! Checks:
//! - nothing panics, whatever the text;
//! - text that is not a token issued under the secret is refused: an accepted token is
//!   exactly `otd1.<expiry>.<mac>` with the MAC of its own expiry;
//! - a token issued at `now` for `valid_for` is accepted until its expiry and refused as
//!   expired from then on, and any change to its MAC is refused as a bad signature.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use otedama_pool::auth::{TokenAuth, TokenError};

fuzz_target!(|data: &[u8]| {
    let auth = TokenAuth::new(*b"the fuzzer's secret, long enough").expect("long enough");
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let text = String::from_utf8_lossy(data);
    if let Ok(expires) = auth.verify(&text, now) {
        // Only a token the secret issued: its own expiry, re-issued, gives the same text.
        let secs = expires
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs();
        let reissued = auth.issue(UNIX_EPOCH, Duration::from_secs(secs));
        assert_eq!(reissued, text.trim());
    }
    let _ = auth.verify_header(Some(&text), now);

    if data.len() >= 12 {
        let at = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
        let valid = u64::from(u32::from_le_bytes([data[4], data[5], data[6], data[7]])).max(1);
        let issued_at = UNIX_EPOCH + Duration::from_secs(at);
        let token = auth.issue(issued_at, Duration::from_secs(valid));
        let expiry = issued_at + Duration::from_secs(valid);
        assert_eq!(auth.verify(&token, issued_at), Ok(expiry));
        assert_eq!(auth.verify(&token, expiry), Err(TokenError::Expired));
        // Flip one hex digit of the MAC.
        let position = token.len() - 1 - usize::from(data[8]) % 64;
        let mut bytes = token.into_bytes();
        bytes[position] = if bytes[position] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(bytes).expect("ascii");
        assert_eq!(
            auth.verify(&forged, issued_at),
            Err(TokenError::BadSignature)
        );
    }
});
