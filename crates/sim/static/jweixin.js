// A stand-in for WeChat's jweixin-1.6.0.js, served by the WeChat simulator
// at /sim/jweixin.js. It defines window.wx with what a page calls around
// wx.config. The check itself (appId, the page's domain, the signature) is
// the simulator's: /sim/jssdk/check on the origin this script came from.
// Like WeChat's client, wx.config checks the page's own URL, location.href
// without its #fragment, never a URL the page hands it.
(() => {
  'use strict';

  // The simulator's origin, from this script's own src. Read now: once the
  // script has run, document.currentScript is null.
  const src = document.currentScript?.src
    || [...document.scripts].map((s) => s.src).find((s) => s.endsWith('/sim/jweixin.js'))
    || '';
  const simOrigin = src ? new URL(src).origin : location.origin;

  const CONFIG_OK = 'config:ok';
  // The answer to the last wx.config; null while none has come back.
  let outcome = null;
  const readyFns = [];
  const errorFns = [];

  const passed = () => outcome?.errMsg === CONFIG_OK;

  // Runs a page's callback, if it gave one; one that throws does not stop
  // the others.
  const call = (fn, arg) => {
    if (typeof fn !== 'function') return;
    try {
      fn(arg);
    } catch (e) {
      console.error(e);
    }
  };

  // WeChat answers through its bridge, never within the call itself.
  const later = (fn) => setTimeout(fn, 0);

  // Every ready (or error) callback registered so far runs now; later ones
  // run as they are registered (see ready and error).
  const settle = (res) => {
    outcome = res;
    if (passed()) readyFns.forEach((fn) => call(fn));
    else errorFns.forEach((fn) => call(fn, res));
  };

  const config = (cfg = {}) => {
    outcome = null;
    const query = new URLSearchParams({
      appId: String(cfg.appId ?? ''),
      timestamp: String(cfg.timestamp ?? ''),
      nonceStr: String(cfg.nonceStr ?? ''),
      signature: String(cfg.signature ?? ''),
      url: location.href.split('#')[0],
    });
    fetch(`${simOrigin}/sim/jssdk/check?${query}`, { cache: 'no-store', credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      // The answer carries errMsg and the URL judged.
      .then((res) => ({ errMsg: String(res.errMsg), url: res.url }))
      .catch(() => ({ errMsg: 'config:fail' }))
      .then((res) => {
        // WeChat's debug mode alerts the result; here it goes to the console.
        if (cfg.debug) console.log('wx.config', res);
        settle(res);
      });
  };

  const ready = (fn) => {
    readyFns.push(fn);
    if (passed()) later(() => call(fn));
  };

  const error = (fn) => {
    errorFns.push(fn);
    if (outcome && !passed()) {
      const res = outcome;
      later(() => call(fn, res));
    }
  };

  // Every API asked for is there.
  const checkJsApi = ({ jsApiList = [], success, complete } = {}) => {
    const checkResult = Object.fromEntries(jsApiList.map((name) => [name, true]));
    const res = { checkResult, errMsg: 'checkJsApi:ok' };
    later(() => {
      call(success, res);
      call(complete, res);
    });
  };

  // Sharing does nothing here. As in WeChat, it fails until wx.config has
  // passed (the usual mistake: calling it outside wx.ready).
  const share = (name) => (opts = {}) => {
    const ok = passed();
    const res = { errMsg: ok ? `${name}:ok` : `${name}:the permission value is offline verifying` };
    later(() => {
      call(ok ? opts.success : opts.fail, res);
      call(opts.complete, res);
    });
  };

  window.wx = window.jWeixin = Object.freeze({
    config,
    ready,
    error,
    checkJsApi,
    updateAppMessageShareData: share('updateAppMessageShareData'),
    updateTimelineShareData: share('updateTimelineShareData'),
  });
})();
