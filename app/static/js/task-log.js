// Follows a running task's log on the console's task page (templates/admin/task_details.html):
// asks the log endpoint for what was appended since the last offset, once a second, until the task ends.
(function () {
  "use strict";
  var pre = document.getElementById("task-log");
  if (!pre || pre.dataset.final === "true") {
    return;
  }
  var url = pre.dataset.logUrl;
  var offset = parseInt(pre.dataset.offset, 10) || 0;
  window.omegaops.poll(function () { return url + "?offset=" + offset; }, function (data) {
    var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (data.reset) {
      pre.textContent = "";
    }
    if (data.text) {
      pre.append(data.text);
    }
    offset = data.offset;
    if (atBottom) {
      pre.scrollTop = pre.scrollHeight;
    }
    var status = document.querySelector("#task-status .status-badge");
    if (status && status.dataset.status !== data.status) {
      status.dataset.status = data.status;
      status.textContent = data.status;
    }
    if (data.final) {
      window.location.reload();  // the server renders the finished task's fields
      return null;
    }
    return data.text && data.text.length >= 64000 ? 0 : 1000;  // catching up: at once
  });
})();
