//! The claims of tokens Clavis reads back (oauth/claims.rs,
//! oauth/introspection.rs): any claims signed and read back are the same
//! claims, the unverified `tid` the management API reads is the signed one,
//! and the checks of the validity window, tenant, issuer and audience never
//! panic (no overflow on extreme `exp`/`nbf`) and agree with exact
//! arithmetic.
#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use clavis::fuzzing::unverified_tid;
use clavis::keys::{jws, Algorithm, SigningKey, VerifyingKey};
use clavis::oauth::claims::AccessTokenClaims;
use clavis::oauth::introspection::{claims_inactive, Expect, Inactive, LEEWAY_SECS};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const BASE: &str = "https://clavis.example";

fn keys() -> &'static [(SigningKey, VerifyingKey)] {
    static KEYS: OnceLock<Vec<(SigningKey, VerifyingKey)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Algorithm::ALL
            .into_iter()
            .map(|alg| {
                let (key, _) = SigningKey::generate(alg).expect("key");
                let verifier = VerifyingKey::from_jwk(key.public_jwk()).expect("jwk");
                (key, verifier)
            })
            .collect()
    })
}

#[derive(Arbitrary, Debug)]
struct Input {
    alg: u8,
    tid: u128,
    /// The tenant the check is made for; `None`: the token's own.
    check_tenant: Option<u128>,
    iss_is_ours: bool,
    iss: String,
    aud: u128,
    expect_audience: Option<u128>,
    exp_leeway: bool,
    azp: u128,
    roles: Vec<String>,
    azpacr: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    now: i64,
    jti: u128,
    credential_id: u128,
}

fuzz_target!(|input: Input| {
    let tid = Uuid::from_u128(input.tid);
    let claims = AccessTokenClaims {
        iss: if input.iss_is_ours {
            format!("{BASE}/{tid}/v2.0")
        } else {
            input.iss
        },
        aud: Uuid::from_u128(input.aud),
        sub: Uuid::from_u128(input.azp ^ 1),
        oid: Uuid::from_u128(input.azp ^ 1),
        azp: Uuid::from_u128(input.azp),
        client_id: Uuid::from_u128(input.azp),
        azpacr: Cow::Owned(input.azpacr),
        tid,
        roles: input.roles,
        idtyp: Cow::Borrowed("app"),
        iat: input.iat,
        nbf: input.nbf,
        exp: input.exp,
        jti: Uuid::from_u128(input.jti),
        ver: Cow::Borrowed("2.0"),
        credential_id: Uuid::from_u128(input.credential_id),
    };
    let (key, verifier) = &keys()[usize::from(input.alg) % keys().len()];
    let token = jws::encode(key, &claims).expect("a software key signs");
    let read: AccessTokenClaims = jws::decode(&token, verifier).expect("our own token verifies");
    assert_eq!(read, claims);
    let payload = token.split('.').nth(1).expect("three parts");
    assert_eq!(unverified_tid(payload), Some(tid));

    let tenant = input.check_tenant.map_or(tid, Uuid::from_u128);
    let expect = Expect {
        audience: input.expect_audience.map(Uuid::from_u128),
        exp_leeway: if input.exp_leeway { LEEWAY_SECS } else { 0 },
    };
    let now = input.now;
    let verdict = claims_inactive(&read, tenant, BASE, now, expect);
    // The same rules in exact arithmetic.
    let expired = i128::from(read.exp) + i128::from(expect.exp_leeway) <= i128::from(now);
    let early = i128::from(read.nbf) - i128::from(LEEWAY_SECS) > i128::from(now);
    let expected = if read.tid != tenant {
        Some(Inactive::OtherTenant)
    } else if expired {
        Some(Inactive::Expired)
    } else if early {
        Some(Inactive::NotYetValid)
    } else if read.iss != format!("{BASE}/{tenant}/v2.0") {
        Some(Inactive::OtherIssuer)
    } else if expect.audience.is_some_and(|a| a != read.aud) {
        Some(Inactive::OtherAudience)
    } else {
        None
    };
    assert_eq!(verdict, expected);
});
