//! Stratum V2's encryption (feature `noise`): the `Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256`
//! handshake on both sides, the pool's certificate signed by its authority key, and transport
//! encryption of frames, sans-IO. Randomness comes from the system; time is passed in.
//!
//! The handshake is two messages: the miner (initiator) sends its ephemeral key, 64 bytes
//! ([`Initiator::act1`]); the pool (responder) answers with its ephemeral key, its static key
//! and a certificate over that key, 234 bytes ([`Responder::respond`]); the miner checks the
//! certificate against the authority key it was given (the one in the pool's
//! `stratum2+tcp://host:port/<authority key>` URL) and the clock ([`Initiator::act2`]).
//! Then each side has a [`Transport`]: a [`Sealer`] for the frames it sends and an [`Opener`]
//! for the frames it receives. Each frame's header is sealed alone (22 bytes); its payload
//! is sealed in chunks of at most 65,519 bytes, each with its own tag.
//!
//! Key agreement is BIP324's ElligatorSwift x-only ECDH (the initiator's encoding first in
//! the hash), keys are derived with HKDF-SHA256, and every message is sealed with
//! ChaCha20-Poly1305 under the nonce `0u32 || n` (little-endian counter).

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use otedama_core::bitcoin::base58;
use otedama_core::bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
use otedama_core::bitcoin::secp256k1::{
    schnorr, Keypair, Message as Digest, PublicKey, Secp256k1, SecretKey, XOnlyPublicKey,
};
use sha2::{Digest as _, Sha256};

use super::frame::{Frame, FrameError, Header, MAX_PAYLOAD};

/// The protocol name hashed into the handshake.
pub const PROTOCOL_NAME: &[u8] = b"Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256";
/// The initiator's first message: its ephemeral key, ElligatorSwift-encoded.
pub const ACT1_LEN: usize = 64;
/// The responder's answer: its ephemeral key, its static key sealed, its certificate sealed.
pub const ACT2_LEN: usize = 64 + 64 + TAG_LEN + CERTIFICATE_LEN + TAG_LEN;
/// An authentication tag.
pub const TAG_LEN: usize = 16;
/// A certificate: version, validity, signature.
pub const CERTIFICATE_LEN: usize = 2 + 4 + 4 + 64;
/// The most plaintext one sealed chunk carries.
pub const MAX_CHUNK: usize = 65_535 - TAG_LEN;
/// A sealed frame header.
pub const SEALED_HEADER_LEN: usize = Header::SIZE + TAG_LEN;
/// How far the certificate's validity is stretched either way for clocks that differ.
pub const CLOCK_LEEWAY: u32 = 10;
/// The certificate version this code writes and accepts.
pub const CERTIFICATE_VERSION: u16 = 0;

/// Why the handshake or the transport failed. Either way the connection must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseError {
    /// A handshake message had the wrong length.
    #[error("a handshake message of {got} bytes, not {expected}")]
    Length {
        /// The length it must have.
        expected: usize,
        /// The length it had.
        got: usize,
    },
    /// A key on the wire is not a valid encoding.
    #[error("a key in the handshake is not valid")]
    BadKey,
    /// A sealed message did not open: tampered, or sealed under another key or nonce.
    #[error("a sealed message did not open (tampered, or another key)")]
    Decrypt,
    /// The certificate does not hold (see [`CertificateError`]).
    #[error("the pool's certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// 2^64 messages went one way: the keys may not be used again.
    #[error("the nonce is exhausted")]
    NonceExhausted,
    /// A frame announces more than the opener takes.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The system's random number source failed.
    #[error("no randomness from the system: {0}")]
    Randomness(String),
    /// A message to seal does not fit its fields' types.
    #[error(transparent)]
    Encode(#[from] super::types::EncodeError),
}

