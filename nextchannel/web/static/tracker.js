/*! nextchannel tracker: behaviour signals to /v1/events, the offer widget back. No dependencies.
 *
 * Configure before loading (all optional):
 *   window.nextchannelConfig = {
 *     endpoint: "",                 // base URL of the service ("" = this origin)
 *     consent: function (allow) {}, // call allow(true) once the visitor consents; nothing is sent before
 *     pageTypes: [["^/checkout", "checkout"]], // URL rules when the page has no data-nc-page-type
 *                                   // (neither: "category"); types as in nextchannel.schema.PAGE_TYPES
 *     idleSeconds: 15, flushMs: 1500, customerId: null
 *   };
 * API: nextchannel.track("cart_add", {value: 30}); nextchannel.track("search", {n_results: 0});
 *      nextchannel.track("purchase", {value: 80}); nextchannel.consent(true|false).
 * Only event types, times, page paths, page types, numbers and the *name* of a form field with an
 * error leave the page: never what a visitor typed.
 */
(function (w, d) {
  "use strict";
  if (w.nextchannel && w.nextchannel.track) return;
  var cfg = w.nextchannelConfig || {}, base = cfg.endpoint || "", idleS = cfg.idleSeconds || 15,
    flushMs = cfg.flushMs || 1500, ss = w.sessionStorage, ls = w.localStorage, TIMEOUT = 1800,
    queue = [], consent = false, denied = false, lastTs = 0, lastInput = now(), idleFrom = 0,
    timer = 0, sending = false, widget = null, lastDir = "", maxDepth = 0, sid, fresh, lastErr = {};

  function now() { return Date.now() / 1000; }
  function get(s, k) { try { return s.getItem(k); } catch (e) { return null; } }
  function put(s, k, v) { try { s.setItem(k, v); } catch (e) { /* storage off: one id per page */ } }
  function newId() {
    var a = new Uint8Array(16), s = "";
    (w.crypto || w.msCrypto).getRandomValues(a);
    for (var i = 0; i < 16; i++) s += (a[i] + 256).toString(16).slice(1);
    return s;
  }
  // a session ends after 30 minutes without events, as in web analytics
  sid = get(ss, "nc_sid");
  fresh = !sid || now() - (+get(ss, "nc_seen") || 0) > TIMEOUT;
  if (fresh) sid = newId();

  function push(type, fields) {
    var t = Math.max(now(), lastTs), e = { ts: Math.round(t * 1000) / 1000, type: type }, k;
    lastTs = t;
    for (k in fields) if (fields.hasOwnProperty(k)) e[k] = fields[k];
    if (denied) return;
    queue.push(e);
    if (queue.length > 200) queue.shift();
    schedule(/^(page_view|idle|form_error|exit_intent|search|cart_remove)$/.test(type) ? 300 : flushMs);
  }
  function schedule(ms) {
    if (timer && ms >= flushMs) return;
    clearTimeout(timer);
    timer = setTimeout(flush, ms);
  }
  function post(path, body, beacon) {
    var data = JSON.stringify(body);
    if (beacon && navigator.sendBeacon) {
      // text/plain keeps a cross-origin beacon a simple request; the service reads JSON anyway
      return navigator.sendBeacon(base + path, new Blob([data], { type: "text/plain" })), null;
    }
    return fetch(base + path, { method: "POST", body: data, keepalive: true, credentials: "omit",
      headers: { "Content-Type": "application/json" } });
  }
  function flush(beacon) {
    timer = 0;
    if (!consent || !queue.length || (sending && !beacon)) return;
    var batch = queue.splice(0, 100), body = { session_id: sid, events: batch }, r;
    if (cfg.customerId) body.customer_id = cfg.customerId;
    put(ss, "nc_sid", sid);
    put(ss, "nc_seen", "" + now());
    r = post("/v1/events", body, beacon === true);
    if (!r) return;
    sending = true;
    r.then(function (res) { return res.ok ? res.json() : null; }).then(function (j) {
      sending = false;
      if (j && j.decision) show(j.decision);
      if (queue.length) schedule(0);
    }, function () { sending = false; }); // at most once: a batch whose answer is lost may have arrived
  }
  // what happens to an offer travels in the event stream, in order with the other events
  function outcome(dec, what) {
    push("offer_" + what, { channel: dec.channel, decision_id: dec.decision_id });
    schedule(0);
  }

  // ---- the offer widget ---------------------------------------------------------------------
  function el(tag, attrs, text) {
    var n = d.createElement(tag), k;
    for (k in attrs) n.setAttribute(k, attrs[k]);
    if (text) n.textContent = text;
    return n;
  }
  function close(dec, what) {
    if (!widget) return;
    widget.parentNode.removeChild(widget);
    widget = null;
    outcome(dec, what);
    d.removeEventListener("keydown", widget_esc, true);
  }
  var widget_esc;
  function show(dec) {
    var r = dec.render;
    if (!dec.offer || !r || widget) return;
    widget = el("div", { role: "dialog", "aria-modal": "false", "aria-labelledby": "nc-t", "aria-describedby": "nc-x",
      lang: r.lang, "class": "nc-offer", "data-nc-channel": dec.channel,
      style: "position:fixed;right:16px;bottom:16px;max-width:320px;z-index:2147483000;background:#fff;" +
        "color:#111;border:1px solid #888;border-radius:8px;padding:14px 16px;font:15px/1.4 sans-serif;" +
        "box-shadow:0 4px 16px rgba(0,0,0,.25)" });
    var x = el("button", { type: "button", "aria-label": r.dismiss, "class": "nc-close",
      style: "position:absolute;top:4px;right:6px;border:0;background:none;font-size:20px;cursor:pointer" }, "\u00d7");
    var a = el(/^#/.test(r.href) ? "button" : "a", { "class": "nc-accept",
      style: "display:inline-block;margin-top:8px;padding:8px 12px;background:#0a58ca;color:#fff;border:0;" +
        "border-radius:4px;text-decoration:none;cursor:pointer" }, r.accept);
    var no = el("button", { type: "button", "class": "nc-dismiss",
      style: "margin-left:8px;background:none;border:0;text-decoration:underline;cursor:pointer" }, r.dismiss);
    if (a.tagName === "A") a.setAttribute("href", r.href);
    widget.appendChild(x);
    widget.appendChild(el("strong", { id: "nc-t" }, r.title));
    widget.appendChild(el("p", { id: "nc-x", style: "margin:6px 0 0" }, r.text));
    widget.appendChild(a);
    widget.appendChild(no);
    x.onclick = no.onclick = function () { close(dec, "dismissed"); };
    a.onclick = function () {
      if (a.tagName !== "A") d.dispatchEvent(new CustomEvent("nextchannel:accept", { detail: dec }));
      close(dec, "accepted");
    };
    widget_esc = function (e) { if (e.key === "Escape") close(dec, "dismissed"); };
    d.addEventListener("keydown", widget_esc, true);
    d.body.appendChild(widget);
    outcome(dec, "shown");
  }

  // ---- signals --------------------------------------------------------------------------------
  function device() {
    var wd = w.screen ? Math.min(w.screen.width, w.innerWidth || 1e4) : 1e4,
      coarse = w.matchMedia && w.matchMedia("(pointer:coarse)").matches;
    return wd < 768 ? "mobile" : coarse && wd < 1300 ? "tablet" : "desktop";
  }
  function referrer() {
    var r = d.referrer, q = location.search;
    if (/utm_medium=e-?mail/i.test(q)) return "email";
    if (/gclid=|utm_medium=(cpc|ppc|paid)/i.test(q)) return "ads";
    if (!r || r.indexOf(location.origin) === 0) return "direct";
    if (/google\.|bing\.|duckduckgo\.|yahoo\.|ecosia\./.test(r)) return "search";
    if (/facebook\.|instagram\.|t\.co|twitter\.|linkedin\.|tiktok\.|reddit\./.test(r)) return "social";
    return "other";
  }
  function pageType() {
    var n = d.querySelector("[data-nc-page-type]"), rules = cfg.pageTypes || [], i;
    if (n) return n.getAttribute("data-nc-page-type");
    for (i = 0; i < rules.length; i++) if (new RegExp(rules[i][0]).test(location.pathname)) return rules[i][1];
    return "category"; // a page of no known type counts as browsing
  }
  function input() {
    var t = now();
    if (idleFrom && t - idleFrom >= 1) push("idle", { duration_s: Math.round((t - idleFrom) * 10) / 10 });
    idleFrom = 0;
    lastInput = t;
  }
  // an idle period is reported when it reaches idleSeconds, then every idleSeconds while it lasts,
  // and its rest when input (or leaving the page) ends it: the durations add up to the idle time
  setInterval(function () {
    var t = now(), from = idleFrom || lastInput;
    if (t - from >= idleS && !d.hidden) {
      push("idle", { duration_s: Math.round((t - from) * 10) / 10 });
      idleFrom = t;
    }
  }, 1000);
  function on(type, fn, opts) { d.addEventListener(type, fn, opts || true); }
  ["mousemove", "keydown", "touchstart", "wheel"].forEach(function (t) { on(t, input, { capture: true, passive: true }); });
  on("click", function () { input(); push("click", {}); });
  w.addEventListener("scroll", function () {
    var h = d.documentElement, max = h.scrollHeight - h.clientHeight, y = w.scrollY || h.scrollTop,
      depth = max > 0 ? Math.min(1, y / max) : 1, dir = depth > maxDepth ? "down" : depth < maxDepth ? "up" : "";
    input();
    // one event per change of direction, and per quarter of the page going further down
    if (dir && (dir !== lastDir || Math.floor(depth * 4) > Math.floor(maxDepth * 4))) {
      push("scroll", { depth: Math.round(depth * 100) / 100, direction: dir });
      lastDir = dir;
    }
    maxDepth = depth;
  }, { passive: true });
  function formError(n) {
    var f = (n && (n.name || n.id)) || "", t = now();
    if (!f || t - (lastErr[f] || 0) < 1) return;
    lastErr[f] = t;
    push("form_error", { field: ("" + f).slice(0, 64) });
  }
  on("invalid", function (e) { formError(e.target); });
  on("submit", function () { push("form_submit", {}); });
  if (w.MutationObserver) new MutationObserver(function (ms) {
    ms.forEach(function (m) { if (m.target.getAttribute("aria-invalid") === "true") formError(m.target); });
  }).observe(d.documentElement, { attributes: true, subtree: true, attributeFilter: ["aria-invalid"] });
  var lastExit = 0;
  function exitIntent() {
    var t = now();
    if (t - lastExit > 10) { lastExit = t; push("exit_intent", {}); }
  }
  on("mouseout", function (e) { if (e.clientY <= 0 && !e.relatedTarget) exitIntent(); });
  d.addEventListener("visibilitychange", function () {
    if (d.visibilityState !== "hidden") return;
    if (idleFrom) input();
    if (device() !== "desktop") exitIntent();
    flush(true);
  });
  w.addEventListener("pagehide", function () { flush(true); });

  w.nextchannel = {
    track: function (type, fields) { push(type, fields || {}); },
    consent: function (yes) {
      consent = !!yes;
      denied = !yes;
      if (denied) queue = [];
      else { put(ls, "nc_returning", "1"); schedule(0); }
    },
    sessionId: function () { return sid; }
  };
  if (fresh) push("session_start", { device: device(), language: (navigator.language || "").slice(0, 2).toLowerCase(),
    referrer: referrer(), returning: !!get(ls, "nc_returning"), utc_offset_s: -new Date().getTimezoneOffset() * 60 });
  push("page_view", { page: location.pathname.slice(0, 200), page_type: pageType() });
  if (typeof cfg.consent === "function") {
    if (cfg.consent(function (yes) { w.nextchannel.consent(yes); }) === true) w.nextchannel.consent(true);
  } else if (cfg.consent === true) w.nextchannel.consent(true);
})(window, document);
