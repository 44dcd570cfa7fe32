// DOM building without HTML strings. Every piece of text goes in as a
// text node; attributes are set one by one (event handler attributes are
// refused) and links only ever point to http(s) URLs. The page's CSP
// enforces Trusted Types with no policy, so an HTML sink would throw
// anyway: this module is the only way the app builds its interface.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h(tag, props, ...children): props may hold class, text, attrs (an
// object), dataset, on (event handlers), style vars (vars: {'--x': v}),
// and DOM properties (value, checked, disabled, hidden, type ...).
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

function apply(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false && k !== 'checked' && k !== 'disabled' && k !== 'hidden') continue;
    switch (k) {
      case 'class':
        el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
        break;
      case 'text':
        el.textContent = String(v);
        break;
      case 'attrs':
        for (const [a, av] of Object.entries(v)) setAttr(el, a, av);
        break;
      case 'dataset':
        Object.assign(el.dataset, v);
        break;
      case 'on':
        for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
        break;
      case 'vars':
        for (const [name, val] of Object.entries(v)) el.style.setProperty(name, String(val));
        break;
      default:
        el[k] = v;
    }
  }
}

export function setAttr(el, name, value) {
  if (value === undefined || value === null || value === false) {
    el.removeAttribute(name);
    return;
  }
  const n = name.toLowerCase();
  if (n.startsWith('on') || n === 'srcdoc' || n === 'style') throw new Error('refused attribute ' + name);
  if ((n === 'href' || n === 'src' || n === 'action' || n === 'formaction') && !safeURL(String(value))) {
    throw new Error('refused URL in ' + name);
  }
  el.setAttribute(name, value === true ? '' : String(value));
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// safeURL accepts fragments, same-origin paths and http(s) URLs only:
// never javascript:, data:, blob: or anything else.
export function safeURL(s) {
  if (s.startsWith('#')) return true;
  if (s.startsWith('/') && !s.startsWith('//') && !s.startsWith('/\\')) return true;
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.toLowerCase().startsWith('on')) throw new Error('refused attribute ' + k);
    el.setAttribute(k, String(v));
  }
  for (const c of children) el.append(c);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// reconcile makes container's children the elements of entries, in
// order, reusing the element of each key from the previous call (cache)
// and building the others. It returns the new cache. Every element used
// is placed before `ref`, so what is left from `ref` on is unused.
export function reconcile(container, entries, cache) {
  const next = new Map();
  let ref = container.firstChild;
  for (const e of entries) {
    let el = cache.get(e.key);
    if (!el || next.has(e.key)) el = e.build();
    next.set(e.key, el);
    if (el === ref) ref = ref.nextSibling;
    else container.insertBefore(el, ref);
  }
  while (ref) {
    const n = ref.nextSibling;
    ref.remove();
    ref = n;
  }
  return next;
}

// announce speaks text to screen readers through the page's live region.
export function announce(text) {
  const region = document.getElementById('live');
  if (!region) return;
  region.textContent = '';
  // A new text node in a cleared region is announced even if it repeats.
  setTimeout(() => { region.textContent = text; }, 30);
}
