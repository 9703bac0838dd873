//! Numbers for people: durations (and, in time, sizes) written one way everywhere.

use std::time::Duration;

/// A duration for people: `3h 12m`, `4m 05s`, `12.5s`.
pub fn human_duration(d: Duration) -> String {
    if d == Duration::MAX {
        return "practically forever".into();
    }
    let s = d.as_secs_f64();
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
    match (total / 86_400, h) {
        (days, _) if days > 0 => format!("{days}d {:02}h {m:02}m", h % 24),
        (_, 0) => format!("{m}m {sec:02}s"),
        _ => format!("{h}h {m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(Duration::from_secs(100)), "1m 40s");
        assert_eq!(human_duration(Duration::from_secs(7260)), "2h 01m");
        assert_eq!(human_duration(Duration::from_secs(90_000)), "1d 01h 00m");
    }
}
