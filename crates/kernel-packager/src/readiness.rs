//! Container readiness of a kernel config: the rules of Docker's `contrib/check-config.sh`
//! (generally necessary, optional features, network drivers, storage drivers), plus what
//! Kubernetes (kubelet, kube-proxy, common CNIs) and podman/crun need.
//!
//! The check is static: it reads a `.config`, not a running system, so the rules that
//! check-config.sh applies only under cgroup v1 (freezer, devices, cpuset, cpuacct, memory
//! controllers) are required here too: the image may boot either hierarchy. drydock's images use
//! the overlay2 storage driver, so `OVERLAY_FS` is required (check-config accepts any storage
//! driver; btrfs is listed as optional).
//!
//! Rule kinds:
//! - [`Kind::Option`]: one option, `y` or `m` ([`Need::Enabled`]) or only `y` ([`Need::BuiltIn`]);
//! - [`Kind::AnyOf`]: alternatives, one of them enabled (e.g. the masquerade target that moved);
//! - [`Kind::Requires`]: when option X is enabled, Y must be too (e.g. `SECCOMP` → `SECCOMP_FILTER`).
//!
//! Each rule is required or optional per level; a level is met when every rule required at it
//! passes. Optional rules are reported but never fail a level.

use serde::Serialize;

use crate::config::{KernelConfig, Value};

/// A readiness level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Docker engine (containerd, runc, bridge networking, overlay2).
    Docker,
    /// Kubernetes node (kubelet, kube-proxy, a bridge/VXLAN CNI): Docker's level plus more.
    Kubernetes,
    /// Podman with crun and netavark, rootless included.
    Podman,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Docker, Level::Kubernetes, Level::Podman];

    pub fn name(self) -> &'static str {
        match self {
            Level::Docker => "docker",
            Level::Kubernetes => "kubernetes",
            Level::Podman => "podman",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Level::Docker => D,
            Level::Kubernetes => K,
            Level::Podman => P,
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown readiness level {s:?} (docker, kubernetes, podman)"))
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an option must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// `y` or `m`.
    Enabled,
    /// `y` only (a module cannot provide it, or it is a bool that must be on).
    BuiltIn,
}

/// The shape of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Option(&'static str),
    AnyOf(&'static [&'static str]),
    /// `Requires(when, then)`: if `when` is enabled, `then` must be.
    Requires(&'static str, &'static str),
}

/// One rule of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub group: &'static str,
    pub kind: Kind,
    pub need: Need,
    /// Levels at which the rule is required (bit set of D, K, P).
    pub required: u8,
    /// Levels at which it is shown as optional (when not required).
    pub optional: u8,
    pub why: &'static str,
}

const D: u8 = 1;
const K: u8 = 2;
const P: u8 = 4;
const DK: u8 = D | K;
const ALL: u8 = D | K | P;

const fn opt(
    group: &'static str,
    name: &'static str,
    need: Need,
    required: u8,
    optional: u8,
    why: &'static str,
) -> Rule {
    Rule {
        group,
        kind: Kind::Option(name),
        need,
        required,
        optional,
        why,
    }
}

const GEN: &str = "Generally necessary";
const NET: &str = "Networking";
const STO: &str = "Storage drivers";
const OPT: &str = "Optional features";
const NDRV: &str = "Network drivers";
const KUB: &str = "Kubernetes";
const POD: &str = "Podman/crun";

use Need::{BuiltIn as Y, Enabled as YM};

