//! The `proxyscope` binary: parses argv and hands over to `proxyscope::cli`.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    let cli = match proxyscope::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors; usage mistakes exit 2 with clap's message.
            let exit = if e.use_stderr() {
                proxyscope::cli::Exit::Error
            } else {
                proxyscope::cli::Exit::Done
            };
            let _ = e.print();
            std::process::exit(exit.code());
        }
    };
    std::process::exit(proxyscope::cli::run(cli).code());
}
