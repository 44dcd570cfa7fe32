// meshnode's web app: logs in, builds the shell (navigation, chat list,
// the open view), follows the node's event stream and routes by the URL
// fragment (#/chat/ID, #/contacts, #/node).
import { h, clear, announce } from './dom.js';
import { api, setCSRF, openEvents, whenLoggedOut } from './api.js';
import { state, emit, on, groupTitle, prefs, setContacts } from './state.js';
import { icon } from './icons.js';
import { ChatList, welcome } from './chatlist.js';
import { Conversation } from './conversation.js';
import { ContactsView } from './contacts.js';
import { NodeView } from './nodeview.js';
import { applyTheme, settingsDialog } from './dialogs.js';

// How often the lists are re-read besides the live events (groups can
// be added or left by the CLI, hosts come and go).
const REFRESH_MS = 30000;
const NETWORK_MS = 10000;

let chats;
let main;
let conv = null;
let page = null;

async function boot() {
  applyTheme();
  if (location.pathname === '/login') {
    const secret = location.hash.slice(1);
    // Out of the address bar and the history at once.
    history.replaceState(null, '', '/');
    if (secret) {
      try {
        await api.login(secret);
      } catch (e) {
        return loggedOut(e.status === 401 ? 'This login link was already used or has expired.' : e.message);
      }
    }
  }
  let session;
  try {
    session = await api.session();
  } catch (e) {
    return loggedOut(e.status === 401 ? '' : e.message);
  }
  setCSRF(session.csrf);
  state.session = session;
  whenLoggedOut(() => loggedOut('Your session ended (the node restarted, or you logged out).'));
  shell();
  await Promise.all([loadContacts(), loadVerified()]);
  await loadInbox();
  openEvents(onEvent, (up) => {
    state.online = up;
    document.body.classList.toggle('offline', !up);
  });
  window.addEventListener('hashchange', route);
  route();
  loadNetwork();
  setInterval(() => { if (document.visibilityState === 'visible') loadInbox(); }, REFRESH_MS);
  setInterval(() => { if (document.visibilityState === 'visible') loadNetwork(); }, NETWORK_MS);
  window.addEventListener('focus', () => loadInbox());
  document.body.dataset.ready = 'true';
}

function loggedOut(reason) {
  document.body.dataset.ready = 'login';
  clear(document.body).append(h('main', { class: 'login' },
    h('div', { class: 'login-card' },
      h('img', { src: '/app/icon.svg', attrs: { alt: '', width: '56', height: '56' } }),
      h('h1', { text: 'meshnode' }),
      reason ? h('p', { class: 'form-error', text: reason, attrs: { role: 'alert' } }) : null,
      h('p', { text: 'To open your conversations, run this on the machine where your node runs:' }),
      h('pre', {}, h('code', { text: 'meshnode ui --open' })),
      h('p', { class: 'hint', text: 'It prints a one-time login link. The link works once, for a few minutes.' }))));
}

function shell() {
  chats = new ChatList();
  main = h('main', { class: 'main', attrs: { id: 'main' } });
  const nav = h('nav', { class: 'rail', attrs: { 'aria-label': 'Sections' } },
    h('img', { class: 'logo', src: '/app/icon.svg', attrs: { alt: 'meshnode', width: '32', height: '32' } }),
    navLink('chats', '#/chats', 'chat', 'Chats'),
    navLink('contacts', '#/contacts', 'contacts', 'Contacts'),
    navLink('node', '#/node', 'node', 'Node'),
    h('span', { class: 'rail-space' }),
    h('button', { class: 'rail-btn', type: 'button', attrs: { 'aria-label': 'Settings', title: 'Settings' }, on: { click: settingsDialog } }, icon('settings'), h('span', { class: 'rail-label', text: 'Settings' })),
    h('span', { class: 'conn', attrs: { title: 'Live connection to the node' } }));
  const sidebar = h('aside', { class: 'sidebar', attrs: { 'aria-label': 'Chats' } }, chats.root);
  clear(document.body).append(
    h('a', { class: 'skip', text: 'Skip to the conversation', attrs: { href: '#main' } }),
    h('div', { class: 'app' }, nav, sidebar, main),
    h('div', { class: 'toasts', attrs: { 'aria-live': 'polite' } }),
    h('div', { class: 'sr-only', attrs: { id: 'live', 'aria-live': 'polite', 'aria-atomic': 'true' } }));
  on('navigate', ({ hash, reload }) => {
    if (location.hash === hash && reload) route();
    else location.hash = hash;
  });
  on('reload-inbox', async (d) => {
    await loadContacts();
    await loadInbox();
    if (d && d.open) location.hash = '#/chat/' + d.open;
  });
  on('toast', toast);
  on('inbox', updateTitle);
  on('contacts', () => chats.render());
  document.addEventListener('keydown', keys);
}

function navLink(view, href, ic, label) {
  return h('a', { class: 'rail-btn', dataset: { view }, attrs: { href, title: label, 'aria-label': label } }, icon(ic), h('span', { class: 'rail-label', text: label }));
}

function keys(e) {
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') {
    e.preventDefault();
    location.hash = '#/chats';
    chats.focusSearch();
  } else if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
    e.preventDefault();
    chats.step(e.key === 'ArrowUp' ? -1 : 1);
  } else if (e.key === 'Escape' && conv && conv.details.open && !document.querySelector('dialog[open]') && window.innerWidth < 1200) {
    conv.details.toggle(false);
  }
}

