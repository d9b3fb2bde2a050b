// The business server's side of the OpenAPI: HMAC-SHA256 request signing (REFERENCE §4) and a
// call helper, as a Node business server would write them with node:crypto.
import { createHash, createHmac } from 'node:crypto';

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();
const rfc3986 = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** `YYYYMMDD'T'HHMMSS'Z'` for `date`. */
export function xDate(date = new Date()) {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/**
 * The `Authorization` header for a request. `headers` are the headers to sign (names in any
 * case; must include host, x-date and x-content-sha256); `query` an object.
 */
export function authorization({ method, path, query, headers, body, ak, sk, region = 'cn-north-1', service = 'rtc' }) {
  const canonicalQuery = Object.keys(query)
    .sort()
    .map((k) => `${rfc3986(k)}=${rfc3986(String(query[k]))}`)
    .join('&');
  const signed = Object.entries(headers)
    .map(([k, v]) => [k.toLowerCase(), String(v).trim()])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const signedHeaders = signed.map(([k]) => k).join(';');
  const canonicalHeaders = signed.map(([k, v]) => `${k}:${v}\n`).join('');
  const bodyHash = sha256(body);
  const canonicalRequest = [method, path, canonicalQuery, canonicalHeaders, signedHeaders, bodyHash].join('\n');
  const date = headers['X-Date'] ?? headers['x-date'];
  const day = date.slice(0, 8);
  const scope = `${day}/${region}/${service}/request`;
  const stringToSign = ['HMAC-SHA256', date, scope, sha256(canonicalRequest)].join('\n');
  const kSigning = hmac(hmac(hmac(hmac(sk, day), region), service), 'request');
  const signature = createHmac('sha256', kSigning).update(stringToSign).digest('hex');
  return `HMAC-SHA256 Credential=${ak}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
}

/** Calls `Action` on the rtm server at `server` with a signed POST; resolves to the JSON reply. */
export async function callOpenApi(server, action, body, { ak, sk }) {
  const url = new URL(server);
  const query = { Action: action, Version: '2023-07-20' };
  const text = JSON.stringify(body);
  const headers = { Host: url.host, 'X-Date': xDate(), 'X-Content-Sha256': sha256(text) };
  const auth = authorization({ method: 'POST', path: '/', query, headers, body: text, ak, sk });
  const res = await fetch(new URL(`/?${new URLSearchParams(query)}`, url), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-date': headers['X-Date'],
      'x-content-sha256': headers['X-Content-Sha256'],
      authorization: auth,
    },
    body: text,
  });
  const reply = await res.json();
  if (res.status !== 200) throw new Error(`${action}: HTTP ${res.status} ${JSON.stringify(reply)}`);
  return reply;
}
