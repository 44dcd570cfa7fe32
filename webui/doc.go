// Package webui is meshnode's chat app: a web page the daemon serves on
// its control address (loopback by default), for people who run a node in
// the background and want a window to live in.
//
// # What is served
//
// The assets are embedded (go:embed assets): index.html, one stylesheet
// and plain ES modules, loaded by the browser as they are. There is no
// build step, no Node.js, no framework and no vendored library: the app
// is small enough that the DOM API, fetch and EventSource do the work,
// and every line that reaches the browser is the line in this
// repository. The invite's QR code is drawn by the daemon (a PNG from
// github.com/skip2/go-qrcode), so the page needs no QR library and no
// data: URLs. Nothing is fetched from anywhere else: no CDN, no web
// fonts, no link previews, no remote images (they would tell a third
// party when someone reads what).
//
// The modules: main.js (login, shell, routing, the event stream),
// api.js (the daemon's API), state.js, dom.js (building elements without
// HTML strings), timeline.js (the message window), conversation.js,
// members.js, dialogs.js, chatlist.js, contacts.js, nodeview.js,
// format.js, icons.js and perf.js (timings the benchmark reads).
//
// # Logging in
//
// `meshnode ui` asks the daemon (with the API token) for a one-time
// login URL, http://127.0.0.1:PORT/login#SECRET. The secret travels in
// the fragment, which browsers never send to a server; the page posts it
// to /ui/login, which spends it (once, within LoginTTL) for a session:
// a random ID in an HttpOnly, SameSite=Strict cookie named after the port
// (two daemons on one machine keep their sessions apart). Sessions live
// in the daemon's memory only; secrets and session IDs are kept as
// SHA-256 digests.
//
// # Checks of every browser request
//
// Requests without an Authorization header come here (the CLI's bearer
// token path is unchanged):
//
//   - Host must be localhost or an IP literal, with the port the request
//     came in on: a DNS-rebinding page reaches the daemon under a name of
//     its own, and is refused (403 bad_origin) before anything else.
//   - /v1/ API calls need a live session; a Sec-Fetch-Site other than
//     same-origin is refused; state-changing methods also need Origin
//     equal to this origin and the session's CSRF token in X-CSRF-Token
//     (from GET /v1/ui/session, readable by this origin only).
//   - Every answer carries a strict Content-Security-Policy
//     (ContentSecurityPolicy: default-src 'self', no inline script or
//     style, frame-ancestors 'none', and Trusted Types with no policy, so
//     no string can reach an HTML or script sink), nosniff, no referrer,
//     and cross-origin isolation headers.
//
// A browser session cannot mint login URLs (only the API token can).
//
// # Text is text
//
// The page builds its interface with dom.js: text goes in as text nodes,
// attributes are set one by one (event-handler attributes are refused)
// and links only point to fragments, same-origin paths or http(s) URLs.
// Message bodies, nicks and group names are isolated runs of text
// (<bdi>, dir=auto), so bidi overrides cannot reorder the interface;
// long lines wrap and long messages fold. Only http(s) URLs in messages
// become links, opened in a new tab without referrer or opener.
//
// # Live updates and paging
//
// The page follows GET /v1/events (Server-Sent Events: new messages of
// every group with their positions, read markers, catch-up progress,
// changes of the list of groups). A conversation keeps a window of at
// most WINDOW (300) messages, pages of 50 read from /history before or
// after a position as the reader scrolls, the far side dropped: the page
// holds the same few hundred messages whatever the history's length.
//
// The browser tests (*_browser_test.go) drive headless Chromium against
// real daemons; BenchmarkWebApp measures opening a 10,000-message group,
// cross-page delivery and the heap after scrolling it all.
package webui
