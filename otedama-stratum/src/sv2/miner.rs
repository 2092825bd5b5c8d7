//! The miner side of a Stratum V2 mining connection (feature `noise`), sans-IO: the Noise
//! handshake against the pool's authority key, `SetupConnection`, one extended channel, and
//! its jobs and shares.
//!
//! [`Sv2MinerSession`] implements [`MinerProtocol`] with the Stratum v1 miner's events and
//! shares ([`MinerEvent`], [`MinerShare`]): an extended channel is a v1 subscription whose
//! extranonce1 is the channel's prefix, a job is a v1 notify (the coinbase halves around the
//! extranonce, the merkle path), `SetNewPrevHash` makes the future job it names the current,
//! clean one, and `SetTarget` sets the difficulty of the jobs that follow. So a miner written
//! for v1 mines SV2 pools unchanged.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use otedama_core::{Difficulty, DifficultyConvention, Target};

use super::message::{self as m, flags, Message, Protocol};
use super::noise::{AuthorityPublicKey, Initiator, Opener, Sealer, ACT2_LEN};
use crate::session::{Framing, MinerProtocol, PoolLink};
use crate::v1::message::{Notify, Reconnect};
use crate::{
    ErrorCode, MinerCloseReason, MinerConfig, MinerEvent, MinerJob, MinerShare, StratumError,
};

/// The largest payload taken from a pool: an extended job carries two coinbase halves of up
/// to 64 KiB each.
const MAX_POOL_FRAME: usize = 1 << 18;

/// How long the pool has to answer the handshake, the setup and the channel.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a share may wait for its answer: pools acknowledge in batches (the reference
/// pool every 10 shares, at 6 shares a minute by default), so a minute is too short.
const SHARE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the pool may stay silent (it sends jobs at least every minute or so).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Settings of an SV2 miner session.
#[derive(Debug, Clone)]
pub struct Sv2MinerConfig {
    /// The worker (`user_identity`), user agent (`vendor`) and version rolling mask; the
    /// password and the v1-only fields are not used.
    pub miner: MinerConfig,
    /// The pool's authority key; `None` takes any pool (encrypted, not authenticated). A link
    /// naming a key ([`PoolLink::authority`]) overrides it.
    pub authority: Option<AuthorityPublicKey>,
    /// How the channel's target reads as a difficulty.
    pub convention: DifficultyConvention,
    /// The hashrate told to the pool when the channel opens, hashes per second.
    pub nominal_hash_rate: f32,
    /// The fewest extranonce bytes the channel must leave to roll (a proxy splitting the
    /// channel among its miners needs more than a single device).
    pub min_extranonce_size: u16,
}

impl Default for Sv2MinerConfig {
    fn default() -> Self {
        Sv2MinerConfig {
            miner: MinerConfig::default(),
            authority: None,
            convention: DifficultyConvention::Bitcoin,
            nominal_hash_rate: 1e6,
            min_extranonce_size: 0,
        }
    }
}

enum Phase {
    Handshake(Option<Box<Initiator>>, Vec<u8>),
    Open(Box<(Sealer, Opener)>),
    Closed,
}

