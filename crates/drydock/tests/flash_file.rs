//! `drydock flash` to regular files (no root needed): every container format gives back the exact
//! image; with a bmap only the mapped bytes are written and the copy still equals the image; a
//! bmap of another image, a damaged image and an unconfirmed overwrite are refused.

mod configure_fixture;

use std::path::Path;
use std::process::{Command, Stdio};

use configure_fixture::*;

fn flash(img: &Path, dev: &Path) -> Command {
    let mut c = drydock();
    c.arg("flash").arg(img).arg("--device").arg(dev);
    c
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn every_format_gives_back_the_image() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let want = sha256(&img);
    sh(&format!(
        "cd {} && zstd -q -T2 x.img -o x.img.zst && xz -T2 -k -1 x.img && zip -q -1 x.zip x.img",
        d.path().display()
    ));
    for name in ["x.img", "x.img.zst", "x.img.xz", "x.zip"] {
        let out = d.path().join(format!("out-{name}"));
        let o = run_ok(flash(&d.path().join(name), &out).args(["--yes", "--json"]));
        let s = json(&o);
        assert_eq!(sha256(&out), want, "{name}");
        assert_eq!(s["image_size"], IMAGE_SIZE, "{name}");
        assert_eq!(s["verified_bytes"], IMAGE_SIZE, "{name}");
        // Without a bmap, zero blocks are skipped in a file target: it stays sparse.
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
        assert!(
            allocated < IMAGE_SIZE / 2,
            "{name}: {allocated} bytes allocated"
        );
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn bmap_writes_only_mapped_bytes() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    sh(&format!(
        "cd {} && bmaptool -q create x.img -o x.bmap && zstd -q x.img -o x.img.zst",
        d.path().display()
    ));
    let out = d.path().join("out.img");
    let o = run_ok(flash(&d.path().join("x.img.zst"), &out).args(["--yes", "--json"]));
    let s = json(&o);
    assert!(s["bmap"].as_str().unwrap().ends_with("x.bmap"));
    let mapped = s["mapped_bytes"].as_u64().unwrap();
    // bmaptool's own count of the mapped blocks.
    let text = std::fs::read_to_string(d.path().join("x.bmap")).unwrap();
    let blocks: u64 = text
        .split("<MappedBlocksCount>")
        .nth(2)
        .unwrap()
        .split("</MappedBlocksCount>")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(mapped, blocks * 4096);
    assert_eq!(s["bytes_written"].as_u64().unwrap(), mapped);
    assert_eq!(s["verified_bytes"].as_u64().unwrap(), mapped);
    assert_eq!(sha256(&out), sha256(&img));
    // --no-verify: the same bytes, nothing read back.
    let out2 = d.path().join("out2.img");
    let s = json(&run_ok(flash(&d.path().join("x.img.zst"), &out2).args([
        "--yes",
        "--json",
        "--no-verify",
    ])));
    assert_eq!(s["verified_bytes"].as_u64().unwrap(), 0);
    assert_eq!(sha256(&out2), sha256(&img));
}

#[test]
fn wrong_bmap_damaged_image_and_unconfirmed_overwrite_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    run_ok(
        Command::new("bmaptool")
            .args(["-q", "create"])
            .arg(&img)
            .arg("-o")
            .arg(d.path().join("x.bmap")),
    );
    // A bmap of a differently sized image.
    let other = d.path().join("other.img");
    std::fs::File::create(&other)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    run_ok(
        Command::new("bmaptool")
            .args(["-q", "create"])
            .arg(&other)
            .arg("-o")
            .arg(d.path().join("other.bmap")),
    );
    let out = d.path().join("out.img");
    let o = flash(&img, &out)
        .args(["--yes", "--bmap"])
        .arg(d.path().join("other.bmap"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is for an image of 1048576 bytes"), "{err}");
    assert!(!out.exists(), "nothing written");

    // The image changed after the bmap was made (a byte inside a mapped block).
    let damaged = d.path().join("x2.img");
    std::fs::copy(&img, &damaged).unwrap();
    std::fs::copy(d.path().join("x.bmap"), d.path().join("x2.bmap")).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&damaged)
            .unwrap();
        f.write_all_at(b"\xff", 446 + 4).unwrap();
    }
    let o = flash(&damaged, &out).arg("--yes").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("do not match the bmap"), "{err}");

    // Overwriting an existing file needs --yes when there is no terminal to ask on.
    std::fs::write(&out, "precious").unwrap();
    let o = flash(&img, &out).stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");

    // The image itself as the target.
    let o = flash(&img, &img).arg("--yes").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("the image itself"));

    // Settings are validated before anything is written.
    let fresh = d.path().join("fresh.img");
    let o = flash(&img, &fresh)
        .args(["--yes", "--hostname", "bad_name"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!fresh.exists());
}

#[test]
fn without_device_lists_candidates() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let o = drydock().arg("flash").arg(&img).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("--device") || out.contains("No removable drive"),
        "{out}"
    );
}
