// oathcube browse: one page over a cube's nights, classes, frames and similar skies.
//
// The page talks to its data through a "transport" with three calls, so that the same
// code runs as `oathcube browse` (HTTP requests to /api/<view>) and as a notebook widget
// (anywidget: messages to the kernel over the notebook's own connection):
//   json(view, params)  -> Promise of the answer's JSON (rejects with BrowseError)
//   url(view, params)   -> Promise of a URL an <img> can show (a blob: URL in a notebook)
//   href(view, params)  -> a link for downloads, or null where links cannot be made
// Every view and parameter is one of oathcube/browse/answers.py's ROUTES.

export class BrowseError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

export function httpTransport(base) {
  const href = (view, params) => `${base}${view}?${query(params)}`;
  return {
    async json(view, params) {
      const r = await fetch(href(view, params));
      let body;
      try { body = await r.json(); } catch (e) { throw new BrowseError(r.status, `${view}: answer is not JSON (${r.status})`); }
      if (!r.ok) throw new BrowseError(r.status, body.error || `${view}: ${r.status}`);
      return body;
    },
    async url(view, params) { return href(view, params); },
    href,
    release() {},
  };
}

export function widgetTransport(model) {
  // Replies reach every view of the widget (a notebook may show it twice): each view
  // numbers its requests under a tag of its own and takes only its replies.
  const tag = Math.random().toString(36).slice(2);
  let next = 0;
  const waiting = new Map();
  const onReply = (msg, buffers) => {
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.status !== 200) w.reject(new BrowseError(msg.status, msg.error));
    else w.resolve({ msg, buffers });
  };
  model.on("msg:custom", onReply);
  const call = (view, params) => new Promise((resolve, reject) => {
    const id = `${tag}:${++next}`;
    waiting.set(id, { resolve, reject });
    model.send({ id, view, params });
  });
  return {
    close() { model.off("msg:custom", onReply); },
    async json(view, params) { return (await call(view, params)).msg.json; },
    async url(view, params) {
      const { msg, buffers } = await call(view, params);
      return URL.createObjectURL(new Blob([buffers[0]], { type: msg.media_type }));
    },
    href() { return null; },
    release(url) { if (url && url.startsWith("blob:")) URL.revokeObjectURL(url); },
  };
}

// -- small helpers ---------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);
const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);
const utc = (ms) => new Date(ms).toISOString(); // as the answers write times: ms and Z

function lowerBound(arr, x) {
  let lo = 0, hi = arr.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}

function nearest(times, t) {
  const i = lowerBound(times, t);
  if (i <= 0) return 0;
  if (i >= times.length) return times.length - 1;
  return t - times[i - 1] <= times[i] - t ? i - 1 : i;
}

function classBadge(name, color) {
  return el("span", { class: "oc-class", style: `--c:${color || "#ccc"}` }, name || "unclassified");
}

// -- the page --------------------------------------------------------------------------

