//! Monero addresses: Monero's base58 (8-byte blocks, 11 characters each) and the 4-byte
//! keccak-256 checksum, enough for a pool to refuse a mistyped payout address.

use tiny_keccak::{Hasher, Keccak};

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Characters that encode a block of 0..=8 bytes.
const ENCODED_BLOCK_SIZES: [usize; 9] = [0, 2, 3, 5, 6, 7, 9, 10, 11];

/// A full block: 8 bytes, 11 characters.
const FULL_BLOCK: usize = 8;
const FULL_ENCODED_BLOCK: usize = 11;

/// The checksum's length.
const CHECKSUM: usize = 4;

/// Mainnet network bytes: standard (`4…`), integrated (`4…`, with a payment id) and
/// subaddress (`8…`).
const MAINNET_STANDARD: u8 = 18;
const MAINNET_INTEGRATED: u8 = 19;
const MAINNET_SUBADDRESS: u8 = 42;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmrAddressError {
    /// A character outside Monero's base58 alphabet, or a block that does not decode.
    #[error("monero address {address:?} is not base58: {reason}")]
    NotBase58 {
        /// The address.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// The checksum does not match: a typo.
    #[error("monero address {0:?} has a bad checksum")]
    Checksum(String),
    /// A network byte or length this pool does not pay.
    #[error(
        "monero address {address:?} is not a mainnet address (network byte {network}, {len} bytes)"
    )]
    Network {
        /// The address.
        address: String,
        /// Its network byte.
        network: u8,
        /// Its decoded length.
        len: usize,
    },
}

fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(data);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// Monero base58: every 8-byte block becomes 11 characters, big-endian; the last, shorter
/// block takes as many characters as its length needs (2 for one byte, 11 for eight).
pub fn base58_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(FULL_BLOCK) * FULL_ENCODED_BLOCK);
    for block in data.chunks(FULL_BLOCK) {
        let mut num = block.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        let size = ENCODED_BLOCK_SIZES[block.len()];
        let mut chars = vec![ALPHABET[0]; size];
        for slot in chars.iter_mut().rev() {
            *slot = ALPHABET[(num % 58) as usize];
            num /= 58;
        }
        out.extend(chars.into_iter().map(char::from));
    }
    out
}

/// Decodes Monero base58; the error says what is wrong.
pub fn base58_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / FULL_ENCODED_BLOCK * FULL_BLOCK + FULL_BLOCK);
    for block in bytes.chunks(FULL_ENCODED_BLOCK) {
        let size = ENCODED_BLOCK_SIZES
            .iter()
            .position(|s| *s == block.len())
            .ok_or_else(|| format!("a last block of {} characters", block.len()))?;
        let mut num: u64 = 0;
        for c in block {
            let digit = ALPHABET
                .iter()
                .position(|a| a == c)
                .ok_or_else(|| format!("character {:?}", char::from(*c)))?;
            num = num
                .checked_mul(58)
                .and_then(|n| n.checked_add(digit as u64))
                .ok_or("a block overflows 64 bits")?;
        }
        if size < FULL_BLOCK && num >> (8 * size) != 0 {
            return Err(format!("a {size}-byte block overflows"));
        }
        out.extend_from_slice(&num.to_be_bytes()[FULL_BLOCK - size..]);
    }
    Ok(out)
}

/// Checks a mainnet Monero address (standard, integrated or subaddress): alphabet, checksum,
/// network byte and length.
pub fn check_address(address: &str) -> Result<(), XmrAddressError> {
    let raw = base58_decode(address).map_err(|reason| XmrAddressError::NotBase58 {
        address: address.to_owned(),
        reason,
    })?;
    if raw.len() <= CHECKSUM {
        return Err(XmrAddressError::Checksum(address.to_owned()));
    }
    let (body, checksum) = raw.split_at(raw.len() - CHECKSUM);
    if keccak256(body)[..CHECKSUM] != *checksum {
        return Err(XmrAddressError::Checksum(address.to_owned()));
    }
    let network = body.first().copied().unwrap_or_default();
    let ok = match network {
        MAINNET_STANDARD | MAINNET_SUBADDRESS => raw.len() == 69,
        MAINNET_INTEGRATED => raw.len() == 77,
        _ => false,
    };
    if !ok {
        return Err(XmrAddressError::Network {
            address: address.to_owned(),
            network,
            len: raw.len(),
        });
    }
    Ok(())
}

/// A standard mainnet address for the given public spend and view keys.
pub fn standard_address(spend: &[u8; 32], view: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(69);
    raw.push(MAINNET_STANDARD);
    raw.extend_from_slice(spend);
    raw.extend_from_slice(view);
    let checksum = keccak256(&raw);
    raw.extend_from_slice(&checksum[..CHECKSUM]);
    base58_encode(&raw)
}

/// Where the devnet pays when no `pool.address` is configured: a well-formed standard address
/// built from fixed, obviously fake keys (spend key bytes 0x01, view key bytes 0x02) that no
/// wallet holds.
pub fn devnet_address() -> String {
    standard_address(&[1; 32], &[2; 32])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address xmrig logged in with in `shared/captures/xmrig-rx0.txt`.
    const XMRIG: &str = "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";

    #[test]
    fn a_real_address_passes_and_a_typo_fails() {
        check_address(XMRIG).expect("valid mainnet address");
        assert_eq!(XMRIG.len(), 95);
        let raw = base58_decode(XMRIG).expect("decode");
        assert_eq!(raw.len(), 69);
        assert_eq!(raw[0], 18);
        assert_eq!(base58_encode(&raw), XMRIG);
        // Change one character anywhere: the checksum (or the decoding) catches it.
        for i in [0, 1, 20, 50, 90, 94] {
            let mut typo: Vec<u8> = XMRIG.bytes().collect();
            typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(typo).expect("ascii");
            assert!(check_address(&typo).is_err(), "{typo}");
        }
        assert!(matches!(
            check_address("44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2c0"),
            Err(XmrAddressError::NotBase58 { .. })
        ));
        assert!(check_address("").is_err());
        assert!(check_address("bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202").is_err());
    }

    #[test]
    fn the_devnet_address_is_well_formed() {
        let a = devnet_address();
        assert!(a.starts_with('4'), "{a}");
        assert_eq!(a.len(), 95);
        check_address(&a).expect("valid");
        // A testnet network byte is refused even with a good checksum.
        let mut raw = vec![53u8];
        raw.extend_from_slice(&[1; 64]);
        let sum = keccak256(&raw);
        raw.extend_from_slice(&sum[..4]);
        assert!(matches!(
            check_address(&base58_encode(&raw)),
            Err(XmrAddressError::Network { network: 53, .. })
        ));
    }

    #[test]
    fn base58_round_trips_every_block_size() {
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 255) as u8).collect();
            assert_eq!(base58_decode(&base58_encode(&data)).expect("decode"), data);
        }
        assert_eq!(base58_encode(&[0xff; 8]), "jpXCZedGfVQ");
    }
}
