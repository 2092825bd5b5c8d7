//! monerod as a RandomX pool's work source: `get_block_template` with room reserved for the
//! pool in the miner transaction, the tip followed by polling `get_last_block_header` (a
//! reorganisation to any height is a new tip), `submit_block`, and found blocks' depth or
//! orphaning by `get_block_header_by_hash`.
//!
//! One template is fetched per payout address and tip; every session's work is that template
//! with the session's own reserved bytes, its tree root and hashing blob computed here
//! ([`MoneroTemplate`]), so a pool of many miners asks the node once a block, not once a
//! miner.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use otedama_core::monero::MoneroTemplate;
use otedama_core::{decode_hex, encode_hex};
use serde_json::{json, Value};

use super::node::{read_answer, unreachable_by};
use super::{BlockRejection, ChainView, SourceError, SubmitError};
use crate::monero::{RxSource, RxWork};
use otedama_stratum::MONERO_NONCE_OFFSET as NONCE_OFFSET;

/// Bytes monerod reserves for the pool in each template's miner transaction (the reserved
/// bytes every session gets).
pub const RESERVE_SIZE: usize = 8;

/// How often the tip is asked for while waiting for it to move.
const TIP_POLL: Duration = Duration::from_millis(250);

/// How long one call may take: a session waiting on a template waits this long at most.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a block submission may take.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A template no older than this is reused for a payout on the same tip; after it the
/// node is asked again (its mempool has moved on).
const TEMPLATE_AGE: Duration = Duration::from_secs(30);

/// monerod's JSON-RPC endpoint (`http://host:port`, the daemon's `--rpc-bind-port`).
///
/// [`RxSource::work`] answers from the template it holds for the payout. One caller renews a
/// template older than 30 s while the others go on with it; with none on the current tip (the
/// first call, a new tip) callers wait for one call to the node (10 s at most, twice if the
/// tip moves meanwhile), and share its failure rather than each asking again. A pool's tip
/// thread asks first after each new tip, so its sessions find the template held.
pub struct Monerod {
    url: String,
    /// Templates by payout address on the tip of the generation (counted up at each new tip,
    /// when they are all dropped).
    templates: Mutex<(u64, HashMap<String, Fetched>)>,
    /// Held while a template is fetched.
    fetching: Mutex<()>,
    /// When the last fetch failed, and why.
    failure: Mutex<Option<(Instant, SourceError)>>,
}

/// A template as fetched, with what every session's work shares.
#[derive(Clone)]
struct Fetched {
    template: MoneroTemplate,
    height: u64,
    difficulty: u64,
    seed: [u8; 32],
    prev_id: [u8; 32],
    reward: u64,
    at: Instant,
}

impl std::fmt::Debug for Monerod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Monerod({})", self.url)
    }
}

fn hash32(call: &str, v: &Value, field: &str) -> Result<[u8; 32], SourceError> {
    let text = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| SourceError::bad_answer(call, field, "is missing"))?;
    decode_hex(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| SourceError::bad_answer(call, field, "is not 32 bytes of hex"))
}

fn number(call: &str, v: &Value, field: &str) -> Result<u64, SourceError> {
    v.get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| SourceError::bad_answer(call, field, "is not a number"))
}

impl Monerod {
    /// A client of the daemon at `url` (`http://127.0.0.1:18081`).
    pub fn new(url: &str) -> Monerod {
        Monerod {
            url: url.trim_end_matches('/').to_owned(),
            templates: Mutex::new((0, HashMap::new())),
            fetching: Mutex::new(()),
            failure: Mutex::new(None),
        }
    }

    fn templates(&self) -> MutexGuard<'_, (u64, HashMap<String, Fetched>)> {
        self.templates.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every template: the tip moved. A fetch begun before is not kept.
    fn new_tip(&self) {
        let mut templates = self.templates();
        templates.0 += 1;
        templates.1.clear();
    }

