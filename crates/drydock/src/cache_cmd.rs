//! `drydock cache ls|verify|gc`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use artifact::manifest::Manifest;

use crate::cli::{CacheArgs, CacheCommand};
use crate::Ctx;

pub fn run(ctx: &Ctx, a: CacheArgs) -> Result<ExitCode> {
    let store = &ctx.store;
    match a.command {
        CacheCommand::Ls { json } => {
            let mut rows = Vec::new();
            for (kind, digest, dir) in store.list()? {
                let m = Manifest::load(&dir).ok();
                let size = artifact::store::du(&dir);
                rows.push(serde_json::json!({
                    "kind": kind,
                    "digest": digest,
                    "name": m.as_ref().map(|m| m.name.clone()),
                    "version": m.as_ref().map(|m| m.version.clone()),
                    "arch": m.as_ref().map(|m| m.arch.clone()),
                    "files": m.as_ref().map(|m| m.files.len()),
                    "bytes_on_disk": size,
                    "path": dir,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("cache {} is empty", store.root().display());
            } else {
                println!(
                    "{:<10} {:<14} {:<32} {:<10} {:>10}",
                    "KIND", "DIGEST", "NAME", "ARCH", "SIZE"
                );
                for r in &rows {
                    println!(
                        "{:<10} {:<14} {:<32} {:<10} {:>10}",
                        r["kind"].as_str().unwrap_or("?"),
                        &r["digest"].as_str().unwrap_or("?")
                            [..12.min(r["digest"].as_str().unwrap_or("").len())],
                        r["name"].as_str().unwrap_or("(no manifest)"),
                        r["arch"].as_str().unwrap_or("?"),
                        human(r["bytes_on_disk"].as_u64().unwrap_or(0)),
                    );
                }
                println!("cache: {}", store.root().display());
            }
            if !json {
                working_caches(store);
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Verify => {
            let reports = store.verify()?;
            let mut bad = 0;
            for r in &reports {
                if r.problems.is_empty() {
                    println!("ok       {} {}", r.kind, r.digest);
                } else {
                    bad += 1;
                    println!("CORRUPT  {} {}", r.kind, r.digest);
                    for p in &r.problems {
                        println!("         {p}");
                    }
                    if let Some(q) = &r.quarantined {
                        println!("         moved to {}", q.display());
                    }
                }
            }
            println!("{} entries checked, {} corrupt", reports.len(), bad);
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        CacheCommand::Gc { keep } => {
            let r = store.gc(keep, Duration::from_secs(6 * 3600))?;
            for p in &r.removed {
                println!("removed {}", p.display());
            }
            println!("freed {}", human(r.freed_bytes));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// 1.5 GiB style sizes.
pub fn human(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Print the working caches beside the entries (`aux/`: made again when missing) and their sizes.
fn working_caches(store: &artifact::Store) {
    let aux = store.root().join("aux");
    let mut extra = Vec::new();
    for e in std::fs::read_dir(&aux).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "system-trees" {
            for b in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                let board = b.file_name().to_string_lossy().into_owned();
                extra.push((
                    format!("system-trees/{board}"),
                    artifact::store::du(&b.path()),
                ));
            }
        } else {
            extra.push((name, artifact::store::du(&e.path())));
        }
    }
    extra.sort();
    if !extra.is_empty() {
        println!("working caches (aux/; system-trees/BOARD: the unpacked system and its kept root file system):");
        for (name, size) in extra {
            println!("  {name:<40} {:>10}", human(size));
        }
    }
}
