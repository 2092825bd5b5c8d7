//! Tests of the CPU device's scheduling: finds, job switches, exhaustion, cancellation,
//! hashrate and failures. Real hashing uses sha256d with easy targets; scheduling is checked
//! with a probe kernel that records every nonce it is given.

use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use otedama_core::Target;
use otedama_hash::{HashError, PowOutput, ScanJob, Sha256d};

use super::*;

/// Long enough for a loaded two-core machine; the tests wait for events, not for this.
const PATIENCE: Duration = Duration::from_secs(60);

/// A target one hash in 256 meets (the top byte must be zero).
fn easy_target() -> Target {
    let mut bytes = [0xff; 32];
    bytes[0] = 0;
    Target::from_be_bytes(bytes)
}

fn config(threads: usize) -> CpuConfig {
    CpuConfig {
        name: "test".to_owned(),
        threads,
        ..CpuConfig::default()
    }
}

/// The next event `keep` accepts, skipping the others; panics after [`PATIENCE`].
fn wait_for<T>(rx: &Receiver<DeviceEvent>, mut keep: impl FnMut(DeviceEvent) -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) => {
                if let Some(t) = keep(event) {
                    return t;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("no matching event within {PATIENCE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the device dropped its sink"),
        }
    }
}

/// Waits until every thread is in `state`.
fn wait_all(device: &CpuDevice, state: ThreadState) {
    let deadline = Instant::now() + PATIENCE;
    while !device.status().threads.iter().all(|t| t.state == state) {
        assert!(
            Instant::now() < deadline,
            "the threads never reached {state:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Everything that arrives within `window`.
fn collect_for(rx: &Receiver<DeviceEvent>, window: Duration) -> Vec<DeviceEvent> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    while let Ok(event) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        out.push(event);
    }
    out
}

fn verify(kernel: &Sha256d, scan: &ScanJob, target: &Target, found: &Found) -> bool {
    let input = scan.with_nonce(found.solution.nonce).expect("nonce fits");
    let output = kernel.hash(&input).expect("sha256d hashes");
    output == found.solution.output && target.is_met_by(&output.hash)
}

/// What the probe kernel does; shared by all its workers.
#[derive(Default)]
struct Probe {
    /// How often each nonce below its length was scanned.
    counts: Mutex<Vec<u32>>,
    /// Every scan call.
    calls: Mutex<Vec<Call>>,
    /// Workers alive.
    live: AtomicUsize,
    /// Time one nonce takes.
    per_nonce: Duration,
    /// Fail with an error on this nonce.
    fail_at: Option<u64>,
    /// Panic on this nonce.
    panic_at: Option<u64>,
    /// Report every nonce that is a multiple of this as a solution (0: none).
    found_every: u64,
}

impl Probe {
    fn new(counts: usize) -> Arc<Probe> {
        Arc::new(Probe {
            counts: Mutex::new(vec![0; counts]),
            ..Probe::default()
        })
    }

    fn worker(self: &Arc<Probe>) -> Result<Box<dyn Worker>, HashError> {
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(ProbeWorker(Arc::clone(self))))
    }

    fn counts(&self) -> Vec<u32> {
        self.counts.lock().expect("not poisoned").clone()
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("not poisoned").clone()
    }
}

/// One scan call the probe saw.
#[derive(Debug, Clone)]
struct Call {
    /// The first input byte (the probe job's tag).
    tag: u8,
    nonces: Range<u64>,
    at: Instant,
    /// The calling thread's name.
    thread: Option<String>,
}

struct ProbeWorker(Arc<Probe>);

