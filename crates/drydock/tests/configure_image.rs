//! `drydock configure` on fixture images: the seed on the boot partition carries the given values
//! (read back with the mcopy CLI), the FAT stays clean (fsck.vfat -n), cloud-init's own schema
//! check accepts the user-data, `.img.zst` is rewritten with its bmap and SHA256SUMS, `--count`
//! stamps copies, and bad input is refused with the reason and leaves the image as it was.

mod configure_fixture;

use std::path::Path;
use std::process::Command;

use configure_fixture::*;
use serde_yaml::Value;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn seed_of(img: &Path) -> (Value, Value, Value, String) {
    let ud = mread(img, BOOT_START, "user-data").expect("user-data");
    let md = mread(img, BOOT_START, "meta-data").expect("meta-data");
    let nc = mread(img, BOOT_START, "network-config").expect("network-config");
    (yaml(&ud), yaml(&md), yaml(&nc), ud)
}

fn assert_fat_clean(img: &Path, work: &Path) {
    let o = fsck_boot(img, BOOT_START, BOOT_SIZE, work);
    assert!(
        o.status.success(),
        "fsck.vfat -n reports problems:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn configure_writes_the_values_keeps_the_fat_clean_and_cloud_init_accepts_it() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let key = ssh_pubkey(d.path());
    let extra = d.path().join("hello.txt");
    std::fs::write(&extra, "hello from the host\n").unwrap();
    let o = run_ok(
        drydock()
            .arg("configure")
            .arg(&img)
            .args([
                "--hostname",
                "node-1",
                "--user",
                "alice",
                "--password",
                "s3cret-pw",
            ])
            .arg("--ssh-key")
            .arg(&key)
            .args([
                "--wifi-ssid",
                "home net",
                "--wifi-psk",
                "correct horse",
                "--wifi-country",
                "de",
            ])
            .args(["--static-ip", "192.168.1.50/24", "--gateway", "192.168.1.1"])
            .args(["--dns", "1.1.1.1", "--dns", "9.9.9.9"])
            .args(["--timezone", "Europe/Berlin", "--locale", "de_DE.UTF-8"])
            .arg("--file")
            .arg(format!("{}:overlays/hello.txt", extra.display())),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("configured") && out.contains("user-data"),
        "{out}"
    );

    let (ud, md, nc, ud_text) = seed_of(&img);
    assert!(ud_text.starts_with("#cloud-config\n"));
    assert_eq!(ud["hostname"], "node-1");
    assert_eq!(ud["timezone"], "Europe/Berlin");
    assert_eq!(ud["locale"], "de_DE.UTF-8");
    let user = &ud["users"][0];
    assert_eq!(user["name"], "alice");
    let pubkey = std::fs::read_to_string(&key).unwrap();
    assert_eq!(
        user["ssh_authorized_keys"][0].as_str().unwrap(),
        pubkey.trim()
    );
    let pw = &ud["chpasswd"]["users"][0];
    assert_eq!(pw["name"], "alice");
    assert_eq!(pw["type"], "hash");
    let hash = pw["password"].as_str().unwrap();
    assert!(hash.starts_with("$6$"), "{hash}");
    assert!(!ud_text.contains("s3cret-pw"), "plain password stored");
    // The hash is what openssl computes for the password with the same salt.
    let salt = hash.split('$').nth(2).unwrap();
    let o = run_ok(Command::new("openssl").args(["passwd", "-6", "-salt", salt, "s3cret-pw"]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), hash);

    assert_eq!(md["local-hostname"], "node-1");
    assert!(md["instance-id"].as_str().unwrap().starts_with("drydock-"));

    let wlan = &nc["wifis"]["wlan0"];
    assert_eq!(wlan["regulatory-domain"], "DE");
    let psk = wlan["access-points"]["home net"]["password"]
        .as_str()
        .unwrap();
    // wpa_passphrase's PSK: PBKDF2-HMAC-SHA1(passphrase, ssid, 4096, 32), checked with python.
    let o = run_ok(Command::new("/usr/bin/python3").args([
        "-c",
        "import hashlib;print(hashlib.pbkdf2_hmac('sha1', b'correct horse', b'home net', 4096, 32).hex())",
    ]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), psk);
    let eth = &nc["ethernets"]["eth0"];
    assert_eq!(eth["dhcp4"], false);
    assert_eq!(eth["addresses"][0], "192.168.1.50/24");
    assert_eq!(eth["routes"][0]["via"], "192.168.1.1");
    assert_eq!(eth["nameservers"]["addresses"][1], "9.9.9.9");

    assert_eq!(
        mread(&img, BOOT_START, "overlays/hello.txt").as_deref(),
        Some("hello from the host\n")
    );
    assert_eq!(
        mread(&img, BOOT_START, "config.txt").as_deref(),
        Some("arm_64bit=1\nenable_uart=1\n"),
        "other files untouched"
    );
    assert_fat_clean(&img, d.path());

    // cloud-init's own schema check accepts the user-data written.
    let ud_file = d.path().join("user-data");
    std::fs::write(&ud_file, &ud_text).unwrap();
    let o = cloud_init(&["schema", "--config-file", ud_file.to_str().unwrap()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success() && said.contains("Valid cloud-config"),
        "{said}"
    );
    // ... and a broken one is rejected by the same check (the check can fail).
    std::fs::write(
        &ud_file,
        ud_text.replace("  - name: alice", "  - name: [alice]"),
    )
    .unwrap();
    let o = cloud_init(&["schema", "--config-file", ud_file.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "schema check accepted a broken user-data"
    );

    // cloud-init parses the network-config and renders it for netplan (wifis need netplan).
    let nc_file = d.path().join("network-config");
    std::fs::write(&nc_file, mread(&img, BOOT_START, "network-config").unwrap()).unwrap();
    let outdir = d.path().join("net");
    let o = cloud_init(&[
        "devel",
        "net-convert",
        "--network-data",
        nc_file.to_str().unwrap(),
        "--kind",
        "yaml",
        "--output-kind",
        "netplan",
        "--distro",
        "debian",
        "--directory",
        outdir.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "net-convert: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let netplan = std::fs::read_to_string(outdir.join("etc/netplan/50-cloud-init.yaml")).unwrap();
    assert!(netplan.contains("192.168.1.50/24"), "{netplan}");
    assert!(netplan.contains(psk), "{netplan}");
}

#[test]
fn settings_not_given_stay() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let (before_ud, _, before_nc, _) = seed_of(&img);
    let before_net = mread(&img, BOOT_START, "network-config").unwrap();
    run_ok(
        drydock()
            .arg("configure")
            .arg(&img)
            .args(["--hostname", "first"]),
    );
    run_ok(
        drydock()
            .arg("configure")
            .arg(&img)
            .args(["--timezone", "Etc/UTC"]),
    );
    let (ud, md, nc, _) = seed_of(&img);
    assert_eq!(ud["hostname"], "first");
    assert_eq!(md["local-hostname"], "first");
    assert_eq!(ud["timezone"], "Etc/UTC");
    assert_eq!(ud["users"], before_ud["users"]);
    assert_eq!(ud["chpasswd"], before_ud["chpasswd"]);
    assert_eq!(nc, before_nc);
    assert_eq!(
        mread(&img, BOOT_START, "network-config").unwrap(),
        before_net,
        "network-config untouched byte for byte"
    );
    assert_fat_clean(&img, d.path());
}

#[test]
fn zst_image_is_rewritten_with_its_bmap_and_sums() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    sh(&format!(
        "cd {} && zstd -q -3 x.img -o x.img.zst && bmaptool -q create x.img -o x.bmap && sha256sum x.img x.img.zst x.bmap > SHA256SUMS && rm x.img && chmod 644 x.img.zst x.bmap SHA256SUMS",
        d.path().display()
    ));
    let zst = d.path().join("x.img.zst");
    let key = ssh_pubkey(d.path());
    run_ok(
        drydock()
            .arg("configure")
            .arg(&zst)
            .args(["--hostname", "zhost"])
            .arg("--ssh-key")
            .arg(&key),
    );
    // The rewritten files keep their permissions (temporary files are made 0600).
    use std::os::unix::fs::PermissionsExt;
    for f in ["x.img.zst", "x.bmap", "SHA256SUMS"] {
        let mode = std::fs::metadata(d.path().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{f}");
    }
    // No temporary files are left beside it.
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // bmaptool copies the new image with the new bmap (it checks every range's sha256).
    let out = d.path().join("copy.img");
    run_ok(
        Command::new("bmaptool")
            .args(["-q", "copy", "--bmap"])
            .arg(d.path().join("x.bmap"))
            .arg(&zst)
            .arg(&out),
    );
    let (ud, md, _, _) = seed_of(&out);
    assert_eq!(ud["hostname"], "zhost");
    assert_eq!(md["local-hostname"], "zhost");
    assert_fat_clean(&out, d.path());
    // SHA256SUMS lists the new .img.zst and .bmap (the x.img line stays: that file is gone).
    let o = Command::new("sha256sum")
        .args(["-c", "--ignore-missing", "SHA256SUMS"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let sums = std::fs::read_to_string(d.path().join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&sha256(&zst)));
}

#[test]
fn in_place_img_updates_bmap_and_sums() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    sh(&format!(
        "cd {} && bmaptool -q create x.img -o x.img.bmap && sha256sum x.img x.img.bmap > SHA256SUMS",
        d.path().display()
    ));
    run_ok(
        // A bare file name, run from the image's folder.
        drydock()
            .current_dir(d.path())
            .args(["configure", "x.img", "--locale", "C.UTF-8"]),
    );
    let o = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let out = d.path().join("copy.img");
    run_ok(
        Command::new("bmaptool")
            .args(["-q", "copy"])
            .arg(&img)
            .arg(&out),
    );
    assert_eq!(sha256(&out), sha256(&img));
}

#[test]
fn count_stamps_copies_and_leaves_the_original() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let before = sha256(&img);
    run_ok(drydock().arg("configure").arg(&img).args([
        "--count",
        "3",
        "--hostname-pattern",
        "node-{n:02}",
        "--password",
        "pw123456",
    ]));
    assert_eq!(sha256(&img), before, "the original is unchanged");
    let mut hashes = Vec::new();
    for n in 1..=3 {
        let copy = d.path().join(format!("x-{n}.img"));
        let (ud, md, _, _) = seed_of(&copy);
        assert_eq!(ud["hostname"], format!("node-{n:02}"));
        assert_eq!(md["local-hostname"], format!("node-{n:02}"));
        hashes.push(
            ud["chpasswd"]["users"][0]["password"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        assert_fat_clean(&copy, d.path());
    }
    hashes.dedup();
    assert_eq!(hashes.len(), 3, "each copy gets its own salt");
}

#[test]
fn gpt_image_uses_its_fat_partition() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("g.img");
    image(&img, true);
    run_ok(
        drydock()
            .arg("configure")
            .arg(&img)
            .args(["--hostname", "gpt-host"]),
    );
    let (ud, _, _, _) = seed_of(&img);
    assert_eq!(ud["hostname"], "gpt-host");
    // With the board named, the partition the profile mounts at /boot/firmware is used.
    run_ok(drydock().arg("configure").arg(&img).args([
        "--board",
        "rpi-arm64",
        "--hostname",
        "gpt2",
    ]));
    assert_eq!(seed_of(&img).0["hostname"], "gpt2");
}

#[test]
fn bad_input_is_refused_and_the_image_is_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let before = sha256(&img);
    let script = d.path().join("ud.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let nohdr = d.path().join("ud.yaml");
    std::fs::write(&nohdr, "packages: [vim]\n").unwrap();
    let broken = d.path().join("ud-broken");
    std::fs::write(&broken, "#cloud-config\npackages: [vim\n").unwrap();
    let private = d.path().join("id");
    std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--user-data".into(), script.display().to_string()],
            "script",
        ),
        (
            vec!["--user-data".into(), nohdr.display().to_string()],
            "#cloud-config",
        ),
        (
            vec!["--user-data".into(), broken.display().to_string()],
            "not valid YAML",
        ),
        (
            vec!["--ssh-key".into(), private.display().to_string()],
            "private key",
        ),
        (
            vec!["--hostname".into(), "bad_name".into()],
            "invalid hostname",
        ),
        (vec!["--static-ip".into(), "10.0.0.5".into()], "ADDR/PREFIX"),
        (
            vec![
                "--static-ip".into(),
                "10.0.0.5/24".into(),
                "--gateway".into(),
                "fe80::1".into(),
            ],
            "gateway",
        ),
        (vec!["--timezone".into(), "Mars/Base".into()], "timezone"),
        (
            vec![
                "--wifi-ssid".into(),
                "x".into(),
                "--wifi-psk".into(),
                "short".into(),
            ],
            "8 to 63",
        ),
        (vec!["--user".into(), "root".into()], "root"),
    ];
    for (args, want) in cases {
        let o = drydock()
            .arg("configure")
            .arg(&img)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // An image without a FAT partition.
    let nofat = d.path().join("nofat.img");
    sh(&format!(
        "truncate -s 8M {0} && printf 'label: dos\\nstart=2048, type=83\\n' | sfdisk -q {0}",
        nofat.display()
    ));
    let o = drydock()
        .arg("configure")
        .arg(&nofat)
        .args(["--hostname", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("no FAT partition"));
    assert_eq!(
        sha256(&img),
        before,
        "refused runs leave the image as it was"
    );
}
