//! The `privca` binary, built inside the test crate so tests can run it.

fn main() -> std::process::ExitCode {
    privca_server::main_entry()
}
