//! Checks and their report, shared by `drydock test` (static, on the image file) and
//! `drydock boot-test` (over SSH, on the booted image).
//!
//! A check has a group, a name, a verdict and a detail saying what was found. Generators push checks
//! into a [`Report`]; a check whose evidence could not be read fails with the reason (a check never
//! passes by default). The report prints grouped for people, or one JSON object per check.

pub mod boot;
pub mod bundle;
pub mod disk;
#[cfg(test)]
mod fixture_tests;
pub mod image;
pub mod layout;
pub mod readiness;
pub mod subject;
pub mod system;
#[doc(hidden)]
pub mod testkit;

use std::io::Write;

use serde::Serialize;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub group: String,
    pub name: String,
    pub ok: bool,
    /// What was found (for a failure: what was wrong).
    pub detail: String,
}

/// An ordered list of checks.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
    group: String,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    /// Following checks belong to `group`.
    pub fn group(&mut self, group: &str) {
        self.group = group.to_string();
    }

    /// Record a check.
    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            group: self.group.clone(),
            name: name.into(),
            ok,
            detail: detail.into(),
        });
        ok
    }

    /// Record a passing check.
    pub fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) -> bool {
        self.check(name, true, detail)
    }

    /// Record a failing check.
    pub fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>) -> bool {
        self.check(name, false, detail)
    }

    /// Record a check from a result: `Ok(detail)` passes, `Err(detail)` fails.
    pub fn result(&mut self, name: impl Into<String>, r: Result<String, String>) -> bool {
        match r {
            Ok(d) => self.check(name, true, d),
            Err(d) => self.check(name, false, d),
        }
    }

    /// Whether every check passed (and there is at least one).
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// Look up a check by name.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn extend(&mut self, other: Report) {
        self.checks.extend(other.checks);
    }

    /// One JSON object per check, one per line.
    pub fn write_json(&self, mut w: impl Write) -> std::io::Result<()> {
        for c in &self.checks {
            let line = serde_json::to_string(c).map_err(std::io::Error::other)?;
            writeln!(w, "{line}")?;
        }
        Ok(())
    }

    /// Grouped, PASS/FAIL per check with what was found, then a summary naming every failure.
    pub fn write_human(&self, mut w: impl Write) -> std::io::Result<()> {
        let mut groups: Vec<&str> = Vec::new();
        for c in &self.checks {
            if !groups.contains(&c.group.as_str()) {
                groups.push(&c.group);
            }
        }
        for g in &groups {
            let in_group: Vec<&Check> = self.checks.iter().filter(|c| c.group == *g).collect();
            let bad = in_group.iter().filter(|c| !c.ok).count();
            writeln!(
                w,
                "== {g} ({} checks, {})",
                in_group.len(),
                if bad == 0 {
                    "all pass".to_string()
                } else {
                    format!("{bad} FAILED")
                }
            )?;
            for c in in_group {
                let mark = if c.ok { "PASS" } else { "FAIL" };
                if c.detail.is_empty() {
                    writeln!(w, "  {mark}  {}", c.name)?;
                } else {
                    writeln!(w, "  {mark}  {}: {}", c.name, one_line(&c.detail))?;
                }
            }
        }
        let failed: Vec<&Check> = self.failed().collect();
        writeln!(
            w,
            "\n{} checks, {} passed, {} failed",
            self.checks.len(),
            self.checks.len() - failed.len(),
            failed.len()
        )?;
        for c in failed {
            writeln!(w, "FAILED [{}] {}: {}", c.group, c.name, c.detail)?;
        }
        Ok(())
    }
}

/// A detail on one line, shortened for the grouped listing (the summary keeps it whole).
fn one_line(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 160 {
        let cut: String = flat.chars().take(157).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// Show at most `n` items of a list, with a count of the rest.
pub fn list_some<T: std::fmt::Display>(items: &[T], n: usize) -> String {
    let mut s = items
        .iter()
        .take(n)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > n {
        s.push_str(&format!(" (and {} more)", items.len() - n));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_groups_and_summarises_failures() {
        let mut r = Report::new();
        r.group("one");
        r.pass("a", "found a");
        r.group("two");
        r.fail("b", "expected x, found y");
        r.result("c", Ok("fine".into()));
        assert!(!r.ok());
        let mut out = Vec::new();
        r.write_human(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("== one (1 checks, all pass)"), "{s}");
        assert!(s.contains("== two (2 checks, 1 FAILED)"), "{s}");
        assert!(s.contains("FAIL  b: expected x, found y"), "{s}");
        assert!(s.contains("3 checks, 2 passed, 1 failed"), "{s}");
        assert!(s.contains("FAILED [two] b: expected x, found y"), "{s}");
    }

    #[test]
    fn json_is_one_object_per_line() {
        let mut r = Report::new();
        r.group("g");
        r.pass("a", "x");
        r.fail("b", "y \"quoted\"\nline");
        let mut out = Vec::new();
        r.write_json(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["group"], "g");
        assert_eq!(v["name"], "b");
        assert_eq!(v["ok"], false);
        assert_eq!(v["detail"], "y \"quoted\"\nline");
    }

    #[test]
    fn empty_report_is_not_ok() {
        assert!(!Report::new().ok());
    }
}
