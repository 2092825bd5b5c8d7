//! The server side of Stratum V2's template distribution protocol (feature `noise`),
//! sans-IO: a template provider, as a node would be, for a pool that builds its own jobs.
//!
//! [`Sv2TemplateSession`] answers the Noise handshake with a certificate signed by the
//! provider's authority key, takes `SetupConnection` for the template distribution protocol
//! and the pool's `CoinbaseOutputConstraints`, and then sends each [`TemplateOffer`] it is
//! given: on a new previous block as a future `NewTemplate` followed by `SetNewPrevHash`, on
//! the same block as a `NewTemplate` for at once. A pool's `SubmitSolution` comes out as a
//! [`TemplateEvent::Solution`]; the caller rebuilds the block from the template it offered
//! and submits it. `RequestTransactionData` is answered from the offer's transactions.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::message::{self as m, Message, Protocol};
use super::noise::{AuthorityKeypair, ResponderLink, Took};
use crate::CloseReason;

/// The largest frame taken from a pool: template distribution messages from the pool are a
/// few bytes, but a `SubmitSolution` carries a whole coinbase.
const MAX_POOL_FRAME: usize = 1 << 17;

/// Templates whose transactions are kept for `RequestTransactionData`.
const KEPT_TEMPLATES: usize = 8;

/// Settings of a template provider session.
#[derive(Clone)]
pub struct Sv2TemplateConfig {
    /// The provider's authority key: pools check its certificates against the public half.
    pub authority: AuthorityKeypair,
    /// How long each connection's certificate is valid, in seconds.
    pub certificate_validity: u32,
}

impl std::fmt::Debug for Sv2TemplateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sv2TemplateConfig")
            .field("authority", &self.authority.public().to_base58())
            .field("certificate_validity", &self.certificate_validity)
            .finish()
    }
}

/// A block template as the provider offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateOffer {
    /// Names the template in the pool's `SubmitSolution`.
    pub template_id: u64,
    /// The header version.
    pub version: u32,
    /// The coinbase transaction's version.
    pub coinbase_tx_version: u32,
    /// The start of the coinbase input's script (the BIP34 height push).
    pub coinbase_prefix: Vec<u8>,
    /// The coinbase input's sequence.
    pub coinbase_tx_input_sequence: u32,
    /// The value the pool's outputs share: the subsidy and the fees, less the outputs below.
    pub coinbase_tx_value_remaining: u64,
    /// Outputs the coinbase must carry (the witness commitment), each serialized.
    pub coinbase_tx_outputs: Vec<Vec<u8>>,
    /// The coinbase's lock time.
    pub coinbase_tx_locktime: u32,
    /// The merkle path from the coinbase: the template's transaction ids, folded.
    pub merkle_path: Vec<[u8; 32]>,
    /// The previous block's hash, in header order.
    pub prev_hash: [u8; 32],
    /// The header time to start from.
    pub header_timestamp: u32,
    /// The network target, compact.
    pub nbits: u32,
    /// The network target, little-endian.
    pub target: [u8; 32],
    /// The template's transactions, serialized, for `RequestTransactionData`.
    pub transactions: Vec<Vec<u8>>,
}

/// What a template provider session needs the caller to know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TemplateEvent {
    /// The pool set up the connection: offer it the current template.
    Ready,
    /// The room the pool's coinbase outputs take.
    Constraints {
        /// Bytes its outputs add to the coinbase.
        max_additional_size: u32,
        /// Signature operations they add.
        max_additional_sigops: u16,
    },
    /// A block found on an offered template: rebuild it and submit it.
    Solution(m::SubmitSolution),
    /// The session ended.
    Closed(CloseReason),
}

/// The provider side of one template distribution connection.
pub struct Sv2TemplateSession {
    config: Arc<Sv2TemplateConfig>,
    link: ResponderLink,
    ready: bool,
    prev_hash: Option<[u8; 32]>,
    kept: VecDeque<(u64, Vec<Vec<u8>>)>,
    offered: HashSet<u64>,
    output: VecDeque<Vec<u8>>,
    events: VecDeque<TemplateEvent>,
    closed: Option<CloseReason>,
}

