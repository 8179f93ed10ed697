// Drives one full OpenID Connect session against a Portcullis issuer with
// the certified openid-client library, acting as the user agent itself:
// sign-in through the real login (and consent) pages, code + PKCE, refresh,
// userinfo, introspection, revocation, RP-initiated logout, and prompt=none
// after the logout.
//
// Settings come from --name value (or --name=value) arguments, else from
// the environment:
//
//   --issuer                    OIDC_ISSUER
//   --client-id                 OIDC_CLIENT_ID
//   --client-secret             OIDC_CLIENT_SECRET
//   --redirect-uri              OIDC_REDIRECT_URI
//   --username                  OIDC_USERNAME
//   --password                  OIDC_PASSWORD
//   --post-logout-redirect-uri  OIDC_POST_LOGOUT_REDIRECT_URI (optional)
//
// Prints one JSON line with the results and exits 0, or prints the failure
// to stderr and exits 1. Nothing is served at the redirect URIs: the script
// stops at the redirect, as a browser would hand it to the application.

import * as client from 'openid-client';

const settings = [
  ['issuer', 'OIDC_ISSUER', true],
  ['client-id', 'OIDC_CLIENT_ID', true],
  ['client-secret', 'OIDC_CLIENT_SECRET', true],
  ['redirect-uri', 'OIDC_REDIRECT_URI', true],
  ['username', 'OIDC_USERNAME', true],
  ['password', 'OIDC_PASSWORD', true],
  ['post-logout-redirect-uri', 'OIDC_POST_LOGOUT_REDIRECT_URI', false],
];

// A hung server must fail the run, not stall the test that started it.
const requestTimeoutMs = 10_000;
const maxHops = 20;

class Failure extends Error {}

function fail(step, message) {
  throw new Failure(`${step}: ${message}`);
}

function readSettings(argv, env) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(argv[i]);
    if (!m) fail('arguments', `unexpected argument ${JSON.stringify(argv[i])}`);
    if (m[2] !== undefined) {
      args[m[1]] = m[2];
    } else if (i + 1 < argv.length) {
      args[m[1]] = argv[++i];
    } else {
      fail('arguments', `--${m[1]} needs a value`);
    }
  }
  const known = new Set(settings.map(([flag]) => flag));
  for (const flag of Object.keys(args)) {
    if (!known.has(flag)) fail('arguments', `unknown option --${flag}`);
  }
  const out = {};
  const missing = [];
  for (const [flag, name, required] of settings) {
    const v = args[flag] ?? env[name] ?? '';
    if (required && v === '') missing.push(`--${flag} (or ${name})`);
    out[flag.replace(/-(.)/g, (_, c) => c.toUpperCase())] = v;
  }
  if (missing.length) fail('arguments', `missing ${missing.join(', ')}`);
  return out;
}

// CookieJar keeps name=value pairs for the issuer only: every request this
// script sends with cookies goes to that one origin, so domain and path
// matching would add nothing.
class CookieJar {
  #cookies = new Map();

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v = ''] = a.split('=').map((s) => s.trim());
        if (/^max-age$/i.test(k)) return Number(v) <= 0;
        if (/^expires$/i.test(k)) return Date.parse(v) <= Date.now();
        return false;
      });
      if (expired || value === '') {
        this.#cookies.delete(name);
      } else {
        this.#cookies.set(name, value);
      }
    }
  }

  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function decodeEntities(s) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, e) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return named[e.toLowerCase()] ?? whole;
  });
}

function attr(tag, name) {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, 'i').exec(tag);
  return m ? decodeEntities(m[1] ?? m[2]) : undefined;
}

// forms lists the page's forms with their action, hidden fields and
// submit buttons, as a browser would see them.
function forms(html) {
  const out = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const form = { action: attr(m[1], 'action') ?? '', method: (attr(m[1], 'method') ?? 'get').toLowerCase(), hidden: new URLSearchParams(), inputs: [], buttons: [] };
    for (const t of m[2].matchAll(/<(input|button)\b([^>]*)>/gi)) {
      const tag = t[2];
      const name = attr(tag, 'name');
      const type = (attr(tag, 'type') ?? (t[1].toLowerCase() === 'button' ? 'submit' : 'text')).toLowerCase();
      if (type === 'hidden' && name) {
        form.hidden.append(name, attr(tag, 'value') ?? '');
      } else if (type === 'submit') {
        form.buttons.push({ name, value: attr(tag, 'value') ?? '' });
      } else if (name) {
        form.inputs.push(name);
      }
    }
    out.push(form);
  }
  return out;
}

function isAt(url, target) {
  return url.origin === target.origin && url.pathname === target.pathname;
}

