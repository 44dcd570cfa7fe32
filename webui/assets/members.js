// The details panel of a conversation: the group, its members (nick,
// fingerprint, role, verified) and what this member may do; and the
// dialogs of a member and of managing a group.
import { h, clear } from './dom.js';
import { api } from './api.js';
import { state, emit, prefs, setPref, isContactGroup } from './state.js';
import { icon } from './icons.js';
import * as fmt from './format.js';
import { modal, button, field, confirmDialog, fingerprintBlock, inviteDialog, copyButton } from './dialogs.js';

const ROLES = { read: 'Reader', write: 'Writer', manage: 'Manager' };

export class Details {
  constructor(conv) {
    this.conv = conv;
    const p = prefs();
    this.open = p.details === undefined ? window.innerWidth >= 1200 : !!p.details;
    this.root = h('aside', { class: 'details', hidden: !this.open, attrs: { 'aria-label': 'Members and details' } });
  }

  toggle(force) {
    this.open = force === undefined ? !this.open : force;
    if (window.innerWidth >= 900) setPref('details', this.open);
    this.root.hidden = !this.open;
    this.conv.renderHeader();
    if (this.open) this.render();
  }

  get group() {
    const e = state.inbox.get(this.conv.id);
    return e && e.group;
  }

  get canManage() {
    const g = this.group;
    return g && g.managed && g.role === 'manage' && !g.removed;
  }

  showMember(fp) {
    const m = this.conv.members.find((x) => x.fingerprint === fp) || { fingerprint: fp, nick: '' };
    memberDialog(this.conv, m);
  }

  render() {
    const g = this.group;
    if (!g || !this.open) return;
    const contact = isContactGroup(g.id);
    const list = h('ul', { class: 'member-list' });
    const members = [...this.conv.members].sort((a, b) => (b.self - a.self) || (a.nick || '').localeCompare(b.nick || ''));
    for (const m of members) {
      const verified = state.verified.has(m.fingerprint);
      list.append(h('li', {},
        h('button', {
          class: 'member', type: 'button',
          attrs: { 'aria-label': `${m.nick || 'member'}${m.self ? ' (you)' : ''}${m.role ? ', ' + ROLES[m.role] : ''}${verified ? ', verified' : ''}` },
          on: { click: () => memberDialog(this.conv, m) },
        },
        fmt.avatar(m.nick, m.fingerprint),
        h('span', { class: 'member-text' },
          h('span', { class: 'member-name' }, fmt.name(m.nick),
            m.self ? h('span', { class: 'you', text: 'you' }) : null,
            verified ? icon('verified', 'verified') : null),
          h('span', { class: 'fp', text: fmt.shortFP(m.fingerprint) })),
        m.role ? h('span', { class: ['chip', m.role === 'manage' && 'accent'], text: (m.bot ? 'bot · ' : '') + ROLES[m.role] } ) : null)));
    }
    const actions = h('div', { class: 'detail-actions' });
    if (!g.managed && !contact) actions.append(actionBtn('qr', 'Invite people', () => inviteDialog(g)));
    if (this.canManage) {
      actions.append(
        actionBtn('plus', 'Add a member', () => addMemberDialog(this.conv)),
        actionBtn('key', 'Rotate keys now', () => confirmDialog('Rotate keys', 'Draw new keys for the group now? Members move to a new mailbox; it takes a moment.', 'Rotate', async () => {
          await api.rotate(g.id);
          emit('toast', { text: 'Keys rotated.' });
        }, false)),
        actionBtn('settings', 'Policy', () => policyDialog(this.conv)),
        actionBtn('server', 'Hosts', () => hostsDialog(this.conv)));
    }
    actions.append(actionBtn('refresh', 'Catch up now', async () => {
      const r = await api.catchUp(g.id);
      emit('toast', { text: `Fetched ${r.fetched} envelope${r.fetched === 1 ? '' : 's'} from ${r.hosts} source${r.hosts === 1 ? '' : 's'}` + (r.gaps && r.gaps.length ? `; ${r.gaps.length} gap(s) remain` : '') });
    }));
    actions.append(actionBtn('leave', contact ? 'Leave this chat' : 'Leave group', () => confirmDialog('Leave ' + g.name,
      g.managed ? 'You will be removed from the group and stop receiving its messages.' : 'This node forgets the group and its history.',
      'Leave', async () => {
        await api.leave(g.id);
        emit('reload-inbox');
        emit('navigate', { hash: '#/chats' });
      }), 'danger'));
    const info = h('dl', { class: 'facts' },
      fact('Group ID', h('span', { class: 'mono', text: g.id.slice(0, 16) + '…', attrs: { title: g.id } })),
      fact('Epoch', String(g.epoch)),
      fact('History', g.history),
      g.policy ? fact('Policy', g.policy) : null,
      fact('Messages here', String(g.messages)));
    clear(this.root).append(
      h('div', { class: 'details-head' },
        h('h3', { text: contact ? 'Contact' : 'Members' + ` · ${members.length}` }),
        h('button', { class: 'icon-btn', type: 'button', attrs: { 'aria-label': 'Close details' }, on: { click: () => this.toggle(false) } }, icon('close'))),
      list, actions, h('h3', { class: 'sub-head', text: 'About' }), info);
  }
}

