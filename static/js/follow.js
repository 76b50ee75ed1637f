/* Following long work on a page (a payment run, a tax package, payslips, a reconciliation): every `everyMs` the
   page asks `url` for JSON and hands it to `show`, which updates the figures; when `show` returns true the work is
   over and the page reloads to show its final state. A failed request (a restart, a dropped connection) is tried
   again a little later. An answer that is the sign-in page (the session ended) or a refusal (the user may no longer
   see the work) reloads the page too, which then shows that, instead of the last figures for ever. */
window.followProgress = function (url, show, everyMs) {
  var every = everyMs || 1500;
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (response.redirected || (response.status >= 400 && response.status < 500)) { return null; }
        return response.json();
      })
      .then(function (data) {
        if (data === null || show(data)) { window.location.reload(); } else { window.setTimeout(poll, every); }
      })
      .catch(function () { window.setTimeout(poll, 2 * every); });
  }
  window.setTimeout(poll, every);
};

/* The text of the element marked data-testid=`id` inside `root`, when there is one. */
window.followProgress.setText = function (root, id, value) {
  var element = root.querySelector("[data-testid=" + id + "]");
  if (element) { element.textContent = value; }
};

/* The progress bar inside `root`: `percent` done for screen readers, the paid (or succeeded) and failed parts
   drawn as shares of `total`. */
window.followProgress.setBar = function (root, percent, paid, failed, total) {
  var bar = root.querySelector(".progress-bar");
  bar.setAttribute("aria-valuenow", percent);
  bar.querySelector(".progress-paid").style.width = (total ? 100 * paid / total : 0) + "%";
  bar.querySelector(".progress-failed").style.width = (total ? 100 * failed / total : 0) + "%";
};
