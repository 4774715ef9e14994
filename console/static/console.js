// The console works without JavaScript; this only saves clicks.
(function () {
  // A dataset or label picker reloads its page as soon as it changes.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  // The Review page: a label's number key answers with it, "s" skips (never while typing in a field).
  // One answer per page: a held or double-pressed key does not send a second one.
  var answers = document.getElementById("answer-form");
  if (answers) {
    var sent = false;
    answers.addEventListener("submit", function (event) { if (sent) event.preventDefault(); sent = true; });
    document.addEventListener("keydown", function (event) {
      if (event.repeat || event.ctrlKey || event.metaKey || event.altKey ||
          /INPUT|TEXTAREA|SELECT/.test(event.target.tagName)) return;
      var target = answers.querySelector('[data-key="' + event.key + '"]');
      if (target) { event.preventDefault(); if (!sent) target.click(); }
    });
  }
  // The Bias form: picking a label or facet column lists that column's values.
  var source = document.getElementById("column-values");
  if (!source) return;
  var values = JSON.parse(source.textContent);
  document.querySelectorAll("select[data-values-for]").forEach(function (column) {
    var target = document.getElementById(column.dataset.valuesFor);
    column.addEventListener("change", function () {
      target.replaceChildren();
      (values[column.value] || []).forEach(function (value) {
        var option = document.createElement("option");
        option.textContent = value;
        target.appendChild(option);
      });
    });
  });
})();