export function mount(root, transport, initial = {}, error = null, onState = null) {
  // nav and pending number the navigations and frame loads: an answer that comes back
  // after a later click was made is dropped, so the page shows what was clicked last.
  const s = { stations: [], station: null, nights: [], night: null, data: null, row: null, nav: 0, pending: 0 };
  root.innerHTML = "";
  const ui = {};
  ui.station = el("select", { "data-testid": "station", onchange: () => openStation(ui.station.value) });
  ui.start = el("input", { type: "date", "data-testid": "start", onchange: () => loadNights() });
  ui.end = el("input", { type: "date", "data-testid": "end", onchange: () => loadNights() });
  ui.klass = el("select", { "data-testid": "class-filter", onchange: () => loadNights() });
  ui.error = el("div", { class: "oc-error", "data-testid": "error", role: "alert" });
  ui.nightsBody = el("tbody");
  ui.nightsHead = el("tr");
  ui.title = el("h2", { "data-testid": "night-title" }, "—");
  ui.legend = el("div", { class: "oc-legend" });
  ui.timeline = el("canvas", { "data-testid": "timeline", height: 110 });
  ui.strip = el("canvas", { "data-testid": "class-strip", height: 14 });
  ui.keogram = el("canvas", { "data-testid": "keogram", height: 150 });
  ui.axis = el("canvas", { height: 18 });
  ui.cursor = el("div", { class: "oc-cursor", style: "display:none" });
  ui.plot = el("div", { class: "oc-plot", "data-testid": "plot" }, ui.timeline, ui.strip, ui.keogram, ui.axis, ui.cursor);
  ui.slider = el("input", { type: "range", class: "oc-slider", min: 0, max: 0, value: 0, "data-testid": "slider" });
  ui.note = el("div", { class: "oc-note", "data-testid": "note" });
  ui.freq = el("select", { "data-testid": "freq", onchange: () => s.night && openNight(s.night, s.row) });
  for (const f of ["auto", "1min", "2min", "5min", "10min", "15min", "30min", "1h"]) ui.freq.append(el("option", { value: f }, f));
  ui.csv = el("a", { "data-testid": "timeline-csv", download: "" }, "timeline CSV");
  ui.freqNote = el("span", { class: "oc-note", "data-testid": "freq-note" });
  ui.movieStart = el("input", { type: "text", "data-testid": "movie-start", title: "UTC start" });
  ui.movieEnd = el("input", { type: "text", "data-testid": "movie-end", title: "UTC end" });
  ui.movieFormat = el("select", { "data-testid": "movie-format" }, el("option", { value: "gif" }, "GIF"), el("option", { value: "mp4" }, "MP4"));
  ui.movie = el("a", { "data-testid": "movie", download: "" }, "movie");
  ui.frameImg = el("img", { class: "oc-big", alt: "frame", "data-testid": "frame-image" });
  ui.frameTime = el("b", { "data-testid": "frame-time" }, "—");
  ui.frameClass = el("span", { "data-testid": "frame-class" });
  ui.frameScore = el("b", { "data-testid": "frame-score" }, "—");
  ui.framePng = el("a", { "data-testid": "frame-png", download: "" }, "frame PNG");
  ui.neighbours = el("div", { class: "oc-neighbours", "data-testid": "neighbours" });
  ui.k = el("select", { "data-testid": "k" }, ...[6, 12, 24].map((k) => el("option", { value: k }, `${k}`)));
  ui.k.value = "12";
  ui.simClass = el("select", { "data-testid": "similar-class" });
  ui.similarButton = el("button", { "data-testid": "similar-button", onclick: () => findSimilar() }, "Similar skies");
  ui.similarNote = el("div", { class: "oc-note", "data-testid": "similar-note" });
  ui.hits = el("div", { class: "oc-hits", "data-testid": "hits" });

  for (const c of [ui.movieStart, ui.movieEnd, ui.movieFormat]) c.addEventListener("change", () => setMovieLink());
  ui.slider.addEventListener("input", () => showRow(Number(ui.slider.value), false));
  ui.slider.addEventListener("change", () => showRow(Number(ui.slider.value), true));
  ui.plot.addEventListener("click", (ev) => {
    if (!s.data) return;
    const box = ui.keogram.getBoundingClientRect();
    const t = s.t0 + ((ev.clientX - box.left) / box.width) * (s.t1 - s.t0);
    showRow(nearest(s.data.times, t), true);
  });
  for (const c of [ui.frameClass]) c.append(classBadge("", "#ccc"));

  root.append(el("div", { class: "oc-browse" },
    el("div", { class: "oc-bar" },
      el("h1", {}, "oathcube browse"),
      el("label", {}, "station", ui.station),
      el("label", {}, "nights from", ui.start),
      el("label", {}, "to", ui.end),
      el("label", {}, "with class", ui.klass)),
    ui.error,
    el("div", { class: "oc-main" },
      ui.nightsBox = el("div", { class: "oc-nights", "data-testid": "nights" },
        el("table", {}, el("thead", {}, ui.nightsHead), ui.nightsBody)),
      el("div", { class: "oc-night" },
        ui.title, ui.legend, ui.plot, ui.slider, ui.note,
        el("div", { class: "oc-downloads" },
          el("label", {}, "bins", ui.freq), ui.freqNote, ui.csv),
        el("div", { class: "oc-downloads" },
          el("span", {}, "movie from"), ui.movieStart, el("span", {}, "to"), ui.movieEnd, ui.movieFormat, ui.movie)),
      ui.framePanel = el("div", { class: "oc-frame", "data-testid": "frame-panel" },
        ui.frameImg,
        el("div", { class: "oc-info" },
          el("div", {}, "UTC ", ui.frameTime), el("div", {}, "class ", ui.frameClass, " score ", ui.frameScore),
          el("div", { class: "oc-note" }, "north up, east left, as the cube stores it; ", ui.framePng)),
        ui.neighbours,
        el("div", { class: "oc-downloads" }, ui.similarButton, el("label", {}, "k", ui.k), el("label", {}, "class", ui.simClass)),
        ui.similarNote, ui.hits))));

  // What the address asked for and could not be shown stays at the top until the user
  // does something; other messages last until the next answer.
  let sticky = error;
  const say = (err) => { ui.error.textContent = err ? (err.message || String(err)) : (sticky || ""); };
  for (const kind of ["click", "change", "keydown"]) root.addEventListener(kind, () => { sticky = null; }, true);
  const busy = (on) => root.firstChild.classList.toggle("oc-busy", on);
  const colorOf = (name) => {
    const i = s.data ? s.data.classes.indexOf(name) : -1;
    return i >= 0 ? s.data.colors[i] : "#ccc";
  };
  const notify = () => onState && onState({ station: s.station || "", night: s.night || "", time: s.row === null ? "" : utc(s.data.times[s.row]) });

  async function image(img, view, params) {
    const url = await transport.url(view, params);
    if (img.dataset.url) transport.release(img.dataset.url);
    img.dataset.url = url;
    img.src = url;
  }

  function link(a, view, params, name) {
    const h = transport.href(view, params);
    if (h) { a.href = h; a.onclick = null; return; }
    a.removeAttribute("href");
    a.onclick = async (ev) => {
      ev.preventDefault();
      try {
        const url = await transport.url(view, params);
        const tmp = el("a", { href: url, download: name });
        document.body.append(tmp); tmp.click(); tmp.remove();
        setTimeout(() => transport.release(url), 10000);
      } catch (e) { say(e); }
    };
  }

  async function start() {
    say(error);
    try {
      s.stations = await transport.json("stations", {});
    } catch (e) { say(e); return; }
    ui.station.innerHTML = "";
    for (const st of s.stations) ui.station.append(el("option", { value: st.station }, `${st.station} (${st.n_frames.toLocaleString("en")} frames)`));
    if (!s.stations.length) { say(error || "this cube has no station frames: oathcube ingest first"); return; }
    const first = s.stations.some((x) => x.station === initial.station) ? initial.station : s.stations[0].station;
    await openStation(first, initial.night, initial.time);
  }

  async function openStation(code, night = null, time = null) {
    s.station = code;
    ui.station.value = code;
    const st = s.stations.find((x) => x.station === code);
    if (st.error) { say(st.error); s.nights = []; ui.nightsBody.innerHTML = ""; return; }
    ui.klass.innerHTML = "";
    ui.simClass.innerHTML = "";
    ui.klass.append(el("option", { value: "" }, "any"));
    ui.simClass.append(el("option", { value: "" }, "any"));
    for (const c of st.classes) { ui.klass.append(el("option", { value: c }, c)); ui.simClass.append(el("option", { value: c }, c)); }
    ui.klass.disabled = ui.simClass.disabled = !st.classes.length;
    ui.start.value = ""; ui.end.value = "";
    await loadNights();
    const pick = night || (time ? null : (s.nights[0] && s.nights[0].night));
    if (pick || time) {
      let n = pick;
      if (!n && time) {
        try { n = (await transport.json("frame", { station: code, time })).night; } catch (e) { say(e); return; }
      }
      await openNight(n, null, time);
    }
  }

  async function loadNights() {
    const params = { station: s.station, start: ui.start.value, end: ui.end.value, class: ui.klass.value };
    try {
      s.nights = await transport.json("nights", params);
      say(null);
    } catch (e) { say(e); s.nights = []; }
    const byClass = ui.klass.value;
    ui.nightsHead.innerHTML = "";
    for (const h of ["night", "frames", "clear", "aurora", ...(byClass ? [byClass] : [])]) ui.nightsHead.append(el("th", {}, h));
    ui.nightsBody.innerHTML = "";
    for (const n of s.nights) {
      const tr = el("tr", { "data-testid": "night-row", dataset: { night: n.night }, onclick: () => openNight(n.night) },
        el("td", {}, n.night), el("td", {}, n.n_frames.toLocaleString("en")),
        el("td", {}, pct(n.clear_fraction)), el("td", {}, pct(n.aurora_occurrence)),
        ...(byClass ? [el("td", {}, `${n.n_class}`)] : []));
      if (n.night === s.night) tr.classList.add("oc-current");
      ui.nightsBody.append(tr);
    }
    if (!s.nights.length && !ui.error.textContent) ui.nightsBody.append(el("tr", {}, el("td", { colspan: 4 }, "no nights match")));
  }

  async function openNight(night, row = null, time = null) {
    const mine = ++s.nav;
    ui.framePanel.removeAttribute("data-shown");
    busy(true);
    let data;
    try {
      data = await transport.json("night", { station: s.station, night, freq: ui.freq.value });
      if (mine !== s.nav) return;
      say(null);
    } catch (e) { if (mine === s.nav) { say(e); busy(false); } return; }
    busy(false);
    s.data = data;
    s.night = night;
    for (const tr of ui.nightsBody.querySelectorAll("tr")) {
      tr.classList.toggle("oc-current", tr.dataset.night === night);
      // The picker scrolls (not the page) to the night shown, a year's list being long.
      if (tr.dataset.night === night) ui.nightsBox.scrollTop = tr.offsetTop - ui.nightsBox.clientHeight / 2;
    }
    const d = s.data;
    ui.title.textContent = `${d.station}, night of ${d.night} (${d.times.length.toLocaleString("en")} frames, ${d.first.slice(11, 16)}–${d.last.slice(11, 16)} UTC)${d.model ? ", model " + d.model : ", not classified"}`;
    ui.legend.innerHTML = "";
    d.classes.forEach((c, i) => ui.legend.append(el("span", { style: `--c:${d.colors[i]}` }, c)));
    s.t0 = d.times[0];
    s.t1 = d.times[d.times.length - 1] + d.cadence_ms;
    ui.slider.max = d.times.length - 1;
    const notes = [];
    if (!d.timeline) notes.push("no classified frames this night: no timeline");
    if (d.keogram_note) notes.push(`keogram: ${d.keogram_note}`);
    if (d.keogram_axis) notes.push(`keogram ${d.keogram_axis.axis} ${fmtAxis(d.keogram_axis.top)} (top) to ${fmtAxis(d.keogram_axis.bottom)} (bottom)`);
    ui.note.textContent = notes.join("; ");
    ui.freqNote.textContent = d.timeline ? `(${d.freq} bins)` : "";
    link(ui.csv, "timeline.csv", { station: d.station, night, freq: d.freq }, `timeline_${d.station}_${night}.csv`);
    await draw();
    if (mine !== s.nav) return;
    let r = row;
    if (r === null && time) r = nearest(d.times, Date.parse(time.endsWith("Z") ? time : time + "Z"));
    if (r === null) r = 0;
    await showRow(r, true);
  }

  const fmtAxis = (v) => (Number.isInteger(v) ? `${v}` : `${v.toFixed(1)}°`);

  async function draw() {
    const d = s.data;
    const W = Math.max(300, Math.round(ui.plot.clientWidth || 800));
    for (const c of [ui.timeline, ui.strip, ui.keogram, ui.axis]) c.width = W;
    const x = (t) => ((t - s.t0) / (s.t1 - s.t0)) * W;
    // Timeline: each bin's fractions stacked, in the classes' order (as `timeline` draws).
    const g = ui.timeline.getContext("2d");
    g.clearRect(0, 0, W, ui.timeline.height);
    const H = ui.timeline.height;
    if (d.timeline) {
      const tl = d.timeline;
      tl.start.forEach((b, j) => {
        let y = H;
        const x0 = Math.max(0, x(b)), x1 = Math.min(W, x(b + tl.step_ms));
        tl.classes.forEach((c, k) => {
          const h = tl.fraction[k][j] * H;
          if (h <= 0) return;
          g.fillStyle = colorOf(c);
          g.fillRect(x0, y - h, Math.max(1, x1 - x0 - 0.5), h);
          y -= h;
        });
      });
    }
    g.strokeStyle = "#bbb"; g.strokeRect(0.5, 0.5, W - 1, H - 1);
    // Class strip: one mark per frame.
    const sg = ui.strip.getContext("2d");
    sg.clearRect(0, 0, W, ui.strip.height);
    d.times.forEach((t, i) => {
      sg.fillStyle = d.class[i] >= 0 ? d.colors[d.class[i]] : "#fff";
      sg.fillRect(x(t), 0, Math.max(1, x(t + d.cadence_ms) - x(t)), ui.strip.height);
    });
    // Keogram: column i of the stored image at frame i's time.
    const kg = ui.keogram.getContext("2d");
    kg.fillStyle = "#fff"; kg.fillRect(0, 0, W, ui.keogram.height);
    if (d.keogram) {
      const img = new Image();
      await new Promise((ok, bad) => { img.onload = ok; img.onerror = bad; img.src = `data:image/png;base64,${d.keogram}`; });
      kg.imageSmoothingEnabled = false;
      d.times.forEach((t, i) => {
        kg.drawImage(img, i, 0, 1, img.height, x(t), 0, Math.max(1, x(t + d.cadence_ms) - x(t)), ui.keogram.height);
      });
    }
    // Time axis: UTC ticks at a round step.
    const ag = ui.axis.getContext("2d");
    ag.clearRect(0, 0, W, ui.axis.height);
    ag.fillStyle = "#333"; ag.font = "11px system-ui, sans-serif"; ag.textAlign = "center";
    const span = s.t1 - s.t0;
    const steps = [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3];
    const step = steps.find((v) => span / v <= 10) || 21600e3;
    for (let t = Math.ceil(s.t0 / step) * step; t <= s.t1; t += step) {
      ag.fillRect(x(t), 0, 1, 4);
      ag.fillText(hhmm(t), Math.min(W - 16, Math.max(16, x(t))), 15);
    }
  }

  async function showRow(i, load) {
    const d = s.data;
    if (!d) return;
    s.row = i;
    ui.slider.value = i;
    const t = d.times[i];
    ui.cursor.style.display = "";
    ui.cursor.style.left = `${(100 * (t + d.cadence_ms / 2 - s.t0)) / (s.t1 - s.t0)}%`;
    ui.frameTime.textContent = utc(t);
    const c = d.class[i] >= 0 ? d.classes[d.class[i]] : "unclassified";
    ui.frameClass.innerHTML = "";
    ui.frameClass.append(classBadge(c, colorOf(c)));
    ui.frameScore.textContent = d.score[i] === null ? "–" : d.score[i].toFixed(3);
    if (!load) return;
    s.nav++; // a frame picked now wins over a night still loading
    const mine = ++s.pending;
    ui.framePanel.removeAttribute("data-shown");
    const time = utc(t);
    ui.movieStart.value = utc(Math.max(d.times[0], t - 60e3));
    ui.movieEnd.value = utc(Math.min(d.times[d.times.length - 1], t + 60e3));
    setMovieLink();
    link(ui.framePng, "frame.png", { station: s.station, time, download: 1 }, `${s.station}_${time}.png`);
    try {
      await image(ui.frameImg, "frame.png", { station: s.station, time });
      const f = await transport.json("frame", { station: s.station, time });
      if (mine !== s.pending) return;
      ui.frameTime.textContent = f.time;
      ui.frameClass.innerHTML = "";
      ui.frameClass.append(classBadge(f.class, colorOf(f.class)));
      ui.frameScore.textContent = f.score === null ? "–" : f.score.toFixed(3);
      ui.neighbours.innerHTML = "";
      for (const n of [...f.before, f, ...f.after]) {
        const fig = thumb(s.station, n.time, n.class, `${n.time.slice(11, 19)}`, () => showRow(nearest(d.times, n.ms), true));
        if (n === f) fig.classList.add("oc-me");
        ui.neighbours.append(fig);
      }
      ui.framePanel.dataset.shown = f.time; // what tests (and scripts) wait for
      notify();
    } catch (e) { say(e); }
  }

  function thumb(station, time, klass, caption, onclick, testid = "neighbour") {
    const img = el("img", { alt: `${station} ${time}` });
    const fig = el("figure", { class: "oc-thumb", "data-testid": testid, dataset: { station, time }, onclick },
      img, el("figcaption", {}, caption, el("br"), classBadge(klass, colorOf(klass))));
    image(img, "frame.png", { station, time, size: 128 }).catch((e) => say(e));
    return fig;
  }

  function setMovieLink() {
    if (!s.data) return;
    const fmt = ui.movieFormat.value;
    link(ui.movie, "movie", { station: s.station, start: ui.movieStart.value, end: ui.movieEnd.value, format: fmt },
      `${s.station}_${ui.movieStart.value}.${fmt}`);
  }

  async function findSimilar() {
    if (!s.data || s.row === null) return;
    const time = utc(s.data.times[s.row]);
    ui.hits.innerHTML = "";
    ui.similarNote.textContent = "searching…";
    try {
      const r = await transport.json("similar", { station: s.station, time, k: ui.k.value, class: ui.simClass.value });
      ui.similarNote.textContent = `${r.hits.length} frames most like ${r.station} ${r.time} (${r.features} features, ${r.index ? "index, re-scored exactly" : "exact"})`;
      for (const h of r.hits) {
        const cap = `${h.station} ${h.time.slice(0, 10)} ${h.time.slice(11, 19)} · ${(h.similarity).toFixed(3)}`;
        const fig = thumb(h.station, h.time, h.class, cap, () => jump(h), "hit");
        fig.dataset.night = h.night;
        fig.dataset.class = h.class;
        fig.dataset.similarity = String(h.similarity);
        fig.title = `class ${h.class || "unclassified"}, score ${h.score === null ? "–" : h.score.toFixed(3)}, similarity ${h.similarity.toFixed(4)}, night ${h.night}`;
        fig.querySelector("figcaption").append(` ${h.score === null ? "" : h.score.toFixed(2)}`);
        ui.hits.append(fig);
      }
      say(null);
    } catch (e) { ui.similarNote.textContent = ""; say(e); }
  }

  async function jump(h) {
    if (h.station !== s.station) { await openStation(h.station, h.night, h.time); return; }
    if (h.night !== s.night) { await openNight(h.night, null, h.time); return; }
    await showRow(nearest(s.data.times, Date.parse(h.time)), true);
  }

  const onResize = () => s.data && draw();
  window.addEventListener("resize", onResize);
  start();
  const close = () => window.removeEventListener("resize", onResize);
  return { state: s, openStation, openNight, showRow, findSimilar, close };
}

// anywidget's entry point: the same page, talking to the kernel.
export default {
  render({ model, el: root }) {
    const initial = { station: model.get("station"), night: model.get("night"), time: model.get("time") };
    const onState = (st) => {
      for (const [k, v] of Object.entries(st)) model.set(k, v);
      model.save_changes();
    };
    const transport = widgetTransport(model);
    const page = mount(root, transport, initial, model.get("error") || null, onState);
    return () => { page.close(); transport.close(); }; // anywidget calls this when the view goes
  },
};
