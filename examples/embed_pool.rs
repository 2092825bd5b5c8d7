//! A pool of your own on `otedama-pool`, with no async runtime and your own storage.
//!
//! The engine is a state machine: this program feeds it templates from the embedded devnet
//! and shares from an in-process miner, and carries out what it asks for. Blocks go to the
//! devnet, shares go to this program's own storage (an append-only file, synced before the
//! share is acknowledged), and answers go back to the miner. Swap the devnet for a node
//! (`NodeRpc`, feature `node-rpc`), the miner for your Stratum server, and the file for your
//! database; the engine does not change.
//!
//! ```sh
//! cargo run -p otedama-examples --example embed_pool
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;

use otedama_core::{AddressParams, Difficulty, DifficultyConvention, Share};
use otedama_hash::{PowAlgorithm, Sha256d};
use otedama_pool::source::devnet::Devnet;
use otedama_pool::store::ShareRecord;
use otedama_pool::{
    Action, BlockSubmitter, Engine, EngineConfig, FoundBlock, Now, Report, StoreError, Submission,
    TemplateSource,
};
use otedama_stratum::ShareVerdict;

const MINER: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// The embedder's storage: one line per share, synced to disk before the miner hears back.
struct AppendLog {
    file: File,
}

impl AppendLog {
    fn persist(&mut self, record: &ShareRecord) -> Result<(), StoreError> {
        writeln!(
            self.file,
            "{} {} {} {} {}",
            record.time_ms, record.address, record.worker, record.difficulty, record.is_block
        )
        .and_then(|()| self.file.sync_data())
        .map_err(StoreError::database)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let chain = AddressParams::BITCOIN_REGTEST;
    let network = DifficultyConvention::Bitcoin.target_for(Difficulty::new(2e-5)?);
    let mut devnet = Devnet::new(Box::new(Sha256d::new()), network);
    // The reply handle is whatever identifies a request to the embedder: here a number.
    let mut engine: Engine<u64> = Engine::new(EngineConfig {
        algorithm: "sha256d".into(),
        convention: DifficultyConvention::Bitcoin,
        chain,
        payout: chain.script_pubkey(MINER)?,
        pool_tag: b"/embedded/".to_vec(),
        solo_fee: None,
    });
    let path = std::env::temp_dir().join(format!("otedama-embed-{}.log", std::process::id()));
    let mut storage = AppendLog {
        file: OpenOptions::new().create(true).append(true).open(&path)?,
    };
    let kernel = Sha256d::new();
    let identity = engine.authorize(&format!("{MINER}.rig1"))?;
    println!("authorized {} ({})", identity.address, identity.worker);

    let share_difficulty = 1e-6;
    let share_target = DifficultyConvention::Bitcoin.target_for(Difficulty::new(share_difficulty)?);
    let mut request = 0u64;
    let mut accepted = 0;
    let mut job = None;
    while devnet.height() < 2 {
        if job.is_none() {
            engine.handle_template(devnet.template()?, Now::read());
        }
        // Carry out the engine's actions until it has nothing left to ask.
        while let Some(action) = engine.poll_action() {
            match action {
                Action::Announce { job: announced } => job = Some(announced),
                Action::SubmitBlock {
                    share,
                    block: FoundBlock::Bitcoin(block),
                } => {
                    let result = devnet.submit_block(&block);
                    engine.handle_block_result(share, result, Now::read());
                }
                Action::Persist { share, record, .. } => {
                    let durable = storage.persist(&record);
                    engine.handle_persisted(share, durable);
                }
                Action::Answer { reply, verdict, .. } => {
                    if verdict == ShareVerdict::Accepted {
                        accepted += 1;
                    } else {
                        println!("share {reply}: {verdict:?}");
                    }
                }
                Action::Report(Report::BlockSubmitted { height, hash, .. }) => {
                    println!("block {height} {hash} submitted");
                    job = None;
                }
                // A fresh template on the next turn.
                Action::RefreshWork => job = None,
                Action::Report(report) => println!("{report:?}"),
                _ => {}
            }
        }
        let Some(current) = job.clone() else { continue };
        // The miner: a share on the current job, with a fresh extranonce2 each time.
        request += 1;
        let mut share = Share {
            job_id: current.job.id.clone(),
            extranonce1: vec![0, 0, 0, 1],
            extranonce2: request.to_le_bytes()[..4].to_vec(),
            ntime: current.job.time,
            nonce: 0,
            version_bits: None,
            worker: format!("{MINER}.rig1"),
        };
        for nonce in 0..u32::MAX {
            share.nonce = nonce;
            let header = current.job.header_for(&share, 0)?.to_bytes();
            if share_target.is_met_by(&kernel.hash(&header)?.hash) {
                break;
            }
        }
        let submission = Submission {
            share,
            version_mask: 0,
            difficulty: share_difficulty,
        };
        if let Some(check) = engine.handle_share(submission, request, Now::read()) {
            // The slow part runs wherever the embedder likes; here, inline.
            let checked = check.verify(&kernel);
            engine.handle_checked(checked, Now::read());
        }
        // The engine's own deadlines: shares left waiting, work gone stale.
        if engine
            .poll_timeout()
            .is_some_and(|at| at <= std::time::Instant::now())
        {
            engine.handle_timeout(Now::read());
        }
    }
    let stats = engine.stats();
    println!(
        "devnet height {}: {accepted} shares accepted, {} blocks, stored in {}",
        devnet.height(),
        stats.blocks,
        path.display()
    );
    std::fs::remove_file(&path)?;
    assert_eq!(stats.blocks, 2);
    assert_eq!(stats.accepted, accepted);
    Ok(())
}
