//! Checks for per-device settings: each returns the normalized value or a message that names the
//! value and says what is expected.

use std::net::IpAddr;

use super::yaml;

/// A hostname: one or more RFC 1123 labels (letters, digits, hyphens; 1-63 characters each, not
/// starting or ending with a hyphen), at most 253 characters.
pub fn hostname(s: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("invalid hostname {s:?}: {why}"));
    if s.is_empty() {
        return bad("empty");
    }
    if s.len() > 253 {
        return bad("longer than 253 characters");
    }
    for label in s.split('.') {
        if label.is_empty() {
            return bad("empty label (two dots, or a dot at an end)");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits and '-' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    if s.split('.')
        .next_back()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("the last label is all digits");
    }
    Ok(s.to_string())
}

/// A Linux user name as Debian's adduser accepts it by default.
pub fn username(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(format!(
            "invalid user name {s:?}: 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter or '_'"
        ));
    }
    if s == "root" {
        return Err("invalid user name \"root\": root stays locked; pick another user".into());
    }
    Ok(s.to_string())
}

/// A password: non-empty, one line.
pub fn password(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("invalid password: empty".into());
    }
    if s.contains(['\n', '\r', '\0']) {
        return Err("invalid password: contains a line break or NUL".into());
    }
    Ok(())
}

/// A tz database name such as `Europe/Berlin` or `Etc/UTC`. When the host has
/// `/usr/share/zoneinfo`, the name must exist there.
pub fn timezone(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.starts_with('/')
        && !s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
    if !ok {
        return Err(format!(
            "invalid timezone {s:?}: expected a tz database name such as Europe/Berlin or Etc/UTC"
        ));
    }
    let zi = std::path::Path::new("/usr/share/zoneinfo");
    if zi.is_dir() && !zi.join(s).is_file() {
        return Err(format!(
            "unknown timezone {s:?}: not in the tz database ({}); e.g. Europe/Berlin, America/New_York, Etc/UTC",
            zi.display()
        ));
    }
    Ok(s.to_string())
}

/// A locale such as `de_DE.UTF-8`, `en_US.UTF-8`, `C.UTF-8`.
pub fn locale(s: &str) -> Result<String, String> {
    if matches!(s, "C" | "POSIX" | "C.UTF-8") {
        return Ok(s.to_string());
    }
    let (base, modifier) = match s.split_once('@') {
        Some((b, m)) => (b, Some(m)),
        None => (s, None),
    };
    let (lang_terr, codeset) = match base.split_once('.') {
        Some((l, c)) => (l, Some(c)),
        None => (base, None),
    };
    let (lang, terr) = match lang_terr.split_once('_') {
        Some((l, t)) => (l, Some(t)),
        None => (lang_terr, None),
    };
    let ok = (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && terr.map_or(true, |t| {
            t.len() == 2 && t.bytes().all(|b| b.is_ascii_uppercase())
        })
        && codeset.map_or(true, |c| {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && modifier.map_or(true, |m| {
            !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !ok {
        return Err(format!(
            "invalid locale {s:?}: expected language_TERRITORY.CODESET such as de_DE.UTF-8"
        ));
    }
    Ok(s.to_string())
}

/// A Wi-Fi regulatory country: two letters (ISO 3166-1 alpha-2), returned upper case.
pub fn country(s: &str) -> Result<String, String> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(s.to_ascii_uppercase())
    } else {
        Err(format!(
            "invalid Wi-Fi country {s:?}: expected two letters (ISO 3166-1), e.g. DE, US, GB"
        ))
    }
}

/// An SSID: 1-32 bytes.
pub fn ssid(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 32 {
        return Err(format!("invalid Wi-Fi SSID {s:?}: 1 to 32 bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!(
            "invalid Wi-Fi SSID {s:?}: contains control characters"
        ));
    }
    Ok(s.to_string())
}

/// A WPA passphrase (8-63 printable ASCII characters) or a 64-hex-digit PSK.
pub fn wifi_psk(s: &str) -> Result<(), String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    if !(8..=63).contains(&s.len()) {
        return Err(format!(
            "invalid Wi-Fi passphrase: {} characters; WPA needs 8 to 63 (or a 64-hex-digit PSK)",
            s.len()
        ));
    }
    if !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("invalid Wi-Fi passphrase: only printable ASCII characters are allowed".into());
    }
    Ok(())
}

/// `ADDR/PREFIX`, e.g. `192.168.1.50/24` or `2001:db8::5/64`.
pub fn cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let bad = |why: String| Err(format!("invalid --static-ip {s:?}: {why}"));
    let Some((a, p)) = s.split_once('/') else {
        return bad("expected ADDR/PREFIX such as 192.168.1.50/24".into());
    };
    let addr: IpAddr = match a.parse() {
        Ok(x) => x,
        Err(_) => return bad(format!("{a:?} is not an IPv4 or IPv6 address")),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match p.parse() {
        Ok(x) if x <= max && x > 0 => x,
        _ => return bad(format!("prefix {p:?} is not a number from 1 to {max}")),
    };
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return bad(format!("{addr} cannot be a host address"));
    }
    Ok((addr, prefix))
}

