//! The minijinja environment: templates embedded at build time (or read once
//! from `--templates DIR` at start), auto-escaped because every name ends in
//! `.html`, with Strict undefined so a typo fails a test instead of blanking a field.

use minijinja::{Environment, UndefinedBehavior, Value};
use std::path::Path;

/// Every template the app renders, embedded in the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("profile.html", include_str!("../templates/profile.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// Builds the environment. With `dir`, a file there replaces the embedded
/// template of the same name. Templates are parsed here, once, so a broken
/// override stops start-up rather than a request.
pub fn environment(dir: Option<&Path>) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
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
