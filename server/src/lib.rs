//! The `privca` binary as a library: configuration, wiring, HTTP listeners, the admin
//! API, the CLI and the benchmarks. It is the only crate that names concrete backends
//! and owns sockets (docs/architecture.md). Keeping it a library lets the workspace tests start a
//! full server in-process.

/// `println!` for the CLI's and the benchmarks' output: a closed pipe (`privca list | head`)
/// ends the command quietly instead of panicking, as `println!` does on a write error.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` counterpart of [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
}

pub mod access;
pub mod acme_wiring;
pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod http;
pub mod init;
pub mod listener;
pub mod metrics;
pub mod notify;
pub mod quickstart;
pub mod renewal;
pub mod scep_wiring;
pub mod serve;
pub mod tls;

mod error;

pub use error::Error;

/// `privca bench est`'s module under its former path (the workspace tests build CSRs
/// with [`bench_est::make_csr`]).
pub use bench::est as bench_est;

/// Writes CLI output to stdout. A reader that went away (EPIPE) ends the process with
/// success, as a command that was cut short by `head` should; another write error ends it
/// with a message and a failure status.
#[doc(hidden)]
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("privca: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// The entry point of the `privca` binary: parses arguments, runs, prints a one-line
/// error and returns a non-zero exit code on failure.
pub fn main_entry() -> std::process::ExitCode {
    use clap::Parser;
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("privca: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
