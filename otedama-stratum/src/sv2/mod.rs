//! Stratum V2's binary protocol, sans-IO: the data types ([`types`]), framing ([`frame`]),
//! and every message of the common, mining, job declaration and template distribution
//! protocols ([`message`]).
//!
//! The codec is this crate's own rather than the reference implementation's crates: those
//! change their public types with every major release (borrowed `'decoder` lifetimes,
//! wrapper types per field), pull a derive-macro stack into every embedder's build, and tie
//! an embedder's upgrade to theirs. Here a message is a plain owned struct, reading never
//! allocates from an unchecked length, and the interop tests hold the bytes to the
//! reference implementation's published crates, pinned, as an independent peer.
//!
//! # Example
//!
//! ```
//! use otedama_stratum::sv2::frame::FrameDecoder;
//! use otedama_stratum::sv2::message::{Message, SubmitSharesExtended};
//!
//! let share = Message::from(SubmitSharesExtended {
//!     channel_id: 1,
//!     sequence_number: 7,
//!     job_id: 3,
//!     nonce: 0xdead_beef,
//!     ntime: 1_700_000_000,
//!     version: 0x2000_0000,
//!     extranonce: vec![0; 8],
//! });
//! let bytes = share.to_frame()?.to_bytes();
//! assert_eq!(&bytes[..3], &[0x00, 0x80, 0x1b], "the channel bit, then the type");
//!
//! let mut decoder = FrameDecoder::new(1 << 20);
//! decoder.push(&bytes);
//! let frame = decoder.next_frame()?.expect("a whole frame");
//! let (message, tlvs) = Message::from_frame(&frame)?;
//! assert_eq!(message, share);
//! assert!(tlvs.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod frame;
pub mod message;
#[cfg(feature = "noise")]
pub mod miner;
#[cfg(feature = "noise")]
pub mod noise;
#[cfg(feature = "noise")]
pub mod pool;
#[cfg(feature = "noise")]
pub mod template;
pub mod types;
