// Follows a plan job on its page: polls the JSON status, updates the progress bar and opens the
// result when it is ready. Without JavaScript the page shows the same by being reloaded.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || !window.fetch) { return; }
  var statusUrl = box.getAttribute("data-status-url");
  var bar = document.getElementById("job-progress");
  var percent = document.getElementById("job-percent");
  var message = document.getElementById("job-message");
  var reload = document.getElementById("job-reload");
  if (reload) { reload.hidden = true; }
  var delay = 500;

  function show(status) {
    var value = Math.round(100 * (status.fraction || 0));
    bar.value = value;
    bar.textContent = value + " %";
    percent.textContent = value + " %";
    message.textContent = status.message || "";
  }

  function poll() {
    fetch(statusUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (status) {
        show(status);
        if (status.result) {
          window.location.assign(status.result);
        } else if (status.finished) {
          window.location.reload();
        } else {
          delay = Math.min(3000, delay * 1.5);
          window.setTimeout(poll, delay);
        }
      })
      .catch(function () {
        if (reload) { reload.hidden = false; }
      });
  }
  window.setTimeout(poll, delay);
}());