/// Why a pool's certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// A version this code does not know.
    #[error("version {0} is not known")]
    Version(u16),
    /// Its validity starts after now (beyond the leeway).
    #[error("not valid before {valid_from} (now {now})")]
    NotYetValid {
        /// When it becomes valid, Unix seconds.
        valid_from: u32,
        /// Now, Unix seconds.
        now: u32,
    },
    /// Its validity ended before now (beyond the leeway).
    #[error("expired at {not_valid_after} (now {now})")]
    Expired {
        /// When it stopped being valid, Unix seconds.
        not_valid_after: u32,
        /// Now, Unix seconds.
        now: u32,
    },
    /// The authority key did not sign it: the pool is not the one the URL names.
    #[error("not signed by the expected authority key")]
    Signature,
}

fn random<const N: usize>() -> Result<[u8; N], NoiseError> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(|e| NoiseError::Randomness(e.to_string()))?;
    Ok(out)
}

fn random_secret() -> Result<SecretKey, NoiseError> {
    // A 32-byte string is a valid key but for a chance of about 2^-128.
    loop {
        if let Ok(key) = SecretKey::from_slice(&random::<32>()?) {
            return Ok(key);
        }
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The pool's authority public key (x-only), the one miners are given with its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorityPublicKey(pub XOnlyPublicKey);

/// Why an authority key does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// Not base58check.
    #[error("not base58check: {0}")]
    Base58(String),
    /// The bytes are not an SV2 authority key (`01 00` then 32 bytes of an x-only key).
    #[error("not an authority key: {0}")]
    Bytes(&'static str),
}

impl AuthorityPublicKey {
    /// The key in the SV2 text form: base58check of `01 00` and the 32 x-only bytes.
    pub fn to_base58(&self) -> String {
        let mut bytes = vec![0x01, 0x00];
        bytes.extend_from_slice(&self.0.serialize());
        base58::encode_check(&bytes)
    }

    /// Reads the SV2 text form.
    pub fn from_base58(text: &str) -> Result<AuthorityPublicKey, KeyFormatError> {
        let bytes =
            base58::decode_check(text.trim()).map_err(|e| KeyFormatError::Base58(e.to_string()))?;
        let key = match bytes.as_slice() {
            [0x01, 0x00, key @ ..] if key.len() == 32 => key,
            [0x01, 0x00, ..] => return Err(KeyFormatError::Bytes("not 32 key bytes")),
            _ => return Err(KeyFormatError::Bytes("the version is not 01 00")),
        };
        XOnlyPublicKey::from_slice(key)
            .map(AuthorityPublicKey)
            .map_err(|_| KeyFormatError::Bytes("not a point on the curve"))
    }
}

impl std::fmt::Display for AuthorityPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base58())
    }
}

impl std::str::FromStr for AuthorityPublicKey {
    type Err = KeyFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuthorityPublicKey::from_base58(s)
    }
}

/// The pool's authority key pair, which signs the certificate of every connection.
#[derive(Clone)]
pub struct AuthorityKeypair(Keypair);

impl std::fmt::Debug for AuthorityKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AuthorityKeypair")
            .field(&self.public().to_base58())
            .finish()
    }
}

impl AuthorityKeypair {
    /// A new key pair from the system's randomness.
    pub fn generate() -> Result<AuthorityKeypair, NoiseError> {
        let secp = Secp256k1::signing_only();
        Ok(AuthorityKeypair(Keypair::from_secret_key(
            &secp,
            &random_secret()?,
        )))
    }

    /// The key pair of a secret key in its text form (base58check of the 32 bytes).
    pub fn from_secret_base58(text: &str) -> Result<AuthorityKeypair, KeyFormatError> {
        let bytes =
            base58::decode_check(text.trim()).map_err(|e| KeyFormatError::Base58(e.to_string()))?;
        let secret = SecretKey::from_slice(&bytes)
            .map_err(|_| KeyFormatError::Bytes("not a 32-byte secret key"))?;
        Ok(AuthorityKeypair(Keypair::from_secret_key(
            &Secp256k1::signing_only(),
            &secret,
        )))
    }

    /// The secret key in its text form, for storing.
    pub fn secret_base58(&self) -> String {
        base58::encode_check(&self.0.secret_bytes())
    }

