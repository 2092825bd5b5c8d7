//! A Bitcoin-family node over JSON-RPC: `getblocktemplate` (segwit, and Litecoin's MWEB),
//! long-polling for new blocks, and `submitblock`.

use std::path::PathBuf;
use std::time::Duration;

use otedama_core::{decode_hex, BlockTemplate, CompactTarget, TemplateTransaction};

use crate::wallet::{
    Broadcast, PreparedPayment, SendError, Wallet, WalletError, WalletTransaction,
};

pub use super::RpcError;
use super::{BlockRejection, BlockSubmitter, ChainView, SourceError, SubmitError, TemplateSource};
use serde_json::{json, Value};

/// How the node checks who is calling.
#[derive(Debug, Clone)]
pub enum RpcAuth {
    /// `-rpcuser` / `-rpcpassword`.
    UserPassword(String, String),
    /// The `.cookie` file the node writes at start.
    Cookie(PathBuf),
}

fn send_failure(e: CallError) -> SendError {
    match e {
        CallError::Node { source, .. } => SendError::Node(source),
        CallError::Transport(e) => SendError::Unknown(e),
    }
}

fn rpc_failure(e: CallError) -> SourceError {
    e.into()
}

/// How a JSON-RPC call failed: the node's own error, or no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The node answered with an error.
    #[error("{call}: the node answered with an error")]
    Node {
        /// The method called.
        call: String,
        /// The node's error.
        #[source]
        source: RpcError,
    },
    /// No usable answer came back.
    #[error(transparent)]
    Transport(#[from] SourceError),
}

impl From<CallError> for SourceError {
    fn from(e: CallError) -> SourceError {
        match e {
            CallError::Node { call, source } => SourceError::Node { call, source },
            CallError::Transport(e) => e,
        }
    }
}

/// Smallest units per coin on the Bitcoin-family chains the node path serves.
const UNITS_PER_COIN: u64 = 100_000_000;

/// `units` as the exact decimal coin amount the node's RPC takes, e.g. `12.34500000`.
pub fn units_to_coins(units: u64) -> String {
    format!("{}.{:08}", units / UNITS_PER_COIN, units % UNITS_PER_COIN)
}

