//! Payout addresses of the Bitcoin family, checked against a chain's own prefixes and turned
//! into the output script a coinbase pays.

use bitcoin::bech32::{segwit, Fe32, Hrp};
use bitcoin::blockdata::script::witness_version::WitnessVersion;
use bitcoin::blockdata::script::{PushBytesBuf, ScriptBuf};
use bitcoin::hashes::{hash160, Hash};
use bitcoin::{PubkeyHash, ScriptHash, WitnessProgram};

/// The address prefixes of one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressParams {
    /// A name for messages.
    pub name: &'static str,
    /// The bech32 human-readable part of segwit addresses.
    pub bech32_hrp: &'static str,
    /// Base58 version bytes of pay-to-pubkey-hash addresses.
    pub p2pkh: &'static [u8],
    /// Base58 version bytes of pay-to-script-hash addresses.
    pub p2sh: &'static [u8],
}

impl AddressParams {
    /// Bitcoin mainnet.
    pub const BITCOIN: AddressParams = AddressParams {
        name: "bitcoin",
        bech32_hrp: "bc",
        p2pkh: &[0],
        p2sh: &[5],
    };
    /// Bitcoin testnet and signet.
    pub const BITCOIN_TESTNET: AddressParams = AddressParams {
        name: "bitcoin testnet",
        bech32_hrp: "tb",
        p2pkh: &[111],
        p2sh: &[196],
    };
    /// Bitcoin regtest.
    pub const BITCOIN_REGTEST: AddressParams = AddressParams {
        name: "bitcoin regtest",
        bech32_hrp: "bcrt",
        p2pkh: &[111],
        p2sh: &[196],
    };
    /// Litecoin mainnet (P2SH addresses start with M, and the legacy 3 form is still valid).
    pub const LITECOIN: AddressParams = AddressParams {
        name: "litecoin",
        bech32_hrp: "ltc",
        p2pkh: &[48],
        p2sh: &[50, 5],
    };
    /// Litecoin testnet.
    pub const LITECOIN_TESTNET: AddressParams = AddressParams {
        name: "litecoin testnet",
        bech32_hrp: "tltc",
        p2pkh: &[111],
        p2sh: &[58, 196],
    };
    /// Litecoin regtest.
    pub const LITECOIN_REGTEST: AddressParams = AddressParams {
        name: "litecoin regtest",
        bech32_hrp: "rltc",
        p2pkh: &[111],
        p2sh: &[58, 196],
    };

    /// Every chain above, for lookups by name.
    pub const ALL: [AddressParams; 6] = [
        AddressParams::BITCOIN,
        AddressParams::BITCOIN_TESTNET,
        AddressParams::BITCOIN_REGTEST,
        AddressParams::LITECOIN,
        AddressParams::LITECOIN_TESTNET,
        AddressParams::LITECOIN_REGTEST,
    ];

    /// Checks `address` for this chain and returns the script that pays it.
    pub fn script_pubkey(&self, address: &str) -> Result<ScriptBuf, AddressError> {
        let address = address.trim();
        if address.is_empty() {
            return Err(AddressError::Empty);
        }
        let lower = address.to_ascii_lowercase();
        if lower.starts_with(&format!("{}1", self.bech32_hrp)) {
            let (hrp, version, program) = segwit::decode(address)
                .map_err(|e| AddressError::Invalid(address.to_owned(), e.to_string()))?;
            if hrp != Hrp::parse_unchecked(self.bech32_hrp) {
                return Err(self.wrong_chain(address));
            }
            return witness_script(version, &program)
                .map_err(|reason| AddressError::Invalid(address.to_owned(), reason));
        }
        let data = bitcoin::base58::decode_check(address).map_err(|e| {
            if address.contains('1') && !address.starts_with('1') && segwit::decode(address).is_ok()
            {
                self.wrong_chain(address)
            } else {
                AddressError::Invalid(address.to_owned(), e.to_string())
            }
        })?;
        let (version, payload) = data.split_at(data.len().saturating_sub(20));
        let hash: [u8; 20] = payload.try_into().map_err(|_| {
            AddressError::Invalid(address.to_owned(), "payload is not 20 bytes".into())
        })?;
        if self.p2pkh.iter().any(|v| version == [*v]) {
            Ok(ScriptBuf::new_p2pkh(&PubkeyHash::from_raw_hash(
                hash160::Hash::from_byte_array(hash),
            )))
        } else if self.p2sh.iter().any(|v| version == [*v]) {
            Ok(ScriptBuf::new_p2sh(&ScriptHash::from_raw_hash(
                hash160::Hash::from_byte_array(hash),
            )))
        } else {
            Err(self.wrong_chain(address))
        }
    }

    /// Checks `address` for this chain and returns the one spelling of it: surrounding space
    /// removed, bech32 in lower case. Use it as the key of anything kept per address, so
    /// that `RLTC1Q...` and `rltc1q...` are one account.
    ///
    /// ```
    /// use otedama_core::AddressParams;
    ///
    /// let chain = AddressParams::BITCOIN;
    /// let canonical = chain.canonical(" BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4 ")?;
    /// assert_eq!(canonical, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4");
    /// # Ok::<(), otedama_core::AddressError>(())
    /// ```
    pub fn canonical(&self, address: &str) -> Result<String, AddressError> {
        self.script_pubkey(address)?;
        let address = address.trim();
        let lower = address.to_ascii_lowercase();
        if lower.starts_with(&format!("{}1", self.bech32_hrp)) {
            Ok(lower)
        } else {
            Ok(address.to_owned())
        }
    }

