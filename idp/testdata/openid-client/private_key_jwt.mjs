// panva's openid-client (certified) as a private_key_jwt client of the IdP: for each private
// key it is given, it discovers the IdP, gets a token with the client_credentials grant
// (authenticating with PrivateKeyJwt), introspects it and revokes it; then a PrivateKeyJwt
// whose assertions all carry one jti gets a token once and is refused the second time.
// Env: ISSUER, CLIENT_ID, KEYS (a JSON array of private JWKs, each with kid and alg).
// Prints one "ok ..." line per step; exits non-zero on the first failure.
import * as client from 'openid-client'

const issuer = new URL(process.env.ISSUER)
const clientId = process.env.CLIENT_ID
const keys = JSON.parse(process.env.KEYS)

const algorithms = {
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
}

async function privateKey(jwk) {
  const key = await crypto.subtle.importKey('jwk', jwk, algorithms[jwk.alg], false, ['sign'])
  return { key, kid: jwk.kid }
}

async function configFor(auth) {
  return client.discovery(issuer, clientId, {}, auth, { execute: [client.allowInsecureRequests] })
}

try {
  for (const jwk of keys) {
    const config = await configFor(client.PrivateKeyJwt(await privateKey(jwk)))
    const tokens = await client.clientCredentialsGrant(config, { scope: 'workitems:read' })
    if (!tokens.access_token) throw new Error('no access_token')
    // A second grant is a second assertion with a new jti: accepted.
    await client.clientCredentialsGrant(config, { scope: 'workitems:read' })
    const info = await client.tokenIntrospection(config, tokens.access_token)
    if (info.active !== true || info.client_id !== clientId) throw new Error('introspection: ' + JSON.stringify(info))
    await client.tokenRevocation(config, tokens.access_token)
    console.log(`ok ${jwk.alg}: token, introspection, revocation`)
  }

  // The same jti twice: openid-client signs a fresh assertion each time, with the jti fixed.
  const jti = 'fixed-' + crypto.randomUUID()
  const replaying = await configFor(client.PrivateKeyJwt(await privateKey(keys[0]), {
    [client.modifyAssertion]: (_header, payload) => { payload.jti = jti },
  }))
  await client.clientCredentialsGrant(replaying, { scope: 'workitems:read' })
  console.log('ok first use of the jti')
  try {
    await client.clientCredentialsGrant(replaying, { scope: 'workitems:read' })
    throw new Error('a replayed jti was accepted')
  } catch (err) {
    // A 401 carries a challenge (RFC 9110 §15.5.2), which openid-client reports as such; the
    // OAuth error is in the body.
    let error = err.error
    if (err instanceof client.WWWAuthenticateChallengeError && err.status === 401) {
      error = (await err.response.json()).error
    } else if (!(err instanceof client.ResponseBodyError) || err.status !== 401) {
      throw err
    }
    if (error !== 'invalid_client') throw err
    console.log('ok replay refused: ' + error)
  }
} catch (err) {
  console.error('FAIL', err && err.stack || err)
  process.exit(1)
}
