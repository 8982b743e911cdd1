//! Kernel `.config` text and config fragments: parsing, lookup, and the fragment-vs-resolved
//! comparison that catches options Kconfig dropped.
//!
//! Format (what `make *config` writes and what fragments use):
//!
//! ```text
//! CONFIG_FOO=y            built in
//! CONFIG_BAR=m            module
//! CONFIG_BAZ="text"       string (or a number / hex value without quotes)
//! # CONFIG_QUX is not set disabled
//! # any other comment
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

/// A config option's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Value {
    /// `=y`
    Yes,
    /// `=m`
    Module,
    /// `# CONFIG_X is not set` or `=n`
    No,
    /// Any other value (strings keep their quotes, as in the file).
    Text(String),
}

impl Value {
    fn parse(raw: &str) -> Value {
        match raw {
            "y" => Value::Yes,
            "m" => Value::Module,
            "n" => Value::No,
            other => Value::Text(other.to_string()),
        }
    }

    /// The value as written after `=` (`n` for "is not set").
    pub fn as_str(&self) -> &str {
        match self {
            Value::Yes => "y",
            Value::Module => "m",
            Value::No => "n",
            Value::Text(t) => t,
        }
    }

    /// `y` or `m`.
    pub fn is_enabled(&self) -> bool {
        matches!(self, Value::Yes | Value::Module)
    }
}

/// Errors reading a config or a fragment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}:{line}: not a kernel config line: {text:?} (expected CONFIG_NAME=VALUE or `# CONFIG_NAME is not set`)")]
    Syntax {
        origin: String,
        line: usize,
        text: String,
    },
    #[error("{origin}: no CONFIG_ options found; is this a kernel .config?")]
    Empty { origin: String },
    #[error(
        "{origin}:{line}: CONFIG_{name} is given twice in the fragment (first at line {first})"
    )]
    Duplicate {
        origin: String,
        line: usize,
        first: usize,
        name: String,
    },
}

/// A parsed `.config` or fragment: option name (without `CONFIG_`) → value and line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    entries: BTreeMap<String, (Value, usize)>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Strip an optional `CONFIG_` prefix.
pub fn short_name(name: &str) -> &str {
    name.strip_prefix("CONFIG_").unwrap_or(name)
}

impl KernelConfig {
    /// Parse a kernel `.config`. Later assignments win (as in Kconfig). `origin` names the input
    /// in errors. Fails on lines that are neither options, "is not set" markers nor comments, and
    /// on text without any option.
    pub fn parse(text: &str, origin: &str) -> Result<KernelConfig, ConfigError> {
        let cfg = Self::parse_inner(text, origin, false)?;
        if cfg.entries.is_empty() {
            return Err(ConfigError::Empty {
                origin: origin.into(),
            });
        }
        Ok(cfg)
    }

    /// Parse a config fragment: like [`KernelConfig::parse`], but an empty fragment is fine and an
    /// option given twice is an error (a fragment that contradicts itself is a mistake).
    pub fn parse_fragment(text: &str, origin: &str) -> Result<KernelConfig, ConfigError> {
        Self::parse_inner(text, origin, true)
    }

    fn parse_inner(text: &str, origin: &str, strict: bool) -> Result<KernelConfig, ConfigError> {
        let mut entries: BTreeMap<String, (Value, usize)> = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let parsed = if let Some(rest) = line.strip_prefix('#') {
                let rest = rest.trim();
                match rest
                    .strip_prefix("CONFIG_")
                    .and_then(|r| r.strip_suffix(" is not set"))
                {
                    Some(name) if valid_name(name) => Some((name.to_string(), Value::No)),
                    _ => None, // a plain comment
                }
            } else {
                let bad = || ConfigError::Syntax {
                    origin: origin.into(),
                    line: lineno,
                    text: raw.to_string(),
                };
                let rest = line.strip_prefix("CONFIG_").ok_or_else(bad)?;
                let (name, value) = rest.split_once('=').ok_or_else(bad)?;
                if !valid_name(name) || value.is_empty() {
                    return Err(bad());
                }
                Some((name.to_string(), Value::parse(value)))
            };
            if let Some((name, value)) = parsed {
                if strict {
                    if let Some((_, first)) = entries.get(&name) {
                        return Err(ConfigError::Duplicate {
                            origin: origin.into(),
                            line: lineno,
                            first: *first,
                            name,
                        });
                    }
                }
                entries.insert(name, (value, lineno));
            }
        }
        Ok(KernelConfig { entries })
    }

    /// The value of an option (`VETH` or `CONFIG_VETH`); `None` when the config does not mention it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.get(short_name(name)).map(|(v, _)| v)
    }

    /// Whether an option is `y` or `m`.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.get(name).is_some_and(Value::is_enabled)
    }

    /// Options in name order with their values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, (v, _))| (k.as_str(), v))
    }

    /// The line an option was read from.
    pub fn line_of(&self, name: &str) -> Option<usize> {
        self.entries.get(short_name(name)).map(|(_, l)| *l)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Set an option (tests and fragment merging).
    pub fn set(&mut self, name: &str, value: Value) {
        let line = self.line_of(name).unwrap_or(0);
        self.entries
            .insert(short_name(name).to_string(), (value, line));
    }

    /// Remove an option entirely (as if the line were deleted).
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.entries.remove(short_name(name)).map(|(v, _)| v)
    }
}

/// What became of one fragment option in the resolved `.config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FragmentIssue {
    /// Option name with `CONFIG_`.
    pub option: String,
    /// The fragment that asked for it.
    pub fragment: String,
    /// Line in that fragment.
    pub line: usize,
    /// What the fragment asked for.
    pub wanted: String,
    /// What the resolved config has (`missing` when absent).
    pub got: String,
}

