//! Process limits a pool needs: one file descriptor per miner connection.

/// Descriptors kept for everything but miner connections: the database, the node's RPC,
/// the API, log files.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft limit on open files to the hard limit (as servers do; the soft default of
/// 1,024 is far below a pool's connections) and returns it, when the system has one.
pub(crate) fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::increase_nofile_limit(u64::MAX).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Warns when `connections` miner connections cannot all be served with the descriptors the
/// process may open.
pub(crate) fn check_connections(what: &str, connections: usize) {
    let Some(limit) = raise_open_files() else {
        return;
    };
    let needed = (connections as u64).saturating_add(RESERVED_DESCRIPTORS);
    if needed > limit {
        tracing::warn!(
            "warning: {what} is {connections} but the process may open only {limit} files \
             (the hard limit, `ulimit -Hn`); connections past about {} will be refused",
            limit.saturating_sub(RESERVED_DESCRIPTORS)
        );
    }
}
