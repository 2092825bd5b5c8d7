//! Mining devices behind one trait.
//!
//! A [`Device`] mines one [`DeviceJob`] at a time: a [`ScanJob`](otedama_hash::ScanJob) (the
//! input and its nonce slot), a share [`Target`](otedama_core::Target), the nonce range the
//! device may use (so a caller can split a nonce space between devices, see [`split_nonces`]),
//! and a generation number the caller picks. The device reports through the [`EventSink`] it
//! was started with: each [`DeviceEvent::Found`] carries the generation of the job it was found
//! on, so finds on a replaced job can be told apart and dropped;
//! [`DeviceEvent::Exhausted`] says the whole range is done (time to roll an extranonce);
//! [`DeviceEvent::Failed`] says a thread stopped on an error. [`Device::hashrate`] gives a live,
//! smoothed figure per thread and in total, [`Device::status`] the threads' states, CPU
//! pinning and priority, and [`Device::stop`] (or dropping the device) cancels and joins promptly.
//!
//! [`CpuDevice`] runs one thread per processor (or as many as asked), each with its own kernel
//! [`Worker`](otedama_hash::Worker) from a caller-supplied factory, so any
//! [`PowAlgorithm`](otedama_hash::PowAlgorithm) mines the same way: sha256d, scrypt, RandomX
//! (whose dataset the kernel shares between workers), Ethash and KawPow. Each thread sizes its
//! scan calls from its measured speed to last about [`CpuConfig::chunk_time`], so a new job or a
//! stop is picked up within that time even for slow hashes. With the default `affinity`
//! feature, threads are pinned to processors on Linux, and can be given a lower or higher
//! scheduling priority ([`CpuConfig::priority`]).
//!
//! # Example
//!
//! Mine an easy target with SHA256d on two threads until a solution turns up, check it, stop:
//!
//! ```
//! use std::sync::{mpsc, Arc};
//! use std::time::Duration;
//!
//! use otedama_core::Target;
//! use otedama_devices::{CpuConfig, CpuDevice, Device, DeviceEvent, DeviceJob};
//! use otedama_hash::{PowAlgorithm, ScanJob, Sha256d};
//!
//! let kernel = Arc::new(Sha256d::new());
//! let (events, found) = mpsc::channel();
//! let config = CpuConfig { threads: 2, ..CpuConfig::default() };
//! let mut device = CpuDevice::start_with_kernel(config, Arc::clone(&kernel), events)?;
//!
//! // One hash in 256 meets this target.
//! let mut bytes = [0xff; 32];
//! bytes[0] = 0;
//! let target = Target::from_be_bytes(bytes);
//! let scan = ScanJob::header80([7; 80]);
//! device.set_job(Some(DeviceJob::new(1, scan.clone(), target, 0..1 << 32)?));
//!
//! let solution = loop {
//!     match found.recv_timeout(Duration::from_secs(60))? {
//!         DeviceEvent::Found(f) if f.generation == 1 => break f.solution,
//!         DeviceEvent::Failed(e) => return Err(e.into()),
//!         _ => {}
//!     }
//! };
//! let hash = kernel.hash(&scan.with_nonce(solution.nonce)?)?.hash;
//! assert_eq!(hash, solution.output.hash);
//! assert!(target.is_met_by(&hash));
//!
//! device.stop()?;
//! assert!(device.hashrate().hashes > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

mod affinity;
mod cpu;
mod device;
mod error;
mod priority;

pub use cpu::{CpuConfig, CpuDevice, ThreadPriority, MAX_CPU_THREADS};
pub use device::{
    split_nonces, AffinityStatus, Device, DeviceEvent, DeviceJob, DeviceKind, DeviceStatus,
    EventSink, Found, HashrateReport, PriorityStatus, ThreadHashrate, ThreadState, ThreadStatus,
};
pub use error::{DeviceError, JobError, ParsePriorityError};
