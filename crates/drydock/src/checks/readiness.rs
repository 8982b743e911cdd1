//! The kernel container-readiness report (kernel-packager's check, the rules of Docker's
//! check-config) turned into one check per required rule, for a config read from the image or
//! from the running kernel.

use kernel_packager::readiness::{self, Level, Status};
use kernel_packager::KernelConfig;

use crate::checks::Report;
use crate::profile::Readiness;

/// The kernel-packager level for a profile's readiness setting (`None` for `none`).
pub fn level(r: Readiness) -> Option<Level> {
    match r {
        Readiness::None => None,
        Readiness::Docker => Some(Level::Docker),
        Readiness::Kubernetes => Some(Level::Kubernetes),
        Readiness::Podman => Some(Level::Podman),
    }
}

/// Check a kernel config text against the profile's readiness level: a summary check, then one
/// check per required rule, named `readiness: <rule>`.
pub fn report(config: &str, want: Readiness, origin: &str, r: &mut Report) {
    let Some(lvl) = level(want) else {
        r.pass(
            "container readiness of the kernel config",
            "profile requires no level",
        );
        return;
    };
    let cfg = match KernelConfig::parse(config, origin) {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                format!("kernel config meets the {lvl} level"),
                format!("{origin}: {e}"),
            );
            return;
        }
    };
    let rep = readiness::check(&cfg, lvl);
    let required: Vec<_> = rep
        .results
        .iter()
        .filter(|x| x.required && x.status != Status::NotApplicable)
        .collect();
    r.check(
        format!("kernel config meets the {lvl} level"),
        rep.ok,
        if rep.ok {
            format!("{origin}: {} required rules pass", required.len())
        } else {
            format!("{origin}: missing {}", rep.missing.join(", "))
        },
    );
    for x in required {
        r.check(
            format!("readiness: {}", x.rule),
            x.status == Status::Ok,
            format!("{} ({}: {})", x.found, x.group, x.why),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_options_fail_by_name() {
        let cfg = "CONFIG_NAMESPACES=y\n";
        let mut r = Report::new();
        report(cfg, Readiness::Docker, "test.config", &mut r);
        assert!(!r.ok());
        let f: Vec<&str> = r.failed().map(|c| c.name.as_str()).collect();
        assert!(f.contains(&"kernel config meets the docker level"), "{f:?}");
        assert!(f.contains(&"readiness: CONFIG_OVERLAY_FS"), "{f:?}");
        assert!(!f.contains(&"readiness: CONFIG_NAMESPACES"), "{f:?}");
    }

    #[test]
    fn none_level_passes() {
        let mut r = Report::new();
        report("", Readiness::None, "x", &mut r);
        assert!(r.ok());
    }
}
