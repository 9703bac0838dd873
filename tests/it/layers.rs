//! The layer rule of docs/architecture.md, checked on the source: every `crate::` reference from
//! one top-level module to another goes to a lower tier, and the top-level modules form no cycle.
//! The tier table is read from the architecture page itself, so the page and the check cannot
//! drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::common::repo;

/// The tier table: the fenced block marked `tiers` in docs/architecture.md, one line per tier,
/// `N: module module ...`.
fn tiers() -> BTreeMap<String, u32> {
    let page = fs_err::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let start = page.find("```tiers\n").expect("docs/architecture.md has a ```tiers block") + 9;
    let block = &page[start..start + page[start..].find("```").unwrap()];
    let mut out = BTreeMap::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (tier, modules) = line.split_once(':').unwrap_or_else(|| panic!("tier line without `:`: {line}"));
        let tier: u32 = tier.trim().trim_start_matches("tier").trim().parse().unwrap();
        for m in modules.split_whitespace() {
            assert!(out.insert(m.to_string(), tier).is_none(), "module {m} is in two tiers");
        }
    }
    out
}

/// Rust source files below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments, string and char literals, and without its unit tests
/// (`#[cfg(test)]` items: test code may reach anywhere).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                // A raw string r"..." or r#"..."# ends at the matching quote and hashes.
                let mut hashes = 0;
                let mut j = i;
                while j > 0 && b[j - 1] == b'#' {
                    hashes += 1;
                    j -= 1;
                }
                let raw = j > 0 && b[j - 1] == b'r';
                i += 1;
                while i < b.len() {
                    if !raw && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'"' && b[i + 1..].iter().take(hashes).filter(|&&c| c == b'#').count() == hashes {
                        i += 1 + if raw { hashes } else { 0 };
                        break;
                    }
                    i += 1;
                }
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'')) => {
                i += if b[i + 1] == b'\\' { 4 } else { 3 };
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// The top-level modules a piece of code names through `crate::`, including `use crate::{a, b::c}`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded =
            rest[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        rest = &rest[at + 7..];
        if preceded {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        out.insert(ident(&group[k..]));
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// The top-level module a source file belongs to (`src/sources/ps1/fetch.rs` -> `sources`;
/// `src/lib.rs` -> the crate root, `src/main.rs` -> `main`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_str().unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// Upward imports (`from -> to`) still to remove. The list must match exactly: a new upward
/// import fails, and so does a listed one that is gone (take it off the list).
const KNOWN: &[&str] = &[];

#[test]
fn imports_go_down_the_tiers_and_modules_form_no_cycle() {
    let tiers = tiers();
    let src = repo().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Upward (or sideways) edge -> the files that make it.
    let mut upward: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let from = module_of(&src, file);
        if from == "lib" {
            continue; // the crate root only declares the modules
        }
        let Some(&from_tier) = tiers.get(&from) else {
            problems.push(format!("src/{from}: module not in the tier table of docs/architecture.md"));
            continue;
        };
        let code = code_of(&fs_err::read_to_string(file).unwrap());
        let shown = file.strip_prefix(repo()).unwrap().display().to_string();
        for to in referenced_modules(&code) {
            if to == from || to == "VERSION" {
                continue;
            }
            let Some(&to_tier) = tiers.get(&to) else {
                problems.push(format!("{shown}: names crate::{to}, which is not in the tier table"));
                continue;
            };
            if to_tier >= from_tier {
                let edge = format!("{from} -> {to}");
                let files = upward.entry(edge.clone()).or_default();
                files.push(format!("{shown}: {from} (tier {from_tier}) imports {to} (tier {to_tier})"));
                if KNOWN.contains(&edge.as_str()) {
                    continue; // still to remove; kept out of the cycle search below
                }
                problems
                    .extend(files.iter().skip(files.len() - 1).map(|f| format!("{f}; imports go to lower tiers only")));
            }
            edges.entry(from.clone()).or_default().insert(to.clone());
        }
    }
    for known in KNOWN {
        if !upward.contains_key(*known) {
            problems.push(format!("`{known}` is gone: take it off KNOWN in tests/it/layers.rs"));
        }
    }
    // A cycle among the top-level modules (impossible when every edge goes down, but say so
    // plainly if the table ever allows same-tier edges).
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        match state.get(m) {
            Some(1) => {
                let at = path.iter().position(|p| p == m).unwrap();
                cycles.push(format!("cycle: {} -> {m}", path[at..].join(" -> ")));
                return;
            }
            Some(2) => return,
            _ => {}
        }
        state.insert(m.to_string(), 1);
        path.push(m.to_string());
        for n in edges.get(m).into_iter().flatten() {
            visit(n, edges, state, path, cycles);
        }
        path.pop();
        state.insert(m.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for m in edges.keys() {
        visit(m, &edges, &mut state, &mut Vec::new(), &mut cycles);
    }
    problems.extend(cycles);
    assert!(problems.is_empty(), "{} layer problems:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_reference_scanner_sees_groups_and_skips_comments_and_strings() {
    let code = code_of(
        "use crate::{net::client::X, store::{A, B}};\n// crate::recipe in a comment\n\
         let s = \"crate::shard in a string\"; let t = r#\"crate::publish\"#;\nfn f() { crate::report::p(); }\n\
         #[cfg(test)]\nmod tests { use crate::commands; }\n",
    );
    let found: Vec<String> = referenced_modules(&code).into_iter().collect();
    assert_eq!(found, ["net", "report", "store"]);
}

/// docs/architecture.md, "The seams": commands hold no archive-specific code; each archive is
/// reached through `SourceConfig::source()`, so a new source needs no change in src/commands/.
#[test]
fn commands_name_no_archive() {
    let mut files = Vec::new();
    sources(&repo().join("src/commands"), &mut files);
    files.sort();
    let archives = ["SourceConfig::", "ps1", "atlas_fp", "atlas_var", "sources::local"];
    let mut problems = Vec::new();
    for file in &files {
        let code = code_of(&fs_err::read_to_string(file).unwrap());
        for (n, line) in code.lines().enumerate() {
            for name in archives.iter().filter(|a| line.contains(*a)) {
                let shown = file.strip_prefix(repo()).unwrap().display();
                problems.push(format!("{shown}:{}: names `{name}`; move it behind sources::Source", n + 1));
            }
        }
    }
    assert!(problems.is_empty(), "archive-specific code in src/commands/:\n{}", problems.join("\n"));
}