/// The rule table.
pub static RULES: &[Rule] = &[
    // Generally necessary (check-config.sh), built in because they are bools.
    opt(GEN, "NAMESPACES", Y, ALL, 0, "namespaces"),
    opt(GEN, "NET_NS", Y, ALL, 0, "network namespaces"),
    opt(GEN, "PID_NS", Y, ALL, 0, "PID namespaces"),
    opt(GEN, "IPC_NS", Y, ALL, 0, "IPC namespaces"),
    opt(GEN, "UTS_NS", Y, ALL, 0, "UTS namespaces"),
    opt(GEN, "CGROUPS", Y, ALL, 0, "control groups"),
    opt(GEN, "CGROUP_SCHED", Y, ALL, 0, "cpu controller"),
    opt(
        GEN,
        "CGROUP_FREEZER",
        Y,
        DK,
        P,
        "freezer controller (cgroup v1; pause)",
    ),
    opt(
        GEN,
        "CGROUP_DEVICE",
        Y,
        DK,
        P,
        "devices controller (cgroup v1)",
    ),
    opt(GEN, "CPUSETS", Y, ALL, 0, "cpuset controller"),
    opt(
        GEN,
        "CGROUP_CPUACCT",
        Y,
        DK,
        P,
        "cpuacct controller (cgroup v1)",
    ),
    opt(GEN, "MEMCG", Y, ALL, 0, "memory controller"),
    opt(
        GEN,
        "CGROUP_BPF",
        Y,
        ALL,
        0,
        "device access control on cgroup v2",
    ),
    Rule {
        group: GEN,
        kind: Kind::Requires("CGROUP_BPF", "BPF_SYSCALL"),
        need: Y,
        required: ALL,
        optional: 0,
        why: "BPF programs attached to cgroups",
    },
    opt(
        GEN,
        "KEYS",
        Y,
        ALL,
        0,
        "keyrings (session keyring per container)",
    ),
    opt(GEN, "POSIX_MQUEUE", Y, ALL, 0, "/dev/mqueue in containers"),
    // Networking (check-config.sh, generally necessary).
    opt(NET, "VETH", YM, ALL, 0, "virtual ethernet pairs"),
    opt(
        NET,
        "BRIDGE",
        YM,
        ALL,
        0,
        "bridge network (docker0, podman0, cni0)",
    ),
    opt(
        NET,
        "BRIDGE_NETFILTER",
        YM,
        DK,
        P,
        "iptables on bridged traffic",
    ),
    opt(NET, "IP_NF_FILTER", YM, DK, P, "iptables filter table"),
    opt(NET, "IP_NF_MANGLE", YM, DK, P, "iptables mangle table"),
    opt(NET, "IP_NF_RAW", YM, DK, P, "iptables raw table"),
    opt(NET, "IP_NF_NAT", YM, DK, P, "iptables nat table"),
    opt(NET, "NF_NAT", YM, ALL, 0, "NAT core"),
    Rule {
        group: NET,
        kind: Kind::AnyOf(&["IP_NF_TARGET_MASQUERADE", "NETFILTER_XT_TARGET_MASQUERADE"]),
        need: YM,
        required: DK,
        optional: 0,
        why: "iptables MASQUERADE target",
    },
    opt(NET, "IP6_NF_FILTER", YM, DK, P, "ip6tables filter table"),
    opt(NET, "IP6_NF_MANGLE", YM, DK, P, "ip6tables mangle table"),
    opt(NET, "IP6_NF_RAW", YM, DK, P, "ip6tables raw table"),
    opt(NET, "IP6_NF_NAT", YM, DK, P, "ip6tables nat table"),
    Rule {
        group: NET,
        kind: Kind::AnyOf(&["IP6_NF_TARGET_MASQUERADE", "NETFILTER_XT_TARGET_MASQUERADE"]),
        need: YM,
        required: DK,
        optional: 0,
        why: "ip6tables MASQUERADE target",
    },
    opt(
        NET,
        "NETFILTER_XT_MATCH_ADDRTYPE",
        YM,
        DK,
        P,
        "addrtype match",
    ),
    opt(
        NET,
        "NETFILTER_XT_MATCH_CONNTRACK",
        YM,
        DK,
        P,
        "conntrack match",
    ),
    opt(
        NET,
        "NETFILTER_XT_MATCH_IPVS",
        YM,
        DK,
        0,
        "ipvs match (swarm)",
    ),
    opt(NET, "NETFILTER_XT_MARK", YM, DK, P, "MARK target"),
    // Optional features (check-config.sh).
    opt(
        OPT,
        "USER_NS",
        Y,
        P,
        DK,
        "user namespaces (userns-remap, rootless)",
    ),
    opt(OPT, "SECCOMP", Y, P, DK, "seccomp profiles"),
    Rule {
        group: OPT,
        kind: Kind::Requires("SECCOMP", "SECCOMP_FILTER"),
        need: Y,
        required: ALL,
        optional: 0,
        why: "seccomp without filters cannot load the default profile",
    },
    opt(
        OPT,
        "CGROUP_PIDS",
        Y,
        K | P,
        D,
        "pids controller (--pids-limit)",
    ),
    opt(OPT, "CGROUP_HUGETLB", Y, 0, ALL, "hugetlb controller"),
    Rule {
        group: OPT,
        kind: Kind::Requires("MEMCG", "SWAP"),
        need: Y,
        required: 0,
        optional: ALL,
        why: "swap accounting (MEMCG_SWAP before 6.1)",
    },
    opt(OPT, "BLK_CGROUP", Y, 0, ALL, "io controller"),
    opt(
        OPT,
        "BLK_DEV_THROTTLING",
        Y,
        0,
        ALL,
        "io throttling (--device-read-bps)",
    ),
    opt(OPT, "CGROUP_PERF", Y, 0, ALL, "perf_event controller"),
    opt(OPT, "NET_CLS_CGROUP", YM, 0, ALL, "net_cls controller"),
    opt(OPT, "CGROUP_NET_PRIO", Y, 0, ALL, "net_prio controller"),
    opt(
        OPT,
        "CFS_BANDWIDTH",
        Y,
        K,
        D | P,
        "CPU quota (--cpus, pod CPU limits)",
    ),
    opt(OPT, "FAIR_GROUP_SCHED", Y, K, D | P, "CPU shares"),
    opt(OPT, "IP_NF_TARGET_REDIRECT", YM, 0, DK, "REDIRECT target"),
    opt(
        OPT,
        "IP_VS",
        YM,
        0,
        DK,
        "IPVS load balancing (swarm, kube-proxy ipvs)",
    ),
    Rule {
        group: OPT,
        kind: Kind::Requires("IP_VS", "IP_VS_NFCT"),
        need: Y,
        required: 0,
        optional: DK,
        why: "IPVS conntrack",
    },
    Rule {
        group: OPT,
        kind: Kind::Requires("IP_VS", "IP_VS_PROTO_TCP"),
        need: Y,
        required: 0,
        optional: DK,
        why: "IPVS TCP",
    },
    Rule {
        group: OPT,
        kind: Kind::Requires("IP_VS", "IP_VS_PROTO_UDP"),
        need: Y,
        required: 0,
        optional: DK,
        why: "IPVS UDP",
    },
    Rule {
        group: OPT,
        kind: Kind::Requires("IP_VS", "IP_VS_RR"),
        need: YM,
        required: 0,
        optional: DK,
        why: "IPVS round robin",
    },
    opt(OPT, "SECURITY_APPARMOR", Y, 0, ALL, "AppArmor profiles"),
    opt(OPT, "SECURITY_SELINUX", Y, 0, ALL, "SELinux labels"),
    opt(OPT, "EXT4_FS", YM, 0, ALL, "ext4 as backing filesystem"),
    Rule {
        group: OPT,
        kind: Kind::Requires("EXT4_FS", "EXT4_FS_POSIX_ACL"),
        need: Y,
        required: 0,
        optional: ALL,
        why: "ext4 ACLs",
    },
    Rule {
        group: OPT,
        kind: Kind::Requires("EXT4_FS", "EXT4_FS_SECURITY"),
        need: Y,
        required: 0,
        optional: ALL,
        why: "ext4 security labels",
    },
    // Network drivers (check-config.sh).
    opt(
        NDRV,
        "VXLAN",
        YM,
        K,
        D | P,
        "overlay networks, flannel/calico VXLAN",
    ),
    Rule {
        group: NDRV,
        kind: Kind::Requires("VXLAN", "BRIDGE_VLAN_FILTERING"),
        need: Y,
        required: 0,
        optional: ALL,
        why: "overlay network driver",
    },
    opt(NDRV, "CRYPTO_GCM", YM, 0, D, "encrypted overlay networks"),
    opt(NDRV, "XFRM_USER", YM, 0, D, "encrypted overlay networks"),
    opt(NDRV, "INET_ESP", YM, 0, D, "encrypted overlay networks"),
    opt(
        NDRV,
        "NETFILTER_XT_MATCH_BPF",
        YM,
        0,
        D,
        "encrypted overlay networks",
    ),
    opt(NDRV, "IPVLAN", YM, 0, ALL, "ipvlan driver"),
    opt(NDRV, "MACVLAN", YM, 0, ALL, "macvlan driver"),
    opt(NDRV, "DUMMY", YM, 0, ALL, "macvlan driver"),
    opt(NDRV, "NF_NAT_FTP", YM, 0, D, "ftp client in containers"),
    opt(
        NDRV,
        "NF_CONNTRACK_FTP",
        YM,
        0,
        D,
        "ftp client in containers",
    ),
    opt(NDRV, "NF_NAT_TFTP", YM, 0, D, "tftp client in containers"),
    opt(
        NDRV,
        "NF_CONNTRACK_TFTP",
        YM,
        0,
        D,
        "tftp client in containers",
    ),
    // Storage drivers.
    opt(STO, "OVERLAY_FS", YM, ALL, 0, "overlay2 storage driver"),
    opt(STO, "BTRFS_FS", YM, 0, D | P, "btrfs storage driver"),
    Rule {
        group: STO,
        kind: Kind::Requires("BTRFS_FS", "BTRFS_FS_POSIX_ACL"),
        need: Y,
        required: 0,
        optional: D | P,
        why: "btrfs storage driver",
    },
    // Kubernetes: kubelet and kube-proxy (iptables mode), the usual CNIs.
    opt(KUB, "NF_CONNTRACK", YM, K, 0, "kube-proxy conntrack"),
    opt(
        KUB,
        "NETFILTER_XT_MATCH_COMMENT",
        YM,
        K,
        0,
        "kube-proxy rules",
    ),
    opt(
        KUB,
        "NETFILTER_XT_MATCH_MULTIPORT",
        YM,
        K,
        0,
        "kube-proxy rules",
    ),
    opt(
        KUB,
        "NETFILTER_XT_MATCH_STATISTIC",
        YM,
        K,
        0,
        "kube-proxy service load balancing",
    ),
    opt(
        KUB,
        "NETFILTER_XT_MATCH_RECENT",
        YM,
        0,
        K,
        "CNI network policies",
    ),
    opt(KUB, "IP_SET", YM, 0, K, "ipsets (calico, kube-router)"),
    opt(KUB, "NETFILTER_XT_SET", YM, 0, K, "ipset match"),
    opt(KUB, "IP_VS_SH", YM, 0, K, "kube-proxy ipvs mode"),
    opt(KUB, "IP_VS_WRR", YM, 0, K, "kube-proxy ipvs mode"),
    opt(
        KUB,
        "NF_TABLES",
        YM,
        0,
        K | P,
        "kube-proxy nftables mode, netavark",
    ),
    opt(KUB, "PSI", Y, 0, K, "pressure stall information"),
    opt(KUB, "HUGETLBFS", Y, 0, K, "hugepages for pods"),
    // Podman: crun and netavark.
    Rule {
        group: POD,
        kind: Kind::AnyOf(&[
            "NFT_MASQ",
            "IP_NF_TARGET_MASQUERADE",
            "NETFILTER_XT_TARGET_MASQUERADE",
        ]),
        need: YM,
        required: P,
        optional: 0,
        why: "netavark masquerading (nftables or iptables)",
    },
    opt(POD, "NFT_CT", YM, 0, P, "netavark nftables driver"),
    opt(
        POD,
        "TUN",
        YM,
        P,
        0,
        "pasta/slirp4netns rootless networking",
    ),
    opt(
        POD,
        "FUSE_FS",
        YM,
        0,
        P,
        "fuse-overlayfs for rootless storage",
    ),
    opt(
        POD,
        "CHECKPOINT_RESTORE",
        Y,
        0,
        P,
        "podman container checkpoint (criu)",
    ),
];

