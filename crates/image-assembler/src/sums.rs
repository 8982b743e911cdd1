//! `SHA256SUMS`: the format `sha256sum -c` reads (`<hex>  <name>`), sorted by name.

/// Render the lines for `(file name, sha256)` pairs, sorted by name.
pub fn render(entries: &[(String, String)]) -> String {
    let mut e: Vec<&(String, String)> = entries.iter().collect();
    e.sort_by(|a, b| a.0.cmp(&b.0));
    e.iter()
        .map(|(name, sha)| format!("{sha}  {name}\n"))
        .collect()
}

/// Parse `SHA256SUMS` text back into `(file name, sha256)` pairs (binary-mode `*name` accepted).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (sha, name) = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .ok_or_else(|| format!("SHA256SUMS line {}: expected `<sha256>  <name>`", i + 1))?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "SHA256SUMS line {}: {sha:?} is not a sha256",
                i + 1
            ));
        }
        out.push((name.to_string(), sha.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_sha256sum_compatible() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = render(&[("x.img.zst".into(), b.clone()), ("x.img".into(), a.clone())]);
        assert_eq!(text, format!("{a}  x.img\n{b}  x.img.zst\n"));
        assert_eq!(
            parse(&text).unwrap(),
            vec![("x.img".into(), a), ("x.img.zst".into(), b)]
        );
        assert!(parse("nothex  x\n").is_err());
    }

    /// The real `sha256sum -c` accepts what we write.
    #[test]
    fn sha256sum_checks_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f.img"), b"image bytes").unwrap();
        let sha = artifact::sha256_bytes(b"image bytes");
        std::fs::write(
            d.path().join("SHA256SUMS"),
            render(&[("f.img".into(), sha)]),
        )
        .unwrap();
        let st = std::process::Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(st.status.success(), "{st:?}");
    }
}
