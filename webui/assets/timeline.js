// A conversation's timeline: a window of at most WINDOW messages of the
// group's history, paged in from the daemon as the reader scrolls (older
// pages above, newer below) and dropped on the other side, so the page
// holds the same few hundred messages however long the history is. New
// messages arrive live from the event stream.
import { h, reconcile, announce } from './dom.js';
import { api } from './api.js';
import { state, emit } from './state.js';
import * as fmt from './format.js';
import { icon } from './icons.js';
import { perf } from './perf.js';

export const PAGE = 50;
export const WINDOW = 300;
// Long texts are folded past this many characters or lines.
const FOLD_CHARS = 1500;
const FOLD_LINES = 24;
// A message continues its author's run within this gap.
const RUN_GAP = 5 * 60 * 1000;

// sendStates keeps the delivery of own messages this page knows better
// than their listing did, by message ID (or a pending send's temporary
// ID): {state, count, reason}, where state is 'sending' (the daemon has
// not answered), 'error' (it refused: the page can retry), 'pending' (no
// host stored it yet: the node keeps trying), 'stored' (count hosts
// did) or 'failed' (the node gave up).
export const sendStates = new Map();

// fromResult is the delivery a send's answer reports.
export function fromResult(r) {
  const reasons = Object.values(r.failed || {});
  const state = r.state || ((r.stored_by || []).length ? 'stored' : 'pending');
  return { state, count: (r.stored_by || []).length, reason: reasons[0] || '' };
}

// fromListing is the delivery of an own message as the daemon lists it.
function fromListing(m) {
  if (!m.delivery) return null;
  return { state: m.delivery, count: m.stored_by_count || 0, reason: m.delivery_error || '' };
}

let pendingSeq = 0;

// REACTIONS are the emoji offered on every message (any other can come
// from other members and shows the same way).
export const REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '🙏'];

export class Timeline {
  // acts: onMember(fp); onReply(m), onEdit(m), onDelete(m) for a
  // message's actions; canWrite() and canModerate() say which to offer.
  constructor(group, { onMember, onReply, onEdit, onDelete, canWrite, canModerate } = {}) {
    this.group = group;
    this.onMember = onMember || (() => {});
    this.acts = {
      reply: onReply || (() => {}), edit: onEdit || (() => {}), del: onDelete || (() => {}),
      canWrite: canWrite || (() => true), canModerate: canModerate || (() => false),
    };
    this.items = [];
    this.pending = [];
    // Refusals of the group's rejection log, shown where they happened.
    this.rejections = [];
    this.hasOlder = false;
    this.hasNewer = false;
    this.loading = null;
    this.cache = new Map();
    this.unseen = 0;
    const entry = state.inbox.get(group);
    this.readCursor = entry ? entry.read.cursor : '';
    this.list = h('ol', { class: 'tl-list' });
    this.topLoader = h('div', { class: 'tl-loader', hidden: true, attrs: { 'aria-hidden': 'true' } }, h('span', { class: 'spinner' }));
    this.start = h('div', { class: 'tl-start', hidden: true }, icon('lock'), h('span', { text: 'The start of the history on this node. Messages are end-to-end encrypted.' }));
    this.bottomLoader = h('div', { class: 'tl-loader', hidden: true, attrs: { 'aria-hidden': 'true' } }, h('span', { class: 'spinner' }));
    this.el = h('div', {
      class: 'timeline',
      attrs: { role: 'log', 'aria-label': 'Messages', 'aria-live': 'off', tabindex: '0' },
      on: { scroll: () => this.onScroll() },
    }, this.start, this.topLoader, this.list, this.bottomLoader);
    this.jump = h('button', {
      class: 'jump', hidden: true, type: 'button',
      on: { click: () => this.jumpToLatest() },
    }, icon('down'), h('span', { class: 'jump-label', text: 'Latest' }));
    this.root = h('div', { class: 'tl-wrap' }, this.el, this.jump);
    this.onVisible = () => this.maybeMarkRead();
    document.addEventListener('visibilitychange', this.onVisible);
  }

