//! The minijinja environment: templates embedded at build time (or read once
//! from `--templates DIR` at start), auto-escaped because every name ends in
//! `.html`, with Strict undefined so a typo fails a test instead of blanking a field.

use minijinja::{
    escape_formatter, AutoEscape, Environment, Error, Output, State, UndefinedBehavior, Value,
};
use std::path::Path;

/// Every template the app renders, embedded in the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("home.html", include_str!("../../templates/home.html")),
    ("profile.html", include_str!("../../templates/profile.html")),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "scan_desktop.html",
        include_str!("../../templates/scan_desktop.html"),
    ),
    (
        "scan_phone.html",
        include_str!("../../templates/scan_phone.html"),
    ),
    (
        "jssdk_example.html",
        include_str!("../../templates/jssdk_example.html"),
    ),
];

/// Builds the environment. With `dir`, a file there replaces the embedded
/// template of the same name. Templates are parsed here, once, so a broken
/// override stops start-up rather than a request.
pub fn environment(dir: Option<&Path>) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(html_formatter);
    for (name, embedded) in TEMPLATES {
        let source = match dir.map(|d| d.join(name)) {
            Some(path) if path.exists() => std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            _ => embedded.to_string(),
        };
        env.add_template_owned(name.to_string(), source)
            .map_err(|e| format!("template {name}: {e}"))?;
    }
    Ok(env)
}

/// Renders `name` with `ctx`. A failure here is a bug in a template.
pub fn render(env: &Environment<'static>, name: &str, ctx: Value) -> Result<String, String> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| format!("rendering {name}: {e}"))
}

/// minijinja's HTML escaping, minus `/`: it also writes `/` as `&#x2f;`, which
/// is valid but turns every URL in a page (avatars, links) into entity soup.
/// `/` can neither end a quoted attribute nor open a tag by itself, so
/// escaping `& < > " '` is enough; everything else goes to minijinja as usual.
fn html_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    let text = match value.as_str() {
        Some(text) if !value.is_safe() && *state.auto_escape() == AutoEscape::Html => text,
        _ => return escape_formatter(out, state, value),
    };
    let mut rest = text;
    while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
        out.write_str(&rest[..i])?;
        out.write_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#x27;",
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_but_slashes_are_left_alone() {
        let mut env = Environment::new();
        env.set_formatter(html_formatter);
        env.add_template("t.html", "<a href=\"{{ url }}\">{{ name }}</a>{{ n }}")
            .unwrap();
        let ctx = minijinja::context! { url => "https://x.qlogo.cn/a?b=1&c=2", name => "<script>'\"&", n => 7 };
        let html = render(&env, "t.html", ctx).unwrap();
        assert_eq!(
            html,
            "<a href=\"https://x.qlogo.cn/a?b=1&amp;c=2\">&lt;script&gt;&#x27;&quot;&amp;</a>7"
        );
    }

    #[test]
    fn every_embedded_template_parses() {
        assert!(environment(None).is_ok());
    }
}
