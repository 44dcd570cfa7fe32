// The daemon's control API, called with the session cookie. Every
// state-changing call carries the session's CSRF token; the browser adds
// the Origin header, which the daemon checks too.

let csrf = '';

export function setCSRF(token) {
  csrf = token;
}

export class APIError extends Error {
  constructor(status, code, message) {
    super(message || code || 'request failed (' + status + ')');
    this.status = status;
    this.code = code;
  }
}

// onUnauthorized is called when the session is gone (daemon restarted,
// logged out elsewhere).
let onUnauthorized = () => {};
export function whenLoggedOut(fn) {
  onUnauthorized = fn;
}

export async function call(method, path, body) {
  const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD') opts.headers['X-CSRF-Token'] = csrf;
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new APIError(0, 'network', 'cannot reach the node (is the daemon running?)');
  }
  let data = null;
  if ((r.headers.get('Content-Type') || '').startsWith('application/json')) {
    data = await r.json().catch(() => null);
  }
  if (!r.ok) {
    if (r.status === 401 && path !== '/ui/login') onUnauthorized();
    throw new APIError(r.status, data && data.code, data && data.error);
  }
  return data;
}

// callText is call for an answer that is not one JSON value (a stream
// of lines, read whole).
async function callText(method, path) {
  const opts = { method, headers: { Accept: 'application/x-ndjson' }, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD') opts.headers['X-CSRF-Token'] = csrf;
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new APIError(0, 'network', 'cannot reach the node (is the daemon running?)');
  }
  if (!r.ok) {
    const data = await r.json().catch(() => null);
    if (r.status === 401) onUnauthorized();
    throw new APIError(r.status, data && data.code, data && data.error);
  }
  return r.text();
}

const seg = encodeURIComponent;
const qs = (o) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== '' && v !== null) p.set(k, String(v));
  const s = p.toString();
  return s ? '?' + s : '';
};

