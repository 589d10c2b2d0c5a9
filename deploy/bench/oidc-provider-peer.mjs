// The bench's peer for issue 31's figure "client-credentials grants of the default build ÷ the
// fastest peer": panva's oidc-provider serving client_credentials on 127.0.0.1:$PORT, each
// grant an RS256 JWT access token signed with a 2048-bit RSA key, as the IdP's are (opaque
// tokens would be a database write, not a signature). One worker per core (node:cluster), as
// the IdP uses every core. Client "bench-service", secret $CLIENT_SECRET, client_secret_basic;
// the token's audience is the one resource server, https://api.bench.test.
//
// The package is idp/testdata/oidc-provider's (the version its package-lock.json pins, the
// connector tests' upstream), imported from $OIDC_PROVIDER_DIR/node_modules, so the bench
// needs no second install to keep in step. Prints "ready ISSUER" once every worker listens.
import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const workers = Number(process.env.WORKERS) || availableParallelism();

if (cluster.isPrimary) {
  // One key for every worker: a JWT from any of them verifies with the one JWKS.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', use: 'sig', alg: 'RS256' };
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork({ PEER_JWK: JSON.stringify(jwk) });
    w.on('message', (m) => {
      if (m === 'listening' && ++listening === workers) console.log(`ready ${issuer}`);
    });
    w.on('exit', (code) => {
      if (code) process.exit(code);
    });
  }
} else {
  const dir = join(process.env.OIDC_PROVIDER_DIR, 'node_modules', 'oidc-provider');
  const main = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).main || 'lib/index.js';
  const { default: Provider } = await import(pathToFileURL(join(dir, main)).href);
  const resource = 'https://api.bench.test';
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'bench-service',
      client_secret: process.env.CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    }],
    jwks: { keys: [JSON.parse(process.env.PEER_JWK)] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          audience: resource,
          scope: 'api',
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    cookies: { keys: ['bench-only-cookie-key'] },
  });
  provider.proxy = false;
  provider.listen(port, '127.0.0.1', () => process.send('listening'));
}
