//! A Stratum v1 front for one upstream channel, sans-IO: many v1 miners downstream share the
//! extranonce space of one upstream connection (a Stratum V2 extended channel, or a v1
//! subscription), and their shares go upstream when they meet the upstream target.
//!
//! [`Proxy`] sits between an upstream miner session (any [`MinerProtocol`] with the v1
//! [`MinerEvent`]s and [`MinerShare`]s, such as
//! [`Sv2MinerSession`](crate::sv2::miner::Sv2MinerSession)) and the downstream
//! [`PoolSession`](crate::PoolSession)s:
//!
//! - **Extranonce split.** The upstream channel's extranonce (prefix `P`, `n` bytes to roll)
//!   is split in two: each downstream miner's extranonce1 is `P` followed by a counter of
//!   `k` bytes from an [`ExtranonceAllocator`], and it rolls the remaining `n - k` bytes as
//!   its extranonce2. So the upstream extranonce of a downstream share is the counter and
//!   the miner's extranonce2, and no two miners ever search the same space.
//! - **Jobs.** Every upstream job is announced downstream unchanged, its chain tip numbered
//!   so that the downstream sessions call the jobs of an older tip stale.
//! - **Shares.** A downstream share is checked here: its job must be one of the upstream's
//!   live jobs, its version bits inside the job's mask, and its hash must meet the
//!   downstream difficulty. A share that also meets the upstream difficulty is forwarded,
//!   and its downstream answer waits for the upstream's; the others are answered at once.
//!
//! With the feature `tokio`, [`run_proxy`] runs it: one upstream connection, one v1
//! server downstream.
//!
//! The proxy keeps no books: what downstream miners earn is the upstream pool's to count
//! (per worker, through the channel's `user_identity`). Its downstream answers only say
//! that the work was valid.
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use otedama_stratum::proxy::{Proxy, ProxyConfig, ProxyEvent};
//! use otedama_stratum::{MinerEvent, MinerJob, Notify};
//!
//! let mut proxy: Proxy<u32> = Proxy::new(ProxyConfig::default());
//! proxy.handle_upstream(MinerEvent::Subscribed {
//!     extranonce1: vec![0xaa, 0xbb, 0xcc, 0xdd],
//!     extranonce2_size: 8,
//!     session_id: None,
//! });
//! let job = MinerJob {
//!     notify: Notify {
//!         job_id: "1".into(),
//!         prevhash: [0; 32],
//!         coinb1: vec![1, 0, 0, 0],
//!         coinb2: vec![0, 0, 0, 0],
//!         merkle_branch: vec![],
//!         version: 0x2000_0000,
//!         nbits: 0x1d00_ffff,
//!         ntime: 1_700_000_000,
//!         clean_jobs: true,
//!     },
//!     difficulty: 65_536.0,
//!     extranonce1: vec![0xaa, 0xbb, 0xcc, 0xdd],
//!     extranonce2_size: 8,
//!     version_mask: 0x1fff_e000,
//!     clean: true,
//! };
//! proxy.handle_upstream(MinerEvent::NewJob(job));
//! let Some(ProxyEvent::Ready(downstream)) = proxy.poll_event() else { panic!() };
//! assert_eq!(downstream.upstream_difficulty, 65_536.0);
//! let Some(ProxyEvent::Job(announcement)) = proxy.poll_event() else { panic!() };
//! assert_eq!(announcement.notify.job_id, "1");
//! // Each downstream miner rolls 4 bytes after the prefix and its own 4-byte counter.
//! assert_eq!(downstream.extranonce2_size, 4);
//! let first = downstream.allocator.allocate(None).expect("a free extranonce1");
//! assert_eq!(&first.as_bytes()[..4], &[0xaa, 0xbb, 0xcc, 0xdd]);
//! assert_eq!(first.as_bytes().len(), 8);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "tokio")]
pub use crate::tokio::proxy::{run_proxy, ProxyError, ProxyServerConfig, ProxyStatus};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use otedama_core::{sha256d, DifficultyConvention, JobId, Share};

use crate::{
    ErrorCode, ExtranonceAllocator, JobAnnouncement, MinerEvent, MinerJob, MinerShare,
    ShareSubmission, ShareVerdict, StratumError,
};

