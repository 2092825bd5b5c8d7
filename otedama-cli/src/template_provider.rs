//! Stratum V2 template distribution from the embedded devnet (`otedama-cli devnet
//! --sv2-tp-listen`): a template provider, as a node would be, for pools that build their own
//! jobs (the reference implementation's pool, for one).
//!
//! The protocol is `otedama-stratum`'s [`Sv2TemplateSession`]; this serves it on TCP, offers
//! the devnet's templates as they change, and rebuilds and submits each block a pool solves.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use otedama_core::bitcoin::consensus::encode::{deserialize, serialize};
use otedama_core::bitcoin::{Amount, ScriptBuf, Transaction, TxOut};
use otedama_core::{encode_hex, reverse_hash, BlockHeader, BlockTemplate};
use otedama_pool::source::devnet::Devnet;
use otedama_pool::{BlockSubmitter, TemplateSource};
use otedama_stratum::sv2::message::SubmitSolution;
use otedama_stratum::sv2::noise::AuthorityKeypair;
use otedama_stratum::sv2::template::{
    Sv2TemplateConfig, Sv2TemplateSession, TemplateEvent, TemplateOffer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Templates kept to rebuild the blocks pools solve on them.
const KEPT: usize = 16;

/// A devnet template and the offer made of it.
#[derive(Debug, Clone)]
struct Offered {
    template: Arc<BlockTemplate>,
    offer: TemplateOffer,
}

/// The offer of `template` as template `id`.
fn offer_of(template: &BlockTemplate, id: u64) -> Result<TemplateOffer> {
    let height = u32::try_from(template.height).context("height")?;
    let outputs = template
        .witness_commitment
        .iter()
        .map(|script| {
            serialize(&TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::from(script.clone()),
            })
        })
        .collect();
    let target = template
        .target()
        .map(|t| t.to_le_bytes())
        .unwrap_or([0xff; 32]);
    Ok(TemplateOffer {
        template_id: id,
        version: template.version,
        coinbase_tx_version: 2,
        coinbase_prefix: otedama_core::bip34_height_push(height),
        coinbase_tx_input_sequence: u32::MAX,
        coinbase_tx_value_remaining: template.coinbase_value,
        coinbase_tx_outputs: outputs,
        coinbase_tx_locktime: 0,
        merkle_path: template.merkle_branch().hashes().to_vec(),
        prev_hash: template.prev_hash,
        header_timestamp: template.curtime,
        nbits: template.bits.to_consensus(),
        target,
        transactions: template
            .transactions
            .iter()
            .map(|t| t.data.clone())
            .collect(),
    })
}

/// The block a pool's solution makes of the template it was offered.
fn block_of(offered: &Offered, solution: &SubmitSolution) -> Result<(Vec<u8>, [u8; 32])> {
    let coinbase: Transaction =
        deserialize(&solution.coinbase_tx).context("the solution's coinbase does not read")?;
    let txid: [u8; 32] = *coinbase.compute_txid().as_ref();
    let template = &offered.template;
    let header = BlockHeader {
        version: solution.version,
        prev_blockhash: template.prev_hash,
        merkle_root: template.merkle_branch().root(&txid),
        time: solution.header_timestamp,
        bits: template.bits,
        nonce: solution.header_nonce,
    };
    let hash = otedama_core::sha256d(&header.to_bytes());
    Ok((
        template.assemble_block(&header, &solution.coinbase_tx),
        hash,
    ))
}

