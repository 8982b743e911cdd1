//! The control-file parser: any bytes give a stanza or an error, never a panic; a parsed stanza
//! written back parses to the same stanza.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = deb_repo::Stanza::parse_bytes(data) {
        let text = s.to_string();
        let again = deb_repo::Stanza::parse(&text).expect("the writer's output parses");
        assert_eq!(again, s);
        let _ = s.validate_binary();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = deb_repo::control::parse_stanzas(text);
    }
});
