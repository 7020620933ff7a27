// The demo's JS-SDK example page (templates/jssdk_example.html): shows what
// wxauth-jssdk.js reports about wx.config, and once it is done lets the
// button ask wx.checkJsApi about the APIs the page listed.
(function () {
  "use strict";
  var status = document.getElementById("jssdk-status");
  var button = document.getElementById("jssdk-check");
  var result = document.getElementById("jssdk-result");
  if (!status || !button || !result) return;

  // wxauth-jssdk.js tells every outcome with this event.
  document.addEventListener("wxauth-jssdk", function (event) {
    var ok = event.detail.ok;
    status.textContent = event.detail.message;
    status.classList.toggle("ok", ok);
    status.classList.toggle("failed", !ok);
    button.disabled = !ok;
  });
  if (!window.wxauthJssdk) {
    status.textContent = "wxauth-jssdk.js 未加载";
    status.classList.add("failed");
    return;
  }

  // One line an API: its name and whether this WeChat has it.
  function show(answer) {
    result.textContent = "";
    var checked = answer.checkResult || {};
    Object.keys(checked).forEach(function (name) {
      var line = document.createElement("li");
      line.textContent = name + "：" + (checked[name] ? "可用" : "不可用");
      result.appendChild(line);
    });
    var said = document.createElement("li");
    said.textContent = answer.errMsg || "";
    result.appendChild(said);
    result.hidden = false;
  }

  button.addEventListener("click", function () {
    var apis = (button.getAttribute("data-apis") || "").split(",").filter(Boolean);
    window.wxauthJssdk.ready.then(function () {
      window.wx.checkJsApi({ jsApiList: apis, success: show, fail: show });
    }, function () {});
  });
})();
