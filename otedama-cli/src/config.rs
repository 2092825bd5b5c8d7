//! The YAML configuration: parsed strictly, validated, every error naming file, key and reason.
//!
//! Sections follow the shape operators know: `mining`, `pool`, `api`, `monitoring`. Every field
//! has a default, so an empty file (or none) is a working devnet pool.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configuration problem: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The file, or `<flags>` for a command-line value.
    pub(crate) file: String,
    /// The dotted key, e.g. `pool.fee_percentage`.
    pub(crate) key: String,
    /// What is wrong.
    pub(crate) reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A duration written as `90s`, `30m`, `2h` or `1d` (or a bare number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span(pub(crate) Duration);

impl Span {
    pub(crate) fn parse(text: &str) -> Result<Span, String> {
        let t = text.trim();
        let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 2h or 1d"))?;
        let secs = match unit.trim() {
            "" | "s" => Some(n),
            "m" => n.checked_mul(60),
            "h" => n.checked_mul(3600),
            "d" => n.checked_mul(86_400),
            _ => None,
        }
        .ok_or_else(|| format!("{text:?} is not a duration like 90s, 30m, 2h or 1d"))?;
        Ok(Span(Duration::from_secs(secs)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        match s {
            0 => write!(f, "0s"),
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

/// How a duration-like value is written in YAML: a bare number of seconds, or text.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecsOrText {
    Secs(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match SecsOrText::deserialize(d)? {
            SecsOrText::Secs(n) => Ok(Span(Duration::from_secs(n))),
            SecsOrText::Text(t) => Span::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// `pool.rewards.window`: how far back PPLNS looks from a block, a time (`2h`) or a number of
/// shares (`100000 shares`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RewardWindow {
    /// The shares of this long before the block.
    Time(Span),
    /// The last this many shares up to the block.
    Shares(u64),
}

impl RewardWindow {
    pub(crate) fn parse(text: &str) -> Result<RewardWindow, String> {
        let t = text.trim();
        match t.strip_suffix("shares").or_else(|| t.strip_suffix("share")) {
            Some(n) => n
                .trim()
                .parse::<u64>()
                .map(RewardWindow::Shares)
                .map_err(|_| format!("{text:?} is not a share count like 100000 shares")),
            None => Span::parse(t).map(RewardWindow::Time),
        }
    }

    /// The PPLNS window the reward rules take.
    pub(crate) fn to_window(self) -> otedama_rewards::Window {
        match self {
            RewardWindow::Time(span) => otedama_rewards::Window::Duration {
                ms: i64::try_from(span.0.as_millis()).unwrap_or(i64::MAX),
            },
            RewardWindow::Shares(n) => {
                otedama_rewards::Window::Shares(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    fn is_empty(self) -> bool {
        match self {
            RewardWindow::Time(span) => span.0.is_zero(),
            RewardWindow::Shares(n) => n == 0,
        }
    }
}

impl fmt::Display for RewardWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RewardWindow::Time(span) => span.fmt(f),
            RewardWindow::Shares(n) => write!(f, "{n} shares"),
        }
    }
}

impl<'de> Deserialize<'de> for RewardWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match SecsOrText::deserialize(d)? {
            SecsOrText::Secs(n) => Ok(RewardWindow::Time(Span(Duration::from_secs(n)))),
            SecsOrText::Text(t) => RewardWindow::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for RewardWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// `mining`: what is mined, and the built-in miner.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Mining {
    /// sha256d, scrypt or randomx.
    pub(crate) algorithm: String,
    /// Threads of the built-in CPU miner that `pool` starts (0: none); `serve` takes
    /// `cpu.threads` unless this is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) threads: Option<usize>,
    /// Whether `serve` mines with the CPU.
    pub(crate) enable_cpu: bool,
    /// Whether `serve` mines with GPUs.
    pub(crate) enable_gpu: bool,
    /// Whether `serve` mines with ASICs.
    pub(crate) enable_asic: bool,
    /// `mining.cpu`.
    pub(crate) cpu: Cpu,
    /// `mining.gpu`.
    pub(crate) gpu: Gpu,
    /// `mining.asic`.
    pub(crate) asic: Asic,
    /// The pool `serve`'s miner mines on (`stratum+tcp://host:port`); this process's own
    /// pool when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pool_url: Option<String>,
    /// The worker name `serve`'s miner logs in with on `pool_url` (`address.rig`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
}

impl Default for Mining {
    fn default() -> Self {
        Mining {
            algorithm: "sha256d".into(),
            threads: None,
            enable_cpu: true,
            enable_gpu: false,
            enable_asic: false,
            cpu: Cpu::default(),
            gpu: Gpu::default(),
            asic: Asic::default(),
            pool_url: None,
            user: None,
        }
    }
}

impl Mining {
    /// The built-in miner's threads under `pool`: `threads`, one when absent.
    pub(crate) fn pool_threads(&self) -> usize {
        self.threads.unwrap_or(1)
    }

    /// The built-in miner's threads under `serve`: none without `enable_cpu`, else
    /// `threads` when given, else `cpu.threads` (0: one per core).
    pub(crate) fn serve_threads(&self) -> usize {
        if !self.enable_cpu {
            return 0;
        }
        match self.threads {
            Some(n) => n,
            None if self.cpu.threads == 0 => std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(1),
            None => self.cpu.threads,
        }
    }
}

/// `mining.cpu`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Cpu {
    /// Mining threads; 0 is one per core.
    pub(crate) threads: usize,
    /// The mining threads' scheduling priority: low, normal or high.
    pub(crate) priority: String,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu {
            threads: 0,
            priority: "normal".into(),
        }
    }
}

/// A device named in a list: its index or its name.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum DeviceId {
    /// By index.
    Index(u32),
    /// By name or path.
    Name(String),
}

/// `mining.gpu`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Gpu {
    /// Which GPUs mine; every one found when empty.
    pub(crate) devices: Vec<DeviceId>,
    /// Work per dispatch, as a power of two of threads (8 to 31).
    pub(crate) intensity: u32,
    /// Degrees Celsius above which a GPU is throttled.
    pub(crate) temperature_limit: u32,
}

impl Default for Gpu {
    fn default() -> Self {
        Gpu {
            devices: Vec::new(),
            intensity: 20,
            temperature_limit: 85,
        }
    }
}

/// `mining.asic`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Asic {
    /// Which ASICs mine (USB paths or `host:port` of a cgminer-style API); every one
    /// discovered when empty.
    pub(crate) devices: Vec<DeviceId>,
    /// How often each ASIC is asked for its state.
    pub(crate) poll_interval: Span,
}

impl Default for Asic {
    fn default() -> Self {
        Asic {
            devices: Vec::new(),
            poll_interval: Span(Duration::from_secs(5)),
        }
    }
}

/// `app`: the process as a whole.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct App {
    /// The name the process goes by in logs and the API.
    pub(crate) name: String,
    /// production or development: production refuses the embedded devnet unless
    /// `pool.devnet` asks for it.
    pub(crate) mode: String,
    /// A file every log line also goes to (created with its directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_file: Option<PathBuf>,
    /// text (human lines) or json (one object per line, for collectors).
    pub(crate) log_format: String,
}

impl Default for App {
    fn default() -> Self {
        App {
            name: "otedama".into(),
            mode: "development".into(),
            log_file: None,
            log_format: "text".into(),
        }
    }
}

/// `pool.node`: the coin's node; absent means the embedded devnet.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Node {
    /// JSON-RPC URL, e.g. `http://127.0.0.1:19443`.
    pub(crate) url: String,
    /// RPC user.
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// RPC password.
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// Cookie file, instead of user and password.
    #[serde(default)]
    pub(crate) cookie: Option<PathBuf>,
}

/// `pool.rewards`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Rewards {
    /// pplns, pps, fpps, prop or solo.
    pub(crate) system: String,
    /// The PPLNS window: a time (`2h`) or a share count (`100000 shares`).
    pub(crate) window: RewardWindow,
}

