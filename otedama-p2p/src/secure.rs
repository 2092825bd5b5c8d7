//! The encrypted, authenticated channel between two nodes, sans-IO: frames in, frames out.
//!
//! Noise `XX` over X25519, ChaCha20-Poly1305 and SHA-256 (the `snow` crate, a maintained
//! implementation of the Noise specification with no C dependency). The prologue holds the
//! chain's consensus id, which is therefore proven and never sent: a node on another chain,
//! or without a private chain's id, fails the handshake at its first authenticated message.
//! The initiator also pays a small proof of work bound to this handshake (leading zero bits of
//! `sha256(handshake hash || nonce)`), so opening many connections costs the opener more than
//! the listener.
//!
//! On the wire everything is a frame: a big-endian `u16` length and that many bytes. After the
//! handshake a message is `u32` length-prefixed plaintext, cut into Noise transport messages of
//! at most 65,519 bytes (65,535 with the tag), one frame each.

use sha2::{Digest, Sha256};
use snow::{HandshakeState, TransportState};

use crate::error::DecodeError;
use crate::message::{Message, MAX_MESSAGE};
use crate::params::ConsensusId;

const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
const PROLOGUE_TAG: &[u8] = b"otedama-p2p/1";
/// The largest Noise message.
const MAX_FRAME: usize = 65_535;
/// The largest plaintext in one Noise transport message.
const MAX_CHUNK: usize = MAX_FRAME - 16;

/// Why a channel failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The Noise layer refused a message: another chain, a tampered frame, or a broken peer.
    #[error("noise: {0}")]
    Noise(String),
    /// The initiator's proof of work is missing or short.
    #[error("the peer's handshake proof of work is insufficient")]
    WeakProof,
    /// A frame or message breaks the format.
    #[error("bad frame: {0}")]
    Frame(#[from] DecodeError),
    /// A frame arrived in a state that expects none.
    #[error("unexpected handshake frame")]
    Unexpected,
}

fn noise(e: snow::Error) -> ChannelError {
    ChannelError::Noise(e.to_string())
}

/// A node's long-term identity: an X25519 key pair.
#[derive(Clone)]
pub struct NodeKey {
    private: Vec<u8>,
    public: Vec<u8>,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", hex_prefix(&self.public))
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl NodeKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<NodeKey, ChannelError> {
        let kp = snow::Builder::new(PATTERN.parse().map_err(noise)?)
            .generate_keypair()
            .map_err(noise)?;
        Ok(NodeKey {
            private: kp.private,
            public: kp.public,
        })
    }

    /// A key from its 32 private bytes (as stored).
    pub fn from_private(private: [u8; 32]) -> Result<NodeKey, ChannelError> {
        Ok(NodeKey {
            private: private.to_vec(),
            public: x25519_public(&private)?,
        })
    }

    /// The 32 private bytes, to store.
    pub fn private_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.private[..32.min(self.private.len())]);
        out
    }

    /// The public key peers see.
    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.public[..32.min(self.public.len())]);
        out
    }
}

/// The public key of a private key, found by running a one-way handshake to a throwaway
/// responder: snow exposes no key derivation, and the handshake derives it exactly as peers do.
fn x25519_public(private: &[u8; 32]) -> Result<Vec<u8>, ChannelError> {
    let params: snow::params::NoiseParams =
        "Noise_X_25519_ChaChaPoly_SHA256".parse().map_err(noise)?;
    let responder_key = snow::Builder::new(params.clone())
        .generate_keypair()
        .map_err(noise)?;
    let mut initiator = snow::Builder::new(params.clone())
        .local_private_key(private)
        .map_err(noise)?
        .remote_public_key(&responder_key.public)
        .map_err(noise)?
        .build_initiator()
        .map_err(noise)?;
    let mut responder = snow::Builder::new(params)
        .local_private_key(&responder_key.private)
        .map_err(noise)?
        .build_responder()
        .map_err(noise)?;
    let mut buf = vec![0u8; 256];
    let n = initiator.write_message(&[], &mut buf).map_err(noise)?;
    let mut out = vec![0u8; 256];
    responder.read_message(&buf[..n], &mut out).map_err(noise)?;
    responder
        .get_remote_static()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| ChannelError::Noise("no static key".to_owned()))
}

/// Which side of the connection this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It dialled.
    Initiator,
    /// It accepted.
    Responder,
}

/// A handshake in progress.
pub struct Handshake {
    state: HandshakeState,
    role: Role,
    step: u8,
    pow_bits: u8,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("step", &self.step)
            .finish()
    }
}

/// What a handshake step produced.
#[derive(Debug)]
pub enum Step {
    /// Send this frame payload and wait for the next frame.
    Send(Vec<u8>),
    /// Send this frame payload (when any); the channel is open.
    Done(Option<Vec<u8>>, Box<Channel>),
}

