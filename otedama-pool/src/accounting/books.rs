//! The money rules, written once over the row stores for every database: each public step is
//! one database transaction, all or nothing.
//!
//! The steps are methods of `dyn Store`, so that a job on the share log's writer thread calls
//! them on the store it is handed (`log.run(|store| store.credit_block(..))`).

use crate::store::{
    BlockCredit, BlockStatus, LedgerKind, NewEntry, PaymentStatus, PaymentTransaction, Refusal,
    Rows, Store, StoreError,
};

impl dyn Store + '_ {
    /// In one transaction: marks block `hash` confirmed and, unless its credit stands
    /// already, writes `entries` to the ledger and the balances (a block reversed when it left
    /// the main chain is credited again when it comes back). Returns whether it credited.
    pub fn credit_block(
        &mut self,
        hash: &str,
        detail: &str,
        entries: &[NewEntry],
        time_ms: i64,
    ) -> Result<bool, StoreError> {
        self.atomically(|rows| {
            let (coin, credit) = block(rows, hash, BlockStatus::Confirmed, detail)?;
            let fresh = credit != BlockCredit::Credited;
            if fresh {
                rows.append(&coin, entries, Some(hash), None, time_ms)?;
                rows.set_block_credit(hash, BlockCredit::Credited)?;
            }
            Ok(fresh)
        })
    }

    /// In one transaction: marks block `hash` orphaned and, when its credit stands, reverses
    /// every ledger line it wrote since its last reversal. Returns the reversal lines written.
    pub fn orphan_block(
        &mut self,
        hash: &str,
        detail: &str,
        time_ms: i64,
    ) -> Result<Vec<NewEntry>, StoreError> {
        self.atomically(|rows| {
            let (coin, credit) = block(rows, hash, BlockStatus::Orphaned, detail)?;
            if credit != BlockCredit::Credited {
                return Ok(Vec::new());
            }
            let lines = rows.block_lines(hash)?;
            let reversal = reversal_of(hash, &lines);
            rows.append(&coin, &reversal, Some(hash), None, time_ms)?;
            rows.set_block_credit(hash, BlockCredit::Reversed)?;
            Ok(reversal)
        })
    }

    /// Takes or renews the right to pay `coin` from this database for `ttl_ms`: true when
    /// `owner` holds it (it is free, expired, or already `owner`'s). Two pools sharing a
    /// database do not pay the same coin at once.
    pub fn claim_payer(
        &mut self,
        coin: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        self.atomically(|rows| {
            rows.lock_payments(coin)?;
            let held = match rows.payer(coin)? {
                None => true,
                Some((holder, expires_ms)) => holder == owner || expires_ms < now_ms,
            };
            if held {
                rows.set_payer(coin, owner, now_ms.saturating_add(ttl_ms))?;
            }
            Ok(held)
        })
    }

    /// In one transaction: records a signed, not yet broadcast payment (`sending`, with its
    /// txid and transaction) and debits every output's balance. Refuses, writing nothing,
    /// when another payment of `coin` is still `sending` or an output is more than its
    /// address's balance. Returns the payment's id.
    /// With `fee_account`, the network fee is debited from that account (the pool's) in the
    /// same transaction.
    pub fn begin_payment(
        &mut self,
        coin: &str,
        outputs: &[(String, u64)],
        transaction: &PaymentTransaction,
        fee_account: Option<&str>,
        time_ms: i64,
    ) -> Result<i64, StoreError> {
        self.atomically(|rows| {
            // One payment of a coin begins at a time, across every pool on this database.
            rows.lock_payments(coin)?;
            if rows.payment_count(coin, PaymentStatus::Sending)? > 0 {
                return Err(Refusal::PaymentInFlight {
                    coin: coin.to_owned(),
                }
                .into());
            }
            for (address, amount) in outputs {
                let balance = rows.balance(coin, address)?;
                if u64::try_from(balance).map_or(true, |b| b < *amount) {
                    return Err(Refusal::OverBalance {
                        address: address.clone(),
                        balance,
                        amount: *amount,
                    }
                    .into());
                }
            }
            let id = rows.add_payment(
                coin,
                PaymentStatus::Sending,
                transaction,
                fee_account,
                outputs,
                time_ms,
            )?;
            let debits = payment_debits(id, outputs, transaction, fee_account)?;
            rows.append(coin, &debits, None, Some(id), time_ms)?;
            Ok(id)
        })
    }

    /// Marks a `sending` payment sent (the network has it). Returns false unless it was
    /// `sending`.
    pub fn finish_payment(&mut self, id: i64) -> Result<bool, StoreError> {
        self.atomically(|rows| {
            move_payment(rows, id, &[PaymentStatus::Sending], PaymentStatus::Sent)
        })
    }

    /// Marks a `sent` payment confirmed (buried deep enough to stay). Returns false unless it
    /// was `sent`.
    pub fn confirm_payment(&mut self, id: i64) -> Result<bool, StoreError> {
        self.atomically(|rows| {
            move_payment(rows, id, &[PaymentStatus::Sent], PaymentStatus::Confirmed)
        })
    }

    /// In one transaction: marks a `sending` or `sent` payment failed (it never will be
    /// mined) and returns its amounts, network fee included, to the balances. Returns false
    /// unless it was `sending` or `sent`.
    pub fn fail_payment(
        &mut self,
        id: i64,
        reason: &str,
        time_ms: i64,
    ) -> Result<bool, StoreError> {
        self.atomically(|rows| {
            let Some(payment) = rows.payment(id)? else {
                return Ok(false);
            };
            if !matches!(payment.status, PaymentStatus::Sending | PaymentStatus::Sent) {
                return Ok(false);
            }
            rows.set_payment_status(id, PaymentStatus::Failed, Some(reason))?;
            let mut returned: Vec<NewEntry> = payment
                .outputs
                .iter()
                .map(|(address, amount)| NewEntry {
                    address: address.clone(),
                    amount: to_signed(*amount),
                    kind: LedgerKind::Payment,
                    memo: format!("payment {id} failed ({reason}): returned"),
                })
                .collect();
            if let (Some(account), Some(fee)) =
                (payment.fee_account, payment.tx_fee.filter(|f| *f > 0))
            {
                returned.push(NewEntry {
                    address: account,
                    amount: to_signed(fee),
                    kind: LedgerKind::Payment,
                    memo: format!("payment {id} failed ({reason}): network fee returned"),
                });
            }
            rows.append(&payment.coin, &returned, None, Some(id), time_ms)?;
            Ok(true)
        })
    }

    /// In one transaction: marks the shares `ids` paid and writes `entries`; refuses, writing
    /// nothing, if any of them was paid already.
    pub fn credit_shares(
        &mut self,
        coin: &str,
        ids: &[i64],
        entries: &[NewEntry],
        time_ms: i64,
    ) -> Result<(), StoreError> {
        self.atomically(|rows| {
            let marked = rows.mark_shares_paid(ids)?;
            let wanted = ids.len() as u64;
            if marked != wanted {
                // Another pool paid some of them first: pay nothing twice (the rollback
                // undoes the marks).
                return Err(Refusal::SharesPaid {
                    already: wanted.saturating_sub(marked),
                    wanted,
                }
                .into());
            }
            rows.append(coin, entries, None, None, time_ms)
        })
    }

    /// When `coin` started paying under `scheme`: the time of the first run with it since the
    /// last change, recorded now if it changed. Shares from before belong to the old scheme.
    pub fn scheme_since(
        &mut self,
        coin: &str,
        scheme: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.atomically(|rows| {
            rows.lock_schemes(coin)?;
            match rows.last_scheme(coin)? {
                Some((last, since_ms)) if last == scheme => Ok(since_ms),
                _ => {
                    rows.add_scheme(coin, scheme, now_ms)?;
                    Ok(now_ms)
                }
            }
        })
    }
}

