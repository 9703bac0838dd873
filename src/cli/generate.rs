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
    let cmd = Cli::command();
    files.push(("man/etd.1".to_string(), render_man(&cmd)));
    for sub in cmd.get_subcommands() {
        let name = format!("etd-{}", sub.get_name());
        let sub = sub.clone().name(name.clone()).display_name(name.clone()).bin_name(name.clone());
        files.push((format!("man/{name}.1"), render_man(&sub)));
    }
    files
}

fn render_man(cmd: &clap::Command) -> Vec<u8> {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = clap_mangen::Man::new(cmd.clone()).render(&mut buf);
    buf
}
