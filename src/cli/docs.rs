//! Hidden commands that write the man pages and shell completions shipped in the packages,
//! generated from the same clap definition as the parser, so they cannot drift from it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, CliError, CliResult};

/// Writes `relaykey.1` and one page per subcommand (`relaykey-account.1`, ...) into `dir`.
pub fn generate_man(dir: &Path) -> CliResult {
    std::fs::create_dir_all(dir).map_err(|e| CliError::refused(format!("{}: {e}", dir.display())))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| CliError::refused(format!("cannot write man pages to {}: {e}", dir.display())))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: Shell) -> CliResult {
    // Rendered into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "relaykey", &mut script);
    std::io::stdout().write_all(&script).map_err(|e| CliError::refused(format!("cannot write: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