  destroy() {
    document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.readTimer);
  }

  // open loads the latest page.
  async open() {
    const t0 = performance.now();
    const p = await api.history(this.group, { limit: PAGE });
    const t1 = performance.now();
    this.items = p.messages;
    this.hasOlder = p.more;
    this.hasNewer = false;
    this.render('bottom');
    perf.opened(this.group, this.items.length, { fetch: t1 - t0, render: performance.now() - t1 });
    this.el.dataset.state = 'ready';
    this.fill();
  }

  // fill loads older pages while the window does not fill the screen.
  async fill() {
    while (this.hasOlder && this.el.scrollHeight <= this.el.clientHeight + 50 && this.el.isConnected) {
      if (!(await this.loadOlder())) break;
    }
    this.maybeMarkRead();
  }

  async guard(fn) {
    if (this.loading) return false;
    this.loading = fn();
    try {
      await this.loading;
      return true;
    } catch (e) {
      emit('toast', { text: 'Loading messages failed: ' + e.message, error: true });
      return false;
    } finally {
      this.loading = null;
    }
  }

  loadOlder() {
    if (!this.hasOlder || !this.items.length) return Promise.resolve(false);
    return this.guard(async () => {
      this.topLoader.hidden = false;
      try {
        const p = await api.history(this.group, { limit: PAGE, before: this.items[0].cursor });
        this.items = p.messages.concat(this.items);
        this.hasOlder = p.more;
        if (this.items.length > WINDOW) {
          this.items = this.items.slice(0, WINDOW);
          this.hasNewer = true;
        }
      } finally {
        this.topLoader.hidden = true;
      }
      this.render('anchor');
    });
  }

  loadNewer() {
    if (!this.hasNewer || !this.items.length) return Promise.resolve(false);
    return this.guard(async () => {
      this.bottomLoader.hidden = false;
      try {
        const p = await api.history(this.group, { limit: PAGE, after: this.items[this.items.length - 1].cursor });
        this.items = this.items.concat(p.messages);
        this.hasNewer = p.more;
        if (this.items.length > WINDOW) {
          this.items = this.items.slice(this.items.length - WINDOW);
          this.hasOlder = true;
        }
      } finally {
        this.bottomLoader.hidden = true;
      }
      if (!this.hasNewer) this.unseen = 0;
      this.render('anchor');
    });
  }

  async jumpToLatest() {
    if (!this.hasNewer) {
      this.unseen = 0;
      this.render('bottom');
      return;
    }
    await this.guard(async () => {
      const p = await api.history(this.group, { limit: PAGE });
      this.items = p.messages;
      this.hasOlder = p.more;
      this.hasNewer = false;
      this.unseen = 0;
      this.render('bottom');
    });
  }

  atBottom() {
    return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 80;
  }

  onScroll() {
    if (this.el.scrollTop < 800 && this.hasOlder) this.loadOlder();
    if (this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 800 && this.hasNewer) this.loadNewer();
    if (this.atBottom() && !this.hasNewer) {
      this.unseen = 0;
      this.updateJump();
    }
    this.maybeMarkRead();
  }

  updateJump() {
    const show = this.hasNewer || !this.atBottom();
    this.jump.hidden = !show;
    this.jump.classList.toggle('has-new', this.unseen > 0);
    const label = this.unseen > 0 ? `${this.unseen} new message${this.unseen > 1 ? 's' : ''}` : 'Latest';
    this.jump.lastChild.textContent = label;
    this.jump.setAttribute('aria-label', 'Jump to the latest messages' + (this.unseen ? ` (${label})` : ''));
  }

  // maybeMarkRead moves the read marker to the newest message shown once
  // the reader is at the bottom of the live end and the page is visible.
  maybeMarkRead() {
    if (this.hasNewer || !this.items.length || document.visibilityState !== 'visible' || !this.atBottom()) return;
    const last = this.items[this.items.length - 1].cursor;
    const entry = state.inbox.get(this.group);
    if (!last || (entry && entry.read.cursor >= last && entry.read.unread === 0)) return;
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(async () => {
      try {
        const rs = await api.markRead(this.group, last);
        const e = state.inbox.get(this.group);
        if (e) {
          e.read = rs;
          emit('inbox');
        }
      } catch (e) {
        // The marker is moved again at the next scroll or message.
      }
    }, 250);
  }

  // add takes a message from the event stream.
  add(pm) {
    if (pm.updated) {
      this.update(pm);
      return;
    }
    if (pm.own) {
      const i = this.pending.findIndex((p) => p.id === pm.id || (!p.id && p.text === pm.text && (p.to || '') === (pm.to || '')));
      if (i >= 0) {
        const [p] = this.pending.splice(i, 1);
        if (p.id === pm.id || !p.id) sendStates.set(pm.id, sendStates.get(p.tempId) || { state: 'sending' });
        p.settled = pm.id;
      }
    }
    if (this.hasNewer) {
      // The window is not at the live end: it is fetched when scrolled to.
      if (!pm.own) this.unseen++;
      this.updateJump();
      return;
    }
    if (this.items.some((m) => m.id === pm.id)) return;
    const stick = this.atBottom();
    // Usually the newest: insert from the end.
    let i = this.items.length;
    while (i > 0 && pm.cursor && this.items[i - 1].cursor > pm.cursor) i--;
    this.items.splice(i, 0, pm);
    if (this.items.length > WINDOW && stick) {
      this.items = this.items.slice(this.items.length - WINDOW);
      this.hasOlder = true;
    }
    if (!pm.own && !stick) this.unseen++;
    this.render(stick || pm.own ? 'bottom' : 'anchor');
    perf.rendered(pm);
    this.maybeMarkRead();
    if (!pm.own) announce(`${pm.nick || 'someone'}: ${(pm.text || '').slice(0, 200)}`);
  }

  // update takes a message an edit, a delete or a reaction changed: it
  // replaces the copy shown, and the quotes of the replies to it.
  update(pm) {
    let changed = false;
    this.items = this.items.map((m) => {
      if (m.id === pm.id) {
        changed = true;
        return Object.assign({}, pm, { cursor: m.cursor || pm.cursor, updated: false });
      }
      if (m.quote && m.quote.id === pm.id) {
        changed = true;
        return Object.assign({}, m, { quote: Object.assign({}, m.quote, { text: pm.deleted ? '' : (pm.text || '').slice(0, 200), deleted: !!pm.deleted, missing: false }) });
      }
      return m;
    });
    if (changed) this.render('anchor');
  }

  // react toggles this member's reaction to m.
  async react(m, emoji) {
    try {
      await api.react(m.id, emoji);
    } catch (e) {
      emit('toast', { text: 'Reacting failed: ' + e.message, error: true });
    }
  }

  // addPending shows an own message being sent; it returns its handle.
  // reply, if set, is the message it answers.
  addPending(text, to, toNick, reply) {
    const p = { tempId: 'pending-' + ++pendingSeq, text, to, toNick, sent: new Date(), id: '' };
    if (reply) {
      p.replyTo = reply.id;
      p.quote = { id: reply.id, nick: reply.nick, author: reply.author, text: (reply.text || '').slice(0, 200) };
    }
    sendStates.set(p.tempId, { state: 'sending' });
    this.pending.push(p);
    if (this.hasNewer) this.jumpToLatest();
    else this.render('bottom');
    return p;
  }

  // settle records a send's outcome.
  settle(p, result, error) {
    const st = error ? { state: 'error', reason: error } : fromResult(result);
    sendStates.set(p.tempId, st);
    if (result) {
      p.id = result.id;
      sendStates.set(result.id, st);
      if (p.settled || this.items.some((m) => m.id === result.id)) {
        this.pending = this.pending.filter((x) => x !== p);
      }
    }
    this.render('anchor');
  }

  dropPending(p) {
    this.pending = this.pending.filter((x) => x !== p);
    sendStates.delete(p.tempId);
    this.render('anchor');
  }

  // refresh re-reads the window after the stream may have missed events.
  async refresh() {
    if (this.hasNewer || !this.items.length) return this.open();
    await this.guard(async () => {
      const p = await api.history(this.group, { limit: PAGE, after: this.items[this.items.length - 1].cursor });
      this.items = this.items.concat(p.messages.filter((m) => !this.items.some((x) => x.id === m.id)));
      this.hasNewer = p.more;
      this.render('anchor');
    });
  }

  rerender() {
    this.render('anchor');
  }

  // setRejections takes the group's rejection log; the refusals show as
  // notices at their time (what was flagged shows on its message, and an
  // equivocation has a notice of its own).
  setRejections(list) {
    this.rejections = (list || []).filter((r) => r.kind === 'refused').map((r) => ({
      id: 'rejection-' + r.envelope + '-' + r.reason,
      kind: 'rejection',
      sent: r.time,
      cursor: msCursor(new Date(r.time)) + 'f'.repeat(16) + 'r' + r.envelope,
      text: `Refused a message${r.author ? ' from ' + this.nickOf(r.author) : ''}: ${r.detail || r.reason}`,
    }));
    this.render('anchor');
  }

  // merged is the window's messages with the refusals of its span.
  merged() {
    if (!this.rejections.length || !this.items.length) return this.items;
    const first = this.hasOlder ? this.items[0].cursor : '';
    const last = this.hasNewer ? this.items[this.items.length - 1].cursor : '\uffff';
    const shown = this.rejections.filter((r) => r.cursor > first && r.cursor < last);
    if (!shown.length) return this.items;
    return this.items.concat(shown).sort((a, b) => (a.cursor < b.cursor ? -1 : a.cursor > b.cursor ? 1 : 0));
  }

  entries() {
    const out = [];
    let prev = null;
    let unreadShown = false;
    const list = this.merged();
    // The delivery line shows under the latest own message, and under
    // any that is not stored; the others carry a tick.
    let lastOwn = '';
    if (!this.pending.length || this.hasNewer) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i].own && isShown(list[i])) {
          lastOwn = list[i].id;
          break;
        }
      }
    }
    for (const m of list) {
      const at = new Date(m.sent);
      if (!prev || fmt.dayKey(new Date(prev.sent)) !== fmt.dayKey(at)) {
        const key = 'day-' + fmt.dayKey(at);
        out.push({ key, build: () => h('li', { class: 'day', attrs: { role: 'separator' } }, h('span', { text: fmt.dayLabel(at) })) });
      }
      // The first message others wrote after the marker the conversation
      // was opened with.
      if (!unreadShown && this.readCursor && prev && !m.own && isShown(m) && m.cursor > this.readCursor) {
        unreadShown = true;
        out.push({ key: 'unread', build: () => h('li', { class: 'unread-line', attrs: { role: 'separator' } }, h('span', { text: 'New messages' })) });
      }
      const cont = continues(prev, m);
      const verified = state.verified.has(m.author);
      const st = m.own ? sendStates.get(m.id) || fromListing(m) : null;
      const line = st && (st.state !== 'stored' || m.id === lastOwn);
      const key = [m.cursor || m.id, cont ? 'c' : 'h', verified ? 'v' : '', st ? st.state + st.count : '', line ? 'l' : '', refKey(m)].join('|');
      out.push({ key, build: () => this.message(m, cont, verified, st, null, line) });
      prev = m;
    }
    if (!this.hasNewer) {
      for (const p of this.pending) {
        const st = sendStates.get(p.tempId);
        const m = { id: p.id || p.tempId, own: true, kind: p.to ? 'direct' : p.replyTo ? 'reply' : 'text', text: p.text, to: p.to, toNick: p.toNick, sent: p.sent.toISOString(), quote: p.quote, pending: true };
        out.push({ key: p.tempId + '|' + st.state, build: () => this.message(m, continues(prev, m), false, st, p) });
        prev = m;
      }
    }
    return out;
  }

  render(mode) {
    const el = this.el;
    let anchor = null;
    let delta = 0;
    if (mode === 'anchor') {
      if (this.atBottom() && !this.hasNewer) {
        mode = 'bottom';
      } else {
        for (const child of this.list.children) {
          if (child.offsetTop + child.offsetHeight > el.scrollTop) {
            anchor = child;
            delta = child.offsetTop - el.scrollTop;
            break;
          }
        }
      }
    }
    this.cache = reconcile(this.list, this.entries(), this.cache);
    this.start.hidden = this.hasOlder;
    if (mode === 'bottom') {
      el.scrollTop = el.scrollHeight;
    } else if (anchor && anchor.isConnected) {
      el.scrollTop = anchor.offsetTop - delta;
    }
    this.updateJump();
  }

  message(m, cont, verified, st, pending, line = true) {
    if (!isShown(m)) return this.notice(m);
    const at = new Date(m.sent);
    const cls = ['msg', m.own && 'own', m.kind === 'direct' && 'direct', cont && 'cont', st && (st.state === 'failed' || st.state === 'error') && 'failed'];
    const li = h('li', { class: cls, dataset: { id: m.id }, attrs: { 'aria-label': messageLabel(m, verified) } });
    if (!m.own) {
      li.append(cont ? h('span', { class: 'msg-gutter' })
        : h('button', { class: 'msg-av', type: 'button', attrs: { 'aria-label': 'About ' + (m.nick || 'this member') }, on: { click: () => this.onMember(m.author) } },
          fmt.avatar(m.nick, m.author)));
    }
    const main = h('div', { class: 'msg-main' });
    if (!cont && !m.own) {
      main.append(h('div', { class: 'msg-head' },
        fmt.name(m.nick),
        verified ? h('span', { class: 'badge-verified', attrs: { title: 'Fingerprint verified by you' } }, icon('verified', 'verified')) : null,
        h('span', { class: 'msg-fp', text: fmt.shortFP(m.author), attrs: { title: m.author } }),
        h('time', { text: fmt.time(at), attrs: { datetime: m.sent, title: fmt.fullTime(at) } })));
    }
    if (m.kind === 'direct') {
      const other = m.own ? (m.toNick || this.nickOf(m.to)) : 'you';
      main.append(h('div', { class: 'msg-private' }, icon('lock'), m.own ? 'Private to ' : 'Private message to ', fmt.name(other, 'nick-inline')));
    }
    const text = m.text || '';
    // A long text shows its start, folded: laying out all of a 64 KiB
    // message costs the page time the reader may never want to spend.
    const long = !m.deleted && (text.length > FOLD_CHARS || text.split('\n', FOLD_LINES + 1).length > FOLD_LINES);
    let body = m.deleted
      ? h('div', { class: 'text deleted' }, icon('trash'), h('span', { text: deletedText(m) }))
      : m.file ? this.fileCard(m)
        : fmt.messageText(long ? text.slice(0, FOLD_CHARS) : text);
    const bubble = h('div', { class: ['bubble', m.deleted && 'tombstone'] }, m.quote ? this.quote(m.quote) : null, body);
    if (long) {
      body.classList.add('folded');
      bubble.append(h('button', {
        class: 'fold', type: 'button', text: 'Show more', attrs: { 'aria-expanded': 'false' },
        on: {
          click: (e) => {
            const open = body.classList.contains('folded');
            const next = fmt.messageText(open ? text : text.slice(0, FOLD_CHARS));
            next.classList.toggle('folded', !open);
            body.replaceWith(next);
            body = next;
            e.currentTarget.textContent = open ? 'Show less' : 'Show more';
            e.currentTarget.setAttribute('aria-expanded', String(open));
          },
        },
      }));
    }
    const edited = m.edited && !m.deleted
      ? h('span', { class: 'edited', text: 'edited', attrs: { title: 'Edited ' + fmt.fullTime(new Date(m.edited_at)) } }) : null;
    if (m.own || cont || edited) {
      const tick = m.own && st && st.state === 'stored' && !line
        ? h('span', { class: 'tick', attrs: { title: this.storedText(st), 'aria-label': this.storedText(st), role: 'img' } }, icon('checks')) : null;
      bubble.append(h('span', { class: 'bubble-meta' }, edited,
        m.own || cont ? h('time', { class: 'bubble-time', text: fmt.time(at), attrs: { datetime: m.sent, title: fmt.fullTime(at) } }) : null, tick));
    }
    main.append(bubble);
    if (m.reactions && m.reactions.length && !m.deleted) main.append(this.reactions(m));
    const acts = m.cursor && !m.pending && !m.deleted && (m.kind === 'text' || m.kind === 'reply' || m.kind === 'file') && this.acts.canWrite();
    if (m.flags && m.flags.length) {
      main.append(h('div', { class: 'msg-flags', attrs: { role: 'note' } }, icon('warning'),
        h('span', { text: m.flags.map((f) => FLAGS[f] || f).join(' · ') })));
    }
    if (m.own && st && line) main.append(this.stateLine(st, pending));
    li.append(main);
    // On the empty side of the row, shown on hover and focus.
    if (acts) li.append(this.actions(m));
    return li;
  }

  // fileCard shows a file message: its name, type and size, and a
  // download button (the node fetches the chunks it lacks from the
  // group's hosts and checks the whole file before the browser saves it).
  fileCard(m) {
    const f = m.file;
    const status = h('span', { class: 'file-status', attrs: { role: 'status' } });
    const btn = h('button', {
      class: 'btn file-get', type: 'button', text: 'Download',
      on: {
        click: async () => {
          btn.disabled = true;
          status.textContent = 'Fetching…';
          try {
            await api.download(m.id);
            status.textContent = 'Checked';
            const a = h('a', { attrs: { href: api.fileURL(m.id), download: f.name } });
            document.body.append(a);
            a.click();
            a.remove();
          } catch (e) {
            status.textContent = 'Failed: ' + e.message;
          } finally {
            btn.disabled = false;
          }
        },
      },
    });
    return h('div', { class: 'file-card' }, icon('file'),
      h('div', { class: 'file-meta' }, h('span', { class: 'file-name', attrs: { dir: 'auto' }, text: f.name }),
        h('span', { class: 'file-sub', text: `${f.media_type || 'file'} · ${fmt.bytes(f.size)}` }), status), btn);
  }

  // quote shows the message a reply answers.
  quote(q) {
    const text = q.missing ? 'a message not seen here' : q.deleted ? 'a deleted message' : q.text;
    return h('button', {
      class: ['quote', (q.missing || q.deleted) && 'quote-gone'], type: 'button',
      attrs: { 'aria-label': 'Reply to ' + (q.nick || 'a message') + ': ' + text, title: 'Show the message answered' },
      on: { click: () => this.show(q.id) },
    }, q.missing ? null : fmt.name(q.nick || '?', 'quote-nick'), h('span', { class: 'quote-text', attrs: { dir: 'auto' }, text }));
  }

  // show scrolls to a message of the window and flashes it.
  show(id) {
    const el = [...this.list.children].find((x) => x.dataset.id === id);
    if (!el) {
      emit('toast', { text: 'The message answered is further back in the history.' });
      return;
    }
    el.scrollIntoView({ block: 'center' });
    el.classList.add('flash');
    setTimeout(() => el.classList.remove('flash'), 1200);
  }

  // reactions shows a message's reactions; each toggles this member's.
  reactions(m) {
    return h('div', { class: 'reactions', attrs: { role: 'group', 'aria-label': 'Reactions' } }, ...m.reactions.map((r) => h('button', {
      class: ['reaction', r.mine && 'mine'], type: 'button',
      attrs: {
        'aria-pressed': String(!!r.mine), title: (r.by || []).map((fp) => this.nickOf(fp)).join(', '),
        'aria-label': `${r.emoji} ${r.count}${r.mine ? ', including you' : ''}`,
      },
      on: { click: () => this.react(m, r.emoji) },
    }, h('span', { class: 'reaction-emoji', text: r.emoji }), h('span', { class: 'reaction-count', text: String(r.count) }))));
  }

  // actions are a message's buttons: react, reply, and for its author
  // (or a manager) edit and delete.
  actions(m) {
    const btn = (name, label, fn) => h('button', { class: 'icon-btn small', type: 'button', attrs: { 'aria-label': label, title: label }, on: { click: fn } }, icon(name));
    return h('div', { class: 'msg-actions', attrs: { role: 'toolbar', 'aria-label': 'Message actions' } },
      ...REACTIONS.map((e) => h('button', {
        class: 'react-quick', type: 'button', text: e, attrs: { 'aria-label': 'React with ' + e, title: 'React with ' + e },
        on: { click: () => this.react(m, e) },
      })),
      btn('reply', 'Reply', () => this.acts.reply(m)),
      m.own && !m.file ? btn('edit', 'Edit', () => this.acts.edit(m)) : null,
      m.own || this.acts.canModerate() ? btn('trash', 'Delete', () => this.acts.del(m)) : null);
  }

  stateLine(st, pending) {
    const where = this.hasHosts() ? 'host' : 'member node';
    switch (st.state) {
      case 'sending':
        return h('div', { class: 'msg-state sending' }, icon('clock'), 'Sending…');
      case 'error':
        return h('div', { class: 'msg-state failed', attrs: { role: 'alert' } }, icon('warning'),
          h('span', { text: 'Not sent: ' + st.reason }),
          pending ? h('button', { class: 'link', type: 'button', text: 'Retry', on: { click: () => emit('retry', { group: this.group, pending }) } }) : null,
          pending ? h('button', { class: 'link', type: 'button', text: 'Discard', on: { click: () => this.dropPending(pending) } }) : null);
      case 'pending':
        return h('div', { class: 'msg-state warn', attrs: { title: st.reason || '' } }, icon('clock'),
          h('span', { text: `Waiting for a ${where}: this node keeps it and keeps trying` + (st.reason ? ` (${st.reason})` : '') }));
      case 'failed':
        return h('div', { class: 'msg-state failed', attrs: { role: 'alert' } }, icon('warning'),
          h('span', { text: 'Not delivered: ' + (st.reason || 'every host refused it') }));
      default:
        return h('div', { class: 'msg-state sent' }, icon(st.count ? 'checks' : 'check'), this.storedText(st));
    }
  }

  storedText(st) {
    const where = this.hasHosts() ? 'host' : 'member node';
    return st.count ? `Stored by ${st.count} ${where}${st.count > 1 ? 's' : ''}` : 'Stored';
  }

  hasHosts() {
    const e = state.inbox.get(this.group);
    return !!(e && e.group.hosts && e.group.hosts.length);
  }

  // pendingIDs are the own messages shown as waiting for a host.
  pendingIDs() {
    return this.items.filter((m) => m.own && (sendStates.get(m.id) || fromListing(m) || {}).state === 'pending').map((m) => m.id);
  }

  // updateDelivery takes the node's outbox: what is no longer in it was
  // stored; what failed says why.
  updateDelivery(outbox, ids) {
    const by = new Map(outbox.map((e) => [e.id, e]));
    let changed = false;
    for (const id of ids) {
      const e = by.get(id);
      const cur = sendStates.get(id) || {};
      const next = !e ? { state: 'stored', count: 0, reason: '' } : { state: e.state, count: 0, reason: e.reason || '' };
      if (cur.state !== next.state || cur.reason !== next.reason) {
        sendStates.set(id, next);
        changed = true;
      }
    }
    if (changed) this.render('anchor');
  }

  notice(m) {
    const kind = m.kind || 'notice';
    const warn = kind === 'split' || kind === 'equivocation' || kind === 'rejection' || kind === 'gap';
    return h('li', { class: ['notice', 'notice-' + kind, warn && 'warn'], dataset: { id: m.id }, attrs: { role: warn ? 'alert' : null } },
      icon(warn ? 'warning' : 'info'),
      h('span', { class: 'notice-text', attrs: { dir: 'auto' }, text: m.text || kind }),
      h('time', { text: fmt.time(new Date(m.sent)), attrs: { datetime: m.sent, title: fmt.fullTime(new Date(m.sent)) } }));
  }

  nickOf(fp) {
    const c = this.members && this.members.find((x) => x.fingerprint === fp);
    return c ? c.nick : fmt.shortFP(fp);
  }
}