/// The proof-of-work hash of an 80-byte header, in the order the hash function outputs it.
pub type HeaderHash = fn(&[u8; 80]) -> [u8; 32];

/// Bitcoin's header hash: SHA-256 twice.
pub fn sha256d_header(header: &[u8; 80]) -> [u8; 32] {
    sha256d(header)
}

/// Settings of a [`Proxy`].
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// How many extranonce2 bytes each downstream miner should roll. The rest of the
    /// upstream extranonce (at least 1 byte, at most 8) numbers the downstream miners; when
    /// the upstream gives fewer bytes than this and one, the miners roll fewer.
    pub downstream_extranonce2_size: usize,
    /// The fewest extranonce2 bytes a downstream miner may be left to roll (cgminer wants 2).
    pub min_downstream_extranonce2_size: usize,
    /// How a hash and a difficulty compare.
    pub convention: DifficultyConvention,
    /// The header hash (SHA-256d for Bitcoin's family).
    pub hash: HeaderHash,
    /// Upstream jobs kept for late shares.
    pub max_jobs: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            downstream_extranonce2_size: 4,
            min_downstream_extranonce2_size: 2,
            convention: DifficultyConvention::Bitcoin,
            hash: sha256d_header,
            max_jobs: 16,
        }
    }
}

/// The downstream side's settings once the upstream channel is open.
#[derive(Debug, Clone)]
pub struct Downstream {
    /// Draws each downstream miner's extranonce1: the upstream prefix and a counter.
    pub allocator: Arc<ExtranonceAllocator>,
    /// The extranonce2 bytes each downstream miner rolls.
    pub extranonce2_size: usize,
    /// The upstream difficulty when the channel opened: a downstream difficulty above it
    /// would hide shares the upstream would take.
    pub upstream_difficulty: f64,
    /// The version bits the upstream's first job lets miners roll: the most the downstream
    /// sessions should offer.
    pub version_mask: u32,
}

/// What the proxy needs its caller to do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProxyEvent<T> {
    /// The upstream channel is open and has its first job (the [`ProxyEvent::Job`] that
    /// follows): serve downstream miners with these settings.
    Ready(Downstream),
    /// A job for every downstream miner.
    Job(Arc<JobAnnouncement>),
    /// The answer to a share passed to [`Proxy::submit`], for the downstream miner that
    /// `tag` names.
    Verdict {
        /// The tag passed with the share.
        tag: T,
        /// The answer.
        verdict: ShareVerdict,
    },
    /// The upstream said something the pool wants the operator to see.
    Message(String),
    /// The upstream is gone or unusable (closed, refused the channel, changed the extranonce
    /// prefix under the downstream miners): close every downstream connection and start
    /// again.
    Closed(String),
}

/// Counters of a [`Proxy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Downstream shares valid at their difficulty.
    pub valid: u64,
    /// Downstream shares refused here.
    pub refused: u64,
    /// Shares forwarded upstream.
    pub forwarded: u64,
    /// Forwarded shares the upstream accepted.
    pub upstream_accepted: u64,
    /// Forwarded shares the upstream refused.
    pub upstream_refused: u64,
}

/// How the upstream extranonce is split among the downstream miners.
#[derive(Debug, Clone)]
struct Split {
    prefix: Vec<u8>,
    counter: usize,
    pad: usize,
}

/// The most extranonce2 bytes a v1 miner is given (cgminer takes up to 16).
const MAX_DOWNSTREAM_EXTRANONCE2: usize = 16;

/// One upstream channel shared by many v1 miners; `T` names a downstream share's miner
/// (its connection and token) until its verdict.
#[derive(Debug)]
pub struct Proxy<T> {
    config: ProxyConfig,
    /// How the upstream extranonce is split: its prefix, the counter's bytes, and the zero
    /// bytes after each miner's extranonce2 when the upstream gives more than a miner rolls.
    split: Option<Split>,
    /// The downstream settings, until the first job tells the upstream difficulty.
    waiting: Option<Downstream>,
    jobs: VecDeque<MinerJob>,
    tip: Option<[u8; 32]>,
    height: u64,
    pending: HashMap<u64, (T, f64)>,
    events: VecDeque<ProxyEvent<T>>,
    stats: ProxyStats,
    closed: bool,
}

