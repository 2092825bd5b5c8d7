//! The SV2 binary data types: little-endian integers, 256-bit values, length-prefixed
//! strings, byte arrays and sequences, options, and TLV fields.
//!
//! Reading never allocates more than the bytes actually present: every length prefix is
//! checked against what is left of the payload before anything is taken.

use std::marker::PhantomData;

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload ends inside a field.
    #[error("the payload ends inside a field: {needed} more bytes needed, {left} left")]
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the payload.
        left: usize,
    },
    /// A string is not UTF-8.
    #[error("a string field is not UTF-8")]
    NotUtf8,
    /// A byte array is longer than its type allows (a B0_32 of 33 bytes, say).
    #[error("a {kind} field of {len} bytes is longer than its type allows ({max})")]
    TooLong {
        /// The type.
        kind: &'static str,
        /// The length given.
        len: usize,
        /// The most it may hold.
        max: usize,
    },
    /// An OPTION holds more than one value.
    #[error("an OPTION field says it holds {0} values (at most 1)")]
    OptionTooLong(usize),
    /// Bytes are left after the message that are not TLV fields.
    #[error("{0} bytes after the message are not TLV fields")]
    TrailingBytes(usize),
    /// No message of this type is known (in the core protocol or the extension named).
    #[error("unknown message type {msg_type:#04x} of extension {extension:#06x}")]
    UnknownMessage {
        /// The extension type, channel bit cleared.
        extension: u16,
        /// The message type.
        msg_type: u8,
    },
    /// The header's channel bit is not the one the message type has.
    #[error("message type {msg_type:#04x} with the channel bit {got}, which it never has")]
    ChannelBit {
        /// The message type.
        msg_type: u8,
        /// The bit in the header.
        got: bool,
    },
}

/// Why a message could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field is longer than its type allows.
    #[error("field {field}: {len} bytes or items, more than {kind} holds ({max})")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// The type.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The most the type holds.
        max: usize,
    },
    /// The payload is longer than a frame can say (2^24 − 1 bytes).
    #[error("a payload of {0} bytes does not fit a frame (at most 16,777,215)")]
    PayloadTooLong(usize),
}

/// Reads SV2 fields off a payload, front to back.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// What is left to read.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated {
                needed: n,
                left: self.bytes.len(),
            });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A little-endian unsigned integer of `n` bytes (at most 8).
    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
}

/// Writes SV2 fields, front to back.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// What has been written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Appends raw bytes.
    pub fn put(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn uint(&mut self, value: u64, n: usize) {
        self.bytes.extend_from_slice(&value.to_le_bytes()[..n]);
    }
}

