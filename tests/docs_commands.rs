//! The docs' commands and outputs against the real command line (issue 19: "docs that
//! show commands and outputs are checked by a test against the real binary, so they
//! cannot drift again").
//!
//! * Every `vip-arbiter …` command the README and docs/ show (in a fenced block, or an
//!   inline code span) parses with the real clap definition: a renamed verb or flag in
//!   the code, or a typo in the docs, fails here. `[--flag]` is tried with and
//!   without the flag; `N`, `PATH` and repmgr's `%x` placeholders stand for values.
//! * Every `$ vip-arbiter …` in a fenced block whose shown output does not depend on a
//!   running daemon (it says the daemon is not answering) is run with the real binary
//!   and its first line compared with the docs'.
//! * The labels of the `plan` sample in operations.md are the renderer's.

mod support;

use std::path::Path;
use std::process::Command;

use clap::{CommandFactory, Parser};
use support::testbed::arbiter_bin;
use vip_arbiter::cli::Cli;

/// The README and every file in docs/, with their names.
fn documents() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![(
        "README.md".to_owned(),
        std::fs::read_to_string(root.join("README.md")).expect("README.md"),
    )];
    let mut names: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    names.sort();
    for p in names {
        let text = std::fs::read_to_string(&p).expect("a doc");
        docs.push((
            format!("docs/{}", p.file_name().unwrap().to_string_lossy()),
            text,
        ));
    }
    docs
}

/// The code a document shows: (line number, text, in a fenced block) of every line in
/// a fenced block, and of every inline code span outside them (a span may run over a
/// line break).
fn code_of(text: &str) -> Vec<(usize, String, bool)> {
    let mut out = Vec::new();
    let mut fenced = false;
    // Outside the fences: the text since the last fence, and where each line began.
    let mut prose = String::new();
    let mut starts: Vec<(usize, usize)> = Vec::new();
    let spans = |prose: &mut String, starts: &mut Vec<(usize, usize)>, out: &mut Vec<_>| {
        let mut offset = 0;
        for (k, part) in prose.split('`').enumerate() {
            if k % 2 == 1 {
                let line = starts
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= offset)
                    .map_or(0, |(_, n)| *n);
                out.push((line, part.replace('\n', " "), false));
            }
            offset += part.len() + 1;
        }
        prose.clear();
        starts.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            if !fenced {
                spans(&mut prose, &mut starts, &mut out);
            }
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push((i + 1, line.to_owned(), true));
        } else {
            starts.push((prose.len(), i + 1));
            prose.push_str(line);
            prose.push('\n');
        }
    }
    spans(&mut prose, &mut starts, &mut out);
    out
}

/// Shell-like words: single and double quotes group, no expansion.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    out
}

/// The `vip-arbiter` invocations in one line of code: the program in command position
/// (first, after a prompt, `--`, `sudo`, `exec`, `&&`, `|` or `;`, or as a path), and
/// the words after it up to a comment, a pipe, a `;`, `&&` or a redirection. A unit
/// name (`journalctl -u vip-arbiter`, `systemctl restart vip-arbiter`) is no command.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let ws = words(line);
    for (i, w) in ws.iter().enumerate() {
        let path = w.ends_with("/vip-arbiter") && w.starts_with('/');
        if w != "vip-arbiter" && !path {
            continue;
        }
        let command_position = i == 0
            || path
            || matches!(
                ws[i - 1].as_str(),
                "$" | "--" | "sudo" | "exec" | "&&" | "|" | ";" | "$("
            )
            || ws[i - 1].ends_with(';');
        if !command_position {
            continue;
        }
        let mut args = Vec::new();
        for a in &ws[i + 1..] {
            if a.starts_with('#')
                || a == "|"
                || a == "&&"
                || a.starts_with(';')
                || a.starts_with('>')
            {
                break;
            }
            let bare = a.trim_end_matches(';');
            args.push(bare.to_owned());
            if bare.len() != a.len() {
                break;
            }
        }
        found.push(args);
    }
    found
}

/// Every form of `args`: each `[--flag …]` group without and with its contents;
/// placeholders replaced by values.
fn forms(args: &[String]) -> Vec<Vec<String>> {
    let mut forms: Vec<Vec<String>> = vec![vec![]];
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(inner) = a.strip_prefix('[') {
            // An optional group, possibly over several words: "[--config" "PATH]".
            let mut group = vec![inner.trim_end_matches(']').to_owned()];
            let mut j = i;
            while !args[j].ends_with(']') && j + 1 < args.len() {
                j += 1;
                group.push(args[j].trim_end_matches(']').to_owned());
            }
            let with: Vec<Vec<String>> = forms
                .iter()
                .map(|f| {
                    f.iter()
                        .cloned()
                        .chain(group.iter().map(|g| value(g)))
                        .collect()
                })
                .collect();
            forms.extend(with);
            i = j + 1;
            continue;
        }
        for f in &mut forms {
            f.push(value(a));
        }
        i += 1;
    }
    forms
}

