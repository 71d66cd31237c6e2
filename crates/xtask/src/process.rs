//! Processes seen through `/proc` and signals: whether a pid file names a live process,
//! stopping one, and what a process has cost so far (CPU ticks, peak resident memory).
//! Linux only, as the native stack is.

use std::path::Path;
use std::time::{Duration, Instant};

/// The pid a pid file names, if the file holds one.
pub fn read_pid(pid_file: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// Whether the process runs (exists and has not exited waiting to be reaped).
pub fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat_fields(&stat).and_then(|f| f.first().map(|s| *s != "Z")))
            .unwrap_or(true)
}

/// The pid a pid file names, if that process runs.
pub fn running(pid_file: &Path) -> Option<i32> {
    read_pid(pid_file).filter(|pid| alive(*pid))
}

pub fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: sending a signal has no memory-safety preconditions; a gone pid is ignored.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Sends `sig`, waits up to `grace` for the process to end, then kills it; false if it
/// had to be killed.
pub fn stop(pid: i32, sig: libc::c_int, grace: Duration) -> bool {
    signal(pid, sig);
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        signal(pid, libc::SIGKILL);
        return false;
    }
    true
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces):
/// index 0 is field 3 (state), so field N is at index N - 3.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// User plus system CPU time in clock ticks, from a `/proc/<pid>/stat` line.
pub fn cpu_ticks_of_stat(stat: &str) -> Option<u64> {
    let fields = stat_fields(stat)?;
    let user: u64 = fields.get(14 - 3)?.parse().ok()?;
    let system: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(user + system)
}

/// CPU ticks a process has spent so far (0 when it is gone).
pub fn cpu_ticks(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| cpu_ticks_of_stat(&stat))
        .unwrap_or(0)
}

/// CPU ticks this process has spent so far.
pub fn own_cpu_ticks() -> u64 {
    cpu_ticks(std::process::id().try_into().unwrap_or(i32::MAX))
}

/// CPU ticks spent by every process whose command name is `name` (as `pgrep -x`).
pub fn cpu_ticks_by_name(name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .map(cpu_ticks)
        .sum()
}

/// Clock ticks per second, the unit of the CPU times in `/proc`.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Peak resident memory (VmHWM) from a `/proc/<pid>/status` text, MiB.
pub fn peak_rss_mib_of_status(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn peak_rss_mib(pid: i32) -> Option<f64> {
    peak_rss_mib_of_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_user_plus_system_even_with_spaces_in_the_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 3 0 100 1000 200";
        assert_eq!(cpu_ticks_of_stat(stat), Some(1290));
        assert_eq!(cpu_ticks_of_stat("garbage"), None);
    }

    #[test]
    fn peak_rss_comes_from_vmhwm() {
        let status = "Name:\tpurchase-servic\nVmPeak:\t  900000 kB\nVmHWM:\t   30720 kB\nVmRSS:\t   20000 kB\n";
        assert_eq!(peak_rss_mib_of_status(status), Some(30.0));
    }

    #[test]
    fn this_process_is_alive_and_costs_cpu() {
        let pid = std::process::id().try_into().unwrap();
        assert!(alive(pid));
        assert!(peak_rss_mib(pid).is_some_and(|mib| mib > 0.0));
        assert!(ticks_per_second() > 0.0);
    }
}