impl<T> Proxy<T> {
    /// A proxy waiting for its upstream channel.
    pub fn new(config: ProxyConfig) -> Self {
        Proxy {
            config,
            split: None,
            waiting: None,
            jobs: VecDeque::new(),
            tip: None,
            height: 0,
            pending: HashMap::new(),
            events: VecDeque::new(),
            stats: ProxyStats::default(),
            closed: false,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        self.stats
    }

    /// The difficulty of the newest upstream job (0 before the first).
    pub fn upstream_difficulty(&self) -> f64 {
        self.jobs.back().map_or(0.0, |j| j.difficulty)
    }

    /// The smallest upstream extranonce the proxy can split: ask the upstream for at least
    /// this many bytes when opening the channel.
    pub fn min_upstream_extranonce_size(&self) -> usize {
        self.config.min_downstream_extranonce2_size + 1
    }

    /// The next thing to do.
    pub fn poll_event(&mut self) -> Option<ProxyEvent<T>> {
        self.events.pop_front()
    }

    fn close(&mut self, why: String) {
        if self.closed {
            return;
        }
        self.closed = true;
        for (_, (tag, _)) in self.pending.drain() {
            self.events.push_back(ProxyEvent::Verdict {
                tag,
                verdict: ShareVerdict::PoolError("the upstream pool is gone".into()),
            });
        }
        self.events.push_back(ProxyEvent::Closed(why));
    }

    /// Takes an event of the upstream session.
    pub fn handle_upstream(&mut self, event: MinerEvent) {
        if self.closed {
            return;
        }
        match event {
            MinerEvent::Subscribed {
                extranonce1,
                extranonce2_size,
                ..
            } => self.open(extranonce1, extranonce2_size),
            MinerEvent::Authorized(false, why) => self.close(format!(
                "the upstream pool refused the channel: {}",
                why.unwrap_or_else(|| "no reason given".into())
            )),
            MinerEvent::NewJob(job) => self.job(job),
            MinerEvent::ExtranonceChanged { .. } => {
                self.close("the upstream pool changed the channel's extranonce".into())
            }
            MinerEvent::ShareResult {
                sequence,
                accepted,
                error,
            } => {
                if let Some((tag, _)) = self.pending.remove(&sequence) {
                    let verdict = if accepted {
                        self.stats.upstream_accepted += 1;
                        ShareVerdict::Accepted
                    } else {
                        self.stats.upstream_refused += 1;
                        upstream_refusal(error)
                    };
                    self.events.push_back(ProxyEvent::Verdict { tag, verdict });
                }
            }
            MinerEvent::Reconnect(_) | MinerEvent::ReconnectRefused(_) => {
                self.close("the upstream pool asked for a reconnect".into())
            }
            MinerEvent::ShowMessage(text) => self.events.push_back(ProxyEvent::Message(text)),
            MinerEvent::Error(e) => self.events.push_back(ProxyEvent::Message(e.to_string())),
            MinerEvent::Closed(reason) => {
                self.close(format!("the upstream connection closed: {reason:?}"))
            }
            _ => {}
        }
    }

    fn open(&mut self, prefix: Vec<u8>, size: usize) {
        let min = self.config.min_downstream_extranonce2_size;
        let counter = size
            .saturating_sub(self.config.downstream_extranonce2_size)
            .clamp(1, 8)
            .min(16usize.saturating_sub(prefix.len()));
        if counter == 0 || size < counter + min {
            return self.close(format!(
                "the upstream channel's extranonce ({} bytes after a {}-byte prefix) is too small \
                 to give each downstream miner a counter and {min} bytes to roll",
                size,
                prefix.len()
            ));
        }
        let pad = (size - counter).saturating_sub(MAX_DOWNSTREAM_EXTRANONCE2);
        let allocator = match ExtranonceAllocator::new(&prefix, counter) {
            Ok(allocator) => allocator,
            Err(e) => return self.close(format!("cannot split the upstream extranonce: {e}")),
        };
        self.split = Some(Split {
            prefix,
            counter,
            pad,
        });
        self.jobs.clear();
        self.waiting = Some(Downstream {
            allocator,
            extranonce2_size: size - counter - pad,
            upstream_difficulty: 1.0,
            version_mask: 0,
        });
    }

    fn job(&mut self, job: MinerJob) {
        let Some(split) = &self.split else {
            return;
        };
        let pad = split.pad;
        if job.extranonce1 != split.prefix {
            return self.close("the upstream job's extranonce prefix is not the channel's".into());
        }
        if let Some(mut downstream) = self.waiting.take() {
            // The first job carries the channel's difficulty.
            downstream.upstream_difficulty = job.difficulty;
            downstream.version_mask = job.version_mask;
            self.events.push_back(ProxyEvent::Ready(downstream));
        }
        if self.tip != Some(job.notify.prevhash) {
            self.tip = Some(job.notify.prevhash);
            self.height += 1;
        }
        if job.clean {
            self.jobs.clear();
        }
        // A pool may send a job id again with new contents: the newest is the one mined.
        self.jobs.retain(|j| j.notify.job_id != job.notify.job_id);
        while self.jobs.len() >= self.config.max_jobs.max(1) {
            self.jobs.pop_front();
        }
        let mut notify = job.notify.clone();
        notify.clean_jobs = job.clean;
        if pad > 0 {
            // The upstream extranonce bytes no miner rolls are zeros at the start of the
            // second coinbase half.
            let mut coinb2 = vec![0; pad];
            coinb2.extend_from_slice(&notify.coinb2);
            notify.coinb2 = coinb2;
        }
        self.jobs.push_back(job);
        self.events
            .push_back(ProxyEvent::Job(Arc::new(JobAnnouncement {
                notify,
                height: self.height,
            })));
    }

    /// Checks a downstream share. One that misses its own difficulty, or is not on a live
    /// job, is answered at once (as a [`ProxyEvent::Verdict`]); one that meets the upstream
    /// difficulty goes to `upstream` (which queues it on the upstream session and returns
    /// the number its [`MinerEvent::ShareResult`] will carry), and is answered when the
    /// upstream answers; the rest are answered at once as accepted.
    pub fn submit(
        &mut self,
        share: &ShareSubmission,
        tag: T,
        upstream: impl FnOnce(MinerShare) -> u64,
    ) {
        let verdict = match self.check(share) {
            Ok(Some(forward)) => {
                self.stats.valid += 1;
                self.stats.forwarded += 1;
                let sequence = upstream(forward);
                self.pending.insert(sequence, (tag, share.difficulty));
                return;
            }
            Ok(None) => {
                self.stats.valid += 1;
                ShareVerdict::Accepted
            }
            Err(verdict) => {
                self.stats.refused += 1;
                verdict
            }
        };
        self.events.push_back(ProxyEvent::Verdict { tag, verdict });
    }

    /// The upstream share for `share` when it meets the upstream difficulty, `None` when it
    /// meets only its own, or the downstream verdict refusing it.
    fn check(&self, share: &ShareSubmission) -> Result<Option<MinerShare>, ShareVerdict> {
        if self.closed {
            return Err(ShareVerdict::PoolError("the upstream pool is gone".into()));
        }
        let Some(Split {
            prefix,
            counter,
            pad,
        }) = &self.split
        else {
            return Err(ShareVerdict::PoolError("no upstream channel yet".into()));
        };
        let Some(job) = self.jobs.iter().find(|j| j.notify.job_id == share.job_id) else {
            return Err(ShareVerdict::Stale);
        };
        if share.extranonce1.len() != prefix.len() + counter
            || !share.extranonce1.starts_with(prefix)
        {
            return Err(ShareVerdict::Invalid(
                "extranonce1 is not one this proxy gave out".into(),
            ));
        }
        if share.extranonce1.len() + share.extranonce2.len() + pad
            != prefix.len() + job.extranonce2_size
        {
            return Err(ShareVerdict::Invalid(
                "extranonce2 has the wrong size".into(),
            ));
        }
        if let Some(bits) = share.version_bits {
            if bits & !job.version_mask != 0 {
                // The downstream session offered bits this job does not allow.
                return Err(ShareVerdict::PoolError(
                    "the upstream job does not allow these version bits".into(),
                ));
            }
        }
        let mask = job.version_mask & share.version_mask;
        let mut extranonce2 = share.extranonce2.clone();
        extranonce2.resize(extranonce2.len() + pad, 0);
        let core_share = Share {
            job_id: JobId::new(share.job_id.clone()),
            extranonce1: share.extranonce1.clone(),
            extranonce2: extranonce2.clone(),
            ntime: share.ntime,
            nonce: share.nonce,
            version_bits: share.version_bits,
            worker: share.worker.clone(),
        };
        let header = job
            .to_job(self.config.convention)
            .header_for(&core_share, mask)
            .map_err(|e| ShareVerdict::Invalid(e.to_string()))?
            .to_bytes();
        let achieved = self
            .config
            .convention
            .share_difficulty(&(self.config.hash)(&header));
        if achieved < share.difficulty {
            return Err(ShareVerdict::LowDifficulty);
        }
        if achieved < job.difficulty {
            return Ok(None);
        }
        let mut upstream = share.extranonce1[prefix.len()..].to_vec();
        upstream.extend_from_slice(&extranonce2);
        // The bits of the header hashed here, as the upstream rebuilds it from the job.
        let version_bits = (job.version_mask != 0).then(|| {
            u32::from_le_bytes([header[0], header[1], header[2], header[3]]) & job.version_mask
        });
        Ok(Some(MinerShare {
            job_id: share.job_id.clone(),
            extranonce2: upstream,
            ntime: share.ntime,
            nonce: share.nonce,
            version_bits,
        }))
    }
}

/// The downstream verdict for a share the upstream refused, read from the error's code (v1)
/// or its SV2 error code (carried as the message). The share met its downstream difficulty
/// here, so a refusal for difficulty (the upstream target moved after the job) still counts
/// as valid work downstream; an upstream that did not answer or could not take the share is
/// no fault of the miner's.
fn upstream_refusal(error: Option<StratumError>) -> ShareVerdict {
    let Some(error) = error else {
        return ShareVerdict::PoolError("the upstream pool refused it without a reason".into());
    };
    let message = error.message.as_str();
    match (error.code, message) {
        (_, "stale-share" | "invalid-job-id") | (ErrorCode::JobNotFound, _) => ShareVerdict::Stale,
        (_, "difficulty-too-low") | (ErrorCode::LowDifficulty, _) => ShareVerdict::Accepted,
        _ if message.starts_with("not sent: the job is not current") => ShareVerdict::Stale,
        _ if message.starts_with("not sent") || message.starts_with("no answer") => {
            ShareVerdict::PoolError(format!("upstream: {message}"))
        }
        _ => ShareVerdict::Invalid(format!("upstream: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Notify, ShareToken};

    const PREFIX: [u8; 4] = [1, 2, 3, 4];

    /// Opens the channel with `size` bytes to roll and its first job, `first`.
    fn ready(proxy: &mut Proxy<u32>, size: usize, first: &MinerJob) -> Downstream {
        proxy.handle_upstream(MinerEvent::Subscribed {
            extranonce1: PREFIX.to_vec(),
            extranonce2_size: size,
            session_id: None,
        });
        assert!(proxy.poll_event().is_none(), "ready only with a job");
        let mut first = first.clone();
        first.extranonce2_size = size;
        proxy.handle_upstream(MinerEvent::NewJob(first.clone()));
        let d = match proxy.poll_event() {
            Some(ProxyEvent::Ready(d)) => d,
            other => panic!("not ready: {other:?}"),
        };
        assert_eq!(d.upstream_difficulty, first.difficulty);
        match proxy.poll_event() {
            Some(ProxyEvent::Job(a)) => {
                assert_eq!(a.notify.job_id, first.notify.job_id);
                assert_eq!(a.height, 1);
                assert!(a.notify.clean_jobs);
            }
            other => panic!("no job: {other:?}"),
        }
        d
    }

    fn job(id: &str, prevhash: u8, difficulty: f64, clean: bool) -> MinerJob {
        MinerJob {
            notify: Notify {
                job_id: id.into(),
                prevhash: [prevhash; 32],
                coinb1: vec![1, 0, 0, 0, 1, 0xaa],
                coinb2: vec![0xbb, 0, 0, 0, 0],
                merkle_branch: vec![[7; 32]],
                version: 0x2000_0000,
                nbits: 0x207f_ffff,
                ntime: 1_700_000_000,
                clean_jobs: clean,
            },
            difficulty,
            extranonce1: PREFIX.to_vec(),
            extranonce2_size: 4,
            version_mask: 0x1fff_e000,
            clean,
        }
    }

    /// A share on `job` for `en1`, with the first nonce whose hash reaches `at_least` and
    /// stays below `below`.
    fn share(job: &MinerJob, en1: &[u8], at_least: f64, below: f64) -> ShareSubmission {
        let en2 = vec![9; job.extranonce2_size - (en1.len() - PREFIX.len())];
        let mut downstream = job.clone();
        downstream.extranonce1 = en1.to_vec();
        downstream.extranonce2_size = en2.len();
        for nonce in 0.. {
            let header = downstream
                .header(&en2, job.notify.ntime, nonce, None)
                .expect("a header");
            let d = DifficultyConvention::Bitcoin.share_difficulty(&sha256d(&header));
            if d >= at_least && d < below {
                return ShareSubmission {
                    token: ShareToken(u64::from(nonce)),
                    worker: "w".into(),
                    job_id: job.notify.job_id.clone(),
                    extranonce1: en1.to_vec(),
                    extranonce2: en2,
                    ntime: job.notify.ntime,
                    nonce,
                    version_bits: None,
                    version_mask: 0x1fff_e000,
                    difficulty: 1e-6,
                };
            }
        }
        unreachable!()
    }

    #[test]
    fn the_split_leaves_the_miners_what_they_asked_for_and_numbers_them_with_the_rest() {
        let first = job("7", 1, 1e-4, true);
        let mut proxy = Proxy::new(ProxyConfig::default());
        let d = ready(&mut proxy, 8, &first);
        assert_eq!(d.extranonce2_size, 4);
        assert_eq!(
            d.allocator.allocate(None).map(|e| e.as_bytes().len()),
            Some(8)
        );

        // A small upstream extranonce: one counter byte, the rest rolled.
        let mut proxy = Proxy::new(ProxyConfig::default());
        let d = ready(&mut proxy, 4, &first);
        assert_eq!(d.extranonce2_size, 3);

        // Too small to split with 2 bytes left to roll.
        let mut proxy: Proxy<u32> = Proxy::new(ProxyConfig::default());
        proxy.handle_upstream(MinerEvent::Subscribed {
            extranonce1: PREFIX.to_vec(),
            extranonce2_size: 2,
            session_id: None,
        });
        assert!(
            matches!(proxy.poll_event(), Some(ProxyEvent::Closed(why)) if why.contains("too small"))
        );
    }

    #[test]
    fn shares_meeting_the_upstream_target_go_upstream_and_wait_for_its_answer() {
        let mut proxy = Proxy::new(ProxyConfig::default());
        let upstream_job = job("7", 1, 1e-4, true);
        let d = ready(&mut proxy, 4, &upstream_job);
        let en1 = d.allocator.allocate(None).expect("an extranonce1");
        let en1 = en1.as_bytes().to_vec();

        // Valid downstream, below the upstream target: answered here.
        let small = share(&upstream_job, &en1, 1e-6, 1e-4);
        proxy.submit(&small, 1, |_| panic!("must not go upstream"));
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                tag: 1,
                verdict: ShareVerdict::Accepted
            })
        ));

        // Meets the upstream target: forwarded with the counter in front of the extranonce2.
        let big = share(&upstream_job, &en1, 1e-4, f64::INFINITY);
        let mut sent = None;
        proxy.submit(&big, 2, |s| {
            sent = Some(s);
            41
        });
        let sent = sent.expect("forwarded");
        assert_eq!(sent.extranonce2[..1], en1[4..]);
        assert_eq!(sent.extranonce2[1..], big.extranonce2[..]);
        assert_eq!(sent.nonce, big.nonce);
        assert!(
            proxy.poll_event().is_none(),
            "the answer waits for the upstream"
        );

        proxy.handle_upstream(MinerEvent::ShareResult {
            sequence: 41,
            accepted: true,
            error: None,
        });
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                tag: 2,
                verdict: ShareVerdict::Accepted
            })
        ));

        // The upstream header is the downstream one: its upstream hash is the same.
        let mut up = upstream_job.clone();
        up.extranonce2_size = 4;
        let header = up
            .header(&sent.extranonce2, sent.ntime, sent.nonce, None)
            .expect("a header");
        assert!(DifficultyConvention::Bitcoin.share_difficulty(&sha256d(&header)) >= 1e-4);

        let stats = proxy.stats();
        assert_eq!(
            (stats.valid, stats.forwarded, stats.upstream_accepted),
            (2, 1, 1)
        );
    }

    #[test]
    fn bad_shares_are_refused_here_and_a_lost_upstream_fails_the_pending_ones() {
        let mut proxy = Proxy::new(ProxyConfig::default());
        let upstream_job = job("7", 1, 1e-4, true);
        let d = ready(&mut proxy, 4, &upstream_job);
        let en1 = d.allocator.allocate(None).expect("an extranonce1");
        let en1 = en1.as_bytes().to_vec();

        let mut low = share(&upstream_job, &en1, 1e-6, 1e-4);
        low.difficulty = 1e-3;
        proxy.submit(&low, 1, |_| panic!("refused"));
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                verdict: ShareVerdict::LowDifficulty,
                ..
            })
        ));

        let mut unknown = low.clone();
        unknown.job_id = "8".into();
        proxy.submit(&unknown, 2, |_| panic!("refused"));
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                verdict: ShareVerdict::Stale,
                ..
            })
        ));

        let mut foreign = low.clone();
        foreign.extranonce1[0] ^= 1;
        proxy.submit(&foreign, 3, |_| panic!("refused"));
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                verdict: ShareVerdict::Invalid(_),
                ..
            })
        ));

        // A new tip voids the old jobs.
        proxy.handle_upstream(MinerEvent::NewJob(job("9", 2, 1e-4, true)));
        assert!(matches!(proxy.poll_event(), Some(ProxyEvent::Job(a)) if a.height == 2));
        let old = share(&upstream_job, &en1, 1e-6, 1e-4);
        proxy.submit(&old, 4, |_| panic!("stale"));
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                verdict: ShareVerdict::Stale,
                ..
            })
        ));

        // A forwarded share whose upstream goes away is answered as the pool's failure.
        let fresh = job("9", 2, 1e-4, true);
        let big = share(&fresh, &en1, 1e-4, f64::INFINITY);
        proxy.submit(&big, 5, |_| 1);
        proxy.handle_upstream(MinerEvent::Closed(crate::MinerCloseReason::Timeout));
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                tag: 5,
                verdict: ShareVerdict::PoolError(_)
            })
        ));
        assert!(matches!(proxy.poll_event(), Some(ProxyEvent::Closed(_))));
    }

    #[test]
    fn upstream_refusals_read_as_downstream_verdicts() {
        let sv2 = |code: &str| Some(StratumError::new(ErrorCode::Other, code));
        assert_eq!(upstream_refusal(sv2("stale-share")), ShareVerdict::Stale);
        assert_eq!(upstream_refusal(sv2("invalid-job-id")), ShareVerdict::Stale);
        assert_eq!(
            upstream_refusal(sv2("difficulty-too-low")),
            ShareVerdict::Accepted
        );
        assert!(matches!(
            upstream_refusal(sv2("invalid-version: bits not allowed")),
            ShareVerdict::Invalid(_)
        ));
        assert!(matches!(
            upstream_refusal(sv2("not sent: no channel is open")),
            ShareVerdict::PoolError(_)
        ));
        assert!(matches!(
            upstream_refusal(sv2("no answer from the pool")),
            ShareVerdict::PoolError(_)
        ));
        assert_eq!(
            upstream_refusal(sv2("not sent: the job is not current")),
            ShareVerdict::Stale
        );
        let v1 = |code| Some(StratumError::new(code, "whatever the pool says"));
        assert_eq!(
            upstream_refusal(v1(ErrorCode::JobNotFound)),
            ShareVerdict::Stale
        );
        assert_eq!(
            upstream_refusal(v1(ErrorCode::LowDifficulty)),
            ShareVerdict::Accepted
        );
        assert!(matches!(
            upstream_refusal(v1(ErrorCode::Duplicate)),
            ShareVerdict::Invalid(_)
        ));
        assert!(matches!(upstream_refusal(None), ShareVerdict::PoolError(_)));
    }

    #[test]
    fn a_wide_upstream_extranonce_leaves_miners_sixteen_bytes_and_zeros_the_rest() {
        let mut proxy = Proxy::new(ProxyConfig::default());
        let mut wide = job("7", 1, 1e-4, true);
        wide.extranonce2_size = 32;
        let d = ready(&mut proxy, 32, &wide);
        assert_eq!(
            d.extranonce2_size, 16,
            "8 counter bytes, 16 rolled, 8 zeros"
        );
        let en1 = d.allocator.allocate(None).expect("an extranonce1");
        assert_eq!(en1.as_bytes().len(), 12);
        proxy.handle_upstream(MinerEvent::NewJob(wide.clone()));
        let Some(ProxyEvent::Job(announced)) = proxy.poll_event() else {
            panic!("a job")
        };
        assert_eq!(announced.notify.coinb2[..8], [0; 8]);
        // The miner mines the announced job with its own extranonce.
        let mine = MinerJob {
            notify: announced.notify.clone(),
            extranonce1: en1.as_bytes().to_vec(),
            extranonce2_size: 16,
            ..wide.clone()
        };
        let en2 = vec![5; 16];
        let (nonce, header) = (0..)
            .map(|n| {
                (
                    n,
                    mine.header(&en2, wide.notify.ntime, n, None)
                        .expect("a header"),
                )
            })
            .find(|(_, h)| DifficultyConvention::Bitcoin.share_difficulty(&sha256d(h)) >= 1e-4)
            .expect("a share");
        let submission = ShareSubmission {
            token: ShareToken(1),
            worker: "w".into(),
            job_id: "7".into(),
            extranonce1: en1.as_bytes().to_vec(),
            extranonce2: en2,
            ntime: wide.notify.ntime,
            nonce,
            version_bits: None,
            version_mask: 0x1fff_e000,
            difficulty: 1e-6,
        };
        let mut sent = None;
        proxy.submit(&submission, 1, |s| {
            sent = Some(s);
            1
        });
        let sent = sent.expect("forwarded");
        assert_eq!(sent.extranonce2.len(), 32);
        let upstream = wide
            .header(&sent.extranonce2, sent.ntime, sent.nonce, sent.version_bits)
            .expect("the upstream header");
        assert_eq!(
            upstream, header,
            "the pool rebuilds the header the miner hashed"
        );
    }

    #[test]
    fn a_job_id_sent_again_replaces_the_old_job() {
        let mut proxy = Proxy::new(ProxyConfig::default());
        let first = job("7", 1, 1e-4, true);
        let d = ready(&mut proxy, 4, &first);
        let en1 = d.allocator.allocate(None).expect("an extranonce1");
        let en1 = en1.as_bytes().to_vec();
        let mut again = job("7", 1, 1e-4, false);
        again.notify.coinb2 = vec![0xcc, 0, 0, 0, 0];
        proxy.handle_upstream(MinerEvent::NewJob(again.clone()));
        assert!(matches!(proxy.poll_event(), Some(ProxyEvent::Job(_))));
        let on_new = share(&again, &en1, 1e-6, 1e-4);
        proxy.submit(&on_new, 1, |_| panic!("below the upstream target"));
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                verdict: ShareVerdict::Accepted,
                ..
            })
        ));
    }

    #[test]
    fn rolled_bits_the_upstream_job_does_not_allow_are_no_fault_of_the_miner() {
        let mut proxy = Proxy::new(ProxyConfig::default());
        let mut fixed = job("7", 1, 1e-4, true);
        fixed.version_mask = 0;
        let d = ready(&mut proxy, 4, &fixed);
        assert_eq!(d.version_mask, 0, "the downstream ports roll nothing");
        let en1 = d.allocator.allocate(None).expect("an extranonce1");
        let mut rolled = share(&fixed, en1.as_bytes(), 1e-6, 1e-4);
        rolled.version_bits = Some(0x0000_2000);
        proxy.submit(&rolled, 1, |_| panic!("refused"));
        assert!(matches!(
            proxy.poll_event(),
            Some(ProxyEvent::Verdict {
                verdict: ShareVerdict::PoolError(_),
                ..
            })
        ));
    }
}
