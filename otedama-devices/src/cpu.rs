//! [`CpuDevice`]: mining threads on the host's processors, one kernel worker each.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use otedama_core::Hashrate;
use otedama_hash::{PowAlgorithm, Solution, Worker};

use crate::device::{
    AffinityStatus, Device, DeviceEvent, DeviceJob, DeviceKind, DeviceStatus, EventSink, Found,
    HashrateReport, PriorityStatus, ThreadHashrate, ThreadState, ThreadStatus,
};
use crate::error::{DeviceError, ParsePriorityError};
use crate::{affinity, priority};

/// The most threads one [`CpuDevice`] runs.
pub const MAX_CPU_THREADS: usize = 1024;

/// How a [`CpuDevice`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuConfig {
    /// The device's name, used in thread names and error messages.
    pub name: String,
    /// Mining threads; 0 means one per processor this process may use.
    pub threads: usize,
    /// Pins thread `i` to the `i`-th processor this process may use (round robin when there
    /// are more threads than processors), where the OS allows; a refusal is reported in
    /// [`ThreadStatus::affinity`] and the thread runs unpinned.
    pub pin_threads: bool,
    /// How long one scan call should take. Each thread sizes its chunks of nonces from its
    /// measured speed so that a call lasts about this long: this bounds how late a new job or a
    /// stop is noticed, whatever the algorithm (sha256d, scrypt, RandomX, Ethash).
    pub chunk_time: Duration,
    /// The most nonces one scan call takes.
    pub max_chunk: u64,
    /// The time constant of the smoothed hashrate.
    pub hashrate_window: Duration,
    /// The scheduling priority each thread gives itself when it starts, where the OS allows;
    /// the outcome is reported in [`ThreadStatus::priority`], and a thread whose priority could
    /// not be set mines at the priority it inherited.
    pub priority: ThreadPriority,
}

impl Default for CpuConfig {
    fn default() -> Self {
        CpuConfig {
            name: "cpu".to_owned(),
            threads: 0,
            pin_threads: true,
            chunk_time: Duration::from_millis(50),
            max_chunk: 1 << 24,
            hashrate_window: Duration::from_secs(5),
            priority: ThreadPriority::Normal,
        }
    }
}

/// The scheduling priority of a [`CpuDevice`]'s threads, relative to the rest of the host.
///
/// On Linux (with the `affinity` feature) this is the thread's nice value, see
/// [`ThreadPriority::nice`]; elsewhere only [`ThreadPriority::Normal`] is honoured and the
/// others report [`PriorityStatus::Unsupported`].
///
/// ```
/// use otedama_devices::ThreadPriority;
///
/// assert_eq!(ThreadPriority::parse("LOW"), Some(ThreadPriority::Low));
/// assert_eq!("high".parse::<ThreadPriority>(), Ok(ThreadPriority::High));
/// assert_eq!(ThreadPriority::default().as_str(), "normal");
/// assert_eq!(ThreadPriority::parse("idle"), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThreadPriority {
    /// Below other work (nice 10): mining yields to the host's other programs.
    Low,
    /// As inherited from the process: the threads' priority is not touched.
    #[default]
    Normal,
    /// Above other work (nice -5). Raising a priority needs privileges (`CAP_SYS_NICE`, or a
    /// `RLIMIT_NICE` allowance); without them the threads report [`PriorityStatus::Failed`]
    /// and keep the priority they inherited.
    High,
}

impl ThreadPriority {
    /// Every priority, lowest first.
    pub const ALL: [ThreadPriority; 3] = [
        ThreadPriority::Low,
        ThreadPriority::Normal,
        ThreadPriority::High,
    ];

    /// The priority named `name` (`low`, `normal` or `high`, in any case); `None` for any
    /// other name.
    pub fn parse(name: &str) -> Option<ThreadPriority> {
        ThreadPriority::ALL
            .into_iter()
            .find(|priority| priority.as_str().eq_ignore_ascii_case(name))
    }

    /// The lowercase name, as in configuration files: `low`, `normal` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadPriority::Low => "low",
            ThreadPriority::Normal => "normal",
            ThreadPriority::High => "high",
        }
    }

    /// The nice value a thread sets for itself on Linux (lower is more favoured): 10 for
    /// [`Low`](ThreadPriority::Low), -5 for [`High`](ThreadPriority::High), and `None` for
    /// [`Normal`](ThreadPriority::Normal), which leaves the inherited one.
    pub fn nice(self) -> Option<i32> {
        match self {
            ThreadPriority::Low => Some(10),
            ThreadPriority::Normal => None,
            ThreadPriority::High => Some(-5),
        }
    }
}

