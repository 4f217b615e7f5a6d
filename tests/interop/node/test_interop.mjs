// Interop checks for Warden with openid-client v6 (client) and jose v6
// (resource server).
//
// Environment: AUTHORITY_URL, CLIENT_ID, KEY_FILE (private Ed25519 JWK as
// written by `warden keygen`). Prints one line per check, `ok NAME` or
// `FAIL NAME: why`, and exits non-zero if any check failed.
//
// run.sh copies this file next to the node_modules it installed, since ES
// module imports resolve packages from the importing file's location.
import { readFileSync } from 'node:fs'
import * as client from 'openid-client'
import * as jose from 'jose'

const AUTHORITY_URL = process.env.AUTHORITY_URL
const CLIENT_ID = process.env.CLIENT_ID
const KEY_FILE = process.env.KEY_FILE

let failures = 0
const state = {}

class Skipped extends Error {
  name = 'Skipped'
}

function expect(cond, msg) {
  if (!cond) throw new Error(msg)
}

// Every check runs and is reported even when an earlier one failed (it then
// fails as skipped), so the count of checks stays the same from run to run.
async function check(name, fn, needs) {
  try {
    if (needs && !(needs in state)) throw new Skipped(`no ${needs} (an earlier check failed)`)
    await fn()
    console.log(`ok ${name}`)
  } catch (e) {
    failures++
    console.log(`FAIL ${name}: ${e?.name}: ${e?.message}${e?.error ? ` (error=${e.error})` : ''}`)
    if (!(e instanceof Skipped)) console.error(e)
  }
}

async function discovery() {
  const jwk = JSON.parse(readFileSync(KEY_FILE, 'utf8'))
  // A private, non-extractable WebCrypto CryptoKey with usage "sign";
  // openid-client signs the assertion with alg "Ed25519" (RFC 9864) and
  // aud = issuer.
  const privateKey = await jose.importJWK(jwk, 'EdDSA')
  // A URL without a path: openid-client reads /.well-known/openid-configuration.
  // Warden is plain http on loopback here, hence allowInsecureRequests.
  const config = await client.discovery(
    new URL(AUTHORITY_URL),
    CLIENT_ID,
    {},
    client.PrivateKeyJwt(privateKey),
    { execute: [client.allowInsecureRequests] },
  )
  const meta = config.serverMetadata()
  expect(meta.issuer === AUTHORITY_URL, `issuer ${meta.issuer}`)
  expect(meta.jwks_uri, 'no jwks_uri')
  state.config = config
}

async function clientCredentials() {
  const tokens = await client.clientCredentialsGrant(state.config, { scope: 'crm:contacts:read' })
  expect(typeof tokens.access_token === 'string', 'no access_token')
  expect(String(tokens.token_type).toLowerCase() === 'bearer', `token_type ${tokens.token_type}`)
  state.token = tokens.access_token
}

async function scopeOutsideCeiling() {
  try {
    await client.clientCredentialsGrant(state.config, { scope: 'crm:contacts:delete' })
  } catch (e) {
    expect(e instanceof client.ResponseBodyError, `threw ${e?.name}: ${e?.message}`)
    expect(e.error === 'invalid_scope', `error ${e.error} (${e.error_description})`)
    return
  }
  throw new Error('token issued for a scope outside the ceiling')
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

// What discovery advertises is what the checks below use: each through the endpoint
// openid-client found in the metadata, never a URL of the test's own.
async function advertised() {
  const meta = state.config.serverMetadata()
  for (const field of ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint', 'jwks_uri']) {
    expect(typeof meta[field] === 'string' && meta[field].startsWith(AUTHORITY_URL), `${field}: ${meta[field]}`)
  }
  for (const grant of ['client_credentials', TOKEN_EXCHANGE]) {
    expect(meta.grant_types_supported?.includes(grant), `grant_types_supported lacks ${grant}`)
  }
  for (const field of ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint']) {
    const methods = meta[`${field}_auth_methods_supported`]
    expect(methods?.includes('private_key_jwt'), `${field}_auth_methods_supported: ${methods}`)
  }
  expect(meta.dpop_signing_alg_values_supported?.includes('Ed25519'), 'dpop_signing_alg_values_supported')
}

async function introspection() {
  const seen = await client.tokenIntrospection(state.config, state.token)
  expect(seen.active === true, `active ${seen.active}`)
  expect(seen.sub === CLIENT_ID && seen.client_id === CLIENT_ID, `sub ${seen.sub}`)
  expect(seen.scope === 'crm:contacts:read', `scope ${seen.scope}`)
}

async function exchange() {
  // Attenuation: the client's own token for one of its scopes.
  const wide = await client.clientCredentialsGrant(state.config, { scope: 'crm:contacts:read email:send' })
  const narrow = await client.genericGrantRequest(state.config, TOKEN_EXCHANGE, {
    subject_token: wide.access_token,
    subject_token_type: ACCESS_TOKEN_TYPE,
    scope: 'email:send',
  })
  expect(narrow.issued_token_type === ACCESS_TOKEN_TYPE, `issued_token_type ${narrow.issued_token_type}`)
  const seen = await client.tokenIntrospection(state.config, narrow.access_token)
  expect(seen.active === true && seen.scope === 'email:send', `scope ${seen.scope}`)
}

async function revocation() {
  const doomed = await client.clientCredentialsGrant(state.config, { scope: 'crm:contacts:read' })
  await client.tokenRevocation(state.config, doomed.access_token)
  const seen = await client.tokenIntrospection(state.config, doomed.access_token)
  expect(seen.active === false, 'a revoked token still introspects active')
}

async function dpop() {
  // WebCrypto Ed25519: openid-client signs each proof with alg "Ed25519".
  const keyPair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])
  const handle = client.getDPoPHandle(state.config, keyPair)
  const tokens = await client.clientCredentialsGrant(state.config, { scope: 'crm:contacts:read' }, { DPoP: handle })
  expect(String(tokens.token_type).toLowerCase() === 'dpop', `token_type ${tokens.token_type}`)
  const jkt = jose.decodeJwt(tokens.access_token).cnf?.jkt
  const publicJwk = await crypto.subtle.exportKey('jwk', keyPair.publicKey)
  expect(jkt === (await jose.calculateJwkThumbprint(publicJwk)), `cnf.jkt ${jkt}`)
}