impl Default for Rewards {
    fn default() -> Self {
        Rewards {
            system: "pplns".into(),
            window: RewardWindow::Time(Span(Duration::from_secs(7200))),
        }
    }
}

/// `pool.payments`: paying balances through the node's wallet (a pool on a node only).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Payments {
    /// Whether payment rounds run.
    pub(crate) enabled: bool,
    /// The smallest balance paid, in the coin's smallest unit.
    pub(crate) threshold: u64,
    /// Time between payment rounds.
    pub(crate) interval: Span,
    /// Most outputs in one payment transaction; larger rounds continue next time.
    pub(crate) max_outputs: usize,
    /// Whether the network fee comes out of the miners' outputs (otherwise the pool pays it).
    pub(crate) fee_from_miners: bool,
    /// The node wallet that pays (`/wallet/<name>`); the node's only wallet when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wallet: Option<String>,
}

impl Default for Payments {
    fn default() -> Self {
        Payments {
            enabled: true,
            threshold: 10_000_000,
            interval: Span(Duration::from_secs(600)),
            max_outputs: 250,
            fee_from_miners: false,
            wallet: None,
        }
    }
}

/// What a `pool.ports` entry speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PortProtocol {
    /// Stratum v1 (the Monero dialect for randomx): the port of an algorithm.
    #[default]
    V1,
    /// Stratum V2: a second port for the algorithm of a v1 entry, on its jobs and share log
    /// (as `pool.sv2.listen` for a single-port pool).
    Sv2,
}

impl PortProtocol {
    fn is_v1(&self) -> bool {
        *self == PortProtocol::V1
    }
}

/// One entry of `pool.ports`: another algorithm or coin served by the same process on its
/// own port, or (`protocol: sv2`) the Stratum V2 port of one. Fields left out are taken from
/// `mining` and `pool`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortConfig {
    /// sha256d, scrypt or randomx.
    pub(crate) algorithm: String,
    /// Where this port's Stratum server listens.
    pub(crate) listen: SocketAddr,
    /// v1 (the default) or sv2.
    #[serde(default, skip_serializing_if = "PortProtocol::is_v1")]
    pub(crate) protocol: PortProtocol,
    /// Whose addresses miners use on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<String>,
    /// This port's payout address.
    #[serde(
        default,
        alias = "payout_address",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) address: Option<String>,
    /// This port's node; the devnet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<Node>,
    /// This port's starting share difficulty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) difficulty: Option<f64>,
    /// This port's devnet difficulty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) devnet_difficulty: Option<f64>,
}

/// `pool`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Pool {
    /// Whether `serve` runs the pool.
    pub(crate) enable: bool,
    /// Where the Stratum server listens.
    pub(crate) listen: SocketAddr,
    /// The Stratum listen address (`0.0.0.0:3333`), as the documented file writes it; an
    /// older file's payout address here still counts as `payout_address`.
    #[serde(skip_serializing)]
    pub(crate) address: Option<String>,
    /// The pool's own payout address (fees, and the devnet's coinbase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payout_address: Option<String>,
    /// Whether the embedded devnet may run in production mode (no node configured).
    pub(crate) devnet: bool,
    /// Most concurrent miner connections.
    pub(crate) max_connections: usize,
    /// The pool fee in percent.
    pub(crate) fee_percentage: f64,
    /// Starting share difficulty, in the algorithm's pool convention (scrypt ×65536); a
    /// per-algorithm default when absent.
    pub(crate) difficulty: Option<f64>,
    /// The chain whose addresses miners log in with: bitcoin, bitcoin-testnet,
    /// bitcoin-regtest, litecoin, litecoin-testnet, litecoin-regtest. Defaults to the regtest
    /// chain of the algorithm's coin.
    pub(crate) chain: Option<String>,
    /// Network difficulty of the embedded devnet; a per-algorithm default (a block every
    /// few seconds on one CPU thread) when absent.
    pub(crate) devnet_difficulty: Option<f64>,
    /// The node; the embedded devnet when absent.
    pub(crate) node: Option<Node>,
    /// Where shares and blocks are stored: a SQLite file path, or `postgres://...`.
    pub(crate) database: String,
    /// Reward scheme.
    pub(crate) rewards: Rewards,
    /// Confirmations after which a found block counts as confirmed (coinbase maturity) and
    /// its reward is credited.
    pub(crate) maturity: u32,
    /// Payments of balances through the node's wallet.
    pub(crate) payments: Payments,
    /// How often found blocks are checked against the node (confirmed, or orphaned).
    pub(crate) block_check_interval: Span,
    /// More algorithms or coins, one port each; when given, the pool serves exactly these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) ports: Vec<PortConfig>,
    /// Limits at the Stratum ports' edge: connection and message rates, bans, the PROXY
    /// protocol.
    pub(crate) limits: Limits,
    /// Stratum over TLS on a port of its own.
    pub(crate) tls: Tls,
    /// Stratum V2 (encrypted, binary) on a port of its own.
    pub(crate) sv2: Sv2,
}