    /// The template for `payout`: the one held, or a fresh one from the node.
    ///
    /// A held template past [`TEMPLATE_AGE`] is renewed by one caller while the others go on
    /// with it; with none held on the current tip, callers wait for the one fetch, and those
    /// that waited on a failed one get its error rather than asking again.
    fn template(&self, payout: &str) -> Result<Fetched, SourceError> {
        let held = |this: &Self| this.templates().1.get(payout).cloned();
        let aged = match held(self) {
            Some(f) if f.at.elapsed() < TEMPLATE_AGE => return Ok(f),
            other => other,
        };
        let _one_at_a_time = match (&aged, self.fetching.try_lock()) {
            (_, Ok(guard)) => guard,
            // Someone renews it: this caller mines the held one meanwhile.
            (Some(f), Err(_)) => return Ok(f.clone()),
            (None, Err(_)) => {
                let guard = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
                // The fetch this caller waited on: its template, or its failure.
                if let Some(f) = held(self) {
                    return Ok(f);
                }
                if let Some(error) = self.last_failure() {
                    return Err(error);
                }
                guard
            }
        };
        for _ in 0..2 {
            let generation = self.templates().0;
            let f = match self.fetch(payout) {
                Ok(f) => f,
                Err(e) => {
                    *self.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((Instant::now(), e.clone()));
                    // An aged template on the same tip is still good work.
                    return aged.ok_or(e);
                }
            };
            let mut templates = self.templates();
            // A tip that moved during the call may have made this template stale: ask again.
            if templates.0 == generation {
                templates.1.insert(payout.to_owned(), f.clone());
                return Ok(f);
            }
        }
        Err(SourceError::NotReady {
            what: "a template on monerod's tip, which moved twice during the call".into(),
        })
    }