/// One job as the pool sent it.
#[derive(Debug, Clone)]
struct Job {
    version: u32,
    version_rolling: bool,
    path: Vec<[u8; 32]>,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

/// The channel once open.
#[derive(Debug, Clone)]
struct Channel {
    id: u32,
    /// The group the pool put the channel in (0: none); a target set for the group is the
    /// channel's.
    group: u32,
    extranonce_prefix: Vec<u8>,
    extranonce_size: usize,
    difficulty: f64,
}

/// The miner side of one SV2 connection.
pub struct Sv2MinerSession {
    config: Sv2MinerConfig,
    host: String,
    phase: Phase,
    opened: Instant,
    last_seen: Instant,
    channel: Option<Channel>,
    future: HashMap<u32, Job>,
    jobs: HashMap<u32, Job>,
    prevhash: Option<([u8; 32], u32)>,
    pending: VecDeque<(u32, u64, Instant)>,
    next_sequence: u32,
    next_share: u64,
    output: VecDeque<Vec<u8>>,
    events: VecDeque<MinerEvent>,
    closed: Option<MinerCloseReason>,
}

impl std::fmt::Debug for Sv2MinerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sv2MinerSession")
            .field("host", &self.host)
            .field("channel", &self.channel)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl Sv2MinerSession {
    /// A session to the pool behind `link`, its first handshake message queued.
    pub fn new(config: Sv2MinerConfig, link: &PoolLink, now: Instant) -> Sv2MinerSession {
        let authority = link
            .authority
            .as_deref()
            .and_then(|k| AuthorityPublicKey::from_base58(k).ok())
            .or(config.authority);
        let mut session = Sv2MinerSession {
            config,
            host: link.host.clone(),
            phase: Phase::Closed,
            opened: now,
            last_seen: now,
            channel: None,
            future: HashMap::new(),
            jobs: HashMap::new(),
            prevhash: None,
            pending: VecDeque::new(),
            next_sequence: 0,
            next_share: 0,
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        };
        if link.authority.is_some() && authority.is_none() {
            // A key that does not read: never talk to a pool that cannot be checked.
            session.close(MinerCloseReason::Rejected);
            return session;
        }
        match Initiator::new(authority) {
            Ok(mut initiator) => {
                session.output.push_back(initiator.act1().to_vec());
                session.phase = Phase::Handshake(Some(Box::new(initiator)), Vec::new());
            }
            Err(_) => session.close(MinerCloseReason::Protocol),
        }
        session
    }

    /// Handles bytes from the pool; returns how many messages they completed.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) -> usize {
        if self.closed.is_some() || bytes.is_empty() {
            return 0;
        }
        self.last_seen = now;
        let mut rest = bytes;
        if let Phase::Handshake(initiator, buf) = &mut self.phase {
            let take = (ACT2_LEN - buf.len()).min(rest.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buf.len() < ACT2_LEN {
                return 0;
            }
            let act2 = std::mem::take(buf);
            let Some(initiator) = initiator.take() else {
                return 0;
            };
            match initiator.act2(&act2, unix_now()) {
                Ok((transport, _)) => {
                    self.phase = Phase::Open(Box::new(transport.split(MAX_POOL_FRAME)));
                    self.setup();
                }
                Err(_) => {
                    // A pool whose certificate the authority did not sign, or not a pool.
                    self.close(MinerCloseReason::Rejected);
                    return 1;
                }
            }
        }
        let mut count = 0;
        if let Phase::Open(pipe) = &mut self.phase {
            pipe.1.push(rest);
        }
        while let Phase::Open(pipe) = &mut self.phase {
            match pipe.1.next_frame() {
                Ok(Some(frame)) => {
                    count += 1;
                    // An unknown message (an extension's) is dropped, as the specification
                    // says.
                    if let Ok((message, _)) = Message::from_frame(&frame) {
                        self.handle(message);
                    }
                    if self.closed.is_some() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.close(MinerCloseReason::Protocol);
                    break;
                }
            }
        }
        count
    }

    fn send(&mut self, message: Message) {
        let Phase::Open(pipe) = &mut self.phase else {
            return;
        };
        match pipe.0.seal_message(&message) {
            Ok(bytes) => self.output.push_back(bytes),
            Err(_) => self.close(MinerCloseReason::Protocol),
        }
    }

    fn setup(&mut self) {
        let miner = &self.config.miner;
        let flags = if miner.version_rolling.is_some() {
            flags::REQUIRES_VERSION_ROLLING
        } else {
            0
        };
        let setup = m::SetupConnection {
            protocol: Protocol::Mining,
            min_version: 2,
            max_version: 2,
            flags,
            endpoint_host: self.host.chars().take(255).collect(),
            endpoint_port: 0,
            vendor: miner.user_agent.chars().take(255).collect(),
            hardware_version: String::new(),
            firmware: String::new(),
            device_id: String::new(),
        };
        self.send(setup.into());
    }

    fn difficulty_of(&self, target: &[u8; 32]) -> f64 {
        self.config
            .convention
            .difficulty_of(&Target::from_le_bytes(*target))
            .map_or(1.0, Difficulty::as_f64)
    }

    fn mask(&self, job: &Job) -> u32 {
        if job.version_rolling {
            self.config.miner.version_rolling.unwrap_or(0)
        } else {
            0
        }
    }

    fn announce(&mut self, id: u32, job: &Job, ntime: u32, clean: bool) {
        let (Some(channel), Some((prevhash, nbits))) = (&self.channel, self.prevhash) else {
            return;
        };
        let event = MinerEvent::NewJob(MinerJob {
            notify: Notify {
                job_id: id.to_string(),
                prevhash,
                coinb1: job.prefix.clone(),
                coinb2: job.suffix.clone(),
                merkle_branch: job.path.clone(),
                version: job.version,
                nbits,
                ntime,
                clean_jobs: clean,
            },
            difficulty: channel.difficulty,
            extranonce1: channel.extranonce_prefix.clone(),
            extranonce2_size: channel.extranonce_size,
            version_mask: self.mask(job),
            clean,
        });
        self.events.push_back(event);
    }

    /// Whether a message names a channel other than this session's: another channel of the
    /// connection. A group's jobs, new blocks and targets are the channel's (the reference
    /// pool groups extended channels and sends a new block's job to the group); what else is
    /// sent to the group is not (a prefix, for one, is never a group's).
    fn foreign(&self, message: &Message) -> bool {
        let Some(channel) = &self.channel else {
            return false;
        };
        let (id, group_wide) = match message {
            Message::NewExtendedMiningJob(m) => (m.channel_id, true),
            Message::SetNewPrevHash(m) => (m.channel_id, true),
            Message::SetTarget(m) => (m.channel_id, true),
            Message::SetExtranoncePrefix(m) => (m.channel_id, false),
            Message::SubmitSharesSuccess(m) => (m.channel_id, false),
            Message::SubmitSharesError(m) => (m.channel_id, false),
            Message::CloseChannel(m) => (m.channel_id, false),
            _ => return false,
        };
        id != channel.id && !(group_wide && channel.group != 0 && id == channel.group)
    }

    fn handle(&mut self, message: Message) {
        if self.foreign(&message) {
            return;
        }
        match message {
            Message::SetupConnectionSuccess(_) => {
                let open = m::OpenExtendedMiningChannel {
                    request_id: 1,
                    user_identity: self.config.miner.user.chars().take(255).collect(),
                    nominal_hash_rate: self.config.nominal_hash_rate,
                    max_target: [0xff; 32],
                    min_extranonce_size: self.config.min_extranonce_size,
                };
                self.send(open.into());
            }
            Message::SetupConnectionError(e) => {
                self.events
                    .push_back(MinerEvent::Authorized(false, Some(e.error_code)));
                self.close(MinerCloseReason::Rejected);
            }
            Message::OpenExtendedMiningChannelSuccess(open) => {
                let channel = Channel {
                    id: open.channel_id,
                    group: open.group_channel_id,
                    extranonce_prefix: open.extranonce_prefix.clone(),
                    extranonce_size: usize::from(open.extranonce_size),
                    difficulty: self.difficulty_of(&open.target),
                };
                self.events.push_back(MinerEvent::Subscribed {
                    extranonce1: channel.extranonce_prefix.clone(),
                    extranonce2_size: channel.extranonce_size,
                    session_id: None,
                });
                self.events.push_back(MinerEvent::Authorized(true, None));
                self.channel = Some(channel);
            }
            Message::OpenMiningChannelError(e) => {
                self.events
                    .push_back(MinerEvent::Authorized(false, Some(e.error_code)));
                self.close(MinerCloseReason::Rejected);
            }
            Message::NewExtendedMiningJob(j) => {
                let job = Job {
                    version: j.version,
                    version_rolling: j.version_rolling_allowed,
                    path: j.merkle_path,
                    prefix: j.coinbase_tx_prefix,
                    suffix: j.coinbase_tx_suffix,
                };
                match j.min_ntime {
                    Some(ntime) => {
                        self.jobs.insert(j.job_id, job.clone());
                        self.announce(j.job_id, &job, ntime, false);
                    }
                    None => {
                        // A few future jobs at most are ever pending.
                        if self.future.len() >= 16 {
                            self.future.clear();
                        }
                        self.future.insert(j.job_id, job);
                    }
                }
            }
            Message::SetNewPrevHash(p) => {
                self.prevhash = Some((p.prev_hash, p.nbits));
                self.jobs.clear();
                if let Some(job) = self.future.remove(&p.job_id) {
                    self.future.clear();
                    self.jobs.insert(p.job_id, job.clone());
                    self.announce(p.job_id, &job, p.min_ntime, true);
                }
            }
            Message::SetTarget(t) => {
                let difficulty = self.difficulty_of(&t.maximum_target);
                if let Some(channel) = &mut self.channel {
                    channel.difficulty = difficulty;
                }
            }
            Message::SetExtranoncePrefix(s) => {
                if let Some(channel) = &mut self.channel {
                    channel.extranonce_prefix = s.extranonce_prefix.clone();
                    self.events.push_back(MinerEvent::ExtranonceChanged {
                        extranonce1: s.extranonce_prefix,
                        extranonce2_size: channel.extranonce_size,
                    });
                }
            }
            Message::SubmitSharesSuccess(s) => {
                // Every share up to the last sequence number is accepted, as many as the pool
                // counts: an error for one of them may still be on its way.
                let mut left = s.new_submits_accepted_count;
                while let Some(&(seq, share, _)) = self.pending.front() {
                    if left == 0 || seq.wrapping_sub(s.last_sequence_number) as i32 > 0 {
                        break;
                    }
                    left -= 1;
                    self.pending.pop_front();
                    self.events.push_back(MinerEvent::ShareResult {
                        sequence: share,
                        accepted: true,
                        error: None,
                    });
                }
            }
            Message::SubmitSharesError(e) => {
                if let Some(i) = self.pending.iter().position(|p| p.0 == e.sequence_number) {
                    if let Some((_, share, _)) = self.pending.remove(i) {
                        self.events.push_back(MinerEvent::ShareResult {
                            sequence: share,
                            accepted: false,
                            error: Some(StratumError::new(ErrorCode::Other, e.error_code)),
                        });
                    }
                }
            }
            Message::Reconnect(r) => {
                let reconnect = Reconnect {
                    host: (!r.new_host.is_empty()).then_some(r.new_host),
                    port: (r.new_port != 0).then_some(r.new_port),
                    wait_secs: None,
                };
                self.events.push_back(MinerEvent::Reconnect(reconnect));
            }
            Message::CloseChannel(_) | Message::ChannelEndpointChanged(_) => {
                self.close(MinerCloseReason::Requested);
            }
            _ => {}
        }
    }

    /// Queues a share; returns the number its result event carries.
    pub fn submit(&mut self, share: MinerShare) -> u64 {
        self.next_share += 1;
        let number = self.next_share;
        let fail = |this: &mut Sv2MinerSession, why: &str| {
            this.events.push_back(MinerEvent::ShareResult {
                sequence: number,
                accepted: false,
                error: Some(StratumError::new(
                    ErrorCode::Other,
                    format!("not sent: {why}"),
                )),
            });
            number
        };
        let Some(channel) = self.channel.clone() else {
            return fail(self, "no channel is open");
        };
        let Some((id, job)) = share
            .job_id
            .parse::<u32>()
            .ok()
            .and_then(|id| self.jobs.get(&id).map(|j| (id, j.clone())))
        else {
            return fail(self, "the job is not current");
        };
        if share.extranonce2.len() != channel.extranonce_size {
            return fail(self, "the extranonce has the wrong size");
        }
        let mask = self.mask(&job);
        let version = match share.version_bits {
            Some(bits) if bits & !mask != 0 => return fail(self, "version bits outside the mask"),
            Some(bits) => (job.version & !mask) | bits,
            None => job.version,
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        let sequence = self.next_sequence;
        self.send(
            m::SubmitSharesExtended {
                channel_id: channel.id,
                sequence_number: sequence,
                job_id: id,
                nonce: share.nonce,
                ntime: share.ntime,
                version,
                extranonce: share.extranonce2,
            }
            .into(),
        );
        // The share's clock starts at the last time passed in.
        self.pending
            .push_back((sequence, number, self.last_seen.max(self.opened)));
        number
    }

    /// Ends the session.
    pub fn close(&mut self, reason: MinerCloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(MinerEvent::Closed(reason));
            self.pending.clear();
            self.phase = Phase::Closed;
        }
    }
}

impl MinerProtocol for Sv2MinerSession {
    type Config = Sv2MinerConfig;
    type Event = MinerEvent;
    type Share = MinerShare;
    type Output = Vec<u8>;
    const FRAMING: Framing = Framing::Binary;