async function loadInbox() {
  try {
    const list = await api.inbox();
    const before = state.inbox;
    state.inbox = new Map(list.map((e) => [e.group.id, e]));
    emit('inbox');
    if (state.current && !state.inbox.has(state.current) && before.has(state.current)) {
      location.hash = '#/chats';
    }
  } catch (e) {
    toast({ text: 'Loading chats failed: ' + e.message, error: true });
  }
}

async function loadContacts() {
  try {
    setContacts(await api.contacts());
  } catch {
    // Kept as they were.
  }
}

async function loadVerified() {
  try {
    state.verified = new Set(((await api.verified()) || []).map((v) => v.fingerprint));
    emit('verified');
  } catch {
    // Shown without marks.
  }
}

async function loadNetwork() {
  try {
    state.network = await api.network();
    emit('network');
  } catch {
    // Tried again shortly.
  }
}

function route() {
  const hash = location.hash || '#/chats';
  const [, view, arg] = hash.split('/');
  const app = document.querySelector('.app');
  state.view = view === 'contacts' || view === 'node' ? view : 'chats';
  for (const a of document.querySelectorAll('.rail-btn[data-view]')) {
    a.classList.toggle('active', a.dataset.view === state.view);
    if (a.dataset.view === state.view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const group = view === 'chat' && arg ? decodeURIComponent(arg) : null;
  if (group !== state.current || (!group && conv)) closeConversation();
  page = null;
  app.classList.toggle('show-main', !!group || state.view !== 'chats');
  app.dataset.view = state.view;
  if (state.view === 'contacts') {
    const v = new ContactsView();
    page = v;
    clear(main).append(v.root);
    v.render();
    v.load().catch((e) => toast({ text: e.message, error: true }));
    v.watch();
  } else if (state.view === 'node') {
    const v = new NodeView();
    page = v;
    clear(main).append(v.root);
    v.load().catch((e) => toast({ text: e.message, error: true }));
  } else if (group) {
    if (!conv) openConversation(group);
  } else {
    clear(main).append(welcome());
  }
  emit('select');
}

function closeConversation() {
  if (conv) conv.destroy();
  conv = null;
  state.current = null;
}

async function openConversation(group) {
  if (!state.inbox.has(group)) {
    await loadInbox();
    if (!state.inbox.has(group)) {
      toast({ text: 'No such chat on this node.', error: true });
      location.hash = '#/chats';
      return;
    }
  }
  state.current = group;
  conv = new Conversation(group);
  clear(main).append(conv.root);
  emit('select');
  updateTitle();
  try {
    await conv.open();
  } catch (e) {
    toast({ text: 'Opening the chat failed: ' + e.message, error: true });
  }
  if (conv && conv.id === group && window.innerWidth >= 700) conv.input.focus();
}

function onEvent(ev) {
  switch (ev.type) {
    case 'message': {
      const m = ev.message;
      const e = state.inbox.get(ev.group);
      if (!e) {
        loadInbox(); // a new group
        return;
      }
      const open = conv && conv.id === ev.group;
      if (open) conv.onMessage(m);
      if (!e.read.last || m.cursor >= e.read.last.cursor) e.read.last = m;
      // An edit, a delete or a reaction sends a message again (updated):
      // nothing new to count or notify.
      const shown = !m.updated && (m.kind === 'text' || m.kind === 'reply' || m.kind === 'file' || m.kind === 'direct' || m.kind === 'split');
      if (!m.own && shown && !(open && conv.timeline.atBottom() && document.visibilityState === 'visible')) {
        e.read.unread++;
      }
      emit('inbox');
      if (!m.own && shown) notify(e, m);
      break;
    }
    case 'read': {
      const e = state.inbox.get(ev.group);
      if (e && ev.read.cursor >= (e.read.cursor || '')) {
        e.read = ev.read;
        emit('inbox');
      }
      break;
    }
    case 'catchup':
      state.catchups.set(ev.group, ev.catchup);
      emit('catchup', ev.catchup);
      if (!ev.catchup.running && conv && conv.id === ev.group) conv.timeline.refresh();
      break;
    case 'groups':
      loadContacts().then(loadInbox);
      break;
    case 'resync':
      loadInbox();
      if (conv) conv.timeline.refresh();
      break;
    default:
  }
}

// notify shows a desktop notification for a message that arrives while
// the tab is hidden, if the person turned them on.
function notify(entry, m) {
  if (document.visibilityState === 'visible' || !prefs().notify) return;
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const title = groupTitle(entry.group);
  const n = new Notification(m.kind === 'direct' ? `${m.nick} (private, in ${title})` : title, {
    body: (m.kind === 'direct' ? '' : m.nick + ': ') + (m.text || '').slice(0, 180),
    tag: entry.group.id,
    silent: false,
  });
  n.onclick = () => {
    window.focus();
    location.hash = '#/chat/' + entry.group.id;
    n.close();
  };
}

function updateTitle() {
  let unread = 0;
  for (const e of state.inbox.values()) unread += e.read.unread;
  const cur = state.current && state.inbox.get(state.current);
  document.title = (unread ? `(${unread > 999 ? '999+' : unread}) ` : '') + (cur ? groupTitle(cur.group) + ' · ' : '') + 'meshnode';
}

function toast({ text, error }) {
  const box = document.querySelector('.toasts');
  if (!box) return;
  const t = h('div', { class: ['toast', error && 'error'], attrs: { role: error ? 'alert' : 'status' } }, icon(error ? 'warning' : 'check'), h('span', { text }));
  box.append(t);
  setTimeout(() => t.classList.add('leaving'), 4500);
  setTimeout(() => t.remove(), 5000);
  if (!error) announce(text);
}

boot().catch((e) => loggedOut('The app failed to start: ' + e.message));