/// Serves template distribution on `listener` from `devnet` until `stop` flips.
pub(crate) async fn serve(
    devnet: Devnet,
    listener: TcpListener,
    authority: AuthorityKeypair,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let config = Arc::new(Sv2TemplateConfig {
        authority,
        certificate_validity: 3600,
    });
    let (offers, current) = watch::channel::<Option<Offered>>(None);
    let kept = Arc::new(std::sync::Mutex::new(VecDeque::<Offered>::new()));
    // One thread follows the devnet: a new offer each time its template changes.
    {
        let mut devnet = devnet.clone();
        let kept = Arc::clone(&kept);
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut id = 0u64;
            let mut template = match devnet.template() {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!("[devnet tp] no template: {e}");
                    return;
                }
            };
            while !*stop.borrow() {
                id += 1;
                match offer_of(&template, id) {
                    Ok(offer) => {
                        let offered = Offered {
                            template: Arc::new(template.clone()),
                            offer,
                        };
                        if let Ok(mut kept) = kept.lock() {
                            if kept.len() >= KEPT {
                                kept.pop_front();
                            }
                            kept.push_back(offered.clone());
                        }
                        offers.send_replace(Some(offered));
                    }
                    Err(e) => tracing::error!("[devnet tp] cannot offer the template: {e:#}"),
                }
                loop {
                    // Stopped, or nothing left to read the offers.
                    if *stop.borrow() || offers.is_closed() {
                        return;
                    }
                    match devnet.wait_for_change(&template.id, Duration::from_secs(1)) {
                        Ok(Some(next)) => {
                            template = next;
                            break;
                        }
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::error!("[devnet tp] the devnet failed: {e}");
                            return;
                        }
                    }
                }
            }
        });
    }
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("[devnet tp] accept: {e}");
                    continue;
                }
            },
        };
        tracing::info!("[devnet tp] pool connected from {peer}");
        let session = Sv2TemplateSession::new(Arc::clone(&config));
        tokio::spawn(connection(
            stream,
            session,
            current.clone(),
            Arc::clone(&kept),
            devnet.clone(),
            stop.clone(),
        ));
    }
}

async fn connection(
    mut stream: TcpStream,
    mut session: Sv2TemplateSession,
    mut current: watch::Receiver<Option<Offered>>,
    kept: Arc<std::sync::Mutex<VecDeque<Offered>>>,
    devnet: Devnet,
    mut stop: watch::Receiver<bool>,
) {
    stream.set_nodelay(true).ok();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        while let Some(bytes) = session.poll_output() {
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                TemplateEvent::Ready => {
                    let offered = current.borrow_and_update().clone();
                    if let Some(offered) = offered {
                        session.offer(&offered.offer);
                    }
                }
                TemplateEvent::Constraints {
                    max_additional_size,
                    ..
                } => tracing::info!(
                    "[devnet tp] the pool's outputs take up to {max_additional_size} bytes"
                ),
                TemplateEvent::Solution(solution) => {
                    let offered = kept.lock().ok().and_then(|kept| {
                        kept.iter()
                            .find(|o| o.offer.template_id == solution.template_id)
                            .cloned()
                    });
                    let Some(offered) = offered else {
                        tracing::warn!(
                            "[devnet tp] a solution on template {}, no longer kept: not submitted",
                            solution.template_id
                        );
                        continue;
                    };
                    let mut devnet = devnet.clone();
                    let outcome = tokio::task::spawn_blocking(move || {
                        let (block, hash) = block_of(&offered, &solution)?;
                        let height = offered.template.height;
                        devnet
                            .submit_block(&block)
                            .map(|()| (height, hash))
                            .map_err(|e| anyhow::anyhow!("{e}"))
                    })
                    .await;
                    match outcome {
                        Ok(Ok((height, hash))) => tracing::info!(
                            "[devnet tp] BLOCK height {height} {} from a pool's solution: accepted",
                            encode_hex(&reverse_hash(&hash))
                        ),
                        Ok(Err(e)) => tracing::warn!("[devnet tp] a pool's solution: {e:#}"),
                        Err(_) => tracing::warn!("[devnet tp] the block check failed"),
                    }
                }
                TemplateEvent::Closed(reason) => {
                    tracing::info!("[devnet tp] pool gone: {reason:?}");
                    return;
                }
                _ => {}
            }
        }
        while let Some(bytes) = session.poll_output() {
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            changed = current.changed() => {
                if changed.is_err() {
                    return;
                }
                let offered = current.borrow_and_update().clone();
                if let Some(offered) = offered {
                    session.offer(&offered.offer);
                }
            }
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    session.handle_bytes(&buf[..n]);
                }
            },
        }
    }
}
