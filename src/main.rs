//! The `relaykey` command: parse the arguments and hand them to [`relaykey::cli`].

fn main() -> std::process::ExitCode {
    relaykey::cli::main()
}
