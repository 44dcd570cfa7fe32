// Dialogs: the generic modal (a <dialog>, which traps focus and closes on
// Escape), and creating, joining, inviting, the key package and the
// settings.
import { h } from './dom.js';
import { api } from './api.js';
import { state, emit, prefs, setPref } from './state.js';
import { icon } from './icons.js';

// modal shows a dialog; body is an element or a list of them; actions
// are buttons at the bottom. It returns {el, close}.
// actions is a function of the dialog ({close, setError}) returning the
// buttons.
export function modal({ title, body, actions, wide = false, onClose }) {
  const heading = h('h2', { text: title, attrs: { id: 'dlg-' + Math.random().toString(36).slice(2) } });
  const err = h('p', { class: 'form-error', hidden: true, attrs: { role: 'alert' } });
  const dlg = h('dialog', { class: ['modal', wide && 'wide'], attrs: { 'aria-labelledby': heading.id } },
    h('div', { class: 'modal-head' }, heading,
      h('button', { class: 'icon-btn', type: 'button', attrs: { 'aria-label': 'Close' }, on: { click: () => close() } }, icon('close'))),
    h('div', { class: 'modal-body' }, body, err));
  const close = () => {
    if (dlg.open) dlg.close();
  };
  dlg.addEventListener('close', () => {
    dlg.remove();
    if (onClose) onClose();
  });
  dlg.addEventListener('click', (e) => {
    if (e.target === dlg) close(); // the backdrop
  });
  const setError = (text) => {
    err.hidden = !text;
    err.textContent = text || '';
  };
  const d = { el: dlg, close, setError };
  if (actions) dlg.append(h('div', { class: 'modal-actions' }, ...actions(d)));
  document.body.append(dlg);
  dlg.showModal();
  return d;
}