    /// The public key miners are given.
    pub fn public(&self) -> AuthorityPublicKey {
        AuthorityPublicKey(self.0.x_only_public_key().0)
    }
}

/// A pool's certificate over its static key for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificate {
    /// Its version (0).
    pub version: u16,
    /// From when it is valid, Unix seconds.
    pub valid_from: u32,
    /// Until when it is valid, Unix seconds.
    pub not_valid_after: u32,
    /// The authority key's BIP340 signature.
    pub signature: [u8; 64],
}

impl Certificate {
    fn digest(version: u16, valid_from: u32, not_valid_after: u32, key: &XOnlyPublicKey) -> Digest {
        Digest::from_digest(sha256(&[
            &version.to_le_bytes(),
            &valid_from.to_le_bytes(),
            &not_valid_after.to_le_bytes(),
            &key.serialize(),
        ]))
    }

    fn sign(
        authority: &AuthorityKeypair,
        key: &XOnlyPublicKey,
        valid_from: u32,
        not_valid_after: u32,
    ) -> Result<Certificate, NoiseError> {
        let digest = Certificate::digest(CERTIFICATE_VERSION, valid_from, not_valid_after, key);
        let signature = Secp256k1::signing_only().sign_schnorr_with_aux_rand(
            &digest,
            &authority.0,
            &random::<32>()?,
        );
        Ok(Certificate {
            version: CERTIFICATE_VERSION,
            valid_from,
            not_valid_after,
            signature: *signature.as_ref(),
        })
    }

    /// The certificate's bytes.
    pub fn to_bytes(&self) -> [u8; CERTIFICATE_LEN] {
        let mut out = [0u8; CERTIFICATE_LEN];
        out[..2].copy_from_slice(&self.version.to_le_bytes());
        out[2..6].copy_from_slice(&self.valid_from.to_le_bytes());
        out[6..10].copy_from_slice(&self.not_valid_after.to_le_bytes());
        out[10..].copy_from_slice(&self.signature);
        out
    }

    /// Reads a certificate.
    pub fn from_bytes(bytes: &[u8; CERTIFICATE_LEN]) -> Certificate {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[10..]);
        Certificate {
            version: u16::from_le_bytes([bytes[0], bytes[1]]),
            valid_from: u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]),
            not_valid_after: u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]),
            signature,
        }
    }

    /// Checks that `authority` signed this certificate over `key` and that it is valid at
    /// `now` (Unix seconds, with [`CLOCK_LEEWAY`] either way).
    pub fn verify(
        &self,
        key: &XOnlyPublicKey,
        authority: &AuthorityPublicKey,
        now: u32,
    ) -> Result<(), CertificateError> {
        if self.version != CERTIFICATE_VERSION {
            return Err(CertificateError::Version(self.version));
        }
        if self.valid_from.saturating_sub(CLOCK_LEEWAY) > now {
            return Err(CertificateError::NotYetValid {
                valid_from: self.valid_from,
                now,
            });
        }
        if self.not_valid_after.saturating_add(CLOCK_LEEWAY) < now {
            return Err(CertificateError::Expired {
                not_valid_after: self.not_valid_after,
                now,
            });
        }
        let digest = Certificate::digest(self.version, self.valid_from, self.not_valid_after, key);
        let signature = schnorr::Signature::from_slice(&self.signature)
            .map_err(|_| CertificateError::Signature)?;
        Secp256k1::verification_only()
            .verify_schnorr(&signature, &digest, &authority.0)
            .map_err(|_| CertificateError::Signature)
    }
}

/// One direction's cipher: a key and a message counter.
struct CipherState {
    cipher: ChaCha20Poly1305,
    n: u64,
}

impl CipherState {
    fn new(key: &[u8; 32]) -> CipherState {
        CipherState {
            cipher: ChaCha20Poly1305::new(key.into()),
            n: 0,
        }
    }

