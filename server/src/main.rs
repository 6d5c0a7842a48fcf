//! The `privca` binary.

fn main() -> std::process::ExitCode {
    privca_server::main_entry()
}