function jwks() {
  return jose.createRemoteJWKSet(new URL(state.config.serverMetadata().jwks_uri))
}

const verifyOptions = {
  issuer: AUTHORITY_URL,
  audience: 'warden',
  typ: 'at+jwt',
  algorithms: ['EdDSA', 'Ed25519'],
}

async function joseVerify() {
  const { payload, protectedHeader } = await jose.jwtVerify(state.token, jwks(), verifyOptions)
  expect(payload.sub === CLIENT_ID, `sub ${payload.sub}`)
  expect(payload.client_id === CLIENT_ID, `client_id ${payload.client_id}`)
  expect(payload.scope === 'crm:contacts:read', `scope ${payload.scope}`)
  expect(protectedHeader.alg === 'EdDSA', `alg ${protectedHeader.alg}`)
}

async function joseWrongAudience() {
  try {
    await jose.jwtVerify(state.token, jwks(), { ...verifyOptions, audience: 'other' })
  } catch (e) {
    expect(e instanceof jose.errors.JWTClaimValidationFailed && e.claim === 'aud', `threw ${e?.name}: ${e?.message}`)
    return
  }
  throw new Error("token accepted for audience 'other'")
}

async function joseTamperedSignature() {
  const [head, payload, sig] = state.token.split('.')
  // Flip a character in the middle: the last base64url character of a 64-byte
  // signature carries padding bits.
  const i = Math.floor(sig.length / 2)
  const bad = [head, payload, sig.slice(0, i) + (sig[i] === 'A' ? 'B' : 'A') + sig.slice(i + 1)].join('.')
  try {
    await jose.jwtVerify(bad, jwks(), verifyOptions)
  } catch (e) {
    expect(e instanceof jose.errors.JWSSignatureVerificationFailed, `threw ${e?.name}: ${e?.message}`)
    return
  }
  throw new Error('token with a tampered signature accepted')
}

await check('node openid-client discovery (openid-configuration)', discovery)
await check('node openid-client clientCredentialsGrant private_key_jwt Ed25519', clientCredentials, 'config')
await check('node openid-client scope outside ceiling -> invalid_scope', scopeOutsideCeiling, 'config')
await check('node metadata advertises introspection, revocation, token exchange, DPoP', advertised, 'config')
await check('node openid-client tokenIntrospection (advertised endpoint)', introspection, 'token')
await check('node openid-client genericGrantRequest token-exchange (attenuation)', exchange, 'config')
await check('node openid-client tokenRevocation, then introspection says inactive', revocation, 'config')
await check('node openid-client DPoP (getDPoPHandle, Ed25519) -> token_type DPoP, cnf.jkt', dpop, 'config')
await check('node jose jwtVerify via createRemoteJWKSet (sub, scope, typ at+jwt)', joseVerify, 'token')
await check("node jose rejects audience 'other'", joseWrongAudience, 'token')
await check('node jose rejects tampered signature', joseTamperedSignature, 'token')

process.exitCode = failures ? 1 : 0