/// An IP address of the same family as the static address.
pub fn ip(what: &str, s: &str, family_of: Option<IpAddr>) -> Result<IpAddr, String> {
    let a: IpAddr = s
        .parse()
        .map_err(|_| format!("invalid {what} {s:?}: not an IPv4 or IPv6 address"))?;
    if let Some(f) = family_of {
        if f.is_ipv4() != a.is_ipv4() {
            return Err(format!(
                "invalid {what} {s:?}: the static address {f} is {} but this is not",
                if f.is_ipv4() { "IPv4" } else { "IPv6" }
            ));
        }
    }
    Ok(a)
}

/// SSH public key types OpenSSH accepts in authorized_keys.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
];

/// The public keys in an authorized_keys-style text (one key per line; blank lines and `#`
/// comments ignored). Each key's type must be known and its base64 blob must decode to a key of
/// that type. `origin` names the file in messages.
pub fn ssh_keys(origin: &str, text: &str) -> Result<Vec<String>, String> {
    if text.contains("PRIVATE KEY") {
        return Err(format!(
            "{origin}: this is a private key; pass the public key (the .pub file) instead"
        ));
    }
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Options may precede the type (authorized_keys format).
        let Some(t) = fields.iter().position(|f| KEY_TYPES.contains(f)) else {
            return Err(format!(
                "{origin}: line {}: not an SSH public key (expected a type such as ssh-ed25519 or ssh-rsa followed by base64)",
                i + 1
            ));
        };
        let Some(blob) = fields.get(t + 1) else {
            return Err(format!("{origin}: line {}: the key data is missing", i + 1));
        };
        match decode_b64(blob) {
            Some(bytes) if key_type_of_blob(&bytes).as_deref() == Some(fields[t]) => {}
            _ => {
                return Err(format!(
                    "{origin}: line {}: the key data is not a valid {} key (bad base64 or wrong type inside)",
                    i + 1,
                    fields[t]
                ))
            }
        }
        keys.push(line.to_string());
    }
    if keys.is_empty() {
        return Err(format!("{origin}: no SSH public key in the file"));
    }
    Ok(keys)
}

