// Flask-Admin's markup under our CSP, which runs no javascript: URL and no inline handler:
// - links to javascript:void(0) (menus, filters, the pager's current page) become inert "#" links;
// - (the filter menu, whose items had onclick="return false;", is our own: admin/console_list.html);
// - "With selected" actions (data-model-action, from our admin/actions.html) are run here.
(function () {
  document.querySelectorAll('a[href^="javascript:"]').forEach(function (link) {
    link.setAttribute("href", "#");
    link.dataset.inert = "";
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("a[data-inert]")) {
      event.preventDefault();
    }
  }, true);  // capturing: Bootstrap's menus stop the click before it bubbles here

  document.addEventListener("click", function (event) {
    var item = event.target.closest && event.target.closest("[data-model-action]");
    if (!item) {
      return;
    }
    event.preventDefault();
    // written after this script, at the end of the list page
    var texts = JSON.parse(document.getElementById("model-actions-data").dataset.texts);
    var name = item.dataset.modelAction;
    var checked = document.querySelectorAll("input.action-checkbox:checked");
    if (checked.length === 0) {
      window.alert(texts.none_selected);
      return;
    }
    var question = texts.confirmations[name];
    if (question && !window.confirm(question)) {
      return;
    }
    var form = document.getElementById("action_form");
    form.querySelector("[name=action]").value = name;
    form.querySelectorAll("input.action-checkbox").forEach(function (box) { box.remove(); });
    checked.forEach(function (box) { form.appendChild(box.cloneNode(true)); });
    form.submit();
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input.action-rowtoggle")) {
      document.querySelectorAll("input.action-checkbox").forEach(function (box) {
        box.checked = event.target.checked;
      });
    }
  });
})();
