//! Transport hardening that every response and request goes through: the
//! security headers, the whole-request time limit, and the one decision of
//! who the client is (`X-Forwarded-For` is read only from trusted proxies).
//! TLS versions live in `tls.rs`; header-read, idle and connection limits in
//! `server.rs`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::AppState;

/// How this server meets the network: set once from the config.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// Peers whose `X-Forwarded-For` is believed (default: none).
    pub trusted_proxies: Vec<Cidr>,
    /// Whether responses carry `Strict-Transport-Security` (only over TLS).
    pub hsts: bool,
    /// Longest a request may take, body and handler included.
    pub request_timeout: Duration,
}

/// An address block such as `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let network: IpAddr = addr.parse().map_err(|_| {
            format!("`{s}` is not an address block: write it as 10.0.0.0/8 or fd00::/8")
        })?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?
        };
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The client address a request was resolved to (see [`client_address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Who the client is. The TCP `peer`, unless the peer is a trusted proxy:
/// then `X-Forwarded-For` is walked from the right (each proxy appends the
/// address of its own peer), past every hop that is a trusted proxy, and the
/// first hop that is not one is the client. A hop that does not parse stops
/// the walk too, and the answer is then the last address a trusted proxy
/// vouched for (the hop right of it, or the peer): what a client writes on
/// the left can never hide the address its proxy appended. Empty list
/// elements are skipped (RFC 9110 §5.6.1); if every hop is trusted, the
/// left-most is the client.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let lines: Vec<&HeaderValue> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
    let mut vouched = peer;
    for line in lines.into_iter().rev() {
        // A line that is not even text is one hop that does not parse.
        let Ok(line) = line.to_str() else {
            return vouched;
        };
        for hop in line.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
            let Some(ip) = parse_hop(hop) else {
                return vouched;
            };
            vouched = ip;
            if !is_trusted(ip) {
                return ip;
            }
        }
    }
    vouched
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One `X-Forwarded-For` entry: an address, optionally with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// Middleware: record the [`ClientAddr`] once, for the throttle, the
/// sign-in log and the audit log alike.
pub async fn resolve_client(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = client_address(
            peer.ip(),
            request.headers(),
            &state.transport.trusted_proxies,
        );
        request.extensions_mut().insert(ClientAddr(client));
    }
    next.run(request).await
}

/// Middleware: the security headers on every response. `Cache-Control:
/// no-store` unless the handler chose its own (discovery and JWKS are cacheable).
pub async fn security_headers(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if state.transport.hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    response
}

/// Middleware: a request (reading its body included) that takes longer than
/// `--request-timeout-seconds` gets 503 in its endpoint's error format.
pub async fn time_limit(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.transport.request_timeout;
    let uri = request.uri().clone();
    let trace_id = super::request_id(request.headers());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let path = crate::oauth::error::shorten(uri.path());
            tracing::warn!(%path, "request timed out");
            timed_out(&path, trace_id, limit)
        }
    }
}

fn timed_out(path: &str, trace_id: uuid::Uuid, limit: Duration) -> Response {
    let seconds = limit.as_secs().max(1);
    if path.starts_with("/v1.0/") {
        let message = format!(
            "The request did not complete within {seconds} seconds; send the whole request \
             promptly and retry."
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": {"code": "ServiceUnavailable", "message": message}})),
        )
            .into_response();
    }
    super::oauth_response::OAuthFailure {
        error: crate::oauth::OAuthError::timed_out(seconds),
        basic_used: false,
        trace_id,
        correlation_id: trace_id,
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in ["10.0.0.0/33", "fd00::/129", "ten/8", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = xff("203.0.113.5");
        assert_eq!(
            client_address(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client_address(ip("10.0.0.2"), &h, &[]), ip("10.0.0.2"));
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            ip("203.0.113.5")
        );
        // The right-most untrusted hop: the spoofed left part is ignored.
        let h = xff("1.2.3.4, 203.0.113.5, 10.0.0.9");
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            ip("203.0.113.5")
        );
        // Every hop trusted: the left-most.
        let h = xff("10.9.9.9, 10.0.0.9");
        assert_eq!(client_address(ip("10.0.0.2"), &h, &trusted), ip("10.9.9.9"));
        // Junk on the right (where the proxy appends): nothing better than the peer.
        for bad in ["nonsense", "203.0.113.5, junk", "", "203.0.113.5,unknown"] {
            assert_eq!(
                client_address(ip("10.0.0.2"), &xff(bad), &trusted),
                ip("10.0.0.2"),
                "{bad}"
            );
        }
        // Junk written by the client on the left cannot hide the address
        // its proxy appended: the walk stops at the first untrusted hop.
        for (header, client) in [
            ("junk, 203.0.113.5", "203.0.113.5"),
            ("<script>, 1.2.3.4, 203.0.113.5, 10.0.0.9", "203.0.113.5"),
            ("203.0.113.5:99999, 198.51.100.7", "198.51.100.7"),
            // Junk left of trusted hops: the left-most address they vouched for.
            ("junk, 10.1.1.1", "10.1.1.1"),
            ("1.2.3.4, junk, 10.1.1.1, 10.0.0.9", "10.1.1.1"),
            // Empty list elements are not hops.
            ("203.0.113.5,,", "203.0.113.5"),
            (" , 203.0.113.5", "203.0.113.5"),
        ] {
            assert_eq!(
                client_address(ip("10.0.0.2"), &xff(header), &trusted),
                ip(client),
                "{header}"
            );
        }
        // Several header lines are one list; junk in an earlier line is
        // left of the appended address.
        let mut h = xff("junk");
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.8"));
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            ip("203.0.113.8")
        );
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.8"));
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            ip("203.0.113.8")
        );
        let mut h = xff("203.0.113.8");
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(client_address(ip("10.0.0.2"), &h, &trusted), ip("10.0.0.2"));
        // No header: the peer.
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        // Ports and several header lines.
        let mut h = xff("203.0.113.5:4711");
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("[2001:db8::1]:80"),
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            ip("2001:db8::1")
        );
    }
}
