// An open conversation: its header (name, members, hosts reachable,
// catch-up progress), the timeline, the composer and the details panel.
import { h, clear } from './dom.js';
import { api } from './api.js';
import { state, emit, on, groupTitle, isContactGroup } from './state.js';
import * as fmt from './format.js';
import { icon } from './icons.js';
import { Timeline } from './timeline.js';
import { Details } from './members.js';
import { perf } from './perf.js';
import { inviteDialog, confirmDialog } from './dialogs.js';

// MAX_TEXT is the longest text the page sends, in UTF-8 bytes (a
// message travels in one envelope of at most 64 KiB).
const MAX_TEXT = 60000;

export class Conversation {
  constructor(groupID) {
    this.id = groupID;
    this.members = [];
    this.directTo = null;
    // replyTo is the message the composer answers; editing the own
    // message whose text it replaces.
    this.replyTo = null;
    this.editing = null;
    this.timeline = new Timeline(groupID, {
      onMember: (fp) => this.details.showMember(fp),
      onReply: (m) => this.setReply(m),
      onEdit: (m) => this.setEditing(m),
      onDelete: (m) => this.confirmDelete(m),
      canWrite: () => !this.input || !this.input.disabled,
      canModerate: () => { const g = this.entry && this.entry.group; return !!(g && g.managed && g.role === 'manage'); },
    });
    this.details = new Details(this);
    this.header = h('header', { class: 'conv-head' });
    this.progress = h('div', { class: 'catchup', hidden: true, attrs: { role: 'status' } });
    this.composer = this.buildComposer();
    this.root = h('section', { class: 'conversation', attrs: { 'aria-label': 'Conversation' } },
      h('div', { class: 'conv-main' }, this.header, this.progress, this.timeline.root, this.composer),
      this.details.root);
    this.offs = [
      on('inbox', () => { this.renderHeader(); this.updateComposer(); }),
      on('contacts', () => { this.renderHeader(); this.updateComposer(); }),
      on('network', () => this.renderHeader()),
      on('catchup', (p) => { if (p.group === this.id) this.renderProgress(); }),
      on('verified', () => { this.timeline.rerender(); this.details.render(); }),
      on('retry', ({ group, pending }) => { if (group === this.id) this.retry(pending); }),
    ];
  }

  get entry() {
    return state.inbox.get(this.id);
  }

  async open() {
    this.renderHeader();
    this.renderProgress();
    this.updateComposer();
    await Promise.all([this.timeline.open(), this.loadMembers()]);
    this.loadRejections();
    this.rejTimer = setInterval(() => { if (document.visibilityState === 'visible') this.loadRejections(); }, 20000);
    // Own messages waiting for a host: follow the outbox until stored.
    this.outboxTimer = setInterval(() => this.checkOutbox(), 4000);
  }

  async checkOutbox() {
    const ids = this.timeline.pendingIDs();
    if (!ids.length || document.visibilityState !== 'visible') return;
    try {
      this.timeline.updateDelivery(await api.outbox(), ids);
    } catch {
      // Tried again at the next tick.
    }
  }

  async loadRejections() {
    try {
      this.timeline.setRejections(await api.rejections(this.id, 200));
    } catch {
      // An older daemon without the log: nothing to show.
    }
  }

  destroy() {
    clearInterval(this.rejTimer);
    clearInterval(this.outboxTimer);
    this.offs.forEach((f) => f());
    this.timeline.destroy();
  }

  async loadMembers() {
    try {
      this.members = (await api.members(this.id)) || [];
    } catch (e) {
      this.members = [];
    }
    this.timeline.members = this.members;
    this.details.render();
    this.renderHeader();
  }

  // onMessage takes a live message of this group.
  onMessage(pm) {
    this.timeline.add(pm);
    if (pm.kind === 'event') {
      // Membership, roles or policy changed.
      this.loadMembers();
      emit('reload-inbox');
    }
  }

  renderHeader() {
    const e = this.entry;
    if (!e) return;
    const g = e.group;
    const title = groupTitle(g);
    const contact = isContactGroup(g.id);
    const sub = [];
    if (contact) {
      const c = state.contactOf.get(g.id);
      sub.push(h('span', { class: 'fp', text: fmt.shortFP(c.fingerprint), attrs: { title: c.fingerprint } }));
      if (state.verified.has(c.fingerprint)) sub.push(h('span', { class: 'chip ok' }, icon('verified'), 'verified'));
    } else {
      sub.push(h('span', { text: `${g.members} member${g.members === 1 ? '' : 's'}` }));
      if (g.managed) sub.push(h('span', { class: 'chip', text: g.role ? 'managed · ' + g.role : 'managed' }));
      if (!g.can_write && !g.removed) sub.push(h('span', { class: 'chip', text: 'read only' }));
      if (g.removed) sub.push(h('span', { class: 'chip bad', text: 'removed' }));
      if (g.splits) sub.push(h('span', { class: 'chip bad' }, icon('warning'), 'split detected'));
    }
    sub.push(hostsChip(g));
    clear(this.header).append(
      h('button', { class: 'icon-btn back', type: 'button', attrs: { 'aria-label': 'Back to chats' }, on: { click: () => emit('navigate', { hash: '#/chats' }) } }, icon('back')),
      fmt.avatar(title, g.id, contact ? 'person' : 'group'),
      h('div', { class: 'conv-title' },
        h('h2', {}, fmt.name(title, 'title')),
        h('div', { class: 'conv-sub' }, ...sub)),
      h('div', { class: 'conv-actions' },
        !g.managed && !contact ? h('button', {
          class: 'icon-btn', type: 'button', attrs: { 'aria-label': 'Invite people', title: 'Invite people' },
          on: { click: () => inviteDialog(g) },
        }, icon('qr')) : null,
        h('button', {
          class: 'icon-btn', type: 'button', attrs: { 'aria-label': 'Members and group details', title: 'Members and details', 'aria-expanded': String(this.details.open) },
          on: { click: () => this.details.toggle() },
        }, icon('users'))));
  }

