//! The miner side's common trait, [`MinerProtocol`], and [`PoolLink`], what a client knows
//! about the connection a miner session runs on.

use std::fmt;
use std::time::Instant;

use crate::MinerCloseReason;

/// What a client knows about the pool connection it opens a miner session for.
///
/// Stratum v1 ([`MinerSession`](crate::MinerSession)) uses all of it: the host decides which
/// `client.reconnect` requests stay on the same pool, the session id asks the pool to resume
/// an earlier subscription. The Monero dialect has neither resumption nor redirects, so
/// [`MoneroMinerSession`](crate::MoneroMinerSession) ignores the link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolLink {
    /// The pool's host as dialled (a name or an IP address, IPv6 without brackets).
    pub host: String,
    /// A session id to resume (v1: the `session_id` of an earlier
    /// [`MinerEvent::Subscribed`](crate::MinerEvent::Subscribed)); `None` starts afresh.
    pub resume: Option<String>,
    /// Whether the pool may send the miner to another host (v1: see
    /// [`MinerSession::allow_redirects`](crate::MinerSession::allow_redirects)).
    pub allow_redirects: bool,
    /// The pool's Stratum V2 authority key (base58check), from its
    /// `stratum2+tcp://host:port/<key>` URL.
    pub authority: Option<String>,
}

impl PoolLink {
    /// A link to `host`, with nothing to resume and redirects to other hosts refused.
    pub fn new(host: impl Into<String>) -> Self {
        PoolLink {
            host: host.into(),
            resume: None,
            allow_redirects: false,
            authority: None,
        }
    }

    /// The pool's Stratum V2 authority key, to check its certificate with.
    pub fn with_authority(mut self, key: impl Into<String>) -> Self {
        self.authority = Some(key.into());
        self
    }

    /// Asks to resume the session `session_id`; an empty id resumes nothing.
    pub fn with_resume(mut self, session_id: impl Into<String>) -> Self {
        let id = session_id.into();
        self.resume = (!id.is_empty()).then_some(id);
        self
    }

    /// Whether the pool may send the miner to another host.
    pub fn allow_redirects(mut self, allow: bool) -> Self {
        self.allow_redirects = allow;
        self
    }
}

