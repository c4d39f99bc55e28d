// xdscp dashboard: renders /api/events (services with their measured load, nodes, sources)
// and /api/predict. No
// dependencies. Until the first data arrives the page says "loading…"; when the API fails
// (an unreachable server, a route answering 500, a `failed` event) a banner says so and
// the data shown is marked stale with its time, never silently frozen.
"use strict";

const cards = new Map(); // service name -> {card, json (last rendered), predicted (json)}
const alerts = {api: null, failed: new Map(), sources: []}; // what the banner shows
const received = new Map(); // topic -> when its data last arrived

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function pct(x) {
  return (100 * x).toFixed(1) + " %";
}

function locality(l) {
  return [l.region, l.zone, l.sub_zone].filter(Boolean).join("/") || "—";
}

function share(x) {
  return x === null || x === undefined ? "—" : pct(x);
}

// Measured (the clients' load reports: requests per second and share of the service's) beside
// the reference balancers' predicted share (each reporting client kind's, mixed by its share of
// the load: the "predicted" heading's title says which) and the weight served.
function endpointsTable(service) {
  const body = el("tbody");
  for (const e of service.endpoints) {
    const measured = e.measured_share === null || e.measured_share === undefined ? "" : String(e.measured_share);
    body.append(el("tr", {"data-endpoint": e.key},
      el("td", {text: e.key}),
      el("td", {class: "num", text: String(e.weight)}),
      el("td", {text: locality(e.locality)}),
      el("td", {class: "num", text: String(e.priority)}),
      el("td", {class: "health-" + e.health, text: e.health}),
      el("td", {text: e.source || "—"}),
      el("td", {class: "num", "data-measured-rps": e.measured_rps === null ? "" : String(e.measured_rps),
        text: e.measured_rps === null || e.measured_rps === undefined ? "—" : e.measured_rps.toFixed(1)}),
      el("td", {class: "num measured", "data-measured-share": measured, text: share(e.measured_share)}),
      el("td", {class: "num", "data-predicted-share": e.predicted_share === null ? "" : String(e.predicted_share),
        text: share(e.predicted_share)})));
  }
  if (!service.endpoints.length) {
    body.append(el("tr", {}, el("td", {colspan: "9", class: "empty", text: "no endpoints"})));
  }
  const by = (service.load || {}).predicted_by;
  const kinds = by && typeof by === "object" ? Object.entries(by).map(([kind, f]) => `${kind} ${pct(f)}`).join(", ") : "";
  const head = el("tr", {}, ...["endpoint", "weight", "locality", "priority", "health", "source",
    "rps", "measured"].map((name) => el("th", {text: name})),
    el("th", {text: "predicted", "data-predicted-by": kinds,
      title: kinds ? "the prediction of the clients that reported, by their share of the load: " + kinds : ""}));
  return el("table", {class: "endpoints"}, el("thead", {}, head), body);
}

function renderSplit(entry, prediction) {
  const box = entry.card.querySelector(".split");
  box.replaceChildren(el("h4", {text: `predicted split (${prediction.client}, ${prediction.requests} requests)`}));
  for (const row of prediction.split) {
    const fill = el("div", {class: "fill"});
    fill.style.width = pct(row.share).replace(" ", "");
    const weight = el("div", {class: "weight", title: "weight share " + pct(row.weight_share)});
    weight.style.left = pct(row.weight_share).replace(" ", "");
    box.append(el("div", {class: "split-row", "data-split-endpoint": row.endpoint,
      "data-share": String(row.share), "data-requests": String(row.requests)},
    el("span", {class: "key", text: row.endpoint}),
    el("div", {class: "bar"}, fill, weight),
    el("span", {class: "share", text: pct(row.share)})));
  }
  if (prediction.unserved) {
    box.append(el("p", {class: "error", text: `${prediction.unserved} requests find no endpoint`}));
  }
  box.append(el("p", {class: "legend", text: "bar: predicted share · mark: weight share"}));
}

function showError(box, message) {
  box.replaceChildren(el("p", {class: "error", text: message}));
}