impl Drop for ProbeWorker {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Worker for ProbeWorker {
    fn scan(
        &mut self,
        job: &ScanJob,
        nonces: Range<u64>,
        _target: &Target,
        found: &mut Vec<Solution>,
    ) -> Result<u64, HashError> {
        let probe = &self.0;
        let first = job.input().first().copied().unwrap_or(0);
        probe.calls.lock().expect("not poisoned").push(Call {
            tag: first,
            nonces: nonces.clone(),
            at: Instant::now(),
            thread: std::thread::current().name().map(str::to_owned),
        });
        for nonce in nonces.clone() {
            if probe.fail_at == Some(nonce) {
                return Err(HashError::BackendUnavailable("probe"));
            }
            if probe.panic_at == Some(nonce) {
                panic!("probe panicked at nonce {nonce}");
            }
            let mut counts = probe.counts.lock().expect("not poisoned");
            if let Some(count) = usize::try_from(nonce).ok().and_then(|i| counts.get_mut(i)) {
                *count += 1;
            }
            if probe.found_every > 0 && nonce % probe.found_every == 0 {
                found.push(Solution {
                    nonce,
                    output: PowOutput::hash_only([first; 32]),
                });
            }
        }
        let count = u32::try_from(nonces.end - nonces.start).unwrap_or(u32::MAX);
        std::thread::sleep(probe.per_nonce.saturating_mul(count));
        Ok(nonces.end - nonces.start)
    }
}

fn start_probe(config: CpuConfig, probe: &Arc<Probe>) -> (CpuDevice, Receiver<DeviceEvent>) {
    let (tx, rx) = mpsc::channel();
    let probe = Arc::clone(probe);
    let device = CpuDevice::start(config, move |_| probe.worker(), tx).expect("device starts");
    (device, rx)
}

/// A probe job: input of 80 bytes starting with `tag`, 32-bit nonce at the end.
fn probe_job(generation: u64, tag: u8, nonces: Range<u64>) -> DeviceJob {
    let mut header = [0; 80];
    header[0] = tag;
    DeviceJob::new(generation, ScanJob::header80(header), Target::MAX, nonces).expect("valid job")
}

#[test]
fn sha256d_finds_meet_the_target() {
    let kernel = Arc::new(Sha256d::new());
    let (tx, rx) = mpsc::channel();
    let mut device =
        CpuDevice::start_with_kernel(config(2), Arc::clone(&kernel), tx).expect("device starts");
    assert_eq!(device.threads(), 2);
    assert_eq!(device.kind(), DeviceKind::Cpu);
    assert_eq!(device.name(), "test");
    let target = easy_target();
    let scan = ScanJob::header80([0x42; 80]);
    device.set_job(Some(
        DeviceJob::new(7, scan.clone(), target, 1000..1 << 32).expect("valid job"),
    ));
    let mut finds = Vec::new();
    while finds.len() < 20 {
        finds.push(wait_for(&rx, |e| match e {
            DeviceEvent::Found(f) => Some(f),
            DeviceEvent::Failed(e) => panic!("{e}"),
            _ => None,
        }));
    }
    for found in &finds {
        assert_eq!(found.generation, 7);
        assert!(found.thread < 2);
        assert!(found.solution.nonce >= 1000);
        assert!(verify(&kernel, &scan, &target, found), "{found:?}");
    }
    let mut nonces: Vec<u64> = finds.iter().map(|f| f.solution.nonce).collect();
    nonces.sort_unstable();
    nonces.dedup();
    assert_eq!(nonces.len(), finds.len(), "a nonce was reported twice");
    assert_eq!(device.status().generation, Some(7));
    device.stop().expect("no thread failed");
}

#[test]
fn every_nonce_is_scanned_exactly_once() {
    let probe = Arc::new(Probe {
        counts: Mutex::new(vec![0; 12_000]),
        per_nonce: Duration::from_micros(20),
        ..Probe::default()
    });
    let (mut device, rx) = start_probe(config(3), &probe);
    device.set_job(Some(probe_job(3, 1, 1000..11_000)));
    let generation = wait_for(&rx, |e| match e {
        DeviceEvent::Exhausted { generation } => Some(generation),
        DeviceEvent::Failed(e) => panic!("{e}"),
        _ => None,
    });
    assert_eq!(generation, 3);
    let counts = probe.counts();
    let outside = counts
        .iter()
        .enumerate()
        .filter(|&(n, &c)| !(1000..11_000).contains(&n) && c != 0)
        .count();
    assert_eq!(outside, 0, "nonces outside the range were scanned");
    let wrong: Vec<(usize, u32)> = counts
        .iter()
        .copied()
        .enumerate()
        .filter(|&(n, c)| (1000..11_000).contains(&n) && c != 1)
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "nonces scanned other than once: {wrong:?}"
    );
    // The scan calls tile the range: sorted, each starts where the previous ended.
    let mut ranges: Vec<Range<u64>> = probe.calls().into_iter().map(|c| c.nonces).collect();
    ranges.sort_by_key(|r| r.start);
    let mut next = 1000;
    for range in &ranges {
        assert_eq!(range.start, next, "overlap or gap at {range:?}");
        next = range.end;
    }
    assert_eq!(next, 11_000);
    // Exhaustion is reported once, and the threads go idle with the counters settled.
    let later = collect_for(&rx, Duration::from_millis(300));
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, DeviceEvent::Exhausted { .. })),
        "{later:?}"
    );
    wait_all(&device, ThreadState::Idle);
    let report = device.hashrate();
    assert_eq!(report.hashes, 10_000);
    assert_eq!(report.threads.len(), 3);
    assert_eq!(report.current, Hashrate::ZERO);
    let status = device.status();
    assert!(status
        .threads
        .iter()
        .all(|t| t.state == ThreadState::Idle && t.error.is_none()));
    device.stop().expect("no thread failed");
}

