//! The .deb reader: any bytes give package information or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = deb_repo::deb::read_deb_from(data);
    if let Ok(mut r) = deb_repo::DebReader::new(std::io::Cursor::new(data), "fuzz") {
        let _ = r.data_entries();
        let _ = r.extract_file("/etc/drydock/board");
    }
});
