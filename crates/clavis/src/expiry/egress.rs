//! Where webhook deliveries may connect, and what a failed attempt says.
//!
//! A webhook URL is chosen by a caller of the management API, so a delivery
//! is a request Clavis makes on their behalf (server-side request forgery).
//! Unless the operator allows internal targets (`--allow-internal-webhooks`),
//! a delivery never connects to an internal address
//! ([`crate::domain::internal_address`]): an IP literal is checked before
//! anything is sent, and a host name is resolved once by [`PublicOnly`],
//! which drops internal addresses from the answer; the connection is made to
//! exactly the addresses it returned (reqwest connects to what the resolver
//! gives, with the URL's host for SNI and `Host`), so a name that resolves
//! elsewhere a moment later (DNS rebinding) changes nothing. Redirects are
//! not followed and no proxy is used (a proxy would resolve the name itself).
//!
//! What a caller reads in the delivery log is one of a few fixed texts
//! ("connection failed", "TLS handshake failed", "HTTP 500", ...), never a
//! resolver error, a certificate's names or a port's state, which would make
//! webhooks a probe of the network Clavis sits in; the details go to the
//! server log.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::internal_address;

/// The delivery-log text for a target refused as internal.
pub const REFUSED_INTERNAL: &str = "refused: the target is an internal address (Clavis sends \
     webhooks there only with --allow-internal-webhooks)";

/// The HTTP client for webhooks and the rule it enforces.
#[derive(Debug, Clone)]
pub struct Egress {
    http: reqwest::Client,
    allow_internal: bool,
}

/// Why an attempt got no HTTP status: the text for the delivery log, and
/// the details for the server log only.
#[derive(Debug)]
pub struct Failure {
    pub shown: &'static str,
    pub detail: String,
}

impl Egress {
    /// A client with a `timeout` per attempt; internal targets only when
    /// `allow_internal`.
    pub fn new(timeout: Duration, allow_internal: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Clavis-Webhook/", env!("CARGO_PKG_VERSION")));
        if !allow_internal {
            builder = builder.dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        Egress {
            http: builder
                .build()
                .expect("a client with static settings builds"),
            allow_internal,
        }
    }

    /// Whether internal targets are allowed (`--allow-internal-webhooks`).
    pub fn allows_internal(&self) -> bool {
        self.allow_internal
    }

    /// POST `body` with `headers` to `url`: the HTTP status, or why there is
    /// none.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Result<u16, Failure> {
        // An IP literal is connected to without a lookup: check it here.
        // Names are checked on their resolved addresses by `PublicOnly`.
        if !self.allow_internal && internal_literal(url) {
            return Err(Failure {
                shown: REFUSED_INTERNAL,
                detail: "the URL's host is an internal IP address".into(),
            });
        }
        let mut request = self.http.post(url).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(classify)?;
        Ok(response.status().as_u16())
    }
}

/// Resolves a host name once and keeps only the addresses that are not
/// internal; an answer with nothing else is refused.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public = keep_public(&found);
            if public.is_empty() && !found.is_empty() {
                return Err(Box::new(InternalTarget) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether `url`'s host is an IP address that is internal (a URL that does
/// not parse counts as one: it is never sent).
fn internal_literal(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return true;
    };
    let host = parsed.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => internal_address::is_internal(ip),
        Err(_) => host.is_empty(),
    }
}

/// The addresses of `found` that are not internal, in their order.
pub fn keep_public(found: &[SocketAddr]) -> Vec<SocketAddr> {
    found
        .iter()
        .copied()
        .filter(|a| !internal_address::is_internal(a.ip()))
        .collect()
}

/// A host name that resolved to internal addresses only.
#[derive(Debug, thiserror::Error)]
#[error("the host name resolves to internal addresses only")]
pub struct InternalTarget;

/// The fixed text for a failed request, and its details for the log.
fn classify(err: reqwest::Error) -> Failure {
    let err = err.without_url();
    let mut detail = String::new();
    let mut internal = false;
    let mut tls = false;
    visit(&err, &mut |e| {
        if !detail.is_empty() {
            detail.push_str(": ");
        }
        detail.push_str(&e.to_string());
        internal |= e.is::<InternalTarget>();
        tls |= e.is::<rustls::Error>();
    });
    let shown = if internal {
        REFUSED_INTERNAL
    } else if err.is_timeout() {
        "timed out after 10 s"
    } else if tls {
        "TLS handshake failed"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Failure {
        shown,
        detail: detail.chars().take(500).collect(),
    }
}

/// Call `f` on `err` and every error inside it: its sources, and what an
/// `io::Error` wraps (whose `source()` skips the wrapped error itself, as
/// when a TLS connector wraps rustls's error in two of them).
fn visit(
    err: &(dyn std::error::Error + 'static),
    f: &mut impl FnMut(&(dyn std::error::Error + 'static)),
) {
    f(err);
    let wrapped = err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    if let Some(inner) = wrapped.or_else(|| err.source()) {
        visit(inner, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_kept() {
        let found: Vec<SocketAddr> = [
            "127.0.0.1:0",
            "93.184.216.34:0",
            "[::1]:0",
            "169.254.169.254:0",
            "[2606:4700::1]:0",
            "10.1.2.3:0",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let kept: Vec<String> = keep_public(&found).iter().map(|a| a.to_string()).collect();
        assert_eq!(kept, ["93.184.216.34:0", "[2606:4700::1]:0"]);
    }

    #[tokio::test]
    async fn a_name_is_refused_on_the_addresses_it_resolves_to() {
        // `localhost` resolves (through the system's resolver, as any name
        // would) to loopback addresses only.
        let err = PublicOnly
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("refused");
        assert!(err.is::<InternalTarget>(), "{err}");
    }

    #[test]
    fn errors_wrapped_in_io_errors_are_found() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let twice =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let mut found = false;
        visit(&twice, &mut |e| found |= e.is::<rustls::Error>());
        assert!(found);
    }

    #[test]
    fn literals_are_checked_without_a_lookup() {
        for internal in [
            "http://127.0.0.1:9/x",
            "http://[::1]/",
            "https://169.254.169.254/latest",
            "https://10.0.0.1/",
            "not a url",
        ] {
            assert!(internal_literal(internal), "{internal}");
        }
        for other in [
            "https://93.184.216.34/",
            "https://hooks.example.com/",
            "http://localhost/",
        ] {
            assert!(!internal_literal(other), "{other}");
        }
    }
}
