#!/usr/bin/env python3
"""Interop checks for Warden with Authlib (client) and PyJWT (resource server).

Environment: AUTHORITY_URL, CLIENT_ID, KEY_FILE (private Ed25519 JWK as written
by `warden keygen`). Prints one line per check, `ok NAME` or `FAIL NAME: why`,
and exits non-zero if any check failed.
"""

import json
import os
import sys
import time
import traceback
import warnings

import jwt  # PyJWT
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import OKPKey  # Authlib >= 1.7 signs with joserfc keys

AUTHORITY_URL = os.environ["AUTHORITY_URL"]
CLIENT_ID = os.environ["CLIENT_ID"]
KEY_FILE = os.environ["KEY_FILE"]

# Warden refuses client assertions whose exp is more than 300 s (+30 s leeway)
# ahead. Authlib's PrivateKeyJWT signs with exp = iat + 3600 and offers no
# per-request lifetime: a `claims={"exp": ...}` given to its constructor would be
# frozen (and Authlib stores the generated jti into that same dict, so every
# later assertion would reuse it and be refused as a replay). So we set fresh
# claims just before each signature and let Authlib do the rest.
ASSERTION_TTL = 120

# joserfc (Authlib's JOSE backend) warns that the alg name "EdDSA" is deprecated
# by RFC 9864 in favour of "Ed25519". Warden accepts both; both are checked.
warnings.filterwarnings("ignore", message="EdDSA is deprecated")


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    def sign(self, auth, token_endpoint):
        self.claims = {"exp": int(time.time()) + ASSERTION_TTL}
        return super().sign(auth, token_endpoint)


failures = 0
state = {}


class Skipped(Exception):
    pass


def check(name, fn, needs=None):
    global failures
    try:
        if needs and needs not in state:
            raise Skipped(f"no {needs} (an earlier check failed)")
        fn()
    except Exception as e:  # noqa: BLE001 - report every kind of failure
        failures += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        if not isinstance(e, Skipped):
            traceback.print_exc(file=sys.stderr)
    else:
        print(f"ok {name}", flush=True)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def session(scope, alg="EdDSA"):
    with open(KEY_FILE) as f:
        key = OKPKey.import_key(json.load(f))
    token_endpoint = state["meta"]["token_endpoint"]
    return OAuth2Session(
        CLIENT_ID,
        key,
        token_endpoint_auth_method=ShortLivedPrivateKeyJWT(token_endpoint, alg=alg),
        scope=scope,
    )


def discovery():
    r = requests.get(AUTHORITY_URL + "/.well-known/oauth-authorization-server", timeout=10)
    r.raise_for_status()
    meta = r.json()
    expect(meta["issuer"] == AUTHORITY_URL, f"issuer {meta['issuer']!r}")
    expect("private_key_jwt" in meta["token_endpoint_auth_methods_supported"], "no private_key_jwt")
    state["meta"] = meta


def authlib_client_credentials():
    s = session("crm:contacts:read")
    tok = s.fetch_token(state["meta"]["token_endpoint"], grant_type="client_credentials")
    expect(tok.get("access_token"), f"no access_token in {tok!r}")
    expect(str(tok.get("token_type", "")).lower() == "bearer", f"token_type {tok.get('token_type')!r}")
    state["token"] = tok["access_token"]


def authlib_client_credentials_ed25519():
    s = session("crm:contacts:read", alg="Ed25519")
    tok = s.fetch_token(state["meta"]["token_endpoint"], grant_type="client_credentials")
    expect(tok.get("access_token"), f"no access_token in {tok!r}")


def jwk_client():
    return jwt.PyJWKClient(state["meta"]["jwks_uri"])


def pyjwt_verify():
    token = state["token"]
    key = jwk_client().get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience="warden",
        issuer=AUTHORITY_URL,
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
    )
    header = jwt.get_unverified_header(token)
    expect(header.get("typ") == "at+jwt", f"typ {header.get('typ')!r}")
    expect(header.get("alg") == "EdDSA", f"alg {header.get('alg')!r}")
    expect(claims["sub"] == CLIENT_ID, f"sub {claims['sub']!r}")
    expect(claims.get("client_id") == CLIENT_ID, f"client_id {claims.get('client_id')!r}")
    expect(claims.get("scope") == "crm:contacts:read", f"scope {claims.get('scope')!r}")


def authlib_scope_outside_ceiling():
    s = session("crm:contacts:delete")
    try:
        tok = s.fetch_token(state["meta"]["token_endpoint"], grant_type="client_credentials")
    except OAuthError as e:
        expect(e.error == "invalid_scope", f"error {e.error!r} ({e.description!r})")
    else:
        raise AssertionError(f"token issued for a scope outside the ceiling: {tok!r}")


def pyjwt_wrong_audience():
    token = state["token"]
    key = jwk_client().get_signing_key_from_jwt(token)
    try:
        jwt.decode(token, key.key, algorithms=["EdDSA"], audience="other", issuer=AUTHORITY_URL)
    except jwt.InvalidAudienceError:
        return
    raise AssertionError("token accepted for audience 'other'")


def pyjwt_tampered_signature():
    token = state["token"]
    head, payload, sig = token.split(".")
    # Flip a character in the middle: the last base64url character of a 64-byte
    # signature carries padding bits and may decode to the same bytes.
    i = len(sig) // 2
    sig = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
    bad = ".".join((head, payload, sig))
    key = jwk_client().get_signing_key_from_jwt(bad)
    try:
        jwt.decode(bad, key.key, algorithms=["EdDSA"], audience="warden", issuer=AUTHORITY_URL)
    except jwt.InvalidSignatureError:
        return
    raise AssertionError("token with a tampered signature accepted")


# Every check runs and is reported even when an earlier one failed (it then
# fails as skipped), so the count of checks stays the same from run to run.
check("python discovery (oauth-authorization-server)", discovery)
check("python authlib client_credentials private_key_jwt EdDSA", authlib_client_credentials, "meta")
check("python authlib client_credentials private_key_jwt Ed25519 (RFC 9864 name)", authlib_client_credentials_ed25519, "meta")
check("python authlib scope outside ceiling -> invalid_scope", authlib_scope_outside_ceiling, "meta")
check("python pyjwt verifies token via PyJWKClient (sub, scope, typ at+jwt)", pyjwt_verify, "token")
check("python pyjwt rejects audience 'other'", pyjwt_wrong_audience, "token")
check("python pyjwt rejects tampered signature", pyjwt_tampered_signature, "token")

sys.exit(1 if failures else 0)
