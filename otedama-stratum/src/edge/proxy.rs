//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer puts in
//! front of a connection it forwards, naming the client's real address, so that per-address
//! limits and bans see the miner and not the balancer.
//!
//! [`parse_proxy_header`] reads the start of a connection, however little of it has arrived,
//! and never looks past [`MAX_PROXY_HEADER`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest header accepted: a version 1 line is at most 107 bytes, a version 2 header
/// 16 bytes plus its addresses and TLVs, which load balancers keep to a few hundred bytes.
pub const MAX_PROXY_HEADER: usize = 16 + 2048;

/// Version 2's signature: the first 12 bytes of every version 2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 line, CRLF included.
const V1_MAX: usize = 107;

/// What the start of a connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyParse {
    /// Not enough bytes yet to tell; read more.
    Incomplete,
    /// A whole header, `length` bytes long; the connection's own bytes follow it.
    Header {
        /// The client's address, or `None` when the balancer speaks for itself (version 2
        /// `LOCAL`, a health check) or does not know it (version 1 `UNKNOWN`, a family other
        /// than TCP over IPv4 or IPv6): the connection's own peer address stands then.
        source: Option<SocketAddr>,
        /// The header's length in bytes.
        length: usize,
    },
}

/// Why the start of a connection is not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The connection does not open with either version's signature.
    #[error("the connection does not start with a PROXY protocol header")]
    NotProxy,
    /// A version 1 line that does not read.
    #[error("bad PROXY v1 header: {0}")]
    BadV1(&'static str),
    /// A version 2 header that does not read.
    #[error("bad PROXY v2 header: {0}")]
    BadV2(&'static str),
    /// A header longer than [`MAX_PROXY_HEADER`].
    #[error("PROXY header longer than {MAX_PROXY_HEADER} bytes")]
    TooLong,
}

/// Reads the PROXY header at the start of `data` (version 1 or 2).
pub fn parse_proxy_header(data: &[u8]) -> Result<ProxyParse, ProxyError> {
    if is_prefix(data, &V2_SIGNATURE) {
        if data.len() < V2_SIGNATURE.len() {
            return Ok(ProxyParse::Incomplete);
        }
        return parse_v2(data);
    }
    if is_prefix(data, b"PROXY ") {
        if data.len() < 6 {
            return Ok(ProxyParse::Incomplete);
        }
        return parse_v1(data);
    }
    Err(ProxyError::NotProxy)
}

/// Whether `data` and `prefix` agree on their common length.
fn is_prefix(data: &[u8], prefix: &[u8]) -> bool {
    let n = data.len().min(prefix.len());
    data.get(..n) == prefix.get(..n)
}

fn parse_v1(data: &[u8]) -> Result<ProxyParse, ProxyError> {
    let window = data.get(..data.len().min(V1_MAX)).unwrap_or_default();
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if data.len() < V1_MAX {
            Ok(ProxyParse::Incomplete)
        } else {
            Err(ProxyError::BadV1("no CRLF within 107 bytes"))
        };
    };
    let line = std::str::from_utf8(window.get(..end).unwrap_or_default())
        .map_err(|_| ProxyError::BadV1("not ASCII"))?;
    let length = end + 2;
    let mut fields = line.split(' ');
    // "PROXY" was checked by the caller.
    fields.next();
    let family = fields.next().ok_or(ProxyError::BadV1("no protocol"))?;
    match family {
        // The balancer does not know the client: the rest of the line is to be ignored.
        "UNKNOWN" => {
            return Ok(ProxyParse::Header {
                source: None,
                length,
            })
        }
        "TCP4" | "TCP6" => {}
        _ => return Err(ProxyError::BadV1("protocol is not TCP4, TCP6 or UNKNOWN")),
    }
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyError::BadV1("not four address fields"));
    };
    let parse_ip = |text: &str| -> Result<IpAddr, ProxyError> {
        let ip: IpAddr = text.parse().map_err(|_| ProxyError::BadV1("bad address"))?;
        match (family, ip) {
            ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
            _ => Err(ProxyError::BadV1("address of the other family")),
        }
    };
    let parse_port = |text: &str| -> Result<u16, ProxyError> {
        // The specification forbids leading zeros and signs; `u16::from_str` takes a '+'.
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProxyError::BadV1("bad port"));
        }
        if text.len() > 1 && text.starts_with('0') {
            return Err(ProxyError::BadV1("port with a leading zero"));
        }
        text.parse().map_err(|_| ProxyError::BadV1("bad port"))
    };
    let source = SocketAddr::new(parse_ip(src)?, parse_port(sport)?);
    parse_ip(dst)?;
    parse_port(dport)?;
    Ok(ProxyParse::Header {
        source: Some(source),
        length,
    })
}

