//! The SV2 Noise handshake and transport against the reference implementation's `noise_sv2`
//! (pinned in Cargo.toml), an independent peer: our initiator with their responder and
//! theirs with ours, a wrong authority key and an expired certificate refused, and frames
//! sealed by one side opened by the other, payloads past one chunk included (their chunk
//! size, `framing_sv2::SV2_FRAME_CHUNK_SIZE`).
#![cfg(feature = "noise")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otedama_core::bitcoin::base58;
use otedama_stratum::sv2::frame::{Frame, Header, MAX_PAYLOAD};
use otedama_stratum::sv2::noise::{
    AuthorityKeypair, CertificateError, Initiator, NoiseError, Responder, MAX_CHUNK, TAG_LEN,
};

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as u32
}

/// An authority key pair as raw bytes: x-only public key, secret key.
fn raw(pair: &AuthorityKeypair) -> ([u8; 32], [u8; 32]) {
    let secret: [u8; 32] = base58::decode_check(&pair.secret_base58())
        .expect("base58check")
        .try_into()
        .expect("32 bytes");
    (pair.public().0.serialize(), secret)
}

/// Seals `frame` with their engine as their codec does: the header alone, then the payload
/// in chunks of their chunk size less the tag.
fn their_seal(engine: &mut noise_sv2::NoiseEngine, frame: &Frame) -> Vec<u8> {
    assert_eq!(
        framing_sv2::SV2_FRAME_CHUNK_SIZE - noise_sv2::AEAD_MAC_LEN,
        MAX_CHUNK
    );
    let mut header = frame.header.to_bytes().to_vec();
    engine.encrypt(&mut header).expect("seal");
    let mut out = header;
    for chunk in frame.payload.chunks(MAX_CHUNK) {
        let mut c = chunk.to_vec();
        engine.encrypt(&mut c).expect("seal");
        out.extend(c);
    }
    out
}

/// Opens bytes our sealer wrote with their engine.
fn their_open(engine: &mut noise_sv2::NoiseEngine, sealed: &[u8]) -> Frame {
    let mut header = sealed[..6 + TAG_LEN].to_vec();
    engine
        .decrypt(&mut header)
        .expect("their engine opens our header");
    let header = Header::from_bytes(header.try_into().expect("6 bytes"));
    let mut payload = Vec::new();
    for chunk in sealed[6 + TAG_LEN..].chunks(MAX_CHUNK + TAG_LEN) {
        let mut c = chunk.to_vec();
        engine
            .decrypt(&mut c)
            .expect("their engine opens our chunk");
        payload.extend(c);
    }
    assert_eq!(payload.len(), header.length as usize);
    Frame { header, payload }
}

fn frames() -> Vec<Frame> {
    [0usize, 1, 100, MAX_CHUNK, MAX_CHUNK + 1, 2 * MAX_CHUNK + 77]
        .into_iter()
        .map(|len| Frame {
            header: Header::for_payload(0, len % 2 == 1, 0x1b, len).expect("fits"),
            payload: (0..len).map(|i| (i * 7) as u8).collect(),
        })
        .collect()
}

#[test]
fn our_initiator_with_their_responder() {
    let authority = AuthorityKeypair::generate().expect("key");
    let (public, secret) = raw(&authority);
    let mut responder =
        noise_sv2::Responder::from_authority_kp(&public, &secret, Duration::from_secs(3600))
            .expect("their responder");
    let mut initiator = Initiator::new(Some(authority.public())).expect("initiator");
    let act1 = initiator.act1();
    let (act2, mut theirs) = responder.step_1(act1).expect("their step 1");
    let (ours, certificate) = initiator
        .act2(&act2, now())
        .expect("we accept their answer");
    assert_eq!(certificate.version, 0);
    assert!(certificate.valid_from <= now() && certificate.not_valid_after >= now() + 3500);
    let (mut sealer, mut opener) = ours.split(MAX_PAYLOAD);
    for frame in frames() {
        let sealed = sealer.seal(&frame).expect("seal");
        assert_eq!(their_open(&mut theirs, &sealed), frame);
        opener.push(&their_seal(&mut theirs, &frame));
        assert_eq!(opener.next_frame().expect("opens"), Some(frame));
    }
}

