/**
 * The status page itself: one HTML document with its CSS and a few lines of plain JS that poll
 * `status.json` every second and draw one lane per destination with two inline-SVG charts.
 * Kept as a string so the build has no asset step and the page needs nothing from outside.
 */

/** The HTML `/status` serves. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reseq status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; background: #f6f7f9; color: #1d2330; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  #meta { color: #5b6475; margin-bottom: 1rem; }
  #meta.stale { color: #b3261e; }
  .lane { background: #fff; border: 1px solid #d8dce3; border-left: 6px solid #2e7d32; border-radius: 6px;
    padding: .75rem 1rem; margin-bottom: .75rem; display: grid; grid-template-columns: 16rem 1fr 1fr; gap: 1rem; }
  .lane.blocked { border-left-color: #b3261e; }
  .lane.paused { border-left-color: #b26a00; }
  .name { font-weight: 600; font-size: 1.05rem; }
  .state { font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; color: #2e7d32; }
  .lane.blocked .state { color: #b3261e; }
  .lane.paused .state { color: #b26a00; }
  dl { display: grid; grid-template-columns: auto auto; gap: 0 .75rem; margin: .4rem 0 0; }
  dt { color: #5b6475; } dd { margin: 0; font-variant-numeric: tabular-nums; text-align: right; }
  .chart { font-size: .8rem; color: #5b6475; }
  svg { width: 100%; height: 70px; background: #fafbfc; border: 1px solid #eceef2; }
  polyline { fill: none; stroke-width: 1.5; }
  .tp polyline { stroke: #1565c0; } .lat polyline { stroke: #6a1b9a; }
</style>
</head>
<body>
<h1>reseq status</h1>
<div id="meta">loading…</div>
<div id="lanes"></div>
<script>
(() => {
  const token = new URLSearchParams(location.search).get('token');
  const url = 'status.json' + (token ? '?token=' + encodeURIComponent(token) : '');
  const lanes = document.getElementById('lanes');
  const meta = document.getElementById('meta');
  const FIELDS = [['delivered', 'delivered'], ['buffered', 'buffered'], ['inFlight', 'in flight'], ['lag', 'lag'],
    ['deadLettered', 'dead-lettered'], ['blocked', 'blocked'], ['activeSender', 'sender']];
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svgNs = 'http://www.w3.org/2000/svg';
  function chart(cls, label) {
    const box = el('div', 'chart ' + cls);
    const title = el('div', 'title', label);
    const svg = document.createElementNS(svgNs, 'svg');
    svg.setAttribute('viewBox', '0 0 300 70');
    svg.setAttribute('preserveAspectRatio', 'none');
    const line = document.createElementNS(svgNs, 'polyline');
    svg.appendChild(line);
    box.append(title, svg);
    return { box, title, line, label };
  }
  function draw(c, values, unit) {
    if (values.length === 1) values = [values[0], values[0]];
    const max = Math.max(1, ...values.filter((v) => v !== null));
    const n = Math.max(values.length - 1, 1);
    const pts = values.map((v, i) => (i / n * 300).toFixed(1) + ',' + (68 - (v ?? 0) / max * 64).toFixed(1));
    c.line.setAttribute('points', pts.join(' '));
    const last = values.length ? values[values.length - 1] : null;
    c.title.textContent = c.label + ': ' + (last === null ? '–' : last.toFixed(unit === 'ms' ? 0 : 1) + ' ' + unit)
      + ' (max ' + max.toFixed(unit === 'ms' ? 0 : 1) + ')';
  }
  const views = new Map();
  function lane(name) {
    let v = views.get(name);
    if (v) return v;
    const root = el('section', 'lane');
    root.dataset.destination = name;
    const info = el('div');
    const state = el('div', 'state');
    const dl = el('dl');
    const cells = {};
    for (const [key, label] of FIELDS) {
      dl.append(el('dt', '', label));
      cells[key] = dl.appendChild(el('dd', key));
    }
    info.append(el('div', 'name', name), state, dl);
    const tp = chart('tp', 'deliveries/s');
    const lat = chart('lat', 'latency');
    root.append(info, tp.box, lat.box);
    lanes.appendChild(root);
    v = { root, state, cells, tp, lat };
    views.set(name, v);
    return v;
  }
  function render(data) {
    for (const [name, s] of Object.entries(data.destinations)) {
      const v = lane(name);
      v.root.classList.toggle('blocked', s.blocked);
      v.root.classList.toggle('paused', !!s.paused);
      v.state.textContent = s.blocked ? 'blocked at ' + s.blockedAt : s.paused ? 'paused' : 'flowing';
      v.cells.delivered.textContent = s.delivered + ' / ' + s.assigned;
      v.cells.buffered.textContent = s.buffered + (s.pendingResults ? ' (+' + s.pendingResults + ' in stream)' : '');
      v.cells.inFlight.textContent = s.inFlight;
      v.cells.lag.textContent = s.lag + (typeof s.lagSeconds === 'number' ? ' (' + s.lagSeconds.toFixed(1) + ' s)' : '');
      v.cells.deadLettered.textContent = s.deadLettered;
      v.cells.blocked.textContent = s.blocked ? 'yes, at ' + s.blockedAt : 'no';
      v.cells.activeSender.textContent = s.activeSender === null ? 'none'
        : s.activeSender === data.senderId ? 'this one' : s.activeSender;
      draw(v.tp, data.history.map((h) => h.lanes[name]?.throughput ?? 0), '/s');
      draw(v.lat, data.history.map((h) => h.lanes[name]?.latencyMs ?? null), 'ms');
    }
    meta.className = '';
    meta.textContent = 'updated ' + new Date(data.at ?? Date.now()).toLocaleTimeString()
      + ' · ' + Object.keys(data.destinations).length + ' destinations · last ' + data.history.length + ' s';
  }
  async function poll() {
    try {
      const res = await fetch(url, { cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      render(await res.json());
    } catch (err) {
      meta.className = 'stale';
      meta.textContent = 'cannot refresh: ' + err.message;
    }
    setTimeout(poll, 1000);
  }
  poll();
})();
</script>
</body>
</html>
`;
