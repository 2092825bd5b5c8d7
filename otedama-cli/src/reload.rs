//! Configuration reloads, on SIGHUP or `POST /api/config/reload`: the file is read again,
//! every change is written to the audit log with who asked, and what can change while the pool
//! runs is put in force: the limits at the Stratum ports' edge (`pool.limits`, except
//! `proxy_protocol`, which belongs to each listener). Every other change is named as taking a
//! restart and left as it runs.

use std::sync::{Arc, Mutex};

use otedama_pool::http::{ConfigReload, ReloadBody, ReloadError};
use otedama_pool::service::PoolView;
use serde_json::Value;

use crate::config::Config;

/// Reads the configuration as the command did at start (the file, then its flags).
pub(crate) type Reread = Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// The running pools' configuration, and how to read it again.
pub(crate) struct Reloader {
    reread: Reread,
    running: Mutex<Config>,
    views: Vec<PoolView>,
}

/// Keys whose values may be secrets (a node's password, a database URL with its password):
/// the audit log says they changed, not what to.
fn is_secret(key: &str) -> bool {
    [
        "password", "database", "secret", "cookie", "key", "token", "url",
    ]
    .iter()
    .any(|s| key.rsplit('.').next().is_some_and(|last| last.contains(s)))
}

/// Every leaf that differs between `old` and `new`, as `key: old -> new`, in key order.
fn differences(prefix: &str, old: &Value, new: &Value, out: &mut Vec<(String, String)>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                differences(
                    &path,
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if old == new => {}
        _ => {
            let line = if is_secret(prefix) {
                format!("{prefix}: changed")
            } else {
                format!("{prefix}: {old} -> {new}")
            };
            out.push((prefix.to_owned(), line));
        }
    }
}

/// Whether `key` takes effect without a restart.
fn is_live(key: &str) -> bool {
    key.starts_with("pool.limits.") && key != "pool.limits.proxy_protocol"
}

impl Reloader {
    /// A reloader of the pools behind `views`, running `running`.
    pub(crate) fn new(reread: Reread, running: Config, views: Vec<PoolView>) -> Reloader {
        Reloader {
            reread,
            running: Mutex::new(running),
            views,
        }
    }
}

impl ConfigReload for Reloader {
    fn reload(&self, actor: &str) -> Result<ReloadBody, ReloadError> {
        let file = (self.reread)().map_err(|e| ReloadError::Config(format!("{e:#}")))?;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let as_value = |c: &Config| serde_json::to_value(c).unwrap_or(Value::Null);
        let mut changes = Vec::new();
        differences("", &as_value(&running), &as_value(&file), &mut changes);
        let (live, later): (Vec<_>, Vec<_>) = changes.into_iter().partition(|(k, _)| is_live(k));
        let body = ReloadBody {
            applied: live.into_iter().map(|(_, line)| line).collect(),
            needs_restart: later.into_iter().map(|(_, line)| line).collect(),
        };
        let mut next = running.clone();
        next.pool.limits = crate::config::Limits {
            proxy_protocol: running.pool.limits.proxy_protocol,
            ..file.pool.limits.clone()
        };
        let detail = if body.applied.is_empty() && body.needs_restart.is_empty() {
            "no change".to_owned()
        } else {
            let mut parts = body.applied.clone();
            parts.extend(
                body.needs_restart
                    .iter()
                    .map(|line| format!("{line} (takes a restart)")),
            );
            parts.join("; ")
        };
        let limits = next.pool.limits.edge();
        for view in &self.views {
            let written = if body.applied.is_empty() {
                view.audit(actor, "config-reload", &detail)
            } else {
                view.reload_edge_limits(actor, &detail, &limits)
            };
            written.map_err(|e| ReloadError::Audit(e.to_string()))?;
        }
        *running = next;
        tracing::info!("configuration reloaded by {actor}: {detail}");
        if !body.needs_restart.is_empty() {
            tracing::warn!(
                "these changes take a restart and are not in force: {}",
                body.needs_restart.join("; ")
            );
        }
        Ok(body)
    }
}

/// Reloads on every SIGHUP until the task is aborted; without a file, says there is nothing
/// to reload (rather than let SIGHUP's default end the pool).
pub(crate) async fn on_hangup(reloader: Option<Arc<Reloader>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            let Some(reloader) = reloader.clone() else {
                tracing::warn!(
                    "SIGHUP: the pool runs without a configuration file: nothing to reload"
                );
                continue;
            };
            let done = tokio::task::spawn_blocking(move || reloader.reload("signal SIGHUP")).await;
            match done {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("SIGHUP: the configuration was not reloaded: {e}"),
                Err(_) => tracing::error!("SIGHUP: the reload failed"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = reloader;
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_leaf_and_hide_secrets() {
        let old = serde_json::json!({
            "pool": {"limits": {"ban": "10m", "messages_per_second": 50.0},
                     "database": "postgres://u:old@h/db", "listen": "0.0.0.0:3333"},
            "app": {"log_level": "info"}
        });
        let new = serde_json::json!({
            "pool": {"limits": {"ban": "1h", "messages_per_second": 50.0},
                     "database": "postgres://u:new@h/db", "listen": "0.0.0.0:3334"},
            "app": {"log_level": "info"}
        });
        let mut out = Vec::new();
        differences("", &old, &new, &mut out);
        let lines: Vec<&str> = out.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "pool.database: changed",
                "pool.limits.ban: \"10m\" -> \"1h\"",
                "pool.listen: \"0.0.0.0:3333\" -> \"0.0.0.0:3334\"",
            ]
        );
        assert!(is_live("pool.limits.ban"));
        assert!(!is_live("pool.limits.proxy_protocol"));
        assert!(!is_live("pool.listen"));
    }
}