/// A decimal coin amount as the node prints it (`0.0000226`, `2.26e-5`, `12`) in smallest
/// units, exactly; `None` when it is not one or has more than eight decimals.
pub fn coins_to_units(text: &str) -> Option<u64> {
    let text = text.trim();
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    // value = digits * 10^(exponent - fraction.len()); in units, times 10^8.
    let shift = exponent
        .checked_add(8)?
        .checked_sub(i32::try_from(fraction.len()).ok()?)?;
    let mut value: u128 = 0;
    for b in digits.bytes() {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    if shift >= 0 {
        value = value.checked_mul(10u128.checked_pow(u32::try_from(shift).ok()?)?)?;
    } else {
        let divisor = 10u128.checked_pow(u32::try_from(shift.checked_neg()?).ok()?)?;
        if !value.is_multiple_of(divisor) {
            return None;
        }
        value /= divisor;
    }
    u64::try_from(value).ok()
}

/// A JSON-RPC connection to the node.
pub struct NodeRpc {
    url: String,
    auth: RpcAuth,
    next_id: u64,
}

fn basic(user: &str, password: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(TABLE[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

pub(super) fn unreachable_by(method: &str, e: ureq::Error) -> SourceError {
    match e {
        ureq::Error::Timeout(_) => SourceError::TimedOut {
            call: method.to_owned(),
        },
        e => SourceError::Unreachable {
            call: method.to_owned(),
            source: std::sync::Arc::new(e),
        },
    }
}

/// Reads the answer to a JSON-RPC call of `method`: refused credentials, a body that is not
/// JSON, the node's own error, or the result (bitcoind's and monerod's answers alike).
pub(super) fn read_answer(
    method: &str,
    response: ureq::http::Response<ureq::Body>,
) -> Result<Value, CallError> {
    let status = response.status().as_u16();
    if status == 401 || status == 403 {
        return Err(SourceError::Credentials {
            call: method.to_owned(),
            status,
        }
        .into());
    }
    let text = response
        .into_body()
        .read_to_string()
        .map_err(|e| unreachable_by(method, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|_| SourceError::bad_answer(method, "the body", "is not json"))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(CallError::Node {
            call: method.to_owned(),
            source: RpcError {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
        });
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}

impl NodeRpc {
    /// A client of the node at `url` (`http://host:port`).
    pub fn new(url: &str, auth: RpcAuth) -> Self {
        NodeRpc {
            url: url.to_owned(),
            auth,
            next_id: 0,
        }
    }

    fn authorization(&self) -> Result<String, SourceError> {
        match &self.auth {
            RpcAuth::UserPassword(u, p) => Ok(basic(u, p)),
            RpcAuth::Cookie(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| SourceError::Cookie {
                    path: path.clone(),
                    source: std::sync::Arc::new(e),
                })?;
                let (u, p) = text
                    .trim()
                    .split_once(':')
                    .ok_or_else(|| SourceError::BadCookie { path: path.clone() })?;
                Ok(basic(u, p))
            }
        }
    }

    /// Calls `method` and returns its result.
    ///
    /// # Errors
    /// [`CallError::Node`] when the node answers with an error of its own, and
    /// [`CallError::Transport`] when no usable answer came back.
    pub fn call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "1.0", "id": self.next_id, "method": method, "params": params})
                .to_string();
        let auth = self.authorization()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .post(&self.url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .map_err(|e| unreachable_by(method, e))?;
        read_answer(method, response)
    }

    /// A wallet's endpoint on the same node: `/wallet/<name>`.
    pub fn wallet(&self, name: &str) -> NodeRpc {
        NodeRpc::new(
            &format!("{}/wallet/{name}", self.url.trim_end_matches('/')),
            self.auth.clone(),
        )
    }

    /// Builds and signs, without broadcasting, one transaction paying every
    /// `(address, amount)` (smallest unit) from the wallet; its inputs stay locked in the
    /// wallet until it is broadcast. With `fee_from_outputs` the network fee comes out of the
    /// outputs instead of the change.
    pub fn prepare_payment(
        &mut self,
        outputs: &[(String, u64)],
        fee_from_outputs: bool,
    ) -> Result<PreparedPayment, SendError> {
        let wait = Duration::from_secs(60);
        let amounts: serde_json::Map<String, Value> = outputs
            .iter()
            .map(|(a, v)| (a.clone(), Value::String(units_to_coins(*v))))
            .collect();
        let count = amounts.len();
        let raw = self
            .call("createrawtransaction", json!([[], amounts]), wait)
            .map_err(send_failure)?;
        let mut options = json!({"lockUnspents": true});
        if fee_from_outputs {
            options["subtractFeeFromOutputs"] = json!((0..count).collect::<Vec<_>>());
        }
        let funded = self
            .call("fundrawtransaction", json!([raw, options]), wait)
            .map_err(send_failure)?;
        let fee = funded
            .get("fee")
            .map(Value::to_string)
            .and_then(|f| coins_to_units(&f))
            .ok_or_else(|| {
                SendError::Unknown(SourceError::bad_answer(
                    "fundrawtransaction",
                    "fee",
                    "is not an amount",
                ))
            })?;
        let funded_hex = funded
            .get("hex")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                SendError::Unknown(SourceError::bad_answer(
                    "fundrawtransaction",
                    "hex",
                    "is missing",
                ))
            })?
            .to_owned();
        let signed = self.sign(&funded_hex, fee);
        if signed.is_err() {
            // Funded but never to be sent: its inputs go back to the wallet.
            let _ = self.release(&funded_hex);
        }
        signed
    }

    fn sign(&mut self, funded_hex: &str, fee: u64) -> Result<PreparedPayment, SendError> {
        let wait = Duration::from_secs(60);
        let signed = self
            .call("signrawtransactionwithwallet", json!([funded_hex]), wait)
            .map_err(send_failure)?;
        let hex = match (
            signed.get("hex").and_then(Value::as_str),
            signed.get("complete"),
        ) {
            (Some(hex), Some(Value::Bool(true))) => hex.to_owned(),
            _ => return Err(SendError::Unsigned),
        };
        let decoded = self
            .call("decoderawtransaction", json!([hex]), wait)
            .map_err(send_failure)?;
        let txid = decoded
            .get("txid")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                SendError::Unknown(SourceError::bad_answer(
                    "decoderawtransaction",
                    "txid",
                    "is missing",
                ))
            })?
            .to_owned();
        // Whatever the network would refuse (a dust output, too low a fee) is refused now,
        // before anything is recorded, rather than failing the payment at its broadcast.
        let verdict = self
            .call("testmempoolaccept", json!([[hex]]), wait)
            .map_err(send_failure)?;
        let first = verdict.get(0).cloned().unwrap_or(Value::Null);
        if first.get("allowed") != Some(&Value::Bool(true)) {
            let reason = first
                .get("reject-reason")
                .and_then(Value::as_str)
                .unwrap_or("refused");
            return Err(SendError::NetworkWouldRefuse {
                reason: reason.to_owned(),
            });
        }
        Ok(PreparedPayment { txid, hex, fee })
    }

    /// Sends a signed transaction to the network. Sending one the node already has is not an
    /// error: broadcasting the same transaction again can never pay twice.
    pub fn broadcast(&mut self, hex: &str) -> Result<Broadcast, SourceError> {
        match self.call("sendrawtransaction", json!([hex]), Duration::from_secs(60)) {
            Ok(_) => Ok(Broadcast::Sent),
            // -27: already in the chain; -26 "txn-already-in-mempool" / "txn-already-known".
            Err(CallError::Node { source: rpc, .. }) if rpc.code == -27 => Ok(Broadcast::Sent),
            Err(CallError::Node { source: rpc, .. })
                if rpc.code == -26 && rpc.message.contains("already") =>
            {
                Ok(Broadcast::Sent)
            }
            // Its inputs are spent by another transaction, or it breaks a rule: it never will
            // be mined.
            Err(CallError::Node { source: rpc, .. }) if rpc.code == -25 || rpc.code == -26 => Ok(
                Broadcast::Refused(format!("{} ({})", rpc.message, rpc.code)),
            ),
            Err(e) => Err(rpc_failure(e)),
        }
    }

    /// What the wallet knows of `txid`, or `None` when it does not know it.
    pub fn wallet_transaction(
        &mut self,
        txid: &str,
    ) -> Result<Option<WalletTransaction>, SourceError> {
        match self.call("gettransaction", json!([txid]), Duration::from_secs(30)) {
            Ok(v) => Ok(Some(WalletTransaction {
                confirmations: v.get("confirmations").and_then(Value::as_i64).unwrap_or(0),
                conflicts: v
                    .get("walletconflicts")
                    .and_then(Value::as_array)
                    .map(|c| {
                        c.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })),
            Err(CallError::Node { source: rpc, .. }) if rpc.code == -5 => Ok(None),
            Err(e) => Err(rpc_failure(e)),
        }
    }

    /// Whether the wallet transaction `txid` pays any of `addresses` (a fee bump or another
    /// copy of a payment does).
    pub fn pays_any(&mut self, txid: &str, addresses: &[&str]) -> Result<bool, SourceError> {
        let tx = self
            .call("gettransaction", json!([txid]), Duration::from_secs(30))
            .map_err(rpc_failure)?;
        let decoded = self
            .call(
                "decoderawtransaction",
                json!([tx.get("hex").cloned().unwrap_or(Value::Null)]),
                Duration::from_secs(30),
            )
            .map_err(rpc_failure)?;
        let outputs = decoded
            .get("vout")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(outputs.iter().any(|out| {
            let spk = out.get("scriptPubKey");
            let single = spk.and_then(|s| s.get("address")).and_then(Value::as_str);
            let listed = spk
                .and_then(|s| s.get("addresses"))
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str);
            single.or(listed).is_some_and(|a| addresses.contains(&a))
        }))
    }

    /// Whether the node takes `address` as a destination.
    pub fn is_valid_address(&mut self, address: &str) -> Result<bool, SourceError> {
        let v = self
            .call("validateaddress", json!([address]), Duration::from_secs(30))
            .map_err(rpc_failure)?;
        Ok(v.get("isvalid").and_then(Value::as_bool).unwrap_or(false))
    }

    /// Unlocks the inputs of a prepared transaction that will not be broadcast, one by one
    /// (an input already spent or unlocked does not keep the others locked).
    pub fn release(&mut self, hex: &str) -> Result<(), SourceError> {
        let decoded = self
            .call(
                "decoderawtransaction",
                json!([hex]),
                Duration::from_secs(30),
            )
            .map_err(rpc_failure)?;
        let inputs = decoded
            .get("vin")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for input in inputs {
            let outpoint = json!([{"txid": input.get("txid"), "vout": input.get("vout")}]);
            let _ = self.call(
                "lockunspent",
                json!([true, outpoint]),
                Duration::from_secs(30),
            );
        }
        Ok(())
    }

    /// What the wallet can spend now (confirmed, mature), smallest unit.
    pub fn spendable(&mut self) -> Result<u64, SourceError> {
        let v = self
            .call("getbalance", json!([]), Duration::from_secs(30))
            .map_err(rpc_failure)?;
        coins_to_units(&v.to_string())
            .ok_or_else(|| SourceError::bad_answer("getbalance", "the balance", "is not an amount"))
    }

    fn gbt(
        &mut self,
        longpollid: Option<&str>,
        timeout: Duration,
    ) -> Result<BlockTemplate, SourceError> {
        let mut request = json!({"rules": ["mweb", "segwit"]});
        if let Some(id) = longpollid {
            request["longpollid"] = json!(id);
        }
        let v = self.call("getblocktemplate", json!([request]), timeout)?;
        parse_template(&v)
    }
}