fn pow_ok(h: &[u8], nonce: u64, bits: u8) -> bool {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"otedama-p2p/pow")
        .chain_update(h)
        .chain_update(nonce.to_le_bytes())
        .finalize()
        .into();
    let mut zeros = 0u32;
    for b in digest {
        if b == 0 {
            zeros += 8;
        } else {
            zeros += b.leading_zeros();
            break;
        }
    }
    zeros >= u32::from(bits)
}

impl Handshake {
    /// Starts a handshake for the chain `chain` with this node's `key`; the initiator will
    /// prove `pow_bits` leading zero bits (16 takes about 65,000 hashes), and the responder
    /// demands as many.
    pub fn new(
        role: Role,
        chain: &ConsensusId,
        key: &NodeKey,
        pow_bits: u8,
    ) -> Result<Self, ChannelError> {
        let mut prologue = PROLOGUE_TAG.to_vec();
        prologue.extend_from_slice(chain.as_bytes());
        let builder = snow::Builder::new(PATTERN.parse().map_err(noise)?)
            .prologue(&prologue)
            .map_err(noise)?
            .local_private_key(&key.private)
            .map_err(noise)?;
        let state = match role {
            Role::Initiator => builder.build_initiator(),
            Role::Responder => builder.build_responder(),
        }
        .map_err(noise)?;
        Ok(Handshake {
            state,
            role,
            step: 0,
            pow_bits: pow_bits.min(32),
        })
    }

    /// The initiator's first frame payload (`None` for the responder, which waits).
    pub fn start(&mut self) -> Result<Option<Vec<u8>>, ChannelError> {
        if self.role != Role::Initiator || self.step != 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; MAX_FRAME];
        let n = self.state.write_message(&[], &mut buf).map_err(noise)?;
        buf.truncate(n);
        self.step = 1;
        Ok(Some(buf))
    }

    /// Handles the peer's next handshake frame payload.
    pub fn on_frame(mut self, frame: &[u8]) -> Result<(Option<Handshake>, Step), ChannelError> {
        let mut payload = vec![0u8; MAX_FRAME];
        let mut out = vec![0u8; MAX_FRAME];
        match (self.role, self.step) {
            // Responder: e -> e, ee, s, es.
            (Role::Responder, 0) => {
                self.state
                    .read_message(frame, &mut payload)
                    .map_err(noise)?;
                let n = self.state.write_message(&[], &mut out).map_err(noise)?;
                out.truncate(n);
                self.step = 1;
                Ok((Some(self), Step::Send(out)))
            }
            // Initiator: e, ee, s, es -> s, se carrying the proof of work.
            (Role::Initiator, 1) => {
                self.state
                    .read_message(frame, &mut payload)
                    .map_err(noise)?;
                let h = self.state.get_handshake_hash().to_vec();
                let mut nonce = 0u64;
                while !pow_ok(&h, nonce, self.pow_bits) {
                    nonce += 1;
                }
                let n = self
                    .state
                    .write_message(&nonce.to_le_bytes(), &mut out)
                    .map_err(noise)?;
                out.truncate(n);
                let channel = Channel::open(self.state)?;
                Ok((None, Step::Done(Some(out), Box::new(channel))))
            }
            // Responder: s, se with the proof.
            (Role::Responder, 1) => {
                let h = self.state.get_handshake_hash().to_vec();
                let n = self
                    .state
                    .read_message(frame, &mut payload)
                    .map_err(noise)?;
                let nonce: [u8; 8] = payload
                    .get(..n)
                    .and_then(|p| p.try_into().ok())
                    .ok_or(ChannelError::WeakProof)?;
                if !pow_ok(&h, u64::from_le_bytes(nonce), self.pow_bits) {
                    return Err(ChannelError::WeakProof);
                }
                let channel = Channel::open(self.state)?;
                Ok((None, Step::Done(None, Box::new(channel))))
            }
            _ => Err(ChannelError::Unexpected),
        }
    }
}

/// An open channel: messages in, encrypted frame payloads out, and back.
pub struct Channel {
    transport: TransportState,
    remote: [u8; 32],
    plain: Vec<u8>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channel(peer {})", hex_prefix(&self.remote))
    }
}

impl Channel {
    fn open(state: HandshakeState) -> Result<Channel, ChannelError> {
        let mut remote = [0u8; 32];
        if let Some(key) = state.get_remote_static() {
            remote.copy_from_slice(&key[..32.min(key.len())]);
        }
        Ok(Channel {
            transport: state.into_transport_mode().map_err(noise)?,
            remote,
            plain: Vec::new(),
        })
    }

    /// The peer's public key: its identity.
    pub fn remote_key(&self) -> [u8; 32] {
        self.remote
    }

