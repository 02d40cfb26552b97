//! The `dashgate` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    dashgate::cli::main()
}
