//! Benchmark (not run by CI): fill a ~1 GB rootfs tree and a boot tree into the Raspberry Pi layout
//! with raw-image, with genimage (equivalent config: vfat + ext4 via mke2fs, MBR hdimage), and
//! the floor (splicing the same partition files into place with sparse copies). One run, side by
//! side, ratios printed. Run through `scripts/bench-raw-image.sh`.
//!
//! The root tree is the cached rootfs artifact extracted (when one is in the cache) topped up with
//! generated files to `--size-mb`, else fully generated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use raw_image::layout::{Bytes, Fs, Layout, Partition, SizeSpec, TableKind};

fn sh(cmd: &mut Command) -> Result<String> {
    Ok(artifact::cmd::run(cmd)?.stdout_str())
}

fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

fn du(p: &Path) -> u64 {
    artifact::store::du(p)
}

/// Generated files under `dir` totalling about `bytes`: most in 4–64 KiB files spread over
/// folders, a quarter in a few 8–32 MiB files.
fn generate(dir: &Path, bytes: u64, seed: u64) -> Result<u64> {
    let mut rng = Rng(seed | 1);
    let mut written = 0u64;
    let mut n = 0u64;
    let mut buf = vec![0u8; 32 << 20];
    while written < bytes {
        let large = n % 200 == 0;
        let size = if large {
            (8 << 20) + rng.next() % (24 << 20)
        } else {
            4096 + rng.next() % (60 << 10)
        } as usize;
        let sub = dir.join(format!("d{:03}/e{:02}", n % 331, n % 17));
        std::fs::create_dir_all(&sub)?;
        rng.fill(&mut buf[..size]);
        std::fs::write(sub.join(format!("f{n}.bin")), &buf[..size])?;
        written += size as u64;
        n += 1;
    }
    Ok(n)
}

fn cached_rootfs() -> Option<PathBuf> {
    let root = artifact::Store::default_root().join("entries/rootfs");
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .flatten()
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .collect();
    found.sort();
    found.pop()
}

fn rpi_layout() -> Layout {
    let boot = Partition {
        name: "boot".into(),
        label: Some("RASPIFIRM".into()),
        fs: Fs::Fat32,
        size: SizeSpec::Fixed(Bytes(256 << 20)),
        start: None,
        bootable: true,
        gpt_type: None,
        mbr_type: Some(0x0c),
    };
    let root = Partition {
        name: "root".into(),
        label: Some("RASPIROOT".into()),
        fs: Fs::Ext4,
        size: SizeSpec::Fit {
            headroom: Bytes(384 << 20),
        },
        start: None,
        bootable: false,
        gpt_type: None,
        mbr_type: Some(0x83),
    };
    Layout {
        name: "rpi-arm64".into(),
        table: TableKind::Mbr,
        align: Bytes(1 << 20),
        disk_size: None,
        partitions: vec![boot, root],
        blobs: vec![],
    }
}

