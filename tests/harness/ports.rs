//! Ports for the servers the harness starts (DynamoDB Local, runtime emulators, the local
//! server), handed out so that two starts can never be given the same port:
//!
//! - from below the kernel's ephemeral range (`ip_local_port_range`), where the kernel never
//!   puts the local end of an outgoing connection (binding port 0 and releasing it, as before,
//!   drew from that range: an outgoing connection could take the port before the server bound
//!   it, and so could another test asking for port 0 at the same moment);
//! - each port claimed by an exclusive lock on a file in the system's temporary folder,
//!   held until the claiming process exits, so every process of the project on this machine
//!   (parallel tests, `./scripts/run`, the benchmarks) skips ports another one holds;
//! - and checked free by binding it, so a port some other program listens on is skipped.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

/// The lowest port handed out.
const FIRST: u16 = 12_000;

/// Locks held for the life of the process: one per port handed out.
static CLAIMED: Mutex<Vec<(u16, File)>> = Mutex::new(Vec::new());

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("token-service-ports")
}

/// The first port of the kernel's ephemeral range (32768 on Linux by default).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .filter(|start| *start > FIRST + 1_000)
        .unwrap_or(32_768)
}

/// A port no other start of this project's harness holds, and nothing listens on.
pub fn free_port() -> u16 {
    let end = ephemeral_start();
    let span = u32::from(end - FIRST);
    // Start at a point that differs between processes, so they rarely probe the same ports.
    let offset = std::process::id().wrapping_mul(2_654_435_761) % span;
    let _ = std::fs::create_dir_all(lock_dir());
    let Ok(mut claimed) = CLAIMED.lock() else {
        panic!("the port registry is poisoned");
    };
    for step in 0..span {
        let port = FIRST + ((offset + step) % span) as u16;
        if claimed.iter().any(|(p, _)| *p == port) {
            continue;
        }
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_dir().join(format!("{port}.lock")))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        claimed.push((port, file));
        return port;
    }
    panic!(
        "no free port between {FIRST} and {end}: every one is taken or claimed in {}",
        lock_dir().display()
    );
}