/// How one rule fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    /// A required rule failed.
    Missing,
    /// An optional rule failed.
    OptionalMissing,
    /// A `Requires` rule whose condition is off.
    NotApplicable,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleResult {
    pub group: String,
    /// `CONFIG_VETH`, `CONFIG_A or CONFIG_B`, `CONFIG_X -> CONFIG_Y`.
    pub rule: String,
    pub required: bool,
    /// `y`, `m`, `n`, `missing`, or per alternative for any-of rules.
    pub found: String,
    pub status: Status,
    /// The options this row asks to turn on (empty when it passes).
    pub missing: Vec<String>,
    pub why: String,
}

/// A readiness report for one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub level: Level,
    /// Every required rule passed.
    pub ok: bool,
    /// The required options that are missing, in table order (`CONFIG_A or CONFIG_B` for any-of).
    pub missing: Vec<String>,
    /// Optional options that are missing.
    pub optional_missing: Vec<String>,
    pub results: Vec<RuleResult>,
}

fn found(cfg: &KernelConfig, name: &str) -> String {
    cfg.get(name)
        .map_or_else(|| "missing".into(), |v| v.as_str().to_string())
}

fn meets(cfg: &KernelConfig, name: &str, need: Need) -> bool {
    match (need, cfg.get(name)) {
        (Need::Enabled, Some(v)) => v.is_enabled(),
        (Need::BuiltIn, Some(v)) => *v == Value::Yes,
        (_, None) => false,
    }
}