fn to_signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Sets block `hash`'s status; returns its coin and how it stands credited.
fn block(
    rows: &mut dyn Rows,
    hash: &str,
    status: BlockStatus,
    detail: &str,
) -> Result<(String, BlockCredit), StoreError> {
    let found = rows
        .block_credit(hash)?
        .ok_or_else(|| Refusal::UnknownBlock {
            hash: hash.to_owned(),
        })?;
    rows.set_block_status(hash, status, Some(detail))?;
    Ok(found)
}

/// The lines undoing a block's credit: every line of it after its last reversal, negated.
fn reversal_of(hash: &str, lines: &[crate::store::LedgerEntry]) -> Vec<NewEntry> {
    let since = lines
        .iter()
        .rposition(|l| l.kind == LedgerKind::Reversal)
        .map_or(0, |last| last + 1);
    lines[since..]
        .iter()
        .map(|l| NewEntry {
            address: l.address.clone(),
            amount: -l.amount,
            kind: LedgerKind::Reversal,
            memo: format!("block {hash} orphaned: undoes its {} line", l.kind.as_str()),
        })
        .collect()
}

/// The ledger lines of payment `id`: each output debited, and the network fee from
/// `fee_account` when the pool pays it.
fn payment_debits(
    id: i64,
    outputs: &[(String, u64)],
    transaction: &PaymentTransaction,
    fee_account: Option<&str>,
) -> Result<Vec<NewEntry>, StoreError> {
    let mut debits = Vec::with_capacity(outputs.len() + 1);
    for (address, amount) in outputs {
        let amount =
            i64::try_from(*amount).map_err(|_| Refusal::AmountTooLarge { amount: *amount })?;
        debits.push(NewEntry {
            address: address.clone(),
            amount: -amount,
            kind: LedgerKind::Payment,
            memo: format!("payment {id}, transaction {}", transaction.txid),
        });
    }
    if let Some(account) = fee_account.filter(|_| transaction.fee > 0) {
        debits.push(NewEntry {
            address: account.to_owned(),
            amount: -to_signed(transaction.fee),
            kind: LedgerKind::Payment,
            memo: format!(
                "network fee of payment {id}, transaction {}",
                transaction.txid
            ),
        });
    }
    Ok(debits)
}

