//! Known-answer tests against `tests/data/sha256d.json` (a copy of the shared vectors), and
//! Monero's transaction tree hash against Monero's own vectors (`tests/data/monero-tree-hash.txt`).
//!
//! Every entry is checked; an entry of an unknown `kind` fails the test so that new vector
//! kinds cannot be skipped silently.

#![allow(clippy::unwrap_used)]

use otedama_core::{
    apply_version_bits, decode_hex, decode_hex32, encode_hex, reverse_hash, BlockHeader,
    CompactTarget, CompactTargetError, DifficultyConvention, Target, BIP320_VERSION_MASK,
    BITCOIN_DIFF1_TARGET, U256,
};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sha256d.json"
    ))
    .expect("read tests/data/sha256d.json");
    serde_json::from_str::<Vec<Value>>(&text).expect("parse sha256d.json")
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("missing string field {key} in {v}"))
}

fn hex_u32(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex u32")
}

fn display32(s: &str) -> [u8; 32] {
    reverse_hash(&decode_hex32(s).expect("hex32"))
}

fn check_header(v: &Value) {
    let name = str_field(v, "name");
    let bytes = decode_hex(str_field(v, "header_hex")).expect("header hex");
    assert_eq!(bytes.len(), 80, "{name}");
    let header = BlockHeader::from_bytes(&bytes).expect("80 bytes");

    // Fields.
    let f = v.get("fields").expect("fields");
    let version = f.get("version").and_then(Value::as_u64).expect("version");
    assert_eq!(u64::from(header.version), version, "{name}: version");
    assert_eq!(
        header.version,
        hex_u32(str_field(f, "version_hex")),
        "{name}: version_hex"
    );
    assert_eq!(
        header.prev_blockhash,
        display32(str_field(f, "prev_block_hash_display")),
        "{name}: prev"
    );
    assert_eq!(
        header.merkle_root,
        display32(str_field(f, "merkle_root_display")),
        "{name}: merkle root"
    );
    assert_eq!(
        u64::from(header.time),
        f.get("time").and_then(Value::as_u64).expect("time"),
        "{name}: time"
    );
    assert_eq!(
        header.bits.to_consensus(),
        hex_u32(str_field(f, "nbits")),
        "{name}: bits"
    );
    assert_eq!(
        u64::from(header.nonce),
        f.get("nonce").and_then(Value::as_u64).expect("nonce"),
        "{name}: nonce"
    );

    // Serialization round trip, ours and through the bitcoin crate.
    assert_eq!(header.to_bytes().as_slice(), bytes.as_slice(), "{name}");
    let theirs: otedama_core::bitcoin::block::Header = header.into();
    assert_eq!(
        otedama_core::bitcoin::consensus::encode::serialize(&theirs),
        bytes,
        "{name}: bitcoin crate serialization"
    );
    assert_eq!(BlockHeader::from(theirs), header, "{name}");

    // Hashes.
    let hash = header.block_hash();
    assert_eq!(
        encode_hex(&hash),
        str_field(v, "sha256d_internal_le_hex"),
        "{name}: sha256d"
    );
    assert_eq!(
        encode_hex(&reverse_hash(&hash)),
        str_field(v, "block_hash_display_be_hex"),
        "{name}: display hash"
    );
    assert_eq!(
        theirs.block_hash().to_string(),
        str_field(v, "block_hash_display_be_hex"),
        "{name}: bitcoin crate hash"
    );

    // Target and proof of work.
    let target = header.target().expect("valid bits");
    assert_eq!(
        encode_hex(&target.to_be_bytes()),
        str_field(v, "target_from_nbits_be_hex"),
        "{name}: target"
    );
    let meets = v
        .get("meets_target")
        .and_then(Value::as_bool)
        .expect("meets");
    assert_eq!(target.is_met_by(&hash), meets, "{name}: pow");
    assert_eq!(header.meets_own_target(), Ok(meets), "{name}: pow");
    assert_eq!(
        target.to_compact(),
        header.bits,
        "{name}: compact round trip"
    );

    // Version rolling: the BIP320 bits of a rolled version reapplied to its base give it
    // back, and the non-rolled bits are untouched.
    let base = header.version & !BIP320_VERSION_MASK;
    let rolled = header.version & BIP320_VERSION_MASK;
    assert_eq!(
        apply_version_bits(base, rolled, BIP320_VERSION_MASK),
        header.version,
        "{name}: version rolling"
    );
    let note = v.get("note").and_then(Value::as_str).unwrap_or("");
    if note.contains("rolled") {
        assert_ne!(rolled, 0, "{name}: rolled bits expected");
        // A job version 0x20000000 (plus any BIP9 bits outside the mask) rolled by the
        // miner's bits reproduces the mined header hash.
        let mut job_header = header;
        job_header.version = base;
        assert_ne!(job_header.block_hash(), hash);
        job_header.version = apply_version_bits(base, header.version, BIP320_VERSION_MASK);
        assert_eq!(job_header.block_hash(), hash, "{name}: rolled hash");
    }
}

