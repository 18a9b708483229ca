// The live dashboard. It polls GET /stats every second, derives rates from successive counter
// readings, and pages GET /events newest first (order=desc): to older pages by the cursor the
// Link header names, back to newer ones by the pages it came from. No framework, nothing fetched from
// elsewhere: the page must work from the binary alone, offline.
"use strict";

(() => {
  const PAGE = 20; // events per page
  const POLL_MS = 1000;
  const HIDDEN_POLL_MS = 5000; // a background tab need not poll every second
  const READY_EVERY = 5; // check /readyz every this many polls
  const SUBSCRIPTIONS_EVERY = 5; // read /subscriptions every this many polls: each read counts every lag
  const CHART_MAX_S = 300; // the chart shows at most the last five minutes...
  const CHART_MIN_S = 60; // ...and at least one, so a fresh page is not all squashed
  const TOKEN_KEY = "uts.readToken";

  const $ = (id) => document.getElementById(id);
  const numberFormat = new Intl.NumberFormat("en-US");
  const rateFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const compactFormat = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  const n = (v) => numberFormat.format(v);

  const state = {
    token: localStorage.getItem(TOKEN_KEY) || "",
    stats: null,
    samples: [], // {t: server uptime in seconds, received, duplicates}
    polls: 0,
    timer: 0,
    polling: false,
    // The events view: a page of events stored before the cursor `before` (null: the newest);
    // `older` is the cursor of its oldest event (null when none is older), `newer` the
    // `before` of each page it was reached from, newest first at the bottom.
    view: { topic: "", live: true, before: null, older: null, newer: [], events: [], count: 0, loaded: false, generation: 0 },
  };

  // --- The API ---------------------------------------------------------------------------

  class AuthError extends Error {}

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const resp = await fetch(path, { headers, cache: "no-store" });
    if (resp.ok) return resp;
    let message = `${resp.status} ${resp.statusText}`;
    try {
      message = (await resp.json()).error || message;
    } catch (_) { /* not a JSON error body */ }
    if (resp.status === 401) throw new AuthError(message);
    throw new Error(`${path}: ${message}`);
  }

  // linkCursor reads a cursor parameter of the next page from a Link header. Cursors are
  // opaque strings: they are passed back as they came, never computed with.
  function linkCursor(link, name) {
    const m = /<([^>]*)>\s*;\s*rel="next"/.exec(link || "");
    if (!m) return null;
    return new URL(m[1], location.origin).searchParams.get(name);
  }

  // pageBefore is the PAGE events stored before the cursor `before` (the newest ones when it
  // is null), read newest first with order=desc and shown oldest first. `older` is the
  // cursor of its oldest event, which the Link header names when older events remain: the
  // page before it is the older page.
  async function pageBefore(topic, before) {
    const query = new URLSearchParams({ order: "desc", limit: String(PAGE) });
    if (before !== null) query.set("before", before);
    if (topic) query.set("topic", topic);
    const resp = await api("/events?" + query);
    const events = (await resp.json()).reverse();
    return { before, older: linkCursor(resp.headers.get("Link"), "before"), events };
  }

  // newestPage is the last PAGE events.
  const newestPage = (topic) => pageBefore(topic, null);

  const eventKey = (e) => e.topic + "\u0000" + e.event_id;

  // showMetrics shows GET /metrics in the page when reads need a token: a link cannot send
  // one, and would get a 401. Without a token the link is followed as it is.
  async function showMetrics(ev) {
    if (!state.token) return;
    ev.preventDefault();
    const view = $("metrics-view");
    const text = $("metrics-text");
    view.hidden = false;
    text.textContent = "Loading…";
    try {
      const resp = await fetch("/metrics", {
        headers: { Accept: "text/plain", Authorization: "Bearer " + state.token },
        cache: "no-store",
      });
      text.textContent = resp.ok ? await resp.text() : `${resp.status} ${resp.statusText}: ${await resp.text()}`;
    } catch (err) {
      text.textContent = "Failed: " + err.message;
    }
  }

  // --- Polling ---------------------------------------------------------------------------

  async function poll() {
    if (state.polling) return;
    state.polling = true;
    clearTimeout(state.timer);
    const started = performance.now();
    try {
      const stats = await (await api("/stats")).json();
      state.stats = stats;
      setPill("conn", "live", "Live");
      record(stats);
      renderTotals(stats);
      renderTopics(stats);
      renderFilter(stats);
      drawChart();
      if (state.polls % READY_EVERY === 0) checkReady();
      if (state.polls % SUBSCRIPTIONS_EVERY === 0) await refreshSubscriptions();
      state.polls++;
      try {
        await refreshLive();
      } catch (err) {
        if (err instanceof AuthError) throw err;
        setPill("events-mode", "offline", "Failed: " + err.message);
      }
    } catch (err) {
      if (err instanceof AuthError) {
        setPill("conn", "auth", "Token needed");
        askForToken(state.token ? "The read token was not accepted: " + err.message : null);
      } else {
        setPill("conn", "offline", "Offline");
        $("conn").title = String(err.message || err);
      }
    } finally {
      state.polling = false;
      const wait = (document.hidden ? HIDDEN_POLL_MS : POLL_MS) - (performance.now() - started);
      state.timer = setTimeout(poll, Math.max(0, wait));
    }
  }

  // pollNow runs a poll at once, e.g. after a new token.
  function pollNow() {
    if (!state.polling) poll();
  }

  async function checkReady() {
    try {
      const resp = await fetch("/readyz", { cache: "no-store" });
      const body = await resp.json();
      setPill("ready", resp.ok ? "ready" : "unready", resp.ok ? "Ready" : "Not ready");
      $("ready").title = body.error || "GET /readyz: the store and the broker answer";
    } catch (_) {
      setPill("ready", "unready", "Not ready");
    }
  }

  function setPill(id, pillState, text) {
    const el = $(id);
    el.dataset.state = pillState;
    $(id + "-text").textContent = text;
  }

  // --- Totals and rates ------------------------------------------------------------------

  function record(stats) {
    const sample = { t: stats.uptime_seconds, received: stats.received, duplicates: stats.duplicate_dropped };
    const last = state.samples[state.samples.length - 1];
    // A restarted server (uptime or counters going back) starts a new history.
    if (last && (sample.t < last.t || sample.received < last.received)) state.samples = [];
    if (last && sample.t - last.t < 0.25) return; // too close to tell a rate
    state.samples.push(sample);
    const oldest = sample.t - CHART_MAX_S - 2;
    while (state.samples.length > 2 && state.samples[0].t < oldest) state.samples.shift();
  }

  // rates turns successive readings into per-second rates, each at the later reading's time.
  function rates() {
    const out = [];
    const s = state.samples;
    for (let i = 1; i < s.length; i++) {
      const dt = s[i].t - s[i - 1].t;
      out.push({
        t: s[i].t,
        events: (s[i].received - s[i - 1].received) / dt,
        duplicates: (s[i].duplicates - s[i - 1].duplicates) / dt,
      });
    }
    return out;
  }

  const percent = (part, whole) => (whole > 0 ? ((100 * part) / whole).toFixed(1) + "%" : "–");

  function renderTotals(s) {
    $("stat-received").textContent = n(s.received);
    $("stat-unique").textContent = n(s.unique_processed);
    $("stat-duplicates").textContent = n(s.duplicate_dropped);
    $("stat-conflicts").textContent = n(s.duplicate_conflicts);
    $("stat-dead").textContent = n(s.dead_lettered);
    $("stat-queue").textContent = n(s.queue_depth);
    $("stat-uptime").textContent = duration(s.uptime_seconds);

    const r = rates();
    const latest = r[r.length - 1];
    $("sub-received").textContent = latest ? rateFormat.format(latest.events) + " events/s now" : "\u00a0";
    $("sub-unique").textContent = percent(s.unique_processed, s.received) + " of received" +
      (s.expired > 0 ? ` · ${n(s.stored)} held, ${n(s.expired)} expired` : "");
    $("sub-duplicates").textContent = percent(s.duplicate_dropped, s.received) + " of received";
    const started = new Date(s.started_at);
    $("sub-uptime").textContent = "since " +
      (Date.now() - started < 86400e3 ? started.toLocaleTimeString() : started.toLocaleDateString());

    // The promise a reader should be able to check by eye.
    const accounted = s.unique_processed + s.duplicate_dropped + s.dead_lettered;
    const balance = $("balance");
    balance.hidden = false;
    balance.replaceChildren(
      `received ${n(s.received)} = unique ${n(s.unique_processed)} + duplicates ${n(s.duplicate_dropped)}` +
        ` + dead-lettered ${n(s.dead_lettered)}  `,
      span(accounted === s.received ? "ok" : "pending",
        accounted === s.received ? "✓ every event accounted for" : `${n(s.received - accounted)} in flight`),
    );
  }

  function duration(seconds) {
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${m}m`;
    if (m > 0) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }

  function ago(iso) {
    const t = Date.parse(iso);
    if (!t || t < Date.UTC(1971, 0)) return "–";
    const s = Math.max(0, (Date.now() - t) / 1000);
    if (s < 2) return "just now";
    if (s < 60) return `${Math.floor(s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return new Date(t).toLocaleDateString();
  }

  // --- Topics ----------------------------------------------------------------------------

  // hue gives each topic a stable color, the same in the table and the events list.
  function hue(topic) {
    let h = 0;
    for (const ch of topic) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function span(className, text) {
    const el = document.createElement("span");
    el.className = className;
    el.textContent = text;
    return el;
  }

  function topicLabel(topic) {
    const el = span("topic", topic);
    el.style.setProperty("--hue", hue(topic));
    el.title = topic;
    return el;
  }

  function cell(content, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (content instanceof Node) td.append(content); else td.textContent = content;
    return td;
  }

  function renderTopics(stats) {
    const topics = stats.topic_stats || [];
    const total = topics.reduce((sum, t) => sum + t.unique, 0);
    const largest = topics.reduce((m, t) => Math.max(m, t.unique), 0);
    const rows = topics.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.topic = t.topic;
      tr.title = "Show this topic's events";
      if (t.topic === state.view.topic) tr.className = "selected";
      // The topic's name over a bar of its size, relative to the largest topic.
      const name = document.createElement("div");
      name.className = "topic-cell";
      name.title = `${t.topic}: ${percent(t.unique, total)} of the unique events`;
      const bar = document.createElement("i");
      bar.className = "share";
      bar.style.setProperty("--hue", hue(t.topic));
      bar.style.width = largest > 0 ? (100 * t.unique) / largest + "%" : "0";
      name.append(topicLabel(t.topic), bar);
      const last = cell(ago(t.last_event_at), "time");
      last.title = t.last_event_at;
      tr.append(
        cell(name),
        cell(n(t.unique), "num unique"),
        cell(n(t.duplicates), "num duplicates" + (t.duplicates ? "" : " zero")),
        cell(n(t.conflicts), "num conflicts" + (t.conflicts ? " warn" : " zero")),
        last,
      );
      return tr;
    });
    $("topics").tBodies[0].replaceChildren(...rows);
    $("topics").hidden = rows.length === 0;
    $("topics-empty").hidden = rows.length > 0;
    $("topic-count").textContent = rows.length ? `${rows.length} topic${rows.length > 1 ? "s" : ""}` : "";
  }

  // refreshSubscriptions shows each subscription with its lag. A failure leaves the last
  // table in place, marked stale, rather than failing the whole poll.
  async function refreshSubscriptions() {
    try {
      const body = await (await api("/subscriptions")).json();
      renderSubscriptions(body.subscriptions || []);
    } catch (err) {
      if (err instanceof AuthError) throw err;
      $("subscription-count").textContent = "Failed: " + err.message;
    }
  }

  function renderSubscriptions(subs) {
    const rows = subs.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.subscription = s.name;
      const topics = s.topics.length ? s.topics.join(", ") : "all topics";
      tr.append(
        cell(s.name, "name"),
        cell(topics, s.topics.length ? "topics" : "topics muted"),
        cell(s.cursor, "cursor mono"),
        cell(n(s.lag), "num lag" + (s.lag ? "" : " zero")),
      );
      tr.title = `${s.name}: started ${s.start}, last commit ${s.updated_at}`;
      return tr;
    });
    $("subscriptions").tBodies[0].replaceChildren(...rows);
    $("subscriptions").hidden = rows.length === 0;
    $("subscriptions-empty").hidden = rows.length > 0;
    $("subscription-count").textContent = rows.length ? `${rows.length} subscription${rows.length > 1 ? "s" : ""}` : "";
  }

  function renderFilter(stats) {
    const select = $("topic-filter");
    const names = (stats.topic_stats || []).map((t) => t.topic);
    if (state.view.topic && !names.includes(state.view.topic)) names.push(state.view.topic);
    const have = [...select.options].slice(1).map((o) => o.value);
    if (have.join("\u0000") === names.join("\u0000")) return;
    select.replaceChildren(select.options[0], ...names.map((name) => new Option(name, name)));
    select.value = state.view.topic;
  }

  // --- Events ----------------------------------------------------------------------------

  // matching is how many events the filter matches that the store holds now (expired ones
  // are gone), from the latest stats.
  function matching() {
    const s = state.stats;
    if (!s) return 0;
    if (!state.view.topic) return s.stored;
    const t = (s.topic_stats || []).find((x) => x.topic === state.view.topic);
    return t ? t.stored : 0;
  }

  // refreshLive keeps the live view on the newest page, read again when the count moved.
  async function refreshLive() {
    const v = state.view;
    if (!v.live) return;
    const count = matching();
    if (v.loaded && count === v.count) return;
    const generation = v.generation;
    const page = await newestPage(v.topic);
    if (generation !== state.view.generation) return; // the filter or page changed meanwhile
    showPage(page, true, count);
  }

  function showPage(page, live, count) {
    const v = state.view;
    const before = new Set(v.events.map(eventKey));
    const animate = v.loaded && live;
    Object.assign(v, { before: page.before, older: page.older, events: page.events, live, loaded: true });
    if (live) v.newer = []; // the pages newer than this one: the way back
    if (count !== undefined) v.count = count;
    const rows = [...page.events].reverse().map((e) => {
      const tr = document.createElement("tr");
      tr.dataset.topic = e.topic;
      tr.dataset.eventId = e.event_id;
      if (animate && !before.has(eventKey(e))) tr.className = "fresh";
      const payload = JSON.stringify(e.payload);
      const payloadCell = cell(payload, "mono payload");
      payloadCell.title = JSON.stringify(e.payload, null, 2);
      const processed = cell(clock(e.processed_at), "time");
      processed.title = e.processed_at;
      tr.append(processed, cell(topicLabel(e.topic)), cell(e.event_id, "mono event-id"), cell(e.source),
        cell(e.timestamp, "mono time"), payloadCell);
      return tr;
    });
    $("events").tBodies[0].replaceChildren(...rows);
    $("events").hidden = rows.length === 0;
    $("events-empty").hidden = rows.length > 0;
    renderPager();
  }

  function clock(iso) {
    const d = new Date(iso);
    const pad = (x, w = 2) => String(x).padStart(w, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function renderPager() {
    const v = state.view;
    $("page-older").disabled = v.older === null || v.events.length === 0;
    $("page-newer").disabled = v.newer.length === 0;
    $("page-latest").disabled = v.live;
    setPill("events-mode", v.live ? "live" : "paused", v.live ? "Live" : "Paused");
  }

  // goTo runs one paging step; a newer step invalidates the ones still running.
  async function goTo(load, live) {
    const generation = ++state.view.generation;
    state.view.live = live;
    renderPager();
    try {
      const page = await load();
      if (generation === state.view.generation) showPage(page, live, live ? matching() : undefined);
    } catch (err) {
      if (err instanceof AuthError) askForToken(null);
      else setPill("events-mode", "offline", "Failed: " + err.message);
    }
  }

  function showLatest() {
    const topic = state.view.topic;
    goTo(() => newestPage(topic), true);
  }

  function filterBy(topic) {
    const v = state.view;
    v.topic = topic;
    v.loaded = false;
    v.events = [];
    $("topic-filter").value = topic;
    for (const tr of $("topics").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.topic === topic);
    showLatest();
  }

  // --- Chart -----------------------------------------------------------------------------

  // niceStep rounds a grid step up to 1, 2, 2.5 or 5 times a power of ten, so the labels
  // read as round numbers.
  function niceStep(x) {
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  function drawChart() {
    const canvas = $("chart");
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";

    const points = rates();
    const latest = points[points.length - 1];
    $("rate-events").textContent = latest ? rateFormat.format(latest.events) : "0";
    $("rate-duplicates").textContent = latest ? rateFormat.format(latest.duplicates) : "0";

    const pad = { left: 52, right: 14, top: 12, bottom: 26 };
    const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
    const end = latest ? latest.t : 0;
    const have = points.length > 1 ? end - points[0].t : 0;
    const span = Math.min(CHART_MAX_S, Math.max(CHART_MIN_S, Math.ceil(have / 30) * 30));
    $("chart-span").textContent = `last ${span >= 120 ? span / 60 + " min" : span + " s"}`;
    const peak = points.reduce((m, p) => Math.max(m, p.events, p.duplicates), 0);
    const yMax = 4 * niceStep(Math.max(peak * 1.1, 4) / 4);
    const x = (t) => pad.left + plotW * (1 - (end - t) / span);
    const y = (v) => pad.top + plotH * (1 - v / yMax);

    // Grid and axes.
    ctx.strokeStyle = color("--grid");
    ctx.fillStyle = color("--muted");
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(width - pad.right, yy);
      ctx.stroke();
      ctx.fillText(compactFormat.format(v), pad.left - 8, yy);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const step = span <= 60 ? 10 : span <= 150 ? 30 : 60;
    for (let ago = 0; ago <= span; ago += step) {
      const label = ago === 0 ? "now" : ago < 60 || ago % 60 ? `−${ago}s` : `−${ago / 60}m`;
      ctx.fillText(label, x(end - ago), height - pad.bottom + 8);
    }

    if (points.length < 2) {
      ctx.textBaseline = "middle";
      ctx.fillText("Collecting readings…", pad.left + plotW / 2, pad.top + plotH / 2);
      return;
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.left, pad.top, plotW, plotH);
    ctx.clip();
    const series = (key, stroke) => {
      const visible = points.filter((p) => p.t >= end - span - 2);
      ctx.beginPath();
      visible.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p[key])) : ctx.moveTo(x(p.t), y(p[key]))));
      ctx.lineWidth = 2;
      ctx.lineJoin = "round";
      ctx.strokeStyle = stroke;
      ctx.stroke();
      ctx.lineTo(x(visible[visible.length - 1].t), y(0));
      ctx.lineTo(x(visible[0].t), y(0));
      ctx.closePath();
      const fill = ctx.createLinearGradient(0, pad.top, 0, pad.top + plotH);
      fill.addColorStop(0, withAlpha(stroke, 0.22));
      fill.addColorStop(1, withAlpha(stroke, 0.02));
      ctx.fillStyle = fill;
      ctx.fill();
    };
    series("events", color("--events"));
    series("duplicates", color("--duplicates"));
    ctx.restore();
  }

  function withAlpha(hex, alpha) {
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
    if (!m) return hex;
    return `rgba(${parseInt(m[1], 16)}, ${parseInt(m[2], 16)}, ${parseInt(m[3], 16)}, ${alpha})`;
  }

  // --- The read token --------------------------------------------------------------------

  function askForToken(message) {
    $("auth").hidden = false;
    if (message) $("auth-message").textContent = message;
    if (document.activeElement !== $("token-input")) $("token-input").focus();
  }

  function closeTokenForm() {
    $("auth").hidden = true;
  }

  // --- Wiring ----------------------------------------------------------------------------

  function start() {
    $("publish-hint").textContent =
      `go run ./cmd/publisher -url ${location.origin} -events 10000 -duplicates 0.2 -rate 500\n\n` +
      `curl -X POST ${location.origin}/publish -H 'Content-Type: application/json' \\\n` +
      `  -d '{"topic":"orders","event_id":"o-1","timestamp":"${new Date().toISOString()}","source":"shop","payload":{"amount":12}}'`;
    $("token-input").value = state.token;
    $("metrics-link").addEventListener("click", showMetrics);
    $("metrics-close").addEventListener("click", () => ($("metrics-view").hidden = true));
    $("token-toggle").addEventListener("click", () => ($("auth").hidden ? askForToken(null) : closeTokenForm()));
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.token = $("token-input").value.trim();
      if (state.token) localStorage.setItem(TOKEN_KEY, state.token); else localStorage.removeItem(TOKEN_KEY);
      closeTokenForm();
      state.view.loaded = false;
      pollNow();
    });
    $("token-forget").addEventListener("click", () => {
      state.token = "";
      $("token-input").value = "";
      localStorage.removeItem(TOKEN_KEY);
      pollNow();
    });
    $("topic-filter").addEventListener("change", (ev) => filterBy(ev.target.value));
    $("topics").addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-topic]");
      if (tr) filterBy(tr.dataset.topic === state.view.topic ? "" : tr.dataset.topic);
    });
    $("page-latest").addEventListener("click", showLatest);
    // Paging goes older through each page's oldest cursor, and newer back through the
    // pages it came from: a cursor is opaque, so the page after one is never computed.
    $("page-older").addEventListener("click", () => {
      const v = state.view, topic = v.topic, older = v.older;
      if (older === null) return;
      v.newer.push(v.before);
      goTo(() => pageBefore(topic, older), false);
    });
    $("page-newer").addEventListener("click", () => {
      const v = state.view, topic = v.topic;
      if (v.newer.length === 0) return;
      const before = v.newer.pop();
      goTo(() => pageBefore(topic, before), false);
    });
    new ResizeObserver(drawChart).observe($("chart"));
    document.addEventListener("visibilitychange", () => !document.hidden && pollNow());
    renderPager();
    poll();
  }

  start();
})();