/// `pool.sv2`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Sv2 {
    /// Where Stratum V2 (`stratum2+tcp://`) listens; off when absent.
    pub(crate) listen: Option<SocketAddr>,
    /// The file holding the authority secret key (base58check); made on the first run, and
    /// kept beside the database (`sv2-authority.key`) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) authority_key_file: Option<PathBuf>,
    /// How long each connection's certificate is valid.
    pub(crate) certificate_validity: Span,
}

impl Default for Sv2 {
    fn default() -> Self {
        Sv2 {
            listen: None,
            authority_key_file: None,
            certificate_validity: Span(Duration::from_secs(86_400)),
        }
    }
}

/// `pool.tls`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Tls {
    /// Where Stratum over TLS (`stratum+ssl://`) listens; off when absent.
    pub(crate) listen: Option<SocketAddr>,
    /// The certificate chain, PEM; a self-signed one is made on the first run (and kept
    /// beside the database) when absent.
    pub(crate) cert: Option<String>,
    /// The certificate's private key, PEM.
    pub(crate) key: Option<String>,
}

/// `pool.limits`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    /// New connections per address per second, on average (0: unlimited).
    pub(crate) connections_per_ip_per_second: f64,
    /// New connections one address may open at once (a farm restarting its rigs).
    pub(crate) connection_burst: u32,
    /// Lines per connection per second, on average (0: unlimited); a faster miner is cut off.
    pub(crate) messages_per_second: f64,
    /// Lines one connection may send at once.
    pub(crate) message_burst: u32,
    /// How long an address whose session was banned (bad shares, bad lines) is refused;
    /// `0s` closes the connection only. Bans are kept in the database across restarts.
    pub(crate) ban: Span,
    /// Whether connections from the host itself are exempt from the limits and bans.
    pub(crate) exempt_loopback: bool,
    /// Whether every connection opens with a PROXY protocol header (v1 or v2), as sent by
    /// HAProxy or a cloud load balancer; the header's address is then the miner's.
    pub(crate) proxy_protocol: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_per_ip_per_second: 20.0,
            connection_burst: 500,
            messages_per_second: 50.0,
            message_burst: 500,
            ban: Span(Duration::from_secs(600)),
            exempt_loopback: true,
            proxy_protocol: false,
        }
    }
}

impl Limits {
    /// The Stratum servers' edge settings.
    pub(crate) fn edge(&self) -> otedama_stratum::edge::EdgeConfig {
        use otedama_stratum::edge::{EdgeConfig, Rate};
        let rate = |per_second: f64, burst: u32| {
            (per_second > 0.0).then_some(Rate {
                per_second,
                burst: f64::from(burst.max(1)),
            })
        };
        EdgeConfig {
            connections_per_ip: rate(self.connections_per_ip_per_second, self.connection_burst),
            messages_per_connection: rate(self.messages_per_second, self.message_burst),
            ban_for: (!self.ban.0.is_zero()).then_some(self.ban.0),
            exempt_loopback: self.exempt_loopback,
            proxy_protocol: self.proxy_protocol,
            ..EdgeConfig::default()
        }
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            enable: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 3333)),
            address: None,
            payout_address: None,
            devnet: false,
            max_connections: 10_000,
            fee_percentage: 1.0,
            difficulty: None,
            chain: None,
            devnet_difficulty: None,
            node: None,
            database: "otedama.db".into(),
            rewards: Rewards::default(),
            maturity: 100,
            payments: Payments::default(),
            block_check_interval: Span(Duration::from_secs(10)),
            ports: Vec::new(),
            limits: Limits::default(),
            tls: Tls::default(),
            sv2: Sv2::default(),
        }
    }
}

/// `api`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Api {
    /// Whether the REST/WebSocket API and the dashboard run.
    #[serde(alias = "enable")]
    pub(crate) enabled: bool,
    /// Where they listen.
    #[serde(alias = "address")]
    pub(crate) listen: SocketAddr,
    /// Bearer tokens for the API.
    pub(crate) auth: ApiAuth,
    /// Whether `/` serves the dashboard.
    pub(crate) dashboard: bool,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: ApiAuth::default(),
            dashboard: true,
        }
    }
}

/// `api.auth`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiAuth {
    /// Whether mutating endpoints need a bearer token (`otedama-cli api-token`).
    #[serde(alias = "enable")]
    pub(crate) enabled: bool,
    /// How long an issued token is valid.
    pub(crate) token_expiry: Span,
    /// Whether reads need a token too.
    pub(crate) protect_reads: bool,
    /// The file holding the secret tokens are signed with; made on first use. Beside the
    /// database (`api-secret`) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret_file: Option<PathBuf>,
}

impl Default for ApiAuth {
    fn default() -> Self {
        ApiAuth {
            enabled: false,
            token_expiry: Span(Duration::from_secs(86_400)),
            protect_reads: false,
            secret_file: None,
        }
    }
}

/// `monitoring.metrics` or `monitoring.health`: whether it is served, and where.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub(crate) struct Endpoint {
    /// Whether it is served.
    pub(crate) enabled: bool,
    /// Its own listen address; on the API's listener when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointFields {
    /// On when left out but an address is given.
    #[serde(default, alias = "enable")]
    enabled: Option<bool>,
    #[serde(default, alias = "listen")]
    address: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EndpointForm {
    Flag(bool),
    Fields(EndpointFields),
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `metrics: true` (older files) or `metrics: {enabled, address}`.
        let value = serde_yaml::Value::deserialize(d)?;
        if let serde_yaml::Value::Bool(enabled) = value {
            return Ok(Endpoint {
                enabled,
                address: None,
            });
        }
        match serde_yaml::from_value::<EndpointForm>(value.clone()) {
            Ok(EndpointForm::Flag(enabled)) => Ok(Endpoint {
                enabled,
                address: None,
            }),
            Ok(EndpointForm::Fields(f)) => Ok(Endpoint {
                enabled: f.enabled.unwrap_or(f.address.is_some()),
                address: f.address,
            }),
            // The fields' own error says which key is wrong.
            Err(_) => serde_yaml::from_value::<EndpointFields>(value)
                .map(|f| Endpoint {
                    enabled: f.enabled.unwrap_or(f.address.is_some()),
                    address: f.address,
                })
                .map_err(serde::de::Error::custom),
        }
    }
}

