//! The [`Proxy`] on tokio: one upstream connection (any [`MinerProtocol`] with v1 events, a
//! Stratum V2 extended channel in the translator's case) and one Stratum v1 [`Server`] for
//! the downstream miners.
//!
//! [`run_proxy`] connects upstream, waits for the channel and its first job, binds the
//! downstream port with the extranonce split the channel allows, and then moves jobs down
//! and shares up until the upstream ends or `shutdown` completes. When the upstream ends,
//! every downstream connection is closed (their extranonces came from the channel that is
//! gone) and `run_proxy` returns; the caller connects again.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::client::{ClientConfig, ClientError, ProtocolClient};
use super::server::{Connection, ProtocolServerEvent, Server, ServerConfig};
use crate::proxy::{Proxy, ProxyConfig, ProxyEvent, ProxyStats};
use crate::{JobAnnouncement, MinerEvent, MinerProtocol, MinerShare, ShareToken};

/// Settings of [`run_proxy`].
#[derive(Debug, Clone)]
pub struct ProxyServerConfig {
    /// The downstream v1 server. Its sessions' extranonce2 size is the split's; their
    /// starting and largest difficulty are capped at the upstream difficulty when the
    /// channel opens, so that no share the upstream would take stays unsubmitted.
    pub downstream: ServerConfig,
    /// The proxy's own settings.
    pub proxy: ProxyConfig,
}

/// What [`run_proxy`] reports while it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyStatus {
    /// The downstream port, once bound.
    pub listening: Option<SocketAddr>,
    /// Downstream miners connected.
    pub miners: usize,
    /// The extranonce2 size downstream miners roll.
    pub extranonce2_size: usize,
    /// The difficulty of the latest upstream job.
    pub upstream_difficulty: f64,
    /// The share counters.
    pub stats: ProxyStats,
    /// The last message the upstream pool sent.
    pub message: Option<String>,
}