function actionBtn(ic, text, fn, cls) {
  return h('button', {
    class: ['action', cls], type: 'button',
    on: {
      click: async () => {
        try {
          await fn();
        } catch (e) {
          emit('toast', { text: e.message, error: true });
        }
      },
    },
  }, icon(ic), h('span', { text }));
}

function fact(k, v) {
  return [h('dt', { text: k }), h('dd', {}, v)];
}

// memberDialog: a member's fingerprint to compare, the verified mark, a
// private message, and the manager's actions.
export function memberDialog(conv, m) {
  const g = state.inbox.get(conv.id).group;
  const manage = g.managed && g.role === 'manage' && !g.removed && !m.self;
  const verified = state.verified.has(m.fingerprint);
  let d;
  const toggleVerified = async () => {
    const on = !state.verified.has(m.fingerprint);
    await api.setVerified(m.fingerprint, on);
    if (on) state.verified.add(m.fingerprint);
    else state.verified.delete(m.fingerprint);
    emit('verified');
    d.close();
    emit('toast', { text: on ? `${m.nick || 'This member'} is marked as verified.` : 'Verification removed.' });
  };
  const body = [
    h('div', { class: 'member-card' }, fmt.avatar(m.nick, m.fingerprint, 'large'),
      h('div', {}, h('h3', {}, fmt.name(m.nick || 'unknown')),
        h('p', { class: 'hint' }, m.self ? 'This is you.' : (m.role ? ROLES[m.role] + (m.bot ? ' (bot)' : '') : 'Member'),
          verified ? h('span', { class: 'chip ok' }, icon('verified'), 'verified') : null))),
    h('h4', { text: m.self ? 'Your fingerprint' : 'Their fingerprint' }),
    fingerprintBlock(m.fingerprint),
  ];
  if (!m.self) {
    body.push(h('p', { class: 'hint', text: `Compare it with ${m.nick || 'them'} in person or over a call. If it matches, mark it as verified: a mark then shows beside every message of theirs, in every group. Your own fingerprint:` }),
      h('p', { class: 'mono small', text: state.session.fingerprint }));
  }
  if (manage) {
    const role = h('select', {}, ...Object.entries(ROLES).map(([v, t]) => h('option', { value: v, text: t, selected: m.role === v })));
    body.push(h('h4', { text: 'Manage' }), h('div', { class: 'inline-form' }, role,
      button('Change role', async () => {
        await api.setRole(g.id, m.fingerprint, role.value);
        emit('toast', { text: 'Role changed.' });
        d.close();
        conv.loadMembers();
      }, { dlg: { setError: (t) => d.setError(t) } })));
  }
  d = modal({
    title: m.self ? 'You' : (m.nick || 'Member'),
    body,
    actions: (dd) => [
      manage ? button('Remove from group', async () => {
        dd.close();
        confirmDialog('Remove ' + (m.nick || 'member'), `Remove ${m.nick || 'this member'} from ${g.name}? The group's keys rotate, so they read nothing new.`, 'Remove', async () => {
          await api.removeMember(g.id, m.fingerprint);
          emit('toast', { text: (m.nick || 'The member') + ' was removed.' });
          conv.loadMembers();
        });
      }, { danger: true, dlg: dd }) : null,
      !m.self && g.can_write && !g.removed ? button('Message privately', async () => { dd.close(); conv.setDirect(m); }, { dlg: dd }) : null,
      !m.self ? button(verified ? 'Remove verification' : 'Mark as verified', toggleVerified, { primary: !verified, dlg: dd }) : null,
    ].filter(Boolean),
  });
}

