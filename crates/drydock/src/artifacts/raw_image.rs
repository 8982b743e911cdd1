//! The raw_image artifact of a board: profile → builder spec → store.

use std::path::Path;

use anyhow::Result;

use super::Built;
use crate::profile::Profile;
use crate::Ctx;

/// Build (or reuse) the raw_image artifact of `profile` and export it to `out`.
pub fn build(_ctx: &Ctx, profile: &Profile, _out: &Path) -> Result<Built> {
    anyhow::bail!(
        "the raw_image artifact of {} is not built yet",
        profile.name
    )
}