export const api = {
  login: (secret) => call('POST', '/ui/login', { secret }),
  session: () => call('GET', '/v1/ui/session'),
  logout: () => call('DELETE', '/v1/ui/session'),
  status: () => call('GET', '/v1/status'),
  network: () => call('GET', '/v1/network'),
  inbox: () => call('GET', '/v1/inbox'),
  outbox: () => call('GET', '/v1/outbox'),
  group: (g) => call('GET', `/v1/groups/${seg(g)}`),
  history: (g, q) => call('GET', `/v1/groups/${seg(g)}/history${qs(q)}`),
  markRead: (g, cursor) => call('PUT', `/v1/groups/${seg(g)}/read`, { cursor }),
  send: (g, text, to, replyTo) => call('POST', `/v1/groups/${seg(g)}/messages`, Object.assign({ text }, to ? { to } : {}, replyTo ? { reply_to: replyTo } : {})),
  // One message by ID: its edit history, edits, deletes, reactions.
  message: (id) => call('GET', `/v1/messages/${seg(id)}`),
  edit: (id, text) => call('PATCH', `/v1/messages/${seg(id)}`, { text }),
  deleteMessage: (id) => call('DELETE', `/v1/messages/${seg(id)}`),
  // Files: download fetches and checks the chunks (a stream of progress
  // lines, read whole here); fileURL is the checked bytes.
  download: async (id) => {
    const lines = await callText('POST', `/v1/messages/${seg(id)}/download`);
    const last = lines.trim().split('\n').map((l) => JSON.parse(l)).pop() || {};
    if (last.error) throw new APIError(409, last.code, last.error);
    if (!last.done) throw new APIError(0, 'incomplete', 'the download did not finish');
    return last;
  },
  fileURL: (id) => `/v1/messages/${seg(id)}/file`,
  // sendFile sends a File (or Blob) as the raw body.
  sendFile: async (g, file) => {
    const q = new URLSearchParams({ name: file.name || 'file' });
    if (file.type) q.set('type', file.type);
    let r;
    try {
      r = await fetch(`/v1/groups/${seg(g)}/files?${q}`, {
        method: 'POST', body: file, credentials: 'same-origin', cache: 'no-store',
        headers: { Accept: 'application/json', 'Content-Type': 'application/octet-stream', 'X-CSRF-Token': csrf },
      });
    } catch (e) {
      throw new APIError(0, 'network', 'cannot reach the node (is the daemon running?)');
    }
    const data = await r.json().catch(() => null);
    if (!r.ok) {
      if (r.status === 401) onUnauthorized();
      throw new APIError(r.status, data && data.code, data && data.error);
    }
    return data;
  },
  react: (id, emoji, op) => call('POST', `/v1/messages/${seg(id)}/reactions`, op ? { emoji, op } : { emoji }),
  members: (g) => call('GET', `/v1/groups/${seg(g)}/members`),
  invite: (g) => call('GET', `/v1/groups/${seg(g)}/invite`),
  inviteQR: (g) => `/v1/groups/${seg(g)}/invite/qr`,
  catchUp: (g) => call('POST', `/v1/groups/${seg(g)}/catchup`),
  createGroup: (name, hosts) => call('POST', '/v1/groups', { name, hosts }),
  createManaged: (req) => call('POST', '/v1/managed-groups', req),
  join: (invite, nick) => call('POST', '/v1/join', nick ? { invite, nick } : { invite }),
  leave: (g) => call('POST', `/v1/groups/${seg(g)}/leave`),
  verified: () => call('GET', '/v1/verified'),
  setVerified: (fp, on) => call(on ? 'PUT' : 'DELETE', `/v1/verified/${seg(fp)}`),
  // Managed groups.
  keyPackages: () => call('GET', '/v1/keypackages'),
  newKeyPackage: (req) => call('POST', '/v1/keypackages', req || {}),
  addMember: (g, keyPackage, role) => call('POST', `/v1/groups/${seg(g)}/add`, { key_package: keyPackage, role }),
  addContact: (g, contact, role) => call('POST', `/v1/groups/${seg(g)}/add-contact`, { contact, role }),
  removeMember: (g, fp) => call('DELETE', `/v1/groups/${seg(g)}/members/${seg(fp)}`),
  setRole: (g, fp, role) => call('PUT', `/v1/groups/${seg(g)}/members/${seg(fp)}/role`, { role }),
  addManager: (g, fp) => call('POST', `/v1/groups/${seg(g)}/managers`, { fingerprint: fp }),
  rotate: (g) => call('POST', `/v1/groups/${seg(g)}/rotate`),
  policy: (g) => call('GET', `/v1/groups/${seg(g)}/policy`),
  setPolicy: (g, req) => call('PUT', `/v1/groups/${seg(g)}/policy`, req),
  hosts: (g) => call('GET', `/v1/groups/${seg(g)}/hosts`),
  setHosts: (g, hosts) => call('PUT', `/v1/groups/${seg(g)}/hosts`, { hosts }),
  splits: (g) => call('GET', `/v1/groups/${seg(g)}/splits`),
  rejections: (g, limit) => call('GET', `/v1/groups/${seg(g)}/rejections${qs({ limit })}`),
  // Contacts.
  aliases: () => call('GET', '/v1/aliases'),
  addAlias: (name, hosts) => call('POST', '/v1/aliases', hosts && hosts.length ? { name, hosts } : { name }),
  removeAlias: (name) => call('DELETE', `/v1/aliases/${seg(name)}`),
  contacts: () => call('GET', '/v1/contacts'),
  requests: () => call('GET', '/v1/contacts/requests'),
  requestContact: (name) => call('POST', '/v1/contacts/requests', { name }),
  accept: (id) => call('POST', `/v1/contacts/requests/${seg(id)}/accept`),
  reject: (id) => call('POST', `/v1/contacts/requests/${seg(id)}/reject`),
  removeContact: (c, block) => call('DELETE', `/v1/contacts/${seg(c)}${block ? '?block=true' : ''}`),
};

// Events is the live stream of the node's events (Server-Sent Events).
// It reconnects by itself; after a reconnection the handler gets a
// synthetic {type: 'resync'}, since events may have been missed.
export function openEvents(handle, onState) {
  let opened = false;
  const es = new EventSource('/v1/events');
  es.onmessage = (e) => {
    let ev;
    try {
      ev = JSON.parse(e.data);
    } catch {
      return;
    }
    handle(ev);
  };
  es.onopen = () => {
    onState(true);
    if (opened) handle({ type: 'resync' });
    opened = true;
  };
  es.onerror = () => {
    onState(false);
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream (logged out?): check the session.
      api.session().catch(() => {});
    }
  };
  return es;
}
