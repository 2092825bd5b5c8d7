//! `GET /api/ws`: the pool's events as JSON text messages, and its stats every few seconds.
//!
//! Every client has its own subscription to the pool's feed. A client that reads too
//! slowly falls behind on its subscription or stalls a send; either way it is closed, so
//! no client ever holds up the pool or the other clients.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::api::{ApiError, ApiState, StatsBody};
use crate::service::PoolEvent;

/// How often a stats message goes out.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// How long one send may take before the client counts as stalled.
const SEND_PATIENCE: Duration = Duration::from_secs(5);
/// Events a client may have queued across pools before it counts as too slow.
const CLIENT_QUEUE: usize = 1024;
/// The largest message a client may send (it has nothing to say; pings are small).
const MAX_INCOMING: usize = 4096;
/// The close code for a client cut off for reading too slowly (1008: policy violation).
const TOO_SLOW: u16 = 1008;

pub(super) async fn upgrade(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    state.authorize(&headers, false)?;
    // A page of another site must not read the feed with the operator's browser.
    super::api::same_origin(&headers)?;
    let permit = Arc::clone(&state.ws_clients)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "too many WebSocket clients".into(),
            )
        })?;
    Ok(ws
        .max_message_size(MAX_INCOMING)
        .on_upgrade(move |socket| async move {
            client(socket, state).await;
            drop(permit);
        }))
}

/// An event as its JSON message.
pub fn event_json(event: &PoolEvent) -> Value {
    match event {
        PoolEvent::Share {
            worker,
            outcome,
            difficulty,
            unix_ms,
        } => {
            let accepted = *outcome == crate::activity::Outcome::Accepted;
            json!({
                "type": "share",
                "worker": worker,
                "accepted": accepted,
                "reason": (!accepted).then(|| outcome.as_str()),
                "difficulty": difficulty,
                "time_unix_ms": unix_ms,
            })
        }
        PoolEvent::Job { height, unix_ms } => {
            json!({"type": "job", "height": height, "time_unix_ms": unix_ms})
        }
        PoolEvent::Block {
            height,
            hash,
            finder,
            accepted,
            unix_ms,
        } => json!({
            "type": "block",
            "height": height,
            "hash": hash,
            "finder": finder,
            "accepted": accepted,
            "time_unix_ms": unix_ms,
        }),
        PoolEvent::WorkerConnected {
            worker,
            peer,
            unix_ms,
        } => json!({
            "type": "worker_connected",
            "worker": worker,
            "peer": peer.to_string(),
            "time_unix_ms": unix_ms,
        }),
        PoolEvent::WorkerDisconnected {
            worker,
            peer,
            unix_ms,
        } => json!({
            "type": "worker_disconnected",
            "worker": worker,
            "peer": peer.to_string(),
            "time_unix_ms": unix_ms,
        }),
    }
}

/// Why a client's loop ended.
enum End {
    /// The client closed, or its connection failed.
    Gone,
    /// It read too slowly.
    TooSlow,
    /// The pools stopped.
    Stopped,
}

async fn client(mut socket: WebSocket, state: ApiState) {
    // One forwarder per pool merges every pool's feed into this client's queue; a full
    // queue or a lagging subscription marks the client too slow.
    let (tx, mut rx) = mpsc::channel::<Result<Value, ()>>(CLIENT_QUEUE);
    let mut forwarders = tokio::task::JoinSet::new();
    for served in state.pools.iter() {
        let mut feed = served.view.subscribe();
        let tx = tx.clone();
        forwarders.spawn(async move {
            loop {
                let item = match feed.recv().await {
                    Ok(event) => Ok(event_json(&event)),
                    Err(broadcast::error::RecvError::Lagged(_)) => Err(()),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let lagged = item.is_err();
                if tx.try_send(item).is_err() || lagged {
                    let _ = tx.try_send(Err(()));
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut stats = tokio::time::interval(STATS_EVERY);
    let end = loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(Ok(json)) => {
                    if !send(&mut socket, &json).await {
                        break End::TooSlow;
                    }
                }
                Some(Err(())) => break End::TooSlow,
                None => break End::Stopped,
            },
            _ = stats.tick() => {
                let Some(main) = state.pools.first() else { break End::Stopped };
                if main.view.is_stopping() {
                    break End::Stopped;
                }
                let mut body = serde_json::to_value(StatsBody::from(&main.view.snapshot()))
                    .unwrap_or(Value::Null);
                if let Value::Object(map) = &mut body {
                    map.insert("type".into(), "stats".into());
                }
                if !send(&mut socket, &body).await {
                    break End::TooSlow;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break End::Gone,
                // Pings are answered by the library; anything else from the client is ignored.
                Some(Ok(_)) => {}
            },
        }
    };
    forwarders.abort_all();
    let frame = match end {
        End::Gone => return,
        End::TooSlow => CloseFrame {
            code: TOO_SLOW,
            reason: "reading too slowly: reconnect".into(),
        },
        End::Stopped => CloseFrame {
            code: 1001,
            reason: "the pool is stopping".into(),
        },
    };
    let _ = tokio::time::timeout(SEND_PATIENCE, socket.send(Message::Close(Some(frame)))).await;
}

/// Sends one message; `false` when the client is gone or stalled.
async fn send(socket: &mut WebSocket, json: &Value) -> bool {
    let text = json.to_string();
    matches!(
        tokio::time::timeout(SEND_PATIENCE, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}
