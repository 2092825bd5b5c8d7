//! Every message of the SV2 core protocols (common, mining, job declaration, template
//! distribution), owned and typed, with their codecs.

use super::frame::{Frame, Header};
use super::types::{
    Bool, DecodeError, EncodeError, Kind, Opt, Reader, Seq0255, Seq064K, Str0255, Tlv, Writer,
    B016M, B0255, B032, B064K, F32, U16, U256, U32, U64, U8,
};

/// Which protocol a connection speaks ([`SetupConnection::protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The mining protocol (0).
    Mining,
    /// The job declaration protocol (1).
    JobDeclaration,
    /// The template distribution protocol (2).
    TemplateDistribution,
    /// A value no protocol has; a server answers it with `SetupConnection.Error`.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(v: u8) -> Protocol {
        match v {
            0 => Protocol::Mining,
            1 => Protocol::JobDeclaration,
            2 => Protocol::TemplateDistribution,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(p: Protocol) -> u8 {
        match p {
            Protocol::Mining => 0,
            Protocol::JobDeclaration => 1,
            Protocol::TemplateDistribution => 2,
            Protocol::Unknown(v) => v,
        }
    }
}

/// The `U8` a [`Protocol`] is written as.
#[derive(Debug)]
pub enum ProtocolKind {}

impl Kind<Protocol> for ProtocolKind {
    const NAME: &'static str = "U8";
    fn read(r: &mut Reader<'_>) -> Result<Protocol, DecodeError> {
        U8::read(r).map(Protocol::from)
    }
    fn write(value: &Protocol, w: &mut Writer, field: &'static str) -> Result<(), EncodeError> {
        U8::write(&u8::from(*value), w, field)
    }
}

/// `SetupConnection` flags of the mining protocol.
pub mod flags {
    /// The miner takes standard jobs only (header-only mining).
    pub const REQUIRES_STANDARD_JOBS: u32 = 1;
    /// The miner chooses its own work (job declaration).
    pub const REQUIRES_WORK_SELECTION: u32 = 1 << 1;
    /// The miner needs version rolling.
    pub const REQUIRES_VERSION_ROLLING: u32 = 1 << 2;
    /// `SetupConnection.Success`: the miner must not roll the version.
    pub const REQUIRES_FIXED_VERSION: u32 = 1;
    /// `SetupConnection.Success`: the pool serves extended channels only.
    pub const REQUIRES_EXTENDED_CHANNELS: u32 = 1 << 1;
}

