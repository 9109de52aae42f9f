//! Node configuration (`node.toml`): read raw with unknown keys refused, then validated into typed values with errors that name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest config file read.
pub const CONFIG_BYTES_MAX: usize = 64 * 1024;
/// Most bootstrap peers listed.
pub const PEERS_MAX: usize = 256;

/// A validated node configuration. Paths are absolute (resolved against the
/// config file's directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub genesis: PathBuf,
    pub key: PathBuf,
    /// TCP address the p2p transport listens on.
    pub p2p_listen: SocketAddr,
    /// p2p addresses of other members to dial at start.
    pub peers: Vec<SocketAddr>,
    /// HTTP API address (loopback by default).
    pub api_listen: SocketAddr,
    pub mempool: MempoolConfig,
    /// Most simultaneous p2p connections.
    pub connections_max: u32,
    /// Test-only misbehaviour ([`crate::byzantine`]); refused at start on any chain but a testnet.
    pub byzantine: Option<crate::byzantine::Mode>,
    /// Test-only: this node's wall clock runs this many ms off (refused at start on
    /// any chain but a testnet). Exercises BFT time against a validator with a wrong clock.
    pub clock_skew_ms: i64,
    /// Where the passphrase of an encrypted key file comes from (`key_passphrase_env` or
    /// `key_passphrase_file`); `None` for a plain key file.
    pub key_passphrase: Option<PassphraseSource>,
    /// HTTP API limits (`[api]`).
    pub api: ApiLimitsConfig,
    /// The member name this node's key has once governance adds it: a joining
    /// member's node, whose key is no member's in the chain it has stored yet
    /// (docs/OPERATIONS.md, "Adding a bank"). Unused once the key is a member in force.
    pub member: Option<credence_ledger::ids::MemberName>,
    /// A validator computes and signs a snapshot statement (docs/OPERATIONS.md §Starting from
    /// a snapshot) at every height that is a multiple of this; 0 never.
    pub snapshot_interval_heights: u64,
}

/// Default of `snapshot_interval_heights`: about three hours of blocks at one a second on a busy
/// chain; an idle chain makes a heartbeat block a minute, so about a week.
pub const SNAPSHOT_INTERVAL_HEIGHTS_DEFAULT: u64 = 10_000;
/// Largest `snapshot_interval_heights`.
pub const SNAPSHOT_INTERVAL_HEIGHTS_MAX: u64 = 100_000_000;

/// Most requests per second a client may be allowed (`[api] rate_per_second`).
pub const API_RATE_PER_SECOND_MAX: u32 = 1_000_000;

/// `[api]`: the per-client request rate of the HTTP API (see `api::RateLimit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiLimitsConfig {
    /// Requests per second one client (IPv4 address or IPv6 /64) may make on average.
    pub rate_per_second: u32,
    /// Requests one client may make at once before the rate applies.
    pub rate_burst: u32,
}

impl Default for ApiLimitsConfig {
    fn default() -> Self {
        let d = crate::api::RATE_DEFAULT;
        ApiLimitsConfig { rate_per_second: d.per_second, rate_burst: d.burst }
    }
}

impl ApiLimitsConfig {
    pub fn rate(&self) -> crate::api::RateLimit {
        crate::api::RateLimit { per_second: self.rate_per_second, burst: self.rate_burst }
    }
}

/// Where a key file's passphrase is read from (see `keyfile`). Holds no secret: a variable
/// name or a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassphraseSource {
    /// An environment variable's value.
    Env(String),
    /// A file's contents less one trailing newline (the file must be 0600 like a key file).
    File(PathBuf),
}

/// Default `[mempool] records_max`: a few blocks' worth (six of a local testnet's
/// 5,000-record blocks), so that overload turns into early `503 mempool_full` refusals
/// rather than an ever longer queue; admitted records are never evicted for room.
pub const RECORDS_MAX_DEFAULT: u32 = 30_000;
/// Default `[mempool] bytes_max`: 32 MiB (30,000 typical records take about 10 MiB).
pub const BYTES_MAX_DEFAULT: u64 = 32 * 1024 * 1024;

/// Mempool bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Most pending attestations.
    pub records_max: u32,
    /// Most bytes of pending attestations.
    pub bytes_max: u64,
    /// How far ahead of the next expected sequence an attestation may be held.
    pub ahead_max: u32,
    /// Percentage of both bounds reserved in equal shares for the genesis members, so that
    /// one member's burst cannot fill the pool for everyone (0..=100; see `mempool`).
    #[serde(default = "reserved_percent_default")]
    pub reserved_percent: u8,
}