/// Moves payment `id` to `to` when it stands at one of `from`; returns whether it moved.
fn move_payment(
    rows: &mut dyn Rows,
    id: i64,
    from: &[PaymentStatus],
    to: PaymentStatus,
) -> Result<bool, StoreError> {
    match rows.payment(id)? {
        Some(p) if from.contains(&p.status) => {
            rows.set_payment_status(id, to, None)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LedgerEntry;

    fn line(id: i64, address: &str, amount: i64, kind: LedgerKind) -> LedgerEntry {
        LedgerEntry {
            id,
            time_ms: id,
            coin: "scrypt".into(),
            address: address.into(),
            amount,
            kind,
            block_hash: Some("b".into()),
            payment_id: None,
            memo: String::new(),
        }
    }

    #[test]
    fn a_reversal_undoes_the_lines_since_the_last_one() {
        let credit = [
            line(1, "alice", 100, LedgerKind::Credit),
            line(2, "pool", 1, LedgerKind::Fee),
        ];
        let first = reversal_of("b", &credit);
        assert_eq!(
            first
                .iter()
                .map(|e| (e.address.as_str(), e.amount, e.kind))
                .collect::<Vec<_>>(),
            [
                ("alice", -100, LedgerKind::Reversal),
                ("pool", -1, LedgerKind::Reversal)
            ]
        );
        assert_eq!(first[1].memo, "block b orphaned: undoes its fee line");
        let mut lines = credit.to_vec();
        lines.push(line(3, "alice", -100, LedgerKind::Reversal));
        lines.push(line(4, "pool", -1, LedgerKind::Reversal));
        assert!(reversal_of("b", &lines).is_empty(), "reversed already");
        lines.push(line(5, "carol", 7, LedgerKind::Credit));
        lines.push(line(6, "carol", -7, LedgerKind::Coinbase));
        assert_eq!(
            reversal_of("b", &lines)
                .iter()
                .map(|e| e.amount)
                .collect::<Vec<_>>(),
            [-7, 7],
            "the credit since, a SOLO coinbase line with it"
        );
        assert!(reversal_of("b", &[]).is_empty());
    }

    #[test]
    fn a_payment_debits_its_outputs_and_the_pools_fee() {
        let tx = PaymentTransaction {
            txid: "t".into(),
            hex: String::new(),
            fee: 250,
        };
        let outputs = [("alice".to_owned(), 10), ("bob".to_owned(), 20)];
        let debits = payment_debits(7, &outputs, &tx, Some("pool")).expect("debits");
        assert_eq!(
            debits
                .iter()
                .map(|e| (e.address.as_str(), e.amount, e.kind))
                .collect::<Vec<_>>(),
            [
                ("alice", -10, LedgerKind::Payment),
                ("bob", -20, LedgerKind::Payment),
                ("pool", -250, LedgerKind::Payment)
            ]
        );
        assert_eq!(debits[0].memo, "payment 7, transaction t");
        assert_eq!(debits[2].memo, "network fee of payment 7, transaction t");
        assert_eq!(
            payment_debits(7, &outputs, &tx, None)
                .expect("miners pay the fee")
                .len(),
            2
        );
        let free = PaymentTransaction { fee: 0, ..tx };
        assert_eq!(
            payment_debits(7, &outputs, &free, Some("pool"))
                .expect("no fee")
                .len(),
            2
        );
        let huge = [("alice".to_owned(), u64::MAX)];
        assert!(matches!(
            payment_debits(7, &huge, &free, None),
            Err(StoreError::Refused(_))
        ));
    }
}
