//! The `aibridged` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    aibridged::commands::main()
}