fn reserved_percent_default() -> u8 {
    credence_consensus::mempool::RESERVED_PERCENT_DEFAULT
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            records_max: RECORDS_MAX_DEFAULT,
            bytes_max: BYTES_MAX_DEFAULT,
            ahead_max: 4096,
            reserved_percent: reserved_percent_default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: String,
    genesis: String,
    key: String,
    p2p_listen: String,
    #[serde(default)]
    peers: Vec<String>,
    #[serde(default = "default_api")]
    api_listen: String,
    #[serde(default)]
    mempool: Option<MempoolConfig>,
    #[serde(default = "default_connections")]
    connections_max: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    byzantine: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    clock_skew_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_passphrase_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_passphrase_file: Option<String>,
    #[serde(default)]
    api: Option<ApiLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member: Option<String>,
    #[serde(default = "default_snapshot_interval")]
    snapshot_interval_heights: u64,
}

fn default_api() -> String {
    "127.0.0.1:8080".into()
}
fn default_connections() -> u32 {
    64
}
fn default_snapshot_interval() -> u64 {
    SNAPSHOT_INTERVAL_HEIGHTS_DEFAULT
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config: cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("config: {len} bytes exceed the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("config: not valid TOML for a node config: {0}")]
    Toml(String),
    #[error("config: {key}: {rule}")]
    Invalid { key: String, rule: String },
}

fn invalid(key: impl Into<String>, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), rule: rule.into() }
}

