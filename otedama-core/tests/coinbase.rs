//! Coinbase builder round trips, checked by decoding with the `bitcoin` crate.

#![allow(clippy::unwrap_used)]

use otedama_core::bitcoin::{
    self, block, consensus, hashes::Hash, Block, PubkeyHash, ScriptBuf, Transaction, WPubkeyHash,
};
use otedama_core::{
    bip34_height_push, sha256d, witness_commitment, witness_merkle_root, BlockHeader,
    CoinbaseBuilder, CompactTarget, Job, JobId, MerkleBranch, Share, ShareHeaderError, Target,
    BIP320_VERSION_MASK, WITNESS_COMMITMENT_HEADER,
};

fn scripts() -> (ScriptBuf, ScriptBuf) {
    (
        ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0x11; 20])),
        ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array([0x22; 20])),
    )
}

#[test]
fn segwit_coinbase_round_trip() {
    let (pay_a, pay_b) = scripts();
    let witness_root = witness_merkle_root(&[[0x33; 32], [0x44; 32]]);
    let cb = CoinbaseBuilder::new(840_000)
        .extranonce_sizes(4, 8)
        .pool_tag(b"/otedama/".to_vec())
        .output(pay_a.clone(), 312_500_000)
        .output(pay_b.clone(), 1_234)
        .witness_root(witness_root)
        .build()
        .unwrap();
    assert!(cb.is_segwit());
    let en1 = [0xde, 0xad, 0xbe, 0xef];
    let en2 = [1, 2, 3, 4, 5, 6, 7, 8];

    let mut legacy = cb.coinb1().to_vec();
    legacy.extend_from_slice(&en1);
    legacy.extend_from_slice(&en2);
    legacy.extend_from_slice(cb.coinb2());
    assert_eq!(cb.legacy_bytes(&en1, &en2).unwrap(), legacy);

    // The split concatenation decodes as a legacy transaction.
    let decoded: Transaction = consensus::deserialize(&legacy).unwrap();
    assert!(decoded.is_coinbase());
    assert_eq!(decoded.input.len(), 1);
    assert!(decoded.input[0].previous_output.is_null());
    assert!(decoded.input[0].witness.is_empty());

    // scriptSig: height push, slot push, extranonces, tag push.
    let script_sig = decoded.input[0].script_sig.as_bytes();
    let mut expected = bip34_height_push(840_000);
    assert_eq!(expected, vec![0x03, 0x40, 0xd1, 0x0c]);
    expected.push(12);
    expected.extend_from_slice(&en1);
    expected.extend_from_slice(&en2);
    expected.push(9);
    expected.extend_from_slice(b"/otedama/");
    assert_eq!(script_sig, expected.as_slice());
    assert!(cb.coinb1().ends_with(&[0x03, 0x40, 0xd1, 0x0c, 12]));

    // Outputs, with the witness commitment last.
    assert_eq!(decoded.output.len(), 3);
    assert_eq!(decoded.output[0].script_pubkey, pay_a);
    assert_eq!(decoded.output[0].value.to_sat(), 312_500_000);
    assert_eq!(decoded.output[1].script_pubkey, pay_b);
    assert_eq!(decoded.output[1].value.to_sat(), 1_234);
    let commit = decoded.output[2].script_pubkey.as_bytes();
    assert_eq!(decoded.output[2].value.to_sat(), 0);
    assert_eq!(commit.len(), 38);
    assert_eq!(&commit[..6], &WITNESS_COMMITMENT_HEADER);
    assert_eq!(&commit[..6], &[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]);
    assert_eq!(&commit[6..], &witness_commitment(&witness_root, &[0; 32]));

    // txid == sha256d of the split concatenation.
    let txid = sha256d(&legacy);
    assert_eq!(decoded.compute_txid().to_byte_array(), txid);
    assert_eq!(cb.txid(&en1, &en2).unwrap(), txid);

    // The full transaction carries the reserved value as its witness.
    let full = cb.transaction(&en1, &en2).unwrap();
    assert_eq!(full.compute_txid().to_byte_array(), txid);
    assert_eq!(full.input[0].witness.len(), 1);
    assert_eq!(full.input[0].witness.nth(0), Some(&[0u8; 32][..]));
    let with_witness = consensus::serialize(&full);
    assert_ne!(with_witness, legacy);
    let back: Transaction = consensus::deserialize(&with_witness).unwrap();
    assert_eq!(back, full);
    assert_eq!(
        Transaction {
            input: vec![bitcoin::TxIn {
                witness: bitcoin::Witness::new(),
                ..full.input[0].clone()
            }],
            ..full.clone()
        },
        decoded
    );
}

