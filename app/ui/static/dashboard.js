// Heartbeat ages tick every second between server updates, and turn stale by the rule
// `taskbeat heartbeats` uses: older than the lease, plus the second a stored beat rounds off.
(function () {
  "use strict";
  function tick() {
    var staleAfter = parseFloat(document.body.dataset.staleAfter || "6");
    var now = Date.now() / 1000;
    document.querySelectorAll(".age[data-beat]").forEach(function (el) {
      var beat = parseFloat(el.dataset.beat);
      if (isNaN(beat)) { return; }
      var age = Math.max(0, now - beat);
      el.textContent = "beat " + age.toFixed(0) + " s ago";
      el.classList.toggle("stale", now - (beat + 1) > staleAfter);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    document.body.addEventListener("htmx:afterSwap", tick);
    document.body.addEventListener("htmx:sseMessage", tick);
  });
})();
