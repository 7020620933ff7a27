//! WeChat's answers: repair, parse, errcode mapping, the lenient profile.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(value) = wxauth_app::wechat::client::parse_answer(body) {
        let _ = wxauth_app::wechat::client::WechatUser::from_value(value);
    }
});
