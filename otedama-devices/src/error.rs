//! The errors of building jobs and running devices.

use std::error::Error;
use std::sync::Arc;

use otedama_hash::HashError;

/// Why a [`DeviceJob`](crate::DeviceJob) could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The nonce range holds no nonce.
    #[error("job {generation}: the nonce range {start}..{end} is empty")]
    EmptyRange {
        /// The job's generation.
        generation: u64,
        /// The range's start.
        start: u64,
        /// The range's end (exclusive).
        end: u64,
    },
    /// The nonce range reaches past what the job's nonce slot holds.
    #[error("job {generation}: {source}")]
    NonceRange {
        /// The job's generation.
        generation: u64,
        /// What the scan job said about the range.
        #[source]
        source: Arc<HashError>,
    },
}

/// Why a name is not a [`ThreadPriority`](crate::ThreadPriority).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown thread priority {input:?}: expected low, normal or high")]
pub struct ParsePriorityError {
    /// The name that was given.
    pub input: String,
}

/// Why a device, or one of its threads, stopped or could not start.
///
/// Cheap to clone (sources are shared), so the same error can be delivered as a
/// [`DeviceEvent::Failed`](crate::DeviceEvent::Failed), kept in the thread's
/// [`ThreadStatus`](crate::ThreadStatus) and returned by [`Device::stop`](crate::Device::stop).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// More threads were asked for than a device runs.
    #[error("device {device}: {requested} threads asked for, at most {max} are supported")]
    ThreadCount {
        /// The device's name.
        device: String,
        /// The number asked for.
        requested: usize,
        /// The largest number supported.
        max: usize,
    },
    /// The operating system refused to start a thread.
    #[error("device {device}: could not start thread {thread}: {source}")]
    Spawn {
        /// The device's name.
        device: String,
        /// The thread's index.
        thread: usize,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The caller's kernel factory failed for a thread.
    #[error("device {device}: thread {thread} could not build its kernel: {source}")]
    Kernel {
        /// The device's name.
        device: String,
        /// The thread's index.
        thread: usize,
        /// The factory's error.
        #[source]
        source: Arc<dyn Error + Send + Sync>,
    },
    /// A kernel failed while scanning; the thread stopped.
    #[error(
        "device {device}: thread {thread} failed scanning nonces {start}..{end} of job {generation}: {source}"
    )]
    Scan {
        /// The device's name.
        device: String,
        /// The thread's index.
        thread: usize,
        /// The job's generation.
        generation: u64,
        /// The first nonce of the failed scan.
        start: u64,
        /// One past its last nonce.
        end: u64,
        /// The kernel's error.
        #[source]
        source: Arc<HashError>,
    },
    /// A kernel, or the event sink, panicked; the thread stopped.
    #[error("device {device}: thread {thread} panicked: {message}")]
    Panicked {
        /// The device's name.
        device: String,
        /// The thread's index.
        thread: usize,
        /// The panic's message, when it had one.
        message: String,
    },
}

impl DeviceError {
    /// The index of the thread the error is about, if it is about one.
    pub fn thread(&self) -> Option<usize> {
        match self {
            DeviceError::ThreadCount { .. } => None,
            DeviceError::Spawn { thread, .. }
            | DeviceError::Kernel { thread, .. }
            | DeviceError::Scan { thread, .. }
            | DeviceError::Panicked { thread, .. } => Some(*thread),
        }
    }
}
