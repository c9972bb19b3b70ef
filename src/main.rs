//! Parse, run, map the outcome to an exit code; nothing else.

use clap::Parser;
use clap::error::ErrorKind;
use shipctl::cli::{Cli, Output};
use shipctl::render::Printer;

fn main() {
    one_malloc_arena();
    std::process::exit(run());
}

/// sqlx runs SQLite on a worker thread; glibc would give that thread its own
/// malloc arena and grow it page by page (hundreds of mprotect calls per
/// `status`). One arena is plenty for a short-lived CLI.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Whether the command line asks for this output format (json, jsonl), read
/// from the raw arguments: a usage error is reported before clap has parsed
/// anything, and a script that asked for JSON gets JSON then too.
fn wants(format: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().any(|a| {
        a.strip_prefix("--output=")
            .or_else(|| a.strip_prefix("-o"))
            .is_some_and(|v| v == format)
    }) || args
        .windows(2)
        .any(|w| (w[0] == "--output" || w[0] == "-o") && w[1] == format)
}

fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 1, not clap's 2: in CI scripts 2 means "changes pending".
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    0
                }
                _ if wants("json") || wants("jsonl") => {
                    let usage = shipctl::error::Error::usage(&e.render().to_string());
                    Printer::new(if wants("jsonl") {
                        Output::Jsonl
                    } else {
                        Output::Json
                    })
                    .error(&usage);
                    usage.exit_code()
                }
                _ => {
                    let _ = e.print();
                    1
                }
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
    let code = match runtime.block_on(shipctl::commands::run(cli, &mut printer)) {
        Ok(exit) => exit.code(),
        Err(e) => {
            printer.error(&e);
            e.exit_code()
        }
    };
    // A command dropped on a signal may leave a connection's worker behind:
    // nothing is waited for on the way out.
    runtime.shutdown_background();
    code
}