async function predict(name, params) {
  const query = new URLSearchParams([["service", name], ...(params || [])]);
  const response = await fetch("/api/predict?" + query.toString());
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function refreshSplit(name) {
  const entry = cards.get(name);
  const seq = (entry.seq = (entry.seq || 0) + 1); // only the newest answer is drawn
  predict(name).then((prediction) => {
    if (cards.get(name) === entry && entry.seq === seq) renderSplit(entry, prediction);
  }).catch((err) => showError(entry.card.querySelector(".split"), "prediction: " + err.message));
}

function lookupForm(service) {
  const fields = service.policy.hash_on.map((spec) => {
    const [source, name] = spec.split(":");
    const param = {header: "header", cookie: "cookie", query_parameter: "query"}[source];
    const label = source === "source_ip" ? "source IP" : `${source} ${name}`;
    return {param, name, input: el("input", {placeholder: label, "aria-label": label,
      "data-hash-on": spec})};
  });
  const answer = el("div", {class: "answer"});
  const form = el("form", {}, ...fields.map((f) => f.input), el("button", {type: "submit", text: "which endpoint?"}));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = fields.filter((f) => f.input.value !== "").map((f) =>
      f.param ? [f.param, `${f.name}:${f.input.value}`] : ["ip", f.input.value]);
    predict(service.name, params).then((result) => {
      const r = result.request || {};
      answer.dataset.endpoint = r.endpoint || "";
      answer.textContent = r.endpoint ? `→ ${r.endpoint}  (hash ${r.hash})` : (r.note || "no answer");
      answer.className = "answer";
    }).catch((err) => { answer.textContent = err.message; answer.className = "answer error"; });
  });
  return el("div", {class: "lookup"},
    el("h4", {text: "which endpoint does a request reach?"}), form, answer);
}

// The policy as the API gives it (the model's own form): one row per field, nested parts
// as `outlier_detection.interval`; a part that is off is one row saying so.
function policyRows(value, prefix) {
  const rows = [];
  for (const [key, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) rows.push(...policyRows(v, path));
    else rows.push([path, v]);
  }
  return rows;
}

function policyValue(v) {
  if (v === null) return "off";
  if (Array.isArray(v)) return v.length ? v.join(", ") : "none";
  return String(v);
}

function policyDetails(policy) {
  const parts = Object.entries(policy)
    .filter(([, v]) => v !== null && typeof v === "object" && !Array.isArray(v))
    .map(([k]) => k.replaceAll("_", " "));
  const body = el("tbody");
  for (const [path, v] of policyRows(policy, "")) {
    body.append(el("tr", {},
      el("th", {text: path}),
      el("td", {"data-policy-field": path, text: policyValue(v)})));
  }
  const summary = ["policy: " + policy.lb, ...parts].join(" · ");
  return el("details", {class: "policy-detail"}, el("summary", {text: summary}),
    el("table", {class: "policy"}, body));
}

// A route's match in one line: the path form, the headers, `*` for every request.
function matchText(m) {
  const parts = [];
  if (m.grpc) parts.push(`grpc ${m.grpc.service}/${m.grpc.method || "*"}`);
  for (const form of ["prefix", "path", "regex"]) if (m[form] !== undefined) parts.push(`${form} ${m[form]}`);
  if (m.case_sensitive === false) parts.push("(any case)");
  for (const h of m.headers || []) {
    const kind = ["exact", "prefix", "suffix", "regex", "present", "range"].find((k) => h[k] !== undefined);
    const value = kind === "present" ? "present" : kind === "range" ? `in [${h.range[0]}, ${h.range[1]})` : `${kind} ${h[kind]}`;
    parts.push(`${h.invert ? "not " : ""}${h.name} ${value}`);
  }
  return parts.length ? parts.join(" · ") : "*";
}

function faultText(f) {
  if (!f) return "—";
  const parts = [];
  if (f.delay) parts.push(`delay ${f.delay.fixed}s ${f.delay.percent} %`);
  if (f.abort) {
    const code = f.abort.http_status !== undefined ? `http ${f.abort.http_status}` : `grpc ${f.abort.grpc_status}`;
    parts.push(`abort ${code} ${f.abort.percent} %`);
  }
  return parts.join(", ");
}

// The routes as served (`/api/services`): match → targets with weight and share; a target
// that is not served is struck through, a route left with none marked "not sent".
function routesTable(service) {
  const body = el("tbody");
  service.routes.forEach((r, index) => {
    const targets = el("td", {"data-route-targets": r.targets.map((t) => `${t.cluster}:${t.share}`).join(",")});
    for (const t of r.targets) {
      const weight = t.weight === null ? "" : ` ${t.weight}`;
      targets.append(el("span", {class: "target", "data-target": t.cluster, text: `${t.cluster}${weight} (${pct(t.share)})`}));
    }
    for (const name of r.dropped) {
      targets.append(el("span", {class: "target dropped", "data-dropped": name, title: "not served", text: name}));
    }
    if (!r.served) targets.append(el("span", {class: "note", text: "not sent"}));
    body.append(el("tr", {"data-route": String(index), class: r.served ? "" : "unserved"},
      el("td", {class: "num", text: String(index)}),
      el("td", {class: "match", text: matchText(r.match) + (r.default ? " (default)" : "")}),
      targets,
      el("td", {text: r.timeout === null ? "—" : `${r.timeout}s`}),
      el("td", {"data-fault": r.fault ? "1" : "", text: faultText(r.fault)})));
  });
  const head = el("tr", {}, ...["#", "match", "→ targets", "timeout", "fault"].map((name) => el("th", {text: name})));
  return el("div", {class: "routes"}, el("h4", {text: "routes (first match wins)"}),
    el("table", {class: "routes"}, el("thead", {}, head), body), routeForm(service, body));
}

