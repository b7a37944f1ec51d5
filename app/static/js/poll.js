// Polling shared by the live pages (progress.js, task-log.js): ask a JSON endpoint once a second,
// hand each answer to the page, stop when the page says so, and back off (up to 30 s) while the
// server does not answer, keeping the page as it is.
window.omegaops = window.omegaops || {};
window.omegaops.poll = function (url, onData) {
  "use strict";
  var failures = 0;
  function tick() {
    fetch(url(), { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        var next = onData(data);  // milliseconds to the next poll, or null to stop
        if (next !== null) {
          window.setTimeout(tick, next);
        }
      })
      .catch(function () {
        failures += 1;
        window.setTimeout(tick, Math.min(1000 * Math.pow(2, failures), 30000));
      });
  }
  window.setTimeout(tick, 1000);
};
