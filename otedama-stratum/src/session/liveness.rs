//! The two clocks every pool-side session keeps: the deadline to log in (subscribe) and the
//! idle timeout.

use std::time::{Duration, Instant};

use super::CloseReason;

/// When a connection was opened and last heard from, and how long it may take for each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    created: Instant,
    last_seen: Instant,
    login_timeout: Duration,
    idle_timeout: Duration,
}

impl Liveness {
    pub(crate) fn new(now: Instant, login_timeout: Duration, idle_timeout: Duration) -> Self {
        Liveness {
            created: now,
            last_seen: now,
            login_timeout,
            idle_timeout,
        }
    }

    /// Notes that the peer sent something.
    pub(crate) fn seen(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// The next instant at which [`Liveness::expired`] may change its answer.
    pub(crate) fn deadline(&self, logged_in: bool) -> Instant {
        let idle = self.last_seen + self.idle_timeout;
        if logged_in {
            idle
        } else {
            idle.min(self.created + self.login_timeout)
        }
    }

    /// Why the session must end at `now`, if it must.
    pub(crate) fn expired(&self, now: Instant, logged_in: bool) -> Option<CloseReason> {
        if !logged_in && now >= self.created + self.login_timeout {
            Some(CloseReason::SubscribeTimeout)
        } else if now >= self.last_seen + self.idle_timeout {
            Some(CloseReason::Idle)
        } else {
            None
        }
    }
}
