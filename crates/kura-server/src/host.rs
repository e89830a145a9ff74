//! Facts about the host the service runs on, for `/healthz` and the metrics.

/// Whether the kernel reports the system clock synchronised (an NTP daemon such as chrony
/// or systemd-timesyncd disciplines it): `adjtimex(2)`, only reading, answers
/// `TIME_ERROR` or flags `STA_UNSYNC` while it is not. `None` where it cannot say.
#[cfg(target_os = "linux")]
pub fn clock_synchronized() -> Option<bool> {
    // SAFETY: `timex` is a plain C struct for which all-zero is valid; with `modes` zero,
    // adjtimex only reads the kernel's state into it.
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: a valid, exclusively borrowed `timex` for the call's duration.
    let state = unsafe { libc::adjtimex(&mut timex) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0)
}

#[cfg(not(target_os = "linux"))]
pub fn clock_synchronized() -> Option<bool> {
    None
}

/// What the server process uses, for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ProcessUsage {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    /// Unix time.
    pub start_time_seconds: f64,
}

/// Reads `/proc/self` (`None` where there is no procfs).
#[cfg(target_os = "linux")]
pub fn process_usage() -> Option<ProcessUsage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: the
    // first is field 3 (state), so utime (14) is at 11, stime at 12, starttime at 19.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index)?.parse::<u64>().ok();
    let (utime, stime, started) = (ticks(11)?, ticks(12)?, ticks(19)?);
    // SAFETY: sysconf only reads a system constant.
    let (tick_rate, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let tick_rate = u64::try_from(tick_rate).ok().filter(|rate| *rate > 0)? as f64;
    let resident_pages: u64 = std::fs::read_to_string("/proc/self/statm")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let boot_time: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    Some(ProcessUsage {
        cpu_seconds: (utime + stime) as f64 / tick_rate,
        resident_bytes: resident_pages.saturating_mul(u64::try_from(page_size).ok()?),
        open_fds,
        max_fds,
        start_time_seconds: boot_time as f64 + started as f64 / tick_rate,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn process_usage() -> Option<ProcessUsage> {
    None
}

/// Size and free bytes (for an unprivileged writer) of the file system holding `path`.
pub fn file_system_space(path: &std::path::Path) -> Option<(u64, u64)> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some((
        stat.f_blocks.saturating_mul(stat.f_frsize),
        stat.f_bavail.saturating_mul(stat.f_frsize),
    ))
}
