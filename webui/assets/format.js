// Formatting of times, names and message text. Text is always inserted
// as text nodes; only http(s) URLs become links, and they leave nothing
// behind them (no referrer, no opener) and fetch nothing by themselves:
// no previews, no remote images.
import { h } from './dom.js';

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const shortDayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

export const time = (d) => timeFmt.format(d);
export const fullTime = (d) => fullFmt.format(d);

function startOfDay(d) {
  const x = new Date(d);
  x.setHours(0, 0, 0, 0);
  return x;
}

export function dayKey(d) {
  const x = startOfDay(d);
  return x.getFullYear() * 10000 + (x.getMonth() + 1) * 100 + x.getDate();
}

export function dayLabel(d) {
  const days = Math.round((startOfDay(new Date()) - startOfDay(d)) / 86400000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  if (days < 7 && days > 0) return dayFmt.format(d);
  return dateFmt.format(d);
}

// shortWhen is the time of a list entry: time today, weekday this week,
// date before.
export function shortWhen(d) {
  const days = Math.round((startOfDay(new Date()) - startOfDay(d)) / 86400000);
  if (days === 0) return time(d);
  if (days < 7 && days > 0) return shortDayFmt.format(d);
  return dateFmt.format(d);
}

export function ago(d) {
  const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  if (s < 86400) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}

export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

// hue is a stable colour for a key (a fingerprint or group ID).
export function hue(key) {
  let x = 2166136261;
  for (let i = 0; i < key.length; i++) x = Math.imul(x ^ key.charCodeAt(i), 16777619);
  return (x >>> 0) % 360;
}

// initials of a display name, by grapheme (emoji stay whole).
export function initials(name) {
  const words = (name || '?').trim().split(/\s+/).filter(Boolean);
  const seg = (s) => {
    if (typeof Intl.Segmenter === 'function') {
      for (const { segment } of new Intl.Segmenter().segment(s)) return segment;
    }
    return s[0] || '?';
  };
  const letters = words.length > 1 ? seg(words[0]) + seg(words[1]) : seg(words[0] || '?');
  return letters.toUpperCase();
}

export function avatar(name, key, cls = '') {
  return h('span', { class: ['avatar', cls], vars: { '--hue': hue(key || name || '') }, attrs: { 'aria-hidden': 'true' } },
    h('bdi', { text: initials(name) }));
}

// shortFP is the first groups of a fingerprint, for tight places.
export const shortFP = (fp) => (fp || '').split('-').slice(0, 2).join('-');

// name is a display name as an isolated run of text: a nick with
// right-to-left overrides cannot reorder what is around it.
export function name(text, cls = 'nick') {
  return h('bdi', { class: cls, text: text || 'unknown' });
}

const urlRe = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const trailing = /[.,;:!?)\]}'"]+$/;

// LONG_RUN is the longest run of text without a break opportunity that
// the page hands the browser's line breaker: a hostile 64 KiB word would
// otherwise take it seconds to lay out. Longer runs get <wbr>s, which
// add no text.
const LONG_RUN = 48;
const longRun = new RegExp(`\\S{${LONG_RUN + 1},}`, 'g');

// appendText adds text to el, breakable within long runs.
function appendText(el, text) {
  let last = 0;
  for (const m of text.matchAll(longRun)) {
    el.append(document.createTextNode(text.slice(last, m.index)));
    const run = m[0];
    for (let i = 0; i < run.length; i += LONG_RUN) {
      if (i > 0) el.append(document.createElement('wbr'));
      el.append(document.createTextNode(run.slice(i, i + LONG_RUN)));
    }
    last = m.index + run.length;
  }
  el.append(document.createTextNode(text.slice(last)));
}

// messageText builds a message body: text nodes, with http(s) URLs as
// links that open in a new tab without a referrer. Nothing else (no
// markup, no javascript: or data: links) is interpreted.
export function messageText(text) {
  const body = h('div', { class: 'text', attrs: { dir: 'auto' } });
  let last = 0;
  for (const m of text.matchAll(urlRe)) {
    let url = m[0];
    const tail = url.match(trailing);
    if (tail) url = url.slice(0, -tail[0].length);
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      continue;
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') continue;
    appendText(body, text.slice(last, m.index));
    const a = h('a', { attrs: { href: parsed.href, target: '_blank', rel: 'noopener noreferrer nofollow', referrerpolicy: 'no-referrer' } });
    appendText(a, url);
    body.append(a);
    last = m.index + url.length;
  }
  appendText(body, text.slice(last));
  return body;
}

// preview is a one-line summary of a message for the chat list.
export function preview(m) {
  if (!m) return '';
  const text = (m.text || '').replace(/\s+/g, ' ').trim().slice(0, 160);
  if (m.deleted) return (m.own ? 'You' : m.nick) + ': message deleted';
  switch (m.kind) {
    case 'direct': return (m.own ? 'You' : m.nick) + ' (private): ' + text;
    case 'text': case 'reply': return (m.own ? 'You' : m.nick) + ': ' + text;
    case 'file': return (m.own ? 'You' : m.nick) + ': ' + (m.file ? m.file.name : 'a file');
    default: return text;
  }
}
