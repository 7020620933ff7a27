//! The files under static/, embedded at build time and matched by exact
//! name: no path joining, so nothing outside static/ can be reached.

/// (name under /static/, content type, bytes)
#[rustfmt::skip]
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../static/style.css")),
    ("avatar.svg", "image/svg+xml", include_bytes!("../../static/avatar.svg")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../static/favicon.svg")),
    ("scan.js", "text/javascript; charset=utf-8", include_bytes!("../../static/scan.js")),
    ("wxauth-jssdk.js", "text/javascript; charset=utf-8", include_bytes!("../../static/wxauth-jssdk.js")),
    ("jssdk-example.js", "text/javascript; charset=utf-8", include_bytes!("../../static/jssdk-example.js")),
];

/// Every asset's name (for the check that the nginx gateway routes them all).
pub fn names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _, _)| *name)
}

/// The asset called `name` (the part after `/static/`): content type and bytes.
pub fn find(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_listed_names_are_found() {
        assert!(super::find("style.css").is_some());
        for name in [
            "",
            "../Cargo.toml",
            "style.css/",
            "%2e%2e/Cargo.toml",
            "STYLE.CSS",
        ] {
            assert!(super::find(name).is_none(), "{name}");
        }
    }
}