function summary(html) {
  const title = /<title>([\s\S]*?)<\/title>/i.exec(html)?.[1] ?? '';
  const text = html.replace(/<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
  return `${decodeEntities(title).trim()} — ${decodeEntities(text).slice(0, 300)}`;
}

// Browser is the user agent: it keeps the issuer's cookies, follows
// redirects itself, and posts forms with the headers a real browser sends
// for a same-origin form submission.
class Browser {
  constructor(issuer) {
    this.origin = new URL(issuer).origin;
    this.jar = new CookieJar();
  }

  async request(method, url, form) {
    const headers = { Accept: 'text/html' };
    if (url.origin === this.origin) {
      const cookie = this.jar.header();
      if (cookie) headers.Cookie = cookie;
    }
    let body;
    if (form) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers.Origin = this.origin;
      headers['Sec-Fetch-Site'] = 'same-origin';
      headers['Sec-Fetch-Mode'] = 'navigate';
      body = form.toString();
    }
    const response = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(requestTimeoutMs) });
    if (url.origin === this.origin) this.jar.store(response);
    const text = await response.text();
    return { status: response.status, location: response.headers.get('location'), url, text };
  }

  // navigate starts at url and walks the issuer's pages until a redirect
  // leaves for one of stops (returned as a URL), signing in and consenting
  // on the way when credentials are given.
  async navigate(step, start, stops, credentials) {
    let res = await this.request('GET', start);
    const seen = [];
    for (let hop = 0; hop < maxHops; hop++) {
      seen.push(`${res.status} ${res.url.pathname}`);
      if (res.status >= 300 && res.status < 400) {
        if (!res.location) fail(step, `redirect ${res.status} from ${res.url} without a Location`);
        const next = new URL(res.location, res.url);
        if (stops.some((s) => isAt(next, s))) return { url: next, path: seen };
        if (next.origin !== this.origin) fail(step, `redirected off the issuer to ${next}`);
        res = await this.request('GET', next);
        continue;
      }
      if (res.status !== 200) fail(step, `${res.status} at ${res.url}: ${summary(res.text)}`);
      const page = forms(res.text);
      const login = page.find((f) => f.inputs.includes('username') && f.inputs.includes('password'));
      const consent = page.find((f) => f.buttons.some((b) => b.name === 'consent' && b.value === 'allow'));
      const confirm = page.find((f) => f.method === 'post' && new URL(f.action || res.url, res.url).pathname.endsWith('/logout'));
      if (login && credentials) {
        if (seen.filter((s) => s.endsWith(' /login')).length > 2) fail(step, `sign-in refused: ${summary(res.text)}`);
        const form = new URLSearchParams(login.hidden);
        form.set('username', credentials.username);
        form.set('password', credentials.password);
        res = await this.request('POST', new URL(login.action || res.url, res.url), form);
      } else if (consent && credentials) {
        const form = new URLSearchParams(consent.hidden);
        form.set('consent', 'allow');
        res = await this.request('POST', new URL(consent.action || res.url, res.url), form);
      } else if (confirm) {
        // A server that asks before signing out shows a form; confirm it.
        const form = new URLSearchParams(confirm.hidden);
        const yes = confirm.buttons.find((b) => b.name && /^(yes|confirm|true|1)$/i.test(b.value));
        form.set(yes?.name ?? 'confirm', yes?.value ?? 'yes');
        res = await this.request('POST', new URL(confirm.action || res.url, res.url), form);
      } else {
        return { page: res, path: seen };
      }
    }
    fail(step, `more than ${maxHops} hops: ${seen.join(' → ')}`);
  }
}

async function step(results, name, fn) {
  try {
    const out = await fn();
    results.steps.push(name);
    return out;
  } catch (err) {
    if (err instanceof Failure) throw err;
    const detail = [err.message, err.code, err.error, err.error_description, err.cause?.message].filter(Boolean).join(' | ');
    fail(name, detail || String(err));
  }
}