    fn nonce(&mut self) -> Result<chacha20poly1305::Nonce, NoiseError> {
        if self.n == u64::MAX {
            return Err(NoiseError::NonceExhausted);
        }
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.n.to_le_bytes());
        self.n += 1;
        Ok(nonce.into())
    }

    fn seal(&mut self, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let nonce = self.nonce()?;
        self.cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: ad,
                },
            )
            .map_err(|_| NoiseError::Decrypt)
    }

    fn open(&mut self, ad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let nonce = self.nonce()?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: ad,
                },
            )
            .map_err(|_| NoiseError::Decrypt)
    }
}

/// The handshake's running hash and chaining key, and its cipher once there is a key.
struct SymmetricState {
    h: [u8; 32],
    ck: [u8; 32],
    cipher: Option<CipherState>,
}

impl SymmetricState {
    fn new() -> SymmetricState {
        let ck = sha256(&[PROTOCOL_NAME]);
        // The name is longer than a hash, so it is hashed; the prologue is empty.
        SymmetricState {
            h: sha256(&[&ck]),
            ck,
            cipher: None,
        }
    }

    fn mix_hash(&mut self, data: &[u8]) {
        self.h = sha256(&[&self.h, data]);
    }

    fn hkdf2(ck: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(ck), ikm);
        let mut okm = [0u8; 64];
        // 64 bytes is far below HKDF-SHA256's limit of 8,160.
        let _ = hk.expand(&[], &mut okm);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a.copy_from_slice(&okm[..32]);
        b.copy_from_slice(&okm[32..]);
        (a, b)
    }

    fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, k) = SymmetricState::hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.cipher = Some(CipherState::new(&k));
    }

    fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let out = match self.cipher.as_mut() {
            Some(c) => c.seal(&self.h, plaintext)?,
            None => plaintext.to_vec(),
        };
        self.mix_hash(&out);
        Ok(out)
    }

    fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let out = match self.cipher.as_mut() {
            Some(c) => c.open(&self.h, ciphertext)?,
            None => ciphertext.to_vec(),
        };
        self.mix_hash(ciphertext);
        Ok(out)
    }

    fn split(&self) -> (CipherState, CipherState) {
        let (k1, k2) = SymmetricState::hkdf2(&self.ck, &[]);
        (CipherState::new(&k1), CipherState::new(&k2))
    }
}

fn ephemeral() -> Result<(SecretKey, ElligatorSwift), NoiseError> {
    let secret = random_secret()?;
    let encoded = ElligatorSwift::from_seckey(&Secp256k1::new(), secret, Some(random::<32>()?));
    Ok((secret, encoded))
}

/// The miner's side of the handshake.
pub struct Initiator {
    state: SymmetricState,
    secret: SecretKey,
    encoded: ElligatorSwift,
    authority: Option<AuthorityPublicKey>,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// A handshake that accepts only a pool whose certificate `authority` signed; `None`
    /// accepts any pool (encrypted, but not authenticated: for tests and trusted links).
    pub fn new(authority: Option<AuthorityPublicKey>) -> Result<Initiator, NoiseError> {
        let (secret, encoded) = ephemeral()?;
        Ok(Initiator {
            state: SymmetricState::new(),
            secret,
            encoded,
            authority,
        })
    }

    /// The first message: the ephemeral key.
    pub fn act1(&mut self) -> [u8; ACT1_LEN] {
        let key = self.encoded.to_array();
        self.state.mix_hash(&key);
        // The empty payload, in the clear: there is no key yet.
        self.state.mix_hash(&[]);
        key
    }