/// Why [`run_proxy`] stopped before its shutdown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The upstream connection could not be made or failed.
    #[error("upstream: {0}")]
    Upstream(#[from] ClientError),
    /// The upstream ended the channel, or made it unusable.
    #[error("{0}")]
    Ended(String),
    /// The downstream port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A downstream share's miner, until its verdict.
type Tag = (Connection, ShareToken);

struct Downstream {
    events: mpsc::Receiver<ProtocolServerEvent<crate::PoolSession>>,
    jobs: watch::Sender<Option<Arc<JobAnnouncement>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Downstream {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        self.task.await.ok();
    }
}

/// Runs a proxy from `listen` (v1 miners) to the pool at `upstream` (its URL, spoken with
/// the dialect of `U`) until `shutdown` completes (`Ok`) or the upstream ends (`Err`).
/// `status` is kept current.
pub async fn run_proxy<U>(
    upstream: &str,
    client: ClientConfig<U::Config>,
    listen: &str,
    config: ProxyServerConfig,
    status: watch::Sender<ProxyStatus>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError>
where
    U: MinerProtocol<Event = MinerEvent, Share = MinerShare>,
{
    let mut client = ProtocolClient::<U>::connect(upstream, client).await?;
    let mut proxy: Proxy<Tag> = Proxy::new(config.proxy.clone());
    let mut downstream: Option<Downstream> = None;
    tokio::pin!(shutdown);
    let result = loop {
        let event = tokio::select! {
            () = &mut shutdown => break Ok(()),
            event = client.next_event() => Some(event),
            event = async {
                match downstream.as_mut() {
                    Some(d) => d.events.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match event {
                    Some(event) => serve(&mut proxy, &mut client, event, &status),
                    None => break Err(ProxyError::Ended("the downstream server stopped".into())),
                }
                None
            }
        };
        match event {
            Some(Ok(event)) => proxy.handle_upstream(event),
            Some(Err(ClientError::Closed)) => {
                proxy.handle_upstream(MinerEvent::Closed(crate::MinerCloseReason::Requested))
            }
            Some(Err(e)) => {
                proxy.handle_upstream(MinerEvent::Closed(crate::MinerCloseReason::Requested));
                drain(&mut proxy, &mut downstream, listen, &config, &status)
                    .await
                    .ok();
                break Err(e.into());
            }
            None => {}
        }
        if let Err(e) = drain(&mut proxy, &mut downstream, listen, &config, &status).await {
            break Err(e);
        }
        status.send_modify(|s| {
            s.stats = proxy.stats();
            s.upstream_difficulty = proxy.upstream_difficulty();
        });
    };
    if let Some(d) = downstream.take() {
        d.stop().await;
    }
    client.close().await;
    result
}

/// Hands what the proxy decided to the downstream side.
async fn drain(
    proxy: &mut Proxy<Tag>,
    downstream: &mut Option<Downstream>,
    listen: &str,
    config: &ProxyServerConfig,
    status: &watch::Sender<ProxyStatus>,
) -> Result<(), ProxyError> {
    while let Some(event) = proxy.poll_event() {
        match event {
            ProxyEvent::Ready(split) => {
                if let Some(old) = downstream.take() {
                    old.stop().await;
                }
                let mut server_config = config.downstream.clone();
                let mut pool = (*server_config.pool).clone();
                pool.extranonce2_size = split.extranonce2_size;
                // Miners roll no bit the upstream's jobs do not allow.
                pool.version_rolling_mask &= split.version_mask;
                let cap = split.upstream_difficulty;
                if cap.is_finite() && cap > 0.0 {
                    pool.vardiff.max_difficulty = pool.vardiff.max_difficulty.min(cap);
                    pool.vardiff.min_difficulty = pool.vardiff.min_difficulty.min(cap);
                    pool.initial_difficulty = pool.initial_difficulty.min(cap);
                }
                server_config.pool = Arc::new(pool);
                let (events_tx, events) = mpsc::channel(1024);
                let (jobs, jobs_rx) = watch::channel(None);
                let server =
                    Server::bind(listen, server_config, split.allocator, events_tx, jobs_rx)
                        .await
                        .map_err(|source| ProxyError::Bind {
                            addr: listen.to_string(),
                            source,
                        })?;
                let addr = server.local_addr().ok();
                let (stop, stopped) = oneshot::channel::<()>();
                let task = tokio::spawn(server.run(async move {
                    stopped.await.ok();
                }));
                *downstream = Some(Downstream {
                    events,
                    jobs,
                    stop: Some(stop),
                    task,
                });
                status.send_modify(|s| {
                    s.listening = addr;
                    s.miners = 0;
                    s.extranonce2_size = split.extranonce2_size;
                    s.upstream_difficulty = split.upstream_difficulty;
                });
            }
            ProxyEvent::Job(job) => {
                if let Some(d) = downstream.as_ref() {
                    d.jobs.send_replace(Some(job));
                }
            }
            ProxyEvent::Verdict {
                tag: (conn, token),
                verdict,
            } => conn.share_result(token, verdict),
            ProxyEvent::Message(text) => status.send_modify(|s| s.message = Some(text)),
            ProxyEvent::Closed(why) => {
                if let Some(d) = downstream.take() {
                    d.stop().await;
                }
                status.send_modify(|s| {
                    s.listening = None;
                    s.miners = 0;
                });
                return Err(ProxyError::Ended(why));
            }
        }
    }
    Ok(())
}

/// Answers one downstream event.
fn serve<U>(
    proxy: &mut Proxy<Tag>,
    client: &mut ProtocolClient<U>,
    event: ProtocolServerEvent<crate::PoolSession>,
    status: &watch::Sender<ProxyStatus>,
) where
    U: MinerProtocol<Event = MinerEvent, Share = MinerShare>,
{
    match event {
        ProtocolServerEvent::Connected { .. } => status.send_modify(|s| s.miners += 1),
        ProtocolServerEvent::Closed { .. } => {
            status.send_modify(|s| s.miners = s.miners.saturating_sub(1))
        }
        // Every downstream worker mines for the channel's identity upstream.
        ProtocolServerEvent::Authorize { conn, token, .. } => conn.authorize_result(token, Ok(())),
        ProtocolServerEvent::Share { conn, share } => {
            let token = share.token;
            proxy.submit(&share, (conn, token), |s| client.submit(s));
        }
        _ => {}
    }
}
