//! Byte-order helpers for hashes as they appear in headers, RPC output and Stratum v1.
//!
//! Three orders exist for a 32-byte hash:
//! * **internal**: as it comes out of sha256d and as it sits in a block header;
//! * **display**: internal reversed, as block explorers and RPC print it;
//! * **stratum prevhash**: internal with the bytes of each 4-byte word swapped, as
//!   `mining.notify` sends the previous block hash.

/// Reverses all 32 bytes: internal order to display order, or back.
pub fn reverse_hash(hash: &[u8; 32]) -> [u8; 32] {
    let mut out = *hash;
    out.reverse();
    out
}

/// Reverses the bytes inside each 4-byte word, keeping the words in place.
pub fn swap_words(bytes: &[u8; 32]) -> [u8; 32] {
    let mut out = *bytes;
    for word in out.chunks_exact_mut(4) {
        word.reverse();
    }
    out
}

/// Converts a Stratum v1 `mining.notify` prevhash to internal (header) byte order.
pub fn prevhash_from_stratum(stratum: &[u8; 32]) -> [u8; 32] {
    swap_words(stratum)
}

/// Converts an internal (header) order previous-block hash to the Stratum v1 form.
pub fn prevhash_to_stratum(internal: &[u8; 32]) -> [u8; 32] {
    swap_words(internal)
}

/// Converts a Stratum v1 prevhash to display order (as RPC `getblocktemplate` prints
/// `previousblockhash`).
pub fn prevhash_stratum_to_display(stratum: &[u8; 32]) -> [u8; 32] {
    reverse_hash(&swap_words(stratum))
}

/// Converts a display-order previous-block hash to the Stratum v1 form.
pub fn prevhash_display_to_stratum(display: &[u8; 32]) -> [u8; 32] {
    swap_words(&reverse_hash(display))
}

/// Why a hex string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// The string has an odd number of digits.
    #[error("hex string has odd length {len}")]
    OddLength {
        /// The length of the string.
        len: usize,
    },
    /// A character is not a hex digit.
    #[error("invalid hex character at position {position}")]
    InvalidChar {
        /// Byte offset of the bad character.
        position: usize,
    },
    /// The decoded length is not the one required.
    #[error("hex string decodes to {got} bytes, expected {expected}")]
    WrongLength {
        /// Required number of bytes.
        expected: usize,
        /// Decoded number of bytes.
        got: usize,
    },
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex (either case, no `0x` prefix) into bytes.
pub fn decode_hex(hex: &str) -> Result<Vec<u8>, HexError> {
    let raw = hex.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return Err(HexError::OddLength { len: raw.len() });
    }
    let mut out = Vec::with_capacity(raw.len() / 2);
    for (i, pair) in raw.chunks_exact(2).enumerate() {
        let (hi, lo) = match pair {
            [a, b] => (nibble(*a), nibble(*b)),
            _ => (None, None),
        };
        match (hi, lo) {
            (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
            (None, _) => return Err(HexError::InvalidChar { position: 2 * i }),
            (_, None) => {
                return Err(HexError::InvalidChar {
                    position: 2 * i + 1,
                })
            }
        }
    }
    Ok(out)
}

/// Decodes exactly 64 hex digits into 32 bytes, keeping the byte order as written.
pub fn decode_hex32(hex: &str) -> Result<[u8; 32], HexError> {
    let v = decode_hex(hex)?;
    let got = v.len();
    v.try_into()
        .map_err(|_| HexError::WrongLength { expected: 32, got })
}

/// Encodes bytes as lowercase hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STRATUM: &str = "6a2be50e9bfb43f4973d1b2a84fc5fa27a11730b000209b00000000000000000";
    const DISPLAY: &str = "0000000000000000000209b07a11730b84fc5fa2973d1b2a9bfb43f46a2be50e";

    #[test]
    fn ckpool_prevhash_vector() {
        let stratum = decode_hex32(STRATUM).unwrap();
        let display = decode_hex32(DISPLAY).unwrap();
        assert_eq!(encode_hex(&prevhash_stratum_to_display(&stratum)), DISPLAY);
        assert_eq!(encode_hex(&prevhash_display_to_stratum(&display)), STRATUM);
        let internal = prevhash_from_stratum(&stratum);
        assert!(encode_hex(&internal).starts_with("0ee52b6a"));
        assert!(encode_hex(&internal).ends_with("00000000"));
        assert_eq!(internal, reverse_hash(&display));
        assert_eq!(prevhash_to_stratum(&internal), stratum);
    }

    #[test]
    fn hex_errors() {
        assert_eq!(decode_hex("abc"), Err(HexError::OddLength { len: 3 }));
        assert_eq!(decode_hex("0g"), Err(HexError::InvalidChar { position: 1 }));
        assert_eq!(
            decode_hex32("00"),
            Err(HexError::WrongLength {
                expected: 32,
                got: 1
            })
        );
        assert_eq!(decode_hex("ABff").unwrap(), vec![0xab, 0xff]);
    }
}
