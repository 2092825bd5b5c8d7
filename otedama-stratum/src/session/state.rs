//! The state every pool-side session keeps, whatever its dialect.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::liveness::Liveness;
use super::{AuthorizeToken, CloseReason, SessionEvent, ShareToken, ShareVerdict};
use crate::v1::extranonce::Extranonce1;
use crate::v1::message::{Message, Request, RequestId};

/// Ban-score points a line that is not JSON-RPC, a request of the wrong shape, a refused
/// authorization or a malformed share costs.
pub(crate) const PENALTY: i32 = 5;

/// The highest ban score good shares build up: a long honest past buys only a few mistakes.
const MAX_BAN_SCORE: i32 = 10;

/// The events a [`SessionCore`] raises on its own: the end of the session.
pub(crate) trait SessionEvents {
    /// The event for a session that ended.
    fn closed(reason: CloseReason) -> Self;
}

impl<S> SessionEvents for SessionEvent<S> {
    fn closed(reason: CloseReason) -> Self {
        SessionEvent::Closed(reason)
    }
}

/// What every pool session keeps, whatever its dialect: the queues towards the socket and
/// the caller, the requests awaiting a verdict, the clocks, the ban score, the share
/// counters, and the value it holds from the [`ExtranonceAllocator`](crate::ExtranonceAllocator)
/// (released when the session ends).
#[derive(Debug)]
pub(crate) struct SessionCore<E> {
    liveness: Liveness,
    ban_score: i32,
    ban_threshold: i32,
    extranonce: Option<Extranonce1>,
    pending_authorize: HashMap<u64, (Option<RequestId>, String)>,
    pending_shares: HashMap<u64, Option<RequestId>>,
    next_token: u64,
    accepted: u64,
    rejected: u64,
    output: VecDeque<String>,
    events: VecDeque<E>,
    closed: Option<CloseReason>,
}

impl<E: SessionEvents> SessionCore<E> {
    /// A session opened at `now`, closed if it does not log in within `login_timeout` or
    /// stays silent for `idle_timeout`, and banned at a score of `ban_threshold`.
    pub(crate) fn new(
        now: Instant,
        login_timeout: Duration,
        idle_timeout: Duration,
        ban_threshold: i32,
    ) -> Self {
        SessionCore {
            liveness: Liveness::new(now, login_timeout, idle_timeout),
            ban_score: 0,
            ban_threshold,
            extranonce: None,
            pending_authorize: HashMap::new(),
            pending_shares: HashMap::new(),
            next_token: 0,
            accepted: 0,
            rejected: 0,
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// The next line to write.
    pub(crate) fn poll_output(&mut self) -> Option<String> {
        self.output.pop_front()
    }

    /// Queues a line to write.
    pub(crate) fn send(&mut self, line: String) {
        self.output.push_back(line);
    }

    /// The next event for the caller.
    pub(crate) fn poll_event(&mut self) -> Option<E> {
        self.events.pop_front()
    }

    /// Queues an event for the caller.
    pub(crate) fn event(&mut self, event: E) {
        self.events.push_back(event);
    }

    /// Whether the session has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The value drawn from the allocator, until the session ends.
    pub(crate) fn extranonce(&self) -> Option<&[u8]> {
        self.extranonce.as_ref().map(Extranonce1::as_bytes)
    }

    /// Holds `extranonce` until the session ends.
    pub(crate) fn set_extranonce(&mut self, extranonce: Extranonce1) {
        self.extranonce = Some(extranonce);
    }

    /// Shares accepted and rejected so far.
    pub(crate) fn share_counts(&self) -> (u64, u64) {
        (self.accepted, self.rejected)
    }

    /// A fresh number, for tokens and the ids of requests to the miner.
    pub(crate) fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// The instant by which [`SessionCore::handle_timeout`] must be called next.
    pub(crate) fn poll_timeout(&self, logged_in: bool) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        Some(self.liveness.deadline(logged_in))
    }

    /// Closes the session if a clock ran out at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant, logged_in: bool) {
        if self.is_closed() {
            return;
        }
        if let Some(reason) = self.liveness.expired(now, logged_in) {
            self.close(reason);
        }
    }