// FLAGS explain the marks the node puts on messages it shows with a
// reservation (issue 13).
const FLAGS = {
  sent_in_future: 'Its sent time lies in the future: placed by when it arrived',
  sent_before_join: 'Its sent time is before its author joined: placed after what it answers',
  unseen_by_remover: 'Sent around its author\'s removal; members who learnt of the removal first refuse it',
  not_delivered_removed: 'Not delivered: you were removed before the manager saw it',
};

// msCursor is the start of the positions of a millisecond (16 hex
// digits of the sent time, as message positions begin).
function msCursor(d) {
  return BigInt(d.getTime()).toString(16).padStart(16, '0');
}

// isShown: messages people wrote (others are notices).
function isShown(m) {
  return m.kind === 'text' || m.kind === 'direct' || m.kind === 'reply' || m.kind === 'file';
}

// refKey changes when an edit, a delete or a reaction changes m.
function refKey(m) {
  return [m.edited_at || '', m.deleted ? 'd' : '', (m.reactions || []).map((r) => r.emoji + r.count + (r.mine ? '*' : '')).join(','),
    m.quote ? (m.quote.deleted ? 'qd' : 'q') + (m.quote.text || '').length : ''].join(':');
}

function deletedText(m) {
  if (m.deleted_by && m.deleted_by !== m.author) return 'This message was deleted by a manager';
  return m.own ? 'You deleted this message' : 'This message was deleted';
}

function continues(prev, m) {
  if (!prev || !isShown(prev) || !isShown(m) || prev.own !== m.own || prev.kind !== m.kind) return false;
  if (!m.own && prev.author !== m.author) return false;
  const a = new Date(prev.sent);
  const b = new Date(m.sent);
  return b - a < RUN_GAP && fmt.dayKey(a) === fmt.dayKey(b);
}

function messageLabel(m, verified) {
  if (!isShown(m)) return null;
  const who = m.own ? 'You' : (m.nick || 'unknown') + (verified ? ' (verified)' : '');
  return `${who}${m.kind === 'direct' ? ', privately' : ''}${m.kind === 'reply' ? ', replying' : ''}${m.edited ? ', edited' : ''}${m.deleted ? ', deleted' : ''}, ${fmt.time(new Date(m.sent))}`;
}
