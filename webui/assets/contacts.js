// Contacts: requests in quarantine (only a nick and a fingerprint are
// shown until accepted), contacts, asking someone by alias, and the
// person's own published aliases.
import { h, clear } from './dom.js';
import { api } from './api.js';
import { state, emit, setContacts } from './state.js';
import { icon } from './icons.js';
import * as fmt from './format.js';
import { button, confirmDialog, fingerprintBlock, modal } from './dialogs.js';

export class ContactsView {
  constructor() {
    this.requests = [];
    this.aliases = [];
    // The forms are built once: refreshing the lists never loses what
    // is being typed.
    const name = h('input', { type: 'text', attrs: { placeholder: 'their alias or user ID', 'aria-label': 'Alias to ask', autocomplete: 'off' } });
    const ask = button('Send request', async () => {
      if (!name.value.trim()) throw new Error('Type their alias.');
      const c = await api.requestContact(name.value.trim());
      name.value = '';
      emit('toast', { text: 'Request sent to ' + c.via + '. They appear here once they accept.' });
      emit('reload-inbox');
      await this.load();
    }, { primary: true });
    const alias = h('input', { type: 'text', attrs: { placeholder: 'new alias, e.g. alice-7', 'aria-label': 'New alias', autocomplete: 'off' } });
    const add = button('Publish', async () => {
      if (!alias.value.trim()) throw new Error('Type an alias.');
      await api.addAlias(alias.value.trim());
      alias.value = '';
      await this.load();
    }, { primary: true });
    this.reqList = h('ul', { class: 'rows' });
    this.reqCard = card('Requests', '', this.reqList);
    this.list = h('ul', { class: 'rows' });
    this.contactCard = card('Contacts', '', this.list);
    this.aliasList = h('ul', { class: 'rows' });
    this.root = h('section', { class: 'page', attrs: { 'aria-label': 'Contacts' } },
      h('header', { class: 'page-head' },
        h('button', { class: 'icon-btn back', type: 'button', attrs: { 'aria-label': 'Back to chats' }, on: { click: () => emit('navigate', { hash: '#/chats' }) } }, icon('back')),
        h('h1', { text: 'Contacts' }),
        h('button', { class: 'icon-btn', type: 'button', attrs: { 'aria-label': 'Refresh', title: 'Check for requests' }, on: { click: () => this.load().catch((e) => emit('toast', { text: e.message, error: true })) } }, icon('refresh'))),
      h('div', { class: 'page-body' },
        card('Connect with someone', 'They must have published the alias. They see your nick and fingerprint, and nothing else until they accept.',
          h('form', { class: 'inline-form', on: { submit: (e) => { e.preventDefault(); ask.click(); } } }, name, ask)),
        this.reqCard, this.contactCard,
        card('Your aliases', 'People ask to connect with you through an alias you publish on directory hosts.',
          h('form', { class: 'inline-form', on: { submit: (e) => { e.preventDefault(); add.click(); } } }, alias, add), this.aliasList)));
  }

  // watch re-reads requests and contacts while the view is shown, so a
  // request or an acceptance shows up by itself.
  watch() {
    this.timer = setInterval(() => {
      if (!this.root.isConnected) {
        clearInterval(this.timer);
        return;
      }
      if (document.visibilityState === 'visible' && !document.querySelector('dialog[open]')) {
        this.load().catch(() => {});
      }
    }, 10000);
  }

  async load() {
    const [reqs, aliases, contacts] = await Promise.all([
      api.requests().catch((e) => { emit('toast', { text: 'Requests: ' + e.message, error: true }); return this.requests; }),
      api.aliases().catch(() => this.aliases),
      api.contacts().catch(() => state.contacts),
    ]);
    this.requests = reqs || [];
    this.aliases = aliases || [];
    setContacts(contacts);
    this.render();
  }

