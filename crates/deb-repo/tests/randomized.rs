//! Randomized robustness tests on stable Rust (the cargo-fuzz targets in `fuzz/` need nightly):
//! random and mutated bytes go to the control parser and the .deb reader. Errors are fine,
//! panics are bugs. A parsed control stanza must survive a write/parse round trip.
//!
//! Deterministic: a fixed-seed xorshift generator; `DEB_REPO_FUZZ_ITERS` raises the count.

use std::io::Cursor;

use deb_repo::{Compression, DebBuilder, DebReader, Stanza};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        // Biased towards the bytes that matter to the parsers.
        const INTERESTING: &[u8] = b":\n \t\r#-.0123456789Pp\x00\xff/`!<arch>";
        if self.next() & 1 == 0 {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }
}

fn iterations(default: usize) -> usize {
    std::env::var("DEB_REPO_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Flip, insert, delete, duplicate or truncate a few bytes.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                let b = rng.byte();
                v.insert(i, b);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            3 if !v.is_empty() => {
                let cut = rng.below(v.len());
                v.truncate(cut);
            }
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                let b = rng.byte();
                v[i] = b;
            }
            _ if v.len() > 8 => {
                // Copy a slice elsewhere (repeats headers, lengths...).
                let a = rng.below(v.len() - 4);
                let len = 1 + rng.below((v.len() - a).min(64));
                let chunk = v[a..a + len].to_vec();
                let at = rng.below(v.len());
                v.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    v
}

fn check_control(data: &[u8]) {
    if let Ok(s) = Stanza::parse_bytes(data) {
        let text = s.to_string();
        let again = Stanza::parse(&text)
            .unwrap_or_else(|e| panic!("writer output {text:?} does not parse: {e}"));
        assert_eq!(again, s, "round trip of {data:?}");
        let _ = s.validate_binary();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = deb_repo::control::parse_stanzas(text);
    }
}

fn check_deb(data: &[u8]) {
    let _ = deb_repo::deb::read_deb_from(data);
    if let Ok(mut r) = DebReader::new(Cursor::new(data), "random") {
        let _ = r.data_entries();
        let _ = r.extract_file("/usr/bin/x");
    }
}

const CONTROL: &str = "Package: hello\nVersion: 1:2.10-3\nArchitecture: arm64\nMaintainer: A <a@b.c>\nDepends: libc6 (>= 2.34)\nDescription: greeting\n A longer text.\n .\n Second paragraph.\nConffiles:\n /etc/hello 0123\n";

#[test]
fn control_parser_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..iterations(20_000) {
        let len = rng.below(200);
        let random: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        check_control(&random);
        check_control(&mutate(&mut rng, CONTROL.as_bytes()));
    }
}

fn seeds() -> Vec<Vec<u8>> {
    [
        Compression::Xz,
        Compression::Gzip,
        Compression::Zstd,
        Compression::None,
    ]
    .into_iter()
    .map(|c| {
        let mut ctl = Stanza::parse(CONTROL).unwrap();
        ctl.remove("Conffiles");
        let mut b = DebBuilder::new(ctl);
        b.epoch(1)
            .data_compression(c)
            .control_compression(c)
            .file("usr/bin/x", "#!/bin/sh\n", 0o755)
            .unwrap()
            .symlink(&format!("usr/share/{}", "l".repeat(120)), "x")
            .unwrap()
            .script("postinst", "#!/bin/sh\n")
            .unwrap();
        b.build().unwrap()
    })
    .collect()
}

#[test]
fn deb_reader_never_panics() {
    let seeds = seeds();
    for s in &seeds {
        // The seeds themselves are good packages.
        let mut r = DebReader::new(Cursor::new(s.clone()), "seed").unwrap();
        assert_eq!(
            r.extract_file("/usr/bin/x").unwrap().unwrap(),
            b"#!/bin/sh\n"
        );
    }
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for i in 0..iterations(3_000) {
        let seed = &seeds[i % seeds.len()];
        check_deb(&mutate(&mut rng, seed));
        if i % 10 == 9 {
            let len = rng.below(400);
            let mut random: Vec<u8> = b"!<arch>\n".to_vec();
            random.extend((0..len).map(|_| rng.byte()));
            check_deb(&random);
        }
    }
}
