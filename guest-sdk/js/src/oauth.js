// OAuth2 client credentials without the secret ever reaching the connector,
// as the Python SDK's `junction_guest.oauth`.
//
// The operator configures the client id and secret as the backend's HTTP
// Basic credentials; the host adds them to a request that carries no
// `Authorization` of its own — here, only the token request. The access
// token is kept in the backend's state, so every call (each runs in a
// fresh instance) and every node shares it until shortly before it
// expires; a 401 gets one new token and one retry.
//
//   const api = new OAuthClient(host, '/oauth/v1/token', { transport });
//   const found = api.json('POST', '/crm/v3/objects/companies/search', { body: { limit: 1 } });

import { ConfigError } from './errors.js';
import { Client, Request } from './http.js';

/** The state key the token is kept under. */
export const TOKEN_STATE = 'oauth.access-token';
/** Renew this long before the server says a token expires. */
export const TOKEN_MARGIN_SECONDS = 60;

export class OAuthClient {
  /**
   * `transport`: the SDK's default when null; `clock`: seconds since the
   * epoch (a unit built without `--enable clocks` must pass one).
   */
  constructor(host, tokenPath, { scope = null, transport = null, clock = () => Date.now() / 1000, stateKey = TOKEN_STATE } = {}) {
    Object.assign(this, { host, tokenPath, scope, clock, stateKey });
    this.client = new Client(host.baseUrl, { transport });
  }

  /** The kept token while it is valid, else a new one. */
  token() {
    const kept = this.host.getState(this.stateKey);
    if (kept) {
      try {
        const saved = JSON.parse(kept);
        if (typeof saved.token === 'string' && saved.expires > this.clock()) return saved.token;
      } catch {
        // A damaged entry is replaced by a new token.
      }
    }
    return this.newToken();
  }

  newToken() {
    const form = { grant_type: 'client_credentials' };
    if (this.scope) form.scope = this.scope;
    const answer = this.client.request('POST', this.tokenPath, { form }).json();
    const token = answer?.access_token;
    if (typeof token !== 'string' || !token) {
      throw new ConfigError(`the token endpoint ${this.tokenPath} answered without an access_token`);
    }
    const lifetime = Math.trunc(Number(answer.expires_in ?? 0)) || 0;
    const expires = this.clock() + Math.max(0, lifetime - TOKEN_MARGIN_SECONDS);
    this.host.setState(this.stateKey, JSON.stringify({ token, expires }));
    return token;
  }

  /** The response as it came (statuses are not errors), after one new token and one retry on a 401. */
  send(method, path, { query = null, body } = {}) {
    const headers = [['Accept', 'application/json']];
    let data = new Uint8Array();
    if (body !== undefined) {
      headers.push(['Content-Type', 'application/json']);
      data = new TextEncoder().encode(JSON.stringify(body));
    }
    const url = this.client.url(path, query);
    const sendWith = (token) => this.client.send(new Request(method, url, [...headers, ['Authorization', `Bearer ${token}`]], data));
    const response = sendWith(this.token());
    if (response.status !== 401) return response;
    this.host.log('info', 'the backend refused the access token; getting a new one');
    return sendWith(this.newToken());
  }

  /** `send`, with statuses as contract errors; the JSON answer or null. */
  json(method, path, options) {
    const response = this.send(method, path, options).raiseForStatus();
    return response.body.length ? response.json() : null;
  }
}
