//! The money path of a running pool: found blocks credited at maturity through the reward
//! scheme, credits reversed when a block is orphaned, PPS/FPPS share pay, and payments through
//! the node's wallet.
//!
//! Every step is one database transaction. A payment's transaction is built and signed by the
//! wallet first; its txid and signed bytes are recorded, and the balances debited, in one
//! database transaction; only then is it broadcast. After a crash or a lost answer the
//! recorded transaction is looked up in the wallet and, if unknown, broadcast again: the same
//! transaction, so it can be mined once at most. Only a transaction the network refuses for
//! good (its inputs spent elsewhere) fails, and its amounts go back to the balances. So a crash
//! between sending and recording neither pays twice nor loses a payment.
//!
//! The rules over the database's rows are written once, in `accounting/books.rs`, as methods
//! of `dyn Store` for every backend (the backends only read and write rows), each one
//! database transaction: a block is credited once, and again only after its credit was
//! reversed (`credit_block`); an orphaned block's reversal undoes its lines since its last
//! one (`orphan_block`); a payment begins only while no other of its coin is being sent and
//! no output is over its balance, debiting the outputs and the pool's network fee
//! (`begin_payment`); a failed payment returns its amounts and fee (`fail_payment`); a share
//! is paid once (`credit_shares`); the payer claim lapses after its expiry (`claim_payer`);
//! and a scheme change is remembered (`scheme_since`).

mod books;

use std::time::{Duration, Instant};

use otedama_core::{Difficulty, DifficultyConvention};
use otedama_rewards::{
    fpps_value, pplns, pps_value, prop, solo, FeeRate, Payout, RewardError, Window,
};

use crate::source::{ChainView, SourceError};
use crate::store::{
    BlockRecord, BlockStatus, LedgerKind, NewEntry, PaymentStatus, PaymentTransaction, Refusal,
    ShareLog, ShareRecord, ShareStore, Store, StoreError,
};
use crate::wallet::{Broadcast, Wallet, WalletError};
use crate::ErrorChain;

/// Why an accounting step failed; nothing it did was half written (each step is one
/// database transaction).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountingError {
    /// The database refused or is gone.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The work source could not tell where a block stands.
    #[error("block check")]
    Source(#[from] SourceError),
    /// The wallet could not answer while `doing`.
    #[error("{doing}")]
    Wallet {
        /// What the accounting was doing.
        doing: String,
        /// The wallet's error.
        source: WalletError,
    },
    /// A reward system the accounting does not know.
    #[error("unknown reward system {0} (pplns, pps, fpps, prop or solo)")]
    UnknownScheme(String),
    /// A payment round's total does not fit the money type.
    #[error("the round's total overflows")]
    Overflow,
}

fn wallet_error(doing: String) -> impl FnOnce(WalletError) -> AccountingError {
    move |source| AccountingError::Wallet { doing, source }
}

/// How loud a [`Note`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteLevel {
    /// Progress: a block confirmed, a payment sent.
    Info,
    /// Something the operator may have to act on.
    Warning,
}

/// A line the accounting reports as it works, for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// How loud it is.
    pub level: NoteLevel,
    /// The coin (algorithm) it concerns.
    pub coin: String,
    /// What happened.
    pub text: String,
}

/// Where the accounting's notes go.
pub trait Notes: Send + Sync {
    /// Takes one note.
    fn note(&self, note: Note);
}

impl<F: Fn(Note) + Send + Sync> Notes for F {
    fn note(&self, note: Note) {
        self(note)
    }
}

fn info(notes: &dyn Notes, coin: &str, text: String) {
    notes.note(Note {
        level: NoteLevel::Info,
        coin: coin.to_owned(),
        text,
    });
}

fn warn(notes: &dyn Notes, coin: &str, text: String) {
    notes.note(Note {
        level: NoteLevel::Warning,
        coin: coin.to_owned(),
        text,
    });
}

/// How a block's reward is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Over the shares in the window up to the block.
    Pplns(Window),
    /// Over the shares since the previous block.
    Prop,
    /// To the finder, through the coinbase.
    Solo,
    /// Each share at its expected value of the subsidy; the pool keeps the blocks.
    Pps,
    /// As PPS, with the transaction fees of the share's job counted in.
    Fpps,
}

impl Scheme {
    /// The scheme named `system` (`pplns`, `prop`, `solo`, `pps`, `fpps`), with `window` for
    /// PPLNS.
    pub fn from_name(system: &str, window: Window) -> Result<Scheme, AccountingError> {
        Ok(match system {
            "pplns" => Scheme::Pplns(window),
            "prop" => Scheme::Prop,
            "solo" => Scheme::Solo,
            "pps" => Scheme::Pps,
            "fpps" => Scheme::Fpps,
            other => return Err(AccountingError::UnknownScheme(other.to_owned())),
        })
    }

    /// Whether shares are paid as they come (PPS, FPPS) rather than out of found blocks.
    pub fn pays_per_share(self) -> bool {
        matches!(self, Scheme::Pps | Scheme::Fpps)
    }
}

/// A port's accounting rules.
#[derive(Debug, Clone)]
pub struct Accounting {
    /// The algorithm of the port: balances and the ledger are kept per coin under it.
    pub coin: String,
    /// The reward scheme.
    pub scheme: Scheme,
    /// The pool fee.
    pub fee: FeeRate,
    /// Where fees (and PPS block rewards) are credited; never paid out, its coins are the
    /// wallet's already.
    pub pool_address: String,
    /// How share difficulty turns into work.
    pub convention: DifficultyConvention,
    /// When this scheme started for the coin: earlier shares belong to the scheme before.
    pub since_ms: i64,
}