fn c(name: &str) -> String {
    format!("CONFIG_{name}")
}

/// Check `cfg` against the rules of `level`.
pub fn check(cfg: &KernelConfig, level: Level) -> Report {
    check_rules(cfg, level, RULES)
}

/// Check `cfg` against a given rule table (the unit tests use small tables).
pub fn check_rules(cfg: &KernelConfig, level: Level, rules: &[Rule]) -> Report {
    let mut results = Vec::new();
    for r in rules {
        let required = r.required & level.bit() != 0;
        if !required && r.optional & level.bit() == 0 {
            continue;
        }
        let (rule, found, pass, asks) = match r.kind {
            Kind::Option(n) => {
                let pass = meets(cfg, n, r.need);
                (c(n), found(cfg, n), Some(pass), vec![c(n)])
            }
            Kind::AnyOf(alts) => {
                let pass = alts.iter().any(|n| meets(cfg, n, r.need));
                let f = alts
                    .iter()
                    .map(|n| format!("{}={}", n, found(cfg, n)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let joined = alts.iter().map(|n| c(n)).collect::<Vec<_>>().join(" or ");
                (joined.clone(), f, Some(pass), vec![joined])
            }
            Kind::Requires(when, then) => {
                let rule = format!("{} -> {}", c(when), c(then));
                if cfg.is_enabled(when) {
                    let pass = meets(cfg, then, r.need);
                    (rule, found(cfg, then), Some(pass), vec![c(then)])
                } else {
                    (rule, format!("{}={}", when, found(cfg, when)), None, vec![])
                }
            }
        };
        let (status, missing) = match pass {
            None => (Status::NotApplicable, vec![]),
            Some(true) => (Status::Ok, vec![]),
            Some(false) if required => (Status::Missing, asks),
            Some(false) => (Status::OptionalMissing, asks),
        };
        let found = match (status.clone(), r.need, r.kind) {
            (Status::Missing | Status::OptionalMissing, Need::BuiltIn, Kind::Option(_))
                if found == "m" =>
            {
                "m (must be y)".into()
            }
            _ => found,
        };
        results.push(RuleResult {
            group: r.group.into(),
            rule,
            required,
            found,
            status,
            missing,
            why: r.why.into(),
        });
    }
    let mut missing = Vec::new();
    let mut optional_missing = Vec::new();
    for r in &results {
        let into = match r.status {
            Status::Missing => &mut missing,
            Status::OptionalMissing => &mut optional_missing,
            _ => continue,
        };
        for m in &r.missing {
            if !into.contains(m) {
                into.push(m.clone());
            }
        }
    }
    Report {
        level,
        ok: missing.is_empty(),
        missing,
        optional_missing,
        results,
    }
}

impl Report {
    /// The table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let w_group = self
            .results
            .iter()
            .map(|r| r.group.len())
            .max()
            .unwrap_or(5);
        let w_rule = self
            .results
            .iter()
            .map(|r| r.rule.len())
            .max()
            .unwrap_or(6)
            .min(60);
        out.push_str(&format!(
            "{:<w_group$}  {:<w_rule$}  {:<9}  {:<8}  VALUE\n",
            "GROUP", "OPTION", "NEEDED", "STATUS"
        ));
        for r in &self.results {
            let status = match r.status {
                Status::Ok => "ok",
                Status::Missing => "MISSING",
                Status::OptionalMissing => "missing",
                Status::NotApplicable => "n/a",
            };
            out.push_str(&format!(
                "{:<w_group$}  {:<w_rule$}  {:<9}  {:<8}  {}\n",
                r.group,
                r.rule,
                if r.required { "required" } else { "optional" },
                status,
                r.found
            ));
        }
        out.push('\n');
        if self.ok {
            out.push_str(&format!(
                "{} level: met ({} optional option(s) missing)\n",
                self.level,
                self.optional_missing.len()
            ));
        } else {
            out.push_str(&format!(
                "{} level: NOT met; missing {} required option(s): {}\n",
                self.level,
                self.missing.len(),
                self.missing.join(", ")
            ));
        }
        out
    }

    /// Pretty JSON with a trailing newline.
    pub fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> KernelConfig {
        KernelConfig::parse(&format!("CONFIG_PLACEHOLDER=y\n{text}"), "t").unwrap()
    }

    static T: &[Rule] = &[
        opt("g", "BOOL", Y, ALL, 0, ""),
        opt("g", "TRI", YM, ALL, 0, ""),
        Rule {
            group: "g",
            kind: Kind::AnyOf(&["ALT_A", "ALT_B"]),
            need: YM,
            required: ALL,
            optional: 0,
            why: "",
        },
        Rule {
            group: "g",
            kind: Kind::Requires("WHEN", "THEN"),
            need: Y,
            required: ALL,
            optional: 0,
            why: "",
        },
        opt("g", "OPT", YM, 0, ALL, ""),
        opt("g", "KUBE_ONLY", YM, K, 0, ""),
    ];

    /// (config text, level, expected required missing, expected optional missing)
    #[test]
    fn rule_kinds_table() {
        let base = "CONFIG_BOOL=y\nCONFIG_TRI=m\nCONFIG_ALT_B=m\nCONFIG_OPT=y\n";
        let cases: Vec<(String, Level, &[&str], &[&str])> = vec![
            // All met; =m is fine where y|m is asked.
            (base.to_string(), Level::Docker, &[], &[]),
            // =y where y|m is asked.
            (
                "CONFIG_BOOL=y\nCONFIG_TRI=y\nCONFIG_ALT_A=y\nCONFIG_OPT=m\n".to_string(),
                Level::Docker,
                &[],
                &[],
            ),
            // =m where =y is needed fails.
            (
                "CONFIG_BOOL=m\nCONFIG_TRI=m\nCONFIG_ALT_B=m\nCONFIG_OPT=y\n".to_string(),
                Level::Docker,
                &["CONFIG_BOOL"],
                &[],
            ),
            // Missing and "is not set" both fail.
            (
                "# CONFIG_TRI is not set\nCONFIG_ALT_A=y\n".to_string(),
                Level::Docker,
                &["CONFIG_BOOL", "CONFIG_TRI"],
                &["CONFIG_OPT"],
            ),
            // Any-of with no alternative set names both.
            (
                "CONFIG_BOOL=y\nCONFIG_TRI=m\n# CONFIG_ALT_A is not set\nCONFIG_OPT=y\n"
                    .to_string(),
                Level::Docker,
                &["CONFIG_ALT_A or CONFIG_ALT_B"],
                &[],
            ),
            // Dependent: WHEN on, THEN missing fails; THEN=m where y is needed fails.
            (
                format!("{base}CONFIG_WHEN=y\n"),
                Level::Docker,
                &["CONFIG_THEN"],
                &[],
            ),
            (
                format!("{base}CONFIG_WHEN=m\nCONFIG_THEN=m\n"),
                Level::Docker,
                &["CONFIG_THEN"],
                &[],
            ),
            (
                format!("{base}CONFIG_WHEN=y\nCONFIG_THEN=y\n"),
                Level::Docker,
                &[],
                &[],
            ),
            // Dependent with WHEN off: not applicable, even if THEN is missing.
            (
                format!("{base}# CONFIG_WHEN is not set\n"),
                Level::Docker,
                &[],
                &[],
            ),
            // Level-specific rule.
            (
                base.to_string(),
                Level::Kubernetes,
                &["CONFIG_KUBE_ONLY"],
                &[],
            ),
            (
                format!("{base}CONFIG_KUBE_ONLY=m\n"),
                Level::Kubernetes,
                &[],
                &[],
            ),
        ];
        for (text, level, want, want_opt) in cases {
            let r = check_rules(&cfg(&text), level, T);
            assert_eq!(r.missing, want, "{text} at {level}");
            assert_eq!(r.optional_missing, want_opt, "{text} at {level}");
            assert_eq!(r.ok, want.is_empty());
        }
    }

    #[test]
    fn not_applicable_and_builtin_hint_in_table() {
        let r = check_rules(&cfg("CONFIG_BOOL=m\n"), Level::Docker, T);
        let t = r.table();
        assert!(t.contains("m (must be y)"), "{t}");
        assert!(t.contains("n/a"), "{t}");
        assert!(t.contains("NOT met"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(j["ok"], false);
        assert_eq!(j["level"], "docker");
        assert_eq!(j["missing"][0], "CONFIG_BOOL");
    }

    #[test]
    fn table_has_no_duplicate_rules() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            assert!(
                seen.insert(format!("{:?}", r.kind)),
                "duplicate {:?}",
                r.kind
            );
            assert!(
                r.required & r.optional == 0,
                "{:?} both required and optional",
                r.kind
            );
            assert!(r.required | r.optional != 0, "{:?} at no level", r.kind);
        }
    }

    #[test]
    fn levels_parse() {
        assert_eq!("podman".parse::<Level>().unwrap(), Level::Podman);
        assert!("lxc".parse::<Level>().unwrap_err().contains("lxc"));
    }
}
