// Timings the page keeps about itself, read by the benchmark through
// window.meshnodePerf (bounded; nothing leaves the page).
const MAX = 2000;

const data = { opens: [], rendered: [], sent: [] };

function push(list, v) {
  list.push(v);
  if (list.length > MAX) list.splice(0, list.length - MAX);
}

export const perf = {
  // clicked marks the start of opening a conversation.
  clicked(group) {
    performance.mark('open-start:' + group);
  },
  // opened measures from the click to the latest page on screen.
  opened(group, count, parts) {
    const start = 'open-start:' + group;
    if (performance.getEntriesByName(start).length === 0) return;
    const m = performance.measure('open:' + group, start);
    performance.clearMarks(start);
    push(data.opens, { group, ms: m.duration, count, ...parts });
  },
  // rendered records when a live message was put on screen (wall clock).
  rendered(m) {
    push(data.rendered, { id: m.id, text: (m.text || '').slice(0, 64), at: performance.timeOrigin + performance.now() });
  },
  // sent records when a message was submitted (wall clock).
  sent(text) {
    push(data.sent, { text: text.slice(0, 64), at: performance.timeOrigin + performance.now() });
  },
};

window.meshnodePerf = data;