// "Which route does a request take?": /api/predict with the path and headers; the row of
// the route taken is marked and the answer gives its clusters' and endpoints' shares.
function routeForm(service, body) {
  const path = el("input", {placeholder: "path /", "aria-label": "path", "data-route-path": ""});
  const headers = el("input", {placeholder: "header name:value, …", "aria-label": "headers",
    "data-route-headers": ""});
  const answer = el("div", {class: "answer", "data-route-answer": ""});
  const form = el("form", {}, path, headers, el("button", {type: "submit", text: "which route?"}));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = [["path", path.value || "/"], ...headers.value.split(",").map((h) => h.trim())
      .filter(Boolean).map((h) => ["header", h])];
    predict(service.name, params).then((result) => {
      const r = result.route;
      const rows = [...body.querySelectorAll("tr")].filter((row) => !row.classList.contains("unserved"));
      for (const row of body.querySelectorAll("tr")) row.classList.remove("taken");
      if (r.index === null) {
        answer.dataset.taken = "";
        answer.textContent = "no route matches (Envoy answers 404, gRPC clients UNAVAILABLE)";
        return;
      }
      const row = rows[r.index];
      row.classList.add("taken");
      answer.dataset.taken = row.dataset.route;
      const clusters = r.clusters.map((c) => `${c.cluster} ${pct(c.share)}`).join(", ");
      const endpoints = r.clusters.flatMap((c) => c.endpoints.map((e) => `${e.endpoint} ${pct(e.route_share)}`));
      answer.textContent = `→ #${row.dataset.route}: ${clusters} · ${endpoints.join(", ")}`;
      answer.className = "answer";
    }).catch((err) => { answer.textContent = err.message; answer.className = "answer error"; });
  });
  return el("div", {class: "lookup route-lookup"}, form, answer);
}

// The service without its measured load: what the predicted split depends on.
function shapeOf(service) {
  const endpoints = service.endpoints.map(
    ({measured_rps, measured_share, predicted_share, ...rest}) => rest);
  return JSON.stringify({...service, load: null, endpoints});
}

function renderService(service) {
  const json = JSON.stringify(service);
  let entry = cards.get(service.name);
  if (entry && entry.json === json) return entry.card;
  if (!entry) {
    entry = {card: el("article", {class: "service", "data-service": service.name})};
    cards.set(service.name, entry);
  }
  const policy = service.policy;
  const title = el("h3", {}, el("span", {text: service.name}),
    el("span", {class: "badge policy", "data-policy": policy.lb, text: policy.lb}),
    policy.hash_on.length ? el("span", {class: "badge", text: "hash on " + policy.hash_on.join(", ")}) : null,
    el("span", {class: "badge", text: "source " + (service.source || "—")}),
    el("span", {class: "badge", text: `${service.endpoints.length} endpoints`}),
    service.load && service.load.rps !== null
      ? el("span", {class: "badge load", "data-load-rps": String(service.load.rps),
        text: `measured ${service.load.rps.toFixed(1)} rps`}) : null);
  const keepLookup = entry.json && JSON.parse(entry.json).policy.hash_on.join() === policy.hash_on.join();
  const lookup = keepLookup ? entry.card.querySelector(".lookup") : (policy.hash_on.length ? lookupForm(service) : null);
  const split = entry.card.querySelector(".split") || el("div", {class: "split"});
  const open = entry.card.querySelector("details.policy-detail")?.open;
  const details = policyDetails(policy);
  details.open = Boolean(open);
  const routesJson = JSON.stringify(service.routes);
  const keepRoutes = entry.routesJson === routesJson && entry.card.querySelector("div.routes");
  const routes = service.routes ? [keepRoutes || routesTable(service)] : [];
  entry.routesJson = routesJson;
  entry.card.replaceChildren(title, details, ...routes,
    el("div", {class: "columns"},
    endpointsTable(service), el("div", {}, split, lookup)));
  entry.json = json;
  const shape = shapeOf(service);
  if (entry.shape !== shape) refreshSplit(service.name); // load alone: the split stands
  entry.shape = shape;
  return entry.card;
}

