//! A small parser for repmgr.conf: `key=value` lines, `#` comments, single- or
//! double-quoted values with `''` / `\'` escapes. Only `node_id` and `conninfo` are
//! used, but every line is checked so a broken file is reported, not half-read.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct RepmgrConfError {
    pub line: usize,
    pub problem: String,
}

pub fn parse(text: &str) -> Result<HashMap<String, String>, RepmgrConfError> {
    let mut out = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |problem: String| RepmgrConfError { line, problem };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // Never quote the line: it may be the middle of a conninfo with a password.
        let (key, rest) = trimmed
            .split_once('=')
            .ok_or_else(|| err("expected key=value, found a line without '='".into()))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // Not quoted either: a broken line can start with the end of a password.
            return Err(err(
                "invalid key before '=' (keys are letters, digits and _)".into(),
            ));
        }
        out.insert(key.to_owned(), value(rest.trim()).map_err(err)?);
    }
    Ok(out)
}

fn value(rest: &str) -> Result<String, String> {
    let mut chars = rest.chars().peekable();
    match chars.peek().copied() {
        Some(q @ ('\'' | '"')) => {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated {q}-quoted value")),
                    Some('\\') => match chars.next() {
                        Some(c) => v.push(c),
                        None => return Err("backslash at end of line".into()),
                    },
                    Some(c) if c == q && chars.peek() == Some(&q) => {
                        chars.next();
                        v.push(q);
                    }
                    Some(c) if c == q => break,
                    Some(c) => v.push(c),
                }
            }
            let tail: String = chars.collect();
            let tail = tail.trim();
            if !tail.is_empty() && !tail.starts_with('#') {
                // Not quoted: after `conninfo='... password='x''` that text is the password.
                return Err(
                    "unexpected text after the quoted value (a quote inside a value is doubled, '', or escaped, \\')".into(),
                );
            }
            Ok(v)
        }
        _ => Ok(rest.split('#').next().unwrap_or("").trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repmgr_style() {
        let text = "# repmgr.conf\nnode_id=2\nnode_name = 'node2' # trailing\n\
                    conninfo='host=node2 user=repmgr dbname=repmgr password=''x y''' \n\
                    data_directory=\"/var/lib/postgresql/15/main\"\nempty=\nesc='a\\'b'\nplain = value # note\n";
        let m = parse(text).expect("parses");
        assert_eq!(m["node_id"], "2");
        assert_eq!(m["node_name"], "node2");
        assert_eq!(
            m["conninfo"],
            "host=node2 user=repmgr dbname=repmgr password='x y'"
        );
        assert_eq!(m["data_directory"], "/var/lib/postgresql/15/main");
        assert_eq!(m["empty"], "");
        assert_eq!(m["esc"], "a'b");
        assert_eq!(m["plain"], "value");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("a=1\nnonsense\n").unwrap_err().line, 2);
        assert_eq!(parse("x='open\n").unwrap_err().line, 1);
        assert!(
            parse("x='a' junk")
                .unwrap_err()
                .problem
                .contains("after the quoted value")
        );
        assert!(parse("bad key=1").is_err());
        assert!(parse("=1").is_err());
    }

    #[test]
    fn never_quotes_a_secret() {
        let e = parse("password_is_here_and_long_secret_value_1234567890").unwrap_err();
        assert!(!e.to_string().contains("secret_value"), "{e}");
        assert!(!e.to_string().contains("password_is"), "{e}");
        // Nested quotes: the password falls outside the quoted value.
        let e =
            parse("conninfo='host=/tmp user=repmgr password='pw-nested-planted''\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.problem.contains("after the quoted value"), "{e}");
        assert!(!e.to_string().contains("pw-nested"), "{e}");
        let e = parse("conninfo='user=a password=pw-short-planted\n").unwrap_err();
        assert!(!e.to_string().contains("pw-short"), "{e}");
        let e = parse("conninfo='user=a password='\npw-cont-planted' dbname=x\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("pw-cont"), "{e}");
    }
}
