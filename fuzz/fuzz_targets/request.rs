//! What a request brings: the target (path and query) and the Cookie header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (target, cookie) = input;
    let req = wxauth_app::transport::http::Req::fake("GET", target, &[("cookie", cookie)]);
    let _ = req.query("next");
    let _ = req.cookie("wxauth_session");
    let _ = req.form();
});
