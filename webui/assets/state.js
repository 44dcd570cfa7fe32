// The page's state and its event bus. Modules read state directly and
// announce changes with emit(); views re-render on the events they
// care about.

export const state = {
  session: null,
  // Group ID → InboxEntry {group, read}.
  inbox: new Map(),
  // Connection group ID → contact (the chat of a contact).
  contactOf: new Map(),
  contacts: [],
  verified: new Set(),
  // Group ID → CatchUpProgress.
  catchups: new Map(),
  network: null,
  current: null,
  view: 'chats',
  online: false,
};

const bus = new EventTarget();

export function emit(name, detail) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, fn) {
  const l = (e) => fn(e.detail);
  bus.addEventListener(name, l);
  return () => bus.removeEventListener(name, l);
}

// setContacts records the contacts and the chat of each.
export function setContacts(list) {
  state.contacts = list || [];
  state.contactOf = new Map(state.contacts.filter((c) => c.group).map((c) => [c.group, c]));
  emit('contacts');
}

// groupTitle is what a chat is called: a contact's nick for a
// connection group, else the group's name.
export function groupTitle(g) {
  const c = state.contactOf.get(g.id);
  if (c) return c.nick || c.via || g.name;
  return g.name;
}

export function isContactGroup(id) {
  return state.contactOf.has(id);
}

// lastActivity orders the chat list: the latest message, or nothing.
export function lastActivity(entry) {
  const m = entry.read && entry.read.last;
  return m ? new Date(m.received || m.sent).getTime() : 0;
}

export function prefs() {
  try {
    return JSON.parse(localStorage.getItem('meshnode.prefs') || '{}');
  } catch {
    return {};
  }
}

export function setPref(k, v) {
  const p = prefs();
  p[k] = v;
  localStorage.setItem('meshnode.prefs', JSON.stringify(p));
}