    /// Reads the pool's answer at `now` (Unix seconds): the transport, and the pool's
    /// certificate.
    pub fn act2(
        mut self,
        message: &[u8],
        now: u32,
    ) -> Result<(Transport, Certificate), NoiseError> {
        if message.len() != ACT2_LEN {
            return Err(NoiseError::Length {
                expected: ACT2_LEN,
                got: message.len(),
            });
        }
        let (their_ephemeral, rest) = message.split_at(64);
        let (sealed_static, sealed_certificate) = rest.split_at(64 + TAG_LEN);
        let mut re = [0u8; 64];
        re.copy_from_slice(their_ephemeral);
        let re = ElligatorSwift::from_array(re);
        self.state.mix_hash(&re.to_array());
        let ee = ElligatorSwift::shared_secret(
            self.encoded,
            re,
            self.secret,
            ElligatorSwiftParty::A,
            None,
        );
        self.state.mix_key(&ee.to_secret_bytes());
        let rs_bytes: [u8; 64] = self
            .state
            .decrypt_and_hash(sealed_static)?
            .try_into()
            .map_err(|_| NoiseError::BadKey)?;
        let rs = ElligatorSwift::from_array(rs_bytes);
        let es = ElligatorSwift::shared_secret(
            self.encoded,
            rs,
            self.secret,
            ElligatorSwiftParty::A,
            None,
        );
        self.state.mix_key(&es.to_secret_bytes());
        let certificate: [u8; CERTIFICATE_LEN] = self
            .state
            .decrypt_and_hash(sealed_certificate)?
            .try_into()
            .map_err(|_| NoiseError::Decrypt)?;
        let certificate = Certificate::from_bytes(&certificate);
        let static_key = PublicKey::from_ellswift(rs).x_only_public_key().0;
        if let Some(authority) = &self.authority {
            certificate.verify(&static_key, authority, now)?;
        }
        let (send, receive) = self.state.split();
        Ok((Transport { send, receive }, certificate))
    }
}

/// The pool's side of the handshake, for one connection.
pub struct Responder {
    authority: AuthorityKeypair,
    validity: u32,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("authority", &self.authority)
            .field("validity", &self.validity)
            .finish()
    }
}

impl Responder {
    /// A responder whose certificates `authority` signs, valid for `validity` seconds from
    /// the handshake.
    pub fn new(authority: AuthorityKeypair, validity: u32) -> Responder {
        Responder {
            authority,
            validity,
        }
    }

    /// Answers the miner's first message at `now` (Unix seconds) with a fresh static key
    /// and its certificate: the answer to send, and the transport.
    pub fn respond(
        &self,
        act1: &[u8],
        now: u32,
    ) -> Result<([u8; ACT2_LEN], Transport), NoiseError> {
        if act1.len() != ACT1_LEN {
            return Err(NoiseError::Length {
                expected: ACT1_LEN,
                got: act1.len(),
            });
        }
        let mut state = SymmetricState::new();
        let mut re = [0u8; 64];
        re.copy_from_slice(act1);
        let re = ElligatorSwift::from_array(re);
        state.mix_hash(&re.to_array());
        state.decrypt_and_hash(&[])?;

        let (e_secret, e) = ephemeral()?;
        let (s_secret, s) = ephemeral()?;
        let mut out = [0u8; ACT2_LEN];
        out[..64].copy_from_slice(&e.to_array());
        state.mix_hash(&e.to_array());
        let ee = ElligatorSwift::shared_secret(re, e, e_secret, ElligatorSwiftParty::B, None);
        state.mix_key(&ee.to_secret_bytes());
        let sealed_static = state.encrypt_and_hash(&s.to_array())?;
        out[64..64 + 64 + TAG_LEN].copy_from_slice(&sealed_static);
        let es = ElligatorSwift::shared_secret(re, s, s_secret, ElligatorSwiftParty::B, None);
        state.mix_key(&es.to_secret_bytes());
        let static_key = s_secret.x_only_public_key(&Secp256k1::signing_only()).0;
        let certificate = Certificate::sign(
            &self.authority,
            &static_key,
            now,
            now.saturating_add(self.validity),
        )?;
        let sealed_certificate = state.encrypt_and_hash(&certificate.to_bytes())?;
        out[64 + 64 + TAG_LEN..].copy_from_slice(&sealed_certificate);
        let (receive, send) = state.split();
        Ok((out, Transport { send, receive }))
    }
}