    fn open(config: Sv2MinerConfig, link: &PoolLink, now: Instant) -> Self {
        Sv2MinerSession::new(config, link, now)
    }

    /// Binary framing: the client hands bytes to [`handle_bytes`](MinerProtocol::handle_bytes).
    fn handle_line(&mut self, line: &[u8], now: Instant) {
        self.handle_bytes(line, now);
    }

    fn handle_bytes(&mut self, bytes: &[u8], now: Instant) -> usize {
        Sv2MinerSession::handle_bytes(self, bytes, now)
    }

    fn poll_output(&mut self) -> Option<Vec<u8>> {
        self.output.pop_front()
    }

    fn poll_event(&mut self) -> Option<MinerEvent> {
        self.events.pop_front()
    }

    fn submit(&mut self, share: MinerShare) -> u64 {
        Sv2MinerSession::submit(self, share)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let idle = self.last_seen + IDLE_TIMEOUT;
        let open = (self.channel.is_none()).then_some(self.opened + OPEN_TIMEOUT);
        let share = self.pending.front().map(|p| p.2 + SHARE_TIMEOUT);
        [Some(idle), open, share].into_iter().flatten().min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.channel.is_none() && now >= self.opened + OPEN_TIMEOUT {
            self.close(MinerCloseReason::Timeout);
            return;
        }
        if now >= self.last_seen + IDLE_TIMEOUT {
            self.close(MinerCloseReason::Idle);
            return;
        }
        while let Some(&(_, share, sent)) = self.pending.front() {
            if now < sent + SHARE_TIMEOUT {
                break;
            }
            self.pending.pop_front();
            self.events.push_back(MinerEvent::ShareResult {
                sequence: share,
                accepted: false,
                error: Some(StratumError::new(
                    ErrorCode::Other,
                    "no answer from the pool",
                )),
            });
        }
    }

