//! `clavis serve` settings: defaults < `CLAVIS_*` environment < flags (clap
//! reads both), resolved once into a [`Config`] that `App::build` takes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use time::Duration;

/// Flags of `clavis serve`; each has a `CLAVIS_*` environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "CLAVIS_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Where the SQLite database, key file, TLS files and bootstrap
    /// credentials live.
    #[arg(long, env = "CLAVIS_DATA_DIR", default_value = "./clavis-data")]
    pub data_dir: PathBuf,
    /// Database URL; default: `sqlite://{data-dir}/clavis.db`.
    #[arg(long, env = "CLAVIS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Base URL clients use (the token issuer is `{public-url}/{tenant-id}/v2.0`):
    /// `https://HOST[:PORT]`, no path, query or fragment; default: derived
    /// from --listen.
    #[arg(long, env = "CLAVIS_PUBLIC_URL", value_parser = PublicUrlParser)]
    pub public_url: Option<String>,
    /// PEM certificate chain to serve instead of the generated local CA's.
    #[arg(long, env = "CLAVIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CLAVIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (only behind a TLS-terminating proxy: secrets cross
    /// this connection).
    #[arg(long, env = "CLAVIS_PLAIN_HTTP", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub plain_http: bool,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "CLAVIS_TOKEN_LIFETIME", default_value_t = 3600,
          value_parser = clap::value_parser!(i64).range(300..=86_400))]
    pub token_lifetime: i64,
    /// `off` records no sign-ins (and so no last-used times and empty
    /// compromise reports); for measuring what the log costs.
    #[arg(long, env = "CLAVIS_SIGN_IN_LOG", default_value = "on",
          value_parser = ["on", "off"])]
    pub sign_in_log: String,
    /// Days the sign-in log keeps each sign-in; older ones are deleted hourly.
    #[arg(long, env = "CLAVIS_SIGN_IN_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub sign_in_retention_days: i64,
    /// How often to look for secrets near their end (expiry webhooks and
    /// the "expired" audit event), in seconds.
    #[arg(long, env = "CLAVIS_EXPIRY_CHECK_INTERVAL", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub expiry_check_interval: u64,
    /// Failed client authentications allowed per source address (IPv6: per
    /// /64) and tenant per minute before 429 with `Retry-After`; 0 = off.
    #[arg(
        long,
        env = "CLAVIS_THROTTLE_FAILURES_PER_ADDRESS",
        default_value_t = 20
    )]
    pub throttle_failures_per_address: u32,
    /// Failed client authentications allowed per application per minute
    /// before callers without a recent success get 429; 0 = off.
    #[arg(long, env = "CLAVIS_THROTTLE_FAILURES_PER_APP", default_value_t = 60)]
    pub throttle_failures_per_app: u32,
    /// Days a signing key signs before its successor takes over; 0: rotate
    /// only on demand (`clavis keys rotate`).
    #[arg(long, env = "CLAVIS_SIGNING_KEY_ROTATION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(i64).range(0..=3650))]
    pub signing_key_rotation_days: i64,
    /// Hours a new signing key is published in the JWKS before it signs
    /// (longer than any client's JWKS cache).
    #[arg(long, env = "CLAVIS_SIGNING_KEY_PREPUBLISH_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(i64).range(0..=24 * 365))]
    pub signing_key_prepublish_hours: i64,
    /// Where the key-encryption keys come from: `file` (`{data-dir}/kek.key`,
    /// created on first start; the active key first, older keys after it),
    /// `env` (64 hex characters in `CLAVIS_KEK`, older keys comma-separated in
    /// `CLAVIS_KEK_PREVIOUS`; never created) or `pkcs11` (an HSM: the
    /// wrapping key and the signing keys live in the token, which signs;
    /// the user PIN comes from `CLAVIS_PKCS11_PIN`).
    #[arg(long, env = "CLAVIS_KEY_PROVIDER", default_value = "file",
          value_parser = ["file", "env", "pkcs11"])]
    pub key_provider: String,
    /// The PKCS#11 module (`--key-provider pkcs11`).
    #[arg(
        long,
        env = "CLAVIS_PKCS11_MODULE",
        default_value = "/usr/lib/softhsm/libsofthsm2.so"
    )]
    pub pkcs11_module: PathBuf,
    /// The label of the PKCS#11 token to use.
    #[arg(long, env = "CLAVIS_PKCS11_TOKEN_LABEL", default_value = "clavis")]
    pub pkcs11_token_label: String,
    /// The label of the AES key in the token that wraps data keys (made on
    /// first start if the token has none); a new label and `clavis keys
    /// rewrap` rotate it.
    #[arg(
        long,
        env = "CLAVIS_PKCS11_WRAPPING_KEY_LABEL",
        default_value = "clavis-kek"
    )]
    pub pkcs11_wrapping_key_label: String,
    /// Address block of a reverse proxy whose `X-Forwarded-For` is believed
    /// (repeatable; the environment variable takes a comma-separated list).
    /// Default: none, the client address is the TCP peer.
    #[arg(
        long = "trusted-proxy",
        env = "CLAVIS_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::http::transport::Cidr>,
    /// Longest a request may take once its headers are in (body and
    /// handler), in seconds; then 503.
    #[arg(long, env = "CLAVIS_REQUEST_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_seconds: u64,
    /// Longest wait for a TLS handshake, for a request's headers, and on an
    /// idle keep-alive connection, in seconds; then the connection is closed.
    #[arg(long, env = "CLAVIS_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_seconds: u64,
    /// Log format: `text` or `json`.
    #[arg(long, env = "CLAVIS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Leading bits that make IPv6 addresses one source address for the
    /// throttle (32–128): 64 is one subscriber's allocation, 48 a site, 128
    /// each address alone. Use the same value on every node.
    #[arg(long, env = "CLAVIS_THROTTLE_IPV6_PREFIX", default_value_t = crate::oauth::throttle::DEFAULT_IPV6_PREFIX,
          value_parser = parse_ipv6_prefix)]
    pub throttle_ipv6_prefix: u8,
    /// Let webhooks point at internal addresses: this machine, private and
    /// link-local networks (incl. 169.254.169.254), carrier-grade NAT.
    /// Off by default: a caller of the management API could otherwise make
    /// Clavis call internal services.
    #[arg(long, env = "CLAVIS_ALLOW_INTERNAL_WEBHOOKS")]
    pub allow_internal_webhooks: bool,
    /// Failure entries each tenant may add to the sign-in log per minute
    /// (on each node); further refusals are counted in one "not itemised"
    /// entry per tenant and minute.
    #[arg(long, env = "CLAVIS_SIGN_IN_FAILURE_ENTRIES_PER_MINUTE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub sign_in_failure_entries_per_minute: u32,
    /// Most rows each tenant's sign-in log keeps; past it the oldest are
    /// deleted (checked every ten minutes).
    #[arg(long, env = "CLAVIS_SIGN_IN_LOG_MAX_ROWS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1_000..))]
    pub sign_in_log_max_rows: u64,
    /// Days the audit log keeps each event; older ones are deleted.
    #[arg(long, env = "CLAVIS_AUDIT_RETENTION_DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(i64).range(30..=36_500))]
    pub audit_retention_days: i64,
    /// Audit events per tenant past which Clavis logs an error and raises
    /// `clavis_log_over_budget{log="audit"}`; it never deletes an event
    /// younger than --audit-retention-days to stay within it.
    #[arg(long, env = "CLAVIS_AUDIT_LOG_MAX_ROWS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1_000..))]
    pub audit_log_max_rows: u64,
    /// Most connections served at once; more wait in the listen backlog
    /// until one closes. Default: three quarters of the open-file limit
    /// (which `serve` raises to the hard limit at start), at most 10,000.
    #[arg(long, env = "CLAVIS_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: Option<u32>,
    /// Where `/metrics` is served, in plain HTTP: an address (loopback
    /// unless `CLAVIS_METRICS_TOKEN` is set, which then guards it as a
    /// bearer token) or `off`. The main listener never serves it.
    #[arg(long, env = "CLAVIS_METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    pub metrics_listen: MetricsListen,
}