#[test]
fn a_new_job_makes_the_old_one_stale() {
    let kernel = Arc::new(Sha256d::new());
    let (tx, rx) = mpsc::channel();
    let mut device =
        CpuDevice::start_with_kernel(config(2), Arc::clone(&kernel), tx).expect("device starts");
    let target = easy_target();
    let (old, new) = (ScanJob::header80([1; 80]), ScanJob::header80([2; 80]));
    device.set_job(Some(DeviceJob::full_range(1, old.clone(), target)));
    let first = wait_for(&rx, |e| match e {
        DeviceEvent::Found(f) => Some(f),
        _ => None,
    });
    assert_eq!(first.generation, 1);
    assert!(verify(&kernel, &old, &target, &first));

    device.set_job(Some(DeviceJob::full_range(2, new.clone(), target)));
    // What the caller does: keep the finds of the current generation, drop the others.
    let current = 2;
    let mut kept = Vec::new();
    let mut stale = Vec::new();
    while kept.len() < 10 {
        let found = wait_for(&rx, |e| match e {
            DeviceEvent::Found(f) => Some(f),
            _ => None,
        });
        if found.generation == current {
            kept.push(found);
        } else {
            stale.push(found);
        }
    }
    for found in &kept {
        assert!(verify(&kernel, &new, &target, found), "{found:?}");
    }
    // A stale find is one that was mined on the old job: it verifies only against that one.
    for found in &stale {
        assert_eq!(found.generation, 1);
        assert!(verify(&kernel, &old, &target, found), "{found:?}");
        assert!(!verify(&kernel, &new, &target, found), "{found:?}");
    }
    // Chunks last about 50 ms: a second after the switch nothing of the old job is left.
    std::thread::sleep(Duration::from_secs(1));
    let settled = collect_for(&rx, Duration::from_millis(10));
    drop(settled);
    let after = collect_for(&rx, Duration::from_millis(500));
    for event in &after {
        if let DeviceEvent::Found(found) = event {
            assert_eq!(found.generation, 2, "the old job is still mined: {found:?}");
        }
    }
    assert_eq!(device.status().generation, Some(2));
    device.stop().expect("no thread failed");
}

