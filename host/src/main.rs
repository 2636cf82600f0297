//! The `tidemark` command.

use std::process::ExitCode;

use clap::Parser;
use tidemark::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tidemark::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}
