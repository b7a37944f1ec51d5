// Ask before a destructive form is sent: <form data-confirm="question"> (or its submit button's data-confirm).
// Declining sends nothing. Our CSP runs no inline handler, so this is where every confirmation is asked.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var button = event.submitter;
  var question = (button && button.dataset.confirm) || form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
