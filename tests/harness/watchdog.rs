//! The servers the harness starts (DynamoDB Local, moto, runtime emulators) run under a
//! watchdog shell: the server's output goes to a log file, and it is killed when this process
//! exits, because the shell waits on a stdin pipe this process holds and never writes.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// A command that runs `server` (a shell command line, its words quoted as needed) with output
/// to `log`, under a watchdog; the caller adds environment and spawns it, and holds the child.
pub fn command(server: &str, log: &Path) -> Command {
    let script = format!(
        "{server} </dev/null >'{log}' 2>&1 & \
         child=$!; trap 'kill $child 2>/dev/null' EXIT INT TERM HUP; read _ignored; kill $child 2>/dev/null; wait $child",
        log = log.display(),
    );
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C reaches this process, which stops it,
        // not the watchdog (a background job of `sh` ignores SIGINT, so the server would outlive it).
        .process_group(0);
    command
}