#[test]
fn slow_kernels_switch_jobs_and_stop_promptly() {
    // 2 ms a nonce: as slow as RandomX in light mode.
    let probe = Arc::new(Probe {
        per_nonce: Duration::from_millis(2),
        ..Probe::default()
    });
    let (mut device, _rx) = start_probe(config(2), &probe);
    device.set_job(Some(probe_job(1, 1, 0..1 << 32)));
    std::thread::sleep(Duration::from_millis(500));
    let switched = Instant::now();
    device.set_job(Some(probe_job(2, 2, 0..1 << 32)));
    let deadline = switched + PATIENCE;
    let picked_up = loop {
        // Every thread has started a chunk of the new job.
        let mut threads_on_new: Vec<Option<String>> = probe
            .calls()
            .into_iter()
            .filter(|c| c.tag == 2 && c.at >= switched)
            .map(|c| c.thread)
            .collect();
        threads_on_new.sort();
        threads_on_new.dedup();
        if threads_on_new.len() == 2 {
            break switched.elapsed();
        }
        assert!(Instant::now() < deadline, "the new job was not picked up");
        std::thread::sleep(Duration::from_millis(5));
    };
    // A chunk lasts about 50 ms; allow for a loaded machine.
    assert!(picked_up < Duration::from_millis(750), "{picked_up:?}");
    let chunks: Vec<u64> = probe
        .calls()
        .iter()
        .map(|c| c.nonces.end - c.nonces.start)
        .collect();
    assert!(
        chunks.iter().all(|&c| c <= 100),
        "chunks far beyond 50 ms of work: {chunks:?}"
    );

    let stopping = Instant::now();
    device.stop().expect("no thread failed");
    let stopped = stopping.elapsed();
    assert!(stopped < Duration::from_millis(750), "{stopped:?}");
    assert_eq!(
        probe.live.load(Ordering::SeqCst),
        0,
        "a worker outlived stop"
    );
    let status = device.status();
    assert!(status
        .threads
        .iter()
        .all(|t| t.state == ThreadState::Stopped));
    assert_eq!(device.hashrate().current, Hashrate::ZERO);
    // Stopping twice is harmless; a job set after stop is ignored.
    device.stop().expect("still no failure");
    device.set_job(Some(probe_job(3, 3, 0..10)));
}

#[test]
fn dropping_the_device_joins_its_threads() {
    let probe = Arc::new(Probe {
        per_nonce: Duration::from_millis(1),
        ..Probe::default()
    });
    let (device, _rx) = start_probe(config(3), &probe);
    assert_eq!(probe.live.load(Ordering::SeqCst), 3);
    device.set_job(Some(probe_job(1, 1, 0..1 << 32)));
    std::thread::sleep(Duration::from_millis(200));
    let dropping = Instant::now();
    drop(device);
    assert!(dropping.elapsed() < Duration::from_millis(750));
    assert_eq!(probe.live.load(Ordering::SeqCst), 0);

    // Idle threads (no job ever set) are woken and joined too.
    let (device, _rx) = start_probe(config(2), &probe);
    assert_eq!(probe.live.load(Ordering::SeqCst), 2);
    drop(device);
    assert_eq!(probe.live.load(Ordering::SeqCst), 0);
}

