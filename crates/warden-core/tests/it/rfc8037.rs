//! RFC 8037 Appendix A: the Ed25519 key (A.1), its public JWK (A.2), thumbprint (A.3) and the
//! JWS over "Example of Ed25519 signing" (A.4, verified in A.5).

use warden_core::crypto::{verify_strict_raw, SIGNATURE_LEN};
use warden_core::jwks::Jwk;
use warden_core::jws::UnverifiedToken;
use warden_core::token::{TokenError, TypeRule, Validation};
use warden_core::{AssertionClaims, SigningKey};

use crate::{b64, unb64};

/// A.1: the private key `d` and public key `x`, base64url.
const D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
/// A.3: the RFC 7638 thumbprint of the A.2 public JWK.
const THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
/// A.4: the protected header, payload and resulting compact JWS.
const HEADER: &str = r#"{"alg":"EdDSA"}"#;
const PAYLOAD: &str = "Example of Ed25519 signing";
const JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
                   hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

fn key() -> SigningKey {
    SigningKey::from_bytes(&unb64(D)).unwrap()
}

/// The A.4 JWS split into its signing input (`header.payload`) and decoded signature.
fn split_jws() -> (&'static str, [u8; SIGNATURE_LEN]) {
    let (signing_input, signature) = JWS.rsplit_once('.').unwrap();
    (signing_input, unb64(signature).try_into().unwrap())
}

#[test]
fn a1_a3_public_key_and_thumbprint() {
    let public = key().public_key();
    assert_eq!(b64(public.to_bytes()), X);
    assert_eq!(public.thumbprint(), THUMBPRINT);

    // A.2: the public JWK decodes to the same key, and a JWK built from the key says `x`.
    let jwk: Jwk =
        serde_json::from_str(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{X}"}}"#)).unwrap();
    assert_eq!(jwk.to_public_key(), Ok(public));
    assert_eq!(Jwk::from_public_key(&public, None).x, X);
}

#[test]
fn a4_signing_is_reproduced_exactly() {
    let (signing_input, signature) = split_jws();
    assert_eq!(signing_input, format!("{}.{}", b64(HEADER), b64(PAYLOAD)));
    // Ed25519 is deterministic, so signing again must give the RFC's bytes.
    assert_eq!(key().sign(signing_input.as_bytes()), signature);
}

#[test]
fn a5_verification_accepts_and_every_bit_flip_fails() {
    let (signing_input, signature) = split_jws();
    let x = unb64(X);
    assert!(verify_strict_raw(&x, signing_input.as_bytes(), &signature));
    assert!(key()
        .public_key()
        .verify(signing_input.as_bytes(), &signature));

    for bit in 0..SIGNATURE_LEN * 8 {
        let mut forged = signature;
        forged[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verify_strict_raw(&x, signing_input.as_bytes(), &forged),
            "signature bit {bit}"
        );
    }
    for bit in 0..signing_input.len() * 8 {
        let mut message = signing_input.as_bytes().to_vec();
        message[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verify_strict_raw(&x, &message, &signature),
            "message bit {bit}"
        );
    }
    let mut other_key = x.clone();
    other_key[0] ^= 1;
    assert!(!verify_strict_raw(
        &other_key,
        signing_input.as_bytes(),
        &signature
    ));
}

#[test]
fn a4_jws_parses_through_the_jws_layer() {
    let token = UnverifiedToken::parse(JWS).unwrap();
    let header = token.header();
    assert_eq!(header.alg, "EdDSA");
    assert_eq!(
        (&header.typ, &header.kid, &header.jwk),
        (&None, &None, &None)
    );
    // The payload is text, not a claims object.
    assert!(matches!(
        token.claims_unverified::<serde_json::Value>(),
        Err(TokenError::Claims(_))
    ));
}

/// Not a claims check: the payload is not JSON, so `verify` can only end in `Claims`. What it
/// shows is the order — the signature over the RFC's signing input passed, while the same
/// token with one signature bit flipped stops at `Signature` before the payload is read.
#[test]
fn a4_signature_passes_the_jws_layer_and_a_flipped_bit_does_not() {
    let public = key().public_key();
    let validation = Validation {
        issuers: Vec::new(),
        audiences: Vec::new(),
        typ: TypeRule::PlainJwt,
        leeway: 0,
        max_lifetime: None,
    };

    let result = UnverifiedToken::parse(JWS)
        .unwrap()
        .verify::<AssertionClaims>(&public, &validation, 0);
    assert!(matches!(result, Err(TokenError::Claims(_))), "{result:?}");

    let (signing_input, mut signature) = split_jws();
    signature[10] ^= 0x01;
    let tampered = format!("{signing_input}.{}", b64(signature));
    let result = UnverifiedToken::parse(&tampered)
        .unwrap()
        .verify::<AssertionClaims>(&public, &validation, 0);
    assert_eq!(result.err(), Some(TokenError::Signature));
}
