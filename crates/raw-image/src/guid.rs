//! GUIDs as GPT stores them (first three fields little-endian) and as Linux prints them.

/// Format 16 on-disk GPT bytes as a lower-case GUID string.
pub fn format(b: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// Parse a GUID string (any case) into its 16 on-disk GPT bytes.
pub fn parse(s: &str) -> Option<[u8; 16]> {
    let parts: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if parts.len() != 5 || parts.iter().zip(lens).any(|(p, l)| p.len() != l) {
        return None;
    }
    let hex: String = parts.concat();
    let mut raw = [0u8; 16];
    for (i, r) in raw.iter_mut().enumerate() {
        *r = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut b = raw;
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Some(b)
}

/// Whether a string is a well-formed GUID.
pub fn is_guid(s: &str) -> bool {
    parse(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_roundtrip() {
        let s = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
        let b = parse(s).unwrap();
        assert_eq!(&b[..4], &[0x28, 0x73, 0x2a, 0xc1]);
        assert_eq!(format(&b), s);
        assert_eq!(format(&parse(&s.to_uppercase()).unwrap()), s);
        assert!(parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93").is_none());
        assert!(parse("g12a7328-f81f-11d2-ba4b-00a0c93ec93b").is_none());
    }
}