  renderProgress() {
    const p = state.catchups.get(this.id);
    const el = this.progress;
    if (!p || !p.running) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    const prog = h('progress', { max: Math.max(1, p.steps), value: p.done, attrs: { 'aria-label': 'Catch-up progress' } });
    clear(el).append(icon('refresh'), h('span', {
      text: `Fetching history from ${p.steps > 1 ? p.steps + ' sources' : 'the hosts'}… ${p.fetched} envelope${p.fetched === 1 ? '' : 's'} so far`,
    }), prog);
  }

  buildComposer() {
    this.input = h('textarea', {
      rows: 1, class: 'compose-input', attrs: { 'aria-label': 'Message', placeholder: 'Message', enterkeyhint: 'send' },
      on: {
        keydown: (e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            // Some input methods (and synthetic keys) still insert the
            // line break after keydown: beforeinput drops it.
            this.sentByEnter = true;
            this.submit();
          } else if (e.key === 'Escape' && (this.directTo || this.replyTo || this.editing)) {
            this.setDirect(null);
          }
        },
        beforeinput: (e) => {
          if (this.sentByEnter && (e.inputType === 'insertLineBreak' || e.inputType === 'insertParagraph' || e.inputType === 'insertText' && e.data === '\n')) e.preventDefault();
          this.sentByEnter = false;
        },
        keyup: () => { this.sentByEnter = false; },
        input: () => this.grow(),
      },
    });
    this.directBar = h('div', { class: 'direct-bar', hidden: true });
    this.refBar = h('div', { class: 'direct-bar ref-bar', hidden: true });
    this.sendBtn = h('button', { class: 'send', type: 'submit', attrs: { 'aria-label': 'Send' } }, icon('send'));
    // Files: a hidden file input behind an attach button.
    this.fileInput = h('input', { type: 'file', class: 'file-input', hidden: true, attrs: { 'aria-label': 'Choose a file to send' }, on: { change: () => this.sendFiles() } });
    this.attachBtn = h('button', {
      class: 'icon-btn attach', type: 'button', attrs: { 'aria-label': 'Send a file', title: 'Send a file' },
      on: { click: () => this.fileInput.click() },
    }, icon('file'));
    this.composeNote = h('div', { class: 'compose-note', hidden: true });
    return h('form', {
      class: 'composer', attrs: { 'aria-label': 'Write a message' },
      on: { submit: (e) => { e.preventDefault(); this.submit(); } },
    }, this.directBar, this.refBar, this.composeNote, h('div', { class: 'compose-row' }, this.attachBtn, this.fileInput, this.input, this.sendBtn));
  }

  grow() {
    const el = this.input;
    el.style.height = 'auto';
    el.style.height = Math.min(el.scrollHeight, Math.round(window.innerHeight * 0.4)) + 'px';
  }

  updateComposer() {
    const g = this.entry && this.entry.group;
    if (!g) return;
    const title = groupTitle(g);
    const c = state.contactOf.get(g.id);
    const blocked = g.removed ? 'You were removed from this group: you can read what you had, and nothing new.'
      : c && c.state === 'pending' ? `Waiting for ${c.via} to accept your request: nothing can be sent before.`
        : !g.can_write || (g.managed && g.role === 'read') ? 'You may only read in this group.' : '';
    this.input.disabled = this.sendBtn.disabled = this.attachBtn.disabled = !!blocked;
    this.composeNote.hidden = !blocked;
    this.composeNote.textContent = blocked;
    const ph = this.editing ? 'Edit your message' : this.replyTo ? 'Reply to ' + (this.replyTo.nick || 'the message')
      : this.directTo ? 'Private message to ' + this.directTo.nick : 'Message ' + title;
    this.input.setAttribute('placeholder', ph);
    this.input.setAttribute('aria-label', ph);
  }

  // setDirect makes the composer write privately to one member (null:
  // to everyone).
  setDirect(member) {
    this.directTo = member;
    if (member || this.replyTo || this.editing) this.setRef(null, null);
    const bar = clear(this.directBar);
    bar.hidden = !member;
    if (member) {
      bar.append(icon('lock'), h('span', {}, 'Private message to ', fmt.name(member.nick, 'nick-inline'),
        h('span', { class: 'fp', text: ' ' + fmt.shortFP(member.fingerprint) })),
      h('button', { class: 'icon-btn small', type: 'button', attrs: { 'aria-label': 'Write to everyone instead' }, on: { click: () => this.setDirect(null) } }, icon('close')));
    }
    this.updateComposer();
    this.input.focus();
  }

  // setReply makes the composer answer m; setEditing makes it replace
  // the text of the own message m.
  setReply(m) {
    this.setRef(m, null);
  }

  setEditing(m) {
    this.setRef(null, m);
    this.input.value = m.text || '';
    this.grow();
  }

  setRef(reply, editing) {
    if (this.editing && !editing) this.input.value = '';
    this.replyTo = reply;
    this.editing = editing;
    if (reply || editing) {
      this.directTo = null;
      clear(this.directBar).hidden = true;
    }
    const bar = clear(this.refBar);
    const m = reply || editing;
    bar.hidden = !m;
    if (m) {
      bar.append(icon(reply ? 'reply' : 'edit'), h('span', { class: 'ref-what' },
        reply ? h('span', {}, 'Replying to ', fmt.name(m.nick || 'the message', 'nick-inline')) : h('span', { text: 'Editing your message' }),
        h('span', { class: 'ref-text', attrs: { dir: 'auto' }, text: ' ' + (m.text || '').slice(0, 120) })),
      h('button', { class: 'icon-btn small', type: 'button', attrs: { 'aria-label': reply ? 'Cancel the reply' : 'Cancel the edit' }, on: { click: () => this.setRef(null, null) } }, icon('close')));
    }
    this.updateComposer();
    this.input.focus();
  }

  confirmDelete(m) {
    const other = !m.own;
    confirmDialog(other ? 'Delete this message for everyone?' : 'Delete your message?',
      (other ? 'As a manager you can delete any message of this group. ' : '') +
      'Members stop showing it and drop its text; the group\'s hosts keep the encrypted copy until their retention removes it.',
      'Delete', async () => {
        await api.deleteMessage(m.id);
      });
  }

  async submit() {
    const text = this.input.value;
    if (!text.trim() || this.input.disabled) return;
    if (new TextEncoder().encode(text).length > MAX_TEXT) {
      emit('toast', { text: `The message is too long (at most ${MAX_TEXT / 1000} kB).`, error: true });
      return;
    }
    if (this.editing) {
      const m = this.editing;
      if (text === m.text) {
        this.setRef(null, null);
        return;
      }
      try {
        await api.edit(m.id, text);
        this.setRef(null, null);
      } catch (e) {
        emit('toast', { text: 'Editing failed: ' + e.message, error: true });
      }
      return;
    }
    this.input.value = '';
    this.grow();
    const to = this.directTo;
    const reply = this.replyTo;
    if (reply) this.setRef(null, null);
    perf.sent(text);
    const p = this.timeline.addPending(text, to && to.fingerprint, to && to.nick, reply);
    await this.deliver(p);
  }

  // sendFiles sends the chosen files, one by one; each shows once the
  // node has stored its chunks and sent its manifest.
  async sendFiles() {
    const files = [...this.fileInput.files];
    this.fileInput.value = '';
    for (const f of files) {
      emit('toast', { text: `Sending ${f.name} (${fmt.bytes(f.size)})…` });
      try {
        await api.sendFile(this.id, f);
      } catch (e) {
        emit('toast', { text: `${f.name} was not sent: ${e.message}`, error: true });
      }
    }
  }

  async deliver(p) {
    try {
      const res = await api.send(this.id, p.text, p.to, p.replyTo);
      this.timeline.settle(p, res, null);
    } catch (e) {
      this.timeline.settle(p, null, e.message);
    }
  }

  retry(p) {
    this.timeline.dropPending(p);
    const q = this.timeline.addPending(p.text, p.to, p.toNick, p.quote && { id: p.replyTo, nick: p.quote.nick, author: p.quote.author, text: p.quote.text });
    this.deliver(q);
  }
}

// hostsChip says whether the group's hosts are reachable now.
function hostsChip(g) {
  const net = state.network && state.network.groups.find((x) => x.group === g.id);
  if (!g.hosts || g.hosts.length === 0) {
    return h('span', { class: 'chip', attrs: { title: 'No host: the members\' nodes keep the history for each other' } }, icon('users'), 'peer hosted');
  }
  if (!net) return h('span', { class: 'chip' }, icon('server'), `${g.hosts.length} host${g.hosts.length > 1 ? 's' : ''}`);
  const up = net.hosts.filter((x) => x.connected).length;
  const cls = up === net.hosts.length ? 'ok' : up === 0 ? 'bad' : 'warn';
  return h('span', {
    class: ['chip', cls], attrs: { title: net.hosts.map((x) => (x.connected ? '● ' : '○ ') + x.peer.slice(-10)).join('\n') },
  }, h('span', { class: 'dot' }), `${up}/${net.hosts.length} host${net.hosts.length > 1 ? 's' : ''} reachable`);
}
