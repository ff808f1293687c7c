//! Command-line errors as docker reports them: a flag it cannot parse (unknown, missing
//! its value, a value of the wrong kind) exits 125, a wrong number of arguments or an
//! unknown command exits 1, `--help` and `--version` exit 0.
//!
//! clap's own tips are kept only where following them works: it suggests `-- --flag` to
//! pass an unknown flag as a value, which for `run` would make `--flag` the image, and it
//! may name the hidden `container-supervise`, which is no command for a user.

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory as _, FromArgMatches as _};

use crate::cli::Cli;

/// docker's code for a flag it cannot parse.
const FLAG_ERROR: u8 = 125;
/// docker's code for a wrong number of arguments or an unknown command.
const USAGE_ERROR: u8 = 1;

/// The parsed command line, or the code to exit with once its error was printed.
pub fn parse() -> Result<Cli, ExitCode> {
    let mut command = Cli::command();
    let parsed = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches));
    parsed.map_err(|e| {
        let code = exit_code(&e);
        let e = without_dead_ends(e, &command);
        let _ = e.print();
        ExitCode::from(code)
    })
}

/// docker's exit code for a parse error.
fn exit_code(e: &clap::Error) -> u8 {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
        ErrorKind::UnknownArgument if !names_a_flag(e) => USAGE_ERROR,
        ErrorKind::MissingRequiredArgument
        | ErrorKind::MissingSubcommand
        | ErrorKind::InvalidSubcommand => USAGE_ERROR,
        _ => FLAG_ERROR,
    }
}

/// Whether the argument an error is about is a flag (`ps extra` is an argument too many).
fn names_a_flag(e: &clap::Error) -> bool {
    matches!(e.get(ContextKind::InvalidArg), Some(ContextValue::String(arg)) if arg.starts_with('-'))
}

/// `e` without the tips that would not work.
fn without_dead_ends(mut e: clap::Error, command: &clap::Command) -> clap::Error {
    if let Some(ContextValue::StyledStrs(tips)) = e.remove(ContextKind::Suggested) {
        let kept: Vec<_> = tips
            .into_iter()
            .filter(|tip| !tip.to_string().contains("as a value, use '--"))
            .collect();
        if !kept.is_empty() {
            e.insert(ContextKind::Suggested, ContextValue::StyledStrs(kept));
        }
    }
    if let Some(ContextValue::Strings(names)) = e.remove(ContextKind::SuggestedSubcommand) {
        let hidden = hidden_commands(command);
        let kept: Vec<String> = names.into_iter().filter(|n| !hidden.contains(n)).collect();
        if !kept.is_empty() {
            e.insert(
                ContextKind::SuggestedSubcommand,
                ContextValue::Strings(kept),
            );
        }
    }
    e
}

/// The names of every hidden subcommand, at any depth.
fn hidden_commands(command: &clap::Command) -> Vec<String> {
    command
        .get_subcommands()
        .flat_map(|sub| {
            let own = sub.is_hide_set().then(|| sub.get_name().to_string());
            own.into_iter().chain(hidden_commands(sub))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_text(args: &[&str]) -> (u8, String) {
        let mut command = Cli::command();
        let e = command
            .try_get_matches_from_mut(std::iter::once("basic-docker").chain(args.iter().copied()))
            .unwrap_err();
        let code = exit_code(&e);
        (code, without_dead_ends(e, &command).to_string())
    }

    #[test]
    fn flag_errors_are_125_and_usage_errors_1_as_in_docker() {
        assert_eq!(code_and_text(&["run", "--bogus", "busybox"]).0, 125);
        assert_eq!(code_and_text(&["--bogus"]).0, 125);
        assert_eq!(code_and_text(&["run", "--memory"]).0, 125);
        assert_eq!(code_and_text(&["run", "--cpus", "abc", "busybox"]).0, 125);
        assert_eq!(code_and_text(&["stop", "-t", "abc", "x"]).0, 125);
        assert_eq!(code_and_text(&["run"]).0, 1);
        assert_eq!(code_and_text(&["ps", "extra"]).0, 1);
        assert_eq!(code_and_text(&["bogus"]).0, 1);
        assert_eq!(code_and_text(&["--help"]).0, 0);
        assert_eq!(code_and_text(&["--version"]).0, 0);
    }

    #[test]
    fn no_tip_leads_nowhere() {
        let (_, text) = code_and_text(&["run", "--memroy", "1g", "busybox"]);
        assert!(text.contains("'--memory'"), "{text}");
        assert!(!text.contains("-- --memroy"), "{text}");
        let (_, text) = code_and_text(&["run", "--bogus", "busybox"]);
        assert!(!text.contains("tip"), "{text}");
        let (_, text) = code_and_text(&["container-supervis", "x"]);
        assert!(!text.contains("container-supervise"), "{text}");
        let (_, text) = code_and_text(&["imags"]);
        assert!(text.contains("'images'"), "{text}");
    }
}
