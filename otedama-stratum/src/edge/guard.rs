//! Limits at a server's edge, sans-IO: new connections per address per second, bans that
//! expire, and the token bucket both they and the per-connection message limit use.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

/// A rate with room for bursts: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The sustained rate.
    pub per_second: f64,
    /// How many may come at once after a quiet spell.
    pub burst: f64,
}

/// A token bucket for one [`Rate`]: starts full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: rate.burst.max(1.0),
            last: now,
        }
    }

    /// Takes one token at `now`: `false` when the rate is exceeded.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        let cap = rate.burst.max(1.0);
        self.tokens = (self.tokens + elapsed * rate.per_second.max(0.0)).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full again at `now` (and so need not be kept).
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate.per_second.max(0.0) >= rate.burst.max(1.0)
    }
}

/// The limits a server applies at its edge. The defaults are meant to be safe for real
/// pools: a farm behind one address reconnecting a few hundred rigs at once passes, a flood
/// does not.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// New connections per address (`None`: unlimited).
    pub connections_per_ip: Option<Rate>,
    /// Lines per connection (`None`: unlimited); a connection past it is closed.
    pub messages_per_connection: Option<Rate>,
    /// How long an address the sessions banned (too many bad shares or lines) is refused
    /// (`None`: a ban closes the connection only).
    pub ban_for: Option<Duration>,
    /// Whether loopback addresses (the host itself, a local balancer not speaking the PROXY
    /// protocol, benchmarks) are exempt from the rate limits and bans.
    pub exempt_loopback: bool,
    /// Whether every connection must open with a PROXY protocol header (version 1 or 2),
    /// whose client address then stands for the connection's.
    pub proxy_protocol: bool,
    /// How long a connection has to send its PROXY header.
    pub proxy_timeout: Duration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            connections_per_ip: Some(Rate {
                per_second: 20.0,
                burst: 500.0,
            }),
            messages_per_connection: Some(Rate {
                per_second: 50.0,
                burst: 500.0,
            }),
            ban_for: Some(Duration::from_secs(600)),
            exempt_loopback: true,
            proxy_protocol: false,
            proxy_timeout: Duration::from_secs(5),
        }
    }
}