impl fmt::Display for ThreadPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ThreadPriority {
    type Err = ParsePriorityError;

    /// As [`ThreadPriority::parse`], with an error that names the input.
    fn from_str(name: &str) -> Result<ThreadPriority, ParsePriorityError> {
        ThreadPriority::parse(name).ok_or_else(|| ParsePriorityError {
            input: name.to_owned(),
        })
    }
}

/// What builds the kernel worker of one thread, given the thread's index.
type Factory = dyn Fn(usize) -> Result<Box<dyn Worker>, Box<dyn Error + Send + Sync>> + Send + Sync;

/// Mining threads on the host's processors.
///
/// Each thread owns one kernel [`Worker`], built on the thread (after pinning and setting its
/// priority) by the factory given to [`CpuDevice::start`]. The threads take chunks of the job's
/// nonce range from a shared cursor, so every nonce is scanned once, a faster thread simply
/// takes more chunks, and [`DeviceEvent::Exhausted`] is sent once the whole range is done.
/// Between chunks each thread checks for a new job and for [`Device::stop`].
pub struct CpuDevice {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl fmt::Debug for CpuDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuDevice")
            .field("name", &self.shared.name)
            .field("threads", &self.shared.slots.len())
            .finish_non_exhaustive()
    }
}

impl CpuDevice {
    /// Starts the threads, builds each one's worker with `factory(thread_index)`, and returns
    /// once every thread is ready (idle, waiting for [`Device::set_job`]).
    ///
    /// Events go to `events`. If the factory fails (or panics) on any thread, every thread is
    /// stopped and joined and the error of the lowest-numbered failing thread is returned.
    pub fn start<F, E, S>(
        config: CpuConfig,
        factory: F,
        events: S,
    ) -> Result<CpuDevice, DeviceError>
    where
        F: Fn(usize) -> Result<Box<dyn Worker>, E> + Send + Sync + 'static,
        E: Into<Box<dyn Error + Send + Sync>>,
        S: EventSink,
    {
        let factory: Arc<Factory> = Arc::new(move |i| factory(i).map_err(Into::into));
        CpuDevice::start_boxed(config, factory, Box::new(events))
    }

    /// As [`CpuDevice::start`], with each thread's worker made by `kernel.worker()`: the kernel
    /// (a RandomX dataset, an Ethash epoch) is shared, the workers are per thread.
    pub fn start_with_kernel<K, S>(
        config: CpuConfig,
        kernel: Arc<K>,
        events: S,
    ) -> Result<CpuDevice, DeviceError>
    where
        K: PowAlgorithm + ?Sized + 'static,
        S: EventSink,
    {
        CpuDevice::start(config, move |_| kernel.worker(), events)
    }

    fn start_boxed(
        config: CpuConfig,
        factory: Arc<Factory>,
        sink: Box<dyn EventSink>,
    ) -> Result<CpuDevice, DeviceError> {
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        if threads > MAX_CPU_THREADS {
            return Err(DeviceError::ThreadCount {
                device: config.name,
                requested: threads,
                max: MAX_CPU_THREADS,
            });
        }
        let plan: Vec<Result<usize, AffinityStatus>> = if config.pin_threads {
            match affinity::allowed_cpus() {
                Ok(cpus) => (0..threads)
                    .map(|i| {
                        cpus.get(i % cpus.len())
                            .copied()
                            .ok_or(AffinityStatus::Failed { os_error: None })
                    })
                    .collect(),
                Err(status) => vec![Err(status); threads],
            }
        } else {
            vec![Err(AffinityStatus::NotRequested); threads]
        };
        let shared = Arc::new(Shared {
            name: config.name,
            cancel: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            work: Mutex::new(WorkSlot {
                epoch: 0,
                job: None,
            }),
            wake: Condvar::new(),
            sink,
            dropped: AtomicU64::new(0),
            slots: (0..threads).map(|_| ThreadSlot::default()).collect(),
            chunk_time: config.chunk_time.as_secs_f64(),
            max_chunk: config.max_chunk.max(1),
            window: config.hashrate_window.as_secs_f64(),
            priority: config.priority,
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut device = CpuDevice {
            shared: Arc::clone(&shared),
            handles: Vec::with_capacity(threads),
        };
        for (index, pin) in plan.into_iter().enumerate() {
            let (shared, factory, ready) =
                (Arc::clone(&shared), Arc::clone(&factory), ready_tx.clone());
            let spawned = std::thread::Builder::new()
                // A NUL byte in a thread name would make the spawn panic.
                .name(format!("{}-{index}", shared.name.replace('\0', "")))
                .spawn(move || thread_main(&shared, index, pin, factory, ready));
            match spawned {
                Ok(handle) => device.handles.push(handle),
                Err(source) => {
                    let error = DeviceError::Spawn {
                        device: device.shared.name.clone(),
                        thread: index,
                        source: Arc::new(source),
                    };
                    device.shutdown();
                    return Err(error);
                }
            }
        }
        drop((ready_tx, factory));
        let mut failures = Vec::new();
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => failures.push(error),
                // Every thread reports before it drops its sender; none left means none will.
                Err(_) => break,
            }
        }
        if let Some(first) = failures.into_iter().min_by_key(|e| e.thread()) {
            device.shutdown();
            return Err(first);
        }
        Ok(device)
    }

