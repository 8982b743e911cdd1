//! Debian control stanzas (deb822 paragraphs): a strict parser and a writer.
//!
//! A [`Stanza`] keeps its fields in order. A field value is stored the way it is written after the
//! colon: the first line with surrounding blanks trimmed, then each continuation line as written
//! (starting with a space or tab, trailing blanks trimmed), joined with `\n`. Writing a parsed
//! stanza gives back the same text, modulo trailing blanks and the blank after the colon.
//!
//! The parser is strict: every error names the line (1-based) and, where there is one, the field.
//! Comments (`#` lines) are not accepted: they do not occur in binary package control files,
//! `Packages` or `Release`.

use std::fmt;

/// Errors of the control-file parser and of binary-control validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("control data is not valid UTF-8 (line {line})")]
    NotUtf8 { line: usize },
    #[error("line {line}: expected `Field: value`, found {text:?}")]
    NoColon { line: usize, text: String },
    #[error("line {line}: invalid field name {name:?}")]
    BadFieldName { line: usize, name: String },
    #[error("line {line}: field {name} appears twice")]
    DuplicateField { line: usize, name: String },
    #[error("line {line}: continuation line before any field")]
    OrphanContinuation { line: usize },
    #[error("line {line}: field {name} has an empty value")]
    EmptyValue { line: usize, name: String },
    #[error("no fields (empty control stanza)")]
    Empty,
    #[error("line {line}: expected one stanza, found a second one")]
    ExtraStanza { line: usize },
    #[error("missing required field {name}")]
    MissingField { name: String },
    #[error("field {name}: invalid value {value:?}: {why}")]
    InvalidValue {
        name: String,
        value: String,
        why: String,
    },
}

pub type Result<T, E = ControlError> = std::result::Result<T, E>;

/// One field of a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// First line, then continuation lines (each starting with a blank), joined with `\n`.
    pub value: String,
}

/// An ordered control stanza.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    fields: Vec<Field>,
}

fn valid_field_name(name: &str) -> bool {
    // deb822: US-ASCII printable, not starting with '#' or '-', no colon, no blanks.
    !name.is_empty()
        && !name.starts_with('#')
        && !name.starts_with('-')
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

impl Stanza {
    pub fn new() -> Self {
        Stanza::default()
    }

    /// Parse exactly one stanza (leading and trailing blank lines allowed).
    pub fn parse(text: &str) -> Result<Stanza> {
        let mut all = parse_stanzas(text)?;
        match all.len() {
            0 => Err(ControlError::Empty),
            1 => Ok(all.remove(0).1),
            _ => Err(ControlError::ExtraStanza { line: all[1].0 }),
        }
    }

    /// Parse exactly one stanza from bytes (must be UTF-8).
    pub fn parse_bytes(data: &[u8]) -> Result<Stanza> {
        Stanza::parse(utf8(data)?)
    }

    /// The fields in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The value of a field (case-insensitive name).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.as_str())
    }

    /// The value of a required field, or [`ControlError::MissingField`].
    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| ControlError::MissingField {
            name: name.to_string(),
        })
    }

    /// Whether a field is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Set a field (replacing it in place if present, else appending). The value may span lines;
    /// continuation lines must start with a space or tab and not be blank (use ` .` for an empty
    /// line of a description).
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> Result<()> {
        let value = value.into();
        check_value(name, &value)?;
        if let Some(f) = self
            .fields
            .iter_mut()
            .find(|f| f.name.eq_ignore_ascii_case(name))
        {
            f.value = value;
        } else {
            self.fields.push(Field {
                name: name.to_string(),
                value,
            });
        }
        Ok(())
    }

    /// Builder-style [`Stanza::set`].
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Result<Stanza> {
        self.set(name, value)?;
        Ok(self)
    }

    /// Insert a field before the field named `before` (or append when absent). Replaces an existing
    /// field of the same name in place.
    pub fn insert_before(
        &mut self,
        before: &str,
        name: &str,
        value: impl Into<String>,
    ) -> Result<()> {
        if self.contains(name) {
            return self.set(name, value);
        }
        let value = value.into();
        check_value(name, &value)?;
        let at = self
            .fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(before))
            .unwrap_or(self.fields.len());
        self.fields.insert(
            at,
            Field {
                name: name.to_string(),
                value,
            },
        );
        Ok(())
    }

    /// Remove a field; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self
            .fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))?;
        Some(self.fields.remove(i).value)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Check what a binary package's `DEBIAN/control` needs: Package, Version, Architecture,
    /// Maintainer and Description present and well-formed, Installed-Size numeric if present.
    pub fn validate_binary(&self) -> Result<()> {
        for name in [
            "Package",
            "Version",
            "Architecture",
            "Maintainer",
            "Description",
        ] {
            self.require(name)?;
        }
        validate_package_name(self.require("Package")?)?;
        validate_version(self.require("Version")?)?;
        validate_architecture(self.require("Architecture")?)?;
        if let Some(s) = self.get("Installed-Size") {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 18 {
                return Err(invalid("Installed-Size", s, "not a number of KiB"));
            }
        }
        if let Some(s) = self.get("Source") {
            let name = s.split_whitespace().next().unwrap_or("");
            validate_package_name(name).map_err(|_| invalid("Source", s, "not a package name"))?;
        }
        Ok(())
    }
}