fn check_compact(v: &Value) {
    let bits = hex_u32(str_field(v, "nbits"));
    let compact = CompactTarget::from_consensus(bits);
    let negative = v
        .get("negative_flag")
        .and_then(Value::as_bool)
        .expect("negative_flag");
    let overflow = v
        .get("overflow_flag")
        .and_then(Value::as_bool)
        .expect("overflow_flag");
    let (value, neg, ovf) = compact.decode_raw();
    assert_eq!(neg, negative, "{bits:#010x}: negative flag");
    assert_eq!(ovf, overflow, "{bits:#010x}: overflow flag");

    let expected_value = v.get("target_be_hex").and_then(Value::as_str);
    match expected_value {
        Some(hex) => assert_eq!(
            encode_hex(&value.to_be_bytes()),
            hex,
            "{bits:#010x}: raw value"
        ),
        None => assert!(overflow, "{bits:#010x}: a null target must be an overflow"),
    }

    let decoded = compact.decode();
    if negative {
        assert_eq!(decoded, Err(CompactTargetError::Negative { bits }));
    } else if overflow {
        assert_eq!(decoded, Err(CompactTargetError::Overflow { bits }));
    } else if value.is_zero() {
        assert_eq!(decoded, Err(CompactTargetError::Zero { bits }));
    } else {
        let target = decoded.clone().expect("valid compact");
        assert_eq!(target.as_u256(), value);
        // A canonical encoding round-trips; any valid one round-trips through its target.
        let again = target.to_compact().decode().expect("re-decode");
        assert_eq!(again, target, "{bits:#010x}: compact round trip");
    }

    if let Some(difficulty) = v.get("difficulty").and_then(Value::as_f64) {
        let target = decoded.expect("a difficulty implies a valid target");
        let ours = DifficultyConvention::Bitcoin
            .difficulty_of(&target)
            .expect("difficulty")
            .as_f64();
        let rel = ((ours - difficulty) / difficulty).abs();
        assert!(
            rel < 1e-14,
            "{bits:#010x}: difficulty {ours} vs {difficulty}"
        );
    }
}

#[test]
fn sha256d_vectors() {
    let all = vectors();
    assert!(!all.is_empty());
    let mut headers = 0;
    let mut compacts = 0;
    for v in &all {
        match str_field(v, "kind") {
            "block_header" => {
                check_header(v);
                headers += 1;
            }
            "compact_to_target" => {
                check_compact(v);
                compacts += 1;
            }
            other => panic!("unhandled vector kind {other:?}: extend this test"),
        }
    }
    assert_eq!(headers + compacts, all.len());
    assert!(headers >= 14 && compacts >= 16, "{headers} {compacts}");
}

#[test]
fn known_answers() {
    use DifficultyConvention::*;
    let one = otedama_core::Difficulty::ONE;
    assert_eq!(
        encode_hex(&Bitcoin.target_for(one).to_be_bytes()),
        "00000000ffff0000000000000000000000000000000000000000000000000000"
    );
    assert_eq!(Bitcoin.target_for(one), BITCOIN_DIFF1_TARGET);
    assert_eq!(
        encode_hex(&Scrypt.target_for(one).to_be_bytes()),
        "0000ffff00000000000000000000000000000000000000000000000000000000"
    );
    assert_eq!(Ethash.target_for(one), Target::MAX);
    let two = otedama_core::Difficulty::new(2.0).unwrap();
    assert_eq!(Ethash.target_for(two).as_u256(), U256::ONE << 255);
    assert_eq!(
        otedama_core::MoneroTarget::long_from_difficulty(1000)
            .unwrap()
            .to_hex(),
        "efa7c64b37894100"
    );
    // Core's mainnet powLimit also encodes to 0x1d00ffff.
    let pow_limit = Target::from_u256(U256::MAX >> 32);
    assert_eq!(pow_limit.to_compact().to_consensus(), 0x1d00ffff);
    // Regtest.
    assert_eq!(
        CompactTarget::from_consensus(0x207fffff)
            .decode()
            .unwrap()
            .to_compact()
            .to_consensus(),
        0x207fffff
    );
    // Expected hashes: diff 1 ≈ 2^32 for Bitcoin, 2^16 for scrypt pools, d for the others.
    let rel = |a: f64, b: f64| ((a - b) / b).abs();
    assert!(rel(Bitcoin.expected_hashes(one), 4_295_032_833.0) < 1e-12);
    assert!(rel(Scrypt.expected_hashes(one), 65_537.0) < 1e-9);
    let k = otedama_core::Difficulty::new(1000.0).unwrap();
    assert!(rel(Monero.expected_hashes(k), 1000.0) < 1e-12);
    assert!(rel(Ethash.expected_hashes(k), 1000.0) < 1e-12);
    // cgminer share difficulty of the genesis hash.
    let genesis =
        decode_hex32("6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000").unwrap();
    let sd = Bitcoin.share_difficulty(&genesis);
    assert!(rel(sd, 2536.4262984453103) < 1e-9, "{sd}");
}

/// Monero's own tree-hash vectors (`tests/hash/tests-tree.txt` in the Monero repository):
/// each line is the root, then the 1, 2, ... 10 leaf hashes it is taken over.
#[test]
fn monero_tree_hash_matches_monero_vectors() {
    let text = include_str!("data/monero-tree-hash.txt");
    let mut lines = 0;
    for line in text.lines() {
        let (root, leaves) = line.split_once(' ').expect("root and leaves");
        let leaves = hex::decode(leaves).expect("hex");
        let hashes: Vec<[u8; 32]> = leaves
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        lines += 1;
        assert_eq!(hashes.len(), lines, "line {lines} has {lines} leaves");
        let computed = otedama_core::monero::tree_hash(&hashes).expect("a root");
        assert_eq!(hex::encode(computed), root, "{} leaves", hashes.len());
    }
    assert_eq!(lines, 10);
}
