// A real OpenID Connect provider for dashgate's integration tests: the certified
// `oidc-provider` package, plain http on loopback, with our own minimal login page.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG.json (written by tests/it/support/oidc.rs):
//   port, issuer                 listen on 127.0.0.1:port; issuer is e.g. http://127.0.0.1:port
//   clients                      oidc-provider client metadata, passed through as is
//   accounts                     [{ sub, username, password, email, name, groups: [...] }]
//   keys_file                    private JWKS; created with one RS256 key when missing
//   rotate                       if true: add a new key first (it signs), keep the old ones
//                                published, and write the file back
//   id_token_ttl_seconds         optional, default 3600
//   minimal_id_tokens            optional: if true, profile, email and groups claims are only
//                                at the userinfo endpoint, not in the ID token
//
// Prints `READY <issuer>` on stdout once listening; exits 0 on SIGTERM.
//
// Driving it over HTTP (no browser):
//   login   GET /interaction/<uid> shows a form (POST to its action) with fields `username`
//           and `password`; a wrong password re-renders it with status 401.
//   logout  GET /session/end?client_id=..&post_logout_redirect_uri=.. shows a form (POST to
//           its action, /session/end/confirm) with a hidden `xsrf` field; submit it with
//           `logout=yes` (the button id `confirm-logout`). Without a session at the provider
//           the same two fields come in an auto-submitting form instead.
//   Both need the provider's cookies (op_session, op_interaction, op_interaction_resume).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = crypto.randomBytes(8).toString('hex');
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

function loadKeys() {
  let keys = fs.existsSync(config.keys_file)
    ? JSON.parse(fs.readFileSync(config.keys_file, 'utf8')).keys
    : [];
  // oidc-provider signs with the first key that fits the algorithm, so a new key goes first.
  if (keys.length === 0 || config.rotate) {
    keys = [newKey(), ...keys];
    fs.writeFileSync(config.keys_file, JSON.stringify({ keys }, null, 2));
  }
  return { keys };
}

const accounts = config.accounts || [];

const escape = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>${body}</body></html>`;

const provider = new Provider(config.issuer, {
  clients: config.clients || [],
  jwks: loadKeys(),

  async findAccount(ctx, sub) {
    const account = accounts.find((a) => a.sub === sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      // Called with the claims already filtered to what the grant allows.
      async claims() {
        return {
          sub,
          preferred_username: account.username,
          name: account.name,
          email: account.email,
          email_verified: true,
          groups: account.groups || [],
        };
      },
    };
  },

  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // By default the ID token of the code flow carries only sub and the protocol claims (the
  // rest is for userinfo); a relying party that reads only the ID token wants them all.
  conformIdTokenClaims: Boolean(config.minimal_id_tokens),

  // PKCE for every client, not only public ones (oidc-provider only knows S256).
  pkce: { required: () => true },

  // Skip consent: whatever a client asks for is granted. oidc-provider asks this function
  // for the grant before deciding whether the consent prompt is needed, so a grant that
  // already covers the request means no consent step.
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    const grant = (grantId && await oidc.provider.Grant.find(grantId))
      || new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' ') || 'openid');
    grant.addOIDCClaims([...oidc.requestParamClaims]);
    await grant.save();
    return grant;
  },

  // Our own login page below, not the development one.
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },

  cookies: {
    // Browsers share cookies across the ports of a host: names that cannot clash with the
    // gateway's own cookies on 127.0.0.1. The cookies get the Secure flag only when the
    // request is https (ctx.secure), so they work on plain http as they are.
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
  },

  ttl: { IdToken: config.id_token_ttl_seconds || 3600 },

  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      // `form` is oidc-provider's form (its action and hidden `xsrf` field); buttons outside
      // it submit it through their `form` attribute. `logout=yes` ends the whole session.
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `${form}
<button id="confirm-logout" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<button id="stay-signed-in" type="submit" form="op.logoutForm">Stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p id="signed-out">You are signed out.</p>');
      },
    },
  },

  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<pre id="error">${escape(out.error)}: ${escape(out.error_description)}</pre>`);
  },
});

// Tell the tests why a request failed.
for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error', 'userinfo.error']) {
  provider.on(event, (ctx, err) => console.error(`${event}: ${err?.message} ${err?.error_description || ''}`));
}

function loginPage(uid, error, username) {
  return page('Sign in', `${error ? `<p id="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
  <label for="username">Username</label>
  <input id="username" name="username" autocomplete="username" value="${escape(username)}" autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <button id="sign-in" type="submit">Sign in</button>
</form>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

// /interaction/<uid> and /interaction/<uid>/login are ours; the rest is oidc-provider's.
async function interaction(req, res, uid, action) {
  // Checks the op_interaction cookie against the uid; throws when it is missing or stale.
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');

  if (details.prompt.name !== 'login') {
    // Only consent is left (e.g. prompt=consent): loadExistingGrant granted it all already.
    const grant = (details.grantId && await provider.Grant.find(details.grantId))
      || new provider.Grant({ clientId: details.params.client_id, accountId: details.session.accountId });
    grant.addOIDCScope(details.params.scope || 'openid');
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } });
  }

  if (req.method === 'GET' && !action) return send(res, 200, loginPage(uid));
  if (req.method !== 'POST' || action !== 'login') return send(res, 405, page('Not allowed', ''));

  const form = await readForm(req);
  const username = form.get('username') || '';
  const account = accounts.find((a) => a.username === username);
  const given = Buffer.from(form.get('password') || '');
  const ok = account && given.length === Buffer.byteLength(account.password)
    && crypto.timingSafeEqual(given, Buffer.from(account.password));
  if (!ok) return send(res, 401, loginPage(uid, 'Invalid username or password.', username));

  return provider.interactionFinished(req, res, { login: { accountId: account.sub } }, {
    mergeWithLastSubmission: false,
  });
}

const handle = provider.callback();
const server = http.createServer((req, res) => {
  const m = /^\/interaction\/([^/?]+)(?:\/([^/?]+))?\/?(?:\?.*)?$/.exec(req.url);
  if (!m) return handle(req, res);
  return interaction(req, res, m[1], m[2]).catch((err) => {
    console.error(`interaction: ${err.message}`);
    if (!res.headersSent) send(res, 400, page('Error', `<pre id="error">${escape(err.message)}</pre>`));
  });
});

server.listen(config.port, '127.0.0.1', () => console.log(`READY ${config.issuer}`));

// All state is in memory: nothing to flush.
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
