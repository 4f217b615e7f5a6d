//! Attacks on access-token verification, each through `verify_access_token` with a `KeySet`
//! and `Validation::access_token`, each asserting the exact `TokenError`.
//!
//! Where a header is the attack, the token is otherwise genuine — signed by the trusted key —
//! so the refusal can only come from the header rule under test.

use serde_json::json;
use warden_core::claims::{AccessClaims, Actor, Audience, Confirmation};
use warden_core::crypto::KeyError;
use warden_core::jwks::{Jwk, JwkError, JwkSet};
use warden_core::jws::{self, MAX_TOKEN_BYTES};
use warden_core::token::{verify_access_token, KeySet, TokenError, Validation, VerifiedToken};
use warden_core::SigningKey;

use crate::{b64, unb64};

const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://warden.test";
const AUDIENCE: &str = "https://api.test";
const KID: &str = "k1";

fn trusted_key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32]).unwrap()
}

fn attacker_key() -> SigningKey {
    SigningKey::from_bytes(&[0x66; 32]).unwrap()
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "agt_alice".into(),
        aud: Audience::One(AUDIENCE.into()),
        exp: NOW + 600,
        iat: NOW,
        nbf: NOW,
        jti: "jti_1".into(),
        client_id: "agt_alice".into(),
        tenant: "tnt_acme".into(),
        scope: "orders:read orders:write".into(),
        act: Some(Actor {
            sub: "agt_bot".into(),
            act: None,
        }),
        cnf: Some(Confirmation {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        }),
        allowed_ips: Some(vec!["10.0.0.0/8".into()]),
        max_uses: Some(3),
    }
}

fn header() -> serde_json::Value {
    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": KID})
}

fn payload() -> Vec<u8> {
    serde_json::to_vec(&claims()).unwrap()
}

/// A compact JWS over raw header and payload bytes, signed by `key`.
fn signed_raw(header: &[u8], payload: &[u8], key: &SigningKey) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(payload));
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(signature))
}

/// A compact JWS with this header over the genuine claims, signed by the trusted key.
fn signed_with_header(header: &serde_json::Value) -> String {
    signed_raw(
        &serde_json::to_vec(header).unwrap(),
        &payload(),
        &trusted_key(),
    )
}

/// A compact JWS with this header and an arbitrary signature part.
fn unsigned(header: &serde_json::Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(serde_json::to_vec(header).unwrap()),
        b64(payload()),
        b64(signature)
    )
}

fn verify(token: &str) -> Result<VerifiedToken<AccessClaims>, TokenError> {
    let mut keys = KeySet::new();
    keys.insert(KID, trusted_key().public_key());
    verify_access_token(
        token,
        &keys,
        &Validation::access_token(ISSUER, vec![AUDIENCE.into()]),
        NOW,
    )
}

fn refusal(token: &str) -> TokenError {
    match verify(token) {
        Ok(_) => panic!("token was accepted: {token}"),
        Err(e) => e,
    }
}

fn with(mut header: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    header[key] = value;
    header
}

#[test]
fn genuine_token_is_accepted() {
    let token = jws::encode("at+jwt", Some(KID), &claims(), &trusted_key()).unwrap();
    let verified = verify(&token).unwrap();
    assert_eq!(verified.kid(), Some(KID));
    assert_eq!(verified.into_claims(), claims());
    // So is the same token built by the helpers the attacks use.
    assert!(verify(&signed_with_header(&header())).is_ok());
    // RFC 9864's fully specified `Ed25519` names the same algorithm.
    let token = signed_with_header(&with(header(), "alg", json!("Ed25519")));
    assert!(verify(&token).is_ok());
}

#[test]
fn alg_none_with_empty_signature() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = unsigned(&with(header(), "alg", json!(alg)), b"");
        assert!(token.ends_with('.'));
        assert_eq!(refusal(&token), TokenError::Algorithm(alg.into()));
    }
}

#[test]
fn alg_hs256_keyed_with_the_public_key_is_refused() {
    // The classic confusion: an HMAC keyed with the verifier's public key. The bytes do not
    // matter — the algorithm is refused before any key is chosen.
    let token = unsigned(&with(header(), "alg", json!("HS256")), &[0xa5; 32]);
    assert_eq!(refusal(&token), TokenError::Algorithm("HS256".into()));
}

