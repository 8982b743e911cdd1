//! image-assembler: from the four artifacts (rootfs tarball, kernel .debs, drydock's signed APT
//! repository, the disk layout) to the image bundle.
//!
//! Two stages, each a cached artifact of its own:
//! - [`system`] (kind `system`, expensive): the rootfs with the kernel, the container engine,
//!   cloud-init and drydock's packages installed in a foreign-arch chroot, cleaned, packed as a
//!   reproducible tarball. Its key holds no per-image setting, so a hostname change never redoes it.
//! - [`image`] (kind `image`, cheap): the system plus per-image settings (hostname, seed, preloaded
//!   container images), split by mount point, filled into the partitions, and the bundle:
//!   `.img`, compressed copy, `.bmap`, `SHA256SUMS`, SPDX SBOM (and `manifest.json`).
//!
//! Format code is pure and tested on small data: [`bmap`], [`sbom`], [`sums`], [`dpkg`],
//! [`bootcfg`], [`split`].

pub mod bmap;
pub mod bootcfg;
pub mod bundle;
pub mod chroot;
pub mod dpkg;
pub mod image;
pub mod inputs;
pub mod sbom;
pub mod split;
pub mod sums;
pub mod system;
pub mod tarball;
pub mod treecache;