    /// Ends the session: raises the event, releases the extranonce, and forgets the
    /// authorizations and shares awaiting a verdict (answering them afterwards writes
    /// nothing). Lines already queued stay queued.
    pub(crate) fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(E::closed(reason));
            self.extranonce = None;
            self.pending_authorize.clear();
            self.pending_shares.clear();
        }
    }

    /// Takes one line from the miner: the request in it, if it holds one. A line of more than
    /// `max_line` bytes, or one that is not JSON-RPC, closes a session not yet `greeted`
    /// (subscribed, or logging in) as [`CloseReason::NotStratum`] and costs a greeted one
    /// ban score. Responses are dropped: miners only answer requests like
    /// `client.get_version`.
    pub(crate) fn receive(
        &mut self,
        line: &[u8],
        now: Instant,
        greeted: bool,
        max_line: Option<usize>,
    ) -> Option<Request> {
        if self.is_closed() {
            return None;
        }
        self.liveness.seen(now);
        let parsed = if max_line.is_some_and(|max| line.len() > max) {
            None
        } else {
            Message::parse(line).ok()
        };
        match parsed {
            Some(Message::Request(request)) => Some(request),
            Some(Message::Response(_)) => None,
            None if !greeted => {
                self.close(CloseReason::NotStratum);
                None
            }
            None => {
                self.penalize(PENALTY);
                None
            }
        }
    }

    /// Lowers the ban score by `points`, closing the session as [`CloseReason::Banned`] at
    /// the threshold.
    pub(crate) fn penalize(&mut self, points: i32) {
        self.ban_score = self.ban_score.saturating_sub(points);
        if self.ban_score <= self.ban_threshold {
            self.close(CloseReason::Banned);
        }
    }

    /// Counts a share the session refused itself, at the cost of `points`.
    pub(crate) fn reject(&mut self, points: i32) {
        self.rejected += 1;
        self.penalize(points);
    }

    /// Counts a rejected share without a penalty (the penalty comes separately).
    pub(crate) fn count_rejected(&mut self) {
        self.rejected += 1;
    }

    /// Holds an authorization of `username` requested with `id` until its verdict.
    pub(crate) fn await_authorize(
        &mut self,
        id: Option<RequestId>,
        username: String,
    ) -> AuthorizeToken {
        let token = self.token();
        self.pending_authorize.insert(token, (id, username));
        AuthorizeToken(token)
    }

    /// Whether an authorization awaits its verdict.
    pub(crate) fn authorize_pending(&self) -> bool {
        !self.pending_authorize.is_empty()
    }

    /// The request id and username of an authorization awaiting its verdict, now settled.
    pub(crate) fn take_authorize(
        &mut self,
        token: AuthorizeToken,
    ) -> Option<(Option<RequestId>, String)> {
        self.pending_authorize.remove(&token.0)
    }

    /// Holds a share submitted with `id` until its verdict.
    pub(crate) fn await_share(&mut self, id: Option<RequestId>) -> ShareToken {
        let token = self.token();
        self.pending_shares.insert(token, id);
        ShareToken(token)
    }

    /// The request id of a share awaiting its verdict, now settled; `None` when the token is
    /// unknown (answered already, or the session closed).
    pub(crate) fn take_share(&mut self, token: ShareToken) -> Option<Option<RequestId>> {
        self.pending_shares.remove(&token.0)
    }

    /// Counts the caller's verdict on a share and moves the ban score: up by one (to at most
    /// 10) when accepted, down by the verdict's [penalty](ShareVerdict::penalty) otherwise.
    pub(crate) fn judge(&mut self, verdict: &ShareVerdict) {
        if *verdict == ShareVerdict::Accepted {
            self.accepted += 1;
            self.ban_score = (self.ban_score + 1).min(MAX_BAN_SCORE);
        } else {
            self.rejected += 1;
            self.penalize(verdict.penalty());
        }
    }
}

/// The shares a session has seen, for duplicate detection: at most `max` of them, the oldest
/// forgotten first.
#[derive(Debug)]
pub(crate) struct SeenShares<K> {
    set: HashSet<K>,
    order: VecDeque<K>,
    max: usize,
}

impl<K: Hash + Eq + Clone> SeenShares<K> {
    /// Remembers up to `max` shares (at least one).
    pub(crate) fn new(max: usize) -> Self {
        SeenShares {
            set: HashSet::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Records `key`; `false` when it was seen already.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Forgets every share (their jobs are void).
    pub(crate) fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_shares_are_bounded_oldest_first() {
        let mut seen = SeenShares::new(2);
        assert!(seen.insert(1));
        assert!(!seen.insert(1));
        assert!(seen.insert(2));
        assert!(seen.insert(3));
        // 1 fell out; 2 and 3 are still remembered.
        assert!(seen.insert(1));
        assert!(!seen.insert(3));
        seen.clear();
        assert!(seen.insert(3));
        assert!(SeenShares::new(0).insert(()));
    }

    #[test]
    fn core_bans_times_out_and_forgets_on_close() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut core: SessionCore<SessionEvent<()>> = SessionCore::new(t0, secs(30), secs(600), -6);
        let share = core.await_share(None);
        let auth = core.await_authorize(None, "w".into());
        assert!(core.authorize_pending());
        core.judge(&ShareVerdict::Accepted);
        assert_eq!(core.share_counts(), (1, 0));
        core.judge(&ShareVerdict::Stale);
        core.reject(PENALTY);
        assert_eq!(core.poll_event(), None);
        core.judge(&ShareVerdict::Invalid("x".into()));
        assert_eq!(core.share_counts(), (1, 3));
        assert_eq!(
            core.poll_event(),
            Some(SessionEvent::Closed(CloseReason::Banned))
        );
        assert_eq!(core.take_share(share), None);
        assert_eq!(core.take_authorize(auth), None);
        assert_eq!(core.poll_timeout(false), None);

        let mut core: SessionCore<SessionEvent<()>> =
            SessionCore::new(t0, secs(30), secs(600), -30);
        assert_eq!(core.poll_timeout(false), Some(t0 + secs(30)));
        assert_eq!(core.poll_timeout(true), Some(t0 + secs(600)));
        assert!(core
            .receive(br#"{"id":1,"result":true,"error":null}"#, t0, false, None)
            .is_none());
        assert!(!core.is_closed());
        assert!(core
            .receive(
                b"{\"id\":1,\"method\":\"x\",\"params\":[]}",
                t0,
                false,
                Some(8)
            )
            .is_none());
        assert_eq!(
            core.poll_event(),
            Some(SessionEvent::Closed(CloseReason::NotStratum))
        );
        core.handle_timeout(t0 + secs(601), true);
        assert_eq!(core.poll_event(), None);
    }

    #[test]
    fn the_pools_own_failures_never_ban_a_miner() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut core: SessionCore<SessionEvent<()>> = SessionCore::new(t0, secs(30), secs(600), -6);
        for _ in 0..100 {
            core.await_share(None);
            core.judge(&ShareVerdict::PoolError("share not recorded".into()));
        }
        assert_eq!(core.share_counts(), (0, 100), "counted as not accepted");
        assert_eq!(core.poll_event(), None, "and never a ban");
        assert!(!core.is_closed());
    }
}
