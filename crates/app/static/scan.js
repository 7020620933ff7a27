// The QR login page (templates/scan.html): asks /login/ticket how the
// ticket is doing until the phone has confirmed (or cancelled), then moves on.
// Both URLs come from the page, which knows the site's path prefix.
(function () {
  "use strict";
  var status = document.getElementById("scan-status");
  if (!status) return;
  var ticket = status.getAttribute("data-ticket");
  // Defaults for a page from an older template override.
  var pollUrl = status.getAttribute("data-poll") || "/login/ticket";
  var next = status.getAttribute("data-next") || "/profile";
  var said = {
    pending: "等待扫码…",
    scanned: "已扫码，请在手机上确认",
    cancelled: "已取消。如需登录，请点击“刷新二维码”",
    done: "登录成功，正在进入…",
    expired: "二维码已过期，请点击“刷新二维码”",
    forbidden: "请在生成二维码的浏览器中使用"
  };
  function poll() {
    fetch(pollUrl + "?t=" + encodeURIComponent(ticket), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        status.textContent = said[answer.status] || said.pending;
        if (answer.status === "done") {
          window.location.replace(answer.next || next);
        } else if (answer.status === "pending" || answer.status === "scanned") {
          setTimeout(poll, 1000);
        }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
