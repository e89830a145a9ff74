//! `kura`: the command-line agent. A thin layer over `kura-agent`: it parses arguments,
//! asks for secrets, draws progress and prints results; the engine does the work.

mod agent_config;
mod cli;
mod commands;
mod ui;

use std::process::ExitCode;

use clap::Parser;

/// `kura ls latest /etc | head`: when the reader goes away, stop as other Unix tools do
/// (killed by SIGPIPE, nothing printed) instead of panicking in `println!`. Rust starts
/// programs with SIGPIPE ignored; this puts back the default.
fn quit_quietly_on_closed_pipe() {
    // SAFETY: called first thing in `main`, before any thread exists; setting a signal's
    // disposition to the default has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Exit code when a command did its work but not all of it: a backup that could not read
/// some files, a restore or listing that went around damage in the vault, a repair that
/// left damage it could not heal. What was left out is listed.
pub const EXIT_PARTIAL: u8 = 3;

fn main() -> ExitCode {
    quit_quietly_on_closed_pipe();
    let cli = cli::Cli::parse();
    let ui = ui::Ui {
        json: cli.json,
        quiet: cli.quiet,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match commands::run(cli, ui, runtime.handle().clone()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("error: {message}");
            if ui.json {
                println!("{}", serde_json::json!({ "error": message }));
            }
            ExitCode::from(1)
        }
    }
}
