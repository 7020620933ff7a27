//! WeChat's answers: repair, parse, errcode mapping, the lenient profile.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(value) = wxauth::wechat::parse_answer(body) {
        let _ = wxauth::wechat::WechatUser::from_value(value);
    }
});
