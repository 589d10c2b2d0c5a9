// panva's openid-client (certified) as a device: it discovers the IdP, starts the device grant
// as the public client "tv", prints the verification URI for the test to approve, polls until
// it gets tokens, then refreshes and wants a fresh ID token (same sub, the original auth_time,
// no nonce), which openid-client itself checks as OpenID Connect Core §12.2 asks.
// Env: ISSUER. Prints "verify URL", then one "ok ..." line per step; exits non-zero on failure.
import * as client from 'openid-client'

try {
  const config = await client.discovery(new URL(process.env.ISSUER), 'tv', {}, client.None(),
    { execute: [client.allowInsecureRequests] })
  const da = await client.initiateDeviceAuthorization(config, { scope: 'openid profile offline_access' })
  console.log(`verify ${da.verification_uri_complete}`)
  const tokens = await client.pollDeviceAuthorizationGrant(config, da)
  const first = tokens.claims()
  if (!first || !tokens.refresh_token) throw new Error('the device grant gave no ID token or no refresh token')
  console.log(`ok device grant: sub=${first.sub}`)
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  const again = refreshed.claims()
  if (!again) throw new Error('the refresh gave no ID token')
  if (again.sub !== first.sub || again.auth_time !== first.auth_time || again.nonce !== undefined) {
    throw new Error('the refreshed ID token: ' + JSON.stringify(again))
  }
  console.log(`ok refresh: an ID token for sub=${again.sub}, auth_time kept`)
} catch (err) {
  console.error('FAIL', err && err.stack || err)
  process.exit(1)
}
