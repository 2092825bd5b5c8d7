//! Build a regtest block header with `otedama-core` and mine it with the SHA256d worker of
//! `otedama-hash`.
//!
//! The steps are the ones a solo miner or a pool takes for every job:
//!
//! 1. build the coinbase around an extranonce slot and fill the slot in;
//! 2. fold the coinbase txid up the merkle branch of the block's other transactions;
//! 3. put the root into an 80-byte header with the network's compact target;
//! 4. scan nonces with a worker until a hash meets the target;
//! 5. check the winning header on its own, and again with the `bitcoin` crate.
//!
//! Regtest's target (`nBits` 0x207fffff) is met by about every other hash, so this finishes in
//! a few microseconds of hashing:
//!
//! ```text
//! cargo run -p otedama-examples --example mine_a_header
//! ```

use std::error::Error;

use otedama_core::bitcoin::{self, hashes::Hash, ScriptBuf, WPubkeyHash};
use otedama_core::{
    decode_hex32, encode_hex, merkle_root, reverse_hash, sha256d, BlockHeader, CoinbaseBuilder,
    CompactTarget, DifficultyConvention, MerkleBranch,
};
use otedama_hash::{PowAlgorithm, ScanJob, Sha256d, Solution};

/// Regtest's proof-of-work limit, which is also the `nBits` of every regtest block.
const REGTEST_BITS: u32 = 0x207f_ffff;
/// The regtest genesis block hash, in display order (as `bitcoin-cli getblockhash 0` prints it).
const REGTEST_GENESIS: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
/// How many nonces one `scan` call covers: the unit a real miner checks for new work between.
const NONCES_PER_SCAN: u64 = 256;

fn main() -> Result<(), Box<dyn Error>> {
    // 1. A coinbase for block 1 paying 50 BTC to a P2WPKH output. The pool gives each session
    //    an extranonce1; the miner rolls extranonce2.
    let payout = ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0x42; 20]));
    let coinbase = CoinbaseBuilder::new(1)
        .extranonce_sizes(4, 4)
        .pool_tag(b"/otedama/".to_vec())
        .output(payout, 50 * 100_000_000)
        .build()?;
    let extranonce1 = [0xde, 0xad, 0xbe, 0xef];
    let extranonce2 = 0u32.to_le_bytes();
    let coinbase_txid = coinbase.txid(&extranonce1, &extranonce2)?;

    // 2. Two made-up transactions besides the coinbase. The branch is what `mining.notify`
    //    sends; folding the coinbase txid up it must give the full tree's root.
    let others = [
        sha256d(b"first transaction"),
        sha256d(b"second transaction"),
    ];
    let branch = MerkleBranch::from_txids(&others);
    let root = branch.root(&coinbase_txid);
    let full_tree = merkle_root(&[coinbase_txid, others[0], others[1]]);
    if full_tree != Some(root) {
        return Err("the merkle branch disagrees with the full tree".into());
    }

    // 3. The header, nonce zero for now. Hashes live in internal byte order inside it.
    let bits = CompactTarget::from_consensus(REGTEST_BITS);
    let target = bits.decode()?;
    let header = BlockHeader {
        version: 0x2000_0000,
        prev_blockhash: reverse_hash(&decode_hex32(REGTEST_GENESIS)?),
        merkle_root: root,
        time: 1_700_000_000,
        bits,
        nonce: 0,
    };

    // 4. Scan nonce ranges with one worker until something meets the target.
    let kernel = Sha256d::new();
    let mut worker = kernel.worker()?;
    let job = ScanJob::header80(header.to_bytes());
    let mut found: Vec<Solution> = Vec::new();
    let mut hashed = 0u64;
    let mut start = 0u64;
    while found.is_empty() && start < 1 << 32 {
        let end = (start + NONCES_PER_SCAN).min(1 << 32);
        hashed += worker.scan(&job, start..end, &target, &mut found)?;
        start = end;
    }
    let solution = found
        .iter()
        .min_by_key(|s| s.nonce)
        .ok_or("no nonce in the 32-bit range meets the target")?;

    // 5. Check the result: rebuild the header with the nonce and hash it independently.
    let nonce = u32::try_from(solution.nonce)?;
    let mined = BlockHeader { nonce, ..header };
    let hash = mined.block_hash();
    if hash != solution.output.hash {
        return Err("the worker's hash differs from the header's".into());
    }
    if !mined.meets_own_target()? {
        return Err("the mined header does not meet its target".into());
    }
    let theirs = bitcoin::block::Header::from(mined);
    let checked = theirs.validate_pow(bitcoin::Target::from_compact(bits.into()))?;
    if checked.to_byte_array() != hash {
        return Err("the bitcoin crate hashes the header differently".into());
    }

    let difficulty = DifficultyConvention::Bitcoin.share_difficulty(&hash);
    println!("backend:     {}", kernel.backend().name());
    println!("target:      {target}");
    println!("merkle root: {}", encode_hex(&reverse_hash(&root)));
    println!("hashed {hashed} nonces, {} met the target", found.len());
    println!("nonce:       {nonce} ({nonce:#010x})");
    println!("block hash:  {}", encode_hex(&reverse_hash(&hash)));
    println!("difficulty:  {difficulty:.3e} (share difficulty of the hash)");
    println!("header:      {}", encode_hex(&mined.to_bytes()));
    Ok(())
}
