// The device link page: follows the device over server-sent events (polling when those are
// unavailable or keep failing), asks for a pairing code, asks for new codes after expiry.
(function () {
  "use strict";
  var root = document.getElementById("link");
  if (!root) { return; }
  var urls = {
    state: root.getAttribute("data-state-url"),
    events: root.getAttribute("data-events-url"),
    pair: root.getAttribute("data-pair-url"),
    start: root.getAttribute("data-start-url")
  };
  var qr = document.getElementById("qr");
  var qrWaiting = document.getElementById("qr-waiting");
  var source = null;
  var pollTimer = null;
  var failures = 0;
  var finished = false;

  function each(selector, fn) {
    Array.prototype.forEach.call(root.querySelectorAll(selector), fn);
  }

  function show(state) {
    if (finished) { return; }
    root.setAttribute("data-view", state.view);
    root.setAttribute("data-status", state.status || "");
    each("[data-when]", function (el) {
      var views = el.getAttribute("data-when").split(" ");
      el.hidden = views.indexOf(state.view) < 0;
    });
    if (state.qr) {
      if (qr.getAttribute("src") !== state.qr) { qr.setAttribute("src", state.qr); }
      qr.hidden = false;
      qrWaiting.hidden = true;
    } else {
      qr.hidden = true;
      qrWaiting.hidden = false;
    }
    each(".phone", function (el) { el.textContent = state.phone || ""; });
    each(".status-text", function (el) { el.textContent = state.status || "unavailable"; });
    if (state.view === "connected") { stop(); }
  }

  function gone() {
    stop();
    finished = true;
    root.setAttribute("data-view", "gone");
    each("[data-when]", function (el) { el.hidden = true; });
    document.getElementById("gone").hidden = false;
  }

  function stop() {
    if (source) { source.close(); source = null; }
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }

  function poll() {
    fetch(urls.state, { cache: "no-store", credentials: "omit" }).then(function (r) {
      if (r.status === 404) { gone(); return null; }
      return r.ok ? r.json() : null;
    }).then(function (state) { if (state) { show(state); } }).catch(function () {});
  }

  function startPolling() {
    if (source) { source.close(); source = null; }
    if (pollTimer || finished) { return; }
    poll();
    pollTimer = setInterval(poll, 2000);
  }

  function listen() {
    if (!window.EventSource) { startPolling(); return; }
    source = new EventSource(urls.events);
    source.addEventListener("state", function (e) {
      failures = 0;
      show(JSON.parse(e.data));
    });
    source.addEventListener("gone", gone);
    source.onerror = function () {
      failures += 1;
      // A closed stream (e.g. a 404 because the link was revoked) or one that keeps failing
      // (a proxy that buffers): fall back to polling, which also notices a dead link.
      if (!source || source.readyState === 2 || failures >= 3) { startPolling(); }
    };
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    }).then(function (r) {
      if (r.status === 404) { gone(); throw new Error("gone"); }
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    });
  }

  var pairForm = document.getElementById("pair-form");
  pairForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var button = pairForm.querySelector("button");
    var error = document.getElementById("pair-error");
    var result = document.getElementById("pair-result");
    button.disabled = true;
    error.hidden = true;
    postJSON(urls.pair, { phone: document.getElementById("phone").value }).then(function (res) {
      if (res.ok) {
        document.getElementById("pairing-code").textContent = res.data.pairing_code;
        result.hidden = false;
      } else {
        error.textContent = res.data.message || "Could not get a pairing code.";
        error.hidden = false;
      }
    }).catch(function () {}).then(function () { button.disabled = false; });
  });

  var startForm = document.getElementById("start-form");
  startForm.addEventListener("submit", function (e) {
    e.preventDefault();
    postJSON(urls.start, {}).then(function (res) {
      if (res.ok) { show(res.data); }
      if (!source && !pollTimer) { listen(); }
    }).catch(function () {});
  });

  listen();
}());
