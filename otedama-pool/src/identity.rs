//! Who a miner says it is: `address[.worker][+difficulty]`, parsed once for every dialect.
//!
//! Stratum v1 miners send it as the `mining.authorize` user name, Monero miners as the login,
//! EthereumStratum miners as the `eth_submitLogin` user. The worker name is the miner's own
//! label for one rig; the pool pays the address. xmrig-style miners ask for a fixed share
//! difficulty by appending `+difficulty`.

/// Longest identity taken, in bytes.
pub const MAX_IDENTITY_LEN: usize = 256;

/// A parsed miner identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The payout address, as written (check it against a chain before paying it).
    pub address: String,
    /// The worker name; empty when none was given.
    pub worker: String,
    /// The fixed share difficulty asked for with `+difficulty`.
    pub difficulty: Option<f64>,
}

/// Why an identity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Nothing before the first `.`.
    #[error("no payout address in {0:?}")]
    NoAddress(String),
    /// Longer than [`MAX_IDENTITY_LEN`].
    #[error("identity of {0} bytes is longer than {MAX_IDENTITY_LEN}")]
    TooLong(usize),
    /// Whitespace or control characters.
    #[error("identity {0:?} holds whitespace or control characters")]
    BadCharacter(String),
    /// A `+difficulty` suffix that is not a positive number.
    #[error("fixed difficulty {0:?} is not a positive number")]
    BadDifficulty(String),
}

impl Identity {
    /// Parses `address[.worker][+difficulty]`.
    pub fn parse(text: &str) -> Result<Identity, IdentityError> {
        if text.len() > MAX_IDENTITY_LEN {
            return Err(IdentityError::TooLong(text.len()));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(IdentityError::BadCharacter(text.to_owned()));
        }
        let (rest, difficulty) = match text.rsplit_once('+') {
            Some((rest, d)) => {
                let value: f64 = d
                    .parse()
                    .map_err(|_| IdentityError::BadDifficulty(d.to_owned()))?;
                if !(value.is_finite() && value > 0.0) {
                    return Err(IdentityError::BadDifficulty(d.to_owned()));
                }
                (rest, Some(value))
            }
            None => (text, None),
        };
        let (address, worker) = rest.split_once('.').unwrap_or((rest, ""));
        if address.is_empty() {
            return Err(IdentityError::NoAddress(text.to_owned()));
        }
        Ok(Identity {
            address: address.to_owned(),
            worker: worker.to_owned(),
            difficulty,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        let id = Identity::parse("bcrt1qxyz.rig1").expect("parse");
        assert_eq!(
            (id.address.as_str(), id.worker.as_str()),
            ("bcrt1qxyz", "rig1")
        );
        assert_eq!(id.difficulty, None);
        let id = Identity::parse("4Abc").expect("parse");
        assert_eq!((id.address.as_str(), id.worker.as_str()), ("4Abc", ""));
        let id = Identity::parse("4Abc+50000").expect("parse");
        assert_eq!(id.difficulty, Some(50_000.0));
        let id = Identity::parse("addr.rig.2+0.5").expect("parse");
        assert_eq!(
            (id.address.as_str(), id.worker.as_str(), id.difficulty),
            ("addr", "rig.2", Some(0.5))
        );
    }

    #[test]
    fn bad_identities_are_refused_with_their_reason() {
        assert!(matches!(
            Identity::parse(""),
            Err(IdentityError::NoAddress(_))
        ));
        assert!(matches!(
            Identity::parse(".rig"),
            Err(IdentityError::NoAddress(_))
        ));
        assert!(matches!(
            Identity::parse("a b"),
            Err(IdentityError::BadCharacter(_))
        ));
        assert!(matches!(
            Identity::parse("a+x"),
            Err(IdentityError::BadDifficulty(_))
        ));
        assert!(matches!(
            Identity::parse("a+-1"),
            Err(IdentityError::BadDifficulty(_))
        ));
        assert!(matches!(
            Identity::parse("a+inf"),
            Err(IdentityError::BadDifficulty(_))
        ));
        let long = "a".repeat(MAX_IDENTITY_LEN + 1);
        assert!(matches!(
            Identity::parse(&long),
            Err(IdentityError::TooLong(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,300}") {
            let _ = Identity::parse(&text);
        }

        #[test]
        fn address_and_worker_round_trip(
            address in "[a-zA-Z0-9]{1,60}",
            worker in "[a-zA-Z0-9._-]{0,30}",
        ) {
            let text = if worker.is_empty() { address.clone() } else { format!("{address}.{worker}") };
            let id = Identity::parse(&text).expect("parse");
            proptest::prop_assert_eq!(id.address, address);
            proptest::prop_assert_eq!(id.worker, worker);
        }
    }
}