#[test]
fn other_algorithms_are_refused_even_with_a_valid_ed25519_signature() {
    for alg in [
        "RS256", "ES256", "PS256", "ES256K", "Ed448", "eddsa", "EdDSA ", "",
    ] {
        let token = signed_with_header(&with(header(), "alg", json!(alg)));
        assert_eq!(
            refusal(&token),
            TokenError::Algorithm(alg.into()),
            "alg `{alg}`"
        );
    }
    // `alg` that is not a string, or missing, is a malformed header.
    let token = signed_with_header(&with(header(), "alg", json!(["EdDSA"])));
    assert!(matches!(refusal(&token), TokenError::Header(_)));
    let mut no_alg = header();
    no_alg.as_object_mut().unwrap().remove("alg");
    assert!(matches!(
        refusal(&signed_with_header(&no_alg)),
        TokenError::Header(_)
    ));
}

#[test]
fn crit_header_is_refused() {
    let crit = with(with(header(), "crit", json!(["exp"])), "exp", json!(NOW));
    assert_eq!(refusal(&signed_with_header(&crit)), TokenError::Critical);
    // Even an empty list (itself invalid per RFC 7515 §4.1.11).
    let crit = with(header(), "crit", json!([]));
    assert_eq!(refusal(&signed_with_header(&crit)), TokenError::Critical);
}

#[test]
fn key_reference_headers_are_refused() {
    for (name, value) in [
        ("jku", json!("https://attacker.test/jwks.json")),
        ("x5u", json!("https://attacker.test/cert.pem")),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIUJ"])),
    ] {
        let token = signed_with_header(&with(header(), name, value));
        assert_eq!(refusal(&token), TokenError::KeyReference, "{name}");
    }
}

#[test]
fn embedded_jwk_is_refused() {
    // The attacker signs with their own key and ships it in the header.
    let attacker = attacker_key();
    let jwk = Jwk::from_public_key(&attacker.public_key(), Some(KID.into()));
    let embedded = with(header(), "jwk", serde_json::to_value(&jwk).unwrap());
    let token = signed_raw(
        &serde_json::to_vec(&embedded).unwrap(),
        &payload(),
        &attacker,
    );
    assert_eq!(refusal(&token), TokenError::EmbeddedKey);
    // Also when the embedded key is the trusted one and the signature genuine.
    let jwk = Jwk::from_public_key(&trusted_key().public_key(), None);
    let embedded = with(header(), "jwk", serde_json::to_value(&jwk).unwrap());
    assert_eq!(
        refusal(&signed_with_header(&embedded)),
        TokenError::EmbeddedKey
    );
}

#[test]
fn wrong_number_of_parts() {
    let token = signed_with_header(&header());
    let parts: Vec<&str> = token.split('.').collect();
    let not_three = TokenError::Malformed("not three dot-separated parts");

    assert_eq!(refusal(&parts[..2].join(".")), not_three);
    assert_eq!(refusal(parts[0]), not_three);
    assert_eq!(refusal(""), not_three);
    assert_eq!(refusal(&format!("{token}.")), not_three);
    assert_eq!(refusal(&format!("{token}.{}", parts[2])), not_three);
    // A JWE-shaped token (five parts).
    assert_eq!(refusal(&format!("{token}.AAAA.AAAA")), not_three);
}

