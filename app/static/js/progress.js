// Live progress of a command (templates/services/command.html): polls (poll.js) the page's JSON endpoint
// once a second and updates the status, the progress bar, the steps and the log tail. When the
// command finishes, the page is reloaded so the server renders the final state (retry form included).
(function () {
  "use strict";
  var root = document.getElementById("command");
  if (!root || root.dataset.final === "true") {
    return;
  }
  var url = root.dataset.progressUrl;
  var CLASSES = {
    INITIATED: "secondary", PENDING: "info", COMPLETED: "success",
    REMOVED: "light", FAILED: "danger", WAITING: "light"
  };

  function badge(status) {
    var span = document.createElement("span");
    span.className = "badge badge-" + (CLASSES[status] || "secondary") + " status-badge";
    span.dataset.status = status;
    span.textContent = status;
    return span;
  }

  function replaceBadge(container, status) {
    var current = container.querySelector(".status-badge");
    if (!current || current.dataset.status !== status) {
      container.replaceChildren(badge(status));
    }
  }

  function renderSteps(steps) {
    var list = document.getElementById("steps");
    steps.forEach(function (step) {
      var item = list.querySelector('[data-step="' + step.number + '"]');
      if (!item) {
        item = document.createElement("li");
        item.className = "list-group-item d-flex justify-content-between align-items-center";
        item.dataset.step = step.number;
        var label = document.createElement("span");
        label.append(step.number + ". ");
        var name = document.createElement("span");
        name.className = "step-name";
        label.append(name);
        var status = document.createElement("span");
        status.className = "step-status";
        item.append(label, status);
        list.append(item);
      }
      item.querySelector(".step-name").textContent = step.name;
      replaceBadge(item.querySelector(".step-status"), step.status);
    });
  }

  function render(data) {
    replaceBadge(document.getElementById("command-status"), data.status);
    var bar = document.getElementById("progress-bar");
    bar.style.width = data.percent + "%";
    bar.setAttribute("aria-valuenow", data.percent);
    bar.textContent = data.percent + "%";
    document.getElementById("progress-text").textContent = data.done + " of " + data.total + " steps done";
    renderSteps(data.steps);
    var log = document.getElementById("log");
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    if (log.textContent !== data.log.tail) {
      log.textContent = data.log.tail;
      if (atBottom) {
        log.scrollTop = log.scrollHeight;
      }
    }
    document.getElementById("log-name").textContent = data.log.name || "";
  }

  window.omegaops.poll(function () { return url; }, function (data) {
    render(data);
    if (data.final) {
      window.location.reload();
      return null;
    }
    return 1000;
  });
})();
