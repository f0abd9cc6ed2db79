//! repmgr.conf text: parsed, or one error naming a real line.

use crate::config::repmgr_conf;

pub fn repmgr_conf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match repmgr_conf::parse(text) {
        Ok(map) => {
            for key in map.keys() {
                assert!(
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "accepted key {key:?}"
                );
            }
        }
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= text.lines().count(),
                "error names line {} of {}",
                e.line,
                text.lines().count()
            );
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }
}
