//! Secrets as they are stored in the seed: SHA-512 crypt password hashes and WPA pre-shared keys.
//! The seed never holds a plain password; Wi-Fi passphrases are stored as the 256-bit PSK.

use sha_crypt::{sha512_crypt_b64, Sha512Params, ROUNDS_DEFAULT};

/// The alphabet of crypt(3) salts.
const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random 16-character crypt salt from the OS random source.
pub fn random_salt() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("reading random bytes: {e}"))?;
    Ok(salt_from_bytes(&bytes))
}

/// A crypt salt made from bytes (e.g. derived from a build digest, for reproducible images).
pub fn salt_from_bytes(bytes: &[u8; 16]) -> String {
    bytes
        .iter()
        .map(|b| SALT_CHARS[(*b as usize) % SALT_CHARS.len()] as char)
        .collect()
}

/// `$6$salt$hash`: SHA-512 crypt with the default 5000 rounds, as `openssl passwd -6` and glibc's
/// crypt(3) write it. The salt must be 1-16 characters of `[./0-9A-Za-z]`.
pub fn sha512_crypt(password: &str, salt: &str) -> Result<String, String> {
    if salt.is_empty() || salt.len() > 16 || !salt.bytes().all(|b| SALT_CHARS.contains(&b)) {
        return Err(format!(
            "invalid crypt salt {salt:?}: 1-16 characters of [./0-9A-Za-z]"
        ));
    }
    let params = Sha512Params::new(ROUNDS_DEFAULT).map_err(|e| format!("{e:?}"))?;
    let hash = sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params)
        .map_err(|e| format!("hashing the password: {e:?}"))?;
    Ok(format!("$6${salt}${hash}"))
}

/// Whether a string looks like a crypt(3) hash cloud-init can pass to chpasswd -e.
pub fn looks_hashed(s: &str) -> bool {
    let parts: Vec<&str> = s.split('$').collect();
    parts.len() >= 4 && parts[0].is_empty() && matches!(parts[1], "1" | "5" | "6" | "y" | "2b")
}

/// The WPA pre-shared key for a passphrase, as `wpa_passphrase` computes it:
/// PBKDF2-HMAC-SHA1(passphrase, ssid, 4096 rounds, 32 bytes), as 64 hex digits.
pub fn wpa_psk(ssid: &str, passphrase: &str) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(passphrase.as_bytes(), ssid.as_bytes(), 4096, &mut out);
    hex::encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_crypt_matches_glibc_test_vector() {
        // From Ulrich Drepper's SHA-crypt specification, test vector 1.
        assert_eq!(
            sha512_crypt("Hello world!", "saltstring").unwrap(),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        assert!(sha512_crypt("x", "bad salt").is_err());
        assert!(sha512_crypt("x", "").is_err());
    }

    #[test]
    fn random_salts_differ() {
        let a = random_salt().unwrap();
        let b = random_salt().unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert!(sha512_crypt("pw", &a)
            .unwrap()
            .starts_with(&format!("$6${a}$")));
    }

    #[test]
    fn wpa_psk_matches_ieee_80211i_test_vectors() {
        // IEEE 802.11i-2004, annex H.4.
        assert_eq!(
            wpa_psk("IEEE", "password"),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
        assert_eq!(
            wpa_psk("ThisIsASSID", "ThisIsAPassword"),
            "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
        );
    }

    #[test]
    fn hashed_detection() {
        assert!(looks_hashed("$6$abc$def"));
        assert!(!looks_hashed("hypriot"));
        assert!(!looks_hashed("$6"));
    }
}