const GBT: &str = "getblocktemplate";

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, SourceError> {
    v.get(key)
        .ok_or_else(|| SourceError::bad_answer(GBT, key, "is missing"))
}

fn hex32_display(v: &Value, key: &str) -> Result<[u8; 32], SourceError> {
    let text = field(v, key)?
        .as_str()
        .ok_or_else(|| SourceError::bad_answer(GBT, key, "is not a string"))?;
    let mut bytes: [u8; 32] = decode_hex(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SourceError::bad_answer(GBT, key, "is not 32 bytes of hex"))?;
    bytes.reverse();
    Ok(bytes)
}

fn uint(v: &Value, key: &str) -> Result<u64, SourceError> {
    field(v, key)?
        .as_u64()
        .ok_or_else(|| SourceError::bad_answer(GBT, key, "is not a non-negative integer"))
}

fn hex_bytes(v: &Value, key: &str) -> Result<Vec<u8>, SourceError> {
    let text = field(v, key)?
        .as_str()
        .ok_or_else(|| SourceError::bad_answer(GBT, key, "is not a string"))?;
    decode_hex(text).map_err(|_| SourceError::bad_answer(GBT, key, "is not hex"))
}

/// Reads a `getblocktemplate` result.
pub fn parse_template(v: &Value) -> Result<BlockTemplate, SourceError> {
    let bits_text = field(v, "bits")?
        .as_str()
        .ok_or_else(|| SourceError::bad_answer(GBT, "bits", "is not a string"))?;
    let bits = u32::from_str_radix(bits_text, 16)
        .map_err(|_| SourceError::bad_answer(GBT, "bits", "is not hex"))?;
    let to_u32 = |key: &str| -> Result<u32, SourceError> {
        u32::try_from(uint(v, key)?)
            .map_err(|_| SourceError::bad_answer(GBT, key, "does not fit 32 bits"))
    };
    let txs = field(v, "transactions")?
        .as_array()
        .ok_or_else(|| SourceError::bad_answer(GBT, "transactions", "is not an array"))?;
    let transactions = txs
        .iter()
        .map(|t| {
            Ok(TemplateTransaction {
                data: hex_bytes(t, "data")?,
                txid: hex32_display(t, "txid")?,
                wtxid: hex32_display(t, "hash").or_else(|_| hex32_display(t, "txid"))?,
                fee: t.get("fee").and_then(Value::as_u64).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    let witness_commitment = match v.get("default_witness_commitment") {
        Some(Value::String(_)) => Some(hex_bytes(v, "default_witness_commitment")?),
        _ => None,
    };
    let mweb = match v.get("mweb") {
        Some(Value::String(_)) => Some(hex_bytes(v, "mweb")?),
        _ => None,
    };
    Ok(BlockTemplate {
        height: uint(v, "height")?,
        version: to_u32("version")?,
        prev_hash: hex32_display(v, "previousblockhash")?,
        bits: CompactTarget::from_consensus(bits),
        curtime: to_u32("curtime")?,
        mintime: to_u32("mintime").unwrap_or(0),
        coinbase_value: uint(v, "coinbasevalue")?,
        transactions,
        witness_commitment,
        mweb,
        id: v
            .get("longpollid")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}:{}", bits_text, v["previousblockhash"])),
    })
}

impl TemplateSource for NodeRpc {
    fn template(&mut self) -> Result<BlockTemplate, SourceError> {
        self.gbt(None, Duration::from_secs(30))
    }

    fn wait_for_change(
        &mut self,
        current_id: &str,
        timeout: Duration,
    ) -> Result<Option<BlockTemplate>, SourceError> {
        // The node holds a long-poll until the template changes; our timeout ends it early.
        match self.gbt(Some(current_id), timeout) {
            Ok(t) if t.id != current_id => Ok(Some(t)),
            Ok(_) => Ok(None),
            Err(SourceError::TimedOut { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl ChainView for NodeRpc {
    fn block_confirmations(&mut self, hash: &[u8; 32]) -> Result<Option<i64>, SourceError> {
        let display = otedama_core::encode_hex(&otedama_core::reverse_hash(hash));
        match self.call("getblockheader", json!([display]), Duration::from_secs(30)) {
            Ok(v) => Ok(v.get("confirmations").and_then(Value::as_i64)),
            // -5: the node has never seen the block.
            Err(CallError::Node { source, .. }) if source.code == -5 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl BlockSubmitter for NodeRpc {
    fn submit_block(&mut self, block: &[u8]) -> Result<(), SubmitError> {
        let hex = otedama_core::encode_hex(block);
        match self.call("submitblock", json!([hex]), Duration::from_secs(60)) {
            // null is acceptance; a string is the reason for refusal.
            Ok(Value::Null) => Ok(()),
            Ok(Value::String(reason)) => {
                Err(SubmitError::Rejected(BlockRejection::from_reason(&reason)))
            }
            Ok(other) => Err(SubmitError::Rejected(BlockRejection::Invalid(
                other.to_string(),
            ))),
            Err(CallError::Node { source, .. }) => Err(SubmitError::Rejected(
                BlockRejection::Invalid(source.to_string()),
            )),
            Err(CallError::Transport(e)) => Err(SubmitError::Unanswered(e)),
        }
    }
}

impl Wallet for NodeRpc {
    fn prepare_payment(
        &mut self,
        outputs: &[(String, u64)],
        fee_from_outputs: bool,
    ) -> Result<PreparedPayment, SendError> {
        NodeRpc::prepare_payment(self, outputs, fee_from_outputs)
    }

    fn broadcast(&mut self, hex: &str) -> Result<Broadcast, WalletError> {
        NodeRpc::broadcast(self, hex).map_err(WalletError::from)
    }

    fn release(&mut self, hex: &str) -> Result<(), WalletError> {
        NodeRpc::release(self, hex).map_err(WalletError::from)
    }

    fn wallet_transaction(&mut self, txid: &str) -> Result<Option<WalletTransaction>, WalletError> {
        NodeRpc::wallet_transaction(self, txid).map_err(WalletError::from)
    }

    fn pays_any(&mut self, txid: &str, addresses: &[&str]) -> Result<bool, WalletError> {
        NodeRpc::pays_any(self, txid, addresses).map_err(WalletError::from)
    }

    fn is_valid_address(&mut self, address: &str) -> Result<bool, WalletError> {
        NodeRpc::is_valid_address(self, address).map_err(WalletError::from)
    }

    fn spendable(&mut self) -> Result<u64, WalletError> {
        NodeRpc::spendable(self).map_err(WalletError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(name: &str) -> Value {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("capture")).expect("json")
    }

    #[test]
    fn post_mweb_template_parses_and_commits_to_its_witnesses() {
        let v = capture("ltc-gbt-post-mweb.json");
        let t = parse_template(&v).expect("template");
        assert_eq!(t.height, 438);
        assert_eq!(t.bits.to_consensus(), 0x207f_ffff);
        assert!(t.mweb.is_some());
        assert_eq!(t.transactions.len(), 1);
        let mut prev = t.prev_hash;
        prev.reverse();
        assert_eq!(
            otedama_core::encode_hex(&prev),
            v["previousblockhash"].as_str().expect("prev")
        );
        // Our witness root must give the node's own commitment.
        let ours = otedama_core::witness_commitment_script(&t.witness_root());
        assert_eq!(Some(ours.to_bytes()), t.witness_commitment);
    }

    #[test]
    fn first_mweb_block_template_parses() {
        let t =
            parse_template(&capture("ltc-gbt-height432-first-mweb-block.json")).expect("template");
        assert_eq!(t.height, 432);
        assert!(t.mweb.is_some());
        let ours = otedama_core::witness_commitment_script(&t.witness_root());
        assert_eq!(Some(ours.to_bytes()), t.witness_commitment);
    }

    #[test]
    fn cookie_files_authenticate_and_missing_ones_are_clear_errors() {
        let path = std::env::temp_dir().join(format!("otedama-cookie-{}", std::process::id()));
        std::fs::write(&path, "__cookie__:0123abcd\n").expect("cookie");
        let rpc = NodeRpc::new("http://127.0.0.1:1", RpcAuth::Cookie(path.clone()));
        assert_eq!(
            rpc.authorization().expect("auth"),
            basic("__cookie__", "0123abcd")
        );
        std::fs::write(&path, "no separator").expect("cookie");
        assert!(matches!(
            rpc.authorization(),
            Err(SourceError::BadCookie { .. })
        ));
        std::fs::remove_file(&path).expect("remove");
        let err = rpc.authorization().expect_err("missing");
        assert!(
            err.to_string().contains("cannot read the rpc cookie"),
            "{err}"
        );
        assert!(matches!(err, SourceError::Cookie { .. }));
        let cause = std::error::Error::source(&err).expect("the reading error");
        assert!(cause.to_string().contains("No such file"), "{cause}");
    }

    #[test]
    fn an_unreachable_node_is_unavailable_not_a_panic() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut rpc = NodeRpc::new(
            &format!("http://127.0.0.1:{port}"),
            RpcAuth::UserPassword("u".into(), "p".into()),
        );
        assert!(matches!(
            rpc.template(),
            Err(SourceError::Unreachable { .. })
        ));
    }

    #[test]
    fn coin_amounts_convert_exactly() {
        assert_eq!(units_to_coins(0), "0.00000000");
        assert_eq!(units_to_coins(1_234_567_891), "12.34567891");
        assert_eq!(units_to_coins(u64::MAX), "184467440737.09551615");
        for (text, units) in [
            ("0.0000226", Some(2260)),
            ("2.26e-5", Some(2260)),
            ("12", Some(1_200_000_000)),
            ("12.34567891", Some(1_234_567_891)),
            ("1E-8", Some(1)),
            ("0.000000001", None),
            ("1e-9", None),
            ("abc", None),
            ("", None),
            (".", None),
            ("-1", None),
            ("1e2147483647", None),
            ("1e-2147483648", None),
            ("0.00000000e-2147483640", None),
        ] {
            assert_eq!(coins_to_units(text), units, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn amounts_round_trip(units in proptest::prelude::any::<u64>()) {
            proptest::prop_assert_eq!(coins_to_units(&units_to_coins(units)), Some(units));
        }
    }

    #[test]
    fn basic_auth_is_base64() {
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic("u", "p"), "Basic dTpw");
    }

    #[test]
    fn a_bad_template_is_an_error_not_a_panic() {
        assert!(parse_template(&json!({})).is_err());
        assert!(parse_template(&json!({"bits": "zz"})).is_err());
        let mut v = capture("ltc-gbt-post-mweb.json");
        v["transactions"][0]["txid"] = json!("12");
        assert!(parse_template(&v).is_err());
    }
}

/// Against a real litecoind regtest pair, through the pool's own job and validation path.
#[cfg(test)]
mod litecoind_tests {
    use std::sync::Arc;

    use otedama_core::{
        stratum_merkle_root, AddressParams, BlockHeader, DifficultyConvention, Share,
    };
    use otedama_hash::{PowAlgorithm, ScanJob, Scrypt};
    use serde_json::json;

    use super::*;
    use crate::jobs::JobBook;
    use crate::source::{BlockSubmitter, TemplateSource};
    use crate::validate::{validate, Outcome};

    use crate::litecoind_support as support;

    /// Mines the node's current template with the pool's coinbase and submits the block.
    fn mine_and_submit(
        rpc: &mut NodeRpc,
        payout: &str,
        book: &mut JobBook,
    ) -> (BlockTemplate, String) {
        let template = Arc::new(rpc.template().expect("getblocktemplate"));
        let script = AddressParams::LITECOIN_REGTEST
            .script_pubkey(payout)
            .expect("payout address");
        let job = book
            .make(
                Arc::clone(&template),
                &script,
                b"/otedama/",
                true,
                template.curtime,
            )
            .expect("job");
        let n = &job.announcement.notify;
        let (en1, en2) = ([1u8, 2, 3, 4], [5u8, 6, 7, 8]);
        let root = stratum_merkle_root(&n.coinb1, &en1, &en2, &n.coinb2, &job.job.merkle_branch);
        let header = BlockHeader {
            version: n.version,
            prev_blockhash: n.prevhash,
            merkle_root: root,
            time: n.ntime,
            bits: template.bits,
            nonce: 0,
        };
        let kernel = Scrypt::new();
        let mut worker = kernel.worker().expect("worker");
        let mut found = Vec::new();
        let scan = ScanJob::header80(header.to_bytes());
        let mut start = 0;
        while found.is_empty() {
            worker
                .scan(&scan, start..start + 64, &job.network_target, &mut found)
                .expect("scan");
            start += 64;
        }
        let share = Share {
            job_id: job.job.id.clone(),
            extranonce1: en1.to_vec(),
            extranonce2: en2.to_vec(),
            ntime: n.ntime,
            nonce: found[0].nonce as u32,
            version_bits: None,
            worker: payout.into(),
        };
        let difficulty = 1.0 / 65_536.0;
        let Ok(Outcome::Block {
            block, block_hash, ..
        }) = validate(
            &job,
            &share,
            0,
            difficulty,
            &kernel,
            DifficultyConvention::Scrypt,
        )
        else {
            panic!("a share meeting the network target must be a block");
        };
        rpc.submit_block(&block)
            .expect("litecoind accepts the block");
        (Arc::unwrap_or_clone(template), block_hash)
    }

    #[test]
    fn litecoind_accepts_pool_blocks_before_and_after_mweb() {
        if !support::available() {
            return;
        }
        let node = support::Litecoind::start();
        let mut rpc = NodeRpc::new(
            &node.url(),
            RpcAuth::UserPassword(node.user.clone(), node.password.clone()),
        );
        let payout = node.new_address("bech32");
        let mut book = JobBook::default();

        let (template, hash) = mine_and_submit(&mut rpc, &payout, &mut book);
        assert_eq!(node.height(), template.height);
        let block = node.rpc("getblock", json!([hash, 2]));
        let coinbase = &block["tx"][0];
        // Litecoin 0.21 lists `addresses`; newer nodes say `address`.
        let spk = &coinbase["vout"][0]["scriptPubKey"];
        let paid_to = spk
            .get("address")
            .cloned()
            .unwrap_or_else(|| spk["addresses"][0].clone());
        assert_eq!(paid_to, json!(payout), "the coinbase pays the pool: {spk}");

        // Up to the block before MWEB activation, then a peg-in so block 432 can be built.
        let filler = node.new_address("bech32");
        let to_go = 431 - node.height();
        node.rpc("generatetoaddress", json!([to_go, filler]));
        assert_eq!(node.height(), 431);
        let mweb_address = node.new_address("mweb");
        node.rpc("sendtoaddress", json!([mweb_address, 1]));

        let (template, _) = mine_and_submit(&mut rpc, &payout, &mut book);
        assert_eq!(template.height, 432);
        assert!(
            template.mweb.is_some(),
            "the activation block carries MWEB data"
        );
        assert_eq!(node.height(), 432);
        let (template, _) = mine_and_submit(&mut rpc, &payout, &mut book);
        assert_eq!(template.height, 433);
        assert_eq!(node.height(), 433);

        // A stale block (its parent is no longer the tip) is refused with the node's reason.
        let stale = template;
        let err = {
            let mut book = JobBook::default();
            let script = AddressParams::LITECOIN_REGTEST
                .script_pubkey(&payout)
                .expect("payout");
            let job = book
                .make(Arc::new(stale), &script, b"", true, 0)
                .expect("job");
            let header = job
                .job
                .header_for(
                    &Share {
                        job_id: job.job.id.clone(),
                        extranonce1: vec![0; 4],
                        extranonce2: vec![0; 4],
                        ntime: job.job.time,
                        nonce: 0,
                        version_bits: None,
                        worker: String::new(),
                    },
                    0,
                )
                .expect("header");
            let tx = otedama_core::bitcoin::consensus::serialize(
                &job.coinbase.transaction(&[0; 4], &[0; 4]).expect("tx"),
            );
            rpc.submit_block(&job.template.assemble_block(&header, &tx))
                .expect_err("stale")
        };
        assert!(matches!(err, SubmitError::Rejected(_)), "{err:?}");
        assert_eq!(node.height(), 433);
    }
}