    /// The number of mining threads.
    pub fn threads(&self) -> usize {
        self.shared.slots.len()
    }

    /// Cancels and joins every thread.
    fn shutdown(&mut self) {
        self.shared.cancel.store(true, Ordering::Release);
        // Taking the lock orders the flag before any waiting thread's next check.
        drop(self.shared.lock_work());
        self.shared.wake.notify_all();
        for (index, handle) in self.handles.drain(..).enumerate() {
            if handle.join().is_err() {
                // Panics are caught on the thread; this is only a fallback.
                if let Some(slot) = self.shared.slots.get(index) {
                    slot.fail(DeviceError::Panicked {
                        device: self.shared.name.clone(),
                        thread: index,
                        message: "the thread ended with a panic".to_owned(),
                    });
                }
            }
        }
    }
}

impl Device for CpuDevice {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn kind(&self) -> DeviceKind {
        DeviceKind::Cpu
    }

    fn set_job(&self, job: Option<DeviceJob>) {
        let mut work = self.shared.lock_work();
        work.epoch = work.epoch.wrapping_add(1);
        let epoch = work.epoch;
        work.job = job.map(|job| Arc::new(ActiveJob::new(epoch, job)));
        self.shared.epoch.store(epoch, Ordering::Release);
        drop(work);
        self.shared.wake.notify_all();
    }

    fn hashrate(&self) -> HashrateReport {
        let threads: Vec<ThreadHashrate> = self
            .shared
            .slots
            .iter()
            .enumerate()
            .map(|(thread, slot)| ThreadHashrate {
                thread,
                current: hashrate(slot.rate()),
                hashes: slot.hashes.load(Ordering::Relaxed),
            })
            .collect();
        HashrateReport {
            current: hashrate(threads.iter().map(|t| t.current.as_f64()).sum()),
            hashes: threads
                .iter()
                .map(|t| t.hashes)
                .fold(0, u64::saturating_add),
            threads,
        }
    }

    fn status(&self) -> DeviceStatus {
        let generation = self
            .shared
            .lock_work()
            .job
            .as_ref()
            .map(|job| job.job.generation());
        DeviceStatus {
            generation,
            dropped_events: self.shared.dropped.load(Ordering::Relaxed),
            threads: self
                .shared
                .slots
                .iter()
                .enumerate()
                .map(|(thread, slot)| ThreadStatus {
                    thread,
                    state: slot.state(),
                    affinity: slot
                        .affinity
                        .get()
                        .copied()
                        .unwrap_or(AffinityStatus::NotRequested),
                    priority: slot
                        .priority
                        .get()
                        .copied()
                        .unwrap_or(PriorityStatus::NotRequested),
                    error: slot.error.get().cloned(),
                })
                .collect(),
        }
    }