/// Both directions of an encrypted connection.
pub struct Transport {
    send: CipherState,
    receive: CipherState,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Transport {
    /// The sealer of outgoing frames and the opener of incoming ones, which take payloads of
    /// up to `limit` bytes.
    pub fn split(self, limit: usize) -> (Sealer, Opener) {
        (
            Sealer { cipher: self.send },
            Opener {
                cipher: self.receive,
                buf: Vec::new(),
                header: None,
                limit: limit.min(MAX_PAYLOAD),
                failed: None,
            },
        )
    }
}

/// Seals the frames one side sends.
pub struct Sealer {
    cipher: CipherState,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("sent", &self.cipher.n)
            .finish()
    }
}

/// The responder's side of one connection (a pool's or a template provider's), sans-IO:
/// act one gathered and answered with a certificate the authority signs, then frames opened
/// and sealed.
pub(crate) struct ResponderLink {
    state: LinkState,
}

enum LinkState {
    Handshake(Vec<u8>),
    Open(Box<(Sealer, Opener)>),
    Failed,
}

/// What [`ResponderLink::take`] made of the bytes.
pub(crate) enum Took {
    /// Act one is not whole yet (or the link has failed): nothing to do.
    Waiting,
    /// Act one is answered: send this; the bytes after it wait as frames.
    Answered(Box<[u8; ACT2_LEN]>),
    /// The bytes wait as frames.
    Queued,
}

impl ResponderLink {
    /// A link waiting for act one.
    pub(crate) fn new() -> ResponderLink {
        ResponderLink {
            state: LinkState::Handshake(Vec::with_capacity(ACT1_LEN)),
        }
    }

    /// Whether the handshake is done (and the link has not failed).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, LinkState::Open(_))
    }

    /// Ends a link whose handshake never finished.
    pub(crate) fn fail(&mut self) {
        if !self.is_open() {
            self.state = LinkState::Failed;
        }
    }

    /// Takes bytes from the peer: act one, answered once whole with a certificate valid for
    /// `validity` seconds, then frames of at most `limit` payload bytes. An act one that is
    /// no handshake fails the link.
    pub(crate) fn take(
        &mut self,
        bytes: &[u8],
        authority: &AuthorityKeypair,
        validity: u32,
        limit: usize,
        now: u32,
    ) -> Result<Took, NoiseError> {
        let (rest, answer) = match &mut self.state {
            LinkState::Failed => return Ok(Took::Waiting),
            LinkState::Open(_) => (bytes, None),
            LinkState::Handshake(act1) => {
                let take = (ACT1_LEN - act1.len()).min(bytes.len());
                act1.extend_from_slice(&bytes[..take]);
                if act1.len() < ACT1_LEN {
                    return Ok(Took::Waiting);
                }
                let act1 = std::mem::take(act1);
                match Responder::new(authority.clone(), validity).respond(&act1, now) {
                    Ok((act2, transport)) => {
                        self.state = LinkState::Open(Box::new(transport.split(limit)));
                        (&bytes[take..], Some(Box::new(act2)))
                    }
                    Err(e) => {
                        self.state = LinkState::Failed;
                        return Err(e);
                    }
                }
            }
        };
        if let LinkState::Open(pipe) = &mut self.state {
            pipe.1.push(rest);
        }
        Ok(answer.map_or(Took::Queued, Took::Answered))
    }

    /// The next whole frame the peer sent; `None` until one is whole, or before the
    /// handshake. An error loses the stream.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, NoiseError> {
        match &mut self.state {
            LinkState::Open(pipe) => pipe.1.next_frame(),
            _ => Ok(None),
        }
    }

    /// `message`, framed and sealed for the peer; `None` before the handshake.
    pub(crate) fn seal(
        &mut self,
        message: &super::message::Message,
    ) -> Option<Result<Vec<u8>, NoiseError>> {
        match &mut self.state {
            LinkState::Open(pipe) => Some(pipe.0.seal_message(message)),
            _ => None,
        }
    }
}

/// The bytes a payload of `len` bytes takes sealed.
pub fn sealed_len(len: usize) -> usize {
    len + TAG_LEN * len.div_ceil(MAX_CHUNK)
}

impl Sealer {
    /// The message, framed and sealed.
    pub fn seal_message(
        &mut self,
        message: &super::message::Message,
    ) -> Result<Vec<u8>, NoiseError> {
        self.seal(&message.to_frame()?)
    }

