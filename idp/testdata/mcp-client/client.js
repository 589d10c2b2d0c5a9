// The MCP TypeScript SDK as a client of a tiny loopback MCP server that names the IdP in its
// RFC 9728 metadata (issue 30). The SDK discovers the IdP, registers itself (RFC 7591, open
// registration), runs the code flow with PKCE and calls a tool. The Go test is the browser: this
// script prints "authorize <url>" and reads "code <code>" on stdin.
//
// Env: IDP (the issuer), CALLBACK (the loopback redirect URI the test stops at).
import http from 'node:http';
import readline from 'node:readline';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const idp = process.env.IDP;
const callback = process.env.CALLBACK;
const log = (...a) => console.log(...a);

// The MCP server: RFC 9728 metadata naming the IdP, 401 with resource_metadata without a token,
// a token checked at the IdP's /userinfo (its signature, expiry and user) and bound to this
// server (RFC 8707: its aud is this server's resource), and one tool that says who called.
function mcpServer() {
  const server = new McpServer({ name: 'whoami', version: '1.0.0' });
  server.registerTool('whoami', { description: 'Who is calling' }, async (...args) => ({
    content: [{ type: 'text', text: `sub=${args[args.length - 1].authInfo?.extra?.sub} aud=${args[args.length - 1].authInfo?.extra?.aud}` }],
  }));
  return server;
}

const httpServer = http.createServer(async (req, res) => {
  const base = `http://127.0.0.1:${httpServer.address().port}`;
  const metadataURL = `${base}/.well-known/oauth-protected-resource/mcp`;
  if (req.url.startsWith('/.well-known/oauth-protected-resource')) {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ resource: `${base}/mcp`, authorization_servers: [idp],
      scopes_supported: ['openid', 'workitems:read'], bearer_methods_supported: ['header'] }));
    return;
  }
  const auth = req.headers.authorization || '';
  const m = /^Bearer (.+)$/i.exec(auth);
  let sub, aud;
  if (m) {
    const ui = await fetch(`${idp}/userinfo`, { headers: { Authorization: `Bearer ${m[1]}` } });
    const claims = JSON.parse(Buffer.from(m[1].split('.')[1] || '', 'base64url').toString() || '{}');
    aud = [].concat(claims.aud || []);
    if (ui.ok && aud.includes(`${base}/mcp`)) sub = (await ui.json()).sub;
  }
  if (!sub) {
    res.writeHead(401, { 'WWW-Authenticate': `Bearer resource_metadata="${metadataURL}"`, 'Content-Type': 'application/json' });
    res.end('{"error":"invalid_token"}');
    return;
  }
  req.auth = { token: m[1], clientId: '', scopes: [], extra: { sub, aud: aud.join(',') } };
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  const server = mcpServer();
  res.on('close', () => { transport.close(); server.close(); });
  await server.connect(transport);
  await transport.handleRequest(req, res);
});

// The client's OAuth state, in memory.
const store = {};
const provider = {
  get redirectUrl() { return callback; },
  get clientMetadata() {
    return { client_name: 'MCP test client', redirect_uris: [callback], grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], token_endpoint_auth_method: 'none', scope: 'openid workitems:read' };
  },
  clientInformation() { return store.client; },
  saveClientInformation(c) { store.client = c; log(`registered ${c.client_id}`); },
  tokens() { return store.tokens; },
  saveTokens(t) { store.tokens = t; log('tokens saved'); },
  redirectToAuthorization(url) { log(`authorize ${url}`); },
  saveCodeVerifier(v) { store.verifier = v; },
  codeVerifier() { return store.verifier; },
};

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

httpServer.listen(Number(process.env.MCP_PORT || 0), '127.0.0.1', async () => {
  const url = new URL(`http://127.0.0.1:${httpServer.address().port}/mcp`);
  try {
    let client = new Client({ name: 'mcp-test', version: '1.0.0' });
    let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    try {
      await client.connect(transport);
      throw new Error('connected without authorization');
    } catch (e) {
      if (!(e instanceof UnauthorizedError)) throw e;
    }
    const line = await nextLine();
    await transport.finishAuth(line.replace(/^code /, ''));
    client = new Client({ name: 'mcp-test', version: '1.0.0' });
    transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    await client.connect(transport);
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    log(`tool ${result.content[0].text}`);
    await client.close();
    process.exit(0);
  } catch (e) {
    log(`error ${e && e.stack || e}`);
    process.exit(1);
  }
});
