//! Published Ed25519 verification vectors, read from `tests/data` (sources in its README).

use std::collections::BTreeSet;

use serde::Deserialize;
use warden_core::crypto::{verify_lenient_raw, verify_strict_raw, KeyError, SIGNATURE_LEN};
use warden_core::jwks::{Jwk, JwkError};
use warden_core::PublicKey;

use crate::hex;

const WYCHEPROOF: &str = include_str!("../data/wycheproof_ed25519_test.json");
const SPECCHECK: &str = include_str!("../data/ed25519_speccheck_cases.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wycheproof {
    algorithm: String,
    number_of_tests: usize,
    test_groups: Vec<WycheproofGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WycheproofGroup {
    public_key: WycheproofKey,
    public_key_jwk: Jwk,
    tests: Vec<WycheproofCase>,
}

#[derive(Deserialize)]
struct WycheproofKey {
    curve: String,
    pk: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WycheproofCase {
    tc_id: u32,
    comment: String,
    flags: Vec<String>,
    msg: String,
    sig: String,
    result: String,
}

#[derive(Deserialize)]
struct SpeccheckCase {
    message: String,
    pub_key: String,
    signature: String,
}

fn wycheproof() -> Wycheproof {
    serde_json::from_str(WYCHEPROOF).unwrap()
}

fn speccheck() -> Vec<SpeccheckCase> {
    serde_json::from_str(SPECCHECK).unwrap()
}

/// Verification through the validated key type: decode (refusing small-order keys), then
/// strict verification. `None` when the key itself is refused.
fn verify_with_public_key(pk: &[u8], msg: &[u8], sig: &[u8]) -> Option<bool> {
    let key = PublicKey::from_bytes(pk).ok()?;
    Some(<&[u8; SIGNATURE_LEN]>::try_from(sig).is_ok_and(|sig| key.verify(msg, sig)))
}

#[test]
fn wycheproof_strict_verification_matches_every_result() {
    let vectors = wycheproof();
    assert_eq!(vectors.algorithm, "EDDSA");

    let (mut valid, mut invalid) = (0, 0);
    let mut failures = Vec::new();
    for group in &vectors.test_groups {
        assert_eq!(group.public_key.curve, "edwards25519");
        let pk = hex(&group.public_key.pk);
        for case in &group.tests {
            let expected = match case.result.as_str() {
                "valid" => {
                    valid += 1;
                    true
                }
                "invalid" => {
                    invalid += 1;
                    false
                }
                other => panic!("tcId {}: unexpected result `{other}`", case.tc_id),
            };
            let (msg, sig) = (hex(&case.msg), hex(&case.sig));
            if verify_strict_raw(&pk, &msg, &sig) != expected {
                failures.push(format!(
                    "tcId {} ({}; {:?}): strict verification should be {expected}",
                    case.tc_id, case.comment, case.flags
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every case was seen: a truncated or reshaped file cannot pass silently.
    assert_eq!(valid + invalid, vectors.number_of_tests);
    assert_eq!((valid, invalid), (88, 63));
}

#[test]
fn wycheproof_lenient_verification_agrees_so_it_cannot_tell_strict_from_lenient() {
    for group in wycheproof().test_groups {
        let pk = hex(&group.public_key.pk);
        for case in group.tests {
            let (msg, sig) = (hex(&case.msg), hex(&case.sig));
            assert_eq!(
                verify_lenient_raw(&pk, &msg, &sig),
                case.result == "valid",
                "tcId {} ({})",
                case.tc_id,
                case.comment
            );
        }
    }
}

#[test]
fn wycheproof_public_key_and_jwk_agree_with_raw_verification() {
    let mut checked = 0;
    for group in wycheproof().test_groups {
        let pk = hex(&group.public_key.pk);
        let decoded = PublicKey::from_bytes(&pk);

        // The group's JWK decodes to the same key, or fails for the same reason.
        let agree = match (group.public_key_jwk.to_public_key(), &decoded) {
            (Ok(a), Ok(b)) => a == *b,
            (Err(JwkError::Key(a)), Err(b)) => a == *b,
            _ => false,
        };
        assert!(
            agree,
            "JWK {:?} disagrees with pk {}",
            group.public_key_jwk, group.public_key.pk
        );

        match decoded {
            Ok(key) => {
                assert_eq!(key.to_bytes().as_slice(), pk.as_slice());
                for case in &group.tests {
                    let (msg, sig) = (hex(&case.msg), hex(&case.sig));
                    assert_eq!(
                        verify_with_public_key(&pk, &msg, &sig),
                        Some(case.result == "valid"),
                        "tcId {} ({})",
                        case.tc_id,
                        case.comment
                    );
                    checked += 1;
                }
            }
            // A small-order key is refused before any signature is looked at; none of its
            // cases may then be one that must verify.
            Err(KeyError::SmallOrder) => {
                assert!(group.tests.iter().all(|c| c.result == "invalid"));
            }
            Err(e) => panic!("pk {}: {e}", group.public_key.pk),
        }
    }
    assert_eq!(
        checked, 151,
        "every Wycheproof key is a valid large-order key"
    );
}

#[test]
fn speccheck_strict_accepts_only_case_3_lenient_accepts_0_to_3_and_11() {
    let cases = speccheck();
    assert_eq!(cases.len(), 12);

    let accepted_by = |verify: fn(&[u8], &[u8], &[u8]) -> bool| -> BTreeSet<usize> {
        cases
            .iter()
            .enumerate()
            .filter(|(_, c)| verify(&hex(&c.pub_key), &hex(&c.message), &hex(&c.signature)))
            .map(|(i, _)| i)
            .collect()
    };

    assert_eq!(accepted_by(verify_strict_raw), BTreeSet::from([3]));
    assert_eq!(
        accepted_by(verify_lenient_raw),
        BTreeSet::from([0, 1, 2, 3, 11])
    );
}

#[test]
fn speccheck_through_public_key_accepts_only_case_3() {
    let accepted: BTreeSet<usize> = speccheck()
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            verify_with_public_key(&hex(&c.pub_key), &hex(&c.message), &hex(&c.signature))
                == Some(true)
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(accepted, BTreeSet::from([3]));

    // Key decoding alone refuses the small-order keys: `c717…` (cases
    // 0, 1) and `ecff…7f`, y = -1 (cases 10, 11). The mixed-order key `f7ba…` (cases 2, 8, 9)
    // decodes; strict verification is what refuses case 2's small-order `R`.
    let small_order: BTreeSet<usize> = speccheck()
        .iter()
        .enumerate()
        .filter(|(_, c)| PublicKey::from_bytes(&hex(&c.pub_key)) == Err(KeyError::SmallOrder))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(small_order, BTreeSet::from([0, 1, 10, 11]));
}