    fn stop(&mut self) -> Result<(), DeviceError> {
        self.shutdown();
        match self.shared.slots.iter().find_map(|slot| slot.error.get()) {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }
}

impl Drop for CpuDevice {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn hashrate(per_sec: f64) -> Hashrate {
    Hashrate::new(per_sec).unwrap_or(Hashrate::ZERO)
}

/// What the threads share with the device handle.
struct Shared {
    name: String,
    cancel: AtomicBool,
    /// A copy of `work.epoch`, read between chunks without the lock.
    epoch: AtomicU64,
    work: Mutex<WorkSlot>,
    /// Signalled when the job changes or the device stops.
    wake: Condvar,
    sink: Box<dyn EventSink>,
    dropped: AtomicU64,
    slots: Vec<ThreadSlot>,
    /// Seconds one scan call should take.
    chunk_time: f64,
    max_chunk: u64,
    /// Seconds: the smoothed hashrate's time constant.
    window: f64,
    /// The priority each thread gives itself.
    priority: ThreadPriority,
}

impl Shared {
    fn lock_work(&self) -> MutexGuard<'_, WorkSlot> {
        self.work.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, event: DeviceEvent) {
        if !self.sink.deliver(event) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The current job unless it is the one of epoch `seen`; waits (idle) until there is one.
    /// `None` once the device stops.
    fn next_job(
        &self,
        seen: Option<u64>,
        slot: &ThreadSlot,
        meter: &mut RateMeter,
    ) -> Option<Arc<ActiveJob>> {
        let mut work = self.lock_work();
        let mut idle = false;
        loop {
            if self.cancel.load(Ordering::Acquire) {
                return None;
            }
            if let Some(job) = work.job.as_ref().filter(|job| Some(job.epoch) != seen) {
                return Some(Arc::clone(job));
            }
            if !idle {
                idle = true;
                slot.set_state(ThreadState::Idle);
                slot.set_rate(0.0);
                meter.reset();
            }
            work = self.wake.wait(work).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn is_current(&self, job: &ActiveJob) -> bool {
        !self.cancel.load(Ordering::Relaxed) && self.epoch.load(Ordering::Acquire) == job.epoch
    }
}

/// The job being mined, behind the lock.
struct WorkSlot {
    /// Bumped by every `set_job`.
    epoch: u64,
    job: Option<Arc<ActiveJob>>,
}

/// A job with the progress of its nonce range.
struct ActiveJob {
    epoch: u64,
    job: DeviceJob,
    /// The next nonce to hand out.
    cursor: AtomicU64,
    /// How many nonces have been scanned to the end of their chunk.
    done: AtomicU64,
    /// How many nonces the range holds.
    len: u64,
}

impl ActiveJob {
    fn new(epoch: u64, job: DeviceJob) -> ActiveJob {
        let nonces = job.nonces();
        ActiveJob {
            epoch,
            cursor: AtomicU64::new(nonces.start),
            done: AtomicU64::new(0),
            len: nonces.end.saturating_sub(nonces.start),
            job,
        }
    }

    /// Takes the next `chunk` nonces (fewer at the end of the range); `None` when none are left.
    fn claim(&self, chunk: u64) -> Option<Range<u64>> {
        let end = self.job.nonces().end;
        let start = self
            .cursor
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |at| {
                (at < end).then(|| at.saturating_add(chunk).min(end))
            })
            .ok()?;
        Some(start..start.saturating_add(chunk).min(end))
    }

    /// Records `count` nonces as scanned; `true` for the call that completes the range.
    fn complete(&self, count: u64) -> bool {
        let before = self.done.fetch_add(count, Ordering::AcqRel);
        before.saturating_add(count) == self.len
    }
}

/// One thread's figures, written by the thread and read by the device handle.
#[derive(Default)]
struct ThreadSlot {
    state: AtomicU8,
    hashes: AtomicU64,
    /// The smoothed hashrate, as `f64` bits.
    rate: AtomicU64,
    affinity: OnceLock<AffinityStatus>,
    priority: OnceLock<PriorityStatus>,
    error: OnceLock<DeviceError>,
}

impl ThreadSlot {
    const STATES: [ThreadState; 5] = [
        ThreadState::Starting,
        ThreadState::Idle,
        ThreadState::Mining,
        ThreadState::Failed,
        ThreadState::Stopped,
    ];

    fn set_state(&self, state: ThreadState) {
        let code = ThreadSlot::STATES
            .iter()
            .position(|s| *s == state)
            .unwrap_or(0);
        self.state.store(code as u8, Ordering::Release);
    }

    fn state(&self) -> ThreadState {
        let code = usize::from(self.state.load(Ordering::Acquire));
        ThreadSlot::STATES
            .get(code)
            .copied()
            .unwrap_or(ThreadState::Starting)
    }

    fn set_rate(&self, per_sec: f64) {
        self.rate.store(per_sec.to_bits(), Ordering::Relaxed);
    }

    fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// Marks the thread failed with `error` (the first failure is kept).
    fn fail(&self, error: DeviceError) {
        let _ = self.error.set(error);
        self.set_rate(0.0);
        self.set_state(ThreadState::Failed);
    }
}

/// A hashrate smoothed exponentially over time, weighted by how long each sample took, and
/// corrected for its start so that the first sample counts in full.
struct RateMeter {
    window: f64,
    sum: f64,
    weight: f64,
}

impl RateMeter {
    fn new(window: f64) -> RateMeter {
        RateMeter {
            window,
            sum: 0.0,
            weight: 0.0,
        }
    }

    fn reset(&mut self) {
        self.sum = 0.0;
        self.weight = 0.0;
    }

    /// Adds `hashes` done in `secs` and returns the smoothed rate.
    fn record(&mut self, hashes: u64, secs: f64) -> f64 {
        let secs = secs.max(1e-9);
        let sample = hashes as f64 / secs;
        let keep = if self.window > 0.0 {
            (-secs / self.window).exp()
        } else {
            0.0
        };
        self.sum = self.sum * keep + (1.0 - keep) * sample;
        self.weight = self.weight * keep + (1.0 - keep);
        if self.weight > 0.0 {
            self.sum / self.weight
        } else {
            sample
        }
    }
}

/// The next chunk size: what `chunk_time` holds at the measured speed, growing at most
/// fourfold per call, between 1 and `max`.
fn next_chunk(chunk: u64, hashed: u64, secs: f64, chunk_time: f64, max: u64) -> u64 {
    let ceiling = chunk.saturating_mul(4).clamp(1, max);
    if hashed == 0 || secs <= 0.0 {
        return ceiling;
    }
    // A float-to-int `as` saturates, and NaN becomes 0.
    let ideal = (hashed as f64 / secs * chunk_time) as u64;
    ideal.clamp(1, ceiling)
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// A mining thread: pin, set its priority, build the worker, report ready, mine until stopped or failed.
fn thread_main(
    shared: &Shared,
    index: usize,
    pin: Result<usize, AffinityStatus>,
    factory: Arc<Factory>,
    ready: mpsc::Sender<Result<(), DeviceError>>,
) {
    let Some(slot) = shared.slots.get(index) else {
        return;
    };
    let affinity = match pin {
        Ok(cpu) => affinity::pin_current_thread(cpu),
        Err(status) => status,
    };
    let _ = slot.affinity.set(affinity);
    let _ = slot
        .priority
        .set(priority::apply_to_current_thread(shared.priority));
    let built = catch_unwind(AssertUnwindSafe(|| factory(index)));
    drop(factory);
    let worker = match built {
        Ok(Ok(worker)) => worker,
        Ok(Err(source)) => {
            let error = DeviceError::Kernel {
                device: shared.name.clone(),
                thread: index,
                source: Arc::from(source),
            };
            slot.fail(error.clone());
            let _ = ready.send(Err(error));
            return;
        }
        Err(payload) => {
            let error = DeviceError::Panicked {
                device: shared.name.clone(),
                thread: index,
                message: panic_message(payload.as_ref()),
            };
            slot.fail(error.clone());
            let _ = ready.send(Err(error));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let outcome = catch_unwind(AssertUnwindSafe(|| mine(shared, index, slot, worker)));
    let error = match outcome {
        Ok(Ok(())) => {
            slot.set_rate(0.0);
            slot.set_state(ThreadState::Stopped);
            return;
        }
        Ok(Err(error)) => error,
        Err(payload) => DeviceError::Panicked {
            device: shared.name.clone(),
            thread: index,
            message: panic_message(payload.as_ref()),
        },
    };
    slot.fail(error.clone());
    // The sink may be what panicked; a second panic must not escape the thread.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        shared.deliver(DeviceEvent::Failed(error))
    }));
}

/// Mines job after job until the device stops; returns a kernel failure.
fn mine(
    shared: &Shared,
    index: usize,
    slot: &ThreadSlot,
    mut worker: Box<dyn Worker>,
) -> Result<(), DeviceError> {
    let mut meter = RateMeter::new(shared.window);
    let mut chunk = 1u64;
    let mut found: Vec<Solution> = Vec::new();
    let mut seen = None;
    while let Some(job) = shared.next_job(seen, slot, &mut meter) {
        seen = Some(job.epoch);
        slot.set_state(ThreadState::Mining);
        let generation = job.job.generation();
        while shared.is_current(&job) {
            let Some(nonces) = job.claim(chunk) else {
                break;
            };
            let count = nonces.end - nonces.start;
            found.clear();
            let began = Instant::now();
            let hashed = worker
                .scan(job.job.scan(), nonces.clone(), job.job.target(), &mut found)
                .map_err(|source| DeviceError::Scan {
                    device: shared.name.clone(),
                    thread: index,
                    generation,
                    start: nonces.start,
                    end: nonces.end,
                    source: Arc::new(source),
                })?;
            let secs = began.elapsed().as_secs_f64();
            slot.hashes.fetch_add(hashed, Ordering::Relaxed);
            slot.set_rate(meter.record(hashed, secs));
            for solution in found.drain(..) {
                shared.deliver(DeviceEvent::Found(Found {
                    generation,
                    thread: index,
                    solution,
                }));
            }
            if job.complete(count) {
                shared.deliver(DeviceEvent::Exhausted { generation });
            }
            chunk = next_chunk(chunk, hashed, secs, shared.chunk_time, shared.max_chunk);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
