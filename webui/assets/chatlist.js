// The chat list: every group and contact chat, newest activity first,
// with its unread count and latest message.
import { h, reconcile } from './dom.js';
import { state, emit, on, groupTitle, isContactGroup, lastActivity } from './state.js';
import { icon } from './icons.js';
import * as fmt from './format.js';
import { createDialog, joinDialog } from './dialogs.js';
import { perf } from './perf.js';

export class ChatList {
  constructor() {
    this.filter = '';
    this.cache = new Map();
    this.search = h('input', {
      type: 'search', class: 'search',
      attrs: { placeholder: 'Search chats', 'aria-label': 'Search chats', 'aria-keyshortcuts': 'Control+K' },
      on: { input: () => { this.filter = this.search.value.trim().toLowerCase(); this.render(); } },
    });
    this.list = h('ul', { class: 'chat-list', attrs: { 'aria-label': 'Chats' } });
    this.empty = h('div', { class: 'empty', hidden: true },
      h('p', { text: 'No chats yet.' }),
      h('p', { class: 'hint', text: 'Create a group, join one with an invite, or connect with a contact.' }));
    this.root = h('div', { class: 'sidebar-body' },
      h('div', { class: 'sidebar-head' },
        h('h1', { text: 'Chats' }),
        h('div', { class: 'head-actions' },
          h('button', { class: 'icon-btn', type: 'button', attrs: { 'aria-label': 'Join a group', title: 'Join a group' }, on: { click: joinDialog } }, icon('join')),
          h('button', { class: 'icon-btn accent', type: 'button', attrs: { 'aria-label': 'New group', title: 'New group' }, on: { click: createDialog } }, icon('plus')))),
      h('div', { class: 'search-wrap' }, icon('search'), this.search),
      this.empty, this.list);
    on('inbox', () => this.render());
    on('verified', () => this.render());
    on('select', () => this.render());
  }

  entries() {
    const all = [...state.inbox.values()].sort((a, b) => lastActivity(b) - lastActivity(a) || groupTitle(a.group).localeCompare(groupTitle(b.group)));
    return all.filter((e) => !this.filter || groupTitle(e.group).toLowerCase().includes(this.filter));
  }

  render() {
    const entries = this.entries();
    this.empty.hidden = state.inbox.size > 0;
    this.cache = reconcile(this.list, entries.map((e) => {
      const m = e.read.last;
      const key = [e.group.id, groupTitle(e.group), e.read.unread, m ? m.id : '', state.current === e.group.id, e.group.removed].join('|');
      return { key, build: () => this.item(e) };
    }), this.cache);
  }

  item(e) {
    const g = e.group;
    const title = groupTitle(g);
    const m = e.read.last;
    const unread = e.read.unread;
    const contact = isContactGroup(g.id);
    const selected = state.current === g.id;
    const count = unread >= 1000 || e.read.unread_more ? '999+' : String(unread);
    const label = `${title}${contact ? ', contact' : ''}${unread ? `, ${count} unread` : ''}${m ? ', last message ' + fmt.preview(m) : ''}`;
    return h('li', {},
      h('a', {
        class: ['chat', selected && 'selected', unread && 'has-unread'],
        attrs: { href: '#/chat/' + g.id, 'aria-current': selected ? 'page' : null, 'aria-label': label },
        dataset: { group: g.id },
        on: { click: () => perf.clicked(g.id) },
      },
      fmt.avatar(title, g.id, contact ? 'person' : 'group'),
      h('span', { class: 'chat-text' },
        h('span', { class: 'chat-top' },
          h('span', { class: 'chat-name' }, fmt.name(title, 'title'), g.managed ? icon('shield') : null),
          m ? h('time', { text: fmt.shortWhen(new Date(m.received || m.sent)), attrs: { datetime: m.received || m.sent } }) : null),
        h('span', { class: 'chat-bottom' },
          h('span', { class: 'chat-preview', text: m ? fmt.preview(m) : emptyPreview(g), attrs: { dir: 'auto' } }),
          unread ? h('span', { class: 'unread', text: count, attrs: { 'aria-hidden': 'true' } }) : null))));
  }

  focusSearch() {
    this.search.focus();
    this.search.select();
  }

  // step moves the selection up or down the list (Alt+↑/↓).
  step(dir) {
    const ids = this.entries().map((e) => e.group.id);
    if (!ids.length) return;
    let i = ids.indexOf(state.current);
    i = i < 0 ? 0 : Math.max(0, Math.min(ids.length - 1, i + dir));
    emit('navigate', { hash: '#/chat/' + ids[i] });
  }
}

function emptyPreview(g) {
  const c = state.contactOf.get(g.id);
  if (c && c.state === 'pending') return 'Waiting for them to accept your request';
  if (c && c.state === 'connected') return 'Connected: say hello';
  return g.removed ? 'You were removed' : 'No messages yet';
}

export function welcome() {
  return h('div', { class: 'welcome' },
    h('div', { class: 'welcome-art' }, icon('chat')),
    h('h2', { text: 'Your conversations, end to end encrypted' }),
    h('p', { text: 'Pick a chat on the left, or start one. Hosts keep only sealed envelopes: they never see who you are or what you write.' }),
    h('div', { class: 'welcome-actions' },
      h('button', { class: 'btn primary', type: 'button', on: { click: createDialog } }, icon('plus'), h('span', { text: 'New group' })),
      h('button', { class: 'btn', type: 'button', on: { click: joinDialog } }, icon('join'), h('span', { text: 'Join with an invite' }))));
}
