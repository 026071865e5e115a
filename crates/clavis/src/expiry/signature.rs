//! Webhook signing secrets and the `Clavis-Signature` header (Stripe
//! style): `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
//! The key is the whole secret string as shown to the subscriber.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use zeroize::Zeroizing;

/// Prefix of every webhook signing secret.
pub const PREFIX: &str = "whsec_";

/// A webhook signing secret: `whsec_` + 256 random bits in base64url.
/// `Debug` is redacted; memory is zeroed on drop.
pub struct WebhookSecret(Zeroizing<String>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut bytes[..])
            .expect("the OS random source failed");
        let mut text = Zeroizing::new(String::with_capacity(PREFIX.len() + 43));
        text.push_str(PREFIX);
        B64.encode_string(&bytes[..], &mut text);
        Self(text)
    }

    /// A secret from its stored (unsealed) bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        text.starts_with(PREFIX)
            .then(|| Self(Zeroizing::new(text.to_owned())))
    }

    /// The value, for the one response that shows it and for sealing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `Clavis-Signature` header value for `body` sent at `t`.
    pub fn header(&self, t: i64, body: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.as_bytes());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(t.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body.as_bytes());
        let tag = ctx.sign();
        format!("t={t},v1={}", crate::keys::kek::hex_encode(tag.as_ref()))
    }
}

/// The value is serialized only into the response that creates it.
impl serde::Serialize for WebhookSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_redacted() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(PREFIX));
        assert_eq!(a.expose().len(), PREFIX.len() + 43);
        assert!(!format!("{a:?}").contains(&a.expose()[6..]));
        let back = WebhookSecret::from_bytes(a.expose().as_bytes()).unwrap();
        assert_eq!(back.expose(), a.expose());
        assert!(WebhookSecret::from_bytes(b"nope").is_none());
    }

    #[test]
    fn header_is_stripe_style_hmac() {
        // Known answer: HMAC-SHA256("whsec_test", "1700000000.{}"), as
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test` gives.
        let s = WebhookSecret(Zeroizing::new("whsec_test".into()));
        assert_eq!(
            s.header(1_700_000_000, "{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
