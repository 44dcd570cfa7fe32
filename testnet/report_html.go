package testnet

// reportHTML is report.html's template (reportData).
const reportHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>meshnode testnet: {{.Scenario.Name}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1.5em 2em;max-width:1400px;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
table.params td,table.params th{text-align:left}table.params td:last-child{color:#666}
.wide{overflow-x:auto}
figure{margin:1.2em 0 2em 0}figure svg{width:100%;height:auto;background:#fff;border:1px solid #ddd}
figcaption{color:#444;font-size:14px;max-width:70em}
.legend{font-size:14px;margin:.3em 0}.legend span{margin-right:1.5em;white-space:nowrap}
.axis{stroke:#999}.grid{stroke:#eee}svg text{font-size:14px;fill:#444}
.empty{fill:#888;font-size:18px}
pre{background:#f8f8f8;padding:1em;overflow:auto}
dl{font-size:14px}dt{font-weight:600;margin-top:.4em}dd{margin-left:1.5em}
.note{color:#666;font-size:14px}
</style></head><body>
<h1>meshnode testnet — {{.Scenario.Name}}</h1>
<p>{{.Schedule.Groups}} group(s), {{.Schedule.Messages}} messages, {{.Schedule.Churned}} churning members ({{.Schedule.Offlines}} offline periods), {{.Schedule.Partitions}} partition(s){{if .Scenario.ManagedGroups}}, {{.Schedule.Removals}} removal(s) and {{.Schedule.Rotations}} rotation(s){{end}} in the first run (seed {{.Scenario.Seed}}){{if gt .Runs 1}}; {{.Runs}} runs in all{{end}}.
Run {{if eq .Mode "processes"}}as real processes{{else}}in memory{{end}} on {{.Machine.CPUs}} CPUs ({{.Machine.GoVersion}}, load average {{load .Load}}) in {{secs .Elapsed}}, started {{.Started.Format "2006-01-02 15:04 UTC"}}{{if .PeakRSS}}; peak resident memory {{fbytes .PeakRSS}} ({{fbytes .PeakRSSPerNode}} per node){{if .MemoryLimit}} under a soft limit of {{fbytes .MemoryLimit}}{{end}}{{end}}.</p>

<h2>Method</h2>
<p>Every node is a real meshnode node — the production relay, fetch, sync, store and member code, never a model of it —
{{if eq .Mode "processes"}}each a <code>meshnode run</code> daemon in its own process with its own Badger store on disk, talking TCP over
loopback, and driven through its control API by a per-node agent that follows the schedule and logs what the node shows;
{{else}}all in one process, each with in-memory stores, over libp2p's in-memory network (mocknet) with the link model below;{{end}}
the groups are formed through the same API a person uses (create, invite, join{{if .Scenario.ManagedGroups}}, key packages and welcomes{{end}}).
A seed draws the schedule — group memberships, churn, every send, partitions — and every strategy runs that same schedule in
wall-clock time on fresh nodes. Each message is also published on a plain gossipsub baseline over the same connections. A
pair is a (message, recipient) with the recipient a member of the group other than the author; delivery, latency and gaps
are measured on pairs from what each recipient's node shows, eventual delivery from the members' databases at the end.
Latencies are wall-clock on a shared machine: its load adds to them. {{if gt .Runs 1}}The scenario ran {{.Runs}} times on seeds
derived from the first; each figure is the mean over the runs ± the half-width of its 95% confidence interval (Student's t,
n−1 degrees of freedom){{else}}One run: there is no spread; run with <code>--runs 5</code> for confidence intervals{{end}}.</p>

<h2>Parameters</h2>
<table class="params"><tr><th>parameter</th><th>value</th><th>meaning</th></tr>
{{range .Params}}<tr><td>{{.Name}}</td><td>{{.Value}}</td><td>{{.Meaning}}</td></tr>
{{end}}</table>

<h2>Summary</h2>
<div class="wide"><table><tr><th>strategy</th><th>nodes</th><th>delivery</th><th>eventual</th><th>latency p50</th><th>p90</th><th>p99</th><th>catch-up p50 / p99</th><th>duplicates shown; stored per message</th><th>gaps detected / filled / open; notices</th><th>bytes per node</th><th>storage per host</th><th>memory per node</th></tr>
{{range .Rows}}<tr><td>{{.Strategy}}</td><td>{{.Nodes}}</td><td>{{.Delivery}}</td><td>{{.Eventual}}</td><td>{{.P50}}</td><td>{{.P90}}</td><td>{{.P99}}</td><td>{{.CatchUp}}</td><td>{{.Dups}}</td><td>{{.Gaps}}</td><td>{{.Bytes}}</td><td>{{.Storage}}</td><td>{{.Memory}}</td></tr>
{{end}}</table></div>
<dl>
<dt>delivery</dt><dd>of the pairs whose recipient stayed online from the send until the deadline ({{dur .Scenario.Deadline}}), the fraction its node showed within the deadline.</dd>
<dt>eventual</dt><dd>of every pair, the fraction held in the recipient's message database after the final phase (everyone back online, partitions healed, catch-up for up to {{dur .Scenario.CatchUp}}).</dd>
<dt>latency</dt><dd>send → shown by the recipient's node, over the pairs delivered within the deadline; percentiles of the run's pairs.</dd>
<dt>catch-up</dt><dd>from a member coming back online during the traffic until it had shown every message it missed; returns with nothing missed are not counted, incomplete ones are counted apart.</dd>
<dt>duplicates</dt><dd>shown: a message shown twice to a member (must be 0); stored: envelopes a node received again after storing them, per message sent.</dd>
<dt>gaps</dt><dd>detected: messages shown while an earlier one of the same author was missing; filled: shown after a later one; open: never delivered; notices: gap notices the nodes showed.</dd>
<dt>bytes per node</dt><dd>application bytes sent plus received per node from the start of the traffic (mean of all nodes; of members; of infrastructure nodes).</dd>
<dt>storage per host</dt><dd>the Badger store usage of each node a group names as host, mean (max).</dd>
<dt>memory per node</dt><dd>{{if eq .Mode "processes"}}resident memory (RSS) of each daemon after setup, mean{{else}}Go heap and stacks after setup, divided by the nodes{{end}}.</dd>
</dl>

{{if .Scenario.BaselineOn}}<h2>The gossipsub baseline</h2>
<p>The baseline is what plain gossipsub does over the very same nodes, links and connections: a second gossipsub router on every
node (its own protocol ID, meshnode's pubsub options), one topic per group subscribed by the group's members <em>and</em> the nodes
the group names as hosts, and each message published there by its author at the moment meshnode sends it, as 200-odd bytes of
clear text. Members connect only to their groups' hosts, so a group's connections form a star around its hosts; the hosts keep
every member in their gossipsub mesh (with gossipsub's default degree of 6–12 most members would only hear of messages through
gossip at the 1 s heartbeat), so they forward every message to every member, as meshnode's hosts do. Loss-free and churn-free it
delivers everything; its latency is the network's own: two hops through the host. Meshnode differs by its own costs — sealing and
signing, relaying to the hosts over a stream and waiting for their durable commit, storing, decrypting, checking and recording —
and by what the baseline lacks: storage, catch-up after being offline, gap detection, encryption. Mesh coverage: when the traffic
started, the fraction of (host, group, connected member) with the member in the host's mesh.</p>
<div class="wide"><table><tr><th>strategy</th><th>baseline delivery</th><th>baseline p50</th><th>baseline p99</th><th>meshnode p99 / baseline p99</th><th>mesh coverage</th><th>baseline bytes per node</th></tr>
{{range .Rows}}{{if .HasBaseline}}<tr><td>{{.Strategy}}</td><td>{{.BaseDelivery}}</td><td>{{.BaseP50}}</td><td>{{.BaseP99}}</td><td>{{.Ratio}}</td><td>{{.Coverage}}</td><td>{{.BaseBytes}}</td></tr>
{{end}}{{end}}</table></div>{{end}}

{{define "plot"}}<figure><h3>{{.Title}}</h3>
<svg viewBox="0 0 {{.W}} {{.H}}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{{.Title}}">
{{$p := .}}{{if .Empty}}<text class="empty" x="{{.L}}" y="{{.T}}" dy="60">{{.Empty}}</text>{{else}}{{range .YTicks}}<line class="grid" x1="{{$p.L}}" x2="{{$p.R}}" y1="{{.Pos}}" y2="{{.Pos}}"/><text x="{{sub $p.L 8}}" y="{{.Pos}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>
{{end}}{{range .XTicks}}<line class="grid" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$p.T}}" y2="{{$p.B}}"/><text x="{{.Pos}}" y="{{$p.B}}" dy="20" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="{{.L}}" x2="{{.R}}" y1="{{.B}}" y2="{{.B}}"/><line class="axis" x1="{{.L}}" x2="{{.L}}" y1="{{.T}}" y2="{{.B}}"/>
<text x="{{.R}}" y="{{.H}}" dy="-6" text-anchor="end">{{.XLabel}}</text><text x="{{.L}}" y="{{.T}}" dx="6" dy="10">{{.YLabel}}</text>
{{range .Bands}}<polygon fill="{{.Colour}}" fill-opacity="0.15" stroke="none" points="{{.Points}}"/>
{{end}}{{range .Lines}}<polyline fill="none" stroke="{{.Colour}}" stroke-width="2.5"{{if .Dashed}} stroke-dasharray="9,6"{{end}} points="{{.Points}}"><title>{{.Label}}</title></polyline>
{{end}}{{end}}</svg>
{{if not .Empty}}<div class="legend">{{range .Lines}}<span style="color:{{.Colour}}">{{if .Dashed}}╍╍{{else}}━━{{end}} {{.Label}}</span>{{end}}</div>{{end}}
<figcaption>{{.Caption}}</figcaption></figure>{{end}}

<h2>Latency</h2>
{{range .Latency}}{{template "plot" .}}{{end}}
<h2>Delivery over time</h2>
{{range .Delivery}}{{template "plot" .}}{{end}}
<h2>Cost and catch-up</h2>
{{range .Others}}{{template "plot" .}}{{end}}

{{if .Scenario.ManagedGroups}}<h2>Managed groups: removals, rotations, forward secrecy</h2>
<table><tr><th>strategy</th><th>rotations</th><th>removals</th><th>failed</th><th>key catch-up p50 / p90 / max (all members)</th><th>per member p50 / p90</th><th>checked after removal</th><th>forward-secrecy violations</th><th>old-epoch messages shown</th></tr>
{{range .Strategies}}{{$st := .Strategy}}{{with .Managed}}<tr><td>{{$st}}</td><td>{{.Rotations}}</td><td>{{.Removals}}</td><td>{{.Failed}}</td>
<td>{{pctile .KeyCatchUpMs .KeyCatchUpMs.P50}} / {{pctile .KeyCatchUpMs .KeyCatchUpMs.P90}} / {{pctile .KeyCatchUpMs .KeyCatchUpMs.Max}} ({{.KeyCatchUpMs.N}} operations, {{.KeyCatchUpIncomplete}} incomplete)</td>
<td>{{pctile .KeyCatchUpMemberMs .KeyCatchUpMemberMs.P50}} / {{pctile .KeyCatchUpMemberMs .KeyCatchUpMemberMs.P90}}</td>
<td>{{.ForwardSecrecy.Checked}}</td><td>{{.ForwardSecrecy.Violations}}</td><td>{{.ForwardSecrecy.OldEpochShown}}</td></tr>{{end}}
{{end}}</table>
<p>Every group is managed: its creator (the bot under the bot strategy) adds the members by key package and does the removals and
rotations; a removal rotates the keys. Key catch-up: from the manager finishing an operation (or, for a member offline then, from its
return) until the last remaining member's node accepted the new epoch's key. Delivery counts only members still in the group when a message is sent. A violation is a message of the
removal's epoch or later that the removed member shows or holds (must be 0); old-epoch messages are those sent after the removal by
a member whose node had not received the key update yet, which the removed member can still read.</p>
{{end}}

{{if .Validation}}<h2>Validation: in memory against real processes</h2>
<p>The same scenario ran in memory (A: mocknet, in-memory stores, the link model) and as real processes (B: one <code>meshnode run</code>
daemon per node with its store on disk, TCP over loopback, driven by agents through the control API). The differences below are what the
in-memory simulator does not reproduce — transport handshakes and encryption (Noise, yamux), the kernel's TCP, disk, separate processes
and, in processes mode, a member going offline is its daemon stopped and restarted (SIGTERM: it may still take in messages while it shuts down,
and it needs a moment to start again). Memory per node is not the same measure in both: Go heap and stacks per node of the one
in-memory process, against each daemon's whole resident memory (runtime, libp2p transports, Badger on disk). Values: mean ± half-width of the 95% confidence
interval; significance: Welch's t-test (n/a with one run per mode).</p>
<div class="wide"><table><tr><th>strategy</th><th>figure</th><th>in memory (A)</th><th>processes (B)</th><th>B − A</th><th>95% CI of B − A</th><th>relative</th><th>significance</th></tr>
{{range .Validation}}<tr><td>{{.Strategy}}</td><td>{{.Figure}}</td><td>{{estimate .A}}</td><td>{{estimate .B}}</td><td>{{num .Welch.Diff}}</td><td>{{ci .}}</td><td>{{rel .}}</td><td>{{sig .}}</td></tr>
{{end}}</table></div>{{end}}

<h2>Storage per hosting node</h2>
{{range .Strategies}}<h3>{{.Strategy}}</h3>{{if .Storage.PerHost}}<table><tr><th>node</th><th>role</th><th>envelopes</th><th>bytes</th><th>mailboxes</th></tr>
{{range .Storage.PerHost}}<tr><td>{{.Node}}</td><td>{{.Role}}</td><td>{{.Envelopes}}</td><td>{{fbytes .Bytes}}</td><td>{{.Mailboxes}}</td></tr>{{end}}</table>{{else}}<p class="note">n/a</p>{{end}}{{end}}
{{if .PerRun}}<h2>Runs</h2>
<table><tr><th>run</th><th>seed</th><th>messages</th><th>churning members</th>{{range .Strategies}}<th>{{.Strategy}}: delivery, p99</th>{{end}}</tr>
{{range $i, $r := .PerRun}}<tr><td>{{inc $i}}</td><td>{{$r.Seed}}</td><td>{{$r.Schedule.Messages}}</td><td>{{$r.Schedule.Churned}}</td>{{range $r.Strategies}}<td>{{pct .DeliveryRatio}}, {{pctile .LatencyMs .LatencyMs.P99}}</td>{{end}}</tr>
{{end}}</table>{{end}}
<h2>Scenario file</h2><pre>{{.ScenarioJSON}}</pre>
</body></html>
`
