//! The `easel` command: a thin layer that parses arguments, calls the library, writes files,
//! and prints the error chain once. With no command it opens the desktop app.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            cli::end_progress_line();
            eprintln!("easel: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
