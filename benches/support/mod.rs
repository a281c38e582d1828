//! What the benchmarks share: where SoftHSM2 is, medians, and CPU time read from /proc.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// The SoftHSM2 PKCS#11 module installed by the Debian package.
pub fn softhsm_module() -> &'static str {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("SoftHSM2 is installed (make bench installs it)")
}

/// The median of `times`.
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Whose CPU time [`cpu_time`] reads.
pub enum Cpu {
    /// This process, all its threads (utime + stime).
    Process,
    /// This process's children waited for so far (cutime + cstime).
    Children,
}

/// CPU time (user + system) from /proc/self/stat, at its 10 ms resolution.
pub fn cpu_time(whose: Cpu) -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // stat's fields 14-15 (utime, stime) and 16-17 (cutime, cstime), counted from field 3,
    // the first after the name.
    let first = match whose {
        Cpu::Process => 11,
        Cpu::Children => 13,
    };
    let ticks: u64 =
        fields[first].parse::<u64>().unwrap() + fields[first + 1].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}
