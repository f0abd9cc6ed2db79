//! Values that must never be shown: a password from `.pgpass` or `PGPASSWORD`, and
//! the conninfo text as the operator wrote it (it may hold `password=`). Their
//! `Debug` and `Display` print only a mask, so a `{:?}` in a log line, an
//! `assert_eq!` or a panic message cannot reveal them; the value itself is reached
//! only through `expose()`, at the one place that hands it to tokio-postgres.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What every redacted value prints as.
pub const MASK: &str = "********";

/// A password. No `Serialize`: it never goes into health JSON or a config dump.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the PostgreSQL driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// The `conninfo` key as written (file or `VIP_ARBITER_CONNINFO`): `Debug` and
/// `Display` show it with any password masked (`redact_conninfo`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConninfoText(String);

impl ConninfoText {
    pub fn new(value: impl Into<String>) -> Self {
        ConninfoText(value.into())
    }

    /// The text as written, for the parser only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConninfoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", crate::config::conninfo::redact_conninfo(&self.0))
    }
}

impl fmt::Display for ConninfoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::config::conninfo::redact_conninfo(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "pw-unit-7f3a-planted";

    #[test]
    fn debug_and_display_mask_the_value() {
        let s = Secret::new(PW);
        for text in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{s}"),
            format!("{:?}", Some(s.clone())),
            format!("{:?}", vec![s.clone()]),
        ] {
            assert!(!text.contains(PW), "{text}");
            assert!(text.contains(MASK), "{text}");
        }
        assert_eq!(s.expose(), PW);
    }

    #[test]
    fn conninfo_text_shows_everything_but_the_password() {
        let c = ConninfoText::new(format!("host=/tmp user=repmgr password={PW} dbname=repmgr"));
        for text in [format!("{c:?}"), format!("{c:#?}"), format!("{c}")] {
            assert!(!text.contains(PW), "{text}");
            assert!(
                text.contains("user=repmgr") && text.contains(MASK),
                "{text}"
            );
        }
        assert!(c.expose().contains(PW));
        // Transparent in serde: the config file's string, unchanged.
        let json = serde_json::to_string(&c).expect("json");
        let back: ConninfoText = serde_json::from_str(&json).expect("back");
        assert_eq!(back, c);
    }
}