impl std::fmt::Debug for Sv2TemplateSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sv2TemplateSession")
            .field("ready", &self.ready)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl Sv2TemplateSession {
    /// A session waiting for the pool's first handshake message.
    pub fn new(config: Arc<Sv2TemplateConfig>) -> Sv2TemplateSession {
        Sv2TemplateSession {
            config,
            link: ResponderLink::new(),
            ready: false,
            prev_hash: None,
            kept: VecDeque::new(),
            offered: HashSet::new(),
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// Bytes to send to the pool.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        self.output.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TemplateEvent> {
        self.events.pop_front()
    }

    /// Whether the pool has set up the connection (offers before that are dropped).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Ends the session.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(TemplateEvent::Closed(reason));
            self.link.fail();
        }
    }

    fn send(&mut self, message: Message) {
        match self.link.seal(&message) {
            Some(Ok(bytes)) => self.output.push_back(bytes),
            Some(Err(_)) => self.close(CloseReason::Requested),
            None => {}
        }
    }

    /// Handles bytes from the pool; returns how many messages they completed.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> usize {
        if self.closed.is_some() || bytes.is_empty() {
            return 0;
        }
        let took = self.link.take(
            bytes,
            &self.config.authority,
            self.config.certificate_validity,
            MAX_POOL_FRAME,
            unix_now(),
        );
        match took {
            Ok(Took::Waiting) => return 0,
            Ok(Took::Answered(act2)) => self.output.push_back(act2.to_vec()),
            Ok(Took::Queued) => {}
            Err(_) => {
                self.close(CloseReason::NotStratum);
                return 1;
            }
        }
        let mut count = 0;
        loop {
            match self.link.next_frame() {
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
                    self.close(CloseReason::NotStratum);
                    break;
                }
            }
        }
        count
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::SetupConnection(setup) if !self.ready => {
                if setup.protocol != Protocol::TemplateDistribution
                    || !(setup.min_version..=setup.max_version).contains(&2)
                {
                    self.send(
                        m::SetupConnectionError {
                            flags: 0,
                            error_code: if setup.protocol == Protocol::TemplateDistribution {
                                "protocol-version-mismatch"
                            } else {
                                "unsupported-protocol"
                            }
                            .into(),
                        }
                        .into(),
                    );
                    self.close(CloseReason::Requested);
                    return;
                }
                self.send(
                    m::SetupConnectionSuccess {
                        used_version: 2,
                        flags: 0,
                    }
                    .into(),
                );
                self.ready = true;
                self.events.push_back(TemplateEvent::Ready);
            }
            Message::CoinbaseOutputConstraints(c) if self.ready => {
                self.events.push_back(TemplateEvent::Constraints {
                    max_additional_size: c.coinbase_output_max_additional_size,
                    max_additional_sigops: c.coinbase_output_max_additional_sigops,
                });
            }
            Message::RequestTransactionData(r) if self.ready => {
                let answer = match self.kept.iter().find(|(id, _)| *id == r.template_id) {
                    Some((_, transactions)) => m::RequestTransactionDataSuccess {
                        template_id: r.template_id,
                        excess_data: Vec::new(),
                        transaction_list: transactions.clone(),
                    }
                    .into(),
                    None => m::RequestTransactionDataError {
                        template_id: r.template_id,
                        error_code: "template-id-not-found".into(),
                    }
                    .into(),
                };
                self.send(answer);
            }
            Message::SubmitSolution(s) if self.ready => {
                if self.offered.contains(&s.template_id) {
                    self.events.push_back(TemplateEvent::Solution(s));
                }
            }
            // Anything else before or after setup is not this protocol's: the pool is lost.
            _ => self.close(CloseReason::NotStratum),
        }
    }

    /// Offers `template`: on a new previous block a future template and `SetNewPrevHash`,
    /// otherwise a template for at once. Dropped before the pool has set up the connection.
    pub fn offer(&mut self, template: &TemplateOffer) {
        if !self.ready || self.closed.is_some() {
            return;
        }
        let new_block = self.prev_hash != Some(template.prev_hash);
        let outputs: Vec<u8> = template.coinbase_tx_outputs.concat();
        self.send(
            m::NewTemplate {
                template_id: template.template_id,
                future_template: new_block,
                version: template.version,
                coinbase_tx_version: template.coinbase_tx_version,
                coinbase_prefix: template.coinbase_prefix.clone(),
                coinbase_tx_input_sequence: template.coinbase_tx_input_sequence,
                coinbase_tx_value_remaining: template.coinbase_tx_value_remaining,
                coinbase_tx_outputs_count: u32::try_from(template.coinbase_tx_outputs.len())
                    .unwrap_or(u32::MAX),
                coinbase_tx_outputs: outputs,
                coinbase_tx_locktime: template.coinbase_tx_locktime,
                merkle_path: template.merkle_path.clone(),
            }
            .into(),
        );
        if new_block {
            self.send(
                m::TemplateSetNewPrevHash {
                    template_id: template.template_id,
                    prev_hash: template.prev_hash,
                    header_timestamp: template.header_timestamp,
                    n_bits: template.nbits,
                    target: template.target,
                }
                .into(),
            );
            self.prev_hash = Some(template.prev_hash);
            // Solutions on an older block cannot be blocks any more.
            self.offered.clear();
        }
        self.offered.insert(template.template_id);
        if self.kept.len() >= KEPT_TEMPLATES {
            self.kept.pop_front();
        }
        self.kept
            .push_back((template.template_id, template.transactions.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sv2::noise::{Initiator, Opener, Sealer};

    /// A session past the handshake, and the pool's side of the transport.
    fn open() -> (Sv2TemplateSession, Sealer, Opener) {
        let authority = AuthorityKeypair::generate().expect("key");
        let public = authority.public();
        let mut session = Sv2TemplateSession::new(Arc::new(Sv2TemplateConfig {
            authority,
            certificate_validity: 60,
        }));
        let mut initiator = Initiator::new(Some(public)).expect("initiator");
        session.handle_bytes(&initiator.act1());
        let act2 = session.poll_output().expect("act two");
        let (transport, _) = initiator.act2(&act2, unix_now()).expect("our certificate");
        let (sealer, opener) = transport.split(1 << 20);
        (session, sealer, opener)
    }

    fn say(session: &mut Sv2TemplateSession, sealer: &mut Sealer, message: Message) {
        session.handle_bytes(&sealer.seal_message(&message).expect("sealed"));
    }

    fn heard(session: &mut Sv2TemplateSession, opener: &mut Opener) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(bytes) = session.poll_output() {
            opener.push(&bytes);
            while let Some(frame) = opener.next_frame().expect("opens") {
                out.push(Message::from_frame(&frame).expect("decodes").0);
            }
        }
        out
    }

    fn setup(protocol: Protocol) -> Message {
        m::SetupConnection {
            protocol,
            min_version: 2,
            max_version: 2,
            flags: 0,
            endpoint_host: "127.0.0.1".into(),
            endpoint_port: 8442,
            vendor: "test".into(),
            hardware_version: String::new(),
            firmware: String::new(),
            device_id: String::new(),
        }
        .into()
    }

    fn offer(id: u64, prev: u8) -> TemplateOffer {
        TemplateOffer {
            template_id: id,
            version: 0x2000_0000,
            coinbase_tx_version: 2,
            coinbase_prefix: vec![1, 5],
            coinbase_tx_input_sequence: u32::MAX,
            coinbase_tx_value_remaining: 5_000_000_000,
            coinbase_tx_outputs: vec![],
            coinbase_tx_locktime: 0,
            merkle_path: vec![[3; 32]],
            prev_hash: [prev; 32],
            header_timestamp: 1_700_000_000,
            nbits: 0x207f_ffff,
            target: [0xff; 32],
            transactions: vec![vec![1, 2, 3]],
        }
    }

    #[test]
    fn a_pool_sets_up_and_gets_templates_then_its_solutions_come_out() {
        let (mut session, mut sealer, mut opener) = open();
        session.offer(&offer(1, 1));
        assert!(
            heard(&mut session, &mut opener).is_empty(),
            "nothing before setup"
        );
        say(
            &mut session,
            &mut sealer,
            setup(Protocol::TemplateDistribution),
        );
        assert!(matches!(
            heard(&mut session, &mut opener).as_slice(),
            [Message::SetupConnectionSuccess(_)]
        ));
        assert_eq!(session.poll_event(), Some(TemplateEvent::Ready));
        say(
            &mut session,
            &mut sealer,
            m::CoinbaseOutputConstraints {
                coinbase_output_max_additional_size: 100,
                coinbase_output_max_additional_sigops: 4,
            }
            .into(),
        );
        assert_eq!(
            session.poll_event(),
            Some(TemplateEvent::Constraints {
                max_additional_size: 100,
                max_additional_sigops: 4
            })
        );

        // A new block: a future template, then the previous hash that makes it current.
        session.offer(&offer(1, 1));
        let sent = heard(&mut session, &mut opener);
        assert!(
            matches!(&sent[..], [Message::NewTemplate(t), Message::TemplateSetNewPrevHash(p)]
                if t.future_template && t.template_id == 1 && p.template_id == 1 && p.prev_hash == [1; 32]),
            "{sent:?}"
        );
        // The same block: a template for at once.
        session.offer(&offer(2, 1));
        assert!(matches!(
            heard(&mut session, &mut opener).as_slice(),
            [Message::NewTemplate(t)] if !t.future_template && t.template_id == 2
        ));

        say(
            &mut session,
            &mut sealer,
            m::RequestTransactionData { template_id: 2 }.into(),
        );
        assert!(matches!(
            heard(&mut session, &mut opener).as_slice(),
            [Message::RequestTransactionDataSuccess(s)] if s.transaction_list == vec![vec![1, 2, 3]]
        ));

        let solution = |template_id| m::SubmitSolution {
            template_id,
            version: 0x2000_0000,
            header_timestamp: 1_700_000_001,
            header_nonce: 7,
            coinbase_tx: vec![1, 2],
        };
        say(&mut session, &mut sealer, solution(2).into());
        assert_eq!(
            session.poll_event(),
            Some(TemplateEvent::Solution(solution(2)))
        );
        // After a new block, a solution on the old one is not a block.
        session.offer(&offer(3, 2));
        heard(&mut session, &mut opener);
        say(&mut session, &mut sealer, solution(2).into());
        assert_eq!(session.poll_event(), None);
    }

    #[test]
    fn another_protocol_is_refused() {
        let (mut session, mut sealer, mut opener) = open();
        say(&mut session, &mut sealer, setup(Protocol::Mining));
        assert!(matches!(
            heard(&mut session, &mut opener).as_slice(),
            [Message::SetupConnectionError(e)] if e.error_code == "unsupported-protocol"
        ));
        assert!(session.is_closed());
    }
}
