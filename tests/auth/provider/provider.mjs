// A real OpenID provider for DigitalMask's sign-in tests (the certified npm package oidc-provider),
// listening on loopback only. Started by tests/auth/conftest.py with one argument: a JSON file with
// { port, issuer, jwks (private signing keys), clients, users, api_audience, short_ttl_clients }.
//
// - people sign in on this script's own login page, checked against the test user store
//   (username/password, name, roles, tenant); consent is implied (a hospital's first-party client)
// - systems get JWT access tokens with the client credentials grant (resource indicators)
// - POST /__test/revoke-user?name=U takes a person away at the provider, as an IdP admin would
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { URL } from 'node:url';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = new Map(Object.entries(config.users));
const systemTenants = new Map(config.clients.filter((c) => c.tenant).map((c) => [c.client_id, c.tenant]));
const shortLived = new Set(config.short_ttl_clients || []);
const ttl = (long) => (ctx, token, client) => (client && shortLived.has(client.clientId) ? 3 : long);

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>${body}</body></html>`;
}

const provider = new Provider(config.issuer, {
  clients: config.clients.map(({ tenant, ...metadata }) => metadata),
  jwks: config.jwks,
  cookies: { keys: ['dmask-test-provider-cookie-key'] },
  claims: { openid: ['sub'], profile: ['name', 'roles', 'tenant'] },
  scopes: ['openid', 'profile', 'media:read', 'media:write', 'audit:read'],
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => {
    const user = users.get(id);
    if (!user) return undefined;
    return {
      accountId: id,
      claims: async () => ({ sub: id, name: user.name, roles: user.roles, tenant: user.tenant }),
    };
  },
  loadExistingGrant: async (ctx) => {
    // first-party client: the hospital has consented for its staff, so no consent page
    const existing = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (existing) return ctx.oidc.provider.Grant.find(existing);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile');
    grant.addOIDCClaims(['name', 'roles', 'tenant']);
    await grant.save();
    return grant;
  },
  extraTokenClaims: async (ctx, token) => {
    if (token.kind === 'ClientCredentials') return { tenant: systemTenants.get(token.clientId) };
    const user = token.accountId && users.get(token.accountId);
    return user ? { roles: user.roles, tenant: user.tenant, name: user.name } : undefined;
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out of the hospital', `${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`);
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.api_audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'media:read media:write audit:read',
        audience: config.api_audience,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: ttl(600),
    ClientCredentials: ttl(600),
    IdToken: ttl(600),
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});
provider.proxy = false;
for (const event of ['end_session.error', 'grant.error', 'authorization.error', 'server_error']) {
  provider.on(event, (ctx, err) => console.error(`${event}: ${err.message} ${err.error_detail || ''}`));
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (details.prompt.name !== 'login') {
    // consent is granted by loadExistingGrant; anything else is not part of these tests
    await provider.interactionFinished(req, res, { error: 'access_denied' }, { mergeWithLastSubmission: false });
    return;
  }
  let error = '';
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const user = users.get(form.get('username') || '');
    if (user && user.password === form.get('password')) {
      await provider.interactionFinished(req, res, { login: { accountId: form.get('username') } }, {
        mergeWithLastSubmission: false,
      });
      return;
    }
    error = '<p role="alert">Unknown user or wrong password.</p>';
  }
  res.writeHead(error ? 401 : 200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(page('Hospital sign-in', `${error}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <label for="username">Username</label> <input id="username" name="username" required>
  <label for="password">Password</label> <input id="password" name="password" type="password" required>
  <button type="submit">Sign in</button>
</form>`));
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, config.issuer);
  try {
    const m = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/);
    if (m) return await interaction(req, res, m[1], m[2]);
    if (req.method === 'POST' && url.pathname === '/__test/revoke-user') {
      users.delete(url.searchParams.get('name'));
      res.writeHead(204).end();
      return undefined;
    }
    return callback(req, res);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(`provider error: ${err.message}`);
    return undefined;
  }
});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${config.issuer}\n`);
});