/// The expected hashes behind a share of `difficulty`, as the integer the schemes weigh.
pub fn work_of(convention: DifficultyConvention, difficulty: f64) -> u128 {
    match Difficulty::new(difficulty) {
        Ok(d) => {
            let w = convention.expected_hashes(d).round();
            if w.is_finite() && w >= 0.0 {
                w as u128
            } else {
                0
            }
        }
        Err(_) => 0,
    }
}

fn to_signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Accounting {
    fn rewards_shares(&self, shares: &[ShareRecord]) -> Vec<otedama_rewards::ShareRecord> {
        shares
            .iter()
            .map(|s| {
                otedama_rewards::ShareRecord::new(
                    s.address.clone(),
                    work_of(self.convention, s.difficulty),
                    s.time_ms,
                )
            })
            .collect()
    }

    /// The ledger lines a confirmed block writes: the miners' parts and the pool fee, adding
    /// up to the block's reward exactly.
    pub fn block_entries(
        &self,
        store: &mut dyn ShareStore,
        block: &BlockRecord,
    ) -> Result<Vec<NewEntry>, StoreError> {
        let reward = block.reward;
        let memo_block = format!("block {} at height {}", block.hash, block.height);
        let (payout, how): (Result<Payout, RewardError>, String) = match self.scheme {
            Scheme::Pplns(window) => {
                let after = self.since_ms.saturating_sub(1);
                let (shares, counted) = match window {
                    Window::Duration { ms } => (
                        store.shares_between(
                            &self.coin,
                            block.time_ms.saturating_sub(ms).max(after),
                            block.time_ms,
                        )?,
                        format!("of the last {} s", ms / 1000),
                    ),
                    Window::Shares(n) => (
                        store.last_shares(&self.coin, after, block.time_ms, n as u64)?,
                        format!("of the last {n}"),
                    ),
                };
                let payout = pplns(
                    &self.rewards_shares(&shares),
                    block.time_ms,
                    window,
                    reward,
                    self.fee,
                );
                (
                    payout,
                    format!("PPLNS over {} shares {counted}", shares.len()),
                )
            }
            Scheme::Prop => {
                let start = store
                    .blocks()?
                    .iter()
                    // Only blocks that stand end a round: an orphaned block's shares carry
                    // over to the next one, and so do a sharechain block's that paid the
                    // pool nothing.
                    .filter(|b| {
                        b.algorithm == self.coin
                            && b.time_ms < block.time_ms
                            && b.reward > 0
                            && matches!(b.status, BlockStatus::Accepted | BlockStatus::Confirmed)
                    })
                    .map(|b| b.time_ms)
                    .max()
                    .unwrap_or(i64::MIN)
                    .max(self.since_ms.saturating_sub(1));
                let shares = store.shares_between(&self.coin, start, block.time_ms)?;
                (
                    prop(&self.rewards_shares(&shares), reward, self.fee),
                    format!("PROP over the round's {} shares", shares.len()),
                )
            }
            Scheme::Solo => {
                let payout = solo(&block.address, reward, self.fee);
                if block.payee.as_deref() == Some(block.address.as_str()) {
                    // The coinbase paid the finder already: its credit and that payment are
                    // both written, so its balance explains itself and stays what it was.
                    let mut entries = Vec::new();
                    for (address, amount) in &payout.amounts {
                        entries.push(NewEntry {
                            address: address.clone(),
                            amount: to_signed(*amount),
                            kind: LedgerKind::Credit,
                            memo: format!("{memo_block}: SOLO"),
                        });
                        entries.push(NewEntry {
                            address: address.clone(),
                            amount: -to_signed(*amount),
                            kind: LedgerKind::Coinbase,
                            memo: format!("{memo_block}: paid in its coinbase"),
                        });
                    }
                    if payout.pool_fee > 0 {
                        entries.push(NewEntry {
                            address: self.pool_address.clone(),
                            amount: to_signed(payout.pool_fee),
                            kind: LedgerKind::Fee,
                            memo: format!("{memo_block}: pool fee {} ppm", self.fee.ppm()),
                        });
                    }
                    return Ok(entries);
                }
                (Ok(payout), "SOLO".to_owned())
            }
            Scheme::Pps | Scheme::Fpps if reward == 0 => return Ok(Vec::new()),
            Scheme::Pps | Scheme::Fpps => {
                return Ok(vec![NewEntry {
                    address: self.pool_address.clone(),
                    amount: to_signed(reward),
                    kind: LedgerKind::Fee,
                    memo: format!(
                        "{memo_block}: kept by the pool, whose shares are paid per share"
                    ),
                }]);
            }
        };
        let payout = match payout {
            Ok(p) => p,
            // Nobody to pay: the block is the pool's.
            Err(RewardError::NoShares { .. }) => Payout {
                amounts: Default::default(),
                pool_fee: reward,
            },
            Err(e) => return Err(Refusal::RewardSplit(e).into()),
        };
        let mut entries: Vec<NewEntry> = payout
            .amounts
            .iter()
            .filter(|(_, amount)| **amount > 0)
            .map(|(address, amount)| NewEntry {
                address: address.clone(),
                amount: to_signed(*amount),
                kind: LedgerKind::Credit,
                memo: format!("{memo_block}: {how}"),
            })
            .collect();
        if payout.pool_fee > 0 {
            entries.push(NewEntry {
                address: self.pool_address.clone(),
                amount: to_signed(payout.pool_fee),
                kind: LedgerKind::Fee,
                memo: format!("{memo_block}: pool fee {} ppm", self.fee.ppm()),
            });
        }
        Ok(entries)
    }

    /// Pays the PPS/FPPS value of up to `limit` unpaid shares; returns how many it paid.
    pub fn pay_shares(
        &self,
        store: &mut dyn Store,
        limit: u64,
        now: i64,
    ) -> Result<usize, StoreError> {
        let pending = store.unpaid_shares(&self.coin, self.since_ms, limit)?;
        if pending.is_empty() {
            return Ok(0);
        }
        let mut amounts: std::collections::BTreeMap<String, u64> = Default::default();
        for p in &pending {
            let s = &p.share;
            let network = work_of(self.convention, s.network_difficulty);
            let work = work_of(self.convention, s.difficulty);
            let subsidy = s.block_value.saturating_sub(s.tx_fees);
            let value = match self.scheme {
                Scheme::Fpps => fpps_value(work, network, subsidy, s.tx_fees, self.fee),
                _ => pps_value(work, network, subsidy, self.fee),
            }
            // A share recorded without its network difficulty earns nothing rather than
            // stopping the pay of every share after it.
            .unwrap_or(0);
            let entry = amounts.entry(s.address.clone()).or_insert(0);
            *entry = entry.saturating_add(value);
        }
        let (first, last) = (
            pending.first().map_or(0, |p| p.id),
            pending.last().map_or(0, |p| p.id),
        );
        let name = if self.scheme == Scheme::Fpps {
            "FPPS"
        } else {
            "PPS"
        };
        let entries: Vec<NewEntry> = amounts
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(address, amount)| NewEntry {
                address,
                amount: to_signed(amount),
                kind: LedgerKind::Shares,
                memo: format!("{name} for shares {first}..={last}"),
            })
            .collect();
        let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
        store.credit_shares(&self.coin, &ids, &entries, now)?;
        Ok(pending.len())
    }
}

