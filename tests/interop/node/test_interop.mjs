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
await check('node jose jwtVerify via createRemoteJWKSet (sub, scope, typ at+jwt)', joseVerify, 'token')
await check("node jose rejects audience 'other'", joseWrongAudience, 'token')
await check('node jose rejects tampered signature', joseTamperedSignature, 'token')

process.exitCode = failures ? 1 : 0