function addMemberDialog(conv) {
  const g = state.inbox.get(conv.id).group;
  const byKP = h('input', { type: 'radio', name: 'how', checked: true });
  const byContact = h('input', { type: 'radio', name: 'how' });
  const kp = h('textarea', { rows: 4, class: 'mono', attrs: { placeholder: 'meshnode-keypackage-v1.…', spellcheck: 'false' } });
  const connected = state.contacts.filter((c) => c.state === 'connected');
  const contact = h('select', {}, ...connected.map((c) => h('option', { value: c.group, text: `${c.nick || c.via} (${fmt.shortFP(c.fingerprint)})` })));
  const role = h('select', {}, ...Object.entries(ROLES).map(([v, t]) => h('option', { value: v, text: t, selected: v === 'write' })));
  const kpField = field('Their key package', kp, 'They get it from Join → Get my key package (or `meshnode keypackage new`).');
  const contactField = field('Contact', contact, connected.length ? 'The welcome travels over your connection with them.' : 'You have no connected contacts yet.');
  contactField.hidden = true;
  const how = h('fieldset', { class: 'choice row' }, h('legend', { text: 'Add by' }),
    h('label', {}, byKP, h('span', { text: 'Key package' })),
    h('label', {}, byContact, h('span', { text: 'Contact' })));
  how.addEventListener('change', () => { kpField.hidden = !byKP.checked; contactField.hidden = byKP.checked; });
  modal({
    title: 'Add a member to ' + g.name,
    body: [how, kpField, contactField, field('Role', role)],
    actions: (d) => [
      h('button', { class: 'btn', type: 'button', text: 'Cancel', on: { click: () => d.close() } }),
      button('Add', async () => {
        if (byKP.checked) {
          if (!kp.value.trim()) throw new Error('Paste their key package.');
          await api.addMember(g.id, kp.value.trim(), role.value);
          emit('toast', { text: 'Added: they see the group once the welcome reaches them.' });
        } else {
          if (!contact.value) throw new Error('Choose a contact.');
          const r = await api.addContact(g.id, contact.value, role.value);
          emit('toast', { text: r.queued ? 'Queued until their node offers a key package.' : 'Added.' });
        }
        d.close();
        conv.loadMembers();
      }, { primary: true, dlg: d }),
    ],
  });
}

async function policyDialog(conv) {
  const g = state.inbox.get(conv.id).group;
  const p = await api.policy(g.id);
  const history = h('select', {}, h('option', { value: 'shared', text: 'shared', selected: p.history === 'shared' }),
    h('option', { value: 'from-join', text: 'from-join', selected: p.history === 'from-join' }));
  const every = h('input', { type: 'text', value: p.rotate_every || '', attrs: { placeholder: 'never' } });
  const after = h('input', { type: 'number', min: 0, value: p.rotate_after || '', attrs: { placeholder: 'never' } });
  modal({
    title: 'Policy of ' + g.name,
    body: [field('History for newcomers', history), field('Rotate keys every', every, 'A duration such as 24h; 0 for never.'),
      field('Rotate keys after this many messages', after, '0 for never.')],
    actions: (d) => [
      h('button', { class: 'btn', type: 'button', text: 'Cancel', on: { click: () => d.close() } }),
      button('Save', async () => {
        const req = {};
        if (history.value !== p.history) req.history = history.value;
        if (every.value.trim() !== (p.rotate_every || '')) req.rotate_every = every.value.trim() || '0';
        if (Number(after.value || 0) !== (p.rotate_after || 0)) req.rotate_after = Number(after.value || 0);
        if (Object.keys(req).length === 0) {
          d.close();
          return;
        }
        await api.setPolicy(g.id, req);
        d.close();
        emit('toast', { text: 'Policy changed.' });
        emit('reload-inbox');
      }, { primary: true, dlg: d }),
    ],
  });
}

async function hostsDialog(conv) {
  const g = state.inbox.get(conv.id).group;
  const cur = await api.hosts(g.id);
  const hosts = h('textarea', { rows: 5, class: 'mono', value: (cur.hosts || []).join('\n'), attrs: { spellcheck: 'false' } });
  modal({
    title: 'Hosts of ' + g.name,
    body: [field('Hosts', hosts, 'Multiaddrs ending in /p2p/ID, one per line; empty for none (the members host each other).')],
    actions: (d) => [
      copyButton(() => hosts.value, 'Copy'),
      button('Save', async () => {
        await api.setHosts(g.id, hosts.value.split(/\s+/).filter(Boolean));
        d.close();
        emit('toast', { text: 'Hosts changed.' });
        emit('reload-inbox');
      }, { primary: true, dlg: d }),
    ],
  });
}