macro_rules! messages {
    ($(
        $(#[$meta:meta])*
        $name:ident = $ty:literal, channel $chan:literal {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty as $kind:ty ),* $(,)?
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $name {
                $( $(#[$fmeta])* pub $field: $fty, )*
            }

            impl $name {
                /// Its message type.
                pub const MESSAGE_TYPE: u8 = $ty;
                /// Whether its header carries the channel bit.
                pub const CHANNEL_MSG: bool = $chan;

                fn write_fields(&self, w: &mut Writer) -> Result<(), EncodeError> {
                    $( <$kind as Kind<$fty>>::write(&self.$field, w, stringify!($field))?; )*
                    Ok(())
                }

                fn read_fields(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                    Ok($name { $( $field: <$kind as Kind<$fty>>::read(r)?, )* })
                }
            }

            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$name(m)
                }
            }
        )*

        /// A message of the SV2 core protocols.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Message {
            $( $(#[$meta])* $name($name), )*
        }

        impl Message {
            /// Its message type.
            pub fn msg_type(&self) -> u8 {
                match self { $( Message::$name(_) => $ty, )* }
            }

            /// Whether its header carries the channel bit.
            pub fn channel_msg(&self) -> bool {
                match self { $( Message::$name(_) => $chan, )* }
            }

            /// Its name in the specification's spelling (`SubmitSharesExtended`).
            pub fn name(&self) -> &'static str {
                match self { $( Message::$name(_) => stringify!($name), )* }
            }

            fn write_fields(&self, w: &mut Writer) -> Result<(), EncodeError> {
                match self { $( Message::$name(m) => m.write_fields(w), )* }
            }

            fn read_type(msg_type: u8, r: &mut Reader<'_>) -> Result<Option<Message>, DecodeError> {
                match msg_type {
                    $( $ty => $name::read_fields(r).map(|m| Some(Message::$name(m))), )*
                    _ => Ok(None),
                }
            }
        }
    };
}

messages! {
    /// Opens a connection: the protocol, the versions and features the client supports,
    /// and what it is.
    SetupConnection = 0x00, channel false {
        /// The protocol the connection will speak.
        protocol: Protocol as ProtocolKind,
        /// The lowest protocol version the client speaks (2).
        min_version: u16 as U16,
        /// The highest protocol version the client speaks (2).
        max_version: u16 as U16,
        /// Feature flags ([`flags`]).
        flags: u32 as U32,
        /// The host the client connected to, as it was told it.
        endpoint_host: String as Str0255,
        /// The port the client connected to.
        endpoint_port: u16 as U16,
        /// The device's vendor.
        vendor: String as Str0255,
        /// The device's hardware version.
        hardware_version: String as Str0255,
        /// The device's firmware.
        firmware: String as Str0255,
        /// The device's own id.
        device_id: String as Str0255,
    }

    /// The server accepts the connection.
    SetupConnectionSuccess = 0x01, channel false {
        /// The version both speak.
        used_version: u16 as U16,
        /// The server's feature flags ([`flags`]).
        flags: u32 as U32,
    }

    /// The server refuses the connection.
    SetupConnectionError = 0x02, channel false {
        /// Every flag the server does not support.
        flags: u32 as U32,
        /// Why (`unsupported-feature-flags`, `unsupported-protocol`, `protocol-version-mismatch`).
        error_code: String as Str0255,
    }

    /// The channel's endpoint changed: the downstream must forget its state for it.
    ChannelEndpointChanged = 0x03, channel true {
        /// The channel.
        channel_id: u32 as U32,
    }

    /// Connect elsewhere, with the same authority key.
    Reconnect = 0x04, channel false {
        /// The host (empty: the same host).
        new_host: String as Str0255,
        /// The port (0: the same port).
        new_port: u16 as U16,
    }

    /// Opens a standard channel: header-only mining on the pool's merkle root.
    OpenStandardMiningChannel = 0x10, channel false {
        /// The client's number for this request.
        request_id: u32 as U32,
        /// Who mines (the pool's account or payout).
        user_identity: String as Str0255,
        /// The device's expected hashrate, hashes per second.
        nominal_hash_rate: f32 as F32,
        /// The easiest target the device wants (little-endian).
        max_target: [u8; 32] as U256,
    }

    /// The standard channel is open.
    OpenStandardMiningChannelSuccess = 0x11, channel false {
        /// The request answered.
        request_id: u32 as U32,
        /// The new channel.
        channel_id: u32 as U32,
        /// The share target (little-endian).
        target: [u8; 32] as U256,
        /// The channel's extranonce prefix.
        extranonce_prefix: Vec<u8> as B032,
        /// The group channel it belongs to.
        group_channel_id: u32 as U32,
    }

    /// A channel could not be opened.
    OpenMiningChannelError = 0x12, channel false {
        /// The request answered.
        request_id: u32 as U32,
        /// Why (`unknown-user`, `max-target-out-of-range`).
        error_code: String as Str0255,
    }

    /// Opens an extended channel: the miner rolls extranonce bytes of its own.
    OpenExtendedMiningChannel = 0x13, channel false {
        /// The client's number for this request.
        request_id: u32 as U32,
        /// Who mines.
        user_identity: String as Str0255,
        /// The expected hashrate, hashes per second.
        nominal_hash_rate: f32 as F32,
        /// The easiest target wanted (little-endian).
        max_target: [u8; 32] as U256,
        /// The fewest extranonce bytes the client needs to roll.
        min_extranonce_size: u16 as U16,
    }

    /// The extended channel is open.
    OpenExtendedMiningChannelSuccess = 0x14, channel false {
        /// The request answered.
        request_id: u32 as U32,
        /// The new channel.
        channel_id: u32 as U32,
        /// The share target (little-endian).
        target: [u8; 32] as U256,
        /// How many extranonce bytes the client rolls.
        extranonce_size: u16 as U16,
        /// The pool's part of the extranonce, before the client's.
        extranonce_prefix: Vec<u8> as B032,
        /// The group channel it belongs to.
        group_channel_id: u32 as U32,
    }

    /// A job for a standard channel: the merkle root is fixed.
    NewMiningJob = 0x15, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The job.
        job_id: u32 as U32,
        /// The earliest ntime; absent for a future job (a `SetNewPrevHash` follows).
        min_ntime: Option<u32> as Opt<U32>,
        /// The header version.
        version: u32 as U32,
        /// The merkle root.
        merkle_root: [u8; 32] as U256,
    }

    /// The device's hashrate or target changed.
    UpdateChannel = 0x16, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The expected hashrate, hashes per second.
        nominal_hash_rate: f32 as F32,
        /// The easiest target wanted.
        maximum_target: [u8; 32] as U256,
    }

    /// An `UpdateChannel` was refused.
    UpdateChannelError = 0x17, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// Why.
        error_code: String as Str0255,
    }

    /// The channel ends.
    CloseChannel = 0x18, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// Why.
        reason_code: String as Str0255,
    }

    /// The channel's extranonce prefix changes, from the next job on.
    SetExtranoncePrefix = 0x19, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The new prefix.
        extranonce_prefix: Vec<u8> as B032,
    }

    /// A share on a standard channel.
    SubmitSharesStandard = 0x1a, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The client's running number for shares.
        sequence_number: u32 as U32,
        /// The job.
        job_id: u32 as U32,
        /// The header nonce.
        nonce: u32 as U32,
        /// The header time.
        ntime: u32 as U32,
        /// The header version (rolled bits included).
        version: u32 as U32,
    }

    /// A share on an extended channel.
    SubmitSharesExtended = 0x1b, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The client's running number for shares.
        sequence_number: u32 as U32,
        /// The job.
        job_id: u32 as U32,
        /// The header nonce.
        nonce: u32 as U32,
        /// The header time.
        ntime: u32 as U32,
        /// The header version (rolled bits included).
        version: u32 as U32,
        /// The client's extranonce bytes (the negotiated size).
        extranonce: Vec<u8> as B032,
    }

    /// Shares up to a sequence number were accepted.
    SubmitSharesSuccess = 0x1c, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The last share this answer covers.
        last_sequence_number: u32 as U32,
        /// Shares accepted since the last answer.
        new_submits_accepted_count: u32 as U32,
        /// Their difficulty, summed.
        new_shares_sum: u64 as U64,
    }

    /// A share was refused.
    SubmitSharesError = 0x1d, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The share refused.
        sequence_number: u32 as U32,
        /// Why (`invalid-job-id`, `stale-share`, `difficulty-too-low`, `duplicate-share`).
        error_code: String as Str0255,
    }

    /// A job for an extended channel: the coinbase around the extranonce, and the merkle path.
    NewExtendedMiningJob = 0x1f, channel true {
        /// The channel (or group channel).
        channel_id: u32 as U32,
        /// The job.
        job_id: u32 as U32,
        /// The earliest ntime; absent for a future job.
        min_ntime: Option<u32> as Opt<U32>,
        /// The header version.
        version: u32 as U32,
        /// Whether the version's rolling bits may be rolled.
        version_rolling_allowed: bool as Bool,
        /// The merkle path from the coinbase.
        merkle_path: Vec<[u8; 32]> as Seq0255<U256>,
        /// The coinbase before the extranonce (witness data stripped).
        coinbase_tx_prefix: Vec<u8> as B064K,
        /// The coinbase after the extranonce.
        coinbase_tx_suffix: Vec<u8> as B064K,
    }

    /// A new block to mine on: the previous hash for a future job sent before.
    SetNewPrevHash = 0x20, channel true {
        /// The channel (or group channel).
        channel_id: u32 as U32,
        /// The future job this activates.
        job_id: u32 as U32,
        /// The previous block's hash.
        prev_hash: [u8; 32] as U256,
        /// The earliest ntime.
        min_ntime: u32 as U32,
        /// The network target, compact.
        nbits: u32 as U32,
    }

    /// The channel's share target changes.
    SetTarget = 0x21, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The easiest target a share may meet (little-endian).
        maximum_target: [u8; 32] as U256,
    }

    /// A job the client chose (work selection), declared to the pool.
    SetCustomMiningJob = 0x22, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The client's number for this request.
        request_id: u32 as U32,
        /// The token the job declarator gave.
        token: Vec<u8> as B0255,
        /// The header version.
        version: u32 as U32,
        /// The previous block's hash.
        prev_hash: [u8; 32] as U256,
        /// The earliest ntime.
        min_ntime: u32 as U32,
        /// The network target, compact.
        nbits: u32 as U32,
        /// The coinbase's version.
        coinbase_tx_version: u32 as U32,
        /// The coinbase input's script before the extranonce.
        coinbase_prefix: Vec<u8> as B0255,
        /// The coinbase input's sequence.
        coinbase_tx_input_n_sequence: u32 as U32,
        /// The coinbase's outputs, serialized.
        coinbase_tx_outputs: Vec<u8> as B064K,
        /// The coinbase's lock time.
        coinbase_tx_locktime: u32 as U32,
        /// The merkle path from the coinbase.
        merkle_path: Vec<[u8; 32]> as Seq0255<U256>,
    }

    /// A custom job was accepted.
    SetCustomMiningJobSuccess = 0x23, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The request answered.
        request_id: u32 as U32,
        /// The job's id for shares.
        job_id: u32 as U32,
    }

    /// A custom job was refused.
    SetCustomMiningJobError = 0x24, channel true {
        /// The channel.
        channel_id: u32 as U32,
        /// The request answered.
        request_id: u32 as U32,
        /// Why.
        error_code: String as Str0255,
    }

    /// Which channels a group channel holds.
    SetGroupChannel = 0x25, channel false {
        /// The group channel.
        group_channel_id: u32 as U32,
        /// Its channels.
        channel_ids: Vec<u32> as Seq064K<U32>,
    }

    /// Job declaration: asks for a token to declare a job with.
    AllocateMiningJobToken = 0x50, channel false {
        /// Who mines.
        user_identifier: String as Str0255,
        /// The client's number for this request.
        request_id: u32 as U32,
    }

    /// Job declaration: the token, and the outputs the coinbase must carry.
    AllocateMiningJobTokenSuccess = 0x51, channel false {
        /// The request answered.
        request_id: u32 as U32,
        /// The token.
        mining_job_token: Vec<u8> as B0255,
        /// The outputs the pool requires, serialized.
        coinbase_outputs: Vec<u8> as B064K,
    }

    /// Job declaration: the declarator lacks these transactions of a declared job.
    ProvideMissingTransactions = 0x55, channel false {
        /// The declaration it concerns.
        request_id: u32 as U32,
        /// Their positions in the declared list.
        unknown_tx_position_list: Vec<u16> as Seq064K<U16>,
    }

    /// Job declaration: the missing transactions.
    ProvideMissingTransactionsSuccess = 0x56, channel false {
        /// The declaration it concerns.
        request_id: u32 as U32,
        /// The transactions, serialized.
        transaction_list: Vec<Vec<u8>> as Seq064K<B016M>,
    }

    /// Job declaration: a job the client chose.
    DeclareMiningJob = 0x57, channel false {
        /// The client's number for this request.
        request_id: u32 as U32,
        /// The token allocated.
        mining_job_token: Vec<u8> as B0255,
        /// The header version.
        version: u32 as U32,
        /// The coinbase before the extranonce.
        coinbase_tx_prefix: Vec<u8> as B064K,
        /// The coinbase after the extranonce.
        coinbase_tx_suffix: Vec<u8> as B064K,
        /// The block's transactions, by wtxid.
        wtxid_list: Vec<[u8; 32]> as Seq064K<U256>,
        /// Room for later versions.
        excess_data: Vec<u8> as B064K,
    }

    /// Job declaration: the job is accepted.
    DeclareMiningJobSuccess = 0x58, channel false {
        /// The request answered.
        request_id: u32 as U32,
        /// The token to set the job with.
        new_mining_job_token: Vec<u8> as B0255,
    }

    /// Job declaration: the job is refused.
    DeclareMiningJobError = 0x59, channel false {
        /// The request answered.
        request_id: u32 as U32,
        /// Why.
        error_code: String as Str0255,
        /// More about why.
        error_details: Vec<u8> as B064K,
    }

    /// Job declaration: a block found on a declared job.
    PushSolution = 0x60, channel false {
        /// The full extranonce.
        extranonce: Vec<u8> as B032,
        /// The previous block's hash.
        prev_hash: [u8; 32] as U256,
        /// The header nonce.
        nonce: u32 as U32,
        /// The header time.
        ntime: u32 as U32,
        /// The network target, compact.
        nbits: u32 as U32,
        /// The header version.
        version: u32 as U32,
    }

    /// Template distribution: how much room the pool's coinbase outputs take.
    CoinbaseOutputConstraints = 0x70, channel false {
        /// Bytes the outputs add.
        coinbase_output_max_additional_size: u32 as U32,
        /// Signature operations they add.
        coinbase_output_max_additional_sigops: u16 as U16,
    }

    /// Template distribution: a block template.
    NewTemplate = 0x71, channel false {
        /// The template.
        template_id: u64 as U64,
        /// Whether it is for the block after the next `SetNewPrevHash`.
        future_template: bool as Bool,
        /// The header version.
        version: u32 as U32,
        /// The coinbase's version.
        coinbase_tx_version: u32 as U32,
        /// The coinbase input's script prefix (the height).
        coinbase_prefix: Vec<u8> as B0255,
        /// The coinbase input's sequence.
        coinbase_tx_input_sequence: u32 as U32,
        /// The value left for the pool's outputs.
        coinbase_tx_value_remaining: u64 as U64,
        /// How many outputs the node adds.
        coinbase_tx_outputs_count: u32 as U32,
        /// Those outputs, serialized.
        coinbase_tx_outputs: Vec<u8> as B064K,
        /// The coinbase's lock time.
        coinbase_tx_locktime: u32 as U32,
        /// The merkle path from the coinbase.
        merkle_path: Vec<[u8; 32]> as Seq0255<U256>,
    }

    /// Template distribution: a new block, for a future template.
    TemplateSetNewPrevHash = 0x72, channel false {
        /// The template it activates.
        template_id: u64 as U64,
        /// The previous block's hash.
        prev_hash: [u8; 32] as U256,
        /// The header time.
        header_timestamp: u32 as U32,
        /// The network target, compact.
        n_bits: u32 as U32,
        /// The network target.
        target: [u8; 32] as U256,
    }

    /// Template distribution: asks for a template's transactions.
    RequestTransactionData = 0x73, channel false {
        /// The template.
        template_id: u64 as U64,
    }

    /// Template distribution: a template's transactions.
    RequestTransactionDataSuccess = 0x74, channel false {
        /// The template.
        template_id: u64 as U64,
        /// Room for later versions.
        excess_data: Vec<u8> as B064K,
        /// The transactions, serialized.
        transaction_list: Vec<Vec<u8>> as Seq064K<B016M>,
    }

    /// Template distribution: no transactions for that template.
    RequestTransactionDataError = 0x75, channel false {
        /// The template.
        template_id: u64 as U64,
        /// Why.
        error_code: String as Str0255,
    }

    /// Template distribution: a block found on a template.
    SubmitSolution = 0x76, channel false {
        /// The template.
        template_id: u64 as U64,
        /// The header version.
        version: u32 as U32,
        /// The header time.
        header_timestamp: u32 as U32,
        /// The header nonce.
        header_nonce: u32 as U32,
        /// The whole coinbase.
        coinbase_tx: Vec<u8> as B064K,
    }
}