/// `--throttle-ipv6-prefix`: a prefix length the throttle accepts.
fn parse_ipv6_prefix(s: &str) -> Result<u8, String> {
    let range = crate::oauth::throttle::IPV6_PREFIXES;
    s.trim()
        .parse::<u8>()
        .ok()
        .filter(|p| range.contains(p))
        .ok_or_else(|| {
            format!(
                "`{s}` is not an IPv6 prefix length from {} to {}: write e.g. 64 (one \
                 subscriber's /64), 48 (a site) or 128 (each address alone)",
                range.start(),
                range.end()
            )
        })
}

/// `--public-url` (of `serve` and `admin recover`): checked by
/// [`crate::domain::public_url::parse`]. Unlike clap's own errors, a
/// refusal does not repeat the value, which may carry a password.
#[derive(Debug, Clone, Copy)]
pub struct PublicUrlParser;

impl clap::builder::TypedValueParser for PublicUrlParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let flag = arg.map_or_else(|| "--public-url".to_owned(), |a| a.to_string());
        let refuse = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("it is not valid UTF-8".into()))?;
        crate::domain::public_url::parse(text).map_err(refuse)
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people; colours only on a terminal and
    /// without `NO_COLOR`.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether the text log may use colour codes: only when it goes to a
/// terminal and `NO_COLOR` (<https://no-color.org>) is unset or empty.
pub fn log_colours(to_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    to_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `--metrics-listen`: an address or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        s.parse().map(Self::At).map_err(|_| {
            format!("`{s}` is not an address: write it as 127.0.0.1:9464 or [::1]:9464, or `off`")
        })
    }
}