    /// The frame, sealed: its header, then its payload in chunks.
    pub fn seal(&mut self, frame: &Frame) -> Result<Vec<u8>, NoiseError> {
        let mut out = Vec::with_capacity(SEALED_HEADER_LEN + sealed_len(frame.payload.len()));
        out.extend(self.cipher.seal(&[], &frame.header.to_bytes())?);
        for chunk in frame.payload.chunks(MAX_CHUNK) {
            out.extend(self.cipher.seal(&[], chunk)?);
        }
        Ok(out)
    }
}

/// Opens the frames one side receives. Memory grows only with bytes that arrived.
pub struct Opener {
    cipher: CipherState,
    buf: Vec<u8>,
    header: Option<Header>,
    limit: usize,
    failed: Option<NoiseError>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("received", &self.cipher.n)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl Opener {
    /// Adds bytes from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `None` until one has arrived; after an error, that error again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, NoiseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.step();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        result
    }

    fn step(&mut self) -> Result<Option<Frame>, NoiseError> {
        let header = match self.header {
            Some(h) => h,
            None => {
                if self.buf.len() < SEALED_HEADER_LEN {
                    return Ok(None);
                }
                let plain = self.cipher.open(&[], &self.buf[..SEALED_HEADER_LEN])?;
                self.buf.drain(..SEALED_HEADER_LEN);
                let bytes: [u8; Header::SIZE] =
                    plain.try_into().map_err(|_| NoiseError::Decrypt)?;
                let header = Header::from_bytes(bytes);
                let length = header.length as usize;
                if length > self.limit {
                    return Err(FrameError::TooLong {
                        length,
                        limit: self.limit,
                    }
                    .into());
                }
                self.header = Some(header);
                header
            }
        };
        let length = header.length as usize;
        let sealed = sealed_len(length);
        if self.buf.len() < sealed {
            return Ok(None);
        }
        let mut payload = Vec::with_capacity(length);
        for chunk in self.buf[..sealed].chunks(MAX_CHUNK + TAG_LEN) {
            payload.extend(self.cipher.open(&[], chunk)?);
        }
        self.buf.drain(..sealed);
        self.header = None;
        Ok(Some(Frame { header, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_name_hashes_to_the_published_chaining_key() {
        assert_eq!(
            hex(&SymmetricState::new().ck),
            "2eb47881208e9eee1f669f67c66ee70ea9ea88090d503fe830dc4bc83e29bf10"
        );
        assert_eq!(ACT2_LEN, 234);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn authority_keys_read_and_write_the_published_forms() {
        let key =
            AuthorityPublicKey::from_base58("9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh")
                .expect("the specification's example");
        assert_eq!(
            key.to_base58(),
            "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
        );
        let pair = AuthorityKeypair::from_secret_base58(
            "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n",
        )
        .expect("the reference implementation's example secret");
        assert_eq!(
            pair.public().to_base58(),
            "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
        );
        assert_eq!(
            pair.secret_base58(),
            "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n"
        );
        assert!(AuthorityPublicKey::from_base58(
            "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXi"
        )
        .is_err());
    }

    fn handshake(
        now: u32,
        validity: u32,
        expect: Option<AuthorityPublicKey>,
    ) -> Result<(Transport, Transport), NoiseError> {
        let authority = AuthorityKeypair::generate()?;
        let expect = expect.or(Some(authority.public()));
        let responder = Responder::new(authority, validity);
        let mut initiator = Initiator::new(expect)?;
        let act1 = initiator.act1();
        let (act2, pool) = responder.respond(&act1, now)?;
        let (miner, _) = initiator.act2(&act2, now)?;
        Ok((miner, pool))
    }

    #[test]
    fn both_sides_agree_and_frames_of_any_size_cross_in_pieces() {
        let (miner, pool) = handshake(1_700_000_000, 3600, None).expect("handshake");
        let (mut miner_out, mut miner_in) = miner.split(MAX_PAYLOAD);
        let (mut pool_out, mut pool_in) = pool.split(MAX_PAYLOAD);
        for len in [
            0,
            1,
            MAX_CHUNK - 1,
            MAX_CHUNK,
            MAX_CHUNK + 1,
            3 * MAX_CHUNK + 7,
        ] {
            let frame = Frame {
                header: Header::for_payload(0, true, 0x1b, len).expect("fits"),
                payload: (0..len).map(|i| i as u8).collect(),
            };
            let sealed = miner_out.seal(&frame).expect("seal");
            assert_eq!(sealed.len(), SEALED_HEADER_LEN + sealed_len(len));
            for piece in sealed.chunks(9_999) {
                pool_in.push(piece);
            }
            assert_eq!(pool_in.next_frame().expect("opens"), Some(frame.clone()));
            assert_eq!(pool_in.next_frame().expect("nothing more"), None);
            let back = pool_out.seal(&frame).expect("seal");
            miner_in.push(&back);
            assert_eq!(miner_in.next_frame().expect("opens"), Some(frame));
        }
    }

    #[test]
    fn a_wrong_authority_or_clock_or_a_flipped_bit_ends_the_handshake() {
        let other = AuthorityKeypair::generate().expect("key").public();
        assert_eq!(
            handshake(1_700_000_000, 3600, Some(other)).err(),
            Some(NoiseError::Certificate(CertificateError::Signature))
        );
        // Valid from 1,700,000,000 for an hour; the miner's clock says otherwise.
        let authority = AuthorityKeypair::generate().expect("key");
        let public = authority.public();
        let responder = Responder::new(authority, 3600);
        for (now, ok) in [
            (1_700_000_000 - 11, false),
            (1_700_000_000 - 10, true),
            (1_700_003_610, true),
            (1_700_003_611, false),
        ] {
            let mut initiator = Initiator::new(Some(public)).expect("initiator");
            let (act2, _) = responder
                .respond(&initiator.act1(), 1_700_000_000)
                .expect("respond");
            assert_eq!(initiator.act2(&act2, now).is_ok(), ok, "at {now}");
        }
        let mut initiator = Initiator::new(Some(public)).expect("initiator");
        let (mut act2, _) = responder
            .respond(&initiator.act1(), 1_700_000_000)
            .expect("respond");
        act2[200] ^= 1;
        assert_eq!(
            initiator.act2(&act2, 1_700_000_000).err(),
            Some(NoiseError::Decrypt)
        );
        assert!(matches!(
            responder.respond(&[0; 63], 0),
            Err(NoiseError::Length {
                expected: 64,
                got: 63
            })
        ));
    }

    #[test]
    fn a_tampered_or_replayed_frame_does_not_open_and_the_stream_stays_failed() {
        let (miner, pool) = handshake(1_700_000_000, 3600, None).expect("handshake");
        let (mut out, _) = miner.split(1024);
        let (_, mut opener) = pool.split(1024);
        let frame = Frame {
            header: Header::for_payload(0, false, 0, 3).expect("fits"),
            payload: vec![1, 2, 3],
        };
        let sealed = out.seal(&frame).expect("seal");
        opener.push(&sealed);
        assert!(opener.next_frame().expect("opens").is_some());
        opener.push(&sealed);
        assert_eq!(opener.next_frame(), Err(NoiseError::Decrypt), "a replay");
        assert_eq!(
            opener.next_frame(),
            Err(NoiseError::Decrypt),
            "stays failed"
        );
        // A header announcing more than the opener takes.
        let (miner, pool) = handshake(1_700_000_000, 3600, None).expect("handshake");
        let (mut out, _) = miner.split(MAX_PAYLOAD);
        let (_, mut opener) = pool.split(16);
        let big = Frame {
            header: Header::for_payload(0, false, 0, 17).expect("fits"),
            payload: vec![0; 17],
        };
        opener.push(&out.seal(&big).expect("seal"));
        assert!(matches!(opener.next_frame(), Err(NoiseError::Frame(_))));
    }
}