/// `monitoring`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Monitoring {
    /// Prometheus metrics at `/metrics`.
    pub(crate) metrics: Endpoint,
    /// `/health/live` and `/health/ready`.
    pub(crate) health: Endpoint,
    /// How often the pool logs its status line.
    pub(crate) stats_interval: Span,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            metrics: Endpoint::default(),
            health: Endpoint {
                enabled: true,
                address: None,
            },
            stats_interval: Span(Duration::from_secs(10)),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// `app`.
    pub(crate) app: App,
    /// `mining`.
    pub(crate) mining: Mining,
    /// `pool`.
    pub(crate) pool: Pool,
    /// `api`.
    pub(crate) api: Api,
    /// `monitoring`.
    pub(crate) monitoring: Monitoring,
    /// `p2p`.
    pub(crate) p2p: P2p,
}

/// `p2p`: mine on a sharechain with other nodes instead of as a pool of one's own.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct P2p {
    /// Whether the pool mines on the sharechain.
    pub(crate) enabled: bool,
    /// Where peers connect; outbound connections only when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) listen: Option<SocketAddr>,
    /// Nodes to dial and keep dialling (`host:port`). A node with none starts a new chain.
    pub(crate) peers: Vec<String>,
    /// Accept only the configured peers: a private federation.
    pub(crate) trusted_only: bool,
    /// `main` (10 s shares) or `nano` (30 s shares, for small miners): two separate chains.
    pub(crate) tier: String,
    /// The sharechain's easiest share, in the algorithm's pool difficulty convention; the
    /// per-algorithm default share difficulty when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) min_difficulty: Option<f64>,
    /// The share interval in seconds, for a private chain; the tier's when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) share_interval: Option<u64>,
    /// The SQLite file the sharechain is kept in; beside the database when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<String>,
    /// The file holding the node's private key; made on the first run, beside the
    /// sharechain's file when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// The proof of work a dialling node pays in its handshake, in leading zero bits.
    pub(crate) handshake_pow_bits: u8,
}

impl Default for P2p {
    fn default() -> Self {
        P2p {
            enabled: false,
            listen: None,
            peers: Vec::new(),
            trusted_only: false,
            tier: "main".into(),
            min_difficulty: None,
            share_interval: None,
            data: None,
            key: None,
            handshake_pow_bits: 16,
        }
    }
}

const ALGORITHMS: [&str; 3] = ["sha256d", "scrypt", "randomx"];

/// The environment variable that replaces `pool.database`.
pub(crate) const DATABASE_ENV: &str = "OTEDAMA_DATABASE";

/// Chain names accepted in `pool.chain`, with their address prefixes.
pub(crate) const CHAINS: [(&str, otedama_core::AddressParams); 6] = [
    ("bitcoin", otedama_core::AddressParams::BITCOIN),
    (
        "bitcoin-testnet",
        otedama_core::AddressParams::BITCOIN_TESTNET,
    ),
    (
        "bitcoin-regtest",
        otedama_core::AddressParams::BITCOIN_REGTEST,
    ),
    ("litecoin", otedama_core::AddressParams::LITECOIN),
    (
        "litecoin-testnet",
        otedama_core::AddressParams::LITECOIN_TESTNET,
    ),
    (
        "litecoin-regtest",
        otedama_core::AddressParams::LITECOIN_REGTEST,
    ),
];

/// The address prefixes of a chain named in `pool.chain`.
pub(crate) fn chain_params(name: &str) -> Option<otedama_core::AddressParams> {
    CHAINS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}
const SYSTEMS: [&str; 5] = ["pplns", "pps", "fpps", "prop", "solo"];

