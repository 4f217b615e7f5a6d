//! What access-token verification costs on top of the bare Ed25519 check it is built on.
//!
//! `cargo bench -p warden-core --bench verify`. Group `verify`:
//! - `verify_access_token`: parse, `kid` lookup, strict signature check, claims, validation;
//! - `ed25519_verify_strict`: `ed25519_dalek` strict verification of the same signing input
//!   and signature, the floor for the line above;
//! - `ed25519_verify`: plain (lenient) verification, for reference only;
//! - `jws_encode`: signing the same claims into a token;
//! - `jws_parse`: parsing alone (size, base64, header rules), no signature work;
//! - `claims_decode`: deserializing the claims alone. With `jws_parse`, this is most of what
//!   `verify_access_token` adds to `ed25519_verify_strict`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark's setup fails by panicking"
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ed25519_dalek::Verifier as _;
use warden_core::claims::{AccessClaims, Actor, Audience, Confirmation};
use warden_core::jws::{self, UnverifiedToken};
use warden_core::token::{verify_access_token, KeySet, Validation};
use warden_core::{PublicKey, SigningKey};

const NOW: i64 = 1_750_000_000;
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://api.example.com";
const KID: &str = "2025-06-ed25519-1";

/// An access token as the authority issues one, with every optional claim present.
fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "agt_01JXQ7Z8M4K2R9T5V3W6Y1B0CD".into(),
        aud: Audience::One(AUDIENCE.into()),
        exp: NOW + 900,
        iat: NOW,
        nbf: NOW,
        jti: "01JXQ80A6F3N9P2S7H4K8M5R1T".into(),
        client_id: "agt_01JXQ7Z8M4K2R9T5V3W6Y1B0CD".into(),
        tenant: "tnt_01JXQ7YZ4C8D2E6F0G3H5J7K9M".into(),
        scope: "orders:read orders:write invoices:read".into(),
        act: Some(Actor {
            sub: "agt_01JXQ81B7G4P0Q3T8J5L9N6S2V".into(),
            act: Some(Box::new(Actor {
                sub: "usr_01JXQ82C8H5Q1R4U9K6M0P7T3W".into(),
                act: None,
            })),
        }),
        cnf: Some(Confirmation {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        }),
        allowed_ips: Some(vec!["10.20.0.0/16".into(), "2001:db8::/48".into()]),
        max_uses: Some(100),
    }
}

fn verify(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let claims = claims();
    let token = jws::encode("at+jwt", Some(KID), &claims, &key).unwrap();
    // The verifier's key arrives as bytes (a JWKS), decoded like the bare key below, so both
    // sides verify against the same decompressed point.
    let public_key = PublicKey::from_bytes(&key.public_key().to_bytes()).unwrap();
    let mut keys = KeySet::new();
    keys.insert(KID, public_key);
    let validation = Validation::access_token(ISSUER, vec![AUDIENCE.into()]);
    // Measure the accepting path only: a refusal would be cheaper and flatter the figure.
    assert_eq!(
        verify_access_token(&token, &keys, &validation, NOW)
            .unwrap()
            .into_claims(),
        claims
    );

    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signing_input = signing_input.as_bytes();
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap()
        .try_into()
        .unwrap();
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    let verifying_key = ed25519_dalek::VerifyingKey::from_bytes(&public_key.to_bytes()).unwrap();
    verifying_key
        .verify_strict(signing_input, &signature)
        .unwrap();
    verifying_key.verify(signing_input, &signature).unwrap();

    let mut group = c.benchmark_group("verify");
    group.bench_function("verify_access_token", |b| {
        b.iter(|| {
            verify_access_token(
                black_box(&token),
                black_box(&keys),
                black_box(&validation),
                black_box(NOW),
            )
        })
    });
    group.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| verifying_key.verify_strict(black_box(signing_input), black_box(&signature)))
    });
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| verifying_key.verify(black_box(signing_input), black_box(&signature)))
    });
    group.bench_function("jws_encode", |b| {
        b.iter(|| {
            jws::encode(
                black_box("at+jwt"),
                black_box(Some(KID)),
                black_box(&claims),
                black_box(&key),
            )
        })
    });
    group.bench_function("jws_parse", |b| {
        b.iter(|| UnverifiedToken::parse(black_box(&token)).map(|t| t.header().alg.len()))
    });
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    group.bench_function("claims_decode", |b| {
        b.iter(|| serde_json::from_slice::<AccessClaims>(black_box(&payload)))
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
