// A real upstream OpenID provider for the oidc connector's tests (issue 29): panva's
// oidc-provider on 127.0.0.1:$PORT with one client (jwtidp, client_secret_basic, PKCE S256,
// redirect URI $REDIRECT_URI, secret $CLIENT_SECRET) and its built-in login form
// (devInteractions), where any login and password sign in as that login. Every account has
// preferred_username (the login), email (LOGIN@upstream.test, verified) and groups
// ($GROUPS, comma-separated). Prints "ready ISSUER" once it listens.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const groups = (process.env.GROUPS || 'devs,ops').split(',').filter(Boolean);

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'jwtidp',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The scopes' claims go into the ID token itself, where the connector reads them.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['test-only-cookie-key'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, email: `${id}@upstream.test`, email_verified: true, groups };
      },
    };
  },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