/// The miner side of one pool connection in any dialect, sans-IO: what a client needs to
/// drive a session without knowing its wire format. The mirror of
/// [`PoolProtocol`](crate::PoolProtocol).
///
/// [`MinerSession`](crate::MinerSession) (Stratum v1) and
/// [`MoneroMinerSession`](crate::MoneroMinerSession) (xmrig's dialect) implement it; the tokio
/// client (feature `tokio`) drives either. A session is [`open`]ed with its opening requests
/// already queued; lines from the pool go in with [`handle_line`], lines to write come out of
/// [`poll_output`], what the miner must act on comes out of [`poll_event`] in the dialect's
/// own event type (jobs differ too much between dialects to share one shape), shares go in
/// with [`submit`], and time only moves through the `now` arguments and [`handle_timeout`].
///
/// Once [`is_closed`] says so, the session takes no more lines, but the events it queued,
/// its closing event among them, are still there to poll (and a share submitted after the
/// end still gets its failed result): a client closes the connection once it has drained
/// them.
///
/// The sessions keep their own inherent methods of the same names, which behave the same.
///
/// [`open`]: MinerProtocol::open
/// [`handle_line`]: MinerProtocol::handle_line
/// [`poll_output`]: MinerProtocol::poll_output
/// [`poll_event`]: MinerProtocol::poll_event
/// [`submit`]: MinerProtocol::submit
/// [`handle_timeout`]: MinerProtocol::handle_timeout
/// [`is_closed`]: MinerProtocol::is_closed
pub trait MinerProtocol: Sized + Send + 'static {
    /// The dialect's settings: worker or wallet, password, user agent, and the like.
    type Config: fmt::Debug + Send + 'static;
    /// What the session reports: jobs, login or authorization, share results, its end.
    type Event: fmt::Debug + Send + 'static;
    /// A share to submit.
    type Share: fmt::Debug + Send + 'static;
    /// What the session writes: lines (`String`) or bytes.
    type Output: AsRef<[u8]> + Send + 'static;
    /// How the dialect's input is cut into messages.
    const FRAMING: super::Framing = super::Framing::Lines;

    /// A session for a new connection over `link` at `now`, with its opening requests
    /// (v1: configure, subscribe, authorize; Monero: login) queued for
    /// [`poll_output`](MinerProtocol::poll_output).
    fn open(config: Self::Config, link: &PoolLink, now: Instant) -> Self;

    /// Handles one line from the pool, without its newline.
    fn handle_line(&mut self, line: &[u8], now: Instant);

    /// Handles bytes from the pool as they arrive, for a
    /// [`Framing::Binary`](super::Framing::Binary) dialect (a line dialect gets whole lines
    /// through [`handle_line`](MinerProtocol::handle_line)); returns how many messages they
    /// completed.
    fn handle_bytes(&mut self, bytes: &[u8], now: Instant) -> usize {
        self.handle_line(bytes, now);
        1
    }

    /// The next output to write to the pool (a line with its newline, or bytes).
    fn poll_output(&mut self) -> Option<Self::Output>;

    /// The next event for the caller.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// Queues a share and returns the sequence number its result event will carry. A share
    /// that cannot be sent (not logged in, an unknown job, the session closed) fails at once
    /// without going out; one sent gets the pool's answer, or a failed result when the pool
    /// does not answer in time. Shares still awaiting an answer when the session ends get no
    /// result: the pool may or may not have counted them.
    fn submit(&mut self, share: Self::Share) -> u64;

    /// The instant by which [`handle_timeout`](MinerProtocol::handle_timeout) must be called
    /// next (at once when requests were queued since the time was last passed in); `None`
    /// once closed.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Checks the timeouts at `now`: unanswered shares fail, an unanswered opening request or
    /// a silent pool ends the session, keep-alives go out when due.
    fn handle_timeout(&mut self, now: Instant);

    /// Ends the session, queueing its closing event; later calls do nothing.
    fn close(&mut self, reason: MinerCloseReason);

    /// Whether the session has ended.
    fn is_closed(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        MinerConfig, MinerEvent, MinerSession, MoneroMinerConfig, MoneroMinerEvent,
        MoneroMinerSession, MoneroMinerShare,
    };
    use serde_json::{json, Value};

    /// What a session of any dialect writes first, as JSON.
    fn opening<P: MinerProtocol>(config: P::Config, link: &PoolLink) -> (P, Vec<Value>) {
        let mut session = P::open(config, link, Instant::now());
        let lines = std::iter::from_fn(|| session.poll_output())
            .map(|l| {
                let l = l.as_ref();
                assert!(l.ends_with(b"\n"), "{:?}", String::from_utf8_lossy(l));
                serde_json::from_slice(l).expect("json line")
            })
            .collect();
        (session, lines)
    }

    /// Closes a session of any dialect: the closing event is still there to poll, no
    /// deadline is left, and a later close changes nothing.
    fn closes<P: MinerProtocol>(session: &mut P) -> Vec<P::Event> {
        assert!(!session.is_closed());
        assert!(session.poll_timeout().is_some());
        session.close(MinerCloseReason::Requested);
        session.close(MinerCloseReason::Idle);
        assert!(session.is_closed());
        assert_eq!(session.poll_timeout(), None);
        std::iter::from_fn(|| session.poll_event()).collect()
    }

    fn v1_config() -> MinerConfig {
        MinerConfig {
            user: "addr.rig1".into(),
            user_agent: "otedama-test/1".into(),
            ..MinerConfig::default()
        }
    }

    #[test]
    fn v1_opens_with_subscribe_and_authorize_resuming_the_link_session() {
        let link = PoolLink::new("pool.example").with_resume("n1");
        let (mut session, out) = opening::<MinerSession>(v1_config(), &link);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["method"], "mining.subscribe");
        assert_eq!(out[0]["params"], json!(["otedama-test/1", "n1"]));
        assert_eq!(out[1]["method"], "mining.authorize");
        assert_eq!(out[1]["params"], json!(["addr.rig1", "x"]));
        assert_eq!(
            closes(&mut session),
            [MinerEvent::Closed(MinerCloseReason::Requested)]
        );

        // An empty id resumes nothing.
        let (_, out) = opening::<MinerSession>(v1_config(), &PoolLink::new("p").with_resume(""));
        assert_eq!(out[0]["params"], json!(["otedama-test/1"]));
    }

    #[test]
    fn v1_reconnects_follow_the_link() {
        let reconnect = |link: &PoolLink, host: &str| {
            let (mut session, _) = opening::<MinerSession>(v1_config(), link);
            let line =
                format!(r#"{{"id":null,"method":"client.reconnect","params":["{host}",3334,0]}}"#);
            session.handle_line(line.as_bytes(), Instant::now());
            match session.poll_event() {
                Some(MinerEvent::Reconnect(_)) => true,
                Some(MinerEvent::ReconnectRefused(_)) => false,
                other => panic!("{other:?}"),
            }
        };
        let link = PoolLink::new("pool.example");
        assert!(reconnect(&link, "POOL.example"), "the same host, any port");
        assert!(!reconnect(&link, "evil.example"), "another host is refused");
        assert!(reconnect(&link.allow_redirects(true), "evil.example"));
    }

    #[test]
    fn monero_opens_with_login_and_ignores_the_link() {
        let config = MoneroMinerConfig {
            login: "4wallet".into(),
            agent: "otedama-test/1".into(),
            ..MoneroMinerConfig::default()
        };
        let link = PoolLink::new("pool.example")
            .with_resume("n1")
            .allow_redirects(true);
        let (mut session, out) = opening::<MoneroMinerSession>(config, &link);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["method"], "login");
        assert_eq!(
            out[0]["params"],
            json!({"login": "4wallet", "pass": "x", "agent": "otedama-test/1", "algo": ["rx/0"]})
        );
        // Not logged in yet: a share fails at once, through the trait as inherently.
        let sequence = MinerProtocol::submit(
            &mut session,
            MoneroMinerShare {
                job_id: "1".into(),
                nonce: 0,
                result: [0; 32],
                algo: None,
            },
        );
        let Some(MoneroMinerEvent::ShareResult {
            sequence: s,
            accepted: false,
            ..
        }) = session.poll_event()
        else {
            panic!("a failed share")
        };
        assert_eq!(s, sequence);
        assert_eq!(session.poll_output(), None, "nothing went out");
        assert_eq!(
            closes(&mut session),
            [MoneroMinerEvent::Closed(MinerCloseReason::Requested)]
        );
    }
}
