// Drives the MCP conformance suite's authorization-server scenarios against a running Errand.
// Run by .ci/conformance with the newer Node; plain JavaScript so it needs no build step.
// Env: ISSUER, SETUP_LINK (the broker's one-time setup link), CONFORMANCE_CLI, CALLBACK_PORT, OUT_DIR.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const { ISSUER, SETUP_LINK, CONFORMANCE_CLI, CALLBACK_PORT, OUT_DIR } = process.env;
if (!ISSUER || !SETUP_LINK || !CONFORMANCE_CLI || !CALLBACK_PORT || !OUT_DIR) {
  throw new Error('ISSUER, SETUP_LINK, CONFORMANCE_CLI, CALLBACK_PORT and OUT_DIR are required');
}

/** A cookie-keeping fetch that does not follow redirects, standing in for the person at the browser. */
const cookies = new Map();
async function browse(url, init = {}) {
  const headers = new Headers(init.headers);
  if (cookies.size) headers.set('cookie', [...cookies].map(([k, v]) => `${k}=${v}`).join('; '));
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  return res;
}
const postForm = (url, form) =>
  browse(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
const hidden = (html, name) => {
  const m = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!m)
    throw new Error(
      `no hidden input ${name} in page: ${html
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .slice(0, 400)}`,
    );
  return m[1].replaceAll('&amp;', '&');
};
const location = (res) => {
  const loc = res.headers.get('location');
  if (res.status !== 303 && res.status !== 302) throw new Error(`expected a redirect, got ${res.status}`);
  return new URL(loc, ISSUER).toString();
};

// 1. The first administrator, through the real setup page; this person signs in and consents below.
const user = { username: 'conformance', password: 'conformance-password-1' };
const setupPage = await (await browse(SETUP_LINK)).text();
const setup = await postForm(`${ISSUER}/setup`, {
  token: hidden(setupPage, 'token'),
  username: user.username,
  password: user.password,
  confirm: user.password,
});
if (setup.status !== 303) throw new Error(`setup failed: ${setup.status}`);
cookies.clear();

// 2. A public client registered with dynamic client registration, redirecting to the suite's callback.
const redirectUri = `http://127.0.0.1:${CALLBACK_PORT}/callback`;
const reg = await fetch(`${ISSUER}/register`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    client_name: 'MCP conformance suite',
    application_type: 'native',
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    // The scenario sends no `scope`; Errand then grants the client's registered scope (RFC 6749 §3.3 default).
    scope: 'errand:tasks',
  }),
});
const client = await reg.json();
if (reg.status !== 201) throw new Error(`registration failed: ${reg.status} ${JSON.stringify(client)}`);

/** What the person does with the URL the suite prints: sign in, approve, land on the callback. */
async function authorize(url) {
  const consentUrl = location(await browse(url));
  if (consentUrl.startsWith(`${redirectUri}?`)) throw new Error(`Errand answered at once: ${consentUrl}`);
  let consent = await browse(consentUrl);
  if (consent.status === 303) {
    const signInPage = await (await browse(location(consent))).text();
    const signedIn = await postForm(`${ISSUER}/signin`, {
      ...user,
      _csrf: hidden(signInPage, '_csrf'),
      next: hidden(signInPage, 'next'),
    });
    location(signedIn);
    consent = await browse(consentUrl);
  }
  if (consent.status !== 200) throw new Error(`consent page: ${consent.status}`);
  const page = await consent.text();
  const approved = await postForm(`${ISSUER}/authorize/consent`, {
    _csrf: hidden(page, '_csrf'),
    request: hidden(page, 'request'),
    decision: 'approve',
  });
  const callback = location(approved);
  if (!callback.startsWith(`${redirectUri}?`)) throw new Error(`unexpected redirect ${callback}`);
  await fetch(callback);
}

// 3. The suite itself; all authorization-server scenarios (none is excluded).
const args = [
  CONFORMANCE_CLI,
  'authorization',
  '--url',
  ISSUER,
  '--client-id',
  client.client_id,
  '--resource',
  `${ISSUER}/mcp`,
  '--port',
  CALLBACK_PORT,
  '--output-dir',
  OUT_DIR,
];
const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
let driving = Promise.resolve();
let failed = false;
createInterface({ input: child.stdout }).on('line', (line) => {
  process.stdout.write(`${line}\n`);
  const trimmed = line.trim();
  if (trimmed.startsWith(`${ISSUER}/authorize?`)) {
    driving = authorize(trimmed).catch((err) => {
      console.error(`driving the authorization failed: ${err.message}`);
      failed = true;
      child.kill(); // fail now rather than after the suite's 5-minute wait for the callback
    });
  }
});
const code = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
await driving;
process.exit(failed ? 1 : code);