fn key_type_of_blob(b: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let name = b.get(4..4 + len)?;
    String::from_utf8(name.to_vec()).ok()
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    let trimmed = s.trim_end_matches('=');
    if s.len() - trimmed.len() > 2 {
        return None;
    }
    for c in trimmed.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A user-data file drydock accepts: `#cloud-config` on the first line, then a YAML mapping.
pub fn user_data(origin: &str, text: &str) -> Result<yaml::Node, String> {
    let first = text.lines().next().unwrap_or("").trim_end();
    if first != "#cloud-config" {
        let what = if first.starts_with("#!") {
            "a script (#!); only #cloud-config user-data is accepted"
        } else if first.starts_with("#include") || first.starts_with("## template") {
            "an include or template file; only #cloud-config user-data is accepted"
        } else if text.starts_with("Content-Type:") || text.starts_with("MIME-Version:") {
            "a MIME multi-part file; only #cloud-config user-data is accepted"
        } else {
            "missing the `#cloud-config` header on its first line"
        };
        return Err(format!("{origin}: {what}"));
    }
    let node = yaml::parse(text).map_err(|e| format!("{origin}: not valid YAML: {e}"))?;
    match node {
        yaml::Node::Map(_) => Ok(node),
        _ => Err(format!(
            "{origin}: the #cloud-config document must be a mapping of settings (key: value)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for ok in ["black-pearl", "node-1", "a", "pi.example.com", "x1"] {
            assert!(hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a_b",
            "a..b",
            "a b",
            "1.2.3.4",
            &"x".repeat(64),
        ] {
            assert!(hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames() {
        assert!(username("pirate").is_ok());
        assert!(username("_svc-1").is_ok());
        for bad in ["", "Pirate", "1x", "a b", "root", &"a".repeat(33)] {
            assert!(username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locales_and_countries() {
        for ok in [
            "de_DE.UTF-8",
            "en_US.UTF-8",
            "C.UTF-8",
            "sr_RS@latin",
            "fr_FR",
            "eo",
        ] {
            assert!(locale(ok).is_ok(), "{ok}");
        }
        for bad in ["de-DE", "DE_de.UTF-8", "de_DE.", "x"] {
            assert!(locale(bad).is_err(), "{bad}");
        }
        assert_eq!(country("de").unwrap(), "DE");
        assert!(country("DEU").is_err());
    }

    #[test]
    fn timezones() {
        assert!(timezone("../etc/passwd").is_err());
        assert!(timezone("/etc/x").is_err());
        assert!(timezone("Europe/Berlin;rm").is_err());
        if std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").is_file() {
            assert!(timezone("Europe/Berlin").is_ok());
            assert!(timezone("Mars/Olympus").is_err());
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            cidr("192.168.1.50/24").unwrap(),
            ("192.168.1.50".parse().unwrap(), 24)
        );
        assert!(cidr("2001:db8::5/64").is_ok());
        for bad in [
            "192.168.1.50",
            "192.168.1.500/24",
            "10.0.0.1/33",
            "10.0.0.1/0",
            "0.0.0.0/8",
        ] {
            assert!(cidr(bad).is_err(), "{bad}");
        }
        let v4 = Some("10.0.0.2".parse().unwrap());
        assert!(ip("gateway", "10.0.0.1", v4).is_ok());
        assert!(ip("gateway", "fe80::1", v4).is_err());
        assert!(ip("dns", "1.1.1", None).is_err());
    }

    #[test]
    fn wifi() {
        assert!(wifi_psk("short").is_err());
        assert!(wifi_psk("long enough").is_ok());
        assert!(wifi_psk(&"ab".repeat(32)).is_ok());
        assert!(wifi_psk(&"x".repeat(64)).is_err());
        assert!(ssid("").is_err());
        assert!(ssid(&"s".repeat(33)).is_err());
    }

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIl6dB2C1cjHcFkvu5dbYF3bG+3QdTk1ZCvo1WOt3Rcq user@host";

    #[test]
    fn ssh_keys_are_checked() {
        assert_eq!(ssh_keys("k.pub", ED).unwrap(), vec![ED.to_string()]);
        let with_opts = format!("# comment\n\nfrom=\"10.0.0.0/8\" {ED}\n");
        assert_eq!(ssh_keys("k", &with_opts).unwrap().len(), 1);
        let e = ssh_keys("id", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n").unwrap_err();
        assert!(e.contains("private key"), "{e}");
        let e = ssh_keys("k", "hello world").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        // The blob says ssh-ed25519, the type says ssh-rsa.
        let wrong = ED.replace("ssh-ed25519 ", "ssh-rsa ");
        assert!(ssh_keys("k", &wrong).is_err());
        assert!(ssh_keys("k", "ssh-ed25519 !!!notbase64").is_err());
        assert!(ssh_keys("k", "\n# only a comment\n").is_err());
    }

    #[test]
    fn user_data_files() {
        assert!(user_data("u", "#cloud-config\npackages: [vim]\n").is_ok());
        assert!(user_data("u", "#cloud-config\n").is_ok());
        let e = user_data("u", "#!/bin/sh\necho hi\n").unwrap_err();
        assert!(e.contains("script"), "{e}");
        let e = user_data("u", "packages: [vim]\n").unwrap_err();
        assert!(e.contains("#cloud-config"), "{e}");
        let e = user_data("u", "#cloud-config\npackages: [vim\n").unwrap_err();
        assert!(e.contains("not valid YAML") && e.contains("line"), "{e}");
        let e = user_data("u", "#cloud-config\n- a\n- b\n").unwrap_err();
        assert!(e.contains("mapping"), "{e}");
    }
}
