//! The `privca` binary as a library: configuration, wiring, HTTP listeners, the admin
//! API, the CLI and the benchmarks. It is the only crate that names concrete backends
//! and owns sockets (docs/architecture.md). Keeping it a library lets the workspace tests start a
//! full server in-process.

pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod http;
pub mod init;
pub mod listener;
pub mod metrics;
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