/// How the listener speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Certificate from the local CA in `{data-dir}/tls/` (created on first start).
    LocalCa,
    /// Operator-supplied certificate chain and key.
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP behind a TLS-terminating proxy.
    Off,
}

/// The environment variable `--key-provider env` reads the KEK from.
pub const KEK_ENV: &str = "CLAVIS_KEK";
/// The PKCS#11 token's user PIN (`--key-provider pkcs11`); never a flag,
/// which `ps` would show.
pub const PKCS11_PIN_ENV: &str = "CLAVIS_PKCS11_PIN";
/// Older key-encryption keys (comma-separated) for `--key-provider env`:
/// they open records not yet rewrapped under `CLAVIS_KEK`.
pub const KEK_PREVIOUS_ENV: &str = "CLAVIS_KEK_PREVIOUS";

/// Where the key-encryption keys come from, from the `--key-provider` flags
/// (shared by `clavis serve` and `clavis admin recover`); secrets from the
/// environment.
pub fn kek_source(
    provider: &str,
    pkcs11_module: &std::path::Path,
    pkcs11_token_label: &str,
    pkcs11_wrapping_key_label: &str,
) -> crate::keys::KekSource {
    match provider {
        "env" => crate::keys::KekSource::Env {
            var: KEK_ENV.into(),
            value: std::env::var(KEK_ENV).ok().map(zeroize::Zeroizing::new),
            previous: std::env::var(KEK_PREVIOUS_ENV)
                .ok()
                .map(zeroize::Zeroizing::new),
        },
        "pkcs11" => crate::keys::KekSource::Pkcs11(crate::keys::kek::Pkcs11Config {
            module: pkcs11_module.to_path_buf(),
            token_label: pkcs11_token_label.to_owned(),
            pin: std::env::var(PKCS11_PIN_ENV)
                .ok()
                .map(zeroize::Zeroizing::new),
            wrapping_label: pkcs11_wrapping_key_label.to_owned(),
        }),
        _ => crate::keys::KekSource::File,
    }
}

/// Resolved settings for one server.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// `None`: derive from the bound address once the port is known.
    pub public_url: Option<String>,
    pub tls: Tls,
    pub token_lifetime: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Where the key-encryption key comes from.
    pub kek: crate::keys::KekSource,
    /// Whether token requests are written to the sign-in log.
    pub sign_in_log: bool,
    /// How long the sign-in log keeps a sign-in.
    pub sign_in_retention: Duration,
    /// How often the expiry scheduler runs; `None`: not in the background
    /// (tests call `AppState::expiry.run_once()` after moving the clock).
    pub expiry_check_interval: Option<std::time::Duration>,
    /// Failed client authentications allowed per minute.
    pub throttle: crate::oauth::throttle::Limits,
    /// When signing keys rotate by themselves and how early their
    /// successors are published.
    pub signing_keys: crate::keys::lifecycle::Schedule,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::http::transport::Cidr>,
    /// Longest a request may take once its headers are in.
    pub request_timeout: std::time::Duration,
    /// Longest wait for a handshake, a request's headers, or the next
    /// request on an idle connection.
    pub header_read_timeout: std::time::Duration,
    /// Whether webhooks may point at internal addresses.
    pub allow_internal_webhooks: bool,
    /// What the sign-in and audit logs may hold.
    pub log_budgets: crate::log_retention::Budgets,
    /// Most connections served at once; `None`: derived from the open-file
    /// limit ([`crate::http::file_limit::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// Where `/metrics` is served (plain HTTP); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The bearer token `/metrics` requires (`CLAVIS_METRICS_TOKEN`), as
    /// given; `App::build` refuses a weak one.
    pub metrics_token: Option<MetricsTokenValue>,
}

