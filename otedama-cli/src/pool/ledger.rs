//! `otedama-cli pool ledger --address A`: every line behind an address's balance.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::config::Config;
use otedama_pool::store::{display_database, is_postgres_url, Store};

/// Arguments of `otedama-cli pool ledger`.
#[derive(Debug, Clone, Args)]
pub(crate) struct LedgerArgs {
    /// The payout address whose ledger is shown.
    #[arg(long)]
    address: String,
    /// The pool's YAML configuration (for `pool.database`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// pool.database: a SQLite file or a postgres:// URL.
    #[arg(long)]
    database: Option<String>,
}

/// Arguments of `otedama-cli pool payment`: settling by hand a payment the pool left open.
#[derive(Debug, Clone, Args)]
pub(crate) struct PaymentArgs {
    /// The payment's number (as the pool's messages and the ledger name it).
    #[arg(long)]
    id: i64,
    /// What became of it, checked on the chain: `sent` (mined, or sure to be) or `failed`
    /// (it never will be mined: its amounts return to the balances).
    #[arg(long, value_enum)]
    mark: Settle,
    /// Why, kept with the payment.
    #[arg(long, default_value = "settled by the operator")]
    reason: String,
    /// Who settles it, for the audit log (the login name when left out).
    #[arg(long)]
    by: Option<String>,
    /// The pool's YAML configuration (for `pool.database`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// pool.database: a SQLite file or a postgres:// URL.
    #[arg(long)]
    database: Option<String>,
}

/// Arguments of `otedama-cli pool audit`: the audit log, newest first.
#[derive(Debug, Clone, Args)]
pub(crate) struct AuditArgs {
    /// How many entries.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// The pool's YAML configuration (for `pool.database`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// pool.database: a SQLite file or a postgres:// URL.
    #[arg(long)]
    database: Option<String>,
}

/// Prints the audit log.
pub(crate) fn audit(args: &AuditArgs) -> Result<()> {
    let (mut store, shown) = open_store(&args.config, &args.database)?;
    let entries = store
        .audit_log(args.limit)
        .with_context(|| format!("cannot read the audit log of {shown}"))?;
    if entries.is_empty() {
        println!("the audit log of {shown} is empty");
    }
    for e in entries {
        println!(
            "{}  {:<10} {:<16} {}",
            utc(e.time_ms),
            e.actor,
            e.action,
            e.detail
        );
    }
    Ok(())
}

/// How a payment is settled by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Settle {
    /// The network has it.
    Sent,
    /// It never will be mined.
    Failed,
}

/// Opens the database a configuration file or a `--database` names.
fn open_store(
    config: &Option<PathBuf>,
    database: &Option<String>,
) -> Result<(Box<dyn Store>, String)> {
    let config = Config::open(config.as_deref())?;
    let database = database
        .clone()
        .unwrap_or_else(|| config.pool.database.clone());
    let shown = display_database(&database);
    // Looking into a pool's books never creates an empty SQLite file by mistake.
    if !is_postgres_url(&database) && !std::path::Path::new(&database).exists() {
        anyhow::bail!("no database at {shown}: give --database or --config");
    }
    let store =
        otedama_pool::store::open(&database).with_context(|| format!("cannot open {shown}"))?;
    Ok((store, shown))
}

/// Marks an open payment sent or failed.
pub(crate) fn settle(args: &PaymentArgs) -> Result<()> {
    let (mut store, shown) = open_store(&args.config, &args.database)?;
    let changed = match args.mark {
        Settle::Sent => store.finish_payment(args.id),
        Settle::Failed => {
            store.fail_payment(args.id, &args.reason, otedama_pool::accounting::now_ms())
        }
    }
    .context("cannot settle the payment")?;
    if !changed {
        anyhow::bail!(
            "payment {} in {shown} is not open (only a payment being sent can be marked sent, and one being sent or sent can be marked failed)",
            args.id
        );
    }
    let actor = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    store
        .audit(&otedama_pool::AuditEntry {
            time_ms: otedama_pool::accounting::now_ms(),
            actor,
            action: "payment-settled".into(),
            detail: format!(
                "payment {} marked {}: {}",
                args.id,
                match args.mark {
                    Settle::Sent => "sent",
                    Settle::Failed => "failed",
                },
                args.reason
            ),
        })
        .context("the payment is settled, but its audit entry could not be written")?;
    println!(
        "payment {} marked {}",
        args.id,
        match args.mark {
            Settle::Sent => "sent",
            Settle::Failed => "failed; its amounts are back in the balances",
        }
    );
    Ok(())
}

/// `days` since 1970-01-01 as (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn utc(time_ms: i64) -> String {
    let secs = time_ms.div_euclid(1000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Prints the ledger of `args.address`, with a running balance per coin.
pub(crate) fn run(args: &LedgerArgs) -> Result<()> {
    let (mut store, shown) = open_store(&args.config, &args.database)?;
    let lines = store
        .ledger(&args.address)
        .context("cannot read the ledger")?;
    println!("ledger of {} in {shown}", args.address);
    if lines.is_empty() {
        println!("no ledger lines: nothing credited or paid to this address");
        return Ok(());
    }
    println!(
        "{:>6}  {:<19}  {:<8}  {:<8}  {:>16}  {:>16}  memo",
        "line", "time (UTC)", "coin", "kind", "amount", "balance"
    );
    let mut running: std::collections::BTreeMap<String, i64> = Default::default();
    for l in &lines {
        let balance = running.entry(l.coin.clone()).or_insert(0);
        *balance = balance.saturating_add(l.amount);
        println!(
            "{:>6}  {:<19}  {:<8}  {:<8}  {:>+16}  {:>16}  {}",
            l.id,
            utc(l.time_ms),
            l.coin,
            l.kind.as_str(),
            l.amount,
            balance,
            l.memo
        );
    }
    for (coin, balance) in &running {
        let stored = store
            .balances(coin)
            .context("cannot read the balances")?
            .into_iter()
            .find(|(a, _)| *a == args.address)
            .map_or(0, |(_, b)| b);
        println!("balance {coin}: {balance} (smallest unit)");
        if stored != *balance {
            // The balance table and the ledger are written in one transaction; a difference
            // means the database was edited by hand.
            println!("warning: the balances table says {stored} for {coin}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_603_661_123), "2026-11-25 10:47:41");
    }
}