impl EdgeConfig {
    /// No limits, no bans, no PROXY header: what a server ran with before it had an edge.
    pub fn open() -> EdgeConfig {
        EdgeConfig {
            connections_per_ip: None,
            messages_per_connection: None,
            ban_for: None,
            exempt_loopback: true,
            proxy_protocol: false,
            proxy_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the edge refused a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeRefusal {
    /// The address is banned until the given time.
    #[error("banned")]
    Banned {
        /// When the ban ends.
        until: SystemTime,
    },
    /// The address opens connections faster than [`EdgeConfig::connections_per_ip`].
    #[error("too many new connections")]
    TooFast,
}

/// One ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ban {
    ends: Instant,
    until: SystemTime,
}

/// The edge's state: a bucket per address that connected lately, and the bans.
#[derive(Debug)]
pub struct Guard {
    config: EdgeConfig,
    buckets: HashMap<IpAddr, TokenBucket>,
    bans: HashMap<IpAddr, Ban>,
    last_sweep: Option<Instant>,
}

/// How often full buckets and ended bans are dropped.
const SWEEP: Duration = Duration::from_secs(10);

impl Guard {
    /// A guard with no history.
    pub fn new(config: EdgeConfig) -> Guard {
        Guard {
            config,
            buckets: HashMap::new(),
            bans: HashMap::new(),
            last_sweep: None,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.config.exempt_loopback && ip.is_loopback()
    }

    /// Admits a new connection from `ip` at `now`, or says why not.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), EdgeRefusal> {
        self.sweep(now);
        if self.exempt(ip) {
            return Ok(());
        }
        if let Some(ban) = self.bans.get(&ip) {
            if ban.ends > now {
                return Err(EdgeRefusal::Banned { until: ban.until });
            }
            self.bans.remove(&ip);
        }
        if let Some(rate) = self.config.connections_per_ip {
            let bucket = self
                .buckets
                .entry(ip)
                .or_insert_with(|| TokenBucket::new(rate, now));
            if !bucket.take(rate, now) {
                return Err(EdgeRefusal::TooFast);
            }
        }
        Ok(())
    }

    /// Bans `ip` for [`EdgeConfig::ban_for`] from `now` (`wall` is the wall clock at `now`);
    /// returns when the ban ends, or `None` when bans are off or the address is exempt.
    pub fn ban(&mut self, ip: IpAddr, now: Instant, wall: SystemTime) -> Option<SystemTime> {
        let length = self.config.ban_for?;
        if self.exempt(ip) {
            return None;
        }
        let until = wall + length;
        self.bans.insert(
            ip,
            Ban {
                ends: now + length,
                until,
            },
        );
        Some(until)
    }

    /// Puts back a ban that ends at `until` (wall clock), as a pool does with the bans it
    /// stored before a restart; one already over is ignored.
    pub fn restore(&mut self, ip: IpAddr, until: SystemTime, now: Instant, wall: SystemTime) {
        if let Ok(left) = until.duration_since(wall) {
            if !left.is_zero() {
                self.bans.insert(
                    ip,
                    Ban {
                        ends: now + left,
                        until,
                    },
                );
            }
        }
    }

    /// Puts `limits`' rates, ban length and loopback exemption in force from now on (a
    /// configuration reload): new connections are admitted and held to them; bans already
    /// made keep their end. The PROXY protocol settings are left as they are: they belong to
    /// each listener, not to the limits it shares.
    pub fn set_limits(&mut self, limits: &EdgeConfig) {
        self.config.connections_per_ip = limits.connections_per_ip;
        self.config.messages_per_connection = limits.messages_per_connection;
        self.config.ban_for = limits.ban_for;
        self.config.exempt_loopback = limits.exempt_loopback;
        // A bucket filled at the old rate would let a lowered burst through at once.
        self.buckets.clear();
    }

    /// Lifts the ban on `ip`; `false` when there was none.
    pub fn unban(&mut self, ip: IpAddr) -> bool {
        self.bans.remove(&ip).is_some()
    }

    /// The bans in force at `now`, with when each ends.
    pub fn bans(&self, now: Instant) -> Vec<(IpAddr, SystemTime)> {
        let mut bans: Vec<_> = self
            .bans
            .iter()
            .filter(|(_, ban)| ban.ends > now)
            .map(|(ip, ban)| (*ip, ban.until))
            .collect();
        bans.sort();
        bans
    }

    /// Drops what no longer limits anything, so that a scan from many addresses does not
    /// grow the guard for good.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < SWEEP)
        {
            return;
        }
        self.last_sweep = Some(now);
        if let Some(rate) = self.config.connections_per_ip {
            self.buckets.retain(|_, bucket| !bucket.is_full(rate, now));
        }
        self.bans.retain(|_, ban| ban.ends > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn new_limits_apply_to_the_next_connection_and_keep_the_bans() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let mut guard = Guard::new(EdgeConfig {
            exempt_loopback: false,
            ..EdgeConfig::default()
        });
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(guard.ban(a, t0, wall).is_some());
        assert!((0..10).all(|_| guard.admit(b, t0).is_ok()));
        guard.set_limits(&EdgeConfig {
            connections_per_ip: Some(Rate {
                per_second: 1.0,
                burst: 2.0,
            }),
            ban_for: None,
            exempt_loopback: true,
            proxy_protocol: true,
            ..EdgeConfig::default()
        });
        assert!(guard.admit(b, t0).is_ok());
        assert!(guard.admit(b, t0).is_ok());
        assert_eq!(
            guard.admit(b, t0),
            Err(EdgeRefusal::TooFast),
            "the new burst of 2"
        );
        assert!(
            matches!(guard.admit(a, t0), Err(EdgeRefusal::Banned { .. })),
            "the ban made before keeps its end"
        );
        assert_eq!(guard.ban(b, t0, wall), None, "bans are off now");
        assert!(guard.config().exempt_loopback);
        assert!(!guard.config().proxy_protocol, "the listener's own setting");
        assert!(guard.admit(ip("127.0.0.1"), t0).is_ok());
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let rate = Rate {
            per_second: 2.0,
            burst: 3.0,
        };
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(rate, t0);
        assert!((0..3).all(|_| bucket.take(rate, t0)));
        assert!(!bucket.take(rate, t0), "the burst is spent");
        assert!(!bucket.take(rate, t0 + Duration::from_millis(400)));
        assert!(
            bucket.take(rate, t0 + Duration::from_millis(500)),
            "2 per second"
        );
        // A long quiet spell refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.take(rate, later)));
        assert!(!bucket.take(rate, later));
    }

    #[test]
    fn new_connections_are_limited_per_address() {
        let config = EdgeConfig {
            connections_per_ip: Some(Rate {
                per_second: 1.0,
                burst: 2.0,
            }),
            ..EdgeConfig::default()
        };
        let mut guard = Guard::new(config);
        let t0 = Instant::now();
        assert_eq!(guard.admit(ip("192.0.2.1"), t0), Ok(()));
        assert_eq!(guard.admit(ip("192.0.2.1"), t0), Ok(()));
        assert_eq!(guard.admit(ip("192.0.2.1"), t0), Err(EdgeRefusal::TooFast));
        assert_eq!(guard.admit(ip("192.0.2.2"), t0), Ok(()), "another address");
        assert!(
            (0..100).all(|_| guard.admit(ip("127.0.0.1"), t0).is_ok()),
            "loopback"
        );
        assert_eq!(
            guard.admit(ip("192.0.2.1"), t0 + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[test]
    fn bans_expire_and_survive_a_restart() {
        let mut guard = Guard::new(EdgeConfig::default());
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let bad = ip("2001:db8::66");
        let until = guard.ban(bad, t0, wall).expect("banned");
        assert_eq!(until, wall + Duration::from_secs(600));
        assert_eq!(guard.admit(bad, t0), Err(EdgeRefusal::Banned { until }));
        assert_eq!(guard.bans(t0), vec![(bad, until)]);
        assert!(
            guard.ban(ip("127.0.0.1"), t0, wall).is_none(),
            "loopback is exempt"
        );

        // A restart 5 minutes in: the stored ban is put back for what is left of it.
        let mut after = Guard::new(EdgeConfig::default());
        let t1 = Instant::now();
        let wall1 = wall + Duration::from_secs(300);
        after.restore(bad, until, t1, wall1);
        after.restore(ip("192.0.2.9"), wall, t1, wall1);
        assert_eq!(
            after.bans(t1),
            vec![(bad, until)],
            "the ended one is not restored"
        );
        assert!(after.admit(bad, t1 + Duration::from_secs(299)).is_err());
        assert_eq!(after.admit(bad, t1 + Duration::from_secs(300)), Ok(()));
        assert!(after.bans(t1 + Duration::from_secs(300)).is_empty());

        assert!(guard.unban(bad));
        assert_eq!(guard.admit(bad, t0), Ok(()));
        assert!(Guard::new(EdgeConfig::open()).ban(bad, t0, wall).is_none());
    }

    #[test]
    fn a_scan_from_many_addresses_does_not_grow_the_guard_for_good() {
        let mut guard = Guard::new(EdgeConfig::default());
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            guard
                .admit(IpAddr::from((0xc000_0000u32 + i).to_be_bytes()), t0)
                .expect("admitted");
        }
        assert_eq!(guard.buckets.len(), 10_000);
        guard
            .admit(ip("192.0.2.1"), t0 + Duration::from_secs(3600))
            .expect("admitted");
        assert!(guard.buckets.len() <= 1, "{}", guard.buckets.len());
    }
}