    fn wrong_chain(&self, address: &str) -> AddressError {
        AddressError::WrongChain {
            address: address.to_owned(),
            chain: self.name,
        }
    }
}

impl AddressParams {
    /// The address an output script pays, in this chain's spelling (bech32 in lower case,
    /// base58 with the first of the chain's version prefixes); `None` for a script no
    /// address stands for (a bare key, `OP_RETURN`, an unknown witness version).
    pub fn address_of(&self, script: &bitcoin::Script) -> Option<String> {
        let bytes = script.as_bytes();
        if script.is_p2pkh() {
            return Some(base58(self.p2pkh, bytes.get(3..23)?));
        }
        if script.is_p2sh() {
            return Some(base58(
                self.p2sh.first().map(std::slice::from_ref)?,
                bytes.get(2..22)?,
            ));
        }
        let version = script.witness_version()?;
        let program = bytes.get(2..)?;
        let hrp = Hrp::parse(self.bech32_hrp).ok()?;
        segwit::encode(hrp, version.to_fe(), program).ok()
    }
}

fn base58(prefix: &[u8], hash: &[u8]) -> String {
    let mut data = prefix.to_vec();
    data.extend_from_slice(hash);
    bitcoin::base58::encode_check(&data)
}

fn witness_script(version: Fe32, program: &[u8]) -> Result<ScriptBuf, String> {
    let version = WitnessVersion::try_from(version).map_err(|e| e.to_string())?;
    let program = PushBytesBuf::try_from(program.to_vec()).map_err(|e| e.to_string())?;
    let program = WitnessProgram::new(version, program.as_bytes()).map_err(|e| e.to_string())?;
    Ok(ScriptBuf::new_witness_program(&program))
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing was given.
    #[error("no payout address given")]
    Empty,
    /// A well-formed address of another chain.
    #[error("{address} is not a {chain} address")]
    WrongChain {
        /// The address.
        address: String,
        /// The chain expected.
        chain: &'static str,
    },
    /// Not an address at all.
    #[error("{0} is not a valid address: {1}")]
    Invalid(String, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_script_reads_back_as_its_address() {
        for (chain, address) in [
            (AddressParams::BITCOIN, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
            (AddressParams::BITCOIN, "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
            (
                AddressParams::BITCOIN,
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            ),
            (
                AddressParams::BITCOIN,
                "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            ),
            (
                AddressParams::BITCOIN_REGTEST,
                "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
            ),
            (
                AddressParams::LITECOIN,
                "LM2WMpR1Rp6j3Sa59cMXMs1SPzj9eXpGc1",
            ),
        ] {
            let script = chain.script_pubkey(address).expect("address");
            assert_eq!(chain.address_of(&script).as_deref(), Some(address));
        }
        let nothing = ScriptBuf::new_op_return([1u8, 2, 3]);
        assert_eq!(AddressParams::BITCOIN.address_of(&nothing), None);
    }

    #[test]
    fn one_spelling_per_address() {
        let chain = AddressParams::BITCOIN;
        assert_eq!(
            chain
                .canonical("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa\n")
                .expect("p2pkh"),
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "base58 keeps its case"
        );
        assert_eq!(
            chain
                .canonical("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
                .expect("bech32"),
            chain
                .canonical("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4")
                .expect("upper case bech32")
        );
        assert!(chain
            .canonical("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5")
            .is_err());
        assert!(AddressParams::LITECOIN
            .canonical("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
            .is_err());
    }

    #[test]
    fn known_addresses_map_to_their_scripts() {
        // BIP173 test vector.
        let script = AddressParams::BITCOIN
            .script_pubkey("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4")
            .expect("bip173");
        assert_eq!(
            script.to_hex_string(),
            "0014751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        // The genesis coinbase's address.
        let script = AddressParams::BITCOIN
            .script_pubkey("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
            .expect("p2pkh");
        assert_eq!(
            script.to_hex_string(),
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"
        );
        let program = [0x75u8; 20];
        let encoded = segwit::encode(Hrp::parse_unchecked("rltc"), segwit::VERSION_0, &program)
            .expect("encode");
        assert!(encoded.starts_with("rltc1q"));
        let regtest = AddressParams::LITECOIN_REGTEST
            .script_pubkey(&encoded)
            .expect("litecoin regtest bech32");
        assert_eq!(regtest.as_bytes()[2..], program);
        assert!(AddressParams::BITCOIN_REGTEST
            .script_pubkey(&encoded)
            .is_err());
    }

    #[test]
    fn other_chains_and_garbage_are_refused() {
        assert!(matches!(
            AddressParams::LITECOIN_REGTEST
                .script_pubkey("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            Err(AddressError::WrongChain { .. } | AddressError::Invalid(..))
        ));
        assert!(matches!(
            AddressParams::LITECOIN.script_pubkey("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
            Err(AddressError::WrongChain { .. })
        ));
        assert_eq!(
            AddressParams::BITCOIN.script_pubkey(" "),
            Err(AddressError::Empty)
        );
        assert!(AddressParams::BITCOIN
            .script_pubkey("not-an-address")
            .is_err());
        assert!(
            AddressParams::BITCOIN
                .script_pubkey("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")
                .is_err(),
            "bad checksum"
        );
    }
}