#[test]
fn their_initiator_with_our_responder() {
    let authority = AuthorityKeypair::generate().expect("key");
    let (public, _) = raw(&authority);
    let responder = Responder::new(authority, 3600);
    let mut initiator = noise_sv2::Initiator::from_raw_k(public).expect("their initiator");
    let act1 = initiator.step_0().expect("their act 1");
    let (act2, ours) = responder.respond(&act1, now()).expect("we answer");
    let mut theirs = initiator
        .step_2(act2)
        .expect("their initiator accepts our certificate");
    let (mut sealer, mut opener) = ours.split(MAX_PAYLOAD);
    for frame in frames() {
        opener.push(&their_seal(&mut theirs, &frame));
        assert_eq!(opener.next_frame().expect("opens"), Some(frame.clone()));
        let sealed = sealer.seal(&frame).expect("seal");
        assert_eq!(their_open(&mut theirs, &sealed), frame);
    }
    // Their initiator without a key to check skips the certificate, as the reference does.
    let mut blind = noise_sv2::Initiator::without_pk().expect("their initiator");
    let (act2, _) = responder
        .respond(&blind.step_0().expect("act 1"), now())
        .expect("answer");
    assert!(blind.step_2(act2).is_ok());
}

#[test]
fn a_wrong_authority_key_fails_on_both_sides() {
    let authority = AuthorityKeypair::generate().expect("key");
    let other = AuthorityKeypair::generate().expect("key");
    let (public, secret) = raw(&authority);
    // Ours expects `other`; their responder signs with `authority`.
    let mut responder =
        noise_sv2::Responder::from_authority_kp(&public, &secret, Duration::from_secs(3600))
            .expect("their responder");
    let mut initiator = Initiator::new(Some(other.public())).expect("initiator");
    let (act2, _) = responder.step_1(initiator.act1()).expect("their step 1");
    assert_eq!(
        initiator.act2(&act2, now()).err(),
        Some(NoiseError::Certificate(CertificateError::Signature))
    );
    // Theirs expects `other`; ours signs with `authority`.
    let (other_public, _) = raw(&other);
    let mut initiator = noise_sv2::Initiator::from_raw_k(other_public).expect("their initiator");
    let (act2, _) = Responder::new(authority, 3600)
        .respond(&initiator.step_0().expect("act 1"), now())
        .expect("we answer");
    assert!(initiator.step_2(act2).is_err(), "their initiator refuses");
}

#[test]
fn an_expired_certificate_fails_on_both_sides() {
    let authority = AuthorityKeypair::generate().expect("key");
    let (public, secret) = raw(&authority);
    // Their certificate, valid for 60 s from now, read by a clock two minutes ahead.
    let mut responder =
        noise_sv2::Responder::from_authority_kp(&public, &secret, Duration::from_secs(60))
            .expect("their responder");
    let mut initiator = Initiator::new(Some(authority.public())).expect("initiator");
    let (act2, _) = responder.step_1(initiator.act1()).expect("their step 1");
    assert!(matches!(
        initiator.act2(&act2, now() + 120),
        Err(NoiseError::Certificate(CertificateError::Expired { .. }))
    ));
    // Ours, made two hours ago for one hour, read by their initiator now.
    let mut initiator = noise_sv2::Initiator::from_raw_k(public).expect("their initiator");
    let (act2, _) = Responder::new(authority, 3600)
        .respond(&initiator.step_0().expect("act 1"), now() - 7200)
        .expect("we answer");
    assert!(
        initiator.step_2(act2).is_err(),
        "their initiator refuses it"
    );
}
