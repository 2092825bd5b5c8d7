//! Stratum V2's Noise handshake (`otedama_stratum::sv2::noise`) on arbitrary bytes, both
//! sides: the responder takes the first 64 bytes as a miner's act one, and a real initiator
//! takes the rest as a pool's act two.
//!
//! Checks: nothing panics; the responder answers any act one of the right length with an act
//! two of its length (every 64 bytes encode a point, ElligatorSwift being onto); an act two
//! the initiator did not get from a responder holding the authority key never completes the
//! handshake, whatever its length.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use otedama_stratum::sv2::noise::{AuthorityKeypair, Initiator, Responder, ACT1_LEN, ACT2_LEN};

fn authority() -> &'static AuthorityKeypair {
    static KEY: OnceLock<AuthorityKeypair> = OnceLock::new();
    KEY.get_or_init(|| AuthorityKeypair::generate().expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000;
    let (act1, rest) = data.split_at(data.len().min(ACT1_LEN));
    let responder = Responder::new(authority().clone(), 3600);
    match responder.respond(act1, now) {
        Ok((act2, _)) => {
            assert_eq!(act1.len(), ACT1_LEN);
            assert_eq!(act2.len(), ACT2_LEN);
        }
        Err(_) => assert_ne!(act1.len(), ACT1_LEN, "a full act one is always answered"),
    }
    let mut initiator = Initiator::new(Some(authority().public())).expect("initiator");
    let _ = initiator.act1();
    assert!(
        initiator.act2(rest, now).is_err(),
        "bytes from no responder completed the handshake"
    );
});