#[test]
fn block_level_checks_by_the_bitcoin_crate() {
    // A block whose only transaction is our coinbase: the bitcoin crate agrees on the BIP34
    // height, the merkle root and the witness commitment.
    let (pay_a, _) = scripts();
    let cb = CoinbaseBuilder::new(123_456)
        .extranonce_sizes(8, 4)
        .output(pay_a, 50)
        .witness_root(witness_merkle_root(&[]))
        .build()
        .unwrap();
    let tx = cb.transaction(&[7; 8], &[9; 4]).unwrap();
    let header = BlockHeader {
        version: 0x2000_0000,
        prev_blockhash: [0; 32],
        merkle_root: tx.compute_txid().to_byte_array(),
        time: 0,
        bits: CompactTarget::from_consensus(0x207fffff),
        nonce: 0,
    };
    let block = Block {
        header: block::Header::from(header),
        txdata: vec![tx],
    };
    assert_eq!(block.bip34_block_height(), Ok(123_456));
    assert!(block.check_merkle_root());
    assert!(block.check_witness_commitment());
}

#[test]
fn legacy_coinbase_and_small_heights() {
    let (_, pay_b) = scripts();
    for height in [0u32, 1, 16, 17, 128, 500_000] {
        let cb = CoinbaseBuilder::new(height)
            .extranonce_sizes(4, 4)
            .output(pay_b.clone(), 5_000_000_000)
            .version(1)
            .build()
            .unwrap();
        assert!(!cb.is_segwit());
        let tx = cb.transaction(&[0; 4], &[0xff; 4]).unwrap();
        assert!(tx.input[0].witness.is_empty());
        assert_eq!(tx.output.len(), 1);
        let bytes = consensus::serialize(&tx);
        assert_eq!(bytes, cb.legacy_bytes(&[0; 4], &[0xff; 4]).unwrap());
        let push = bip34_height_push(height);
        assert!(tx.input[0].script_sig.as_bytes().starts_with(&push));
        let len = tx.input[0].script_sig.len();
        assert!((2..=100).contains(&len), "{len}");
    }
}

#[test]
fn job_and_share_rebuild_the_header() {
    let (pay_a, _) = scripts();
    let cb = CoinbaseBuilder::new(800_000)
        .extranonce_sizes(4, 4)
        .output(pay_a, 625_000_000)
        .build()
        .unwrap();
    let others: Vec<[u8; 32]> = (1u8..=6).map(|i| [i; 32]).collect();
    let job = Job {
        id: JobId::new("1a"),
        prevhash: [0x55; 32],
        coinb1: cb.coinb1().to_vec(),
        coinb2: cb.coinb2().to_vec(),
        merkle_branch: MerkleBranch::from_txids(&others),
        version: 0x2000_0000,
        bits: CompactTarget::from_consensus(0x17056102),
        time: 1_690_375_000,
        clean: true,
        height: 800_000,
        share_target: Target::MAX,
    };
    let share = Share {
        job_id: JobId::from("1a"),
        extranonce1: vec![1, 2, 3, 4],
        extranonce2: vec![5, 6, 7, 8],
        ntime: 1_690_375_347,
        nonce: 0xdead_beef,
        version_bits: Some(0x0cfa_e000),
        worker: "alice.rig1".to_owned(),
    };
    let header = job.header_for(&share, BIP320_VERSION_MASK).unwrap();
    assert_eq!(header.version, 0x2cfa_e000);
    assert_eq!(header.time, share.ntime);
    assert_eq!(header.nonce, share.nonce);
    assert_eq!(header.prev_blockhash, job.prevhash);
    let txid = cb.txid(&share.extranonce1, &share.extranonce2).unwrap();
    let mut all = vec![txid];
    all.extend_from_slice(&others);
    assert_eq!(Some(header.merkle_root), otedama_core::merkle_root(&all));

    let no_roll = Share {
        version_bits: None,
        ..share.clone()
    };
    assert_eq!(
        job.header_for(&no_roll, BIP320_VERSION_MASK)
            .unwrap()
            .version,
        0x2000_0000
    );
    let outside = Share {
        version_bits: Some(0x4000_0000),
        ..share.clone()
    };
    assert!(matches!(
        job.header_for(&outside, BIP320_VERSION_MASK),
        Err(ShareHeaderError::VersionBitsOutsideMask { .. })
    ));
    let other_job = Share {
        job_id: JobId::new("1b"),
        ..share
    };
    let err = job.header_for(&other_job, BIP320_VERSION_MASK).unwrap_err();
    assert_eq!(
        err.to_string(),
        "share for job 1b does not belong to job 1a"
    );
}