/// An SV2 data type: how a Rust value of type `T` is read and written.
pub trait Kind<T> {
    /// The type's name in the specification.
    const NAME: &'static str;
    /// Reads one value.
    fn read(r: &mut Reader<'_>) -> Result<T, DecodeError>;
    /// Writes `value`; `field` names it in an error.
    fn write(value: &T, w: &mut Writer, field: &'static str) -> Result<(), EncodeError>;
}

macro_rules! uint_kind {
    ($(#[$m:meta])* $name:ident, $t:ty, $n:expr, $spec:expr) => {
        $(#[$m])*
        #[derive(Debug)]
        pub enum $name {}
        impl Kind<$t> for $name {
            const NAME: &'static str = $spec;
            fn read(r: &mut Reader<'_>) -> Result<$t, DecodeError> {
                // The width read is the width of the type: the cast cannot truncate.
                Ok(r.uint($n)? as $t)
            }
            fn write(value: &$t, w: &mut Writer, _: &'static str) -> Result<(), EncodeError> {
                w.uint(u64::from(*value), $n);
                Ok(())
            }
        }
    };
}

uint_kind!(/// `U8`.
    U8, u8, 1, "U8");
uint_kind!(/// `U16`, little-endian.
    U16, u16, 2, "U16");
uint_kind!(/// `U32`, little-endian.
    U32, u32, 4, "U32");
uint_kind!(/// `U64`, little-endian.
    U64, u64, 8, "U64");

/// `U24`, little-endian, in a `u32` (values above 2^24 − 1 are refused when written).
#[derive(Debug)]
pub enum U24 {}

impl Kind<u32> for U24 {
    const NAME: &'static str = "U24";
    fn read(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
        Ok(r.uint(3)? as u32)
    }
    fn write(value: &u32, w: &mut Writer, field: &'static str) -> Result<(), EncodeError> {
        if *value > 0x00ff_ffff {
            return Err(EncodeError::TooLong {
                field,
                kind: "U24",
                len: *value as usize,
                max: 0x00ff_ffff,
            });
        }
        w.uint(u64::from(*value), 3);
        Ok(())
    }
}

/// `BOOL`: one byte of which only bit 0 counts.
#[derive(Debug)]
pub enum Bool {}

impl Kind<bool> for Bool {
    const NAME: &'static str = "BOOL";
    fn read(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
        Ok(r.uint(1)? & 1 == 1)
    }
    fn write(value: &bool, w: &mut Writer, _: &'static str) -> Result<(), EncodeError> {
        w.put(&[u8::from(*value)]);
        Ok(())
    }
}

/// `F32`: IEEE 754 single precision, little-endian.
#[derive(Debug)]
pub enum F32 {}

impl Kind<f32> for F32 {
    const NAME: &'static str = "F32";
    fn read(r: &mut Reader<'_>) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(r.array()?))
    }
    fn write(value: &f32, w: &mut Writer, _: &'static str) -> Result<(), EncodeError> {
        w.put(&value.to_le_bytes());
        Ok(())
    }
}

/// `U256`: 32 bytes, as they are on the wire (a little-endian number: a target's least
/// significant byte first).
#[derive(Debug)]
pub enum U256 {}

impl Kind<[u8; 32]> for U256 {
    const NAME: &'static str = "U256";
    fn read(r: &mut Reader<'_>) -> Result<[u8; 32], DecodeError> {
        r.array()
    }
    fn write(value: &[u8; 32], w: &mut Writer, _: &'static str) -> Result<(), EncodeError> {
        w.put(value);
        Ok(())
    }
}

fn length_of(
    len: usize,
    max: usize,
    kind: &'static str,
    field: &'static str,
) -> Result<u64, EncodeError> {
    if len > max {
        return Err(EncodeError::TooLong {
            field,
            kind,
            len,
            max,
        });
    }
    Ok(len as u64)
}

macro_rules! bytes_kind {
    ($(#[$m:meta])* $name:ident, $prefix:expr, $max:expr, $spec:expr) => {
        $(#[$m])*
        #[derive(Debug)]
        pub enum $name {}
        impl Kind<Vec<u8>> for $name {
            const NAME: &'static str = $spec;
            fn read(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
                let len = r.uint($prefix)? as usize;
                if len > $max {
                    return Err(DecodeError::TooLong { kind: $spec, len, max: $max });
                }
                Ok(r.take(len)?.to_vec())
            }
            fn write(value: &Vec<u8>, w: &mut Writer, field: &'static str) -> Result<(), EncodeError> {
                let len = length_of(value.len(), $max, $spec, field)?;
                w.uint(len, $prefix);
                w.put(value);
                Ok(())
            }
        }
    };
}

bytes_kind!(/// `B0_32`: up to 32 bytes, one length byte.
    B032, 1, 32, "B0_32");
bytes_kind!(/// `B0_255`: up to 255 bytes, one length byte.
    B0255, 1, 255, "B0_255");
bytes_kind!(/// `B0_64K`: up to 65,535 bytes, two length bytes.
    B064K, 2, 0xffff, "B0_64K");
bytes_kind!(/// `B0_16M`: up to 16,777,215 bytes, three length bytes.
    B016M, 3, 0x00ff_ffff, "B0_16M");

/// `STR0_255`: UTF-8 text of up to 255 bytes, one length byte.
#[derive(Debug)]
pub enum Str0255 {}

impl Kind<String> for Str0255 {
    const NAME: &'static str = "STR0_255";
    fn read(r: &mut Reader<'_>) -> Result<String, DecodeError> {
        let len = r.uint(1)? as usize;
        let bytes = r.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::NotUtf8)
    }
    fn write(value: &String, w: &mut Writer, field: &'static str) -> Result<(), EncodeError> {
        let len = length_of(value.len(), 255, "STR0_255", field)?;
        w.uint(len, 1);
        w.put(value.as_bytes());
        Ok(())
    }
}

/// `SEQ0_255[T]`: up to 255 values of kind `K`, one count byte.
#[derive(Debug)]
pub struct Seq0255<K>(PhantomData<K>);

/// `SEQ0_64K[T]`: up to 65,535 values of kind `K`, two count bytes.
#[derive(Debug)]
pub struct Seq064K<K>(PhantomData<K>);

/// Reads `count` values, each at least one byte long, so a count larger than what is left
/// fails before anything is allocated for it.
fn read_values<T, K: Kind<T>>(r: &mut Reader<'_>, count: usize) -> Result<Vec<T>, DecodeError> {
    if count > r.rest().len() {
        return Err(DecodeError::Truncated {
            needed: count,
            left: r.rest().len(),
        });
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(K::read(r)?);
    }
    Ok(out)
}

fn write_values<T, K: Kind<T>>(
    values: &[T],
    w: &mut Writer,
    field: &'static str,
) -> Result<(), EncodeError> {
    values.iter().try_for_each(|v| K::write(v, w, field))
}

impl<T, K: Kind<T>> Kind<Vec<T>> for Seq0255<K> {
    const NAME: &'static str = "SEQ0_255";
    fn read(r: &mut Reader<'_>) -> Result<Vec<T>, DecodeError> {
        let count = r.uint(1)? as usize;
        read_values::<T, K>(r, count)
    }
    fn write(values: &Vec<T>, w: &mut Writer, field: &'static str) -> Result<(), EncodeError> {
        let count = length_of(values.len(), 255, "SEQ0_255", field)?;
        w.uint(count, 1);
        write_values::<T, K>(values, w, field)
    }
}

impl<T, K: Kind<T>> Kind<Vec<T>> for Seq064K<K> {
    const NAME: &'static str = "SEQ0_64K";
    fn read(r: &mut Reader<'_>) -> Result<Vec<T>, DecodeError> {
        let count = r.uint(2)? as usize;
        read_values::<T, K>(r, count)
    }
    fn write(values: &Vec<T>, w: &mut Writer, field: &'static str) -> Result<(), EncodeError> {
        let count = length_of(values.len(), 0xffff, "SEQ0_64K", field)?;
        w.uint(count, 2);
        write_values::<T, K>(values, w, field)
    }
}

/// `OPTION[T]`: a sequence of at most one value of kind `K` (one count byte).
#[derive(Debug)]
pub struct Opt<K>(PhantomData<K>);

impl<T, K: Kind<T>> Kind<Option<T>> for Opt<K> {
    const NAME: &'static str = "OPTION";
    fn read(r: &mut Reader<'_>) -> Result<Option<T>, DecodeError> {
        match r.uint(1)? {
            0 => Ok(None),
            1 => K::read(r).map(Some),
            n => Err(DecodeError::OptionTooLong(n as usize)),
        }
    }
    fn write(value: &Option<T>, w: &mut Writer, field: &'static str) -> Result<(), EncodeError> {
        match value {
            None => w.put(&[0]),
            Some(v) => {
                w.put(&[1]);
                K::write(v, w, field)?;
            }
        }
        Ok(())
    }
}

/// A TLV field appended to a message by an extension: the extension, the field's type in
/// it, and the value. Written as the reference implementation writes them (little-endian
/// extension type and length), which is what peers parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The extension that defines the field.
    pub extension_type: u16,
    /// The field's type within the extension.
    pub field_type: u8,
    /// The value (at most 65,535 bytes).
    pub value: Vec<u8>,
}

impl Tlv {
    /// Reads TLV fields until `bytes` ends.
    pub fn read_all(bytes: &[u8]) -> Result<Vec<Tlv>, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while !r.rest().is_empty() {
            let extension_type = U16::read(&mut r)?;
            let field_type = U8::read(&mut r)?;
            let len = U16::read(&mut r)?;
            let value = r.take(usize::from(len))?.to_vec();
            out.push(Tlv {
                extension_type,
                field_type,
                value,
            });
        }
        Ok(out)
    }

    /// Appends this field to `w`.
    pub fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        let len = length_of(self.value.len(), 0xffff, "TLV", "value")?;
        U16::write(&self.extension_type, w, "extension_type")?;
        U8::write(&self.field_type, w, "field_type")?;
        w.uint(len, 2);
        w.put(&self.value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_before_anything_is_taken() {
        // A SEQ0_64K of 65,535 U256s announced in a 3-byte payload.
        let mut r = Reader::new(&[0xff, 0xff, 0x00]);
        assert!(matches!(
            Seq064K::<U256>::read(&mut r),
            Err(DecodeError::Truncated { .. })
        ));
        let mut r = Reader::new(&[33]);
        assert_eq!(
            B032::read(&mut r),
            Err(DecodeError::TooLong {
                kind: "B0_32",
                len: 33,
                max: 32
            })
        );
        let mut r = Reader::new(&[2, 0, 0]);
        assert_eq!(Opt::<U32>::read(&mut r), Err(DecodeError::OptionTooLong(2)));
        let mut r = Reader::new(&[2, 0xc3, 0x28]);
        assert_eq!(Str0255::read(&mut r), Err(DecodeError::NotUtf8));
        // Only bit 0 of a BOOL counts.
        assert_eq!(Bool::read(&mut Reader::new(&[0xfe])), Ok(false));
        assert_eq!(Bool::read(&mut Reader::new(&[0x03])), Ok(true));
    }

    #[test]
    fn tlv_fields_are_little_endian_as_the_reference_writes_them() {
        let tlv = Tlv {
            extension_type: 2,
            field_type: 1,
            value: vec![0x0a],
        };
        let mut w = Writer::new();
        tlv.write(&mut w).expect("fits");
        assert_eq!(w.into_bytes(), [0x02, 0x00, 0x01, 0x01, 0x00, 0x0a]);
        assert_eq!(
            Tlv::read_all(&[0x02, 0x00, 0x01, 0x01, 0x00, 0x0a]),
            Ok(vec![tlv])
        );
    }

    #[test]
    fn writing_refuses_what_the_type_cannot_hold() {
        let mut w = Writer::new();
        assert!(matches!(
            B032::write(&vec![0; 33], &mut w, "extranonce"),
            Err(EncodeError::TooLong {
                field: "extranonce",
                max: 32,
                ..
            })
        ));
        assert!(U24::write(&0x0100_0000, &mut w, "length").is_err());
    }

    /// Writes `value` as `K`, reads it back from exactly those bytes, and checks that no
    /// shorter prefix of them reads.
    fn round_trip<T: PartialEq + std::fmt::Debug, K: Kind<T>>(value: &T) -> Vec<u8> {
        let mut w = Writer::new();
        K::write(value, &mut w, "field").expect("fits");
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(&K::read(&mut r).expect("reads"), value, "{}", K::NAME);
        assert!(r.rest().is_empty(), "{} reads all it wrote", K::NAME);
        for cut in 0..bytes.len() {
            assert!(
                K::read(&mut Reader::new(&bytes[..cut])).is_err(),
                "{} read from {cut} of {} bytes",
                K::NAME,
                bytes.len()
            );
        }
        bytes
    }

    proptest::proptest! {
        #[test]
        fn every_type_round_trips_and_refuses_a_cut(
            a in proptest::num::u8::ANY,
            b in proptest::num::u16::ANY,
            c in 0u32..0x0100_0000,
            d in proptest::num::u32::ANY,
            e in proptest::num::u64::ANY,
            f in proptest::num::f32::ANY,
            flag in proptest::bool::ANY,
            hash in proptest::array::uniform32(proptest::num::u8::ANY),
            short in proptest::collection::vec(proptest::num::u8::ANY, 0..=32),
            medium in proptest::collection::vec(proptest::num::u8::ANY, 0..=255),
            long in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
            text in "[a-zA-Z0-9 ./:_-]{0,255}",
            hashes in proptest::collection::vec(proptest::array::uniform32(proptest::num::u8::ANY), 0..8),
            numbers in proptest::collection::vec(proptest::num::u32::ANY, 0..300),
            maybe in proptest::option::of(proptest::num::u32::ANY),
        ) {
            round_trip::<u8, U8>(&a);
            proptest::prop_assert_eq!(round_trip::<u16, U16>(&b), b.to_le_bytes().to_vec());
            proptest::prop_assert_eq!(round_trip::<u32, U24>(&c), c.to_le_bytes()[..3].to_vec());
            proptest::prop_assert_eq!(round_trip::<u32, U32>(&d), d.to_le_bytes().to_vec());
            proptest::prop_assert_eq!(round_trip::<u64, U64>(&e), e.to_le_bytes().to_vec());
            // A NaN equals nothing: F32 is checked by its bits.
            let mut w = Writer::new();
            F32::write(&f, &mut w, "field").expect("fits");
            let bytes = w.into_bytes();
            proptest::prop_assert_eq!(
                F32::read(&mut Reader::new(&bytes)).expect("reads").to_bits(),
                f.to_bits()
            );
            proptest::prop_assert_eq!(round_trip::<bool, Bool>(&flag), vec![u8::from(flag)]);
            round_trip::<[u8; 32], U256>(&hash);
            proptest::prop_assert_eq!(round_trip::<Vec<u8>, B032>(&short).len(), 1 + short.len());
            proptest::prop_assert_eq!(round_trip::<Vec<u8>, B0255>(&medium).len(), 1 + medium.len());
            proptest::prop_assert_eq!(round_trip::<Vec<u8>, B064K>(&long).len(), 2 + long.len());
            proptest::prop_assert_eq!(round_trip::<Vec<u8>, B016M>(&long).len(), 3 + long.len());
            round_trip::<String, Str0255>(&text.to_owned());
            round_trip::<Vec<[u8; 32]>, Seq0255<U256>>(&hashes);
            proptest::prop_assert_eq!(
                round_trip::<Vec<u32>, Seq064K<U32>>(&numbers).len(),
                2 + 4 * numbers.len()
            );
            round_trip::<Option<u32>, Opt<U32>>(&maybe);
        }
    }
}
