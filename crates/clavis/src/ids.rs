//! Random identifiers on the hot path. [`uuid_v4`] draws from aws-lc's
//! process CSPRNG (a user-space DRBG seeded from the OS) instead of asking
//! the kernel each time as `Uuid::new_v4` does: the token endpoint needs two
//! per request (the request id and the token's `jti`), and those two
//! `getrandom` system calls cost more than the rest of the request parsing.

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use uuid::Uuid;

/// A random (version 4) UUID, as `Uuid::new_v4` makes, from the process CSPRNG.
pub fn uuid_v4() -> Uuid {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the CSPRNG does not fail once seeded");
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Gives each request a fresh [`uuid_v4`] id, in the same hyphenated
/// lower-case form as tower-http's `MakeRequestUuid`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRequestUuidV4;

impl MakeRequestId for MakeRequestUuidV4 {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut text = Uuid::encode_buffer();
        let text = uuid_v4().hyphenated().encode_lower(&mut text);
        let value = HeaderValue::from_str(text).expect("a UUID is a valid header value");
        Some(RequestId::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_random_version_4() {
        let a = uuid_v4();
        assert_eq!(a.get_version(), Some(uuid::Version::Random));
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, uuid_v4());
    }

    #[test]
    fn request_ids_look_like_make_request_uuid() {
        let request = Request::new(());
        let id = MakeRequestUuidV4.make_request_id(&request).unwrap();
        let text = id.header_value().to_str().unwrap();
        let parsed = Uuid::try_parse(text).unwrap();
        assert_eq!(text, parsed.hyphenated().to_string());
        assert_eq!(parsed.get_version(), Some(uuid::Version::Random));
    }
}