fn parse_v2(data: &[u8]) -> Result<ProxyParse, ProxyError> {
    let Some(&[ver_cmd, family, len_hi, len_lo]) = data.get(12..16) else {
        return Ok(ProxyParse::Incomplete);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::BadV2("version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::BadV2("command is neither LOCAL nor PROXY")),
    };
    let body_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let length = 16 + body_len;
    if length > MAX_PROXY_HEADER {
        return Err(ProxyError::TooLong);
    }
    let Some(body) = data.get(16..length) else {
        return Ok(ProxyParse::Incomplete);
    };
    if local {
        return Ok(ProxyParse::Header {
            source: None,
            length,
        });
    }
    let source = match family {
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 => {
            let a = body
                .get(..12)
                .ok_or(ProxyError::BadV2("IPv4 addresses cut short"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([a[8], a[9]]),
            ))
        }
        // TCP over IPv6.
        0x21 => {
            let a = body
                .get(..36)
                .ok_or(ProxyError::BadV2("IPv6 addresses cut short"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        // UNSPEC, UDP, UNIX sockets: the connection's own address stands.
        _ => None,
    };
    Ok(ProxyParse::Header { source, length })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn version_1_names_the_client() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 3333\r\n{\"id\":1}";
        assert_eq!(
            parse_proxy_header(line),
            Ok(ProxyParse::Header {
                source: Some("192.0.2.7:56324".parse().expect("addr")),
                length: 46,
            })
        );
        let six = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 3333\r\n";
        assert_eq!(
            parse_proxy_header(six),
            Ok(ProxyParse::Header {
                source: Some("[2001:db8::7]:40000".parse().expect("addr")),
                length: six.len(),
            })
        );
        assert_eq!(
            parse_proxy_header(b"PROXY UNKNOWN whatever\r\n"),
            Ok(ProxyParse::Header {
                source: None,
                length: 24
            })
        );
    }

    #[test]
    fn version_1_errors() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",
            b"PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 70000 2\r\n",
        ] {
            assert!(
                matches!(parse_proxy_header(bad), Err(ProxyError::BadV1(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(matches!(
            parse_proxy_header(&endless),
            Err(ProxyError::BadV1(_))
        ));
    }

    #[test]
    fn version_2_names_the_client() {
        let mut body = vec![192, 0, 2, 7, 198, 51, 100, 1];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&3333u16.to_be_bytes());
        // A TLV after the addresses is skipped.
        body.extend_from_slice(&[0x04, 0x00, 0x01, 0xaa]);
        let header = v2(1, 0x11, &body);
        let mut stream = header.clone();
        stream.extend_from_slice(b"{\"id\":1}\n");
        assert_eq!(
            parse_proxy_header(&stream),
            Ok(ProxyParse::Header {
                source: Some("192.0.2.7:56324".parse().expect("addr")),
                length: header.len(),
            })
        );
        let mut six = [0u8; 36];
        six[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().expect("ip").octets());
        six[32..34].copy_from_slice(&40000u16.to_be_bytes());
        assert_eq!(
            parse_proxy_header(&v2(1, 0x21, &six)),
            Ok(ProxyParse::Header {
                source: Some("[2001:db8::7]:40000".parse().expect("addr")),
                length: 52,
            })
        );
        // A health check from the balancer itself.
        assert_eq!(
            parse_proxy_header(&v2(0, 0x00, &[])),
            Ok(ProxyParse::Header {
                source: None,
                length: 16
            })
        );
    }

    #[test]
    fn version_2_errors() {
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert!(matches!(
            parse_proxy_header(&bad_version),
            Err(ProxyError::BadV2(_))
        ));
        assert!(matches!(
            parse_proxy_header(&v2(1, 0x11, &[0; 8])),
            Err(ProxyError::BadV2(_))
        ));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse_proxy_header(&huge), Err(ProxyError::TooLong));
        assert_eq!(
            parse_proxy_header(b"{\"id\":1,\"method\":\"mining.subscribe\"}"),
            Err(ProxyError::NotProxy)
        );
    }

    proptest! {
        /// A header arriving a byte at a time is incomplete until its last byte, then read
        /// the same as all at once.
        #[test]
        fn any_header_reads_the_same_however_it_arrives(
            ip in any::<[u8; 4]>(),
            port in any::<u16>(),
            v1 in any::<bool>(),
            tail in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port);
            let header = if v1 {
                format!("PROXY TCP4 {} 10.0.0.1 {port} 3333\r\n", source.ip()).into_bytes()
            } else {
                let mut body = ip.to_vec();
                body.extend_from_slice(&[10, 0, 0, 1]);
                body.extend_from_slice(&port.to_be_bytes());
                body.extend_from_slice(&3333u16.to_be_bytes());
                v2(1, 0x11, &body)
            };
            for cut in 0..header.len() {
                prop_assert_eq!(parse_proxy_header(&header[..cut]), Ok(ProxyParse::Incomplete));
            }
            let mut all = header.clone();
            all.extend_from_slice(&tail);
            prop_assert_eq!(
                parse_proxy_header(&all),
                Ok(ProxyParse::Header { source: Some(source), length: header.len() })
            );
        }

        /// Whatever the bytes, the parser answers without panicking and never claims more
        /// bytes than it was given or than a header may have.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(ProxyParse::Header { length, .. }) = parse_proxy_header(&data) {
                prop_assert!(length <= data.len() && length <= MAX_PROXY_HEADER);
            }
        }
    }
}