    fn close(&mut self, reason: MinerCloseReason) {
        Sv2MinerSession::close(self, reason);
    }

    fn is_closed(&self) -> bool {
        self.closed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sv2::noise::{AuthorityKeypair, Responder};

    /// A miner session past the handshake and with an open channel 5 (group 9), and the
    /// pool's sealer to speak to it.
    fn open() -> (Sv2MinerSession, Sealer, Instant) {
        let now = Instant::now();
        let authority = AuthorityKeypair::generate().expect("key");
        let link = PoolLink::new("127.0.0.1").with_authority(authority.public().to_base58());
        let mut miner = Sv2MinerSession::new(Sv2MinerConfig::default(), &link, now);
        let act1 = miner.output.pop_front().expect("act one");
        let (act2, transport) = Responder::new(authority, 3600)
            .respond(&act1, unix_now())
            .expect("act two");
        let (mut sealer, _) = transport.split(1 << 20);
        miner.handle_bytes(&act2, now);
        let mut send = |miner: &mut Sv2MinerSession, m: Message| {
            let bytes = sealer.seal_message(&m).expect("sealed");
            miner.handle_bytes(&bytes, now);
        };
        send(
            &mut miner,
            m::SetupConnectionSuccess {
                used_version: 2,
                flags: 0,
            }
            .into(),
        );
        send(
            &mut miner,
            m::OpenExtendedMiningChannelSuccess {
                request_id: 1,
                channel_id: 5,
                target: [0xff; 32],
                extranonce_size: 4,
                extranonce_prefix: vec![1, 2, 3, 4],
                group_channel_id: 9,
            }
            .into(),
        );
        miner.events.clear();
        (miner, sealer, now)
    }

    fn job(channel_id: u32, job_id: u32) -> Message {
        m::NewExtendedMiningJob {
            channel_id,
            job_id,
            min_ntime: None,
            version: 0x2000_0000,
            version_rolling_allowed: true,
            merkle_path: vec![],
            coinbase_tx_prefix: vec![1, 0, 0, 0],
            coinbase_tx_suffix: vec![0, 0, 0, 0],
        }
        .into()
    }

    fn prevhash(channel_id: u32, job_id: u32) -> Message {
        m::SetNewPrevHash {
            channel_id,
            job_id,
            prev_hash: [7; 32],
            min_ntime: 1_700_000_000,
            nbits: 0x207f_ffff,
        }
        .into()
    }

    #[test]
    fn messages_for_another_channel_are_not_this_channels_but_its_groups_are() {
        let (mut miner, mut sealer, now) = open();
        for m in [job(6, 2), prevhash(6, 2)] {
            let bytes = sealer.seal_message(&m).expect("sealed");
            miner.handle_bytes(&bytes, now);
        }
        assert!(miner.events.is_empty(), "{:?}", miner.events);
        for m in [job(5, 3), prevhash(5, 3)] {
            let bytes = sealer.seal_message(&m).expect("sealed");
            miner.handle_bytes(&bytes, now);
        }
        assert!(matches!(
            miner.events.pop_front(),
            Some(MinerEvent::NewJob(j)) if j.notify.job_id == "3"
        ));
        // The next block's job, sent to the group.
        for m in [job(9, 4), prevhash(9, 4)] {
            let bytes = sealer.seal_message(&m).expect("sealed");
            miner.handle_bytes(&bytes, now);
        }
        assert!(matches!(
            miner.events.pop_front(),
            Some(MinerEvent::NewJob(j)) if j.notify.job_id == "4" && j.clean
        ));
        // A target for another channel is not this one's; the group's is.
        let mut hard = [0; 32];
        hard[25] = 1;
        let target = |channel_id| m::SetTarget {
            channel_id,
            maximum_target: hard,
        };
        let bytes = sealer.seal_message(&target(6).into()).expect("sealed");
        miner.handle_bytes(&bytes, now);
        assert!(miner.channel.as_ref().is_some_and(|c| c.difficulty < 1.0));
        let bytes = sealer.seal_message(&target(9).into()).expect("sealed");
        miner.handle_bytes(&bytes, now);
        assert!(miner.channel.as_ref().is_some_and(|c| c.difficulty > 1e6));
    }

    #[test]
    fn a_success_covers_only_as_many_shares_as_it_counts() {
        let (mut miner, mut sealer, now) = open();
        for m in [job(5, 3), prevhash(5, 3)] {
            let bytes = sealer.seal_message(&m).expect("sealed");
            miner.handle_bytes(&bytes, now);
        }
        miner.events.clear();
        let share = |nonce| MinerShare {
            job_id: "3".into(),
            extranonce2: vec![0; 4],
            ntime: 1_700_000_000,
            nonce,
            version_bits: None,
        };
        let first = miner.submit(share(1));
        let second = miner.submit(share(2));
        // One accepted up to sequence 2, and an error for the first on its way.
        let success = m::SubmitSharesSuccess {
            channel_id: 5,
            last_sequence_number: 2,
            new_submits_accepted_count: 1,
            new_shares_sum: 1,
        };
        let bytes = sealer.seal_message(&success.into()).expect("sealed");
        miner.handle_bytes(&bytes, now);
        assert!(matches!(
            miner.events.pop_front(),
            Some(MinerEvent::ShareResult { sequence, accepted: true, .. }) if sequence == first
        ));
        assert!(miner.events.is_empty());
        let error = m::SubmitSharesError {
            channel_id: 5,
            sequence_number: 2,
            error_code: "stale-share".into(),
        };
        let bytes = sealer.seal_message(&error.into()).expect("sealed");
        miner.handle_bytes(&bytes, now);
        assert!(matches!(
            miner.events.pop_front(),
            Some(MinerEvent::ShareResult { sequence, accepted: false, .. }) if sequence == second
        ));
    }
}