impl Config {
    /// Parses YAML text; `file` names the source in errors.
    pub(crate) fn from_yaml(text: &str, file: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            let mut config = Config::default();
            config.normalize(file)?;
            config.validate(file)?;
            return Ok(config);
        }
        let de = serde_yaml::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let mut reason = e.inner().to_string();
            // serde_yaml starts its message with its own, shorter path; ours is exact.
            if let Some((prefix, rest)) = reason.split_once(": ") {
                if key.starts_with(prefix) {
                    reason = rest.to_owned();
                }
            }
            ConfigError {
                file: file.to_owned(),
                key: if key == "." { String::new() } else { key },
                reason,
            }
        })?;
        let mut config = config;
        config.normalize(file)?;
        config.validate(file)?;
        Ok(config)
    }

    /// Settles what the file may spell more than one way: names in any case, and
    /// `pool.address` as the listen address (or, in older files, the payout address).
    pub(crate) fn normalize(&mut self, file: &str) -> Result<(), ConfigError> {
        for name in [
            &mut self.mining.algorithm,
            &mut self.pool.rewards.system,
            &mut self.app.mode,
            &mut self.app.log_format,
            &mut self.mining.cpu.priority,
        ] {
            *name = name.trim().to_ascii_lowercase();
        }
        for port in &mut self.pool.ports {
            port.algorithm = port.algorithm.trim().to_ascii_lowercase();
        }
        if let Some(address) = self.pool.address.take() {
            match address.parse::<SocketAddr>() {
                Ok(listen)
                    if self.pool.listen != Pool::default().listen && self.pool.listen != listen =>
                {
                    return Err(ConfigError {
                        file: file.to_owned(),
                        key: "pool.address".into(),
                        reason: format!(
                            "{listen} and pool.listen {} both name the Stratum address: keep one",
                            self.pool.listen
                        ),
                    })
                }
                Ok(listen) => self.pool.listen = listen,
                Err(_) => match &self.pool.payout_address {
                    None => self.pool.payout_address = Some(address),
                    Some(payout) if *payout == address => {}
                    Some(_) => {
                        return Err(ConfigError {
                            file: file.to_owned(),
                            key: "pool.address".into(),
                            reason: format!(
                                "{address:?} is not a listen address like 0.0.0.0:3333 \
                                 (the payout address is pool.payout_address)"
                            ),
                        })
                    }
                },
            }
        }
        Ok(())
    }

    /// Whether the pool would run on the embedded devnet (no node), and may: production
    /// mode refuses it unless `pool.devnet` asks for it.
    pub(crate) fn check_devnet(&self, file: &str) -> Result<(), ConfigError> {
        let on_devnet = self.instances().iter().any(|c| c.pool.node.is_none());
        if on_devnet && self.app.mode == "production" && !self.pool.devnet {
            return Err(ConfigError {
                file: file.to_owned(),
                key: "pool.node".into(),
                reason: "app.mode production needs a node to mine on; set pool.node, or \
                         pool.devnet: true to run the embedded devnet (or app.mode: development)"
                    .into(),
            });
        }
        Ok(())
    }

    /// The file at `path` (the defaults without one), with what the environment overrides:
    /// `OTEDAMA_DATABASE` replaces `pool.database`, so that a database URL with its password
    /// can come from a secret rather than the file.
    pub(crate) fn open(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Ok(database) = std::env::var(DATABASE_ENV) {
            if database.trim().is_empty() {
                return Err(ConfigError {
                    file: format!("${DATABASE_ENV}"),
                    key: "pool.database".into(),
                    reason: "is empty".into(),
                });
            }
            config.pool.database = database;
        }
        Ok(config)
    }

    /// Reads and parses a file.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::from_yaml(&text, &file)
    }

    /// Checks values that parse but make no sense.
    pub(crate) fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, reason: String| {
            Err(ConfigError {
                file: file.to_owned(),
                key: key.to_owned(),
                reason,
            })
        };
        if self.p2p.enabled {
            if !["sha256d", "scrypt", "randomx"].contains(&self.mining.algorithm.as_str()) {
                return err(
                    "p2p.enabled",
                    format!(
                        "the sharechain mines sha256d, scrypt and randomx, not {}",
                        self.mining.algorithm
                    ),
                );
            }
            if !self.pool.ports.is_empty() {
                return err(
                    "p2p.enabled",
                    "a sharechain node serves one algorithm: leave pool.ports out".into(),
                );
            }
            if self.pool.rewards.system == "solo" {
                return err(
                    "pool.rewards.system",
                    "solo does not apply on a sharechain: large miners are paid in the coinbase, \
                     and small ones through pplns, prop, pps or fpps"
                        .into(),
                );
            }
            if !["main", "nano"].contains(&self.p2p.tier.as_str()) {
                return err(
                    "p2p.tier",
                    format!("{:?} is not main or nano", self.p2p.tier),
                );
            }
            if let Some(d) = self.p2p.min_difficulty {
                if !(d.is_finite() && d > 0.0) {
                    return err("p2p.min_difficulty", format!("{d} is not a difficulty"));
                }
            }
            if self.p2p.share_interval.is_some_and(|s| s == 0 || s > 3600) {
                return err(
                    "p2p.share_interval",
                    "the share interval is 1 to 3600 seconds".into(),
                );
            }
        }
        if !ALGORITHMS.contains(&self.mining.algorithm.as_str()) {
            return err(
                "mining.algorithm",
                format!(
                    "unknown algorithm {:?} (choose {})",
                    self.mining.algorithm,
                    ALGORITHMS.join(", ")
                ),
            );
        }
        for (key, value) in [
            (
                "pool.limits.connections_per_ip_per_second",
                self.pool.limits.connections_per_ip_per_second,
            ),
            (
                "pool.limits.messages_per_second",
                self.pool.limits.messages_per_second,
            ),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return err(
                    key,
                    format!("{value} is not a rate of 0 or more per second"),
                );
            }
        }
        if self.pool.sv2.listen.is_some() && self.mining.algorithm == "randomx" {
            return err(
                "pool.sv2.listen",
                "Stratum V2 carries Bitcoin-style headers (sha256d, scrypt), not RandomX".into(),
            );
        }
        let validity = self.pool.sv2.certificate_validity.0.as_secs();
        if !(60..=u64::from(u32::MAX)).contains(&validity) {
            return err(
                "pool.sv2.certificate_validity",
                format!("{validity} s is not between a minute and 136 years"),
            );
        }
        if self.pool.tls.cert.is_some() != self.pool.tls.key.is_some() {
            return err(
                "pool.tls",
                "give both cert and key, or neither (a self-signed pair is made)".into(),
            );
        }
        for (key, threads) in [
            ("mining.threads", self.mining.threads.unwrap_or(0)),
            ("mining.cpu.threads", self.mining.cpu.threads),
        ] {
            if threads > 1024 {
                return err(key, format!("{threads} is more than 1024"));
            }
        }
        for (key, value, choices) in [
            (
                "app.mode",
                &self.app.mode,
                &["production", "development"][..],
            ),
            (
                "app.log_format",
                &self.app.log_format,
                &["text", "json"][..],
            ),
            (
                "mining.cpu.priority",
                &self.mining.cpu.priority,
                &["low", "normal", "high"][..],
            ),
        ] {
            if !choices.contains(&value.as_str()) {
                return err(
                    key,
                    format!("unknown value {value:?} (choose {})", choices.join(", ")),
                );
            }
        }
        if !(8..=31).contains(&self.mining.gpu.intensity) {
            return err(
                "mining.gpu.intensity",
                format!("{} is not between 8 and 31", self.mining.gpu.intensity),
            );
        }
        if !(40..=110).contains(&self.mining.gpu.temperature_limit) {
            return err(
                "mining.gpu.temperature_limit",
                format!(
                    "{} is not between 40 and 110 degrees",
                    self.mining.gpu.temperature_limit
                ),
            );
        }
        if self.mining.asic.poll_interval.0.is_zero() {
            return err(
                "mining.asic.poll_interval",
                "must be longer than zero".into(),
            );
        }
        if self.api.auth.token_expiry.0.is_zero() {
            return err("api.auth.token_expiry", "must be longer than zero".into());
        }
        if let Some(url) = &self.mining.pool_url {
            if !url.contains("://") {
                return err(
                    "mining.pool_url",
                    format!("{url:?} is not a URL like stratum+tcp://host:3333"),
                );
            }
        }
        if !(0.0..=100.0).contains(&self.pool.fee_percentage)
            || !self.pool.fee_percentage.is_finite()
        {
            return err(
                "pool.fee_percentage",
                format!("{} is not between 0 and 100", self.pool.fee_percentage),
            );
        }
        for (key, value) in [
            ("pool.difficulty", self.pool.difficulty),
            ("pool.devnet_difficulty", self.pool.devnet_difficulty),
        ] {
            if let Some(d) = value {
                if !(d.is_finite() && d > 0.0) {
                    return err(key, format!("{d} is not a positive number"));
                }
            }
        }
        if let Some(chain) = &self.pool.chain {
            if chain_params(chain).is_none() {
                let names: Vec<&str> = CHAINS.iter().map(|c| c.0).collect();
                return err(
                    "pool.chain",
                    format!("unknown chain {chain:?} (choose {})", names.join(", ")),
                );
            }
        }
        if self.pool.max_connections == 0 || self.pool.max_connections > 1_000_000 {
            return err(
                "pool.max_connections",
                format!("{} is not between 1 and 1000000", self.pool.max_connections),
            );
        }
        if !SYSTEMS.contains(&self.pool.rewards.system.as_str()) {
            return err(
                "pool.rewards.system",
                format!(
                    "unknown system {:?} (choose {})",
                    self.pool.rewards.system,
                    SYSTEMS.join(", ")
                ),
            );
        }
        if self.pool.rewards.window.is_empty() {
            return err("pool.rewards.window", "must be longer than zero".into());
        }
        if self.pool.database.trim().is_empty() {
            return err("pool.database", "is empty".into());
        }
        if let Some(node) = &self.pool.node {
            if !(node.url.starts_with("http://") || node.url.starts_with("https://")) {
                return err(
                    "pool.node.url",
                    format!("{:?} is not an http:// url", node.url),
                );
            }
            let has_password = node.user.is_some() || node.password.is_some();
            if has_password && node.cookie.is_some() {
                return err(
                    "pool.node",
                    "give user and password, or cookie, not both".into(),
                );
            }
            if node.user.is_some() != node.password.is_some() {
                return err("pool.node", "user and password go together".into());
            }
        }
        if !self.pool.ports.is_empty() {
            if self.pool.sv2.listen.is_some() {
                return err(
                    "pool.sv2.listen",
                    "with pool.ports, give each algorithm's Stratum V2 port as a \
                     `protocol: sv2` entry there"
                        .into(),
                );
            }
            let mut seen = std::collections::HashSet::new();
            let mut algorithms = std::collections::HashSet::new();
            let mut sv2 = std::collections::HashSet::new();
            for (i, port) in self.pool.ports.iter().enumerate() {
                // Port 0 asks the system for any free port: never a clash.
                if port.listen.port() != 0 && !seen.insert(port.listen) {
                    return err(
                        &format!("pool.ports[{i}].listen"),
                        format!("{} is already used by another port", port.listen),
                    );
                }
                if port.protocol == PortProtocol::Sv2 {
                    if port.algorithm == "randomx" {
                        return err(
                            &format!("pool.ports[{i}].protocol"),
                            "Stratum V2 mines Bitcoin-family headers: not randomx".into(),
                        );
                    }
                    // The SV2 port serves its algorithm's jobs into its share log: what the
                    // v1 entry of that algorithm says is what it mines.
                    if port.chain.is_some()
                        || port.address.is_some()
                        || port.node.is_some()
                        || port.difficulty.is_some()
                        || port.devnet_difficulty.is_some()
                    {
                        return err(
                            &format!("pool.ports[{i}]"),
                            "an sv2 port takes only algorithm and listen: the rest is its \
                             algorithm's v1 port's"
                                .into(),
                        );
                    }
                    if !self
                        .pool
                        .ports
                        .iter()
                        .any(|p| p.protocol == PortProtocol::V1 && p.algorithm == port.algorithm)
                    {
                        return err(
                            &format!("pool.ports[{i}].algorithm"),
                            format!(
                                "no v1 port serves {}: an sv2 port mines the jobs of the v1 \
                                 port of its algorithm",
                                port.algorithm
                            ),
                        );
                    }
                    if !sv2.insert(port.algorithm.as_str()) {
                        return err(
                            &format!("pool.ports[{i}].algorithm"),
                            format!("{} already has an sv2 port", port.algorithm),
                        );
                    }
                    continue;
                }
                // Shares, blocks and balances are kept per algorithm: one coin each.
                if !algorithms.insert(port.algorithm.as_str()) {
                    return err(
                        &format!("pool.ports[{i}].algorithm"),
                        format!("{} is already served by another port", port.algorithm),
                    );
                }
            }
            // `instances` keeps the v1 entries, in order: name each by its own index.
            let v1 = self
                .pool
                .ports
                .iter()
                .enumerate()
                .filter(|(_, p)| p.protocol == PortProtocol::V1)
                .map(|(i, _)| i);
            for (i, instance) in v1.zip(self.instances()) {
                instance.validate(file).map_err(|mut e| {
                    e.key = format!("pool.ports[{i}] ({})", e.key);
                    e
                })?;
            }
        }
        let payments = &self.pool.payments;
        if payments.interval.0.is_zero() {
            return err("pool.payments.interval", "must be longer than zero".into());
        }
        if payments.max_outputs == 0 || payments.max_outputs > 10_000 {
            return err(
                "pool.payments.max_outputs",
                format!("{} is not between 1 and 10000", payments.max_outputs),
            );
        }
        if payments.threshold == 0 {
            return err(
                "pool.payments.threshold",
                "must be at least one unit".into(),
            );
        }
        if let Some(wallet) = &payments.wallet {
            if wallet.is_empty()
                || !wallet
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return err(
                    "pool.payments.wallet",
                    format!("{wallet:?} is not a wallet name (letters, digits, -, _ and .)"),
                );
            }
        }
        if self.pool.maturity == 0 {
            return err("pool.maturity", "must be at least one confirmation".into());
        }
        if self.pool.block_check_interval.0.is_zero() {
            return err(
                "pool.block_check_interval",
                "must be longer than zero".into(),
            );
        }
        if self.monitoring.stats_interval.0.is_zero() {
            return err(
                "monitoring.stats_interval",
                "must be longer than zero".into(),
            );
        }
        Ok(())
    }

    /// One configuration per served port: this one when `pool.ports` is empty, otherwise one
    /// per entry, each entry's fields overriding `mining` and `pool`.
    pub(crate) fn instances(&self) -> Vec<Config> {
        if self.pool.ports.is_empty() {
            return vec![self.clone()];
        }
        let sv2 = |algorithm: &str| {
            self.pool
                .ports
                .iter()
                .find(|p| p.protocol == PortProtocol::Sv2 && p.algorithm == algorithm)
                .map(|p| p.listen)
        };
        self.pool
            .ports
            .iter()
            .filter(|port| port.protocol == PortProtocol::V1)
            .map(|port| {
                let mut c = self.clone();
                c.pool.ports.clear();
                c.mining.algorithm = port.algorithm.clone();
                c.pool.listen = port.listen;
                // Each algorithm's SV2 port is its own; `pool.sv2.listen` is not shared.
                c.pool.sv2.listen = sv2(&port.algorithm);
                c.pool.chain = port.chain.clone().or(c.pool.chain);
                c.pool.payout_address = port.address.clone().or(c.pool.payout_address);
                c.pool.node = port.node.clone().or(c.pool.node);
                c.pool.difficulty = port.difficulty.or(c.pool.difficulty);
                c.pool.devnet_difficulty = port.devnet_difficulty.or(c.pool.devnet_difficulty);
                c
            })
            .collect()
    }

    /// The effective configuration as YAML, with a database password masked.
    pub(crate) fn to_yaml(&self) -> String {
        let mut shown = self.clone();
        shown.pool.database = otedama_pool::store::display_database(&self.pool.database);
        serde_yaml::to_string(&shown)
            .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_devnet_default() {
        let c = Config::from_yaml("", "c.yaml").expect("defaults");
        assert_eq!(c, Config::default());
        assert!(c.pool.node.is_none());
    }

    #[test]
    fn the_documented_shape_parses() {
        let c = Config::from_yaml(
            "mining:\n  algorithm: scrypt\n  threads: 2\npool:\n  listen: 127.0.0.1:4444\n  fee_percentage: 1.5\n  max_connections: 500\n  rewards:\n    system: pplns\n    window: 2h\n  node:\n    url: http://127.0.0.1:19443\n    user: u\n    password: p\napi:\n  enabled: true\nmonitoring:\n  stats_interval: 30s\n",
            "c.yaml",
        )
        .expect("valid");
        assert_eq!(c.mining.algorithm, "scrypt");
        assert_eq!(
            c.pool.rewards.window,
            RewardWindow::Time(Span(Duration::from_secs(7200)))
        );
        let by_shares =
            Config::from_yaml("pool:\n  rewards:\n    window: 50000 shares\n", "c.yaml")
                .expect("a share window");
        assert_eq!(by_shares.pool.rewards.window, RewardWindow::Shares(50_000));
        assert!(
            by_shares.to_yaml().contains("window: 50000 shares"),
            "{}",
            by_shares.to_yaml()
        );
        assert_eq!(c.pool.listen.port(), 4444);
        let round = Config::from_yaml(&c.to_yaml(), "printed").expect("printed config parses");
        assert_eq!(round, c);
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            (
                "pool:\n  fee_percentage: 150\n",
                "c.yaml: pool.fee_percentage: 150 is not between 0 and 100",
            ),
            (
                "pool:\n  fee_percentag: 1\n",
                "c.yaml: pool.fee_percentag: unknown field `fee_percentag`",
            ),
            (
                "pool:\n  rewards:\n    window: soon\n",
                "c.yaml: pool.rewards.window: \"soon\" is not a duration",
            ),
            (
                "mining:\n  algorithm: md5\n",
                "c.yaml: mining.algorithm: unknown algorithm \"md5\"",
            ),
            (
                "pool:\n  listen: nowhere\n",
                "c.yaml: pool.listen: invalid socket address",
            ),
            (
                "pool:\n  node:\n    url: ftp://x\n",
                "c.yaml: pool.node.url: \"ftp://x\" is not an http:// url",
            ),
            (
                "pool:\n  max_connections: -1\n",
                "c.yaml: pool.max_connections: invalid type: integer `-1`",
            ),
            (
                "p2p:\n  enabled: true\npool:\n  rewards:\n    system: solo\n",
                "c.yaml: pool.rewards.system: solo does not apply on a sharechain",
            ),
        ];
        for (yaml, expected) in cases {
            let e = Config::from_yaml(yaml, "c.yaml")
                .expect_err(yaml)
                .to_string();
            assert!(e.starts_with(expected), "{yaml:?}: got {e:?}");
        }
    }

    #[test]
    fn sv2_ports_join_their_algorithms_v1_port() {
        let c = Config::from_yaml(
            "mining:\n  threads: 0\npool:\n  address: a\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:3333\n    - algorithm: sha256d\n      listen: 127.0.0.1:3336\n      protocol: sv2\n    - algorithm: scrypt\n      listen: 127.0.0.1:3334\n      chain: litecoin-regtest\n",
            "c.yaml",
        )
        .expect("valid");
        let instances = c.instances();
        assert_eq!(instances.len(), 2, "one per algorithm");
        assert_eq!(instances[0].mining.algorithm, "sha256d");
        assert_eq!(
            instances[0].pool.sv2.listen,
            Some("127.0.0.1:3336".parse().expect("addr"))
        );
        assert_eq!(instances[1].pool.sv2.listen, None);

        for (yaml, key, why) in [
            (
                "pool:\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:3336\n      protocol: sv2\n",
                "pool.ports[0].algorithm",
                "no v1 port serves sha256d",
            ),
            (
                "pool:\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:3333\n    - algorithm: sha256d\n      listen: 127.0.0.1:3336\n      protocol: sv2\n      difficulty: 4\n",
                "pool.ports[1]",
                "takes only algorithm and listen",
            ),
            (
                "pool:\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:3333\n    - algorithm: sha256d\n      listen: 127.0.0.1:3333\n      protocol: sv2\n",
                "pool.ports[1].listen",
                "already used",
            ),
            (
                "pool:\n  sv2:\n    listen: 127.0.0.1:3336\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:3333\n",
                "pool.sv2.listen",
                "protocol: sv2",
            ),
        ] {
            let bad = Config::from_yaml(yaml, "c.yaml")
                .expect_err(yaml)
                .to_string();
            assert!(bad.contains(key) && bad.contains(why), "{yaml}: {bad}");
        }
    }

    #[test]
    fn ports_expand_into_one_configuration_each() {
        let c = Config::from_yaml(
            "mining:\n  threads: 0\npool:\n  address: a\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:3333\n    - algorithm: scrypt\n      listen: 127.0.0.1:3334\n      chain: litecoin-regtest\n      difficulty: 2\n",
            "c.yaml",
        )
        .expect("valid");
        let instances = c.instances();
        assert_eq!(instances.len(), 2);
        assert_eq!(instances[1].mining.algorithm, "scrypt");
        assert_eq!(instances[1].pool.listen.port(), 3334);
        assert_eq!(instances[1].pool.difficulty, Some(2.0));
        assert_eq!(instances[0].pool.payout_address.as_deref(), Some("a"));
        assert!(instances.iter().all(|i| i.pool.ports.is_empty()));
        let dup = Config::from_yaml(
            "pool:\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:3333\n    - algorithm: scrypt\n      listen: 127.0.0.1:3333\n",
            "c.yaml",
        )
        .expect_err("same port twice");
        assert!(
            dup.to_string()
                .starts_with("c.yaml: pool.ports[1].listen: 127.0.0.1:3333 is already used"),
            "{dup}"
        );
        let bad = Config::from_yaml(
            "pool:\n  ports:\n    - algorithm: md5\n      listen: 127.0.0.1:1\n",
            "c.yaml",
        )
        .expect_err("bad algorithm");
        assert!(
            bad.to_string().contains("pool.ports[0] (mining.algorithm)"),
            "{bad}"
        );
    }

    /// The configuration users were given, byte for byte.
    const DOCUMENTED: &str = include_str!("../../docs/config.yaml");

    #[test]
    fn the_documented_file_loads_as_it_is() {
        let c = Config::from_yaml(DOCUMENTED, "config.yaml").expect("the documented file");
        assert_eq!(c.app.name, "Otedama");
        assert_eq!(c.app.mode, "production");
        assert_eq!(c.pool.listen, "0.0.0.0:3333".parse().expect("addr"));
        assert_eq!(c.pool.payout_address, None);
        assert_eq!(c.pool.rewards.system, "pplns");
        assert!(c.pool.enable && c.mining.enable_cpu && c.mining.enable_gpu);
        assert_eq!(c.mining.cpu.threads, 0);
        assert_eq!(c.mining.gpu.intensity, 20);
        assert_eq!(c.mining.asic.poll_interval, Span(Duration::from_secs(5)));
        assert!(c.api.enabled && c.api.auth.enabled);
        assert_eq!(c.api.listen, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(c.api.auth.token_expiry, Span(Duration::from_secs(86_400)));
        assert_eq!(
            c.monitoring.metrics,
            Endpoint {
                enabled: true,
                address: Some("0.0.0.0:9090".parse().expect("addr"))
            }
        );
        assert_eq!(
            c.monitoring.health.address,
            Some("0.0.0.0:8081".parse().expect("addr"))
        );
        // threads: 0 is one per core.
        assert!(c.mining.serve_threads() >= 1);
        // Production mode with no node refuses the devnet, unless asked.
        let e = c
            .check_devnet("config.yaml")
            .expect_err("production on the devnet");
        assert_eq!(e.key, "pool.node");
        let mut asked = c.clone();
        asked.pool.devnet = true;
        asked.check_devnet("config.yaml").expect("asked for");
        let mut dev = c.clone();
        dev.app.mode = "development".into();
        dev.check_devnet("config.yaml").expect("development");
        let round = Config::from_yaml(&c.to_yaml(), "printed").expect("printed parses");
        assert_eq!(round, c);
    }

    #[test]
    fn older_spellings_still_load() {
        let c = Config::from_yaml(
            "mining:\n  threads: 3\npool:\n  listen: 127.0.0.1:4444\n  address: bcrt1qpayout\napi:\n  enabled: true\n  listen: 127.0.0.1:9999\nmonitoring:\n  metrics: true\n",
            "old.yaml",
        )
        .expect("an older file");
        assert_eq!(c.pool.payout_address.as_deref(), Some("bcrt1qpayout"));
        assert_eq!(c.pool.listen.port(), 4444);
        assert_eq!(c.mining.pool_threads(), 3);
        assert_eq!(c.mining.serve_threads(), 3);
        assert!(c.monitoring.metrics.enabled && c.monitoring.metrics.address.is_none());
        assert_eq!(c.api.listen.port(), 9999);
        let clash = Config::from_yaml(
            "pool:\n  address: somewhere\n  payout_address: elsewhere\n",
            "c.yaml",
        )
        .expect_err("two payout addresses");
        assert!(
            clash
                .to_string()
                .starts_with("c.yaml: pool.address: \"somewhere\" is not a listen address"),
            "{clash}"
        );
        let both = Config::from_yaml(
            "pool:\n  listen: 127.0.0.1:4444\n  address: 127.0.0.1:5555\n",
            "c.yaml",
        )
        .expect_err("two listen addresses");
        assert_eq!(both.key, "pool.address");
        let health = Config::from_yaml(
            "monitoring:\n  health:\n    address: 127.0.0.1:1\n",
            "c.yaml",
        )
        .expect("an address alone");
        assert!(health.monitoring.health.enabled);
        let off = Config::from_yaml("mining:\n  enable_cpu: false\n  threads: 4\n", "c.yaml")
            .expect("valid");
        assert_eq!(off.mining.serve_threads(), 0);
    }

    #[test]
    fn names_are_taken_in_any_case_and_bad_values_named() {
        let c = Config::from_yaml(
            "app:\n  mode: Development\nmining:\n  algorithm: SHA256D\n  cpu:\n    priority: LOW\npool:\n  rewards:\n    system: Solo\n",
            "c.yaml",
        )
        .expect("valid");
        assert_eq!(
            (
                c.app.mode.as_str(),
                c.mining.algorithm.as_str(),
                c.mining.cpu.priority.as_str(),
                c.pool.rewards.system.as_str()
            ),
            ("development", "sha256d", "low", "solo")
        );
        for (yaml, expected) in [
            (
                "app:\n  mode: staging\n",
                "c.yaml: app.mode: unknown value \"staging\"",
            ),
            (
                "mining:\n  cpu:\n    priority: urgent\n",
                "c.yaml: mining.cpu.priority: unknown value \"urgent\"",
            ),
            (
                "mining:\n  gpu:\n    intensity: 99\n",
                "c.yaml: mining.gpu.intensity: 99 is not between 8 and 31",
            ),
            (
                "monitoring:\n  metrics:\n    enabled: true\n    adress: 1.2.3.4:5\n",
                "c.yaml: monitoring.metrics: unknown field `adress`",
            ),
            (
                "api:\n  auth:\n    token_expiry: 0s\n",
                "c.yaml: api.auth.token_expiry: must be longer than zero",
            ),
            (
                "app:\n  colour: blue\n",
                "c.yaml: app.colour: unknown field `colour`",
            ),
        ] {
            let e = Config::from_yaml(yaml, "c.yaml")
                .expect_err(yaml)
                .to_string();
            assert!(e.starts_with(expected), "{yaml:?}: got {e:?}");
        }
    }

    #[test]
    fn spans_round_trip() {
        for text in ["90s", "30m", "2h", "1d", "0s"] {
            assert_eq!(Span::parse(text).expect(text).to_string(), text);
        }
        assert_eq!(Span::parse("120").expect("bare").to_string(), "2m");
        assert!(Span::parse("2 weeks").is_err());
        assert!(Span::parse("99999999999999999999d").is_err());
    }
}
