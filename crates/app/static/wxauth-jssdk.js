// wxauth-jssdk.js: wx.config for the page that includes it, signed by
// wxauth's /jssdk/config. Include it after WeChat's own script:
//
//   <script src="https://res.wx.qq.com/open/js/jweixin-1.6.0.js"></script>
//   <script src="https://wxauth.example.com/static/wxauth-jssdk.js"
//           data-api-list="updateAppMessageShareData,scanQRCode" data-debug="0"></script>
//
// Optional: data-open-tags="wx-open-launch-weapp,…" (openTagList).
// It sets window.wxauthJssdk = { ready, configure() }: `ready` settles when
// WeChat has accepted (or refused) the config; `configure()` does it all
// again for the current URL (single-page apps, after a route change) and
// returns the new `ready`. Each outcome is also a "wxauth-jssdk" event on
// document, detail {ok, message}, and a refusal is one console.error line.
(function () {
  "use strict";
  var SELF = "/static/wxauth-jssdk.js";
  // How long WeChat may take to answer wx.config before we say so.
  var WX_DEADLINE_MS = 15000;
  var script = document.currentScript;
  var src = script ? script.src : "";
  // wxauth's base URL, prefix included: this script's own URL without
  // /static/wxauth-jssdk.js, so the page may live on another path or host.
  var cut = src.lastIndexOf(SELF);
  var base = cut >= 0 ? src.slice(0, cut) : "";

  // The script's attributes are read now: later, currentScript is gone.
  function attribute(name) {
    return (script && script.getAttribute(name)) || "";
  }
  function names(name) {
    return attribute(name).split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  }
  var apiList = names("data-api-list");
  var openTags = names("data-open-tags");
  var debug = /^(1|true|yes|on)$/i.test(attribute("data-debug"));

  // What WeChat signs and checks: the page's URL without its #fragment.
  function pageUrl() {
    return location.href.split("#")[0];
  }

  // A non-2xx answer of /jssdk/config, in words.
  function explainAnswer(status, answer) {
    if (status === 400 && answer.reason) return answer.reason;
    var ticket = "WeChat did not give a jsapi_ticket";
    if (answer.error === "wechat_error") {
      return ticket + " (errcode " + answer.errcode + "): check the appid and secret, the " +
        "account's IP白名单 for wxauth's server and the API quota; wxauth's log has WeChat's message";
    }
    if (answer.error === "upstream_timeout") return ticket + " (no answer in time); try again";
    if (answer.error === "upstream_error") return ticket + " (no usable answer); see wxauth's log";
    if (status === 503) return "wxauth is busy; try again in a moment";
    return "/jssdk/config answered HTTP " + status + (answer.error ? " (" + answer.error + ")" : "");
  }

  // wx.error's errMsg ("config:invalid signature", …), in words.
  function explainWx(errMsg, signedUrl) {
    if (/invalid signature/.test(errMsg)) {
      return "wx.config: invalid signature: the URL signed was " + signedUrl + "; this page is " +
        pageUrl() + ". Check http/https behind your proxy, that the page's own URL (not the " +
        "API's) was signed, no &amp;, and on iOS single-page apps the landing URL";
    }
    if (/invalid url domain/.test(errMsg)) {
      return "wx.config: invalid url domain: " + location.host + " is not in the account's " +
        "JS接口安全域名 (公众号设置 → 功能设置), or not in WXAUTH_JS_DOMAINS; only ports 80 and 443";
    }
    return "wx.config: " + errMsg;
  }

  // GET /jssdk/config for `url`: the signed config, or an Error saying why not.
  async function signedConfig(url) {
    var response;
    try {
      response = await fetch(base + "/jssdk/config?url=" + encodeURIComponent(url),
        { credentials: "same-origin", cache: "no-store" });
    } catch (e) {
      throw new Error("cannot reach " + (base || location.origin) + "/jssdk/config: " + e.message);
    }
    var answer = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error(explainAnswer(response.status, answer));
    return answer;
  }

  // wx.config, then whichever of wx.ready / wx.error comes first (or the deadline).
  function wxConfig(signed) {
    return new Promise(function (resolve, reject) {
      var config = {
        debug: debug, appId: signed.appId, timestamp: signed.timestamp,
        nonceStr: signed.nonceStr, signature: signed.signature, jsApiList: apiList
      };
      if (openTags.length) config.openTagList = openTags;
      var timer = setTimeout(function () {
        reject(new Error("wx.config: no answer from WeChat in " + WX_DEADLINE_MS / 1000 +
          " s; is the page open inside WeChat?"));
      }, WX_DEADLINE_MS);
      // In WeChat's documented order: config first, then ready and error.
      window.wx.config(config);
      window.wx.ready(function () { clearTimeout(timer); resolve(signed); });
      window.wx.error(function (res) {
        clearTimeout(timer);
        reject(new Error(explainWx((res && res.errMsg) || "failed", signed.url)));
      });
    });
  }

  // Tells the page, once the document is parsed: scripts after this one
  // (a page's own status display) have their listeners in place by then.
  function tell(ok, message) {
    function dispatch() {
      document.dispatchEvent(new CustomEvent("wxauth-jssdk", { detail: { ok: ok, message: message } }));
    }
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", dispatch, { once: true });
    } else {
      dispatch();
    }
  }

  var latest = 0;
  // The whole thing for the current URL; the promise is also `wxauthJssdk.ready`.
  function configure() {
    var run = ++latest;
    var ready = (async function () {
      if (!window.wx || typeof window.wx.config !== "function") {
        throw new Error("window.wx is missing: include jweixin-1.6.0.js before wxauth-jssdk.js");
      }
      return wxConfig(await signedConfig(pageUrl()));
    })().then(function (signed) {
      if (run === latest) tell(true, "wx.config: ok");
      return signed;
    }, function (error) {
      var message = "wxauth: " + error.message;
      // Only the latest run speaks: an older one was overtaken by a route change.
      if (run === latest) {
        console.error(message);
        tell(false, message);
      }
      throw new Error(message);
    });
    // The refusal is reported above; a page that never waits on `ready`
    // gets no second, "uncaught" line for it.
    ready.catch(function () {});
    window.wxauthJssdk.ready = ready;
    return ready;
  }

  window.wxauthJssdk = { ready: null, configure: configure };
  configure();
})();
