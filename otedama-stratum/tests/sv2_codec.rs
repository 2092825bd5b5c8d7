//! The SV2 codec against the reference implementation's published crates (pinned in
//! Cargo.toml), an independent peer: every message type, with random field values, is framed
//! by us, parsed by their parser, written back by their encoder to the same bytes, and read
//! back by us to the same message; named fields are checked one by one for the mining
//! messages; and the known bytes of a SetupConnection.

use binary_sv2::GetSize;
use otedama_stratum::sv2::frame::{FrameDecoder, Header};
use otedama_stratum::sv2::message::*;
use otedama_stratum::sv2::types::{DecodeError, EncodeError};
use parsers_sv2::{AnyMessage, IsSv2Message};
use proptest::prelude::*;

/// Field values from a seed (xorshift), with lengths up to each type's limit now and then.
struct Fill(u64);

impl Fill {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn u32(&mut self) -> u32 {
        self.next() as u32
    }
    fn u64(&mut self) -> u64 {
        self.next()
    }
    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn f32(&mut self) -> f32 {
        // Finite, so that equality holds after the trip.
        (self.next() % 1_000_000_000) as f32 * 1.5
    }
    fn len(&mut self, max: usize) -> usize {
        match self.next() % 8 {
            0 => 0,
            1 => max,
            _ => (self.next() as usize) % (max.min(300) + 1),
        }
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.len(max);
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn text(&mut self, max: usize) -> String {
        let n = self.len(max);
        // Multi-byte characters now and then, cut to fit by bytes.
        let mut s = String::new();
        while s.len() < n {
            let c = if self.next().is_multiple_of(5) {
                'é'
            } else {
                char::from(b'a' + (self.next() % 26) as u8)
            };
            if s.len() + c.len_utf8() > n {
                break;
            }
            s.push(c);
        }
        s
    }
    fn u256(&mut self) -> [u8; 32] {
        std::array::from_fn(|_| self.next() as u8)
    }
    fn path(&mut self) -> Vec<[u8; 32]> {
        let n = (self.next() % 14) as usize;
        (0..n).map(|_| self.u256()).collect()
    }
    fn option(&mut self) -> Option<u32> {
        self.bool().then(|| self.u32())
    }
    fn txs(&mut self) -> Vec<Vec<u8>> {
        let n = (self.next() % 5) as usize;
        (0..n).map(|_| self.bytes(2000)).collect()
    }
}

/// One message of every type, filled from `f`.
fn every_message(f: &mut Fill) -> Vec<Message> {
    vec![
        SetupConnection {
            protocol: Protocol::from((f.next() % 3) as u8),
            min_version: 2,
            max_version: 2,
            flags: f.u32() & 7,
            endpoint_host: f.text(255),
            endpoint_port: f.u16(),
            vendor: f.text(255),
            hardware_version: f.text(255),
            firmware: f.text(255),
            device_id: f.text(255),
        }
        .into(),
        SetupConnectionSuccess {
            used_version: 2,
            flags: f.u32(),
        }
        .into(),
        SetupConnectionError {
            flags: f.u32(),
            error_code: f.text(255),
        }
        .into(),
        ChannelEndpointChanged {
            channel_id: f.u32(),
        }
        .into(),
        Reconnect {
            new_host: f.text(255),
            new_port: f.u16(),
        }
        .into(),
        OpenStandardMiningChannel {
            request_id: f.u32(),
            user_identity: f.text(255),
            nominal_hash_rate: f.f32(),
            max_target: f.u256(),
        }
        .into(),
        OpenStandardMiningChannelSuccess {
            request_id: f.u32(),
            channel_id: f.u32(),
            target: f.u256(),
            extranonce_prefix: f.bytes(32),
            group_channel_id: f.u32(),
        }
        .into(),
        OpenMiningChannelError {
            request_id: f.u32(),
            error_code: f.text(255),
        }
        .into(),
        OpenExtendedMiningChannel {
            request_id: f.u32(),
            user_identity: f.text(255),
            nominal_hash_rate: f.f32(),
            max_target: f.u256(),
            min_extranonce_size: f.u16(),
        }
        .into(),
        OpenExtendedMiningChannelSuccess {
            request_id: f.u32(),
            channel_id: f.u32(),
            target: f.u256(),
            extranonce_size: f.u16(),
            extranonce_prefix: f.bytes(32),
            group_channel_id: f.u32(),
        }
        .into(),
        NewMiningJob {
            channel_id: f.u32(),
            job_id: f.u32(),
            min_ntime: f.option(),
            version: f.u32(),
            merkle_root: f.u256(),
        }
        .into(),
        UpdateChannel {
            channel_id: f.u32(),
            nominal_hash_rate: f.f32(),
            maximum_target: f.u256(),
        }
        .into(),
        UpdateChannelError {
            channel_id: f.u32(),
            error_code: f.text(255),
        }
        .into(),
        CloseChannel {
            channel_id: f.u32(),
            reason_code: f.text(255),
        }
        .into(),
        SetExtranoncePrefix {
            channel_id: f.u32(),
            extranonce_prefix: f.bytes(32),
        }
        .into(),
        SubmitSharesStandard {
            channel_id: f.u32(),
            sequence_number: f.u32(),
            job_id: f.u32(),
            nonce: f.u32(),
            ntime: f.u32(),
            version: f.u32(),
        }
        .into(),
        SubmitSharesExtended {
            channel_id: f.u32(),
            sequence_number: f.u32(),
            job_id: f.u32(),
            nonce: f.u32(),
            ntime: f.u32(),
            version: f.u32(),
            extranonce: f.bytes(32),
        }
        .into(),
        SubmitSharesSuccess {
            channel_id: f.u32(),
            last_sequence_number: f.u32(),
            new_submits_accepted_count: f.u32(),
            new_shares_sum: f.u64(),
        }
        .into(),
        SubmitSharesError {
            channel_id: f.u32(),
            sequence_number: f.u32(),
            error_code: f.text(255),
        }
        .into(),
        NewExtendedMiningJob {
            channel_id: f.u32(),
            job_id: f.u32(),
            min_ntime: f.option(),
            version: f.u32(),
            version_rolling_allowed: f.bool(),
            merkle_path: f.path(),
            coinbase_tx_prefix: f.bytes(65_535),
            coinbase_tx_suffix: f.bytes(65_535),
        }
        .into(),
        SetNewPrevHash {
            channel_id: f.u32(),
            job_id: f.u32(),
            prev_hash: f.u256(),
            min_ntime: f.u32(),
            nbits: f.u32(),
        }
        .into(),
        SetTarget {
            channel_id: f.u32(),
            maximum_target: f.u256(),
        }
        .into(),
        SetCustomMiningJob {
            channel_id: f.u32(),
            request_id: f.u32(),
            token: f.bytes(255),
            version: f.u32(),
            prev_hash: f.u256(),
            min_ntime: f.u32(),
            nbits: f.u32(),
            coinbase_tx_version: f.u32(),
            coinbase_prefix: f.bytes(255),
            coinbase_tx_input_n_sequence: f.u32(),
            coinbase_tx_outputs: f.bytes(65_535),
            coinbase_tx_locktime: f.u32(),
            merkle_path: f.path(),
        }
        .into(),
        SetCustomMiningJobSuccess {
            channel_id: f.u32(),
            request_id: f.u32(),
            job_id: f.u32(),
        }
        .into(),
        SetCustomMiningJobError {
            channel_id: f.u32(),
            request_id: f.u32(),
            error_code: f.text(255),
        }
        .into(),
        SetGroupChannel {
            group_channel_id: f.u32(),
            channel_ids: (0..f.len(600)).map(|_| f.u32()).collect(),
        }
        .into(),
        AllocateMiningJobToken {
            user_identifier: f.text(255),
            request_id: f.u32(),
        }
        .into(),
        AllocateMiningJobTokenSuccess {
            request_id: f.u32(),
            mining_job_token: f.bytes(255),
            coinbase_outputs: f.bytes(65_535),
        }
        .into(),
        ProvideMissingTransactions {
            request_id: f.u32(),
            unknown_tx_position_list: (0..f.len(600)).map(|_| f.u16()).collect(),
        }
        .into(),
        ProvideMissingTransactionsSuccess {
            request_id: f.u32(),
            transaction_list: f.txs(),
        }
        .into(),
        DeclareMiningJob {
            request_id: f.u32(),
            mining_job_token: f.bytes(255),
            version: f.u32(),
            coinbase_tx_prefix: f.bytes(65_535),
            coinbase_tx_suffix: f.bytes(65_535),
            wtxid_list: f.path(),
            excess_data: f.bytes(300),
        }
        .into(),
        DeclareMiningJobSuccess {
            request_id: f.u32(),
            new_mining_job_token: f.bytes(255),
        }
        .into(),
        DeclareMiningJobError {
            request_id: f.u32(),
            error_code: f.text(255),
            error_details: f.bytes(300),
        }
        .into(),
        PushSolution {
            extranonce: f.bytes(32),
            prev_hash: f.u256(),
            nonce: f.u32(),
            ntime: f.u32(),
            nbits: f.u32(),
            version: f.u32(),
        }
        .into(),
        CoinbaseOutputConstraints {
            coinbase_output_max_additional_size: f.u32(),
            coinbase_output_max_additional_sigops: f.u16(),
        }
        .into(),
        NewTemplate {
            template_id: f.u64(),
            future_template: f.bool(),
            version: f.u32(),
            coinbase_tx_version: f.u32(),
            coinbase_prefix: f.bytes(255),
            coinbase_tx_input_sequence: f.u32(),
            coinbase_tx_value_remaining: f.u64(),
            coinbase_tx_outputs_count: f.u32(),
            coinbase_tx_outputs: f.bytes(65_535),
            coinbase_tx_locktime: f.u32(),
            merkle_path: f.path(),
        }
        .into(),
        TemplateSetNewPrevHash {
            template_id: f.u64(),
            prev_hash: f.u256(),
            header_timestamp: f.u32(),
            n_bits: f.u32(),
            target: f.u256(),
        }
        .into(),
        RequestTransactionData {
            template_id: f.u64(),
        }
        .into(),
        RequestTransactionDataSuccess {
            template_id: f.u64(),
            excess_data: f.bytes(300),
            transaction_list: f.txs(),
        }
        .into(),
        RequestTransactionDataError {
            template_id: f.u64(),
            error_code: f.text(255),
        }
        .into(),
        SubmitSolution {
            template_id: f.u64(),
            version: f.u32(),
            header_timestamp: f.u32(),
            header_nonce: f.u32(),
            coinbase_tx: f.bytes(65_535),
        }
        .into(),
    ]
}

/// Our frame through the reference parser and encoder, and back through ours.
fn through_the_reference(message: &Message) {
    let bytes = message.to_frame().expect("fits").to_bytes();
    let header = framing_sv2::header::Header::from_bytes(&bytes[..6]).expect("their header");
    assert_eq!(header.msg_type(), message.msg_type());
    assert_eq!(
        header.channel_msg(),
        message.channel_msg(),
        "{}",
        message.name()
    );
    assert_eq!(header.payload_length(), bytes.len() - 6);
    let mut payload = bytes[6..].to_vec();
    let theirs = AnyMessage::try_from((header, payload.as_mut_slice()))
        .unwrap_or_else(|e| panic!("{} refused by the reference parser: {e:?}", message.name()));
    assert_eq!(
        theirs.message_type(),
        message.msg_type(),
        "{}",
        message.name()
    );
    assert_eq!(
        theirs.channel_bit(),
        message.channel_msg(),
        "{}",
        message.name()
    );
    assert_eq!(theirs.get_size(), bytes.len() - 6, "{}", message.name());
    let rewritten = binary_sv2::to_bytes(theirs).expect("their encoder");
    assert_eq!(
        rewritten,
        &bytes[6..],
        "{}: their bytes differ",
        message.name()
    );
    let (ours, tlvs) = Message::decode(
        &Header::from_bytes(*bytes.first_chunk::<6>().expect("header")),
        &rewritten,
    )
    .expect("ours reads theirs");
    assert_eq!(&ours, message);
    assert!(tlvs.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_message_survives_the_reference_parser_and_encoder(seed in 1u64..) {
        for message in every_message(&mut Fill(seed)) {
            through_the_reference(&message);
        }
    }

    #[test]
    fn any_cut_of_a_stream_of_frames_reads_back_the_messages(seed in 1u64.., cut in 1usize..5000) {
        let messages = every_message(&mut Fill(seed));
        let bytes: Vec<u8> = messages
            .iter()
            .flat_map(|m| m.to_frame().expect("fits").to_bytes())
            .collect();
        let mut decoder = FrameDecoder::new(1 << 24);
        let mut got = Vec::new();
        for piece in bytes.chunks(cut) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().expect("no error") {
                got.push(Message::from_frame(&frame).expect("reads").0);
            }
        }
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn truncated_payloads_fail_cleanly(seed in 1u64.., keep in 0.0f64..1.0) {
        for message in every_message(&mut Fill(seed)) {
            let frame = message.to_frame().expect("fits");
            let cut = ((frame.payload.len() as f64) * keep) as usize;
            if cut < frame.payload.len() {
                let result = Message::decode(&frame.header, &frame.payload[..cut]);
                prop_assert!(result.is_err(), "{} cut to {}", message.name(), cut);
            }
        }
    }
}

#[test]
fn a_setup_connection_has_the_bytes_the_reference_writes() {
    let setup = Message::from(SetupConnection {
        protocol: Protocol::Mining,
        min_version: 2,
        max_version: 2,
        flags: 5,
        endpoint_host: "127.0.0.1".into(),
        endpoint_port: 34254,
        vendor: "otedama".into(),
        hardware_version: String::new(),
        firmware: String::new(),
        device_id: String::new(),
    });
    assert_eq!(
        hex::encode(setup.to_payload().expect("fits")),
        "000200020005000000093132372e302e302e31ce85076f746564616d61000000"
    );
}

/// Mining messages built field by field on the reference's side read the same fields here.
#[test]
fn named_fields_match_the_reference_structs() {
    use binary_sv2::{Seq0255, Sv2Option, U256};
    // The reference's types borrow their bytes; the test's live for the whole run.
    fn u256(b: u8) -> U256<'static> {
        U256::from(&*Box::leak(Box::new([b; 32])))
    }
    fn bytes<T: TryFrom<&'static [u8]>>(v: Vec<u8>) -> T
    where
        T::Error: std::fmt::Debug,
    {
        T::try_from(Vec::leak(v)).expect("fits")
    }
    let check = |theirs: AnyMessage<'static>, ours: Message| {
        let bytes = binary_sv2::to_bytes(theirs).expect("encode");
        let header = Header {
            extension_type: 0,
            channel_msg: ours.channel_msg(),
            msg_type: ours.msg_type(),
            length: bytes.len() as u32,
        };
        assert_eq!(Message::decode(&header, &bytes).expect("reads").0, ours);
        assert_eq!(ours.to_payload().expect("fits"), bytes, "{}", ours.name());
    };
    check(
        AnyMessage::Mining(parsers_sv2::Mining::OpenExtendedMiningChannelSuccess(
            mining_sv2::OpenExtendedMiningChannelSuccess {
                request_id: 1,
                channel_id: 2,
                target: u256(3),
                extranonce_size: 4,
                extranonce_prefix: bytes(vec![5u8; 6]),
                group_channel_id: 7,
            },
        )),
        OpenExtendedMiningChannelSuccess {
            request_id: 1,
            channel_id: 2,
            target: [3; 32],
            extranonce_size: 4,
            extranonce_prefix: vec![5; 6],
            group_channel_id: 7,
        }
        .into(),
    );
    check(
        AnyMessage::Mining(parsers_sv2::Mining::NewExtendedMiningJob(
            mining_sv2::NewExtendedMiningJob {
                channel_id: 1,
                job_id: 2,
                min_ntime: Sv2Option::new(Some(3)),
                version: 4,
                version_rolling_allowed: true,
                merkle_path: Seq0255::new(vec![u256(5), u256(6)]).expect("fits"),
                coinbase_tx_prefix: bytes(vec![7u8; 70]),
                coinbase_tx_suffix: bytes(vec![8u8; 9]),
            },
        )),
        NewExtendedMiningJob {
            channel_id: 1,
            job_id: 2,
            min_ntime: Some(3),
            version: 4,
            version_rolling_allowed: true,
            merkle_path: vec![[5; 32], [6; 32]],
            coinbase_tx_prefix: vec![7; 70],
            coinbase_tx_suffix: vec![8; 9],
        }
        .into(),
    );
    check(
        AnyMessage::Mining(parsers_sv2::Mining::SubmitSharesExtended(
            mining_sv2::SubmitSharesExtended {
                channel_id: 1,
                sequence_number: 2,
                job_id: 3,
                nonce: 4,
                ntime: 5,
                version: 6,
                extranonce: bytes(vec![7u8; 8]),
            },
        )),
        SubmitSharesExtended {
            channel_id: 1,
            sequence_number: 2,
            job_id: 3,
            nonce: 4,
            ntime: 5,
            version: 6,
            extranonce: vec![7; 8],
        }
        .into(),
    );
    check(
        AnyMessage::Mining(parsers_sv2::Mining::SetNewPrevHash(
            mining_sv2::SetNewPrevHash {
                channel_id: 1,
                job_id: 2,
                prev_hash: u256(3),
                min_ntime: 4,
                nbits: 5,
            },
        )),
        SetNewPrevHash {
            channel_id: 1,
            job_id: 2,
            prev_hash: [3; 32],
            min_ntime: 4,
            nbits: 5,
        }
        .into(),
    );
    check(
        AnyMessage::Mining(parsers_sv2::Mining::SubmitSharesSuccess(
            mining_sv2::SubmitSharesSuccess {
                channel_id: 1,
                last_sequence_number: 2,
                new_submits_accepted_count: 3,
                new_shares_sum: 4,
            },
        )),
        SubmitSharesSuccess {
            channel_id: 1,
            last_sequence_number: 2,
            new_submits_accepted_count: 3,
            new_shares_sum: 4,
        }
        .into(),
    );
}

