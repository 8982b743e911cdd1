//! The rootfs spec: what to build, validated before any download.
//!
//! Every value that ends up in a shell hook (hostname, locale, timezone, os-release fields) is
//! checked here against a strict character set, and is also single-quoted by the hook renderer, so
//! a spec can never inject shell.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::Error;

/// Debian architectures the builder supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Arm64,
    Armhf,
    Amd64,
}

impl Arch {
    pub const ALL: &'static [Arch] = &[Arch::Arm64, Arch::Armhf, Arch::Amd64];

    /// The Debian name (`arm64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::Armhf => "armhf",
            Arch::Amd64 => "amd64",
        }
    }

    /// The ELF `e_machine` of the architecture's binaries (for checks of the built tree).
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Arm64 => 183, // EM_AARCH64
            Arch::Armhf => 40,  // EM_ARM
            Arch::Amd64 => 62,  // EM_X86_64
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Arch::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::Invalid {
                field: "arch".into(),
                value: s.into(),
                expected: format!("one of {}", join(Arch::ALL)),
            })
    }
}

/// Debian suites the builder knows. trixie (the current stable) is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    Trixie,
    Bookworm,
    Forky,
    Sid,
}

impl Suite {
    pub const ALL: &'static [Suite] = &[Suite::Trixie, Suite::Bookworm, Suite::Forky, Suite::Sid];

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Trixie => "trixie",
            Suite::Bookworm => "bookworm",
            Suite::Forky => "forky",
            Suite::Sid => "sid",
        }
    }

    /// Whether the suite has `-updates` and `-security` companions (sid has neither).
    pub fn has_updates(self) -> bool {
        !matches!(self, Suite::Sid)
    }
}

impl Default for Suite {
    fn default() -> Self {
        Suite::Trixie
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Suite {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Suite::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::Invalid {
                field: "suite".into(),
                value: s.into(),
                expected: format!("one of {}", join(Suite::ALL)),
            })
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// mmdebstrap variants (see mmdebstrap(1)).
pub const VARIANTS: &[&str] = &[
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "standard",
];

/// Where the image's `/etc/apt` points after the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSources {
    /// The build mirror with the suite, `<suite>-updates` and `<suite>-security` (security from
    /// `http://security.debian.org/debian-security`), same components, deb822 format.
    Default,
    /// This exact text as `/etc/apt/sources.list.d/debian.sources` (deb822).
    Deb822(String),
}

/// Extra `/etc/os-release` fields naming the image. The board is added later by the assembler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    /// `IMAGE_ID` (lower-case letters, digits, `._-`).
    pub image_id: String,
    /// `IMAGE_VERSION` (letters, digits, `._+~-`).
    pub image_version: String,
    /// More `KEY=value` fields (keys upper-case letters, digits, `_`), in order.
    pub extra: Vec<(String, String)>,
}

impl Default for OsRelease {
    fn default() -> Self {
        OsRelease {
            image_id: "drydock".into(),
            image_version: env!("CARGO_PKG_VERSION").into(),
            extra: Vec::new(),
        }
    }
}

/// What to build. Serialised (canonically) into the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootfsSpec {
    pub suite: Suite,
    pub arch: Arch,
    /// Debian mirror used for the build (`http://deb.debian.org/debian`).
    pub mirror: String,
    pub components: Vec<String>,
    /// mmdebstrap variant.
    pub variant: String,
    /// Packages installed on top of the variant.
    pub packages: Vec<String>,
    pub hostname: String,
    /// `en_US.UTF-8`, or `C.UTF-8` (built in, nothing to generate).
    pub locale: String,
    /// A zone under `/usr/share/zoneinfo` (`Etc/UTC`, `Europe/Berlin`).
    pub timezone: String,
    pub image_sources: ImageSources,
    pub os_release: OsRelease,
    /// Fixed SOURCE_DATE_EPOCH; `None` derives it from the suite's Release `Date`.
    pub source_date_epoch: Option<u64>,
}

impl Default for RootfsSpec {
    fn default() -> Self {
        RootfsSpec {
            suite: Suite::Trixie,
            arch: Arch::Arm64,
            mirror: "http://deb.debian.org/debian".into(),
            components: vec!["main".into()],
            variant: "minbase".into(),
            packages: Vec::new(),
            hostname: "black-pearl".into(),
            locale: "en_US.UTF-8".into(),
            timezone: "Etc/UTC".into(),
            image_sources: ImageSources::Default,
            os_release: OsRelease::default(),
            source_date_epoch: None,
        }
    }
}

