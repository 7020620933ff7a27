//! The `next` check: a kept path must start with one slash and carry no
//! backslash or control character (the property tests judge it with a URL parser).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|next: &str| {
    if let Some(kept) = wxauth_app::web::handlers::login::local_path(next) {
        let bytes = kept.as_bytes();
        assert!(bytes[0] == b'/' && bytes.get(1) != Some(&b'/') && bytes.get(1) != Some(&b'\\'));
        assert!(kept.is_ascii() && !kept.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\'));
    }
});
