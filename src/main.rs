//! Parse, run, map the outcome to an exit code; nothing else.

use clap::Parser;
use clap::error::ErrorKind;
use shipctl::cli::Cli;
use shipctl::render::Printer;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, not clap's 2: in CI scripts 2 means "changes pending".
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
        }
    };
    let mut printer = Printer::new(cli.output);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            printer.error(&shipctl::error::Error::input(format!(
                "cannot start the async runtime: {e}"
            )));
            return 1;
        }
    };
    match runtime.block_on(shipctl::commands::run(cli, &mut printer)) {
        Ok(code) => code,
        Err(e) => {
            printer.error(&e);
            e.exit_code()
        }
    }
}