fn value(word: &str) -> String {
    match word {
        "N" => "7".into(),
        "PATH" => "/tmp/vip-arbiter-docs.toml".into(),
        w if w.starts_with('%') => "x".into(),
        w if w.starts_with('<') && w.ends_with('>') => "x".into(),
        w => w.into(),
    }
}

#[test]
fn every_command_the_docs_show_parses_with_the_real_command_line() {
    let verbs: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (doc, text) in documents() {
        for (line_no, code, fenced) in code_of(&text) {
            for args in invocations(&code) {
                // Prose that names the program ("vip-arbiter is level-triggered") is
                // not a command: a command's first word is a flag or a verb-like word.
                let Some(first) = args.first() else {
                    continue;
                };
                let verb_like = first.starts_with("--")
                    || first.starts_with('[')
                    || (first.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                        && (verbs.contains(first) || fenced || args.len() == 1));
                if !verb_like {
                    continue;
                }
                if !first.starts_with('-') && !first.starts_with('[') && !verbs.contains(first) {
                    // A word after the program name that is no verb, in code: prose
                    // inside a code block ("vip-arbiter does not …") is skipped only
                    // when it reads as a sentence.
                    if args.len() > 2 && !args[1].starts_with('-') {
                        continue;
                    }
                }
                for form in forms(&args) {
                    let argv =
                        std::iter::once("vip-arbiter".to_owned()).chain(form.iter().cloned());
                    checked += 1;
                    if let Err(e) = Cli::try_parse_from(argv) {
                        let kind = e.kind();
                        // A verb named in prose without its arguments is fine.
                        let bare_verb = form.len() == 1
                            && kind == clap::error::ErrorKind::MissingRequiredArgument;
                        if !bare_verb
                            && !matches!(
                                kind,
                                clap::error::ErrorKind::DisplayHelp
                                    | clap::error::ErrorKind::DisplayVersion
                            )
                        {
                            wrong.push(format!(
                                "{doc}:{line_no}: `vip-arbiter {}`: {}",
                                form.join(" "),
                                e.to_string().lines().next().unwrap_or_default()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        checked >= 40,
        "found only {checked} commands: is the scan broken?"
    );
    assert!(
        wrong.is_empty(),
        "commands the docs show that do not parse:\n{}",
        wrong.join("\n")
    );
}

/// The docs' shown outputs that need no daemon, run for real.
#[test]
fn outputs_the_docs_show_without_a_daemon_are_what_the_binary_prints() {
    let mut compared = 0;
    for (doc, text) in documents() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(cmd) = line.strip_prefix("$ vip-arbiter ") else {
                continue;
            };
            let Some(shown) = lines.get(i + 1) else {
                continue;
            };
            if !(shown.contains("not answering") || shown.contains("not running")) {
                continue;
            }
            let args = words(cmd);
            let socket = args
                .windows(2)
                .find(|w| w[0] == "--socket")
                .map(|w| w[1].clone());
            if socket.as_deref().is_some_and(|s| Path::new(s).exists()) {
                continue;
            }
            let out = Command::new(arbiter_bin())
                .args(&args)
                .env_remove("VIP_ARBITER_SOCKET")
                .output()
                .expect("run vip-arbiter");
            let printed = String::from_utf8_lossy(&out.stdout);
            let first = printed.lines().next().unwrap_or_default();
            assert_eq!(first, *shown, "{doc}:{}: `vip-arbiter {cmd}`", i + 1);
            compared += 1;
        }
    }
    assert!(compared >= 1, "no daemon-free output found to compare");
}

/// The `plan` sample in operations.md uses the renderer's labels only.
#[test]
fn the_plan_sample_uses_the_renderers_labels() {
    let ops =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .expect("operations.md");
    let renderer = include_str!("../src/cli/plan_report.rs");
    let sample = ops
        .split("# vip-arbiter plan: node")
        .nth(1)
        .expect("a plan sample in operations.md");
    let sample = sample.split("```").next().unwrap_or_default();
    let mut labels = 0;
    for line in sample.lines().skip(1) {
        let Some((label, _)) = line.split_once(':') else {
            continue;
        };
        if label.starts_with(' ') || label.is_empty() {
            continue;
        }
        let label = if label.starts_with("step ") {
            "step {}".to_owned()
        } else {
            label.to_owned()
        };
        let quoted = if label == "step {}" {
            "\"step {}:\"".to_owned()
        } else {
            format!("\"{label}:\"")
        };
        assert!(
            renderer.contains(&quoted) || renderer.contains(&format!("&format!(\"{label}")),
            "operations.md's plan sample shows {label:?}, which src/cli/plan_report.rs does not print"
        );
        labels += 1;
    }
    assert!(labels >= 6, "the sample shows {labels} labels");
}