// button runs an async action, disabled while it runs; errors go to the
// dialog's error line (or a toast).
export function button(text, action, { primary = false, danger = false, dlg = null } = {}) {
  const b = h('button', { class: ['btn', primary && 'primary', danger && 'danger'], type: 'button', text });
  b.addEventListener('click', async () => {
    b.disabled = true;
    if (dlg) dlg.setError('');
    try {
      await action();
    } catch (e) {
      if (dlg) dlg.setError(e.message);
      else emit('toast', { text: e.message, error: true });
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

export function field(label, input, hint) {
  const id = 'f-' + Math.random().toString(36).slice(2);
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { text: label, attrs: { for: id } }),
    input,
    hint ? h('p', { class: 'hint', text: hint }) : null);
}

export function copyButton(getText, label = 'Copy') {
  return h('button', {
    class: 'btn', type: 'button',
    on: {
      click: async (e) => {
        const b = e.currentTarget;
        try {
          await navigator.clipboard.writeText(getText());
          b.lastChild.textContent = 'Copied';
        } catch {
          b.lastChild.textContent = 'Select and copy';
        }
        setTimeout(() => { b.lastChild.textContent = label; }, 1500);
      },
    },
  }, icon('copy'), h('span', { text: label }));
}

export function confirmDialog(title, text, yes, action, danger = true) {
  const d = modal({ title, body: h('p', { text }) });
  d.el.querySelector('.modal-body').after(h('div', { class: 'modal-actions' },
    h('button', { class: 'btn', type: 'button', text: 'Cancel', on: { click: () => d.close() } }),
    button(yes, async () => { await action(); d.close(); }, { primary: !danger, danger, dlg: d })));
  return d;
}

const lines = (s) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

export function createDialog() {
  const name = h('input', { type: 'text', required: true, attrs: { maxlength: '64', autocomplete: 'off' } });
  const open = h('input', { type: 'radio', name: 'kind', value: 'open', checked: true });
  const managed = h('input', { type: 'radio', name: 'kind', value: 'managed' });
  const hosts = h('textarea', { rows: 3, attrs: { placeholder: '/ip4/203.0.113.7/tcp/4001/p2p/12D3Koo…', spellcheck: 'false' } });
  const history = h('select', {}, h('option', { value: 'shared', text: 'Newcomers read the history (shared)' }),
    h('option', { value: 'from-join', text: 'Newcomers read from when they join (from-join)' }));
  const every = h('input', { type: 'text', attrs: { placeholder: 'e.g. 168h (blank: never)', autocomplete: 'off' } });
  const after = h('input', { type: 'number', min: 0, attrs: { placeholder: 'e.g. 1000 (blank: never)' } });
  const managedFields = h('fieldset', { class: 'sub', hidden: true },
    h('legend', { text: 'Managed group policy' }),
    field('History for newcomers', history),
    field('Rotate keys every', every, 'A Go duration such as 24h or 168h.'),
    field('Rotate keys after this many messages', after));
  const kind = h('fieldset', { class: 'choice' }, h('legend', { text: 'Kind' }),
    h('label', {}, open, h('span', {}, h('b', { text: 'Open' }), h('small', { text: 'Anyone with the invite can join and write.' }))),
    h('label', {}, managed, h('span', {}, h('b', { text: 'Managed' }), h('small', { text: 'Managers add and remove members; keys rotate on removal.' }))));
  kind.addEventListener('change', () => { managedFields.hidden = !managed.checked; });
  let d;
  const create = async () => {
    if (!name.value.trim()) throw new Error('Give the group a name.');
    let res;
    if (managed.checked) {
      const req = { name: name.value.trim(), hosts: lines(hosts.value), history: history.value };
      if (every.value.trim()) req.rotate_every = every.value.trim();
      if (after.value) req.rotate_after = Number(after.value);
      res = await api.createManaged(req);
    } else {
      res = await api.createGroup(name.value.trim(), lines(hosts.value));
    }
    d.close();
    emit('reload-inbox', { open: res.group.id });
    if (res.invite) inviteDialog(res.group, res.invite);
  };
  d = modal({
    title: 'New group',
    body: h('form', { class: 'form', on: { submit: (e) => { e.preventDefault(); create().catch((er) => d.setError(er.message)); } } },
      field('Name', name), kind,
      field('Hosts', hosts, 'Multiaddrs ending in /p2p/ID of nodes that keep the history, one per line. Leave empty to have the members\' nodes host each other.'),
      managedFields),
  });
  d.el.querySelector('.modal-body').after(h('div', { class: 'modal-actions' },
    h('button', { class: 'btn', type: 'button', text: 'Cancel', on: { click: () => d.close() } }),
    button('Create group', create, { primary: true, dlg: d })));
  name.focus();
}

export function joinDialog() {
  const invite = h('textarea', { rows: 4, attrs: { placeholder: 'meshnode-invite-v1.…', spellcheck: 'false' } });
  const nick = h('input', { type: 'text', attrs: { placeholder: state.session.nick || 'your profile nickname', maxlength: '64' } });
  let d;
  const join = async () => {
    if (!invite.value.trim()) throw new Error('Paste an invite first.');
    const g = await api.join(invite.value.trim(), nick.value.trim());
    d.close();
    emit('reload-inbox', { open: g.id });
    emit('toast', { text: 'Joined ' + g.name + ': fetching its history…' });
  };
  const kp = h('div', { class: 'aside-note' },
    h('p', { text: 'Managed groups have no invite: a manager adds you with your key package.' }),
    button('Get my key package', () => { d.close(); keyPackageDialog(); }));
  d = modal({ title: 'Join a group', body: [field('Invite', invite, 'The invite someone shared with you, as text.'), field('Nickname in this group', nick), kp] });
  d.el.querySelector('.modal-body').after(h('div', { class: 'modal-actions' },
    h('button', { class: 'btn', type: 'button', text: 'Cancel', on: { click: () => d.close() } }),
    button('Join', join, { primary: true, dlg: d })));
  invite.focus();
}

export async function inviteDialog(g, known) {
  let invite = known;
  const text = h('textarea', { class: 'mono', rows: 5, readOnly: true, attrs: { 'aria-label': 'Invite text', spellcheck: 'false' } });
  const img = h('img', { class: 'qr', attrs: { alt: 'QR code of the invite to ' + g.name, width: '256', height: '256' } });
  const d = modal({
    title: 'Invite people to ' + g.name,
    body: [
      h('p', { class: 'warn-text' }, icon('warning'), 'Whoever holds this invite can read and write in the group. Share it only with the people you invite, over a channel you trust.'),
      h('div', { class: 'invite' }, img, h('div', { class: 'invite-text' }, text)),
    ],
    wide: true,
  });
  d.el.querySelector('.modal-body').after(h('div', { class: 'modal-actions' },
    copyButton(() => text.value, 'Copy invite'),
    h('button', { class: 'btn primary', type: 'button', text: 'Done', on: { click: () => d.close() } })));
  try {
    if (!invite) invite = (await api.invite(g.id)).invite;
    text.value = invite;
    img.addEventListener('error', () => { img.replaceWith(h('p', { class: 'hint', text: 'This invite is too long for a QR code: share it as text.' })); });
    img.src = api.inviteQR(g.id);
  } catch (e) {
    d.setError(e.message);
  }
}

export async function keyPackageDialog() {
  const text = h('textarea', { class: 'mono', rows: 5, readOnly: true, attrs: { 'aria-label': 'Key package', spellcheck: 'false' } });
  const hosts = h('textarea', { rows: 2, attrs: { placeholder: '/ip4/203.0.113.7/tcp/4001/p2p/12D3Koo…', spellcheck: 'false' } });
  let d;
  const make = async () => {
    const kp = await api.newKeyPackage({ hosts: lines(hosts.value) });
    text.value = kp.key_package;
    text.hidden = false;
  };
  text.hidden = true;
  d = modal({
    title: 'My key package',
    body: [
      h('p', { text: 'Give a key package to a manager of a managed group: they add you with it, and the group appears here when their welcome reaches you. Each key package works once.' }),
      field('The group\'s hosts', hosts, 'Ask the manager for them: your node fetches the welcome from these hosts (and from its bootstrap peers).'), text,
    ],
    wide: true,
  });
  d.el.querySelector('.modal-body').after(h('div', { class: 'modal-actions' },
    copyButton(() => text.value, 'Copy'),
    button('Create key package', make, { primary: true, dlg: d })));
}

// applyTheme sets the colour theme: system (follow the OS), light or dark.
export function applyTheme() {
  const t = prefs().theme || 'system';
  document.documentElement.dataset.theme = t;
}

export function settingsDialog() {
  const p = prefs();
  const theme = h('select', {},
    ...['system', 'light', 'dark'].map((v) => h('option', { value: v, text: v[0].toUpperCase() + v.slice(1), selected: (p.theme || 'system') === v })));
  theme.addEventListener('change', () => { setPref('theme', theme.value); applyTheme(); });
  const notes = h('input', { type: 'checkbox', checked: !!p.notify });
  const noteHint = h('p', { class: 'hint' });
  const supported = 'Notification' in window && window.isSecureContext;
  const describe = () => {
    noteHint.textContent = !supported ? 'This browser cannot show notifications for this address (they need localhost or HTTPS).'
      : Notification.permission === 'denied' ? 'Notifications are blocked for this page in the browser\'s settings.'
        : 'Shown for new messages while this tab is hidden. They contain the sender and the start of the text.';
  };
  describe();
  notes.disabled = !supported;
  notes.addEventListener('change', async () => {
    if (notes.checked && Notification.permission !== 'granted') {
      const perm = await Notification.requestPermission();
      if (perm !== 'granted') notes.checked = false;
    }
    setPref('notify', notes.checked);
    describe();
  });
  const s = state.session;
  const d = modal({
    title: 'Settings',
    body: [
      field('Theme', theme),
      h('div', { class: 'field check' }, h('label', {}, notes, h('span', { text: 'Desktop notifications' })), noteHint),
      h('div', { class: 'field' }, h('span', { class: 'label', text: 'Your fingerprint' }),
        h('p', { class: 'mono fingerprint', text: s.fingerprint }),
        h('p', { class: 'hint', text: 'Compare it with the people you talk to, out of band, and mark theirs as verified.' })),
      !s.loopback ? h('p', { class: 'warn-text' }, icon('warning'), 'This app is served beyond this machine over plain HTTP: what you read and write crosses the network unencrypted.') : null,
      h('p', { class: 'hint', text: `Session ends ${new Date(s.expires).toLocaleString()} or when the node restarts.` }),
    ],
  });
  d.el.querySelector('.modal-body').after(h('div', { class: 'modal-actions' },
    button('Log out', async () => { await api.logout(); location.replace('/'); }, { danger: true, dlg: d }),
    h('button', { class: 'btn primary', type: 'button', text: 'Done', on: { click: () => d.close() } })));
}

// fingerprintBlock shows a fingerprint in groups, large, for comparing.
export function fingerprintBlock(fp) {
  return h('div', { class: 'fp-block', attrs: { 'aria-label': 'fingerprint ' + fp.split('-').join(' ') } },
    ...fp.split('-').map((g) => h('span', { text: g })));
}

