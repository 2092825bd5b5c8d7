//! Monero addresses (`otedama_pool::xmr_address`): Monero's block base58 and the payout
//! address check a pool runs on every xmrig login.
//!
//! Input: the whole input as text (when it is UTF-8) for decoding and checking; the bytes after
//! the first as data to encode and to build addresses from; the first byte picks a network
//! byte, a form and a character to mistype.
//!
//! Checks:
//! - `base58_decode` and `check_address` never panic, whatever the text;
//! - `base58_decode` equals a plain model (11-character blocks of 8 bytes, a last block of 2,
//!   3, 5, 6, 7, 9 or 10 characters for 1 to 7 bytes, digits of the Monero alphabet, a block
//!   value that fits its bytes, computed in 128 bits), and whatever it decodes encodes back to
//!   the very same text (the encoding is canonical);
//! - `base58_encode` of any bytes has the documented length and decodes back to them;
//! - `check_address` accepts exactly what the model accepts (base58, a keccak-256 checksum of
//!   the body in the last 4 bytes, network byte 18 or 42 with 69 bytes, or 19 with 77) and
//!   refuses the rest with the right error (`NotBase58`, `Checksum`, `Network` with the byte
//!   and length);
//! - an address built from the input (standard, subaddress or integrated, or with
//!   `standard_address`) passes, is 95 or 106 characters, starts with `4` or `8`, and decodes
//!   to its network byte, keys and checksum; with one character mistyped it is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_pool::xmr_address::{
    base58_decode, base58_encode, check_address, standard_address, XmrAddressError,
};
use tiny_keccak::{Hasher, Keccak};

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// Characters for a block of 0 to 8 bytes.
const BLOCK_CHARS: [usize; 9] = [0, 2, 3, 5, 6, 7, 9, 10, 11];

fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(data);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// Monero base58 decoding, written out plainly in 128-bit arithmetic.
fn model_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for block in text.as_bytes().chunks(11) {
        let size = BLOCK_CHARS.iter().position(|c| *c == block.len())?;
        let mut value: u128 = 0;
        for c in block {
            let digit = ALPHABET.iter().position(|a| a == c)?;
            value = value * 58 + digit as u128;
        }
        if value >> (8 * size) != 0 {
            return None;
        }
        out.extend_from_slice(&value.to_be_bytes()[16 - size..]);
    }
    Some(out)
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Ok,
    NotBase58,
    Checksum,
    Network(u8, usize),
}

/// What `check_address` must say.
fn model_check(text: &str) -> Verdict {
    let Some(raw) = model_decode(text) else {
        return Verdict::NotBase58;
    };
    if raw.len() <= 4 {
        return Verdict::Checksum;
    }
    let (body, checksum) = raw.split_at(raw.len() - 4);
    if keccak256(body)[..4] != *checksum {
        return Verdict::Checksum;
    }
    match (body[0], raw.len()) {
        (18 | 42, 69) | (19, 77) => Verdict::Ok,
        (network, len) => Verdict::Network(network, len),
    }
}

fn verdict(text: &str) -> Verdict {
    match check_address(text) {
        Ok(()) => Verdict::Ok,
        Err(XmrAddressError::NotBase58 { address, reason }) => {
            assert_eq!(address, text);
            assert!(!reason.is_empty());
            Verdict::NotBase58
        }
        Err(XmrAddressError::Checksum(address)) => {
            assert_eq!(address, text);
            Verdict::Checksum
        }
        Err(XmrAddressError::Network {
            address,
            network,
            len,
        }) => {
            assert_eq!(address, text);
            Verdict::Network(network, len)
        }
        Err(other) => panic!("an error the model does not know: {other:?}"),
    }
}

/// `raw` with its checksum appended.
fn with_checksum(mut raw: Vec<u8>) -> Vec<u8> {
    let sum = keccak256(&raw);
    raw.extend_from_slice(&sum[..4]);
    raw
}

/// Checks a well-formed address, then the same address with one character mistyped.
fn check_built(raw: &[u8], pick: u8) {
    let address = base58_encode(raw);
    assert_eq!(verdict(&address), Verdict::Ok, "{address}");
    assert_eq!(address.len(), if raw.len() == 69 { 95 } else { 106 });
    let first = address.as_bytes()[0];
    assert!(first == b'4' || first == b'8', "{address}");
    assert_eq!(base58_decode(&address).as_deref(), Ok(raw));

    let mut typo = address.into_bytes();
    let at = usize::from(pick) % typo.len();
    let old = ALPHABET
        .iter()
        .position(|a| *a == typo[at])
        .expect("alphabet");
    typo[at] = ALPHABET[(old + 1 + usize::from(pick) % 57) % 58];
    let typo = String::from_utf8(typo).expect("ascii");
    // A changed character changes the decoded bytes or breaks the decoding; passing would need
    // a 32-bit keccak collision.
    assert_ne!(verdict(&typo), Verdict::Ok, "a typo passed: {typo}");
    assert_eq!(verdict(&typo), model_check(&typo));
}

fuzz_target!(|data: &[u8]| {
    // Any text: decoding and checking agree with the models.
    if let Ok(text) = std::str::from_utf8(data) {
        let decoded = base58_decode(text);
        assert_eq!(
            decoded.as_ref().ok(),
            model_decode(text).as_ref(),
            "{text:?}"
        );
        if let Ok(bytes) = &decoded {
            assert_eq!(base58_encode(bytes), text, "canonical");
        }
        assert_eq!(verdict(text), model_check(text), "{text:?}");
    }

    let (pick, bytes) = data.split_first().unwrap_or((&0, &[]));
    // Any bytes: encoding has the documented length and decodes back.
    let encoded = base58_encode(bytes);
    assert_eq!(
        encoded.len(),
        bytes.len() / 8 * 11 + BLOCK_CHARS[bytes.len() % 8]
    );
    assert!(encoded.bytes().all(|c| ALPHABET.contains(&c)));
    assert_eq!(base58_decode(&encoded).as_deref(), Ok(bytes));
    assert_eq!(verdict(&encoded), model_check(&encoded));

    // Addresses built from the bytes.
    let mut keys = [0u8; 72];
    for (k, b) in keys.iter_mut().zip(bytes) {
        *k = *b;
    }
    let (network, len) = match pick % 3 {
        0 => (18, 64),
        1 => (42, 64),
        _ => (19, 72),
    };
    let mut raw = vec![network];
    raw.extend_from_slice(&keys[..len]);
    check_built(&with_checksum(raw), *pick);

    let spend: [u8; 32] = keys[..32].try_into().expect("32");
    let view: [u8; 32] = keys[32..64].try_into().expect("32");
    let standard = standard_address(&spend, &view);
    let mut raw = vec![18];
    raw.extend_from_slice(&spend);
    raw.extend_from_slice(&view);
    let raw = with_checksum(raw);
    assert_eq!(standard, base58_encode(&raw));
    check_built(&raw, pick.wrapping_add(1));

    // A good checksum on a network byte or length no pool pays is refused as such.
    let mut other = vec![*pick];
    other.extend_from_slice(&keys[..usize::from(*pick) % 73]);
    let other = with_checksum(other);
    let text = base58_encode(&other);
    assert_eq!(verdict(&text), model_check(&text));
    if model_check(&text) != Verdict::Ok {
        assert_eq!(verdict(&text), Verdict::Network(*pick, other.len()));
    }
});
