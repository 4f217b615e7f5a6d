//! warden-core's one integration-test binary: published test vectors (Wycheproof, speccheck,
//! RFC 8037) and attacks on the JWS layer, all through the crate's public API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod jws_attacks;
mod rfc8037;
mod vectors;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Decodes lowercase or uppercase hex; panics on anything else (test data only).
pub fn hex(s: &str) -> Vec<u8> {
    let pairs = s.as_bytes().chunks_exact(2);
    assert!(pairs.remainder().is_empty(), "odd-length hex `{s}`");
    pairs
        .map(|pair| {
            let digit = |c: u8| match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => panic!("bad hex digit {:?} in `{s}`", char::from(c)),
            };
            (digit(pair[0]) << 4) | digit(pair[1])
        })
        .collect()
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

#[test]
fn hex_helper_decodes() {
    assert_eq!(hex(""), Vec::<u8>::new());
    assert_eq!(hex("00ff7Fa0"), vec![0x00, 0xff, 0x7f, 0xa0]);
}