async function run() {
  const s = readSettings(process.argv.slice(2), process.env);
  const results = { ok: false, library: 'openid-client', steps: [] };
  const redirect = new URL(s.redirectUri);
  const postLogout = s.postLogoutRedirectUri ? new URL(s.postLogoutRedirectUri) : undefined;
  const browser = new Browser(s.issuer);
  const credentials = { username: s.username, password: s.password };

  // The default client authentication: client_secret_post with a secret.
  const config = await step(results, 'discovery', () =>
    client.discovery(new URL(s.issuer), s.clientId, s.clientSecret, undefined, { execute: [client.allowInsecureRequests] }),
  );
  const meta = config.serverMetadata();
  if (meta.issuer !== s.issuer) fail('discovery', `issuer ${meta.issuer}, want ${s.issuer}`);

  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authURL = client.buildAuthorizationUrl(config, {
    redirect_uri: s.redirectUri,
    scope: 'openid profile offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });

  const signIn = await step(results, 'sign-in', async () => {
    const got = await browser.navigate('sign-in', authURL, [redirect], credentials);
    if (!got.url) fail('sign-in', `stopped at a page instead of ${redirect}: ${summary(got.page.text)}`);
    if (got.url.searchParams.has('error')) {
      fail('sign-in', `authorization error ${got.url.searchParams.get('error')}: ${got.url.searchParams.get('error_description')}`);
    }
    if (!got.url.searchParams.get('code')) fail('sign-in', `no code in ${got.url}`);
    return got;
  });
  results.sign_in_path = signIn.path;

  // authorizationCodeGrant checks state, PKCE, nonce and the ID token.
  const tokens = await step(results, 'authorization_code', () =>
    client.authorizationCodeGrant(config, signIn.url, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }),
  );
  const claims = tokens.claims();
  if (!claims?.sub) fail('authorization_code', 'no ID token subject');
  if (!tokens.refresh_token) fail('authorization_code', 'no refresh token for offline_access');
  results.sub = claims.sub;

  const refreshed = await step(results, 'refresh_token', () => client.refreshTokenGrant(config, tokens.refresh_token));
  if (!refreshed.access_token || refreshed.access_token === tokens.access_token) fail('refresh_token', 'access token not renewed');
  if (!refreshed.refresh_token) fail('refresh_token', 'no rotated refresh token');
  const refreshedSub = refreshed.claims()?.sub;
  if (refreshedSub !== undefined && refreshedSub !== claims.sub) fail('refresh_token', `ID token sub ${refreshedSub}, want ${claims.sub}`);
  results.refresh_rotated = refreshed.refresh_token !== tokens.refresh_token;

  // fetchUserInfo refuses a sub other than the expected one itself.
  const info = await step(results, 'userinfo', () => client.fetchUserInfo(config, refreshed.access_token, claims.sub));
  results.userinfo_sub = info.sub;

  const intro = await step(results, 'introspection', () => client.tokenIntrospection(config, refreshed.access_token));
  if (intro.active !== true) fail('introspection', `access token active=${intro.active}`);
  if (intro.client_id !== undefined && intro.client_id !== s.clientId) fail('introspection', `client_id ${intro.client_id}, want ${s.clientId}`);
  results.introspection_active = intro.active;

  await step(results, 'revocation', () => client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' }));
  const after = await step(results, 'introspection_after_revocation', () =>
    client.tokenIntrospection(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' }),
  );
  if (after.active !== false) fail('introspection_after_revocation', `revoked refresh token active=${after.active}`);
  results.revoked_active = after.active;

  const logoutState = client.randomState();
  const endParams = { id_token_hint: refreshed.id_token ?? tokens.id_token };
  if (postLogout) {
    endParams.post_logout_redirect_uri = postLogout.href;
    endParams.state = logoutState;
  }
  const endURL = client.buildEndSessionUrl(config, endParams);
  const logout = await step(results, 'end_session', async () => {
    const got = await browser.navigate('end_session', endURL, postLogout ? [postLogout] : [], null);
    results.logout_path = got.path;
    if (postLogout) {
      if (!got.url) fail('end_session', `stopped at a page instead of ${postLogout}: ${summary(got.page.text)}`);
      if (got.url.searchParams.get('state') !== logoutState) fail('end_session', `state ${got.url.searchParams.get('state')}, want ${logoutState}`);
      return got.url.href;
    }
    if (!/signed out/i.test(got.page.text)) fail('end_session', `no signed-out page: ${summary(got.page.text)}`);
    return got.page.url.href;
  });
  results.logout = logout;

  // Signed out, a silent request must say so instead of signing in again.
  const silentState = client.randomState();
  const silentURL = client.buildAuthorizationUrl(config, {
    redirect_uri: s.redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    state: silentState,
    nonce: client.randomNonce(),
    prompt: 'none',
  });
  const silent = await step(results, 'prompt_none', async () => {
    const got = await browser.navigate('prompt_none', silentURL, [redirect], null);
    if (!got.url) fail('prompt_none', `stopped at a page instead of ${redirect}: ${summary(got.page.text)}`);
    const err = got.url.searchParams.get('error');
    if (err !== 'login_required') fail('prompt_none', `error=${err} code=${got.url.searchParams.has('code')}, want error=login_required`);
    if (got.url.searchParams.get('state') !== silentState) fail('prompt_none', 'state not echoed');
    return err;
  });
  results.prompt_none_error = silent;

  results.ok = true;
  return results;
}

try {
  process.stdout.write(JSON.stringify(await run()) + '\n');
} catch (err) {
  process.stderr.write(`openid-client e2e failed: ${err instanceof Failure ? err.message : err?.stack ?? err}\n`);
  process.exitCode = 1;
}
