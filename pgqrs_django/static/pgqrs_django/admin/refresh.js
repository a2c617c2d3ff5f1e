// Reloads the pgqrs dashboard every data-refresh-ms milliseconds, unless the tab is hidden
// (then at the next time it becomes visible).
(function () {
  "use strict";
  var root = document.getElementById("pgqrs-monitor");
  var interval = root ? parseInt(root.getAttribute("data-refresh-ms"), 10) : NaN;
  if (!(interval > 0)) {
    return;
  }
  var due = false;
  function reload() {
    if (document.hidden) {
      due = true;
    } else {
      window.location.reload();
    }
  }
  document.addEventListener("visibilitychange", function () {
    if (due && !document.hidden) {
      window.location.reload();
    }
  });
  window.setTimeout(reload, interval);
})();
