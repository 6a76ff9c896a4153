/* CodeQual live dashboard: polls /api/monitoring and renders the answer.
 *
 * API data (repository URLs, error messages, span names) is written only through
 * textContent and createElement, never innerHTML: it comes from users and must never
 * become markup. The page's Content-Security-Policy blocks inline script as a second line.
 */
"use strict";

(function () {
  const TOKEN_KEY = "codequal.dashboard.token"; // sessionStorage only: gone with the tab
  const DEFAULT_REFRESH_SECONDS = 10;
  const MIN_REFRESH_SECONDS = 2; // the API caches aggregates for 1 s; faster buys nothing
  const RANGES = { "1h": "1 h", "6h": "6 h", "24h": "24 h" };
  const REQUEST_TIMEOUT_MS = 8000;
  const CHART_HEIGHT = 190;
  const MODE_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  // Each SLO's 1 h error ratio as its recording rule stores it, over its error budget: the
  // burn rate the 14.4x page alert compares. Read from the metric history, never recomputed.
  const BURN_QUERY = "slo:sli_error:ratio_rate1h / on (sloth_id, sloth_slo, sloth_service) " +
    "group_left slo:error_budget:ratio";
  const BURN_POINTS = 120;
  const MIN_STEP_SECONDS = 15; // the default scrape and rule interval
  const ANOMALY_SINCE = "7d";
  const ANOMALY_LIMIT = 200; // newest first; open windows are the recent ones
  const ANOMALY_ROWS = 20;
  const TOKEN_HINT =
    "Paste a token with the monitoring:read scope " +
    "(for example from `codequal token create --scope monitoring:read`).";

  const state = {
    range: "1h",
    refreshSeconds: DEFAULT_REFRESH_SECONDS,
    timer: null,
    generation: 0, // bumps on every refresh so a slow, superseded answer is dropped
    lastSuccess: null,
    authMessage: null, // survives refreshes: a forgotten token is not retried
    tokenBlockedUntil: 0, // after a 429, wait out Retry-After before using the token again
    view: null,
    charts: {},
    burnRange: [0, 1], // the dashboard's range in epoch seconds, for the burn chart's x axis
  };
  const CRITICAL = ["critical", "emergency"];

  const $ = (id) => document.getElementById(id);

  // ---- formatting -------------------------------------------------------------------------------

  function formatPercent(ratio) {
    return ratio === null || ratio === undefined ? "–" : (ratio * 100).toFixed(1) + " %";
  }

  function formatBytes(bytes) {
    if (bytes === null || bytes === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? value + " B" : value.toFixed(1) + " " + units[unit];
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
  }

  function formatTime(date) {
    return date.toLocaleTimeString([], { hour12: false });
  }

  function formatWhen(value) {
    // The API sends ISO strings for log-like records and epoch seconds for issues.
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return isNaN(date.getTime()) ? String(value) : date.toLocaleString([], { hour12: false });
  }

  // ---- DOM helpers ------------------------------------------------------------------------------

  function setText(id, value) {
    $(id).textContent = value === null || value === undefined ? "–" : String(value);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell ?? "–"));
    return tr;
  }

  function emptyRow(columns, text) {
    const td = el("td", text, "muted");
    td.colSpan = columns;
    return row([td]);
  }

  // ---- settings from the URL and the controls ---------------------------------------------------

  function readUrlSettings() {
    const params = new URLSearchParams(window.location.search);
    const refresh = Number.parseFloat(params.get("refresh"));
    if (Number.isFinite(refresh)) state.refreshSeconds = Math.max(MIN_REFRESH_SECONDS, refresh);
    if (params.get("range") in RANGES) state.range = params.get("range");
    $("refresh").value = String(state.refreshSeconds);
    $("range").value = state.range;
  }

  function syncUrl() {
    // Keep the view bookmarkable; the token is never part of it.
    const params = new URLSearchParams(window.location.search);
    params.delete("token");
    params.set("range", state.range);
    params.set("refresh", String(state.refreshSeconds));
    history.replaceState(null, "", window.location.pathname + "?" + params.toString());
  }

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (_error) {
      return ""; // storage disabled: the page still works as the public view
    }
  }

  function storeToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_error) {
      state.authMessage = "This browser blocks sessionStorage, so the token cannot be kept.";
    }
    $("forget-token").hidden = !token;
  }

  // ---- fetching ---------------------------------------------------------------------------------

  class RequestFailed extends Error {}

  async function getJSON(path, token) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(path, {
        headers, signal: controller.signal, cache: "no-store", credentials: "omit",
      });
      const body = await response.json().catch(() => null);
      return { status: response.status, body, retryAfter: response.headers.get("Retry-After") };
    } catch (error) {
      throw new RequestFailed(error.name === "AbortError" ? "the server did not answer" :
        "the server cannot be reached");
    } finally {
      clearTimeout(timeout);
    }
  }

  function describe(answer) {
    // The API's one error shape: {"error": "...", "detail": ...}; detail may be structured.
    const body = answer.body || {};
    const detail = body.detail ?? body.error;
    if (detail === undefined || detail === null) return "";
    const text = typeof detail === "string" ? detail : JSON.stringify(detail);
    return text.replace(/\.$/, "");
  }

  function failure(answer) {
    const detail = describe(answer);
    return new RequestFailed("HTTP " + answer.status + (detail ? ": " + detail : ""));
  }

  function usableToken() {
    const token = storedToken();
    return token && Date.now() >= state.tokenBlockedUntil ? token : "";
  }

  async function loadDashboard() {
    const query = "?range=" + encodeURIComponent(state.range);
    const token = usableToken();
    if (token) {
      const answer = await getJSON("/api/monitoring/dashboard" + query, token);
      if (answer.status === 200) return { view: "full", data: answer.body };
      if (![401, 403, 429].includes(answer.status)) throw failure(answer);
      explainAuthProblem(answer); // then fall through: the public view stays
    }
    const answer = await getJSON("/api/monitoring/public/dashboard" + query, null);
    if (answer.status === 200) return { view: "public", data: answer.body };
    if (answer.status === 404) return { view: "disabled", data: null };
    throw failure(answer);
  }

  function explainAuthProblem(answer) {
    const detail = describe(answer) || "no reason given";
    if (answer.status === 429) {
      const wait = Number.parseInt(answer.retryAfter, 10) || 60;
      state.tokenBlockedUntil = Date.now() + wait * 1000;
      state.authMessage = "Too many failed sign-ins from this address (429): " + detail +
        ". The token is kept and will be tried again in " + wait + " s.";
      return;
    }
    // A rejected token stays rejected; retrying it every refresh would only burn through the
    // server's failed-authentication limit, so it is forgotten.
    storeToken("");
    state.authMessage = answer.status === 401
      ? "The server rejected the token (401 Unauthorised): " + detail +
        ". It has been forgotten. " + TOKEN_HINT
      : "The token is valid but may not read monitoring data (403 Forbidden): " + detail +
        ". It has been forgotten. " + TOKEN_HINT;
  }

  async function loadAnalytics(series) {
    // Token-only extras. Each fails on its own: the panel says why, the rest stays fresh.
    state.burnRange = [series.start, series.end];
    const token = usableToken();
    const step = Math.max(MIN_STEP_SECONDS, Math.ceil((series.end - series.start) / BURN_POINTS));
    const range = new URLSearchParams({
      query: BURN_QUERY, start: String(series.start), end: String(series.end), step: String(step),
    });
    const [burn, anomalies] = await Promise.all([
      loadPart("/api/v1/query_range?" + range.toString(), token),
      loadPart("/api/monitoring/anomalies?since=" + ANOMALY_SINCE + "&limit=" + ANOMALY_LIMIT,
        token),
    ]);
    return { burn, anomalies };
  }

  async function loadPart(path, token) {
    try {
      const answer = await getJSON(path, token);
      return answer.status === 200 ? { body: answer.body } : { error: failure(answer).message };
    } catch (error) {
      return { error: error.message };
    }
  }

  // ---- the refresh loop -------------------------------------------------------------------------

  async function refresh() {
    clearTimeout(state.timer);
    const generation = ++state.generation;
    try {
      const result = await loadDashboard();
      if (generation !== state.generation) return;
      const analytics = result.view === "full" ? await loadAnalytics(result.data.series) : null;
      if (generation !== state.generation) return;
      render(result, analytics);
      markFresh();
    } catch (error) {
      if (generation !== state.generation) return;
      markStale(error);
    }
    renderNotices();
    schedule();
  }

  function schedule() {
    clearTimeout(state.timer);
    // A hidden tab polls nothing; visibilitychange refreshes it when it is shown again.
    if (!document.hidden) state.timer = setTimeout(refresh, state.refreshSeconds * 1000);
  }

  function markFresh() {
    state.lastSuccess = new Date();
    const stamp = $("last-updated");
    stamp.textContent = formatTime(state.lastSuccess);
    stamp.dateTime = state.lastSuccess.toISOString();
    stamp.classList.remove("stale");
    $("content").classList.remove("stale");
    $("stale-banner").hidden = true;
  }

  function markStale(error) {
    const since = state.lastSuccess ? "from " + formatTime(state.lastSuccess) : "not loaded yet";
    // Whatever the last answer said, it no longer stands: the badge says what is known.
    showBadge("unreachable", "unreachable · " + (state.lastSuccess
      ? "last data " + formatTime(state.lastSuccess) : "no data yet"),
    "The server could not be reached at " + formatTime(new Date()) + ".");
    const reason = error instanceof RequestFailed ? error.message : "unexpected error";
    if (!(error instanceof RequestFailed)) console.warn("dashboard refresh failed", error);
    $("stale-banner").textContent = "Refresh failed at " + formatTime(new Date()) + " (" +
      reason + "). The figures below are stale (" + since + "); retrying every " +
      state.refreshSeconds + " s.";
    $("stale-banner").hidden = false;
    $("last-updated").classList.add("stale");
    $("content").classList.add("stale");
  }

  function renderNotices() {
    const messages = [];
    if (state.authMessage) messages.push(state.authMessage);
    if (state.view === "disabled") {
      messages.push("The public dashboard is turned off on this server " +
        "(CODEQUAL_PUBLIC_DASHBOARD=false). " + TOKEN_HINT);
    }
    const notice = $("auth-notice");
    notice.replaceChildren(...messages.map((text) => el("p", text)));
    notice.hidden = messages.length === 0;
  }

  // ---- rendering --------------------------------------------------------------------------------

  const VIEW_LABELS = { full: "full view (token)", public: "public view", disabled: "no data" };

  function render(result, analytics) {
    const firstDisabled = result.view === "disabled" && state.view !== "disabled";
    state.view = result.view;
    document.body.dataset.view = result.view;
    setText("view-mode", VIEW_LABELS[result.view]);
    $("content").hidden = result.view === "disabled";
    if (firstDisabled) $("token").focus();
    if (!result.data) return;
    renderSummary(result.data);
    renderCharts(result.data.series);
    renderPrivate(result.view === "full" ? result.data : null, analytics);
  }

  // ---- the status badge: the worst of health, firing alerts and reachability ---------------------

  function alertNames(alerts) {
    return alerts[0].alertname + (alerts.length > 1 ? " +" + (alerts.length - 1) : "");
  }

  function badgeFor(status, alerts) {
    const firing = (alerts || []).filter((a) => !a.muted);
    const critical = firing.filter((a) => CRITICAL.includes(a.severity));
    const warning = firing.filter((a) => a.severity === "warning");
    const every = firing.map((a) => a.alertname + " (" + a.severity + ")").join(", ");
    const title = "Health: " + status + (every ? "; firing: " + every : "; nothing firing");
    if (critical.length) return ["critical", "critical: " + alertNames(critical), title];
    if (status === "unhealthy") return ["unhealthy", status, title];
    if (warning.length) return ["warning", "warning: " + alertNames(warning), title];
    if (status === "degraded") return ["degraded", status, title];
    return [status === "healthy" ? "healthy" : "unknown", status, title];
  }

  function showBadge(kind, text, title) {
    const badge = $("overall-status");
    badge.textContent = text;
    badge.className = "badge badge-" + kind;
    badge.title = title;
  }

  function renderSummary(data) {
    showBadge(...badgeFor(data.status, data.alerts));
    renderDisk(data.deepwiki);
    setText("active-count", data.activeAnalyses);
    renderWindow("hour", data.analyses.lastHour);
    renderWindow("day", data.analyses.lastDay);
    renderP95(data.p95DurationByMode);
  }

  function renderDisk(disk) {
    const ratio = disk.diskUsageRatio;
    const fill = $("disk-fill");
    fill.className = "bar-fill disk-" + disk.diskStatus;
    // CSSOM writes are allowed by the style-src 'self' policy; style attributes are not.
    fill.style.width = ratio === null ? "0%" : Math.min(100, ratio * 100).toFixed(1) + "%";
    $("disk-bar").setAttribute("aria-valuenow", ratio === null ? "0" : (ratio * 100).toFixed(1));
    setText("disk-percent", formatPercent(ratio));
    setText("disk-status", disk.diskStatus);
    $("disk-status").className = "status-" + disk.diskStatus;
    setText("disk-used", formatBytes(disk.usedBytes));
    setText("disk-available", formatBytes(disk.availableBytes));
    setText("disk-total", formatBytes(disk.totalBytes));
    setText("deepwiki-available", disk.available ? "reachable" : "unavailable");
  }

  function renderWindow(prefix, summary) {
    setText(prefix + "-total", summary.total);
    setText(prefix + "-success", formatPercent(summary.successRate));
    setText(prefix + "-failed", summary.failed);
    setText(prefix + "-partial", summary.partial);
    setText(prefix + "-rejected", summary.rejected);
  }

  function renderP95(byMode) {
    const modes = Object.keys(byMode);
    const rows = modes.map((mode) => row([el("th", mode), formatDuration(byMode[mode])]));
    if (rows.length === 0) rows.push(emptyRow(2, "no completed analyses"));
    $("p95-table").replaceChildren(...rows);
  }

  // ---- charts (uPlot) ---------------------------------------------------------------------------

  function renderCharts(series) {
    const charts = $("charts");
    charts.dataset.range = state.range;
    charts.dataset.start = String(series.start);
    charts.dataset.end = String(series.end);
    for (const label of charts.querySelectorAll(".range-label")) {
      label.textContent = "(last " + RANGES[state.range] + ")";
    }
    const x = series.timestamps;
    const modes = Object.keys(series.p95DurationByMode);
    drawChart("chart-rate", [x, series.analysesPerMinute],
      [{ label: "analyses / min", stroke: "#1f77b4", fill: "rgba(31,119,180,0.12)" }],
      { y: (v) => v.toFixed(2) });
    drawChart("chart-success", [x, series.successRate],
      [{ label: "success rate", stroke: "#2ca02c", points: { show: true } }],
      { y: (v) => formatPercent(v), range: [0, 1] });
    drawChart("chart-p95", [x, ...modes.map((m) => series.p95DurationByMode[m])],
      modes.map((mode, i) => ({
        label: mode, stroke: MODE_COLOURS[i % MODE_COLOURS.length], points: { show: true },
      })),
      { y: (v) => formatDuration(v) });
  }

  function drawChart(id, data, lines, format) {
    // Rebuild only when the set of lines changes (a new mode appeared); otherwise swap data.
    const key = lines.map((l) => l.label).join("|");
    const existing = state.charts[id];
    if (existing && existing.key === key) {
      existing.plot.setData(data);
      return;
    }
    if (existing) existing.plot.destroy();
    const container = $(id);
    const options = chartOptions(container, lines, format);
    const plot = new uPlot(options, data, container);
    state.charts[id] = { key, plot };
    // For the browser tests and the console: the chart behind a container.
    Object.defineProperty(container, "uplot", { value: plot, configurable: true });
  }

  function chartOptions(container, lines, format) {
    const valueFormat = (_u, value) => (value === null ? "–" : format.y(value));
    return {
      width: Math.max(240, container.clientWidth),
      height: CHART_HEIGHT,
      scales: {
        x: format.x ? { time: true, range: format.x } : { time: true },
        y: format.range ? { range: format.range } : {},
      },
      series: [{}, ...lines.map((line) => ({ width: 2, value: valueFormat, ...line }))],
      // Wider x-tick spacing: three charts share a row and time labels need room. The y axis
      // is as wide as its widest label ("20 min 35 s"), measured, never a fixed guess.
      axes: [{ space: 60 }, { size: axisSize, values: (_u, ticks) => ticks.map((v) => format.y(v)) }],
      legend: { live: true },
    };
  }

  function axisSize(u, values, axisIndex, cycle) {
    const axis = u.axes[axisIndex];
    if (cycle > 1) return axis._size; // uPlot asks again until the size settles
    let size = axis.ticks.size + axis.gap;
    if (values && values.length) {
      u.ctx.font = axis.font[0];
      const widest = Math.max(...values.map((v) => u.ctx.measureText(String(v)).width));
      size += widest / devicePixelRatio;
    }
    return Math.ceil(size) + 4;
  }

  function destroyChart(id) {
    const existing = state.charts[id];
    if (existing) existing.plot.destroy();
    delete state.charts[id];
  }

  function resizeCharts() {
    for (const [id, chart] of Object.entries(state.charts)) {
      chart.plot.setSize({ width: Math.max(240, $(id).clientWidth), height: CHART_HEIGHT });
    }
  }

  // ---- the token-only lists ---------------------------------------------------------------------

  function renderPrivate(data, analytics) {
    $("private").hidden = data === null;
    if (data === null) {
      for (const id of ["alerts-table", "slo-table", "active-table", "failures-table",
        "partial-table", "errors-table", "anomalies-table"]) $(id).replaceChildren();
      destroyChart("chart-burn");
      return;
    }
    renderAlerts(data.firingAlerts || []);
    renderSlos(data.slos || []);
    renderBurn(analytics.burn);
    renderAnomalies(analytics.anomalies);
    renderActive(data.activeAnalysesDetail);
    renderFailures(data.recentFailures.concat(data.recentRejected || []));
    renderPartial(data.recentPartial || []);
    renderTopErrors(data.topErrors);
  }

  function renderAlerts(items) {
    const rows = items.map((a) => {
      const runbook = el("td", null, "links");
      if (a.runbookUrl) {
        const link = el("a", "runbook");
        link.href = a.runbookUrl; // same-origin path such as /runbooks/DeepWikiDown
        runbook.append(link);
      }
      const tr = row([a.alertname, a.severity, a.summary + (a.mutedBy ? " (muted)" : ""),
        formatWhen(a.firedAt), runbook]);
      tr.classList.add("severity-" + a.severity);
      return tr;
    });
    $("alerts-table").replaceChildren(...(rows.length ? rows : [emptyRow(5, "nothing firing")]));
  }

  function renderSlos(items) {
    const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(2) + " %");
    const burn = (x) => (x === null || x === undefined ? "–" : x.toFixed(1) + "×");
    const rows = items.map((s) => {
      const rates = s.burnRates || {};
      const burns = ["5m", "1h", "6h", "1d"].map((w) => burn(rates[w])).join(" / ");
      const left = s.timeToExhaustionSeconds;
      return row([s.name, s.objective + " %", pct(s.sli), pct(s.errorBudget.remainingRatio),
        burns, left === null ? "–" : formatDuration(left)]);
    });
    $("slo-table").replaceChildren(...(rows.length ? rows : [emptyRow(6, "no SLO data yet")]));
  }

  function finite(text) {
    // Prometheus's JSON sends sample values as strings, "NaN" for an SLO without traffic.
    const value = Number.parseFloat(text);
    return Number.isFinite(value) ? value : null;
  }

  function formatBurn(value) {
    if (value === null || value === undefined) return "–";
    return (value >= 10 ? value.toFixed(0) : String(Number(value.toFixed(2)))) + "×";
  }

  function renderBurn(part) {
    const figure = $("burn-figure");
    setText("burn-range", "(last " + RANGES[state.range] + ")");
    const matrix = part.error ? [] : part.body.data.result;
    const message = part.error ? "Could not load the burn rates: " + part.error
      : "No burn-rate history yet: the SLO recording rules store it at every rule evaluation.";
    $("burn-message").hidden = matrix.length > 0;
    $("chart-burn").hidden = matrix.length === 0;
    figure.dataset.slos = "";
    if (matrix.length === 0) {
      setText("burn-message", message);
      destroyChart("chart-burn");
      return;
    }
    const slos = matrix.map((s) => ({
      name: s.metric.sloth_slo || s.metric.sloth_id || "slo",
      values: new Map(s.values.map(([t, v]) => [t, finite(v)])),
    })).sort((a, b) => a.name.localeCompare(b.name));
    // The range's ends as well, so the 1x line spans the chart while the history is young.
    const times = matrix.flatMap((s) => s.values.map(([t]) => t)).concat(state.burnRange);
    const x = [...new Set(times)].sort((a, b) => a - b);
    const data = [x, ...slos.map((slo) => x.map((t) => slo.values.get(t) ?? null)),
      x.map(() => 1)];
    const lines = slos.map((slo, i) => ({
      label: slo.name, stroke: MODE_COLOURS[i % MODE_COLOURS.length],
    }));
    // 1x spends the budget exactly over the SLO window; above it the budget runs out early.
    lines.push({ label: "1× (budget lasts the window)", stroke: "#9aa5b1", width: 1,
      dash: [6, 4] });
    drawChart("chart-burn", data, lines, { y: formatBurn, x: () => state.burnRange });
    figure.dataset.slos = slos.map((slo) => slo.name).join(",");
  }

  const SERIES_FORMATS = {
    failure_ratio: formatPercent,
    memory: formatPercent,
    disk: formatPercent,
    p99_duration: formatDuration,
    throughput: (v) => (v === null || v === undefined ? "–" : (v * 60).toFixed(1) + " /min"),
  };

  function formatNumber(value) {
    return value === null || value === undefined ? "–" : String(Number(value.toPrecision(4)));
  }

  function renderAnomalies(part) {
    const table = $("anomalies-table");
    if (part.error) {
      table.replaceChildren(emptyRow(7, "Could not load the anomalies: " + part.error));
      return;
    }
    // Open windows first; the API's newest-first order holds within each (the sort is stable).
    const rank = (a) => (a.status === "open" ? 0 : 1);
    const items = [...part.body.anomalies].sort((a, b) => rank(a) - rank(b)).slice(0, ANOMALY_ROWS);
    const rows = items.map((a) => {
      const format = SERIES_FORMATS[a.series] || formatNumber;
      const band = a.band || [null, null];
      const status = el("td", a.status + (a.alert ? " (alert " + a.alert + ")" : ""),
        "anomaly-" + a.status);
      const tr = row([status, a.detector, a.series,
        formatWhen(a.start) + " – " + formatWhen(a.end),
        format(a.peak) + " vs " + format(a.baseline) +
          " (" + format(band[0]) + " to " + format(band[1]) + ")",
        a.score === null ? "–" : a.score.toFixed(2), el("td", a.explanation, "explanation")]);
      tr.dataset.anomalyId = String(a.id);
      return tr;
    });
    const none = emptyRow(7, "no anomalies in the last " + ANOMALY_SINCE.replace("d", " days"));
    table.replaceChildren(...(rows.length ? rows : [none]));
  }

  function renderActive(items) {
    const rows = items.map((a) => {
      const tr = row([a.repositoryUrl, a.mode, a.status, a.step || "–",
        formatDuration(a.elapsedSeconds), analysisLinks(a.id, a.traceId)]);
      if (a.longRunning) tr.classList.add("long-running");
      return tr;
    });
    $("active-table").replaceChildren(...(rows.length ? rows : [emptyRow(6, "none running")]));
  }

  function renderFailures(items) {
    items.sort((a, b) => (a.finishedAt < b.finishedAt ? 1 : -1));
    const rows = items.slice(0, 10).map((f) => {
      const kind = f.status === "rejected" ? "rejected · " : "";
      const error = el("td", kind + f.errorType + (f.errorMessage ? ": " + f.errorMessage : ""),
        "error");
      error.title = f.errorMessage || "";
      return row([formatWhen(f.finishedAt), f.repositoryUrl, f.mode, error,
        analysisLinks(f.id, f.traceId)]);
    });
    $("failures-table").replaceChildren(...(rows.length ? rows : [emptyRow(5, "no failures")]));
  }

  function renderPartial(items) {
    const rows = items.map((p) => {
      const c = p.coverage;
      const shown = c.filesAnalysed + " of " + c.filesChanged + " files, " + c.filesSkipped +
        " skipped";
      return row([formatWhen(p.finishedAt), p.repositoryUrl, p.mode, shown,
        p.partialReasons.join("; "), analysisLinks(p.id, p.traceId)]);
    });
    $("partial-table").replaceChildren(...(rows.length ? rows : [emptyRow(6, "none")]));
  }

  function renderTopErrors(items) {
    const rows = items.map((issue) => {
      const title = el("td");
      title.append(el("strong", issue.type), " ", el("span", issue.title));
      if (issue.culprit) title.append(el("div", issue.culprit, "muted"));
      return row([title, issue.level, issue.count, formatWhen(issue.last_seen)]);
    });
    $("errors-table").replaceChildren(...(rows.length ? rows : [emptyRow(4, "no open issues")]));
  }

  function analysisLinks(analysisId, traceId) {
    const cell = el("td", null, "links");
    const tracePath = "/api/monitoring/analyses/" + encodeURIComponent(analysisId) + "/trace";
    cell.append(detailLink("trace", tracePath, () => showTrace(analysisId, tracePath)));
    if (traceId) {
      const logsPath = "/api/monitoring/logs?traceId=" + encodeURIComponent(traceId) + "&limit=200";
      cell.append(" ", detailLink("logs", logsPath, () => showLogs(traceId, logsPath)));
    }
    return cell;
  }

  function detailLink(text, href, onOpen) {
    // A real href says where the data lives; the click fetches it with the token, which a
    // plain navigation could not send.
    const link = el("a", text, "detail-link");
    link.href = href;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      onOpen();
    });
    return link;
  }

  // ---- trace and log detail ---------------------------------------------------------------------

  async function openDetail(title, path, renderBody) {
    const panel = $("detail");
    setText("detail-title", title);
    setText("detail-message", "loading…");
    $("detail-body").replaceChildren();
    panel.hidden = false;
    panel.scrollIntoView({ block: "nearest" });
    try {
      const answer = await getJSON(path, storedToken());
      if (answer.status !== 200) throw failure(answer);
      setText("detail-message", "");
      $("detail-body").replaceChildren(renderBody(answer.body), rawJson(answer.body));
    } catch (error) {
      setText("detail-message", "Could not load it: " + error.message);
    }
  }

  function rawJson(body) {
    const details = el("details", null, "raw");
    details.append(el("summary", "JSON"), el("pre", JSON.stringify(body, null, 2)));
    return details;
  }

  function showTrace(analysisId, path) {
    return openDetail("Trace of analysis " + analysisId, path, (body) => {
      const total = traceSpan(body.spans);
      const list = el("ul", null, "span-tree");
      for (const span of body.spans) list.append(spanNode(span, total));
      return list;
    });
  }

  function traceSpan(spans) {
    let end = 0;
    const visit = (span) => {
      end = Math.max(end, span.offset + span.duration);
      span.children.forEach(visit);
    };
    spans.forEach(visit);
    return end || 1;
  }

  function spanNode(span, total) {
    // OpenTelemetry status codes arrive as OK / ERROR / UNSET.
    const item = el("li", null, "span span-" + String(span.status).toLowerCase());
    const line = el("div", null, "span-line");
    const timing = el("div", null, "span-timing");
    const bar = el("div", null, "span-bar");
    bar.style.marginLeft = ((span.offset / total) * 100).toFixed(2) + "%";
    bar.style.width = Math.max(0.5, (span.duration / total) * 100).toFixed(2) + "%";
    timing.append(bar);
    line.append(el("span", span.name, "span-name"), el("span", formatDuration(span.duration),
      "span-duration"), el("span", span.service, "muted"), timing);
    if (span.statusMessage) line.append(el("span", span.statusMessage, "error span-message"));
    item.append(line);
    if (span.children.length) {
      const children = el("ul");
      for (const child of span.children) children.append(spanNode(child, total));
      item.append(children);
    }
    return item;
  }

  function showLogs(traceId, path) {
    return openDetail("Logs of trace " + traceId, path, (body) => {
      const table = el("table", null, "logs");
      const head = row(["Time", "Level", "Service", "Action", "Detail"].map((h) => el("th", h)));
      const rows = body.items.map((e) => row([formatWhen(e.timestamp),
        el("td", e.level, "level-" + e.level), e.service, e.action, logDetail(e)]));
      table.append(el("thead"), el("tbody"));
      table.tHead.append(head);
      table.tBodies[0].append(...(rows.length ? rows : [emptyRow(5, "no log entries")]));
      return table;
    });
  }

  function logDetail(entry) {
    const cell = el("td", null, "log-detail");
    const error = entry.error;
    if (error && typeof error === "object") {
      cell.append(el("div", (error.type || "error") + ": " + (error.message || ""), "error"));
      if (error.stack) {
        const stack = el("details");
        stack.append(el("summary", "stack"), el("pre", error.stack));
        cell.append(stack);
      }
    } else if (error) {
      cell.append(el("div", error, "error"));
    } else if (entry.duration !== undefined) {
      cell.textContent = formatDuration(entry.duration);
    }
    return cell;
  }

  // ---- controls ---------------------------------------------------------------------------------

  function onRangeChange() {
    state.range = $("range").value in RANGES ? $("range").value : "1h";
    syncUrl();
    refresh();
  }

  function onRefreshChange() {
    const seconds = Number.parseFloat($("refresh").value);
    state.refreshSeconds = Number.isFinite(seconds)
      ? Math.max(MIN_REFRESH_SECONDS, seconds) : DEFAULT_REFRESH_SECONDS;
    $("refresh").value = String(state.refreshSeconds);
    syncUrl();
    schedule();
  }

  function onTokenSubmit(event) {
    event.preventDefault();
    const token = $("token").value.trim().replace(/^Bearer\s+/i, "");
    $("token").value = ""; // the field is cleared so the token is not left on screen
    if (!token) return;
    state.authMessage = null;
    state.tokenBlockedUntil = 0;
    storeToken(token);
    refresh();
  }

  function onForgetToken() {
    storeToken("");
    state.authMessage = null;
    refresh();
  }

  function onVisibilityChange() {
    if (document.hidden) clearTimeout(state.timer);
    else refresh(); // the data is as old as the time the tab was hidden
  }

  function start() {
    readUrlSettings();
    $("forget-token").hidden = !storedToken();
    $("range").addEventListener("change", onRangeChange);
    $("refresh").addEventListener("change", onRefreshChange);
    $("token-form").addEventListener("submit", onTokenSubmit);
    $("forget-token").addEventListener("click", onForgetToken);
    $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
    document.addEventListener("visibilitychange", onVisibilityChange);
    window.addEventListener("resize", resizeCharts);
    refresh();
  }

  start();
})();