impl Message {
    /// The payload's bytes.
    pub fn to_payload(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new();
        self.write_fields(&mut w)?;
        Ok(w.into_bytes())
    }

    /// The payload's bytes with `tlvs` after them.
    pub fn to_payload_with(&self, tlvs: &[Tlv]) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new();
        self.write_fields(&mut w)?;
        tlvs.iter().try_for_each(|t| t.write(&mut w))?;
        Ok(w.into_bytes())
    }

    /// The whole frame.
    pub fn to_frame(&self) -> Result<Frame, EncodeError> {
        let payload = self.to_payload()?;
        let header = Header::for_payload(0, self.channel_msg(), self.msg_type(), payload.len())?;
        Ok(Frame { header, payload })
    }

    /// Reads a core message from its frame's header and payload, with the TLV fields after
    /// it. The channel bit is not held against the message: the type decides.
    pub fn decode(header: &Header, payload: &[u8]) -> Result<(Message, Vec<Tlv>), DecodeError> {
        let unknown = DecodeError::UnknownMessage {
            extension: header.extension_type,
            msg_type: header.msg_type,
        };
        if header.extension_type != 0 {
            return Err(unknown);
        }
        let mut r = Reader::new(payload);
        let message = Message::read_type(header.msg_type, &mut r)?.ok_or(unknown)?;
        let rest = r.rest();
        let tlvs = Tlv::read_all(rest).map_err(|_| DecodeError::TrailingBytes(rest.len()))?;
        Ok((message, tlvs))
    }

    /// Reads a core message from a frame, with the TLV fields after it.
    pub fn from_frame(frame: &Frame) -> Result<(Message, Vec<Tlv>), DecodeError> {
        Message::decode(&frame.header, &frame.payload)
    }
}
