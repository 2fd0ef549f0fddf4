//! `with_stdin FILE COMMAND [ARGS…]`: runs COMMAND with FILE as its stdin by
//! replacing this process (exec), so `hyperfine -N` can time a credential
//! helper's `get` as a whole process without a shell in the measurement.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: with_stdin FILE COMMAND [ARGS...]");
        return ExitCode::from(2);
    }
    let file = match std::fs::File::open(&args[0]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("with_stdin: {}: {e}", args[0]);
            return ExitCode::from(2);
        }
    };
    let err = Command::new(&args[1])
        .args(&args[2..])
        .stdin(Stdio::from(file))
        .exec();
    eprintln!("with_stdin: {}: {err}", args[1]);
    ExitCode::from(127)
}