fn check_value(name: &str, value: &str) -> Result<()> {
    if !valid_field_name(name) {
        return Err(ControlError::BadFieldName {
            line: 0,
            name: name.to_string(),
        });
    }
    let mut lines = value.split('\n');
    let first = lines.next().unwrap_or("");
    if first != first.trim() {
        return Err(invalid(name, value, "first line has surrounding blanks"));
    }
    let mut any_cont = false;
    for l in lines {
        any_cont = true;
        if !(l.starts_with(' ') || l.starts_with('\t')) || l.trim().is_empty() {
            return Err(invalid(
                name,
                value,
                "continuation lines must start with a blank and not be empty",
            ));
        }
    }
    if first.is_empty() && !any_cont {
        return Err(ControlError::EmptyValue {
            line: 0,
            name: name.to_string(),
        });
    }
    Ok(())
}

fn invalid(name: &str, value: &str, why: &str) -> ControlError {
    ControlError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// Debian policy 5.6.1: lower case letters, digits, `+ - .`, at least two characters, starting
/// with an alphanumeric.
pub fn validate_package_name(s: &str) -> Result<()> {
    let ok = s.len() >= 2
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "Package",
            s,
            "must be lower-case letters, digits, + - . and start with a letter or digit",
        ))
    }
}

/// Debian policy 5.6.12: `[epoch:]upstream[-revision]`.
pub fn validate_version(s: &str) -> Result<()> {
    let bad = |why: &str| Err(invalid("Version", s, why));
    let (epoch, rest) = match s.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, s),
    };
    if let Some(e) = epoch {
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) || e.len() > 9 {
            return bad("epoch must be a number");
        }
    }
    let (upstream, revision) = match rest.rfind('-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if upstream.is_empty() || !upstream.as_bytes()[0].is_ascii_digit() {
        return bad("upstream version must start with a digit");
    }
    let allowed = |b: u8, colon_ok: bool| {
        b.is_ascii_alphanumeric() || b"+.~-".contains(&b) || (colon_ok && b == b':')
    };
    if !upstream.bytes().all(|b| allowed(b, epoch.is_some())) {
        return bad("upstream version has characters outside [A-Za-z0-9.+~-]");
    }
    if let Some(r) = revision {
        if r.is_empty()
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.~".contains(&b))
        {
            return bad("revision must be non-empty [A-Za-z0-9.+~]");
        }
    }
    Ok(())
}

/// An architecture name: `all`, `any`-free single token of lower-case letters, digits and `-`.
pub fn validate_architecture(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s != "any"
        && s != "source";
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "Architecture",
            s,
            "must be one binary architecture such as arm64, armhf, amd64 or all",
        ))
    }
}

fn utf8(data: &[u8]) -> Result<&str> {
    std::str::from_utf8(data).map_err(|e| {
        let line = data[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ControlError::NotUtf8 { line }
    })
}

/// Parse a sequence of stanzas separated by blank lines (a `Packages` file, for instance).
/// Returns each stanza with the line number it starts on.
pub fn parse_stanzas(text: &str) -> Result<Vec<(usize, Stanza)>> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    let mut lines: Vec<usize> = Vec::new();
    let mut start = 0usize;
    // A field whose value is empty on every line is an error (dpkg: "empty value for field").
    let finish =
        |cur: &mut Stanza, lines: &mut Vec<usize>, out: &mut Vec<(usize, Stanza)>, start| {
            for (f, line) in cur.fields.iter().zip(lines.iter()) {
                if f.value.trim().is_empty() {
                    return Err(ControlError::EmptyValue {
                        line: *line,
                        name: f.name.clone(),
                    });
                }
            }
            lines.clear();
            if !cur.fields.is_empty() {
                out.push((start, std::mem::take(cur)));
            }
            Ok(())
        };
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        if l.trim().is_empty() {
            finish(&mut cur, &mut lines, &mut out, start)?;
            continue;
        }
        if l.starts_with(' ') || l.starts_with('\t') {
            let Some(last) = cur.fields.last_mut() else {
                return Err(ControlError::OrphanContinuation { line });
            };
            last.value.push('\n');
            last.value.push_str(l.trim_end());
            continue;
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(ControlError::NoColon {
                line,
                text: l.chars().take(80).collect(),
            });
        };
        if !valid_field_name(name) {
            return Err(ControlError::BadFieldName {
                line,
                name: name.chars().take(80).collect(),
            });
        }
        if cur.contains(name) {
            return Err(ControlError::DuplicateField {
                line,
                name: name.to_string(),
            });
        }
        if cur.fields.is_empty() {
            start = line;
        }
        cur.fields.push(Field {
            name: name.to_string(),
            value: value.trim().to_string(),
        });
        lines.push(line);
    }
    finish(&mut cur, &mut lines, &mut out, start)?;
    Ok(out)
}