#[test]
fn hashrate_is_live() {
    let (tx, _rx) = mpsc::channel();
    let mut device =
        CpuDevice::start_with_kernel(config(1), Arc::new(Sha256d::new()), tx).expect("starts");
    assert_eq!(device.hashrate().current, Hashrate::ZERO);
    device.set_job(Some(DeviceJob::full_range(
        1,
        ScanJob::header80([3; 80]),
        Target::ZERO,
    )));
    let deadline = Instant::now() + PATIENCE;
    let report = loop {
        let report = device.hashrate();
        if report.current > Hashrate::ZERO && report.hashes > 0 {
            break report;
        }
        assert!(Instant::now() < deadline, "the hashrate stayed at zero");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(report.threads.len(), 1);
    assert_eq!(report.threads[0].current, report.current);
    assert_eq!(report.threads[0].hashes, report.hashes);
    assert_eq!(device.status().threads[0].state, ThreadState::Mining);

    // Idle: the live figure drops to zero, the total stays.
    device.set_job(None);
    wait_all(&device, ThreadState::Idle);
    let idle = device.hashrate();
    assert_eq!(idle.current, Hashrate::ZERO);
    assert!(idle.hashes >= report.hashes);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(device.hashrate().hashes, idle.hashes);
    assert_eq!(device.status().generation, None);
    device.stop().expect("no thread failed");
}

#[test]
fn a_factory_error_fails_the_start() {
    let probe = Probe::new(0);
    let factory_probe = Arc::clone(&probe);
    let (tx, _rx) = mpsc::channel();
    let error = CpuDevice::start(
        config(3),
        move |thread| match thread {
            1 => Err(HashError::BackendUnavailable("avx9")),
            _ => factory_probe.worker(),
        },
        tx,
    )
    .expect_err("thread 1 cannot build its kernel");
    match &error {
        DeviceError::Kernel { device, thread, .. } => {
            assert_eq!((device.as_str(), *thread), ("test", 1));
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("avx9"), "{error}");
    // The threads that did build their workers were stopped and joined.
    assert_eq!(probe.live.load(Ordering::SeqCst), 0);

    let (tx, _rx) = mpsc::channel();
    let error = CpuDevice::start(
        config(1),
        |_| -> Result<Box<dyn Worker>, HashError> { panic!("no kernel today") },
        tx,
    )
    .expect_err("the factory panics");
    assert!(
        matches!(&error, DeviceError::Panicked { thread: 0, message, .. } if message == "no kernel today"),
        "{error:?}"
    );
}

#[test]
fn a_scan_error_stops_only_its_thread() {
    let probe = Arc::new(Probe {
        counts: Mutex::new(vec![0; 100]),
        fail_at: Some(50),
        ..Probe::default()
    });
    let (mut device, rx) = start_probe(config(2), &probe);
    device.set_job(Some(probe_job(9, 1, 0..1 << 32)));
    let error = wait_for(&rx, |e| match e {
        DeviceEvent::Failed(e) => Some(e),
        _ => None,
    });
    let DeviceError::Scan {
        thread,
        generation,
        start,
        end,
        ..
    } = error.clone()
    else {
        panic!("{error:?}")
    };
    assert_eq!(generation, 9);
    assert!((start..end).contains(&50), "{error}");
    let status = device.status();
    assert_eq!(status.threads[thread].state, ThreadState::Failed);
    assert!(status.threads[thread].error.is_some());
    // The other thread keeps mining.
    let other = 1 - thread;
    let before = device.hashrate().threads[other].hashes;
    let deadline = Instant::now() + PATIENCE;
    while device.hashrate().threads[other].hashes == before {
        assert!(Instant::now() < deadline, "the other thread stopped too");
        std::thread::sleep(Duration::from_millis(5));
    }
    let stopped = device.stop().expect_err("a thread failed");
    assert_eq!(stopped.to_string(), error.to_string());
}

#[test]
fn a_kernel_panic_is_an_error_not_a_crash() {
    let probe = Arc::new(Probe {
        panic_at: Some(3),
        ..Probe::default()
    });
    let (mut device, rx) = start_probe(config(1), &probe);
    device.set_job(Some(probe_job(4, 1, 0..1000)));
    let error = wait_for(&rx, |e| match e {
        DeviceEvent::Failed(e) => Some(e),
        _ => None,
    });
    assert!(
        matches!(&error, DeviceError::Panicked { thread: 0, message, .. } if message.contains("nonce 3")),
        "{error:?}"
    );
    assert!(device.stop().is_err());
    assert_eq!(probe.live.load(Ordering::SeqCst), 0);
}

#[test]
fn a_full_bounded_sink_drops_and_counts() {
    let probe = Arc::new(Probe {
        found_every: 1,
        ..Probe::default()
    });
    let (tx, rx) = mpsc::sync_channel(4);
    let factory_probe = Arc::clone(&probe);
    let mut device =
        CpuDevice::start(config(1), move |_| factory_probe.worker(), tx).expect("starts");
    wait_all(&device, ThreadState::Idle);
    device.set_job(Some(probe_job(1, 1, 0..1000)));
    // Idle again once the range is done and every event delivered.
    let deadline = Instant::now() + PATIENCE;
    while device.hashrate().hashes < 1000 {
        assert!(Instant::now() < deadline, "the range was not finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_all(&device, ThreadState::Idle);
    // 1000 finds and one exhaustion into a queue of 4.
    assert_eq!(device.status().dropped_events, 1001 - 4);
    assert_eq!(rx.try_iter().count(), 4);
    device.stop().expect("no thread failed");

    // A closure sink forwards anywhere.
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let factory_probe = Arc::clone(&probe);
    let mut device = CpuDevice::start(
        config(1),
        move |_| factory_probe.worker(),
        move |_event: DeviceEvent| {
            counter.fetch_add(1, Ordering::SeqCst);
            true
        },
    )
    .expect("starts");
    device.set_job(Some(probe_job(1, 1, 0..10)));
    let deadline = Instant::now() + PATIENCE;
    while seen.load(Ordering::SeqCst) < 11 {
        assert!(Instant::now() < deadline, "events went missing");
        std::thread::sleep(Duration::from_millis(5));
    }
    device.stop().expect("no thread failed");
}

#[test]
fn devices_are_trait_objects() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CpuDevice>();
    send_sync::<DeviceEvent>();
    let probe = Probe::new(0);
    let odd_name = CpuConfig {
        name: "cpu\0x".to_owned(),
        ..config(1)
    };
    let (device, _rx) = start_probe(odd_name, &probe);
    let mut devices: Vec<Box<dyn Device>> = vec![Box::new(device)];
    for device in &mut devices {
        assert_eq!(device.name(), "cpu\0x");
        assert_eq!(device.kind().to_string(), "cpu");
        device.set_job(Some(probe_job(1, 1, 0..100)));
        device.stop().expect("no thread failed");
    }
    drop(devices);
    assert_eq!(probe.live.load(Ordering::SeqCst), 0);
}

#[test]
fn thread_counts_and_affinity() {
    let probe = Probe::new(0);
    let (tx, _rx) = mpsc::channel();
    let factory_probe = Arc::clone(&probe);
    let error = CpuDevice::start(
        config(MAX_CPU_THREADS + 1),
        move |_| factory_probe.worker(),
        tx,
    )
    .expect_err("too many threads");
    assert!(matches!(error, DeviceError::ThreadCount { .. }));

    // 0 threads: one per processor.
    let (device, _rx) = start_probe(config(0), &probe);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(device.threads(), cpus);
    wait_all(&device, ThreadState::Idle);
    for thread in device.status().threads {
        assert_eq!(thread.state, ThreadState::Idle);
        if cfg!(all(feature = "affinity", target_os = "linux")) {
            assert!(
                matches!(
                    thread.affinity,
                    AffinityStatus::Pinned { .. } | AffinityStatus::Failed { .. }
                ),
                "{}",
                thread.affinity
            );
        } else {
            assert_eq!(thread.affinity, AffinityStatus::Unsupported);
        }
    }
    drop(device);

    let unpinned = CpuConfig {
        pin_threads: false,
        ..config(2)
    };
    let (device, _rx) = start_probe(unpinned, &probe);
    assert!(device
        .status()
        .threads
        .iter()
        .all(|t| t.affinity == AffinityStatus::NotRequested));
}

/// The calling thread's nice value, read back from `/proc/thread-self/stat` (field 19); `None`
/// where there is no such file (not Linux).
fn current_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The name (field 2) is in parentheses and may hold spaces; field 3 follows the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19 - 3)?.parse().ok()
}

/// Starts two threads at `priority`; returns each thread's status and the nice value it read
/// back on itself while building its worker.
fn start_at(priority: ThreadPriority) -> Vec<(ThreadStatus, Option<i32>)> {
    let probe = Probe::new(0);
    let nices = Arc::new(Mutex::new(vec![None; 2]));
    let (factory_probe, factory_nices) = (Arc::clone(&probe), Arc::clone(&nices));
    let (tx, _rx) = mpsc::channel();
    let config = CpuConfig {
        pin_threads: false,
        priority,
        ..config(2)
    };
    let mut device = CpuDevice::start(
        config,
        move |i| {
            if let Some(nice) = factory_nices.lock().expect("not poisoned").get_mut(i) {
                *nice = current_nice();
            }
            factory_probe.worker()
        },
        tx,
    )
    .expect("device starts");
    wait_all(&device, ThreadState::Idle);
    let status = device.status().threads;
    device.stop().expect("no thread failed");
    let nices = nices.lock().expect("not poisoned").clone();
    status.into_iter().zip(nices).collect()
}

#[test]
fn thread_priorities_are_applied_per_thread() {
    let supported = cfg!(all(feature = "affinity", target_os = "linux"));
    // Threads inherit the nice value of the thread that starts them.
    let inherited = current_nice();
    if cfg!(target_os = "linux") {
        assert!(inherited.is_some(), "cannot read /proc/thread-self/stat");
    }

    for (thread, nice) in start_at(ThreadPriority::Normal) {
        assert_eq!(thread.priority, PriorityStatus::NotRequested);
        assert_eq!(nice, inherited, "normal leaves the nice value alone");
    }

    for priority in [ThreadPriority::Low, ThreadPriority::High] {
        let wanted = priority.nice().expect("low and high set a nice value");
        // Lowering a priority (a higher nice value) needs no privileges; raising it does.
        let raises = inherited.is_none_or(|now| wanted < now);
        for (thread, nice) in start_at(priority) {
            match thread.priority {
                PriorityStatus::Applied { nice: applied } => {
                    assert!(supported, "{priority}: {}", thread.priority);
                    assert_eq!(applied, wanted, "{priority}");
                    if cfg!(target_os = "linux") {
                        assert_eq!(nice, Some(wanted), "{priority}: the kernel's nice value");
                    }
                }
                PriorityStatus::Failed { os_error } => {
                    assert!(supported && raises, "{priority}: {}", thread.priority);
                    let kind = os_error.map(|e| std::io::Error::from_raw_os_error(e).kind());
                    // EACCES and EPERM both mean missing privileges.
                    assert_eq!(
                        kind,
                        Some(std::io::ErrorKind::PermissionDenied),
                        "{priority}"
                    );
                    assert_eq!(nice, inherited, "{priority}: a refusal changes nothing");
                }
                PriorityStatus::Unsupported => assert!(!supported, "{priority}"),
                other => panic!("{priority}: unexpected {other}"),
            }
        }
    }

    // Only the mining threads changed, never the thread (or process) that started them.
    assert_eq!(current_nice(), inherited);
}

#[test]
fn thread_priorities_parse_and_print() {
    assert_eq!(CpuConfig::default().priority, ThreadPriority::Normal);
    assert_eq!(ThreadPriority::default(), ThreadPriority::Normal);
    for (name, priority) in [
        ("low", ThreadPriority::Low),
        ("Normal", ThreadPriority::Normal),
        ("HIGH", ThreadPriority::High),
        ("hIgH", ThreadPriority::High),
    ] {
        assert_eq!(ThreadPriority::parse(name), Some(priority));
        assert_eq!(name.parse::<ThreadPriority>(), Ok(priority));
        assert_eq!(priority.as_str(), name.to_ascii_lowercase());
        assert_eq!(priority.to_string(), priority.as_str());
    }
    for name in ["", "lo", " low", "low ", "realtime", "-5"] {
        assert_eq!(ThreadPriority::parse(name), None, "{name:?}");
        let error = name.parse::<ThreadPriority>().expect_err("not a priority");
        assert_eq!(error.input, name);
        assert!(error.to_string().contains("low, normal or high"), "{error}");
    }
    for priority in ThreadPriority::ALL {
        assert_eq!(ThreadPriority::parse(priority.as_str()), Some(priority));
    }
    assert_eq!(ThreadPriority::Low.nice(), Some(10));
    assert_eq!(ThreadPriority::Normal.nice(), None);
    assert_eq!(ThreadPriority::High.nice(), Some(-5));
    assert_eq!(PriorityStatus::Applied { nice: 10 }.to_string(), "nice 10");
}

#[test]
fn chunks_follow_the_measured_speed() {
    // Grows at most fourfold, from 1.
    assert_eq!(next_chunk(1, 1, 1e-6, 0.05, 1 << 24), 4);
    // Settles where a call takes `chunk_time`.
    assert_eq!(next_chunk(1000, 1000, 0.1, 0.05, 1 << 24), 500);
    assert_eq!(next_chunk(1 << 20, 1 << 20, 0.05, 0.05, 1 << 24), 1 << 20);
    // Never below 1, never above the cap, no nonsense from odd timings.
    assert_eq!(next_chunk(8, 1, 10.0, 0.05, 1 << 24), 1);
    assert_eq!(next_chunk(1 << 30, 1 << 30, 1e-3, 0.05, 1 << 24), 1 << 24);
    assert_eq!(next_chunk(5, 5, 0.0, 0.05, 1 << 24), 20);
    assert_eq!(next_chunk(5, 0, 0.1, 0.05, 1 << 24), 20);
    assert_eq!(
        next_chunk(u64::MAX, u64::MAX, 1e-9, 0.05, u64::MAX),
        u64::MAX
    );
}

#[test]
fn the_rate_meter_smooths_over_time() {
    let mut meter = RateMeter::new(5.0);
    // The first sample counts in full.
    assert!((meter.record(100, 0.001) - 100_000.0).abs() < 1e-6);
    // Steady input stays steady: a minute at 100 kH/s.
    for _ in 0..1200 {
        meter.record(5_000, 0.05);
    }
    assert!((meter.record(100, 0.001) - 100_000.0).abs() < 1e-3);
    // A drop to 50 kH/s shows after about the window: 63 % of the way after 5 s.
    let mut rate = 0.0;
    for _ in 0..100 {
        rate = meter.record(2_500, 0.05);
    }
    let expected = 100_000.0 - (1.0 - (-1.0f64).exp()) * 50_000.0;
    assert!((rate - expected).abs() < 500.0, "{rate} vs {expected}");
    meter.reset();
    assert!((meter.record(10, 1.0) - 10.0).abs() < 1e-9);
    // No window: the last sample.
    let mut raw = RateMeter::new(0.0);
    raw.record(10, 1.0);
    assert!((raw.record(20, 1.0) - 20.0).abs() < 1e-9);
    // A zero duration does not divide by zero.
    assert!(raw.record(1, 0.0).is_finite());
}

#[test]
fn randomx_light_mines_switches_and_stops() {
    use otedama_hash::{RandomX, RandomXMode};

    let kernel = Arc::new(RandomX::new(b"otedama devices", RandomXMode::Light, 1).expect("cache"));
    let (tx, rx) = mpsc::channel();
    let mut device =
        CpuDevice::start_with_kernel(config(2), Arc::clone(&kernel), tx).expect("device starts");
    // One hash in 16 meets this target.
    let mut bytes = [0xff; 32];
    bytes[0] = 0x0f;
    let target = Target::from_be_bytes(bytes);
    let blobs = [vec![1u8; 76], vec![2u8; 76]];
    for (generation, blob) in (1u64..).zip(&blobs) {
        let scan = ScanJob::monero_blob(blob.clone()).expect("nonce slot fits");
        device.set_job(Some(DeviceJob::full_range(
            generation,
            scan.clone(),
            target,
        )));
        let found = wait_for(&rx, |e| match e {
            DeviceEvent::Found(f) if f.generation == generation => Some(f),
            DeviceEvent::Failed(e) => panic!("{e}"),
            _ => None,
        });
        let input = scan.with_nonce(found.solution.nonce).expect("nonce fits");
        let output = kernel.hash(&input).expect("randomx hashes");
        assert_eq!(output, found.solution.output);
        assert!(target.is_met_by(&output.hash));
    }
    assert!(device.hashrate().current > Hashrate::ZERO);
    let stopping = Instant::now();
    device.stop().expect("no thread failed");
    let stopped = stopping.elapsed();
    assert!(stopped < Duration::from_millis(750), "{stopped:?}");
}
