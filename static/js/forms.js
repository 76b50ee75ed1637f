/* A form is sent once. Every page's POST form (paying, approving, funding, signing, resolving...) changes
   something: a second click, or Enter pressed again, while the first submission is on its way sends nothing
   (it would reach the server after the first had moved the work on, and its answer, "the state does not allow
   this", would replace the page that says what the first click did). The button clicked shows it is working.
   A page restored by the browser's back button is ready to send again. A form whose own script already handles
   the submit (and prevented it) is left alone. */
(function () {
  function sending(form) { return form.getAttribute("data-sending") === "1"; }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || (form.getAttribute("method") || "").toLowerCase() !== "post") { return; }
    if (sending(form)) { event.preventDefault(); return; }
    if (event.defaultPrevented) { return; }
    form.setAttribute("data-sending", "1");
    var button = event.submitter;
    if (button) { button.setAttribute("aria-busy", "true"); button.classList.add("busy"); }
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    document.querySelectorAll("form[data-sending]").forEach(function (form) {
      form.removeAttribute("data-sending");
      form.querySelectorAll("[aria-busy=true]").forEach(function (button) {
        button.removeAttribute("aria-busy");
        button.classList.remove("busy");
      });
    });
  });
})();