function renderServices(services) {
  const box = document.getElementById("services");
  const names = new Set(services.map((s) => s.name));
  for (const name of [...cards.keys()]) if (!names.has(name)) cards.delete(name);
  box.replaceChildren(...services.map(renderService));
  if (!services.length) box.append(el("p", {class: "empty", text: "No services yet."}));
  box.dataset.count = String(services.length);
  updateSummary();
}

function nacksOf(node) {
  // A `nacks` history (newest last) when the server keeps one, else the last NACK per type.
  if (Array.isArray(node.nacks)) return node.nacks;
  return Object.entries(node.last_nack || {}).map(([type, n]) => ({type, ...n}));
}

function nodeRow(node) {
  const sync = el("td");
  for (const [type, t] of Object.entries(node.types || {})) {
    sync.append(el("span", {class: "sync " + (t.in_sync ? "yes" : "no"), "data-type": type,
      title: `sent ${t.sent_version || "—"}, accepted ${t.acked_version || "—"}`,
      text: `${type} ${t.in_sync ? "✓" : "✗"}`}));
  }
  const nacks = el("td", {class: "nacks"});
  for (const n of nacksOf(node)) {
    nacks.append(el("div", {class: "nack"},
      el("span", {class: "meta", text: `${n.at || ""} ${n.type || ""} ${n.version || ""}${n.nonce ? " nonce " + n.nonce : ""}: `}),
      el("span", {text: n.error || ""})));
  }
  if (!nacks.childElementCount) nacks.textContent = "—";
  return el("tr", {"data-node": node.node},
    el("td", {text: node.node}),
    el("td", {text: node.client, title: node.user_agent || ""}),
    el("td", {text: node.group}),
    sync,
    el("td", {text: node.connected_since || ""}),
    nacks);
}

let nodeCount = 0;

function renderNodes(nodes) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(...nodes.map(nodeRow));
  if (!nodes.length) body.append(el("tr", {class: "empty"}, el("td", {colspan: "6", text: "No nodes connected."})));
  nodeCount = nodes.length;
  updateSummary();
}

function updateSummary() {
  if (!received.has("services") || !received.has("nodes")) return;
  document.getElementById("summary").textContent = `${cards.size} services · ${nodeCount} nodes`;
}

function clock(date) {
  return date ? date.toLocaleTimeString() : "never";
}

function renderAlerts() {
  const box = document.getElementById("alerts");
  const items = [];
  if (alerts.api) {
    const since = [...received.values()].sort((a, b) => a - b)[0];
    items.push(el("p", {class: "alert", "data-alert": "api",
      text: `${alerts.api} — the data shown is from ${clock(since)} and may be stale.`}));
  }
  for (const [topic, error] of alerts.failed) {
    items.push(el("p", {class: "alert", "data-alert": "failed:" + topic,
      text: `The server could not send ${topic} (${error}); shown: ${clock(received.get(topic))}.`}));
  }
  for (const s of alerts.sources) {
    items.push(el("p", {class: "alert", "data-alert": "source:" + s.source,
      text: `Source ${s.source} degraded since ${new Date(s.since).toLocaleString()}: ${s.error}.` +
        " Its last known services are served."}));
  }
  box.replaceChildren(...items);
  box.hidden = !items.length;
  const stale = Boolean(alerts.api || alerts.failed.size);
  document.querySelector("main").classList.toggle("stale", stale);
}

async function probe() {
  // The event stream broke: ask a plain route why, so the banner names the failure.
  try {
    const response = await fetch("/api/services");
    if (response.ok) return "The live updates stopped (reconnecting…)";
    const body = await response.json().catch(() => ({}));
    return `The admin API fails: /api/services answers ${response.status} ${body.error || response.statusText}`;
  } catch (err) {
    return "The admin server does not answer (reconnecting…)";
  }
}

function receive(topic, render) {
  return (e) => {
    render(JSON.parse(e.data));
    received.set(topic, new Date());
    alerts.failed.delete(topic);
    updateSummary();
    renderAlerts();
  };
}

function connect() {
  const live = document.getElementById("live");
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => {
    live.textContent = "live"; live.className = "live";
    alerts.api = null; renderAlerts();
  });
  events.addEventListener("error", () => {
    live.textContent = "reconnecting…"; live.className = "live off";
    probe().then((message) => {
      if (events.readyState !== EventSource.OPEN) { alerts.api = message; renderAlerts(); }
    });
  });
  events.addEventListener("services", receive("services", (d) => renderServices(d.services)));
  events.addEventListener("nodes", receive("nodes", renderNodes));
  events.addEventListener("sources", receive("sources", (d) => {
    alerts.sources = d.sources.filter((s) => s.state === "degraded");
  }));
  events.addEventListener("failed", (e) => {
    const failure = JSON.parse(e.data);
    alerts.failed.set(failure.topic, failure.error);
    renderAlerts();
  });
}

connect();
