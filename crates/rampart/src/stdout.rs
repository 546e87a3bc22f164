//! Command output to stdout. A reader that went away (a pipe into `head`) ends the command
//! quietly with status 0; any other write error is reported and exits 1.

use std::io::Write;

/// Writes `args` (and a newline) to stdout.
pub(crate) fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("rampart: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}
