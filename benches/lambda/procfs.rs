//! What the steps read from `/proc`: which process is which (the runtime emulators and the
//! function processes they start, the local server's children), and the CPU time a process has
//! used.

use std::collections::HashMap;
use std::path::PathBuf;

/// One process: its id, its parent's, and its command line.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub argv: Vec<String>,
}

impl Process {
    /// Whether the program's file name (`argv[0]`'s last component) is `name`.
    pub fn is(&self, name: &str) -> bool {
        self.argv
            .first()
            .is_some_and(|a| a.rsplit('/').next() == Some(name))
    }

    /// A runtime emulator's function: the folder its `bootstrap` argument is in (the binary's
    /// name in the local server's layout, the logical id in `sam build`'s).
    pub fn emulated_function(&self) -> Option<String> {
        let bootstrap = self.argv.last()?;
        let dir = std::path::Path::new(bootstrap).parent()?;
        Some(dir.file_name()?.to_string_lossy().into_owned())
    }
}

/// Every process on the machine, as far as `/proc` shows it now.
pub fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let ppid = stat_fields(pid)?.get(1)?.parse().ok()?;
            Some(Process { pid, ppid, argv })
        })
        .collect()
}

/// The fields of `/proc/<pid>/stat` after the command name (which may itself hold spaces and
/// parentheses): `[0]` is the state, `[1]` the parent, `[11]` utime, `[12]` stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

/// The runtime emulator listening on this invoke port.
pub fn rie_pid(invoke_port: u16) -> Option<u32> {
    let address = format!("127.0.0.1:{invoke_port}");
    processes()
        .into_iter()
        .find(|p| p.is("aws-lambda-rie") && p.argv.contains(&address))
        .map(|p| p.pid)
}

/// The emulator listening on this invoke port, then its child: the function's process.
pub fn bootstrap_pid(invoke_port: u16) -> Option<u32> {
    let rie = rie_pid(invoke_port)?;
    processes()
        .into_iter()
        .find(|p| p.ppid == rie && p.is("bootstrap"))
        .map(|p| p.pid)
}

/// `pid` and every process below it.
pub fn descendants(pid: u32) -> Vec<Process> {
    let all = processes();
    let mut children: HashMap<u32, Vec<&Process>> = HashMap::new();
    for p in &all {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found: Vec<Process> = all.iter().filter(|p| p.pid == pid).cloned().collect();
    let mut next = vec![pid];
    // Bounded: each process is visited once, as the tree has no cycles.
    while let Some(parent) = next.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            found.push((*child).clone());
            next.push(child.pid);
        }
    }
    found
}

/// The process listening on `127.0.0.1:port` (or any address on that port), from the
/// socket's inode in `/proc/net/tcp*` and the process holding it.
pub fn listening_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let listening = *state == "0A";
            let on_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if listening && on_port {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    processes().into_iter().map(|p| p.pid).find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// Where a process's standard output goes (the runtime emulators write their log there).
pub fn stdout_path(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/1")).ok()
}

/// CPU time a process has used so far, all its threads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpu {
    /// utime + stime of `/proc/<pid>/stat`, in microseconds (kept in clock ticks, 10 ms, by
    /// the kernel; threads that ended are included).
    pub stat_us: f64,
    /// The sum of `/proc/<pid>/task/*/schedstat`'s time on CPU, in microseconds (nanosecond
    /// resolution; threads that ended are missing). `None` without schedstat in the kernel.
    pub sched_us: Option<f64>,
}

/// None at all, measured both ways (what a process not yet started has used).
impl Default for Cpu {
    fn default() -> Cpu {
        Cpu {
            stat_us: 0.0,
            sched_us: Some(0.0),
        }
    }
}

impl Cpu {
    /// The finer figure when the kernel has it, else utime + stime.
    pub fn us(&self) -> f64 {
        self.sched_us.unwrap_or(self.stat_us)
    }

    pub fn minus(&self, before: &Cpu) -> Cpu {
        Cpu {
            stat_us: self.stat_us - before.stat_us,
            // A thread that ended in between takes its time out of the sum: then only
            // utime + stime is right.
            sched_us: match (self.sched_us, before.sched_us) {
                (Some(a), Some(b)) if a >= b => Some(a - b),
                _ => None,
            },
        }
    }

    pub fn plus(&self, other: &Cpu) -> Cpu {
        Cpu {
            stat_us: self.stat_us + other.stat_us,
            sched_us: match (self.sched_us, other.sched_us) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            },
        }
    }
}

/// USER_HZ: 100 on every Linux architecture this runs on; /proc reports in it.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The CPU a process has used so far (`None`: it is gone).
pub fn cpu(pid: u32) -> Option<Cpu> {
    let fields = stat_fields(pid)?;
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let stat_us = ticks / CLOCK_TICKS_PER_SECOND * 1e6;
    let sched_us = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .map(|tasks| {
            tasks
                .filter_map(|task| {
                    let path = task.ok()?.path().join("schedstat");
                    let text = std::fs::read_to_string(path).ok()?;
                    text.split_whitespace().next()?.parse::<f64>().ok()
                })
                .sum::<f64>()
                / 1000.0
        })
        .filter(|us| *us > 0.0);
    Some(Cpu { stat_us, sched_us })
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}