fn invalid(field: &str, value: &str, expected: &str) -> Error {
    Error::Invalid {
        field: field.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

fn all_chars(s: &str, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(ok)
}

impl RootfsSpec {
    /// Check every field; the first problem names the field, the value and what is accepted.
    /// Arch and suite are typed, so they were checked when parsed (see [`Arch::from_str`]).
    pub fn validate(&self) -> Result<(), Error> {
        let m = &self.mirror;
        let scheme_ok = ["http://", "https://", "file:///"]
            .iter()
            .any(|p| m.starts_with(p) && m.len() > p.len());
        if !scheme_ok || m.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "mirror",
                m,
                "an http://, https:// or file:/// URL without spaces",
            ));
        }
        if self.components.is_empty() {
            return Err(invalid("components", "", "at least one component (main)"));
        }
        for c in &self.components {
            if !all_chars(c, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            }) {
                return Err(invalid(
                    "components",
                    c,
                    "lower-case letters, digits and '-' (main, contrib, non-free-firmware)",
                ));
            }
        }
        if !VARIANTS.contains(&self.variant.as_str()) {
            return Err(invalid(
                "variant",
                &self.variant,
                &format!("one of {}", VARIANTS.join(", ")),
            ));
        }
        for p in &self.packages {
            if !is_package_name(p) {
                return Err(invalid(
                    "packages",
                    p,
                    "a Debian package name (lower-case letters, digits, '+', '-', '.'; at least two characters)",
                ));
            }
        }
        if !is_hostname(&self.hostname) {
            return Err(invalid(
                "hostname",
                &self.hostname,
                "1-63 letters, digits or '-', not starting or ending with '-'",
            ));
        }
        if locale_charset(&self.locale).is_none() {
            return Err(invalid(
                "locale",
                &self.locale,
                "C.UTF-8 or language_TERRITORY.CHARSET such as en_US.UTF-8",
            ));
        }
        let tz = &self.timezone;
        if !all_chars(tz, |c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
            || tz.starts_with('/')
            || tz.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(invalid(
                "timezone",
                tz,
                "a zone name under /usr/share/zoneinfo such as Etc/UTC or Europe/Berlin",
            ));
        }
        if let ImageSources::Deb822(text) = &self.image_sources {
            if !text.lines().any(|l| l.starts_with("URIs:")) {
                return Err(invalid(
                    "image-sources",
                    text.lines().next().unwrap_or(""),
                    "deb822 sources text with at least one `URIs:` line",
                ));
            }
        }
        let osr = &self.os_release;
        if !all_chars(&osr.image_id, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
        }) {
            return Err(invalid(
                "image-id",
                &osr.image_id,
                "lower-case letters, digits, '.', '_', '-' (os-release IMAGE_ID)",
            ));
        }
        if !all_chars(&osr.image_version, |c| {
            c.is_ascii_alphanumeric() || "._+~-".contains(c)
        }) {
            return Err(invalid(
                "image-version",
                &osr.image_version,
                "letters, digits, '.', '_', '+', '~', '-' (os-release IMAGE_VERSION)",
            ));
        }
        for (k, v) in &osr.extra {
            if !all_chars(k, |c| {
                c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
            }) || k.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(invalid(
                    "os-release",
                    k,
                    "a KEY of upper-case letters, digits and '_'",
                ));
            }
            if v.chars().any(|c| c.is_control()) {
                return Err(invalid(
                    "os-release",
                    &format!("{k}={v}"),
                    "a single-line value",
                ));
            }
        }
        Ok(())
    }

    /// The packages given to mmdebstrap: the spec's, plus `locales` when the locale must be
    /// generated and `tzdata` for the timezone, sorted and deduplicated (order does not matter to
    /// apt, and a canonical list keeps the cache key stable).
    pub fn install_packages(&self) -> Vec<String> {
        let mut v = self.packages.clone();
        if needs_locales(&self.locale) {
            v.push("locales".into());
        }
        v.push("tzdata".into());
        v.sort();
        v.dedup();
        v
    }

    /// `rootfs-<arch>-<suite>`: the artifact name.
    pub fn name(&self) -> String {
        format!("rootfs-{}-{}", self.arch, self.suite)
    }
}

