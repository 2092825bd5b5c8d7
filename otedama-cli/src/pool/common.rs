//! What both pool paths share: how a run is driven, and how reports are printed.

use otedama_hash::Algorithm;
use otedama_pool::accounting::{self, NoteLevel};
use otedama_pool::service::ServiceEvent;
use otedama_pool::Report;

use crate::mine::RandomXModeArg;

/// How a pool run is driven.
pub(crate) struct ServeOptions {
    /// Stop after this long instead of at SIGINT/SIGTERM.
    pub(crate) seconds: Option<f64>,
    /// Whether vardiff runs.
    pub(crate) vardiff: bool,
    /// Told the Stratum address once the pool listens.
    pub(crate) ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
    /// The built-in RandomX miner's mode.
    pub(crate) randomx_mode: RandomXModeArg,
}

/// Prints what the pool reports.
pub(crate) fn print_event(algo: Algorithm, event: ServiceEvent) {
    match event {
        ServiceEvent::Engine(Report::NewHeight { height }) => {
            println!("[{algo}] new block to mine: height {height}")
        }
        ServiceEvent::Engine(Report::JobFailed { height, error }) => {
            eprintln!("cannot build a job for height {height}: {error}")
        }
        ServiceEvent::Engine(Report::BlockSubmitted {
            height,
            hash,
            finder,
            result,
        }) => println!(
            "[{algo}] BLOCK height {height} {hash} by {finder}: {}",
            match result {
                Ok(()) => "accepted".to_owned(),
                Err(e) => e.to_string(),
            }
        ),
        ServiceEvent::Source { error, retry_in } => {
            eprintln!("work source: {error}; keeping the last job, retrying in {retry_in:?}")
        }
        ServiceEvent::BlockNotRecorded { hash, error } => {
            eprintln!("cannot record block {hash}: {error}")
        }
        ServiceEvent::Refused {
            username,
            peer,
            reason,
        } => eprintln!("refused worker {username:?} from {peer}: {reason}"),
        ServiceEvent::Closed { peer, reason } => eprintln!("closed {peer}: {reason:?}"),
        _ => {}
    }
}

/// Prints what the accounting reports: progress to stdout, warnings to stderr.
pub(crate) fn print_note(note: accounting::Note) {
    match note.level {
        NoteLevel::Info => println!("[{}] {}", note.coin, note.text),
        _ => eprintln!("[{}] {}", note.coin, note.text),
    }
}