#[test]
fn what_cannot_be_written_or_read_is_an_error_not_a_panic() {
    let long = Message::from(SubmitSharesExtended {
        channel_id: 1,
        sequence_number: 1,
        job_id: 1,
        nonce: 1,
        ntime: 1,
        version: 1,
        extranonce: vec![0; 33],
    });
    assert!(matches!(
        long.to_frame(),
        Err(EncodeError::TooLong {
            field: "extranonce",
            max: 32,
            ..
        })
    ));
    let header = |msg_type, extension_type| Header {
        extension_type,
        channel_msg: false,
        msg_type,
        length: 0,
    };
    assert_eq!(
        Message::decode(&header(0x1e, 0), &[]),
        Err(DecodeError::UnknownMessage {
            extension: 0,
            msg_type: 0x1e
        })
    );
    assert_eq!(
        Message::decode(&header(0x00, 0x4000), &[]),
        Err(DecodeError::UnknownMessage {
            extension: 0x4000,
            msg_type: 0
        })
    );
    // A CloseChannel followed by bytes that are no TLV field.
    let mut payload = Message::from(CloseChannel {
        channel_id: 1,
        reason_code: "x".into(),
    })
    .to_payload()
    .expect("fits");
    payload.extend_from_slice(&[1, 2]);
    assert_eq!(
        Message::decode(&header(0x18, 0), &payload),
        Err(DecodeError::TrailingBytes(2))
    );
}