    /// The error of a fetch that failed within the last second.
    fn last_failure(&self) -> Option<SourceError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < Duration::from_secs(1))
            .map(|(_, e)| e.clone())
    }

    /// Calls the JSON-RPC `method` and returns its result.
    ///
    /// # Errors
    /// [`SourceError::Node`] with the daemon's own error, or the transport's.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, SourceError> {
        self.call_within(method, params, CALL_TIMEOUT)
    }

    /// [`Monerod::call`] with a timeout of its own.
    pub fn call_within(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, SourceError> {
        let body =
            json!({"jsonrpc": "2.0", "id": "0", "method": method, "params": params}).to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .post(&format!("{}/json_rpc", self.url))
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .map_err(|e| unreachable_by(method, e))?;
        read_answer(method, response).map_err(SourceError::from)
    }

    /// The daemon's tip: its height and id.
    pub fn tip(&self) -> Result<(u64, [u8; 32]), SourceError> {
        let call = "get_last_block_header";
        let result = self.call(call, json!({}))?;
        let header = result
            .get("block_header")
            .ok_or_else(|| SourceError::bad_answer(call, "block_header", "is missing"))?;
        Ok((
            number(call, header, "height")?,
            hash32(call, header, "hash")?,
        ))
    }

    /// How deep the block with id `display` (hex, as monerod prints it) is: 1 for the tip,
    /// -1 when monerod keeps it off its main chain (an orphan), `None` when it never saw it.
    pub fn confirmations(&self, display: &str) -> Result<Option<i64>, SourceError> {
        let call = "get_block_header_by_hash";
        match self.call(call, json!({ "hash": display })) {
            Ok(v) => {
                let header = v
                    .get("block_header")
                    .ok_or_else(|| SourceError::bad_answer(call, "block_header", "is missing"))?;
                if header.get("orphan_status").and_then(Value::as_bool) == Some(true) {
                    return Ok(Some(-1));
                }
                let depth = number(call, header, "depth")?;
                Ok(Some(i64::try_from(depth).unwrap_or(i64::MAX - 1) + 1))
            }
            // -5 "can't get block by hash": an id monerod does not know (other internal
            // errors share the code, and must not read as a lost block).
            Err(SourceError::Node { source, .. })
                if source.code == -5 && source.message.contains("can't get block by hash") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn fetch(&self, payout: &str) -> Result<Fetched, SourceError> {
        let call = "get_block_template";
        let v = self.call(
            call,
            json!({ "wallet_address": payout, "reserve_size": RESERVE_SIZE }),
        )?;
        if v.get("difficulty_top64")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            != 0
        {
            return Err(SourceError::bad_answer(
                call,
                "difficulty_top64",
                "is not zero: a difficulty above 2^64 is not served",
            ));
        }
        let blob = v
            .get("blocktemplate_blob")
            .and_then(Value::as_str)
            .and_then(|t| decode_hex(t).ok())
            .ok_or_else(|| SourceError::bad_answer(call, "blocktemplate_blob", "is not hex"))?;
        let offset = usize::try_from(number(call, &v, "reserved_offset")?)
            .map_err(|_| SourceError::bad_answer(call, "reserved_offset", "is too large"))?;
        let template = MoneroTemplate::parse(&blob, offset).map_err(|_| {
            SourceError::bad_answer(call, "blocktemplate_blob", "is not a block template")
        })?;
        if otedama_core::monero::header_len(&blob).ok() != Some(NONCE_OFFSET + 4) {
            // Miners write the nonce at a fixed offset: a header of another length (a
            // timestamp not five varint bytes) would have them hash the wrong bytes.
            return Err(SourceError::bad_answer(
                call,
                "blocktemplate_blob",
                "has no nonce at byte 39",
            ));
        }
        if template.reserved_room() < RESERVE_SIZE {
            return Err(SourceError::bad_answer(
                call,
                "reserved_offset",
                "leaves fewer bytes than were reserved",
            ));
        }
        Ok(Fetched {
            template,
            height: number(call, &v, "height")?,
            difficulty: number(call, &v, "difficulty")?,
            seed: hash32(call, &v, "seed_hash")?,
            prev_id: hash32(call, &v, "prev_hash")?,
            reward: number(call, &v, "expected_reward")?,
            at: Instant::now(),
        })
    }
}

impl RxSource for Monerod {
    fn work(&self, payout: &str, reserved: [u8; 8]) -> Result<RxWork, SourceError> {
        let fetched = self.template(payout)?;
        let (mut blob, coinbase) = fetched.template.with_reserved(&reserved).map_err(|_| {
            SourceError::bad_answer("get_block_template", "blocktemplate_blob", "no room")
        })?;
        // The pool's miners start from nonce zero (`fetch` checked where it sits).
        blob[NONCE_OFFSET..NONCE_OFFSET + 4].fill(0);
        Ok(RxWork {
            blob,
            coinbase,
            height: fetched.height,
            difficulty: fetched.difficulty,
            seed: fetched.seed,
            prev_id: fetched.prev_id,
            reward: fetched.reward,
        })
    }

    fn wait_for_tip(&self, tip: &[u8; 32], timeout: Duration) -> Result<bool, SourceError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, top) = self.tip()?;
            if top != *tip {
                // Work on the old tip is stale: the next `work` asks the node.
                self.new_tip();
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(TIP_POLL.min(left));
        }
    }

    fn submit(&self, blob: &[u8], coinbase: &[u8]) -> Result<(), SubmitError> {
        let block = MoneroTemplate::block(blob, coinbase)
            .map_err(|_| SubmitError::Rejected(BlockRejection::Invalid("bad-blob".to_owned())))?;
        // A block is worth the wait: monerod may be busy (a new seed's dataset), and the
        // engine answers the share on its own deadline meanwhile.
        match self.call_within("submit_block", json!([encode_hex(&block)]), SUBMIT_TIMEOUT) {
            Ok(v) if v.get("status").and_then(Value::as_str) == Some("OK") => {
                self.new_tip();
                Ok(())
            }
            Ok(v) => Err(SubmitError::Rejected(BlockRejection::Invalid(
                v.get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("no status")
                    .to_owned(),
            ))),
            Err(SourceError::Node { source, .. }) => Err(SubmitError::Rejected(
                BlockRejection::Invalid(format!("{} ({})", source.message, source.code)),
            )),
            Err(e) => Err(SubmitError::Unanswered(e)),
        }
    }
}

