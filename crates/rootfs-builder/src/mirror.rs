//! The mirror state of a build: the suite's `InRelease`, fetched once per build with retries.
//!
//! Its sha256 goes into the cache key (same spec + same mirror state = no rebuild) and its `Date`
//! is the default `SOURCE_DATE_EPOCH`. Fetching uses `curl` through [`artifact::cmd`].

use std::process::Command;
use std::time::Duration;

use crate::Error;

/// How often and how patiently to talk to the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Total attempts (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub delay: Duration,
    /// Per-attempt connect timeout.
    pub connect_timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            delay: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// The suite index as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorState {
    pub url: String,
    pub inrelease_sha256: String,
    /// `Date:` of the Release, as seconds since the epoch.
    pub date_epoch: u64,
}

/// `<mirror>/dists/<suite>/InRelease`.
pub fn inrelease_url(mirror: &str, suite: &str) -> String {
    format!("{}/dists/{suite}/InRelease", mirror.trim_end_matches('/'))
}

/// Fetch the suite's InRelease, retrying; the error names the mirror and the attempts.
pub fn fetch(mirror: &str, suite: &str, retry: Retry) -> Result<MirrorState, Error> {
    let url = inrelease_url(mirror, suite);
    let attempts = retry.attempts.max(1);
    let mut delay = retry.delay;
    let mut last = String::new();
    for n in 1..=attempts {
        let mut cmd = Command::new("curl");
        cmd.args(["--fail", "--silent", "--show-error", "--location"])
            .arg("--connect-timeout")
            .arg(retry.connect_timeout.as_secs().max(1).to_string())
            .args(["--max-time", "120", "--"])
            .arg(&url);
        match artifact::cmd::run(&mut cmd) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                return parse_inrelease(&url, &text).map(|date_epoch| MirrorState {
                    url: url.clone(),
                    inrelease_sha256: artifact::sha256_bytes(&out.stdout),
                    date_epoch,
                });
            }
            Err(e) => {
                last = e.stderr_tail().trim().to_string();
                if last.is_empty() {
                    last = e.to_string();
                }
                tracing::warn!("mirror {mirror}: attempt {n}/{attempts} failed: {last}");
                if n < attempts {
                    std::thread::sleep(delay);
                    delay *= 2;
                }
            }
        }
    }
    Err(Error::Mirror {
        mirror: mirror.into(),
        attempts,
        message: format!("fetching {url}: {last}"),
    })
}

/// Check that the text is a Release file for a suite and return its `Date` as epoch seconds.
pub fn parse_inrelease(url: &str, text: &str) -> Result<u64, Error> {
    let bad = |m: String| Error::Mirror {
        mirror: url.into(),
        attempts: 1,
        message: m,
    };
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix("Date:"))
        .ok_or_else(|| bad("the InRelease has no Date: field (is this a Debian mirror?)".into()))?;
    parse_rfc2822(date.trim()).ok_or_else(|| bad(format!("cannot parse Date: {:?}", date.trim())))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parse the Release `Date` format, `Sat, 09 Aug 2025 09:13:26 UTC` (also `+0000`), to epoch
/// seconds. Only UTC offsets of the form `UTC`, `GMT`, `Z` or `±hhmm` are accepted.
pub fn parse_rfc2822(s: &str) -> Option<u64> {
    let s = s.split_once(',').map(|(_, r)| r).unwrap_or(s).trim();
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 5 {
        return None;
    }
    let day: u32 = parts[0].parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == parts[1])? as u32 + 1;
    let year: i64 = parts[2].parse().ok()?;
    let hms: Vec<u32> = parts[3]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, se] = hms[..] else { return None };
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let offset: i64 = match parts[4] {
        "UTC" | "GMT" | "Z" => 0,
        o if o.len() == 5 && (o.starts_with('+') || o.starts_with('-')) => {
            let hh: i64 = o[1..3].parse().ok()?;
            let mm: i64 = o[3..5].parse().ok()?;
            let v = hh * 3600 + mm * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let t = days * 86400 + (h * 3600 + mi * 60 + se) as i64 - offset;
    u64::try_from(t).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYYMMDDTHHMMSSZ` for an epoch (used as the artifact's version).
pub fn format_epoch(t: u64) -> String {
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    // civil_from_days
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates() {
        // date -u -d 'Sat, 09 Aug 2025 09:13:26 UTC' +%s
        assert_eq!(
            parse_rfc2822("Sat, 09 Aug 2025 09:13:26 UTC"),
            Some(1754730806)
        );
        assert_eq!(
            parse_rfc2822("09 Aug 2025 11:13:26 +0200"),
            Some(1754730806)
        );
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_rfc2822("Sat, 10 Jun 2023 08:54:33 UTC"),
            Some(1686387273)
        );
        assert_eq!(parse_rfc2822("Sat, 09 Aug 2025"), None);
        assert_eq!(parse_rfc2822("Sat, 09 Foo 2025 09:13:26 UTC"), None);
        assert_eq!(parse_rfc2822("Sat, 09 Aug 2025 25:13:26 UTC"), None);
        assert_eq!(parse_rfc2822("Sat, 09 Aug 2025 09:13:26 CEST"), None);
    }

    #[test]
    fn epoch_formatting_round_trips() {
        assert_eq!(format_epoch(1754730806), "20250809T091326Z");
        assert_eq!(format_epoch(0), "19700101T000000Z");
        assert_eq!(format_epoch(951782400), "20000229T000000Z");
        for t in [0u64, 951782400, 1686387273, 1754730806, 4102444800] {
            let f = format_epoch(t);
            let back = format!(
                "{} {} {} {}:{}:{} UTC",
                &f[6..8],
                MONTHS[f[4..6].parse::<usize>().unwrap() - 1],
                &f[0..4],
                &f[9..11],
                &f[11..13],
                &f[13..15]
            );
            assert_eq!(parse_rfc2822(&back), Some(t), "{f}");
        }
    }

    #[test]
    fn inrelease_needs_a_date() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSuite: stable\nCodename: trixie\nDate: Sat, 09 Aug 2025 09:13:26 UTC\n";
        assert_eq!(parse_inrelease("u", text).unwrap(), 1754730806);
        let e = parse_inrelease("http://m/dists/x/InRelease", "<html>hi</html>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://m/dists/x/InRelease"), "{e}");
        assert!(e.contains("no Date"), "{e}");
    }

    #[test]
    fn url() {
        assert_eq!(
            inrelease_url("http://deb.debian.org/debian/", "trixie"),
            "http://deb.debian.org/debian/dists/trixie/InRelease"
        );
    }

    /// Nothing listens on port 9 of the loopback: the fetch fails after every attempt and the
    /// error names the mirror and the number of attempts. (No network needed.)
    #[test]
    fn unreachable_mirror_fails_after_retries_naming_it() {
        let retry = Retry {
            attempts: 3,
            delay: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(2),
        };
        let t = std::time::Instant::now();
        let e = fetch("http://127.0.0.1:9/debian", "trixie", retry).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("http://127.0.0.1:9/debian"), "{s}");
        assert!(s.contains("after 3 attempts"), "{s}");
        assert!(s.contains("dists/trixie/InRelease"), "{s}");
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
}
