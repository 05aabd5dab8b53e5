//! Generates the man pages and shell completions from the command line's clap definition, so
//! that a plain `cargo deb` (or `cargo build --release` then `cargo generate-rpm`) packages
//! them, and they cannot drift from the parser.
//!
//! `src/cli/args/` holds the clap types and nothing else of the crate; it is compiled into
//! this script too (`#[path]`). The files land in the profile directory, beside the binary:
//!
//! ```text
//! target/release/man/relaykey.1, relaykey-account.1, ...   (one page per subcommand)
//! target/release/completions/relaykey.bash, _relaykey, relaykey.fish
//! ```
//!
//! cargo-deb and cargo-generate-rpm read a `target/release/` asset path as "the target
//! directory of this build", wherever `CARGO_TARGET_DIR` puts it. Cargo tells a build script
//! only its `OUT_DIR` (`<target>/<profile>/build/relaykey-<hash>/out`), so the profile
//! directory is found as the parent of the nearest `build` directory above it; a layout
//! without one fails the build rather than package stale files. The script reruns when the
//! definition changes, not when its output is deleted (cargo would see files written during the
//! run as changed and rerun it at every build): after deleting `target/release/man`, touch
//! `build.rs`.

use std::error::Error;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)]
#[path = "src/cli/args/mod.rs"]
mod args;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cli/args");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?);
    let profile_dir = profile_dir(&out_dir)
        .ok_or_else(|| format!("OUT_DIR {} is not under a `build` directory", out_dir.display()))?;

    let man = profile_dir.join("man");
    let completions = profile_dir.join("completions");
    // Written afresh every run: a page for a removed subcommand must not linger.
    for dir in [&man, &completions] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    clap_mangen::generate_to(args::Cli::command(), &man)?;
    for (shell, name) in [(Shell::Bash, "relaykey.bash"), (Shell::Zsh, "_relaykey"), (Shell::Fish, "relaykey.fish")] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut args::Cli::command(), "relaykey", &mut script);
        std::fs::write(completions.join(name), script)?;
    }
    Ok(())
}

/// `<target>/<profile>` (or `<target>/<triple>/<profile>`) from `OUT_DIR`.
fn profile_dir(out_dir: &Path) -> Option<PathBuf> {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}