/// Copy the data extents of `src` to `dst` at byte `offset` (holes stay holes).
fn splice_sparse(src: &Path, dst: &std::fs::File, offset: u64) -> Result<()> {
    let s = std::fs::File::open(src)?;
    let len = s.metadata()?.len();
    raw_image::keep::copy_extents(&s, 0, len, dst, offset)?;
    Ok(())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut size_mb = 1024u64;
    let mut work = PathBuf::from("/var/tmp/drydock-bench-raw-image");
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--size-mb" => {
                size_mb = args.get(i + 1).context("--size-mb N")?.parse()?;
                i += 1;
            }
            "--work" => {
                work = PathBuf::from(args.get(i + 1).context("--work DIR")?);
                i += 1;
            }
            other => anyhow::bail!("unknown argument {other:?} (use --size-mb N, --work DIR)"),
        }
        i += 1;
    }
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let root = work.join("root");
    let boot = work.join("boot");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&boot)?;

    // Trees.
    let t = Instant::now();
    let mut source = String::from("generated");
    if let Some(tar) = cached_rootfs() {
        sh(Command::new("tar")
            .args(["--zstd", "-xf"])
            .arg(&tar)
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*"]))?;
        source = format!(
            "{} + generated",
            tar.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    let have = du(&root);
    let target = size_mb << 20;
    if have < target {
        generate(&root.join("usr/share/bench-fill"), target - have, 0x5eed)?;
    }
    let mut rng = Rng(7);
    let mut buf = vec![0u8; 30 << 20];
    for (name, size) in [("vmlinuz", 30usize << 20), ("initrd.img", 25 << 20)] {
        rng.fill(&mut buf[..size]);
        std::fs::write(boot.join(name), &buf[..size])?;
    }
    std::fs::create_dir_all(boot.join("overlays"))?;
    for k in 0..30 {
        rng.fill(&mut buf[..50_000]);
        std::fs::write(boot.join(format!("bcm27{k:02}-rpi.dtb")), &buf[..50_000])?;
    }
    for k in 0..200 {
        rng.fill(&mut buf[..3000]);
        std::fs::write(boot.join(format!("overlays/o{k}.dtbo")), &buf[..3000])?;
    }
    let nodes = sh(Command::new("sh")
        .arg("-c")
        .arg(format!("find {} | wc -l", root.display())))?;
    println!(
        "trees: root {} MiB in {} nodes ({source}), boot {} MiB; prepared in {:.1}s",
        du(&root) >> 20,
        nodes.trim(),
        du(&boot) >> 20,
        secs(t.elapsed())
    );

    let layout = rpi_layout();
    let epoch = 1_700_000_000;

    // 1. raw-image.
    drop_caches();
    let img = work.join("raw-image.img");
    let trees: BTreeMap<String, PathBuf> = [
        ("boot".to_string(), boot.clone()),
        ("root".to_string(), root.clone()),
    ]
    .into();
    let t = Instant::now();
    let filled = raw_image::fill(&layout, &trees, "bench", epoch, &img)?;
    sh(&mut Command::new("sync"))?;
    let t_raw = t.elapsed();
    let rootp = filled.partition("root").context("root")?.clone();
    let bootp = filled.partition("boot").context("boot")?.clone();
    println!(
        "raw-image : {:>7.2}s  (disk {} MiB, root {} MiB)",
        secs(t_raw),
        filled.disk_size >> 20,
        rootp.size_bytes >> 20
    );

    // 2. genimage, same sizes, same tools.
    let g = work.join("genimage");
    for d in ["out", "tmp", "in", "emptyroot"] {
        std::fs::create_dir_all(g.join(d))?;
    }
    let cfg = g.join("genimage.cfg");
    std::fs::write(
        &cfg,
        format!(
            r#"image boot.vfat {{
  vfat {{
    label = "RASPIFIRM"
    extraargs = "-F 32 -s 1"
  }}
  size = {boot}
  srcpath = "{bootdir}"
}}
image root.ext4 {{
  ext4 {{
    label = "RASPIROOT"
    use-mke2fs = true
  }}
  size = {root}
  srcpath = "{rootdir}"
}}
image disk.img {{
  hdimage {{
    partition-table-type = "mbr"
  }}
  partition boot {{
    partition-type = 0xC
    bootable = true
    image = "boot.vfat"
    offset = {boot_off}
  }}
  partition root {{
    partition-type = 0x83
    image = "root.ext4"
    offset = {root_off}
  }}
}}
"#,
            boot = bootp.size_bytes,
            root = rootp.size_bytes,
            bootdir = boot.display(),
            rootdir = root.display(),
            boot_off = bootp.start_bytes,
            root_off = rootp.start_bytes,
        ),
    )?;
    drop_caches();
    let t = Instant::now();
    sh(Command::new("genimage")
        .arg("--config")
        .arg(&cfg)
        .arg("--rootpath")
        .arg(g.join("emptyroot"))
        .arg("--tmppath")
        .arg(g.join("tmp"))
        .arg("--inputpath")
        .arg(g.join("in"))
        .arg("--outputpath")
        .arg(g.join("out")))?;
    sh(&mut Command::new("sync"))?;
    let t_gen = t.elapsed();
    println!("genimage  : {:>7.2}s", secs(t_gen));

    // 3. Floor: the same partition files put into place, data extents only (SEEK_DATA/SEEK_HOLE
    //    + copy_file_range): the least work any splice-based tool can do. Plus plain
    //    `cp --sparse=always` of the files, for reference.
    drop_caches();
    let floor = work.join("floor.img");
    let t = Instant::now();
    let f = std::fs::File::create(&floor)?;
    f.set_len(filled.disk_size)?;
    for (part, off) in [
        ("boot.vfat", bootp.start_bytes),
        ("root.ext4", rootp.start_bytes),
    ] {
        splice_sparse(&g.join("out").join(part), &f, off)?;
    }
    f.sync_all()?;
    drop(f);
    let t_floor = t.elapsed();
    drop_caches();
    let t = Instant::now();
    for part in ["boot.vfat", "root.ext4"] {
        sh(Command::new("cp")
            .arg("--sparse=always")
            .arg(g.join("out").join(part))
            .arg(work.join(format!("cp-{part}"))))?;
    }
    sh(&mut Command::new("sync"))?;
    let t_cp = t.elapsed();
    println!(
        "floor     : {:>7.2}s  (data extents of genimage's partition files copied into place)",
        secs(t_floor)
    );
    println!(
        "            {:>7.2}s  (cp --sparse=always of the same partition files)",
        secs(t_cp)
    );

    // Sanity: both images are clean.
    raw_image::ext4::Ext4::new(&img, rootp.start_bytes).fsck()?;
    let used = |p: &Path| -> Result<u64> {
        Ok((std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(p)?) * 512) >> 20)
    };
    println!(
        "allocated : raw-image {} MiB, genimage {} MiB, floor {} MiB (of {} MiB)",
        used(&img)?,
        used(&g.join("out/disk.img"))?,
        used(&floor)?,
        filled.disk_size >> 20
    );
    println!(
        "ratios    : raw-image/genimage = {:.2}, raw-image/floor = {:.2}, raw-image/floor(cp) = {:.2}",
        secs(t_raw) / secs(t_gen),
        secs(t_raw) / secs(t_floor),
        secs(t_raw) / secs(t_cp)
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
