//! raw-image: partitioned disk images as plain files — no loop devices, no mounts, no root.
//!
//! Reading (used by the assembler, `drydock test`, `configure`, `flash`, boot tests):
//! - [`inspect::read_table`]: MBR/GPT partition tables, pure Rust over `Read + Seek`;
//! - [`fat::Fat`]: FAT at an offset in an image via mtools (list, read, write, mkdir, delete);
//! - [`ext4::Ext4`]: read-only ext4 at an offset via debugfs (read, stat, list, tree dump);
//! - [`tree`]: a comparable description of a file tree (host folder or file system in an image).
//!
//! Writing: [`table`] writes MBR/GPT/hybrid tables.

pub mod crc;
pub mod error;
pub mod ext4;
pub mod fat;
pub mod guid;
pub mod inspect;
pub mod table;
pub mod tree;

pub use error::{Error, Result};