/// `CLAVIS_METRICS_TOKEN` as read from the environment (redacted `Debug`,
/// zeroed on drop).
#[derive(Clone)]
pub struct MetricsTokenValue(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for MetricsTokenValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Config {
    /// Settings from `clavis serve` flags.
    pub fn from_args(args: &ServeArgs) -> Self {
        let tls = match (&args.tls_cert, &args.tls_key, args.plain_http) {
            (_, _, true) => Tls::Off,
            (Some(cert), Some(key), _) => Tls::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => Tls::LocalCa,
        };
        Self {
            listen: args.listen,
            data_dir: args.data_dir.clone(),
            database_url: args.database_url.clone().unwrap_or_else(|| {
                format!("sqlite://{}", args.data_dir.join("clavis.db").display())
            }),
            public_url: args
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            tls,
            token_lifetime: Duration::seconds(args.token_lifetime),
            max_body_bytes: 64 * 1024,
            kek: kek_source(
                &args.key_provider,
                &args.pkcs11_module,
                &args.pkcs11_token_label,
                &args.pkcs11_wrapping_key_label,
            ),
            sign_in_log: args.sign_in_log == "on",
            sign_in_retention: Duration::days(args.sign_in_retention_days),
            expiry_check_interval: Some(std::time::Duration::from_secs(args.expiry_check_interval)),
            throttle: crate::oauth::throttle::Limits {
                per_address: args.throttle_failures_per_address,
                per_app: args.throttle_failures_per_app,
                ipv6_prefix: args.throttle_ipv6_prefix,
            },
            signing_keys: crate::keys::lifecycle::Schedule {
                rotate_after: (args.signing_key_rotation_days > 0)
                    .then(|| Duration::days(args.signing_key_rotation_days)),
                prepublish: Duration::hours(args.signing_key_prepublish_hours),
            },
            trusted_proxies: args.trusted_proxies.clone(),
            request_timeout: std::time::Duration::from_secs(args.request_timeout_seconds),
            header_read_timeout: std::time::Duration::from_secs(args.header_read_timeout_seconds),
            allow_internal_webhooks: args.allow_internal_webhooks,
            log_budgets: crate::log_retention::Budgets {
                sign_in_failure_entries_per_minute: args.sign_in_failure_entries_per_minute,
                sign_in_max_rows: args.sign_in_log_max_rows,
                audit_retention: Duration::days(args.audit_retention_days),
                audit_max_rows: args.audit_log_max_rows,
            },
            max_connections: args.max_connections.map(|n| n as usize),
            metrics_listen: match args.metrics_listen {
                MetricsListen::Off => None,
                MetricsListen::At(addr) => Some(addr),
            },
            metrics_token: std::env::var(crate::http::metrics_auth::METRICS_TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty())
                .map(|t| MetricsTokenValue(zeroize::Zeroizing::new(t))),
        }
    }

    /// A test configuration: port 0 on loopback, SQLite in `data_dir`.
    pub fn for_tests(data_dir: PathBuf, tls: Tls) -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            database_url: format!("sqlite://{}", data_dir.join("clavis.db").display()),
            data_dir,
            public_url: None,
            tls,
            token_lifetime: Duration::hours(1),
            max_body_bytes: 64 * 1024,
            kek: crate::keys::KekSource::File,
            sign_in_log: true,
            sign_in_retention: Duration::days(30),
            expiry_check_interval: None,
            throttle: Default::default(),
            signing_keys: Default::default(),
            trusted_proxies: Vec::new(),
            request_timeout: std::time::Duration::from_secs(30),
            header_read_timeout: std::time::Duration::from_secs(10),
            allow_internal_webhooks: false,
            log_budgets: Default::default(),
            max_connections: None,
            metrics_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            metrics_token: None,
        }
    }

    /// The public base URL for a server bound to `bound`.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let scheme = if self.tls == Tls::Off {
            "http"
        } else {
            "https"
        };
        let host = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("{scheme}://{}", SocketAddr::new(host, bound.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn transport_flags_parse() {
        let cli = Cli::try_parse_from([
            "clavis",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "fd00::/8,192.0.2.1",
            "--request-timeout-seconds",
            "5",
        ])
        .unwrap();
        let config = Config::from_args(&cli.serve);
        let blocks: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(blocks, ["10.0.0.0/8", "fd00::/8", "192.0.2.1/32"]);
        assert_eq!(config.request_timeout, std::time::Duration::from_secs(5));
        assert_eq!(
            config.header_read_timeout,
            std::time::Duration::from_secs(10)
        );
        let err = Cli::try_parse_from(["clavis", "--trusted-proxy", "10.0.0.0/40"]).unwrap_err();
        assert!(err.to_string().contains("prefix length"), "{err}");
        assert!(Cli::try_parse_from(["clavis", "--request-timeout-seconds", "0"]).is_err());
    }

    #[test]
    fn the_throttle_ipv6_prefix_is_checked() {
        let prefix = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["clavis"], args].concat())?;
            Ok::<_, clap::Error>(Config::from_args(&cli.serve).throttle.ipv6_prefix)
        };
        assert_eq!(prefix(&[]).unwrap(), 64);
        assert_eq!(prefix(&["--throttle-ipv6-prefix", "48"]).unwrap(), 48);
        assert_eq!(prefix(&["--throttle-ipv6-prefix", "128"]).unwrap(), 128);
        for bad in ["31", "129", "-1", "sixty-four", ""] {
            let flag = format!("--throttle-ipv6-prefix={bad}");
            let err = prefix(&[&flag]).unwrap_err();
            assert!(err.to_string().contains("from 32 to 128"), "{bad}: {err}");
        }
    }

    #[test]
    fn log_budget_flags_parse() {
        let defaults = Config::from_args(&Cli::try_parse_from(["clavis"]).unwrap().serve);
        assert_eq!(
            defaults.log_budgets,
            crate::log_retention::Budgets::default()
        );
        let cli = Cli::try_parse_from([
            "clavis",
            "--sign-in-failure-entries-per-minute",
            "5",
            "--sign-in-log-max-rows",
            "20000",
            "--audit-retention-days",
            "730",
            "--audit-log-max-rows",
            "50000",
        ])
        .unwrap();
        let budgets = Config::from_args(&cli.serve).log_budgets;
        assert_eq!(budgets.sign_in_failure_entries_per_minute, 5);
        assert_eq!(budgets.sign_in_max_rows, 20_000);
        assert_eq!(budgets.audit_retention, Duration::days(730));
        assert_eq!(budgets.audit_max_rows, 50_000);
        // An audit log kept less than a month, or a budget of a handful of rows, is a mistake.
        assert!(Cli::try_parse_from(["clavis", "--audit-retention-days", "7"]).is_err());
        assert!(Cli::try_parse_from(["clavis", "--sign-in-log-max-rows", "10"]).is_err());
    }

    #[test]
    fn connection_and_metrics_flags_parse() {
        let cli = Cli::try_parse_from(["clavis"]).unwrap();
        let config = Config::from_args(&cli.serve);
        assert_eq!(config.max_connections, None);
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9464".parse().unwrap()),
            "loopback by default"
        );
        let cli = Cli::try_parse_from([
            "clavis",
            "--max-connections",
            "500",
            "--metrics-listen",
            "[::1]:9000",
        ])
        .unwrap();
        let config = Config::from_args(&cli.serve);
        assert_eq!(config.max_connections, Some(500));
        assert_eq!(config.metrics_listen, Some("[::1]:9000".parse().unwrap()));
        let cli = Cli::try_parse_from(["clavis", "--metrics-listen", "off"]).unwrap();
        assert_eq!(Config::from_args(&cli.serve).metrics_listen, None);
        let err = Cli::try_parse_from(["clavis", "--metrics-listen", "9464"]).unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:9464"), "{err}");
        assert!(Cli::try_parse_from(["clavis", "--max-connections", "0"]).is_err());
    }
}