/// Under PPS/FPPS, what the pool kept of its blocks (net of reversals) and what it paid for
/// shares: the difference is the variance the pool carries, negative while it is behind.
pub fn pps_position(totals: &[(LedgerKind, i64)]) -> (i64, i64) {
    let sum = |kinds: &[LedgerKind]| -> i64 {
        totals
            .iter()
            .filter(|(k, _)| kinds.contains(k))
            .map(|(_, v)| v)
            .sum()
    };
    (
        sum(&[LedgerKind::Fee, LedgerKind::Reversal]),
        sum(&[LedgerKind::Shares]),
    )
}

/// The wall clock in Unix milliseconds, as the ledger records time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks this port's found blocks with the work source: blocks reaching `maturity`
/// confirmations are confirmed and credited, blocks that left the main chain are orphaned and
/// their credits reversed.
pub fn track_blocks(
    log: &ShareLog,
    source: &mut dyn ChainView,
    accounting: &Accounting,
    maturity: i64,
    notes: &dyn Notes,
    now: i64,
) -> Result<(), AccountingError> {
    track_blocks_reading(log, &mut None, source, accounting, maturity, notes, now)
}

/// [`track_blocks`], reading each credited block's shares (a PPLNS window can hold millions)
/// through `reader`, a second connection to the database, when there is one: the share log's
/// writer thread then only writes the ledger lines, and share commits never wait behind the
/// read. The window is in the past by the time a block matures, so no share in it can still
/// be arriving. A reader that fails is dropped (the caller may open another) and that block
/// is read through the share log.
pub fn track_blocks_reading(
    log: &ShareLog,
    reader: &mut Option<Box<dyn Store>>,
    source: &mut dyn ChainView,
    accounting: &Accounting,
    maturity: i64,
    notes: &dyn Notes,
    now: i64,
) -> Result<(), AccountingError> {
    let recent = now - 24 * 3600 * 1000;
    let coin = accounting.coin.clone();
    for block in log.run(move |store| store.watched_blocks(&coin, recent))? {
        let watched = match block.status {
            BlockStatus::Accepted | BlockStatus::Submitted => true,
            // A reorganisation deeper than maturity is rare, but its credits must go too; and
            // an orphaned block (one the node called inconclusive, say) may come back.
            BlockStatus::Confirmed | BlockStatus::Orphaned => block.time_ms > recent,
            BlockStatus::Rejected => false,
        };
        if !watched || block.algorithm != accounting.coin {
            continue;
        }
        let mut hash: [u8; 32] = match otedama_core::decode_hex32(&block.hash) {
            Ok(h) => h,
            Err(_) => continue,
        };
        hash.reverse();
        let confirmations = source.block_confirmations(&hash)?;
        let algo = &accounting.coin;
        match confirmations {
            Some(c) if c < 0 && block.status != BlockStatus::Orphaned => {
                orphan(log, algo, &block, "left the main chain", notes, now)?
            }
            Some(c) if c >= 0 && c < maturity && block.status == BlockStatus::Orphaned => {
                info(
                    notes,
                    algo,
                    format!(
                        "block height {} {} is back in the main chain ({c} confirmations)",
                        block.height, block.hash
                    ),
                );
                log.set_block_status(
                    block.hash.clone(),
                    BlockStatus::Accepted,
                    Some("back in the main chain".into()),
                );
            }
            None if !matches!(block.status, BlockStatus::Submitted | BlockStatus::Orphaned) => {
                orphan(log, algo, &block, "unknown to the node", notes, now)?
            }
            Some(c) if c >= maturity && block.status != BlockStatus::Confirmed => {
                let detail = format!("{c} confirmations");
                // The reader sees only what the writer thread has committed: the block
                // statuses this pass queued (a block back in the main chain starts no new
                // PROP round) must be written first.
                if reader.is_some() {
                    log.run(|_| Ok(()))?;
                }
                let read = reader
                    .as_deref_mut()
                    .map(|r| accounting.block_entries(r, &block));
                let entries = match read {
                    Some(Ok(entries)) => Some(entries),
                    Some(Err(e)) => {
                        warn(notes, algo, format!("reading the block's shares: {e}"));
                        *reader = None;
                        None
                    }
                    None => None,
                };
                let (acct, record, detail2) = (accounting.clone(), block.clone(), detail.clone());
                let credited = log.run(move |store| {
                    let entries = match entries {
                        Some(entries) => entries,
                        None => acct.block_entries(store, &record)?,
                    };
                    let total: i64 = entries.iter().map(|e| e.amount).sum();
                    // The credit itself checks, in its transaction, that the block is not
                    // credited already (by this pool or another on the same database).
                    let fresh = store.credit_block(&record.hash, &detail2, &entries, now)?;
                    Ok((fresh, entries.len(), total))
                })?;
                let (fresh, lines, total) = credited;
                info(
                    notes,
                    algo,
                    format!(
                        "block height {} {} confirmed: {detail}{}",
                        block.height,
                        block.hash,
                        if fresh {
                            format!("; credited {total} in {lines} ledger lines")
                        } else {
                            String::new()
                        }
                    ),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

fn orphan(
    log: &ShareLog,
    algo: &str,
    block: &BlockRecord,
    why: &str,
    notes: &dyn Notes,
    now: i64,
) -> Result<(), AccountingError> {
    let hash = block.hash.clone();
    let detail = why.to_owned();
    let reversed = log.run(move |store| store.orphan_block(&hash, &detail, now))?;
    let total: i64 = reversed.iter().map(|e| e.amount).sum();
    info(
        notes,
        algo,
        format!(
            "block height {} {} orphaned: {why}{}",
            block.height,
            block.hash,
            if reversed.is_empty() {
                String::new()
            } else {
                format!("; reversed {} in {} ledger lines", -total, reversed.len())
            }
        ),
    );
    Ok(())
}

/// Shares paid per PPS transaction.
const PPS_BATCH: u64 = 10_000;

/// `pool.payments`, as the payment loop uses it.
#[derive(Debug, Clone)]
pub struct PaymentRules {
    /// Smallest balance paid, smallest unit.
    pub threshold: u64,
    /// Most outputs in one transaction.
    pub max_outputs: usize,
    /// Whether the miners pay the transaction fee (out of their outputs) instead of the pool.
    pub fee_from_miners: bool,
    /// Time between payment rounds.
    pub interval: Duration,
    /// Confirmations after which a payment counts as confirmed, or a transaction that
    /// double-spent it as final.
    pub confirmations: i64,
    /// Who this pool is, for the claim on paying its coin from a shared database (a
    /// restarted pool with the same name takes its claim back at once).
    pub payer: String,
}

/// Whether this pool may pay its coin now: the claim is renewed each round and lapses after
/// three rounds (at least a minute) without one.
fn claim(
    log: &ShareLog,
    coin: &str,
    rules: &PaymentRules,
    notes: &dyn Notes,
    now: i64,
) -> Result<bool, AccountingError> {
    let ttl = i64::try_from(
        rules
            .interval
            .saturating_mul(3)
            .max(Duration::from_secs(60))
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let (c, owner) = (coin.to_owned(), rules.payer.clone());
    let held = log.run(move |store| store.claim_payer(&c, &owner, now, ttl))?;
    if !held {
        info(
            notes,
            coin,
            format!("payments: another pool on this database pays {coin}; not paying"),
        );
    }
    Ok(held)
}

/// Where a crash is injected, for the crash tests: `OTEDAMA_FAULT=payment-before-send` or
/// `payment-after-send` aborts the process at that point of a payment.
fn fault(point: &str) {
    if std::env::var("OTEDAMA_FAULT").is_ok_and(|v| v == point) {
        eprintln!("OTEDAMA_FAULT={point}: aborting");
        std::process::abort();
    }
}

/// Settles the payments not yet confirmed. `sending` (a crash, a lost answer): the wallet
/// knows the transaction → sent; unknown → the recorded transaction is broadcast again (the
/// same transaction: it cannot pay twice). `sent`: buried `confirmations` deep → confirmed. A
/// payment fails (its amounts return to the balances) only when a transaction spending the
/// same inputs and paying none of its addresses is buried that deep: a fee bump or another
/// copy of the payment never fails it. Anything else it cannot settle stays open and is
/// reported every round, for the operator (`otedama-cli pool payment`).
pub fn reconcile(
    log: &ShareLog,
    wallet: &mut dyn Wallet,
    coin: &str,
    confirmations: i64,
    notes: &dyn Notes,
    now: i64,
) -> Result<(), AccountingError> {
    let coin_owned = coin.to_owned();
    let open: Vec<_> = log
        .run(move |store| store.payments(&coin_owned))?
        .into_iter()
        .filter(|p| matches!(p.status, PaymentStatus::Sending | PaymentStatus::Sent))
        .collect();
    for payment in open {
        let id = payment.id;
        let (Some(txid), Some(hex)) = (payment.txid.clone(), payment.tx_hex.clone()) else {
            warn(
                notes,
                coin,
                format!("payment {id} has no recorded transaction; settle it by hand"),
            );
            continue;
        };
        let sending = payment.status == PaymentStatus::Sending;
        let known = wallet
            .wallet_transaction(&txid)
            .map_err(wallet_error(format!(
                "cannot look up payment {id} ({txid})"
            )))?;
        match known {
            Some(tx) if tx.confirmations >= 0 => {
                if sending {
                    log.run(move |store| store.finish_payment(id))?;
                    info(
                        notes,
                        coin,
                        format!("payment {id}: {txid} is in the wallet; recorded as sent"),
                    );
                }
                if tx.confirmations >= confirmations {
                    log.run(move |store| store.confirm_payment(id))?;
                    info(
                        notes,
                        coin,
                        format!(
                            "payment {id}: {txid} confirmed ({} confirmations)",
                            tx.confirmations
                        ),
                    );
                }
            }
            Some(tx) => {
                let paid: Vec<&str> = payment.outputs.iter().map(|(a, _)| a.as_str()).collect();
                let mut replaced = false;
                for other in &tx.conflicts {
                    replaced |= wallet
                        .pays_any(other, &paid)
                        .map_err(wallet_error(format!("cannot look up {other}")))?;
                }
                if tx.confirmations <= -confirmations && !replaced {
                    let reason = format!(
                        "{txid} was double-spent by a transaction {} deep",
                        -tx.confirmations
                    );
                    let r = reason.clone();
                    log.run(move |store| store.fail_payment(id, &r, now))?;
                    info(
                        notes,
                        coin,
                        format!(
                            "payment {id}: {reason}; failed, its amounts returned to the balances"
                        ),
                    );
                } else {
                    warn(
                        notes,
                        coin,
                        format!(
                        "payment {id}: {txid} conflicts with {} ({} confirmations){}; left open",
                        tx.conflicts.join(", "),
                        tx.confirmations,
                        if replaced { ", which pays the same miners" } else { "" }
                    ),
                    );
                }
            }
            None => match wallet.broadcast(&hex).map_err(wallet_error(format!(
                "cannot broadcast payment {id} ({txid})"
            )))? {
                Broadcast::Sent => {
                    if sending {
                        log.run(move |store| store.finish_payment(id))?;
                    }
                    info(
                        notes,
                        coin,
                        format!("payment {id}: {txid} broadcast again; recorded as sent"),
                    );
                }
                Broadcast::Refused(reason) => {
                    // Without the wallet's view, a refusal proves nothing: the transaction may
                    // have been mined, its outputs spent since.
                    warn(notes, coin, format!(
                        "payment {id}: the wallet does not know {txid} and the node refuses it ({reason}); left open, settle it by hand"
                    ));
                }
            },
        }
    }
    Ok(())
}

/// Outputs the wallet can pay: when it refuses a round's transaction, each output is tried
/// alone, so that one it refuses does not hold up everyone else's payment.
fn payable(
    wallet: &mut dyn Wallet,
    coin: &str,
    due: &[(String, u64)],
    fee_from_miners: bool,
    notes: &dyn Notes,
) -> Vec<(String, u64)> {
    let mut good = Vec::new();
    for output in due {
        match wallet.prepare_payment(std::slice::from_ref(output), fee_from_miners) {
            Ok(alone) => {
                let _ = wallet.release(&alone.hex);
                good.push(output.clone());
            }
            Err(e) if e.is_refusal() => warn(
                notes,
                coin,
                format!(
                    "payments: the wallet refuses to pay {} to {}: {}; its balance stays",
                    output.1,
                    output.0,
                    ErrorChain(&e)
                ),
            ),
            Err(_) => good.push(output.clone()),
        }
    }
    good
}

/// One payment round: settles open payments, then pays every balance over the threshold (but
/// the pool's own) in one transaction of at most `max_outputs` outputs. The transaction is
/// signed first, recorded with its txid while the balances are debited, and only then
/// broadcast.
pub fn pay(
    log: &ShareLog,
    wallet: &mut dyn Wallet,
    accounting: &Accounting,
    rules: &PaymentRules,
    notes: &dyn Notes,
    now: i64,
) -> Result<(), AccountingError> {
    let coin = accounting.coin.clone();
    if !claim(log, &coin, rules, notes, now)? {
        return Ok(());
    }
    reconcile(log, wallet, &coin, rules.confirmations, notes, now)?;
    let c = coin.clone();
    let (balances, pool_accounts) =
        log.run(move |store| Ok((store.balances(&c)?, store.fee_accounts(&c)?)))?;
    // May shrink below, should the wallet refuse some outputs.
    let mut due: Vec<(String, u64)> = Vec::new();
    for (address, amount) in balances {
        let Ok(amount) = u64::try_from(amount) else {
            continue;
        };
        if amount < rules.threshold.max(1)
            || address == accounting.pool_address
            || pool_accounts.contains(&address)
        {
            continue;
        }
        // One address the node will not pay must not hold up everyone else's payment.
        if !wallet
            .is_valid_address(&address)
            .map_err(wallet_error(format!("cannot check {address}")))?
        {
            warn(notes, &coin, format!("payments: the node refuses {address} as a destination; its balance of {amount} stays"));
            continue;
        }
        due.push((address, amount));
    }
    if due.is_empty() {
        return Ok(());
    }
    // The largest balances first; what does not fit waits for the next round.
    due.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    due.truncate(rules.max_outputs.max(1));
    due.sort();
    let mut total = due
        .iter()
        .try_fold(0u64, |sum, (_, a)| sum.checked_add(*a))
        .ok_or(AccountingError::Overflow)?;
    let spendable = wallet
        .spendable()
        .map_err(wallet_error("cannot read the wallet's balance".to_string()))?;
    if spendable < total {
        info(
            notes,
            &coin,
            format!("payments wait: the wallet can spend {spendable}, the round needs {total}"),
        );
        return Ok(());
    }
    let prepared = match wallet.prepare_payment(&due, rules.fee_from_miners) {
        Ok(p) => p,
        Err(e) if e.is_refusal() && due.len() > 1 => {
            warn(
                notes,
                &coin,
                format!(
                    "payments: the wallet refuses the round's transaction ({}); trying each output",
                    ErrorChain(&e)
                ),
            );
            let good = payable(wallet, &coin, &due, rules.fee_from_miners, notes);
            if good.is_empty() || good.len() == due.len() {
                return Ok(());
            }
            due = good;
            total = due.iter().map(|(_, a)| *a).sum();
            match wallet.prepare_payment(&due, rules.fee_from_miners) {
                Ok(p) => p,
                Err(e) => {
                    warn(
                        notes,
                        &coin,
                        format!(
                            "payments: the wallet cannot build the round's transaction: {}",
                            ErrorChain(&e)
                        ),
                    );
                    return Ok(());
                }
            }
        }
        Err(e) => {
            warn(
                notes,
                &coin,
                format!(
                    "payments: the wallet cannot build the round's transaction: {}",
                    ErrorChain(&e)
                ),
            );
            return Ok(());
        }
    };
    let transaction = PaymentTransaction {
        txid: prepared.txid.clone(),
        hex: prepared.hex.clone(),
        fee: prepared.fee,
    };
    let (c, outputs) = (coin.clone(), due.clone());
    // The pool pays the network fee unless the miners do: its account carries it.
    let fee_account = (!rules.fee_from_miners).then(|| accounting.pool_address.clone());
    let id = match log.run(move |store| {
        store.begin_payment(&c, &outputs, &transaction, fee_account.as_deref(), now)
    }) {
        Ok(id) => id,
        Err(e) => {
            // Never broadcast: its inputs go back to the wallet.
            let _ = wallet.release(&prepared.hex);
            return Err(e.into());
        }
    };
    let txid = prepared.txid;
    fault("payment-before-send");
    match wallet.broadcast(&prepared.hex) {
        Ok(Broadcast::Sent) => {
            fault("payment-after-send");
            log.run(move |store| store.finish_payment(id))?;
            info(
                notes,
                &coin,
                format!(
                    "payment {id}: sent {total} to {} addresses in {txid} (network fee {})",
                    due.len(),
                    prepared.fee
                ),
            );
        }
        Ok(Broadcast::Refused(reason)) => {
            let r = reason.clone();
            log.run(move |store| store.fail_payment(id, &r, now))?;
            let _ = wallet.release(&prepared.hex);
            warn(
                notes,
                &coin,
                format!("payment {id}: the network refused {txid}: {reason}; amounts returned"),
            );
        }
        // The node may or may not have it: left `sending`, settled by the next round.
        Err(e) => {
            warn(
                notes,
                &coin,
                format!("payment {id}: no answer broadcasting {txid} ({e}); settled next round"),
            );
        }
    }
    Ok(())
}

/// Everything the accounting thread works with.
pub struct AccountingTask {
    /// The share log whose database holds the ledger.
    pub log: ShareLog,
    /// Where found blocks stand in the main chain.
    pub chain: Box<dyn ChainView>,
    /// The wallet that pays, when payments are on.
    pub wallet: Option<Box<dyn Wallet>>,
    /// The port's reward rules.
    pub accounting: Accounting,
    /// The payment rules.
    pub rules: PaymentRules,
    /// Confirmations after which a block is credited.
    pub maturity: i64,
    /// Time between block checks (and PPS pay).
    pub check: Duration,
    /// Where progress and warnings go.
    pub notes: std::sync::Arc<dyn Notes>,
    /// Opens a second connection to the share log's database, for reading the shares of the
    /// blocks it credits off the share log's writer thread (see [`track_blocks_reading`]);
    /// `None` reads through the share log.
    pub reader: Option<OpenReader>,
}

/// Opens a second connection to a share log's database ([`AccountingTask::reader`]).
pub type OpenReader = Box<dyn Fn() -> Result<Box<dyn Store>, StoreError> + Send>;

impl AccountingTask {
    /// The accounting thread's body: tracks blocks every `check` interval, pays PPS shares,
    /// and runs a payment round every `rules.interval` while a wallet is configured. Returns
    /// when `stop` receives a message or its sender is dropped.
    pub fn run(self, stop: &std::sync::mpsc::Receiver<()>) {
        let AccountingTask {
            log,
            mut chain,
            mut wallet,
            accounting,
            rules,
            maturity,
            check,
            notes,
            reader: open_reader,
        } = self;
        let mut reader: Option<Box<dyn Store>> = None;
        let notes = notes.as_ref();
        let coin = accounting.coin.clone();
        if let Some(w) = wallet.as_mut() {
            let settled = claim(&log, &coin, &rules, notes, now_ms()).and_then(|held| {
                if held {
                    reconcile(
                        &log,
                        w.as_mut(),
                        &coin,
                        rules.confirmations,
                        notes,
                        now_ms(),
                    )
                } else {
                    Ok(())
                }
            });
            if let Err(e) = settled {
                warn(notes, &coin, format!("{e}"));
            }
        }
        let mut last_payment = Instant::now();
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(check) {
            if reader.is_none() {
                if let Some(open) = &open_reader {
                    match open() {
                        Ok(store) => reader = Some(store),
                        Err(e) => warn(notes, &coin, format!("a reading connection: {e}")),
                    }
                }
            }
            let tracked = track_blocks_reading(
                &log,
                &mut reader,
                chain.as_mut(),
                &accounting,
                maturity,
                notes,
                now_ms(),
            );
            if let Err(e) = tracked {
                warn(notes, &coin, format!("block check: {e}"));
            }
            if accounting.scheme.pays_per_share() {
                // A batch at a time, each its own transaction between share commits, until the
                // backlog is paid (or a bounded part of it, to come back to the blocks).
                let mut paid = Ok((0, Vec::new()));
                for _ in 0..100 {
                    let acct = accounting.clone();
                    let batch = log.run(move |store| {
                        let n = acct.pay_shares(store, PPS_BATCH, now_ms())?;
                        Ok((n, store.ledger_totals(&acct.coin)?))
                    });
                    match (batch, &mut paid) {
                        (Ok((n, totals)), Ok((sum, last))) => {
                            *sum += n;
                            *last = totals;
                            if n < PPS_BATCH as usize {
                                break;
                            }
                        }
                        (Err(e), _) => {
                            paid = Err(e);
                            break;
                        }
                        (Ok(_), Err(_)) => break,
                    }
                }
                match paid {
                    Ok((0, _)) => {}
                    Ok((n, totals)) => {
                        let (kept, paid) = pps_position(&totals);
                        info(notes, &coin, format!(
                        "paid {n} shares; the pool's position: blocks kept {kept} - shares paid {paid} = {:+}",
                        kept - paid
                    ));
                    }
                    Err(e) => warn(notes, &coin, format!("share pay: {e}")),
                }
            }
            if let Some(w) = wallet.as_mut() {
                if last_payment.elapsed() >= rules.interval {
                    last_payment = Instant::now();
                    if let Err(e) = pay(&log, w.as_mut(), &accounting, &rules, notes, now_ms()) {
                        warn(notes, &coin, format!("payments: {e}"));
                    }
                }
            }
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn store(name: &str) -> (Box<dyn Store>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("otedama-acct-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("pool.db");
        (Box::new(SqliteStore::open(&path).expect("open")), dir)
    }

    fn share(address: &str, difficulty: f64, time_ms: i64) -> ShareRecord {
        ShareRecord {
            algorithm: "scrypt".into(),
            time_ms,
            address: address.into(),
            worker: String::new(),
            difficulty,
            job_id: "1".into(),
            height: 5,
            pow_hash: [0; 32],
            is_block: false,
            network_difficulty: 1000.0,
            block_value: 5_000_012_345,
            tx_fees: 12_345,
            direct: false,
        }
    }

    fn block(hash: &str, time_ms: i64, payee: Option<&str>) -> BlockRecord {
        BlockRecord {
            algorithm: "scrypt".into(),
            time_ms,
            height: 5,
            hash: hash.into(),
            address: "carol".into(),
            worker: String::new(),
            reward: 5_000_012_345,
            status: BlockStatus::Accepted,
            detail: None,
            payee: payee.map(str::to_owned),
        }
    }

    fn accounting(scheme: Scheme) -> Accounting {
        Accounting {
            coin: "scrypt".into(),
            scheme,
            fee: FeeRate::from_ppm(12_500).expect("fee"),
            pool_address: "pool".into(),
            convention: DifficultyConvention::Scrypt,
            since_ms: 0,
        }
    }

    fn amounts(entries: &[NewEntry]) -> Vec<(&str, i64, LedgerKind)> {
        entries
            .iter()
            .map(|e| (e.address.as_str(), e.amount, e.kind))
            .collect()
    }

    #[test]
    fn pplns_counts_the_window_and_weighs_by_difficulty() {
        let (mut store, dir) = store("pplns");
        let shares = [
            share("alice", 1.0, 1_000), // outside a 5 s window ending at 7 000
            share("alice", 2.0, 3_000),
            share("bob", 1.0, 6_000),
            share("carol", 4.0, 9_000), // after the block
        ];
        store
            .commit(&shares, &[block("b", 7_000, None)])
            .expect("commit");
        let acct = accounting(Scheme::Pplns(Window::Duration { ms: 5_000 }));
        let entries = acct
            .block_entries(store.as_mut(), &block("b", 7_000, None))
            .expect("entries");
        // fee = floor(5_000_012_345 * 12_500 / 1e6) = 62_500_154; 4_937_512_191 split 2 : 1.
        assert_eq!(
            amounts(&entries),
            [
                ("alice", 3_291_674_794, LedgerKind::Credit),
                ("bob", 1_645_837_397, LedgerKind::Credit),
                ("pool", 62_500_154, LedgerKind::Fee),
            ]
        );
        assert_eq!(entries.iter().map(|e| e.amount).sum::<i64>(), 5_000_012_345);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_pplns_window_in_shares_counts_the_last_n() {
        let (mut store, dir) = store("pplns-n");
        let shares = [
            share("alice", 1.0, 1_000),
            share("alice", 1.0, 2_000),
            share("bob", 1.0, 3_000),
            share("carol", 1.0, 4_000),
            share("dave", 1.0, 9_000), // after the block
        ];
        store.commit(&shares, &[]).expect("commit");
        let acct = accounting(Scheme::Pplns(Window::Shares(3)));
        let entries = acct
            .block_entries(store.as_mut(), &block("b", 5_000, None))
            .expect("entries");
        // 4_937_512_191 over alice, bob and carol, one share each: 1_645_837_397 apiece.
        assert_eq!(
            amounts(&entries),
            [
                ("alice", 1_645_837_397, LedgerKind::Credit),
                ("bob", 1_645_837_397, LedgerKind::Credit),
                ("carol", 1_645_837_397, LedgerKind::Credit),
                ("pool", 62_500_154, LedgerKind::Fee),
            ]
        );
        assert_eq!(entries.iter().map(|e| e.amount).sum::<i64>(), 5_000_012_345);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn prop_counts_the_round_since_the_previous_block() {
        let (mut store, dir) = store("prop");
        let shares = [
            share("alice", 1.0, 1_000),
            share("bob", 1.0, 3_000),
            share("bob", 1.0, 4_000),
        ];
        store
            .commit(&shares, &[block("a", 2_000, None), block("b", 5_000, None)])
            .expect("commit");
        let entries = accounting(Scheme::Prop)
            .block_entries(store.as_mut(), &block("b", 5_000, None))
            .expect("entries");
        assert_eq!(
            amounts(&entries),
            [
                ("bob", 4_937_512_191, LedgerKind::Credit),
                ("pool", 62_500_154, LedgerKind::Fee)
            ]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_block_without_shares_is_the_pools() {
        let (mut store, dir) = store("empty");
        store
            .commit(&[], &[block("b", 5_000, None)])
            .expect("commit");
        let entries = accounting(Scheme::Pplns(Window::Duration { ms: 1_000 }))
            .block_entries(store.as_mut(), &block("b", 5_000, None))
            .expect("entries");
        assert_eq!(
            amounts(&entries),
            [("pool", 5_000_012_345, LedgerKind::Fee)]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn solo_credits_the_finder_or_records_its_coinbase() {
        let (mut store, dir) = store("solo");
        let acct = accounting(Scheme::Solo);
        let by_balance = acct
            .block_entries(store.as_mut(), &block("b", 1, None))
            .expect("entries");
        assert_eq!(
            amounts(&by_balance),
            [
                ("carol", 4_937_512_191, LedgerKind::Credit),
                ("pool", 62_500_154, LedgerKind::Fee)
            ]
        );
        let in_coinbase = acct
            .block_entries(store.as_mut(), &block("b", 1, Some("carol")))
            .expect("entries");
        assert_eq!(
            amounts(&in_coinbase),
            [
                ("carol", 4_937_512_191, LedgerKind::Credit),
                ("carol", -4_937_512_191, LedgerKind::Coinbase),
                ("pool", 62_500_154, LedgerKind::Fee)
            ]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn pps_pays_each_share_once_and_the_pool_keeps_blocks() {
        let (mut store, dir) = store("pps");
        let shares = [
            share("alice", 1.0, 1),
            share("alice", 1.0, 2),
            share("bob", 10.0, 3),
        ];
        store.commit(&shares, &[]).expect("commit");
        let pps = accounting(Scheme::Pps);
        assert_eq!(
            pps.pay_shares(store.as_mut(), 2, now_ms()).expect("first"),
            2
        );
        assert_eq!(
            pps.pay_shares(store.as_mut(), 100, now_ms()).expect("rest"),
            1
        );
        assert_eq!(
            pps.pay_shares(store.as_mut(), 100, now_ms())
                .expect("none left"),
            0
        );
        let one = pps_value(
            work_of(DifficultyConvention::Scrypt, 1.0),
            work_of(DifficultyConvention::Scrypt, 1000.0),
            5_000_000_000,
            pps.fee,
        )
        .expect("value");
        // subsidy 5e9 * (1 / 1000) * (1 - 1.25 %) = 4_937_500.
        assert_eq!(one, 4_937_500);
        let balances = store.balances("scrypt").expect("balances");
        assert_eq!(
            balances,
            vec![
                ("alice".to_owned(), 2 * 4_937_500),
                ("bob".to_owned(), 49_375_000)
            ]
        );
        let kept = pps
            .block_entries(store.as_mut(), &block("b", 1, None))
            .expect("entries");
        assert_eq!(amounts(&kept), [("pool", 5_000_012_345, LedgerKind::Fee)]);

        // FPPS counts the job's transaction fees in.
        store
            .commit(&[share("carol", 1.0, 4)], &[])
            .expect("commit");
        let fpps = accounting(Scheme::Fpps);
        assert_eq!(
            fpps.pay_shares(store.as_mut(), 100, now_ms())
                .expect("fpps"),
            1
        );
        let carol = store.ledger("carol").expect("ledger");
        // 5_000_012_345 / 1000 * 0.9875 = 4_937_512.19..., floored.
        assert_eq!(carol[0].amount, 4_937_512);

        // The pool's position: nothing kept yet (no block credited), every share paid.
        let totals = store.ledger_totals("scrypt").expect("totals");
        let paid = 2 * 4_937_500 + 49_375_000 + 4_937_512;
        assert_eq!(pps_position(&totals), (0, paid));

        // A scheme started later pays only the shares from then on.
        store
            .commit(&[share("dave", 1.0, 10), share("erin", 1.0, 20)], &[])
            .expect("commit");
        let later = Accounting {
            since_ms: 20,
            ..accounting(Scheme::Pps)
        };
        assert_eq!(
            later
                .pay_shares(store.as_mut(), 100, now_ms())
                .expect("since"),
            1
        );
        assert!(store.ledger("dave").expect("dave").is_empty());
        assert_eq!(store.ledger("erin").expect("erin").len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
