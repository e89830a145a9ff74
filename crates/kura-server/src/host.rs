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
