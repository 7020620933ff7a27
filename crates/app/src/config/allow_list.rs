//! WXAUTH_ALLOW: the file of openids and unionids that /auth/check lets
//! through (web/handlers/gateway.rs). Read once, at start.

use std::collections::HashSet;
use std::path::Path;

/// Reads WXAUTH_ALLOW: one openid or unionid per line; blank lines and
/// lines starting with `#` are skipped.
pub fn read_allow_list(path: &Path) -> Result<HashSet<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_a_line_without_blanks_or_comments() {
        let file = std::env::temp_dir().join(format!("wxauth-allow-{}", std::process::id()));
        std::fs::write(&file, "# admins\n  oABC123 \n\n#oOFF\nunionXYZ\n").unwrap();
        let list = read_allow_list(&file).unwrap();
        std::fs::remove_file(&file).ok();
        let mut ids: Vec<&str> = list.iter().map(String::as_str).collect();
        ids.sort();
        assert_eq!(ids, ["oABC123", "unionXYZ"]);
        let missing = read_allow_list(Path::new("/nonexistent-dir/allow")).unwrap_err();
        assert!(
            missing.starts_with("cannot read /nonexistent-dir/allow: "),
            "{missing}"
        );
    }
}
