//! SV2 framing: the 6-byte header (extension type with the channel bit, message type,
//! 24-bit payload length) and a bounded decoder of plaintext frames.

use super::types::EncodeError;

/// The channel bit of the extension type: set when the payload starts with a channel id.
pub const CHANNEL_BIT: u16 = 0x8000;

/// The longest payload a header can announce.
pub const MAX_PAYLOAD: usize = 0x00ff_ffff;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The extension the message belongs to (0: the core protocols), channel bit cleared.
    pub extension_type: u16,
    /// Whether the message is meant for a channel (its payload starts with the channel id).
    pub channel_msg: bool,
    /// The message type.
    pub msg_type: u8,
    /// The payload's length in bytes.
    pub length: u32,
}

impl Header {
    /// A header's size on the wire.
    pub const SIZE: usize = 6;

    /// Reads a header.
    pub fn from_bytes(bytes: [u8; 6]) -> Header {
        let ext = u16::from_le_bytes([bytes[0], bytes[1]]);
        Header {
            extension_type: ext & !CHANNEL_BIT,
            channel_msg: ext & CHANNEL_BIT != 0,
            msg_type: bytes[2],
            length: u32::from_le_bytes([bytes[3], bytes[4], bytes[5], 0]),
        }
    }

    /// The header's bytes (a length above 2^24 − 1 keeps its low 24 bits: build headers
    /// with [`Header::for_payload`]).
    pub fn to_bytes(&self) -> [u8; 6] {
        let ext =
            (self.extension_type & !CHANNEL_BIT) | if self.channel_msg { CHANNEL_BIT } else { 0 };
        let ext = ext.to_le_bytes();
        let len = self.length.to_le_bytes();
        [ext[0], ext[1], self.msg_type, len[0], len[1], len[2]]
    }

    /// The header of a payload of `len` bytes, refused when a frame cannot carry it.
    pub fn for_payload(
        extension_type: u16,
        channel_msg: bool,
        msg_type: u8,
        len: usize,
    ) -> Result<Header, EncodeError> {
        if len > MAX_PAYLOAD {
            return Err(EncodeError::PayloadTooLong(len));
        }
        Ok(Header {
            extension_type,
            channel_msg,
            msg_type,
            length: len as u32,
        })
    }
}

/// One frame: its header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The payload, `header.length` bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The frame's bytes: header, then payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Header::SIZE + self.payload.len());
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Why a stream of frames cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A header announces a payload longer than this decoder takes.
    #[error("a frame announces {length} payload bytes, more than the {limit} taken")]
    TooLong {
        /// The announced length.
        length: usize,
        /// The decoder's limit.
        limit: usize,
    },
}

/// Cuts plaintext bytes into frames. Memory grows only with bytes that arrived, never with
/// an announced length, and a header announcing more than the limit stops the stream.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    limit: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder taking payloads of up to `limit` bytes (at most [`MAX_PAYLOAD`]). A mining
    /// connection needs little (an extended job with a 64 KiB coinbase part is the largest
    /// message); template and job declaration connections carry whole transactions.
    pub fn new(limit: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            limit: limit.min(MAX_PAYLOAD),
            failed: None,
        }
    }

    /// Adds bytes from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `None` until one has arrived; after an error, that error again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(head) = self.buf.first_chunk::<6>() else {
            return Ok(None);
        };
        let header = Header::from_bytes(*head);
        let length = header.length as usize;
        if length > self.limit {
            let e = FrameError::TooLong {
                length,
                limit: self.limit,
            };
            self.failed = Some(e.clone());
            self.buf = Vec::new();
            return Err(e);
        }
        if self.buf.len() < Header::SIZE + length {
            return Ok(None);
        }
        let payload = self.buf[Header::SIZE..Header::SIZE + length].to_vec();
        self.buf.drain(..Header::SIZE + length);
        Ok(Some(Frame { header, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_bit_is_the_top_bit_of_the_extension_type() {
        let h = Header {
            extension_type: 0,
            channel_msg: true,
            msg_type: 0x1a,
            length: 24,
        };
        assert_eq!(h.to_bytes(), [0x00, 0x80, 0x1a, 24, 0, 0]);
        assert_eq!(Header::from_bytes(h.to_bytes()), h);
        assert!(Header::for_payload(0, false, 0, MAX_PAYLOAD + 1).is_err());
    }

    #[test]
    fn frames_arrive_whole_whatever_the_cuts_and_a_long_one_stops_the_stream() {
        let frames: Vec<Frame> = (0..3u8)
            .map(|i| Frame {
                header: Header::for_payload(0, false, i, usize::from(i) * 5).expect("fits"),
                payload: vec![i; usize::from(i) * 5],
            })
            .collect();
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::to_bytes).collect();
        let mut d = FrameDecoder::new(1024);
        let mut got = Vec::new();
        for b in &bytes {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().expect("fine") {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(d.buffered(), 0);

        let mut d = FrameDecoder::new(1024);
        d.push(&[0, 0, 0, 0xff, 0xff, 0xff]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLong {
                length: MAX_PAYLOAD,
                limit: 1024
            })
        );
        d.push(&[0; 16]);
        assert!(d.next_frame().is_err(), "the stream stays failed");
    }
}