fn addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| invalid(key, format!("'{s}' is not an IP address and port, e.g. 127.0.0.1:7001")))
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let io = |e: std::io::Error| ConfigError::Io { path: path.display().to_string(), reason: e.to_string() };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > CONFIG_BYTES_MAX as u64 {
            return Err(ConfigError::TooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: CONFIG_BYTES_MAX,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let base = path.parent().unwrap_or(Path::new("."));
        NodeConfig::from_toml(&text, base)
    }

    /// Parses a config whose relative paths are relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<NodeConfig, ConfigError> {
        if text.len() > CONFIG_BYTES_MAX {
            return Err(ConfigError::TooLarge { len: text.len(), max: CONFIG_BYTES_MAX });
        }
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        let path = |key: &str, s: &str| {
            if s.is_empty() {
                return Err(invalid(key, "must not be empty (\".\" is the config file's directory)"));
            }
            // Normalised, so `data_dir = "."` is the directory itself rather than `DIR/.`.
            Ok(base.join(s).components().collect::<PathBuf>())
        };
        if raw.peers.len() > PEERS_MAX {
            return Err(invalid("peers", format!("at most {PEERS_MAX} peers")));
        }
        let peers =
            raw.peers.iter().enumerate().map(|(i, p)| addr(&format!("peers[{i}]"), p)).collect::<Result<_, _>>()?;
        let mempool = raw.mempool.unwrap_or_default();
        if mempool.records_max == 0 || mempool.bytes_max < 64 * 1024 {
            return Err(invalid("mempool", "records_max must be at least 1 and bytes_max at least 65536"));
        }
        if mempool.reserved_percent > 100 {
            return Err(invalid("mempool.reserved_percent", "must be a percentage, 0 to 100"));
        }
        if raw.connections_max == 0 || raw.connections_max > 1024 {
            return Err(invalid("connections_max", "must be between 1 and 1024"));
        }
        let byzantine = match raw.byzantine.as_deref() {
            None => None,
            Some(name) => Some(crate::byzantine::Mode::parse(name).ok_or_else(|| {
                invalid("byzantine", format!("test-only; must be one of {}", crate::byzantine::Mode::NAMES.join(", ")))
            })?),
        };
        let key_passphrase = match (&raw.key_passphrase_env, &raw.key_passphrase_file) {
            (Some(_), Some(_)) => {
                return Err(invalid("key_passphrase_env", "give key_passphrase_env or key_passphrase_file, not both"));
            }
            (Some(var), None) => {
                if var.is_empty() || var.contains('=') || var.contains('\0') {
                    return Err(invalid(
                        "key_passphrase_env",
                        "must be an environment variable name (non-empty, no '=')",
                    ));
                }
                Some(PassphraseSource::Env(var.clone()))
            }
            (None, Some(file)) => Some(PassphraseSource::File(path("key_passphrase_file", file)?)),
            (None, None) => None,
        };
        let api = raw.api.unwrap_or_default();
        if api.rate_per_second == 0 || api.rate_per_second > API_RATE_PER_SECOND_MAX {
            return Err(invalid("api.rate_per_second", format!("must be between 1 and {API_RATE_PER_SECOND_MAX}")));
        }
        if api.rate_burst < 1 || api.rate_burst > API_RATE_PER_SECOND_MAX {
            return Err(invalid("api.rate_burst", format!("must be between 1 and {API_RATE_PER_SECOND_MAX}")));
        }
        if raw.snapshot_interval_heights > SNAPSHOT_INTERVAL_HEIGHTS_MAX {
            return Err(invalid(
                "snapshot_interval_heights",
                format!("must be between 0 (never) and {SNAPSHOT_INTERVAL_HEIGHTS_MAX}"),
            ));
        }
        Ok(NodeConfig {
            snapshot_interval_heights: raw.snapshot_interval_heights,
            api,
            key_passphrase,
            data_dir: path("data_dir", &raw.data_dir)?,
            genesis: path("genesis", &raw.genesis)?,
            key: path("key", &raw.key)?,
            p2p_listen: addr("p2p_listen", &raw.p2p_listen)?,
            peers,
            api_listen: addr("api_listen", &raw.api_listen)?,
            mempool,
            connections_max: raw.connections_max,
            byzantine,
            clock_skew_ms: raw.clock_skew_ms,
            member: match &raw.member {
                Some(m) => Some(
                    credence_ledger::ids::MemberName::parse("member", m)
                        .map_err(|e| invalid("member", e.to_string()))?,
                ),
                None => None,
            },
        })
    }

    /// The file form for a file in directory `base`: paths inside `base` are written
    /// relative to it (`base` itself as `"."`, never as an empty string, which
    /// [`NodeConfig::from_toml`] refuses), other paths as given.
    pub fn to_toml(&self, base: &Path) -> String {
        let rel = |p: &Path| match p.strip_prefix(base) {
            Ok(inside) if inside.as_os_str().is_empty() => ".".to_string(),
            Ok(inside) => inside.display().to_string(),
            Err(_) => p.display().to_string(),
        };
        let raw = RawConfig {
            data_dir: rel(&self.data_dir),
            genesis: rel(&self.genesis),
            key: rel(&self.key),
            p2p_listen: self.p2p_listen.to_string(),
            peers: self.peers.iter().map(|p| p.to_string()).collect(),
            api_listen: self.api_listen.to_string(),
            mempool: Some(self.mempool),
            connections_max: self.connections_max,
            byzantine: self.byzantine.map(|m| m.name().to_string()),
            clock_skew_ms: self.clock_skew_ms,
            api: Some(self.api),
            member: self.member.as_ref().map(ToString::to_string),
            snapshot_interval_heights: self.snapshot_interval_heights,
            key_passphrase_env: match &self.key_passphrase {
                Some(PassphraseSource::Env(v)) => Some(v.clone()),
                _ => None,
            },
            key_passphrase_file: match &self.key_passphrase {
                Some(PassphraseSource::File(p)) => Some(rel(p)),
                _ => None,
            },
        };
        match toml::to_string(&raw) {
            Ok(s) => s,
            Err(e) => unreachable!("a validated config always serializes: {e}"),
        }
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "data_dir = \"data\"\ngenesis = \"genesis.toml\"\nkey = \"keys/a.key\"\np2p_listen = \"127.0.0.1:7001\"\npeers = [\"127.0.0.1:7002\"]\n";

    #[test]
    fn valid_config_resolves_paths_and_round_trips() {
        let base = Path::new("/etc/credence");
        let c = NodeConfig::from_toml(OK, base).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/credence/data"));
        assert_eq!(c.api_listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.mempool, MempoolConfig::default());
        assert_eq!(NodeConfig::from_toml(&c.to_toml(base), base).unwrap(), c);
        assert_eq!(c.key_passphrase, None);
        assert_eq!(c.api, ApiLimitsConfig::default());
        let limited =
            NodeConfig::from_toml(&format!("{OK}[api]\nrate_per_second = 5\nrate_burst = 10\n"), base).unwrap();
        assert_eq!(limited.api.rate(), crate::api::RateLimit { per_second: 5, burst: 10 });
        assert_eq!(NodeConfig::from_toml(&limited.to_toml(base), base).unwrap(), limited);
        for (line, want) in [
            ("key_passphrase_env = \"CREDENCE_PASS\"\n", PassphraseSource::Env("CREDENCE_PASS".into())),
            ("key_passphrase_file = \"keys/pass\"\n", PassphraseSource::File("/etc/credence/keys/pass".into())),
        ] {
            let c = NodeConfig::from_toml(&format!("{OK}{line}"), base).unwrap();
            assert_eq!(c.key_passphrase, Some(want));
            assert_eq!(NodeConfig::from_toml(&c.to_toml(base), base).unwrap(), c);
        }
    }

    #[test]
    fn a_data_dir_that_is_the_config_directory_round_trips() {
        // `credence init --data-dir DIR` writes DIR/node.toml whose data_dir is DIR itself.
        let base = Path::new("/var/lib/credence");
        let c = NodeConfig::from_toml(OK, base).unwrap();
        let c = NodeConfig { data_dir: base.to_path_buf(), genesis: base.join("genesis.toml"), ..c };
        let text = c.to_toml(base);
        assert!(text.contains("data_dir = \".\"\n"), "{text}");
        assert!(text.contains("genesis = \"genesis.toml\"\n"), "{text}");
        assert_eq!(NodeConfig::from_toml(&text, base).unwrap(), c);
        // Read from another directory (the directory was moved), it follows the file.
        let moved = NodeConfig::from_toml(&text, Path::new("/srv/credence")).unwrap();
        assert_eq!(moved.data_dir, Path::new("/srv/credence"));
        assert_eq!(moved.genesis, Path::new("/srv/credence/genesis.toml"));
        assert_eq!(moved.key, Path::new("/srv/credence/keys/a.key"));
    }

    #[test]
    fn errors_name_the_key() {
        let base = Path::new("/");
        let cases = [
            (OK.replace("127.0.0.1:7001", "localhost"), "p2p_listen"),
            (OK.replace("127.0.0.1:7002", "x"), "peers[0]"),
            (OK.replace("\"data\"", "\"\""), "data_dir"),
            (format!("{OK}connections_max = 0\n"), "connections_max"),
            (format!("{OK}snapshot_interval_heights = 100000001\n"), "snapshot_interval_heights"),
            (format!("{OK}key_passphrase_env = \"\"\n"), "key_passphrase_env"),
            (format!("{OK}key_passphrase_env = \"A\"\nkey_passphrase_file = \"p\"\n"), "key_passphrase_env"),
            (format!("{OK}key_passphrase_file = \"\"\n"), "key_passphrase_file"),
            (format!("{OK}[api]\nrate_per_second = 0\nrate_burst = 1\n"), "api.rate_per_second"),
            (format!("{OK}[api]\nrate_per_second = 5\nrate_burst = 0\n"), "api.rate_burst"),
            (format!("{OK}[mempool]\nrecords_max = 0\nbytes_max = 1\nahead_max = 1\n"), "mempool"),
            (
                format!("{OK}[mempool]\nrecords_max = 10\nbytes_max = 70000\nahead_max = 1\nreserved_percent = 101\n"),
                "mempool.reserved_percent",
            ),
        ];
        for (text, key) in cases {
            match NodeConfig::from_toml(&text, base) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        let Err(ConfigError::Toml(msg)) = NodeConfig::from_toml(&format!("{OK}colour = 1\n"), base) else {
            panic!("unknown keys must be refused")
        };
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn byzantine_mode_is_a_known_name_and_round_trips() {
        let base = Path::new("/etc/credence");
        let c = NodeConfig::from_toml(&format!("byzantine = \"replay\"\n{OK}"), base).unwrap();
        assert_eq!(c.byzantine, Some(crate::byzantine::Mode::Replay));
        assert_eq!(NodeConfig::from_toml(&c.to_toml(base), base).unwrap(), c);
        assert!(!NodeConfig::from_toml(OK, base).unwrap().to_toml(base).contains("byzantine"));
        let e = NodeConfig::from_toml(&format!("byzantine = \"evil\"\n{OK}"), base).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key, rule } if key == "byzantine" && rule.contains("equivocate")),
            "{e}"
        );
    }
}
