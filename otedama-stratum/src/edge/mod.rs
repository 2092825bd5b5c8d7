//! A server's edge, before any session: the PROXY protocol header a load balancer sends
//! ([`parse_proxy_header`]), and the limits that keep abuse out ([`Guard`]: new connections
//! per address, bans that expire and can be stored across restarts, and the
//! [`TokenBucket`] the per-connection message limit uses). Sans-IO like the sessions: the
//! tokio server drives them, and so can any other.

mod guard;
mod proxy;

pub use guard::{EdgeConfig, EdgeRefusal, Guard, Rate, TokenBucket};
pub use proxy::{parse_proxy_header, ProxyError, ProxyParse, MAX_PROXY_HEADER};