/// A Debian package name (policy 5.6.1), optionally with `:arch`.
pub fn is_package_name(p: &str) -> bool {
    let name = p.split_once(':').map(|(n, _)| n).unwrap_or(p);
    if let Some((_, a)) = p.split_once(':') {
        if !all_chars(a, |c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return false;
        }
    }
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// An RFC 1123 host label.
pub fn is_hostname(h: &str) -> bool {
    h.len() <= 63
        && all_chars(h, |c| c.is_ascii_alphanumeric() || c == '-')
        && !h.starts_with('-')
        && !h.ends_with('-')
}

/// The charset of a locale name (`en_US.UTF-8` → `UTF-8`), or `None` when the name is not of the
/// form `ll_TT.CHARSET[@modifier]` or `C.UTF-8`/`POSIX`.
pub fn locale_charset(locale: &str) -> Option<&str> {
    if matches!(locale, "C.UTF-8" | "C.utf8") {
        return Some("UTF-8");
    }
    if matches!(locale, "C" | "POSIX") {
        return Some("ANSI_X3.4-1968");
    }
    let (lang, rest) = locale.split_once('.')?;
    let charset = rest.split('@').next()?;
    let (l, t) = lang.split_once('_')?;
    let ok = (2..=3).contains(&l.len())
        && l.chars().all(|c| c.is_ascii_lowercase())
        && t.len() == 2
        && t.chars().all(|c| c.is_ascii_uppercase())
        && all_chars(charset, |c| c.is_ascii_alphanumeric() || c == '-')
        && rest
            .split_once('@')
            .map(|(_, m)| all_chars(m, |c| c.is_ascii_alphanumeric()))
            .unwrap_or(true);
    ok.then_some(charset)
}

/// Whether a locale must be generated with `locale-gen` (C and POSIX locales are built in).
pub fn needs_locales(locale: &str) -> bool {
    !matches!(locale, "C.UTF-8" | "C.utf8" | "C" | "POSIX")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_arch_names_value_and_accepted() {
        let e = "sparc".parse::<Arch>().unwrap_err().to_string();
        assert!(e.contains("\"sparc\""), "{e}");
        assert!(e.contains("arm64, armhf, amd64"), "{e}");
        assert_eq!("armhf".parse::<Arch>().unwrap(), Arch::Armhf);
    }

    #[test]
    fn unknown_suite_names_value_and_accepted() {
        let e = "buster".parse::<Suite>().unwrap_err().to_string();
        assert!(e.contains("\"buster\""), "{e}");
        assert!(e.contains("trixie, bookworm"), "{e}");
        assert_eq!("bookworm".parse::<Suite>().unwrap(), Suite::Bookworm);
        assert_eq!(Suite::default(), Suite::Trixie);
    }

    #[test]
    fn default_spec_is_valid() {
        RootfsSpec::default().validate().unwrap();
        assert_eq!(RootfsSpec::default().hostname, "black-pearl");
    }

    /// Table of bad values: each fails naming its field and value.
    #[test]
    fn bad_values_name_field_and_value() {
        type Edit = fn(&mut RootfsSpec);
        let cases: &[(&str, &str, Edit)] = &[
            ("mirror", "ftp://x", |s| s.mirror = "ftp://x".into()),
            ("mirror", "http://a b", |s| s.mirror = "http://a b".into()),
            ("components", "Main", |s| s.components = vec!["Main".into()]),
            ("variant", "tiny", |s| s.variant = "tiny".into()),
            ("packages", "Bad_Pkg", |s| {
                s.packages = vec!["Bad_Pkg".into()]
            }),
            ("packages", "x;rm", |s| s.packages = vec!["x;rm".into()]),
            ("hostname", "-pearl", |s| s.hostname = "-pearl".into()),
            ("hostname", "a b", |s| s.hostname = "a b".into()),
            ("locale", "english", |s| s.locale = "english".into()),
            ("locale", "en_US.UTF-8'", |s| {
                s.locale = "en_US.UTF-8'".into()
            }),
            ("timezone", "../etc/passwd", |s| {
                s.timezone = "../etc/passwd".into()
            }),
            ("timezone", "Europe/Ber lin", |s| {
                s.timezone = "Europe/Ber lin".into()
            }),
            ("image-id", "Drydock", |s| {
                s.os_release.image_id = "Drydock".into()
            }),
            ("image-version", "1 2", |s| {
                s.os_release.image_version = "1 2".into()
            }),
            ("os-release", "lower", |s| {
                s.os_release.extra = vec![("lower".into(), "x".into())]
            }),
        ];
        for (field, value, edit) in cases {
            let mut s = RootfsSpec::default();
            edit(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.starts_with(&format!("{field}: ")), "{field}: {e}");
            assert!(e.contains(&format!("{value:?}")), "{value}: {e}");
        }
    }

    #[test]
    fn locale_charsets() {
        assert_eq!(locale_charset("en_US.UTF-8"), Some("UTF-8"));
        assert_eq!(
            locale_charset("de_DE.ISO-8859-15@euro"),
            Some("ISO-8859-15")
        );
        assert_eq!(locale_charset("C.UTF-8"), Some("UTF-8"));
        assert_eq!(locale_charset("en_US"), None);
        assert_eq!(locale_charset("en_us.UTF-8"), None);
        assert!(!needs_locales("C.UTF-8"));
        assert!(needs_locales("en_GB.UTF-8"));
    }

    #[test]
    fn install_packages_adds_locales_and_tzdata_sorted() {
        let mut s = RootfsSpec {
            packages: vec!["openssh-server".into(), "tzdata".into()],
            ..Default::default()
        };
        assert_eq!(
            s.install_packages(),
            vec!["locales", "openssh-server", "tzdata"]
        );
        s.locale = "C.UTF-8".into();
        assert_eq!(s.install_packages(), vec!["openssh-server", "tzdata"]);
    }

    #[test]
    fn package_names() {
        for ok in [
            "libc6",
            "g++",
            "libstdc++6",
            "linux-image-arm64",
            "libc6:armhf",
        ] {
            assert!(is_package_name(ok), "{ok}");
        }
        for bad in ["a", "-x", "Foo", "x y", "x;y", "libc6:ARM", "$(id)"] {
            assert!(!is_package_name(bad), "{bad}");
        }
    }
}
