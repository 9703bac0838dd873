//! Shell completions and man pages, generated from the clap definition. Never reads recipes or
//! configuration, so the output depends only on the CLI types.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Every generated file as (path relative to the repository root, contents).
pub fn generated_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
        let mut cmd = Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "etd", &mut buf);
        let name = match shell {
            Shell::Bash => "etd.bash".to_string(),
            Shell::Zsh => "_etd".to_string(),
            Shell::Fish => "etd.fish".to_string(),
            Shell::Elvish => "etd.elv".to_string(),
            Shell::PowerShell => "_etd.ps1".to_string(),
            other => format!("etd.{other}"),
        };
        files.push((format!("completions/{name}"), buf));
    }
    // The man pages leave out clap's `help` subcommand: it has no page of its own (`etd help fetch`
    // is `etd fetch --help`), so listing it would point at a nonexistent etd-help(1).
    let cmd = Cli::command().disable_help_subcommand(true);
    files.push(("man/etd.1".to_string(), render_man(&cmd, "etd")));
    for sub in cmd.get_subcommands() {
        let name = format!("etd-{}", sub.get_name());
        let invocation = format!("etd {}", sub.get_name());
        let sub = sub.clone().name(name.clone()).display_name(name.clone()).bin_name(name.clone());
        files.push((format!("man/{name}.1"), render_man(&sub, &invocation)));
    }
    files
}

/// A man page in the usual shape (`ETD-FETCH(1)` title, `etd 0.1.0` as its source), with a
/// synopsis that shows how the command is typed (`etd fetch`) and every option's value.
fn render_man(cmd: &clap::Command, invocation: &str) -> Vec<u8> {
    let mut built = cmd.clone();
    built.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_name_section(&mut buf);
    buf.extend(synopsis(&built, invocation).into_bytes());
    let _ = man.render_description_section(&mut buf);
    if built.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(&mut buf);
    }
    if built.get_subcommands().any(|s| !s.is_hide_set()) {
        let _ = man.render_subcommands_section(&mut buf);
    }
    if built.get_after_long_help().is_some() || built.get_after_help().is_some() {
        let _ = man.render_extra_section(&mut buf);
    }
    if built.get_version().is_some() || built.get_long_version().is_some() {
        let _ = man.render_version_section(&mut buf);
    }
    if built.get_author().is_some() {
        let _ = man.render_authors_section(&mut buf);
    }
    // Each section comes with roff's preamble; keep one, in front of a title line that names the
    // source and manual in their own places (an empty date stays an empty argument).
    let body = String::from_utf8_lossy(&buf).replace(ROFF_PREAMBLE, "");
    let title = format!(
        ".TH {} 1 \"\" \"etd {}\" \"etd Manual\"\n",
        roff_escape(&cmd.get_name().to_uppercase()),
        crate::VERSION
    );
    format!("{ROFF_PREAMBLE}{title}{body}").into_bytes()
}

/// What clap_mangen (roff) writes first in every rendering: the apostrophe string `Aq`.
const ROFF_PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// `.SH SYNOPSIS` and one line: `etd fetch [--task-index I] [--num-tasks N] ... <RECIPE>`, each
/// option with its value name, in roff.
fn synopsis(cmd: &clap::Command, invocation: &str) -> String {
    let bold = |t: &str| format!("\\fB{}\\fR", roff_escape(t));
    let italic = |t: &str| format!("\\fI{}\\fR", roff_escape(t));
    let mut parts = vec![bold(invocation)];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()) {
        let names = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("{}|{}", bold(&format!("-{s}")), bold(&format!("--{l}"))),
            (Some(s), None) => bold(&format!("-{s}")),
            (None, Some(l)) => bold(&format!("--{l}")),
            (None, None) => continue,
        };
        let value = if arg.get_action().takes_values() {
            let names: Vec<String> = match arg.get_value_names() {
                Some(v) => v.iter().map(|n| n.to_string()).collect(),
                None => vec![arg.get_id().as_str().to_uppercase()],
            };
            format!(" {}", italic(&names.join(" ")))
        } else {
            String::new()
        };
        let repeat = if matches!(arg.get_action(), clap::ArgAction::Count) { "..." } else { "" };
        parts.push(if arg.is_required_set() {
            format!("{names}{value}{repeat}")
        } else {
            format!("[{names}{value}]{repeat}")
        });
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let name = arg.get_value_names().map_or_else(|| arg.get_id().to_string(), |v| v.join(" "));
        parts.push(if arg.is_required_set() { format!("<{}>", italic(&name)) } else { format!("[{}]", italic(&name)) });
    }
    if cmd.has_subcommands() {
        parts.push(format!("<{}>", italic("COMMAND")));
    }
    format!(".SH SYNOPSIS\n{}\n", parts.join(" "))
}

/// Text for a roff line: backslashes and hyphens escaped (a bare `-` may print as a hyphen, not
/// the minus an option needs).
fn roff_escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> String {
        let files = generated_files();
        let (_, bytes) = files.iter().find(|(p, _)| p == name).unwrap_or_else(|| panic!("no {name}"));
        String::from_utf8(bytes.clone()).unwrap()
    }

    #[test]
    fn man_pages_show_option_values_titles_and_no_help_page() {
        let fetch = page("man/etd-fetch.1");
        assert!(fetch.starts_with(ROFF_PREAMBLE), "{fetch}");
        assert_eq!(fetch.matches(ROFF_PREAMBLE).count(), 1, "{fetch}");
        assert!(
            fetch.contains(&format!(".TH ETD\\-FETCH 1 \"\" \"etd {}\" \"etd Manual\"\n", crate::VERSION)),
            "{fetch}"
        );
        assert!(fetch.contains("\\fBetd fetch\\fR"), "{fetch}");
        assert!(fetch.contains("[\\fB\\-\\-task\\-index\\fR \\fII\\fR]"), "{fetch}");
        assert!(fetch.contains("[\\fB\\-\\-num\\-tasks\\fR \\fIN\\fR]"), "{fetch}");
        assert!(fetch.contains("<\\fIRECIPE\\fR>"), "{fetch}");
        let main = page("man/etd.1");
        assert!(main.contains("[\\fB\\-\\-workdir\\fR \\fIDIR\\fR]"), "{main}");
        assert!(main.contains("[\\fB\\-v\\fR|\\fB\\-\\-verbose\\fR]..."), "{main}");
        assert!(main.contains("etd\\-fetch(1)"), "{main}");
        assert!(!main.contains("etd\\-help"), "{main}");
        assert!(!generated_files().iter().any(|(p, _)| p.contains("etd-help")));
    }
}