#[test]
fn base64_that_is_not_unpadded_url_safe() {
    let token = signed_with_header(&header());
    let (h, rest) = token.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();

    // `=` padding, on each part in turn (parts are decoded header, signature, payload).
    let header_json = serde_json::to_vec(&header()).unwrap();
    let padded_h = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, &header_json);
    assert!(padded_h.ends_with('='), "header length must need padding");
    assert_eq!(
        refusal(&format!("{padded_h}.{p}.{s}")),
        TokenError::Base64("header")
    );
    assert_eq!(
        refusal(&format!("{h}.{p}.{s}==")),
        TokenError::Base64("signature")
    );
    assert_eq!(
        refusal(&format!("{h}.{p}=.{s}")),
        TokenError::Base64("payload")
    );

    // Standard-alphabet characters, whitespace and other non-url characters.
    for bad in ['+', '/', ' ', '\n', '*', '%'] {
        let mut s2 = s.to_owned();
        s2.replace_range(5..6, &bad.to_string());
        assert_eq!(
            refusal(&format!("{h}.{p}.{s2}")),
            TokenError::Base64("signature"),
            "{bad:?} in signature"
        );
        let mut h2 = h.to_owned();
        h2.insert(3, bad);
        assert_eq!(
            refusal(&format!("{h2}.{p}.{s}")),
            TokenError::Base64("header"),
            "{bad:?} in header"
        );
    }

    // Non-zero trailing bits: a second spelling of the same 64 signature bytes would make
    // tokens malleable. 86 characters carry 516 bits, so the last one has 4 unused bits.
    assert_eq!(s.len(), 86);
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = alphabet.find(&s[85..]).unwrap();
    assert_eq!(last & 0x0f, 0);
    let respelled = format!("{}{}", &s[..85], &alphabet[last | 1..=last | 1]);
    assert_eq!(
        refusal(&format!("{h}.{p}.{respelled}")),
        TokenError::Base64("signature")
    );
}

#[test]
fn signature_of_wrong_length() {
    let token = signed_with_header(&header());
    let (signing_input, s) = token.rsplit_once('.').unwrap();
    let signature = unb64(s);
    let wrong_length = TokenError::Malformed("signature is not 64 bytes");

    let short = format!("{signing_input}.{}", b64(&signature[..63]));
    assert_eq!(refusal(&short), wrong_length);
    let long = format!("{signing_input}.{}", b64([&signature[..], &[0]].concat()));
    assert_eq!(refusal(&long), wrong_length);
    assert_eq!(refusal(&format!("{signing_input}.")), wrong_length);
}

#[test]
fn tampered_token_fails_the_signature() {
    let token = signed_with_header(&header());
    let (h, rest) = token.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();

    // One payload byte (`orders:read` becomes `orders:reae`)…
    let mut payload = unb64(p);
    let at = payload.windows(4).position(|w| w == b"read").unwrap() + 3;
    payload[at] ^= 0x01;
    assert_eq!(
        refusal(&format!("{h}.{}.{s}", b64(&payload))),
        TokenError::Signature
    );
    // …or the audience swapped, keeping the JSON valid.
    let mut evil = claims();
    evil.aud = Audience::One("https://other.test".into());
    let evil = b64(serde_json::to_vec(&evil).unwrap());
    assert_eq!(refusal(&format!("{h}.{evil}.{s}")), TokenError::Signature);
    // One header byte (`typ` re-cased, still acceptable to the type rule).
    let h2 = b64(serde_json::to_vec(&with(header(), "typ", json!("AT+JWT"))).unwrap());
    assert_eq!(refusal(&format!("{h2}.{p}.{s}")), TokenError::Signature);
    // One signature bit.
    let mut signature = unb64(s);
    signature[40] ^= 0x80;
    assert_eq!(
        refusal(&format!("{h}.{p}.{}", b64(&signature))),
        TokenError::Signature
    );
}

#[test]
fn malleated_signature_with_s_plus_l_is_refused() {
    // S' = S + L verifies the same equation; only strict range checking of S refuses it.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let token = signed_with_header(&header());
    let (signing_input, s) = token.rsplit_once('.').unwrap();
    let mut signature = unb64(s);
    let mut carry = 0u16;
    for (byte, l) in signature[32..].iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    assert_eq!(
        refusal(&format!("{signing_input}.{}", b64(&signature))),
        TokenError::Signature
    );
}

#[test]
fn wrong_key_and_kid() {
    // Signed by another key under the trusted `kid`.
    let token = jws::encode("at+jwt", Some(KID), &claims(), &attacker_key()).unwrap();
    assert_eq!(refusal(&token), TokenError::Signature);

    let token = jws::encode("at+jwt", None, &claims(), &trusted_key()).unwrap();
    assert_eq!(refusal(&token), TokenError::MissingKid);

    let token = jws::encode("at+jwt", Some("k2"), &claims(), &trusted_key()).unwrap();
    assert_eq!(refusal(&token), TokenError::UnknownKid("k2".into()));
}