impl fmt::Display for Stanza {
    /// One stanza, each line ending in `\n`, no blank line after it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for field in &self.fields {
            if field.value.starts_with('\n') {
                writeln!(f, "{}:{}", field.name, field.value)?;
            } else {
                writeln!(f, "{}: {}", field.name, field.value)?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Stanza {
    type Err = ControlError;
    fn from_str(s: &str) -> Result<Stanza> {
        Stanza::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "Package: hello\nVersion: 2.10-3\nArchitecture: arm64\nMaintainer: Santiago Vila <sanvila@debian.org>\nInstalled-Size: 280\nDepends: libc6 (>= 2.34)\nDescription: example package based on GNU hello\n The GNU hello program produces a familiar, friendly greeting.\n .\n It allows non-programmers to use a classic example.\n";

    #[test]
    fn roundtrip() {
        let s = Stanza::parse(HELLO).unwrap();
        assert_eq!(s.get("package"), Some("hello"));
        assert_eq!(s.fields().len(), 7);
        assert!(s.get("Description").unwrap().contains("\n .\n"));
        assert_eq!(s.to_string(), HELLO);
        s.validate_binary().unwrap();
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases: &[(&str, &str)] = &[
            ("Package: a\nVersion 1\n", "line 2: expected `Field: value`"),
            (" cont\nPackage: a\n", "line 1: continuation line"),
            (
                "Package: a\npackage: b\n",
                "line 2: field package appears twice",
            ),
            ("Package: a\nBad Name: x\n", "line 2: invalid field name"),
            (
                "Package: a\nDepends:\n",
                "line 2: field Depends has an empty value",
            ),
            ("", "no fields"),
            ("A: 1\n\nB: 2\n", "line 3: expected one stanza"),
        ];
        for (text, want) in cases {
            let e = Stanza::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = Stanza::parse_bytes(b"A: 1\nB: \xff\n").unwrap_err();
        assert_eq!(e, ControlError::NotUtf8 { line: 2 });
    }

    #[test]
    fn validate_binary_fields() {
        let base = Stanza::parse(HELLO).unwrap();
        let mut s = base.clone();
        s.remove("Version");
        assert_eq!(
            s.validate_binary().unwrap_err().to_string(),
            "missing required field Version"
        );
        for (field, value) in [
            ("Version", "abc"),
            ("Version", "1.0-"),
            ("Version", "x:1.0"),
            ("Package", "Hello"),
            ("Package", "h"),
            ("Architecture", "arm64 amd64"),
            ("Installed-Size", "12k"),
        ] {
            let mut s = base.clone();
            s.set(field, value).unwrap();
            let e = s.validate_binary().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("field {field}: invalid value")),
                "{e}"
            );
        }
        for v in ["1:2.3-4", "2.3", "1.0~rc1+dfsg-1.1", "0-1-2"] {
            validate_version(v).unwrap();
        }
    }

    #[test]
    fn set_and_insert_keep_order() {
        let mut s = Stanza::new()
            .with("Package", "a")
            .unwrap()
            .with("Description", "x\n y")
            .unwrap();
        s.insert_before("Description", "Version", "1").unwrap();
        let names: Vec<_> = s.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Package", "Version", "Description"]);
        assert!(s.set("X", "a\nnot-indented").is_err());
        assert!(s.set("X", "").is_err());
        assert!(s.set("X Y", "1").is_err());
        let multi = Stanza::new().with("Conffiles", "\n /etc/a 123").unwrap();
        assert_eq!(multi.to_string(), "Conffiles:\n /etc/a 123\n");
        assert_eq!(Stanza::parse(&multi.to_string()).unwrap(), multi);
    }

    #[test]
    fn many_stanzas_and_crlf() {
        let v = parse_stanzas("\n\nA: 1\r\nB: 2\n\n\nA: 3\n").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0, 3);
        assert_eq!(v[1].0, 7);
        assert_eq!(v[1].1.get("a"), Some("3"));
    }
}
