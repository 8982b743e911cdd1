//! Exporting a bundle from the store to `--out` (hermetic): SHA256SUMS goes last, an export that
//! stops half-way leaves no SHA256SUMS (so no bundle that looks complete), and an unchanged
//! bundle is not copied again.

use std::os::unix::fs::MetadataExt;

use artifact::{CacheKey, Manifest, Store};

fn image_entry(store: &Store, tag: &str) -> artifact::Entry {
    let key = CacheKey::new("image", &tag);
    store
        .publish(&key, |dir| -> artifact::Result<Manifest> {
            for (name, data) in [
                ("x.img", format!("image {tag}")),
                ("x.img.zst", format!("zst {tag}")),
                ("x.img.bmap", format!("bmap {tag}")),
                ("x.spdx.json", format!("{{\"t\": \"{tag}\"}}")),
            ] {
                std::fs::write(dir.join(name), data).unwrap();
            }
            let sums: Vec<(String, String)> = ["x.img", "x.img.zst", "x.img.bmap", "x.spdx.json"]
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        artifact::sha256_file(&dir.join(n)).unwrap().0,
                    )
                })
                .collect();
            std::fs::write(dir.join("SHA256SUMS"), image_assembler::sums::render(&sums)).unwrap();
            Ok(Manifest::new("image", "x", "0.1.0", "arm64", ""))
        })
        .unwrap()
}

#[test]
fn sums_last_and_unchanged_files_not_copied_again() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path().join("cache")).unwrap();
    let e = image_entry(&store, "one");
    let out = d.path().join("out");
    let written = drydock::build::export(&e, &out).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("SHA256SUMS"));
    assert!(names.contains(&"manifest.json".to_string()));
    let o = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let ino = std::fs::metadata(out.join("x.img")).unwrap().ino();
    drydock::build::export(&e, &out).unwrap();
    assert_eq!(
        std::fs::metadata(out.join("x.img")).unwrap().ino(),
        ino,
        "an unchanged image was copied again"
    );
    // Another bundle over it: copied.
    let e2 = image_entry(&store, "two");
    drydock::build::export(&e2, &out).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("x.img")).unwrap(),
        "image two"
    );
}

#[test]
fn an_export_that_stops_leaves_no_sums() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path().join("cache")).unwrap();
    let out = d.path().join("out");
    drydock::build::export(&image_entry(&store, "one"), &out).unwrap();
    assert!(out.join("SHA256SUMS").exists());
    // The next export cannot replace x.img.zst (a folder is in the way): it stops there.
    std::fs::remove_file(out.join("x.img.zst")).unwrap();
    std::fs::create_dir_all(out.join("x.img.zst/blocker")).unwrap();
    let e2 = image_entry(&store, "two");
    assert!(drydock::build::export(&e2, &out).is_err());
    assert!(
        !out.join("SHA256SUMS").exists(),
        "a half-exported bundle kept a SHA256SUMS"
    );
}