#[test]
fn small_order_key_cannot_enter_a_key_set() {
    // Under the identity point, the signature `01 00…00` verifies any message leniently; such
    // a key must never be trusted.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let jwks: JwkSet = serde_json::from_value(json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": KID, "x": b64(identity)
    }]}))
    .unwrap();
    assert_eq!(
        KeySet::from_jwks(&jwks).err(),
        Some(JwkError::Key(KeyError::SmallOrder))
    );
}

#[test]
fn oversized_token_is_refused_and_the_limit_is_inclusive() {
    let key = trusted_key();
    let token_with_jti = |len: usize| {
        let mut c = claims();
        c.jti = "j".repeat(len);
        jws::encode("at+jwt", Some(KID), &c, &key).unwrap()
    };

    // A genuine token just over the limit, refused before any decoding.
    let big = token_with_jti(MAX_TOKEN_BYTES);
    assert!(big.len() > MAX_TOKEN_BYTES);
    assert_eq!(refusal(&big), TokenError::TooLarge(big.len()));

    // Around the boundary: accepted up to and including the limit, refused above it.
    let (mut at_or_below, mut above) = (false, false);
    for len in 0..MAX_TOKEN_BYTES {
        let token = token_with_jti(len);
        match token.len() {
            n if n + 3 < MAX_TOKEN_BYTES => continue,
            n if n <= MAX_TOKEN_BYTES => {
                assert!(verify(&token).is_ok(), "{n} bytes");
                at_or_below = true;
            }
            n if n > MAX_TOKEN_BYTES + 3 => break,
            n => {
                assert_eq!(refusal(&token), TokenError::TooLarge(n));
                above = true;
            }
        }
    }
    assert!(at_or_below && above);
}

#[test]
fn duplicate_claim_is_refused() {
    // A second `exp` pushed far into the future: a parser that kept the last value would
    // extend the token's life. Signed by the trusted key, so only the duplicate is at fault.
    let json = String::from_utf8(payload()).unwrap();
    let duplicated = json.replacen('{', &format!(r#"{{"exp":{},"#, NOW + 10 * 365 * 86_400), 1);
    assert_eq!(duplicated.matches(r#""exp":"#).count(), 2);
    let token = signed_raw(
        &serde_json::to_vec(&header()).unwrap(),
        duplicated.as_bytes(),
        &trusted_key(),
    );
    match refusal(&token) {
        TokenError::Claims(m) => assert!(m.contains("duplicate field `exp`"), "{m}"),
        other => panic!("expected Claims, got {other:?}"),
    }
}

#[test]
fn duplicate_header_member_is_refused() {
    // `{"alg":"EdDSA",…,"alg":"none"}`: first-wins and last-wins parsers would disagree.
    let header = br#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","alg":"none"}"#;
    let token = signed_raw(header, &payload(), &trusted_key());
    match refusal(&token) {
        TokenError::Header(m) => assert!(m.contains("duplicate field `alg`"), "{m}"),
        other => panic!("expected Header, got {other:?}"),
    }
}

#[test]
fn typ_missing_or_wrong() {
    let mut no_typ = header();
    no_typ.as_object_mut().unwrap().remove("typ");
    assert_eq!(
        refusal(&signed_with_header(&no_typ)),
        TokenError::Type {
            expected: "at+jwt",
            found: String::new()
        }
    );
    for typ in ["JWT", "dpop+jwt", "at+jwt ", ""] {
        assert_eq!(
            refusal(&signed_with_header(&with(header(), "typ", json!(typ)))),
            TokenError::Type {
                expected: "at+jwt",
                found: typ.into()
            },
            "typ `{typ}`"
        );
    }
}

#[test]
fn header_and_payload_that_are_not_json_objects() {
    let token = signed_raw(b"not json", &payload(), &trusted_key());
    assert!(matches!(refusal(&token), TokenError::Header(_)));
    let token = signed_raw(
        &serde_json::to_vec(&header()).unwrap(),
        b"[]",
        &trusted_key(),
    );
    assert!(matches!(refusal(&token), TokenError::Claims(_)));
}
