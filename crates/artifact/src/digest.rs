//! sha256 helpers and cache keys.

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{IoContext, Result};

/// Lower-case hex sha256 of a byte slice.
pub fn sha256_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Lower-case hex sha256 and length of everything a reader yields.
pub fn sha256_reader(mut r: impl Read) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf)?;
        if got == 0 {
            break;
        }
        n += got as u64;
        h.update(&buf[..got]);
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Lower-case hex sha256 and size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let f = std::fs::File::open(path).io_context(|| format!("opening {}", path.display()))?;
    sha256_reader(std::io::BufReader::new(f)).io_context(|| format!("reading {}", path.display()))
}

/// A cache key under construction: the digest of a canonical spec, the digests of the artifacts it
/// consumes and the versions of the host tools used. Field order is fixed by the calls, and the spec
/// is serialised as canonical JSON (sorted object keys), so equal inputs give equal keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheKey {
    kind: String,
    spec: serde_json::Value,
    inputs: Vec<(String, String)>,
    tools: Vec<(String, String)>,
}

impl CacheKey {
    /// Start a key for an artifact kind from its spec.
    pub fn new(kind: &str, spec: &impl Serialize) -> Self {
        let spec = canonical(serde_json::to_value(spec).unwrap_or(serde_json::Value::Null));
        CacheKey {
            kind: kind.to_string(),
            spec,
            inputs: Vec::new(),
            tools: Vec::new(),
        }
    }

    /// Add a consumed artifact (by a role name and its digest).
    pub fn input(mut self, role: &str, digest: &str) -> Self {
        self.inputs.push((role.to_string(), digest.to_string()));
        self.inputs.sort();
        self
    }

    /// Add a host tool and its version.
    pub fn tool(mut self, name: &str, version: &str) -> Self {
        self.tools.push((name.to_string(), version.to_string()));
        self.tools.sort();
        self
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The full hex digest.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        sha256_bytes(text.as_bytes())
    }

    /// The first 12 hex digits, for file names.
    pub fn short(&self) -> String {
        self.digest()[..12].to_string()
    }

    /// The canonical JSON that the digest covers (for `--explain` style output and debugging).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Rebuild a JSON value with object keys sorted (serde_json's map is ordered by insertion unless the
/// `preserve_order` feature is off; we sort explicitly to not depend on it).
fn canonical(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Derive `n` deterministic bytes from a digest and a purpose label (disk ids, UUIDs, hash seeds).
pub fn derive_bytes(seed: &str, purpose: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut counter = 0u32;
    while out.len() < n {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update(b"\0");
        h.update(purpose.as_bytes());
        h.update(counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(n);
    out
}

/// A deterministic RFC 4122 version-4-shaped UUID string derived from a seed and purpose.
pub fn derive_uuid(seed: &str, purpose: &str) -> String {
    let mut b = derive_bytes(seed, purpose, 16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct A {
        b: u32,
        a: &'static str,
    }

    #[test]
    fn key_is_stable_and_sensitive() {
        let k1 = CacheKey::new("rootfs", &A { b: 1, a: "x" }).tool("mmdebstrap", "1.3");
        let k2 = CacheKey::new("rootfs", &A { b: 1, a: "x" }).tool("mmdebstrap", "1.3");
        assert_eq!(k1.digest(), k2.digest());
        let k3 = CacheKey::new("rootfs", &A { b: 2, a: "x" }).tool("mmdebstrap", "1.3");
        assert_ne!(k1.digest(), k3.digest());
        let k4 = CacheKey::new("rootfs", &A { b: 1, a: "x" }).tool("mmdebstrap", "1.4");
        assert_ne!(k1.digest(), k4.digest());
        let k5 = k1.clone().input("rootfs", "abc");
        assert_ne!(k1.digest(), k5.digest());
        assert_eq!(k1.short().len(), 12);
    }

    #[test]
    fn input_order_does_not_matter() {
        let a = CacheKey::new("k", &1).input("x", "1").input("y", "2");
        let b = CacheKey::new("k", &1).input("y", "2").input("x", "1");
        assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn derived_uuid_shape() {
        let u = derive_uuid("seed", "root");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(u, derive_uuid("seed", "root"));
        assert_ne!(u, derive_uuid("seed", "boot"));
    }

    #[test]
    fn sha256_known_value() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
