// The public GraphQL API, over HTTP (queries, mutations) and graphql-ws (live board events).
// ?api=<origin> points the app at an API on another origin (CORS: ALLOWED_ORIGINS).
import { createClient } from "graphql-ws";

const api = new URLSearchParams(location.search).get("api") || location.origin;
const httpUrl = `${api}/graphql`;
const wsUrl = httpUrl.replace(/^http/, "ws");
const KEY = "saas-session";

export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || errors[0]?.code;
  }
}

export const session = {
  get: () => JSON.parse(sessionStorage.getItem(KEY) || "null"),
  set: (value) => (value ? sessionStorage.setItem(KEY, JSON.stringify(value)) : sessionStorage.removeItem(KEY)),
};

async function post(query, variables, token) {
  const response = await fetch(httpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new ApiError(body.errors);
  return body.data;
}

const LOGIN = `mutation($input: LoginInput!) { login(input: $input) {
  token refreshToken errors { code message } } }`;
const REFRESH = `mutation($input: RefreshInput!) { refresh(input: $input) {
  token refreshToken errors { code message } } }`;

export async function login(tenant, email, password) {
  const { login } = await post(LOGIN, { input: { tenant, email, password } });
  if (login.errors.length) throw new ApiError(login.errors);
  session.set({ tenant, email, token: login.token, refreshToken: login.refreshToken });
}

async function refresh() {
  const s = session.get();
  const { refresh } = await post(REFRESH, { input: { refreshToken: s.refreshToken } });
  if (refresh.errors.length) throw new ApiError(refresh.errors);
  session.set({ ...s, token: refresh.token, refreshToken: refresh.refreshToken });
}

/** A query or mutation as the logged-in user; an expired access token is refreshed once. */
export async function gql(query, variables = {}) {
  try {
    return await post(query, variables, session.get()?.token);
  } catch (e) {
    if (e.code !== "UNAUTHENTICATED" || !session.get()?.refreshToken) throw e;
    await refresh();
    return post(query, variables, session.get().token);
  }
}

let client = null;
const listeners = new Set();

/** Connection state changes ("connected", "closed") for the status badge. */
export function onConnection(listener) {
  listeners.add(listener);
}

function wsClient() {
  client ??= createClient({
    url: wsUrl,
    connectionParams: () => ({ Authorization: `Bearer ${session.get()?.token}` }),
    lazy: true,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    // Reconnect fast (a restarted API is back within seconds), never more than 3 s apart.
    retryWait: (retries) => new Promise((r) => setTimeout(r, Math.min(3000, 250 * 2 ** retries))),
    on: {
      connected: () => listeners.forEach((l) => l("connected")),
      closed: () => listeners.forEach((l) => l("closed")),
    },
  });
  return client;
}

/** Subscribe; `payload.variables` may be changed later: a reconnect re-sends the current
 * values (the board keeps its last cursor there, so it resumes where it stopped). */
export function subscribe(payload, onData, onError) {
  return wsClient().subscribe(payload, {
    next: (message) => (message.errors ? onError(new ApiError(message.errors)) : onData(message.data)),
    error: (e) => onError(e),
    complete: () => {},
  });
}

export function disconnect() {
  client?.dispose();
  client = null;
}
