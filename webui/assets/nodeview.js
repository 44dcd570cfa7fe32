// The node: who it is, its peers, whether each group's hosts are
// reachable, catch-ups in progress, and what it stores when it hosts.
import { h, clear } from './dom.js';
import { api } from './api.js';
import { state, emit, groupTitle } from './state.js';
import { icon } from './icons.js';
import * as fmt from './format.js';
import { card } from './contacts.js';
import { copyButton, button } from './dialogs.js';

export class NodeView {
  constructor() {
    this.root = h('section', { class: 'page', attrs: { 'aria-label': 'Node' } });
    this.status = null;
  }

  async load() {
    const [status, network] = await Promise.all([api.status(), api.network()]);
    this.status = status;
    state.network = network;
    emit('network');
    this.render();
  }

  render() {
    const s = this.status;
    const n = state.network;
    if (!s || !n) return;
    const root = clear(this.root);
    root.append(h('header', { class: 'page-head' },
      h('button', { class: 'icon-btn back', type: 'button', attrs: { 'aria-label': 'Back to chats' }, on: { click: () => emit('navigate', { hash: '#/chats' }) } }, icon('back')),
      h('h1', { text: 'Node' }),
      h('button', { class: 'icon-btn', type: 'button', attrs: { 'aria-label': 'Refresh' }, on: { click: () => this.load() } }, icon('refresh'))));
    const body = h('div', { class: 'page-body' });
    root.append(body);

    const sess = state.session;
    body.append(card('This node', '',
      h('div', { class: 'stats' },
        stat('Connected peers', String(s.connected_peers)),
        stat('Role', s.role),
        stat('Up', uptime(s.uptime_seconds)),
        stat('Version', s.version)),
      h('dl', { class: 'facts' },
        fact('Fingerprint', h('span', { class: 'mono', text: sess.fingerprint })),
        fact('Peer ID', h('span', { class: 'mono', text: s.peer_id })),
        fact('Host policy', s.host_policy)),
      h('details', {}, h('summary', { text: `Addresses (${s.addrs.length})` }),
        h('ul', { class: 'mono-list' }, ...s.addrs.map((a) => h('li', { text: a }))),
        copyButton(() => s.addrs.join('\n'), 'Copy addresses'))));

    const groups = h('ul', { class: 'rows' });
    for (const g of n.groups) {
      const entry = state.inbox.get(g.group);
      const title = entry ? groupTitle(entry.group) : g.name;
      const p = state.catchups.get(g.group) || g.catchup;
      const hosts = g.hosts.length === 0
        ? h('div', { class: 'muted', text: 'No host: members keep the history for each other' })
        : h('ul', { class: 'hosts' }, ...g.hosts.map((x) => h('li', { class: x.connected ? 'up' : 'down' },
          h('span', { class: 'dot', attrs: { 'aria-hidden': 'true' } }),
          h('span', { text: x.self ? 'this node' : x.connected ? 'reachable' : 'unreachable' }),
          h('span', { class: 'mono muted', text: ' …' + x.peer.slice(-12), attrs: { title: x.addr } }),
          x.latency_ms ? h('span', { class: 'muted', text: ` ${x.latency_ms.toFixed(1)} ms` }) : null)));
      groups.append(h('li', { class: 'row top' },
        fmt.avatar(title, g.group, 'group'),
        h('div', { class: 'row-text' },
          h('div', {}, fmt.name(title, 'title')),
          hosts,
          catchUpLine(p)),
        h('div', { class: 'row-actions' }, button('Catch up', async () => {
          const r = await api.catchUp(g.group);
          emit('toast', { text: `${title}: fetched ${r.fetched} envelope${r.fetched === 1 ? '' : 's'}` });
          await this.load();
        }))));
    }
    body.append(card('Groups and their hosts', n.groups.length ? '' : 'No groups.', groups));

    const peers = h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', { text: 'Peer' }), h('th', { text: 'Address' }), h('th', { text: 'Round trip' }))),
      h('tbody', {}, ...n.peers.map((p) => h('tr', {},
        h('td', { class: 'mono', text: '…' + p.id.slice(-16), attrs: { title: p.id } }),
        h('td', { class: 'mono', text: p.addrs[0] || '' }),
        h('td', { text: p.latency_ms ? p.latency_ms.toFixed(1) + ' ms' : '—' })))));
    body.append(card(`Connected peers · ${n.peers.length}`, '', n.peers.length ? h('div', { class: 'table-wrap' }, peers) : h('p', { class: 'muted', text: 'Not connected to anyone.' })));

    if (s.hosted_mailboxes > 0 || s.role !== 'member') {
      body.append(card('Hosting', 'What this node stores for the groups it hosts: sealed envelopes only.',
        h('div', { class: 'stats' },
          stat('Mailboxes', String(s.hosted_mailboxes)),
          stat('Envelopes', s.store.envelopes.toLocaleString()),
          stat('Stored', fmt.bytes(s.store.bytes)))));
    }
  }
}

function catchUpLine(p) {
  if (!p) return null;
  if (p.running) {
    return h('div', { class: 'catchup-line' }, h('progress', { max: Math.max(1, p.steps), value: p.done, attrs: { 'aria-label': 'Catch-up progress' } }),
      h('span', { class: 'muted', text: `catching up: ${p.done}/${p.steps}, ${p.fetched} envelopes` }));
  }
  return h('div', { class: 'muted', text: `Last catch-up ${fmt.ago(new Date(p.finished))}: ${p.fetched} envelope${p.fetched === 1 ? '' : 's'}` + (p.failed ? `, ${p.failed} source${p.failed === 1 ? '' : 's'} failed` : '') });
}

function stat(label, value) {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-value', text: value }), h('span', { class: 'stat-label', text: label }));
}

function fact(k, v) {
  return [h('dt', { text: k }), h('dd', {}, v)];
}

function uptime(s) {
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 86400) return Math.floor(s / 3600) + ' h';
  return Math.floor(s / 86400) + ' d';
}