  render() {
    // Quarantine.
    clear(this.reqList);
    for (const r of this.requests) {
      this.reqList.append(h('li', { class: 'row' },
        fmt.avatar(r.nick, r.fingerprint),
        h('div', { class: 'row-text' },
          h('div', {}, fmt.name(r.nick), h('span', { class: 'muted', text: ' via ' + r.via })),
          h('div', { class: 'fp', text: r.fingerprint })),
        h('div', { class: 'row-actions' },
          button('Reject', async () => { await api.reject(r.id); await this.load(); }),
          button('Accept', async () => {
            const c = await api.accept(r.id);
            emit('toast', { text: 'Connected with ' + (c.nick || r.nick) + '.' });
            emit('reload-inbox');
            await this.load();
          }, { primary: true }))));
    }
    setCard(this.reqCard, `Requests${this.requests.length ? ' · ' + this.requests.length : ''}`,
      this.requests.length ? 'Held in quarantine: nothing of theirs is shown but their nick and fingerprint.' : 'No requests waiting.');

    // Contacts.
    clear(this.list);
    for (const c of state.contacts) {
      const verified = c.fingerprint && state.verified.has(c.fingerprint);
      this.list.append(h('li', { class: 'row' },
        fmt.avatar(c.nick || c.via, c.fingerprint || c.group, 'person'),
        h('div', { class: 'row-text' },
          h('div', {}, fmt.name(c.nick || c.via), verified ? icon('verified', 'verified') : null,
            h('span', { class: ['chip', c.state === 'connected' ? 'ok' : c.state === 'mismatch' ? 'bad' : ''], text: c.state })),
          h('div', { class: 'fp', text: c.fingerprint || 'waiting for them to accept' })),
        h('div', { class: 'row-actions' },
          c.state === 'connected' ? h('a', { class: 'btn', text: 'Chat', attrs: { href: '#/chat/' + c.group } }) : null,
          c.fingerprint ? button(verified ? 'Verified ✓' : 'Verify…', () => verifyContact(c, this)) : null,
          button('Remove', () => confirmDialog('Remove ' + (c.nick || c.via), 'Remove this contact? Their chat is forgotten on this node.', 'Remove', async () => {
            await api.removeContact(c.group, false);
            emit('reload-inbox');
            await this.load();
          })))));
    }
    setCard(this.contactCard, 'Contacts', state.contacts.length ? '' : 'No contacts yet.');

    // Aliases.
    clear(this.aliasList);
    for (const a of this.aliases) {
      this.aliasList.append(h('li', { class: 'row' },
        h('span', { class: 'row-icon' }, icon(a.kind === 'alias' ? 'at' : 'key')),
        h('div', { class: 'row-text' },
          h('div', {}, h('bdi', { class: 'mono', text: a.name }), h('span', { class: 'chip', text: a.kind })),
          h('div', { class: 'muted', text: `published on ${a.published} host${a.published === 1 ? '' : 's'}` + (a.proof_bits ? ` · proof of work ${a.proof_bits} bits` : '') + (a.dropped_no_proof ? ` · ${a.dropped_no_proof} dropped without proof` : '') })),
        a.kind === 'alias' ? h('div', { class: 'row-actions' },
          button('Remove', () => confirmDialog('Remove alias ' + a.name, 'Nobody can ask you through this alias any more.', 'Remove', async () => {
            await api.removeAlias(a.name);
            await this.load();
          }))) : null));
    }
  }
}

function setCard(el, title, hint) {
  el.querySelector('h2').textContent = title;
  let p = el.querySelector(':scope > .hint');
  if (!p) {
    p = h('p', { class: 'hint' });
    el.querySelector('h2').after(p);
  }
  p.textContent = hint;
  p.hidden = !hint;
}

function card(title, hint, ...children) {
  return h('section', { class: 'card' }, h('h2', { text: title }), hint ? h('p', { class: 'hint', text: hint }) : null, ...children);
}

function verifyContact(c, view) {
  const verified = state.verified.has(c.fingerprint);
  modal({
    title: 'Verify ' + (c.nick || c.via),
    body: [h('p', { text: 'Compare this fingerprint with them, in person or over a call:' }), fingerprintBlock(c.fingerprint),
      h('p', { class: 'hint', text: 'Yours is ' + state.session.fingerprint })],
    actions: (d) => [button(verified ? 'Remove verification' : 'It matches: mark as verified', async () => {
      await api.setVerified(c.fingerprint, !verified);
      if (verified) state.verified.delete(c.fingerprint);
      else state.verified.add(c.fingerprint);
      emit('verified');
      d.close();
      view.render();
    }, { primary: !verified, dlg: d })],
  });
}

export { card };
