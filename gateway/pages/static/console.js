// The partner console: live device status (polling small JSON endpoints), nothing else.
(function () {
  "use strict";
  var INTERVAL = 2000;

  function poll(url, apply) {
    function tick() {
      if (document.hidden) { return; }
      fetch(url, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) { window.location.assign("/console/login"); return null; }
        return r.ok ? r.json() : null;
      }).then(function (data) { if (data) { apply(data); } }).catch(function () {});
    }
    setInterval(tick, INTERVAL);
  }

  function setStatus(el, status) {
    if (el && el.getAttribute("data-status") !== status) {
      el.setAttribute("data-status", status);
      el.textContent = status;
    }
  }

  var list = document.querySelector("[data-live='devices']");
  if (list) {
    poll(list.getAttribute("data-url"), function (data) {
      data.devices.forEach(function (d) {
        var row = list.querySelector("tr[data-session-id='" + d.session_id + "']");
        if (!row) { return; }
        setStatus(row.querySelector("[data-field='status']"), d.status);
        row.querySelector("[data-field='phone']").textContent = d.phone || "";
      });
    });
  }

  var device = document.querySelector("[data-live='device']");
  if (device) {
    var img = document.getElementById("device-qr");
    var box = device.querySelector("[data-field='qr-box']");
    poll(device.getAttribute("data-url"), function (d) {
      setStatus(device.querySelector("[data-field='status']"), d.status);
      device.querySelector("[data-field='phone']").textContent = d.phone || "—";
      device.querySelector("[data-field='last_error']").textContent = d.last_error || "—";
      if (d.qr) {
        if (img.getAttribute("src") !== d.qr) { img.setAttribute("src", d.qr); }
        box.hidden = false;
      } else {
        box.hidden = true;
      }
    });
  }
}());
