//! A QR code as an inline SVG element: the desktop's scan-to-login page
//! (web/handlers/scan.rs) and the simulator's stand-in for WeChat's QR login
//! draw theirs here. A leaf: it knows no request and no page.

/// `text` as a QR code of at least 220×220, an `<svg>` element to put in
/// HTML (no XML declaration), named for screen readers. Empty when `text`
/// does not fit a QR code.
pub fn svg(text: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen(
        "<svg",
        "<svg class=\"qr\" role=\"img\" aria-label=\"登录二维码\"",
        1,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_qr_code_is_an_inline_svg_with_a_label() {
        let svg = super::svg("https://wx.example.com/login/scan?t=abc");
        assert!(
            svg.starts_with("<svg class=\"qr\" role=\"img\" aria-label=\"登录二维码\""),
            "{svg:.80}"
        );
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
    }
}
