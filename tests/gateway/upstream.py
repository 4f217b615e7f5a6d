#!/usr/bin/env python3
"""An upstream service behind Warden's gateway, written as any team would: stdlib
http.server plus PyJWT. It trusts nothing but the internal token in `Authorization`,
verified against the authority's published JWKS with a stock JWT library.

    python upstream.py PORT AUTHORITY_URL AUDIENCE

Every request (any method, any path) is answered with JSON:
  200 {"verified": true, "sub", "scope", "aud", "iss", "client_id", "iat", "exp",
       "method", "path", "routed_path", "headers"}   when the bearer token verifies;
  401 {"verified": false, "error", "method", "path", "routed_path", "headers"}   otherwise.
`path` is the request target as received; `routed_path` is what a typical web framework
would route on (percent-decoded, dot segments resolved).
`headers` is every request header as received (lower-cased names), so callers can check
what reached the upstream. Verification: signature by a key in
AUTHORITY_URL/.well-known/jwks.json, alg EdDSA only, header typ `at+jwt`, iss =
AUTHORITY_URL, aud = AUDIENCE, exp/iat/nbf present and valid (30 s leeway).
"""

import json
import posixpath
import sys
from urllib.parse import unquote, urlsplit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt  # PyJWT
from jwt import PyJWKClient

PORT = int(sys.argv[1])
AUTHORITY_URL = sys.argv[2]
AUDIENCE = sys.argv[3]

jwks_client = PyJWKClient(f"{AUTHORITY_URL}/.well-known/jwks.json", cache_keys=True, lifespan=60)


def verify(token):
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        raise jwt.InvalidTokenError(f"typ is {header.get('typ')!r}, not at+jwt")
    try:
        key = jwks_client.get_signing_key_from_jwt(token)
    except jwt.PyJWKClientError:
        # A key registered after our last fetch (e.g. a gateway started later): refetch once.
        jwks_client.fetch_data()
        key = jwks_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=AUTHORITY_URL,
        leeway=30,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        seen = {k.lower(): v for k, v in self.headers.items()}
        # What a typical framework routes on: the decoded path with dot segments resolved.
        routed = posixpath.normpath(unquote(urlsplit(self.path).path)) or "/"
        out = {"method": self.command, "path": self.path, "routed_path": routed, "headers": seen}
        status = 401
        auth = self.headers.get("authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            out.update(verified=False, error="no bearer token")
        else:
            try:
                claims = verify(token.strip())
                out.update(verified=True, **{k: claims.get(k) for k in
                                             ("sub", "scope", "aud", "iss", "client_id", "iat", "exp")})
                status = 200
            except Exception as e:  # noqa: BLE001 - any failure is a 401
                out.update(verified=False, error=f"{type(e).__name__}: {e}")
        body = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if status == 401:
            self.send_header("www-authenticate", 'Bearer error="invalid_token"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: " + (fmt % args) + "\n")


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True
    print(f"upstream on http://127.0.0.1:{PORT} (audience {AUDIENCE})", file=sys.stderr, flush=True)
    server.serve_forever()
