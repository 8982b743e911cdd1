//! raw-image: partitioned disk images as plain files — no loop devices, no mounts, no root.
//!
//! Reading (used by the assembler, `drydock test`, `configure`, `flash`, boot tests):
//! - [`inspect::read_table`]: MBR/GPT partition tables, pure Rust over `Read + Seek`;
//! - [`fat::Fat`]: FAT at an offset in an image via mtools (list, read, write, mkdir, delete);
//! - [`ext4::Ext4`]: read-only ext4 at an offset via debugfs (read, stat, list, tree dump);
//! - [`tree`]: a comparable description of a file tree (host folder or file system in an image).
//!
//! Writing:
//! - [`layout::Layout`]: the builder spec (table, alignment, partitions, blobs), checked and
//!   placed by [`layout::Layout::plan`];
//! - [`build::fill`]: make an image from a layout and folder trees (the assembler's entry point);
//! - [`table`] writes MBR/GPT/hybrid tables; [`ext4time`] clamps ext4 inode times.

pub mod blank;
pub mod build;
pub mod crc;
pub mod error;
pub mod ext4;
pub mod ext4time;
pub mod fat;
pub mod guid;
pub mod inspect;
pub mod keep;
pub mod layout;
pub mod measure;
pub mod table;
pub mod tree;

pub use build::{fill, fill_with, FilledImage, FilledPartition, Inputs};
pub use error::{Error, Result};
pub use layout::Layout;
