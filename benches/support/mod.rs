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

/// The machine's load as the bench ends a measurement: the load averages and, where the kernel
/// reports it, the CPU pressure (the share of time some runnable task waited for a core, over
/// the last 10 and 60 s), e.g. `load 1.82 2.99 3.00, CPU pressure 20% (10 s) 17% (60 s)`.
pub fn machine_load() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let averages: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    let mut load = format!("load {}", averages.join(" "));
    if let Ok(pressure) = std::fs::read_to_string("/proc/pressure/cpu") {
        let some = pressure
            .lines()
            .find(|l| l.starts_with("some"))
            .unwrap_or("");
        let field = |name: &str| {
            some.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(avg10), Some(avg60)) = (field("avg10="), field("avg60=")) {
            load += &format!(", CPU pressure {avg10:.0}% (10 s) {avg60:.0}% (60 s)");
        }
    }
    load
}