    /// The frame payloads carrying one message.
    pub fn seal(&mut self, msg: &Message) -> Result<Vec<Vec<u8>>, ChannelError> {
        let body = msg.encode();
        let mut plain = Vec::with_capacity(body.len() + 4);
        plain.extend_from_slice(&(body.len() as u32).to_le_bytes());
        plain.extend_from_slice(&body);
        let mut frames = Vec::new();
        for chunk in plain.chunks(MAX_CHUNK) {
            let mut out = vec![0u8; chunk.len() + 16];
            let n = self
                .transport
                .write_message(chunk, &mut out)
                .map_err(noise)?;
            out.truncate(n);
            frames.push(out);
        }
        Ok(frames)
    }

    /// Decrypts one frame payload; returns the message it completes, if any.
    pub fn open_frame(&mut self, frame: &[u8]) -> Result<Option<Message>, ChannelError> {
        let mut out = vec![0u8; frame.len()];
        let n = self
            .transport
            .read_message(frame, &mut out)
            .map_err(noise)?;
        self.plain.extend_from_slice(&out[..n]);
        let Some(len_bytes) = self.plain.get(..4) else {
            return Ok(None);
        };
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len4) as usize;
        if len > MAX_MESSAGE {
            return Err(DecodeError::TooLong {
                what: "message",
                len,
                max: MAX_MESSAGE,
            }
            .into());
        }
        if self.plain.len() < 4 + len {
            return Ok(None);
        }
        if self.plain.len() > 4 + len {
            return Err(DecodeError::Trailing {
                what: "message",
                len: self.plain.len() - 4 - len,
            }
            .into());
        }
        let msg = Message::decode(&self.plain[4..]);
        self.plain.clear();
        Ok(Some(msg?))
    }
}

/// Splits a byte stream into frame payloads: a big-endian `u16` length, then the payload.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame payload.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        let len = usize::from(u16::from_be_bytes([*self.buf.first()?, *self.buf.get(1)?]));
        if self.buf.len() < 2 + len {
            return None;
        }
        let frame = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        Some(frame)
    }
}

/// Prefixes a frame payload with its length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&(payload.len().min(MAX_FRAME) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::share::ShareId;

    fn pair(
        a: &ConsensusId,
        b: &ConsensusId,
        bits: u8,
    ) -> Result<(Channel, Channel), ChannelError> {
        let (ka, kb) = (NodeKey::generate()?, NodeKey::generate()?);
        let mut i = Handshake::new(Role::Initiator, a, &ka, bits)?;
        let r = Handshake::new(Role::Responder, b, &kb, bits)?;
        let m1 = i.start()?.unwrap();
        let (r, Step::Send(m2)) = r.on_frame(&m1)? else {
            panic!()
        };
        let (_, Step::Done(Some(m3), ci)) = i.on_frame(&m2)? else {
            panic!()
        };
        let (_, Step::Done(None, cr)) = r.unwrap().on_frame(&m3)? else {
            panic!()
        };
        assert_eq!(ci.remote_key(), kb.public());
        assert_eq!(cr.remote_key(), ka.public());
        Ok((*ci, *cr))
    }

    #[test]
    fn same_chain_talks_and_big_messages_cross_in_chunks() {
        let id = ConsensusId([3; 32]);
        let (mut a, mut b) = pair(&id, &id, 8).unwrap();
        let ids: Vec<ShareId> = (0..64).map(|i| ShareId([i; 32])).collect();
        for msg in [Message::GetShares(ids), Message::NotFound(vec![])] {
            let frames = a.seal(&msg).unwrap();
            let mut got = None;
            for f in &frames {
                got = b.open_frame(f).unwrap();
            }
            assert_eq!(got, Some(msg));
        }
        // A tampered frame is refused.
        let mut frames = b.seal(&Message::NotFound(vec![])).unwrap();
        frames[0][3] ^= 1;
        assert!(a.open_frame(&frames[0]).is_err());
    }

    #[test]
    fn another_chain_fails_the_handshake() {
        assert!(pair(&ConsensusId([1; 32]), &ConsensusId([2; 32]), 4).is_err());
    }

    #[test]
    fn keys_survive_storage() {
        let k = NodeKey::generate().unwrap();
        let again = NodeKey::from_private(k.private_bytes()).unwrap();
        assert_eq!(again.public(), k.public());
    }

    #[test]
    fn frames_split_a_stream() {
        let mut r = FrameReader::default();
        let mut stream = frame(b"abc");
        stream.extend(frame(b""));
        stream.extend(frame(b"de"));
        r.push(&stream[..4]);
        assert_eq!(r.next_frame(), None);
        r.push(&stream[4..]);
        assert_eq!(r.next_frame().as_deref(), Some(&b"abc"[..]));
        assert_eq!(r.next_frame().as_deref(), Some(&b""[..]));
        assert_eq!(r.next_frame().as_deref(), Some(&b"de"[..]));
        assert_eq!(r.next_frame(), None);
    }
}