impl std::fmt::Display for FragmentIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let got = if self.got == "missing" {
            "it is not in the resolved config".to_string()
        } else {
            format!("the resolved config has {}", self.got)
        };
        write!(
            f,
            "CONFIG_{} ({}:{}): wanted {}, {got}",
            short_name(&self.option),
            self.fragment,
            self.line,
            self.wanted,
        )
    }
}

/// The outcome of comparing fragments with the resolved config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FragmentCheck {
    /// Options no Kconfig file of the tree defines (warnings: they cannot take effect).
    pub unknown: Vec<FragmentIssue>,
    /// Known options whose value the resolved config does not carry (errors: Kconfig dropped
    /// them, usually for an unmet dependency or a `select` forcing them).
    pub dropped: Vec<FragmentIssue>,
}

/// Compare each fragment option with the resolved config. `known` tells whether the kernel tree's
/// Kconfig defines a symbol. A tristate asked as `m` and resolved `y` is fine (Kconfig promotes
/// `m` to `y` when modules are off, or a `select` forces it in); everything else must match.
pub fn check_fragments(
    fragments: &[(String, KernelConfig)],
    resolved: &KernelConfig,
    known: impl Fn(&str) -> bool,
) -> FragmentCheck {
    let mut out = FragmentCheck::default();
    for (origin, frag) in fragments {
        for (name, wanted) in frag.iter() {
            let got = resolved.get(name);
            let issue = || FragmentIssue {
                option: format!("CONFIG_{name}"),
                fragment: origin.clone(),
                line: frag.line_of(name).unwrap_or(0),
                wanted: wanted.as_str().to_string(),
                got: got.map_or_else(|| "missing".to_string(), |v| v.as_str().to_string()),
            };
            if !known(name) {
                out.unknown.push(issue());
                continue;
            }
            let ok = match (wanted, got) {
                (Value::No, None) | (Value::No, Some(Value::No)) => true,
                (Value::Module, Some(Value::Yes)) => true,
                (w, Some(g)) => w == g,
                (_, None) => false,
            };
            if !ok {
                out.dropped.push(issue());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        let c = KernelConfig::parse(
            "#\n# Automatically generated\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=\"x y\"\nCONFIG_E=0x10\n\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.get("A"), Some(&Value::Yes));
        assert_eq!(c.get("CONFIG_B"), Some(&Value::Module));
        assert_eq!(c.get("C"), Some(&Value::No));
        assert_eq!(c.get("D"), Some(&Value::Text("\"x y\"".into())));
        assert_eq!(c.get("E").map(Value::as_str), Some("0x10"));
        assert_eq!(c.get("F"), None);
        assert!(c.is_enabled("B"));
        assert!(!c.is_enabled("C"));
        assert_eq!(c.line_of("B"), Some(4));
    }

    #[test]
    fn prefix_is_not_a_match() {
        let c = KernelConfig::parse("CONFIG_OVERLAY_FS_REDIRECT_DIR=y\n", "t").unwrap();
        assert_eq!(c.get("OVERLAY_FS"), None);
    }

    #[test]
    fn rejects_garbage_naming_the_line() {
        let e = KernelConfig::parse("CONFIG_A=y\nhello world\n", "my.config")
            .unwrap_err()
            .to_string();
        assert!(e.contains("my.config:2"), "{e}");
        assert!(e.contains("hello world"), "{e}");
        let e = KernelConfig::parse("# just a comment\n", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CONFIG_ options"), "{e}");
        assert!(KernelConfig::parse("CONFIG_A=\n", "x").is_err());
    }

    #[test]
    fn fragment_duplicates_are_errors() {
        let e = KernelConfig::parse_fragment("CONFIG_A=y\n# CONFIG_A is not set\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f:2"), "{e}");
        assert!(e.contains("CONFIG_A"), "{e}");
        assert!(KernelConfig::parse_fragment("", "f").unwrap().is_empty());
    }

    #[test]
    fn fragment_check_table() {
        let resolved = KernelConfig::parse(
            "CONFIG_Y=y\nCONFIG_M=m\nCONFIG_PROMOTED=y\n# CONFIG_OFF is not set\nCONFIG_S=\"a\"\n",
            "r",
        )
        .unwrap();
        let known = |n: &str| n != "NOSUCH";
        // (fragment line, dropped?, unknown?)
        let cases = [
            ("CONFIG_Y=y", false, false),
            ("CONFIG_M=m", false, false),
            ("CONFIG_PROMOTED=m", false, false),
            ("CONFIG_M=y", true, false),
            ("CONFIG_OFF=y", true, false),
            ("CONFIG_ABSENT=y", true, false),
            ("# CONFIG_ABSENT is not set", false, false),
            ("# CONFIG_OFF is not set", false, false),
            ("# CONFIG_Y is not set", true, false),
            ("CONFIG_S=\"a\"", false, false),
            ("CONFIG_S=\"b\"", true, false),
            ("CONFIG_NOSUCH=y", false, true),
        ];
        for (line, dropped, unknown) in cases {
            let frag = KernelConfig::parse_fragment(line, "frag").unwrap();
            let r = check_fragments(&[("frag".into(), frag)], &resolved, known);
            assert_eq!(r.dropped.len(), usize::from(dropped), "{line}: {r:?}");
            assert_eq!(r.unknown.len(), usize::from(unknown), "{line}: {r:?}");
        }
    }
}