/// Found blocks as the accounting sees them. The accounting hands a block's id reversed from
/// its recorded hex (the Bitcoin family's internal order); Monero prints ids unreversed, so
/// it is turned back.
impl ChainView for Monerod {
    fn block_confirmations(&mut self, hash: &[u8; 32]) -> Result<Option<i64>, SourceError> {
        self.confirmations(&encode_hex(&otedama_core::reverse_hash(hash)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::monerod_support as support;
    use otedama_core::monero_check_hash;
    use otedama_hash::{PowAlgorithm, RandomX, RandomXMode};

    /// The first nonce whose RandomX hash of `work`'s blob meets its difficulty, written in.
    fn solve(kernel: &RandomX, work: &RxWork) -> Vec<u8> {
        let mut blob = work.blob.clone();
        for nonce in 0u32.. {
            blob[NONCE_OFFSET..NONCE_OFFSET + 4].copy_from_slice(&nonce.to_le_bytes());
            let hash = kernel.hash(&blob).unwrap().hash;
            if monero_check_hash(&hash, work.difficulty) {
                return blob;
            }
        }
        unreachable!("no nonce meets the difficulty")
    }

    #[test]
    fn monerod_takes_blocks_built_from_its_template_with_the_pools_bytes() {
        if !support::available() {
            return;
        }
        let node = support::Monerod::start(2);
        let mut source = Monerod::new(&node.url());
        let a = source.work(support::POOL_ADDRESS, [1; 8]).unwrap();
        let b = source.work(support::POOL_ADDRESS, [2; 8]).unwrap();
        assert_eq!(a.height, node.height() + 1);
        assert_eq!(a.difficulty, 2);
        assert_ne!(a.blob, b.blob, "each session's bytes give it its own blob");
        assert_eq!(a.prev_id, b.prev_id);
        assert!(a.reward > 0);
        let kernel = RandomX::new(&a.seed, RandomXMode::Light, 1).unwrap();

        // A block from the second session's work: monerod names it as the pool does.
        let blob = solve(&kernel, &b);
        source.submit(&blob, &b.coinbase).unwrap();
        assert_eq!(node.height(), b.height);
        let id = crate::rx_block_id(&blob);
        let header = node
            .header(&id)
            .expect("monerod knows the block by the pool's id");
        assert_eq!(header["height"], b.height);
        let mut internal = otedama_core::decode_hex32(&id).unwrap();
        internal.reverse();
        assert_eq!(source.block_confirmations(&internal).unwrap(), Some(1));
        assert_eq!(source.block_confirmations(&[7; 32]).unwrap(), None);

        // The tip moved: the watcher says so, and new work builds on the block.
        assert!(source
            .wait_for_tip(&a.prev_id, Duration::from_secs(5))
            .unwrap());
        assert_eq!(source.tip().unwrap().0, b.height);
        let next = source.work(support::POOL_ADDRESS, [1; 8]).unwrap();
        assert_eq!(next.height, b.height + 1);
        assert_eq!(encode_hex(&next.prev_id), id);

        // Work on the old tip is a block monerod keeps off its main chain.
        let stale = solve(&kernel, &a);
        source.submit(&stale, &a.coinbase).unwrap();
        let mut stale_id = otedama_core::decode_hex32(&crate::rx_block_id(&stale)).unwrap();
        stale_id.reverse();
        assert_eq!(source.block_confirmations(&stale_id).unwrap(), Some(-1));

        // A blob whose nonce misses the difficulty is refused.
        let mut weak = next.blob.clone();
        let mut nonce = 0u32;
        loop {
            weak[NONCE_OFFSET..NONCE_OFFSET + 4].copy_from_slice(&nonce.to_le_bytes());
            if !monero_check_hash(&kernel.hash(&weak).unwrap().hash, next.difficulty) {
                break;
            }
            nonce += 1;
        }
        assert!(matches!(
            source.submit(&weak, &next.coinbase),
            Err(SubmitError::Rejected(BlockRejection::Invalid(_)))
        ));
        assert_eq!(node.height(), b.height);

        // After a reorganisation took the block away, monerod no longer knows it, and the
        // tip is another block again, one lower.
        let mut top = internal;
        top.reverse();
        assert!(!source
            .wait_for_tip(&top, Duration::from_millis(300))
            .unwrap());
        node.pop_blocks(1);
        assert_eq!(source.block_confirmations(&internal).unwrap(), None);
        assert!(source.wait_for_tip(&top, Duration::from_secs(5)).unwrap());
        let back = source.work(support::POOL_ADDRESS, [1; 8]).unwrap();
        assert_eq!((back.height, back.prev_id), (a.height, a.prev_id));
    }

    #[test]
    fn a_node_that_is_not_there_is_unreachable() {
        let source = Monerod::new("http://127.0.0.1:9");
        let error = source.work(support::POOL_ADDRESS, [0; 8]).unwrap_err();
        assert!(error.is_transient(), "{error}");
    }
}
