//! Plain HTTP sent to the TLS port (a client given `http://` for an
//! `https://` server): answered, as nginx does, with a plain-HTTP 400 whose
//! text names the https URL to use, instead of a TLS alert the client shows
//! as a garbled connection error. The first byte tells them apart: a TLS
//! connection starts with a handshake record (0x16), an HTTP/1 request with
//! an upper-case method name.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest the refusal waits for the rest of the request after answering,
/// so that closing does not reset the connection before the client has
/// read the answer (nginx's lingering close).
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read (and thrown away) from a refused request.
const MAX_READ: usize = 64 * 1024;

/// Whether the first byte a client sent starts a plain HTTP/1 request
/// rather than a TLS record.
pub fn looks_like_http(first: u8) -> bool {
    first.is_ascii_uppercase()
}

/// Answer a plain HTTP request on the TLS port with a 400 naming the https
/// URL under `base_url`, then close.
pub async fn refuse(mut tcp: TcpStream, base_url: &str) {
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap_or(0);
    let body = format!(
        "400 Bad Request: the plain HTTP request was sent to an HTTPS port; use {}\n",
        https_url(base_url, &buf[..n])
    );
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         x-content-type-options: nosniff\r\ncache-control: no-store\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    if tcp.write_all(answer.as_bytes()).await.is_err() || tcp.shutdown().await.is_err() {
        return;
    }
    let mut read = n;
    let _ = tokio::time::timeout(LINGER, async {
        while read < MAX_READ {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(more) => read += more,
            }
        }
    })
    .await;
}

/// `base_url` with the path of the request line in `request` (its query
/// left out), or `base_url/` when there is no usable path.
pub fn https_url(base_url: &str, request: &[u8]) -> String {
    let line = request
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let path = line
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|p| std::str::from_utf8(p).ok())
        .map(|p| p.split(['?', '#']).next().unwrap_or_default())
        .filter(|p| p.starts_with('/') && p.len() <= 512 && p.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("/");
    format!("{}{path}", base_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_http_are_told_apart_by_the_first_byte() {
        assert!(!looks_like_http(0x16), "a TLS handshake record");
        for method in ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            assert!(looks_like_http(method.as_bytes()[0]), "{method}");
        }
    }

    #[test]
    fn the_answer_names_the_https_url_of_the_request() {
        let base = "https://127.0.0.1:8443";
        assert_eq!(
            https_url(
                base,
                b"POST /default/oauth2/v2.0/token?x=1 HTTP/1.1\r\nHost: h\r\n"
            ),
            "https://127.0.0.1:8443/default/oauth2/v2.0/token"
        );
        assert_eq!(https_url(base, b"GET"), "https://127.0.0.1:8443/");
        assert_eq!(
            https_url(base, b"GET http://evil/ HTTP/1.1\r\n"),
            "https://127.0.0.1:8443/"
        );
        assert_eq!(
            https_url(base, b"GET /a\x01b HTTP/1.1\r\n"),
            "https://127.0.0.1:8443/"
        );
    }
}
