//! The cloud-init NoCloud seed on an image's boot partition: `user-data` (#cloud-config),
//! `meta-data` and `network-config` (version 2).
//!
//! [`Seed::default_for`] renders the seed an image ships with (the image assembler writes it);
//! [`Seed::apply`] merges per-device [`Changes`] into an existing seed (`drydock configure` and
//! `drydock flash`): settings that are not given stay as they are, and a file nothing changed in is
//! returned byte for byte as it was read. Pure: no I/O; reading and writing the files on a FAT
//! partition is the caller's job.
//!
//! Whenever user-data or network-config changes, meta-data's `instance-id` changes with it (it is
//! derived from their contents), so cloud-init applies the new settings even on a card that has
//! booted before.

pub mod secrets;
pub mod validate;
pub mod yaml;

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use yaml::Node;

pub const USER_DATA: &str = "user-data";
pub const META_DATA: &str = "meta-data";
pub const NETWORK_CONFIG: &str = "network-config";
/// The seed's file names, in the order they are written.
pub const FILES: [&str; 3] = [USER_DATA, NETWORK_CONFIG, META_DATA];

/// Groups a user gets when drydock creates it.
pub const DEFAULT_GROUPS: &[&str] = &["adm", "sudo", "docker", "video", "plugdev", "users"];

/// What can be wrong with a seed or a change to it.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{file} on the boot partition is not valid YAML: {source}")]
    Yaml {
        file: &'static str,
        #[source]
        source: yaml::YamlError,
    },
    #[error("{file} on the boot partition: {reason}")]
    Unsupported { file: &'static str, reason: String },
    #[error("{0}")]
    Setting(String),
}

/// Per-device settings, validated and with secrets already hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub hostname: Option<String>,
    /// The login user (renames the seed's first user, or creates one).
    pub user: Option<String>,
    /// A crypt(3) hash (`$6$...`), never a plain password.
    pub password_hash: Option<String>,
    /// Replaces the user's authorized keys.
    pub ssh_keys: Option<Vec<String>>,
    pub wifi: Option<Wifi>,
    pub wifi_country: Option<String>,
    pub static_ip: Option<StaticIp>,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    /// A validated #cloud-config text that replaces user-data before the other settings apply.
    pub user_data: Option<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// One Wi-Fi network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wifi {
    pub ssid: String,
    /// The 64-hex-digit PSK (see [`secrets::wpa_psk`]); None for an open network.
    pub psk: Option<String>,
}

/// A static address on the wired interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    pub addr: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub dns: Vec<IpAddr>,
}

/// One seed file: the text read from the partition, the current text (replaced by --user-data),
/// and, once edited, the parsed document.
#[derive(Debug, Clone, Default)]
struct Doc {
    /// As read from the boot partition (None: absent).
    original: Option<String>,
    /// The text edits start from.
    text: Option<String>,
    /// The parsed document, once something edited it.
    node: Option<Node>,
}

impl Doc {
    fn from_text(text: Option<String>) -> Doc {
        Doc {
            original: text.clone(),
            text,
            node: None,
        }
    }

    /// The document for editing (parsed on first use; absent means an empty mapping).
    fn edit(&mut self, file: &'static str) -> Result<&mut Node, SeedError> {
        if self.node.is_none() {
            let node = match &self.text {
                None => Node::map(),
                Some(t) if file == USER_DATA => {
                    validate::user_data(file, t).map_err(|reason| SeedError::Unsupported {
                        file,
                        reason: format!(
                            "{}; drydock cannot merge settings into it (replace it with --user-data)",
                            reason.trim_start_matches("user-data: ")
                        ),
                    })?
                }
                Some(t) => yaml::parse(t).map_err(|source| SeedError::Yaml { file, source })?,
            };
            if !matches!(node, Node::Map(_)) {
                return Err(SeedError::Unsupported {
                    file,
                    reason: "not a YAML mapping".into(),
                });
            }
            self.node = Some(node);
        }
        Ok(self.node.get_or_insert_with(Node::map))
    }

    fn render(&self, header: &str) -> Option<String> {
        match &self.node {
            Some(n) => Some(format!("{header}{}", yaml::emit(n))),
            None => self.text.clone(),
        }
    }

    fn changed(&self, header: &str) -> bool {
        self.render(header) != self.original
    }
}

/// A cloud-init NoCloud seed.
#[derive(Debug, Clone, Default)]
pub struct Seed {
    user_data: Doc,
    meta_data: Doc,
    network_config: Doc,
}

const USER_DATA_HEADER: &str = "#cloud-config\n";

const NETWORK_CONFIG_DEFAULT: &str = "\
# cloud-init network configuration (version 2), applied at first boot.
# Wired: DHCP on eth0. Wi-Fi: `drydock configure IMAGE --wifi-ssid NAME --wifi-psk PASSPHRASE
# --wifi-country CC` writes it, or uncomment and edit:
#
# wifis:
#   wlan0:
#     dhcp4: true
#     optional: true
#     regulatory-domain: \"DE\"
#     access-points:
#       \"my-network\":
#         password: \"my-passphrase\"
version: 2
ethernets:
  eth0:
    dhcp4: true
    optional: true
";

impl Seed {
    /// A seed from the files found on a boot partition (any may be absent). Nothing is parsed until
    /// a change needs it, so a seed drydock cannot edit is only an error when something must change.
    pub fn from_files(
        user_data: Option<String>,
        meta_data: Option<String>,
        network_config: Option<String>,
    ) -> Seed {
        Seed {
            user_data: Doc::from_text(user_data),
            meta_data: Doc::from_text(meta_data),
            network_config: Doc::from_text(network_config),
        }
    }

    /// The seed an image ships with: user `user` with `password` (SHA-512 crypt, expired at first
    /// login), groups [`DEFAULT_GROUPS`], password-less sudo; hostname; root locked; DHCP on eth0
    /// with a commented Wi-Fi example. The password salt is derived from the three inputs, so the
    /// same inputs give the same bytes (reproducible images); use [`Seed::apply`] with a
    /// `password_hash` made from [`secrets::random_salt`] for a per-device secret.
    pub fn default_for(user: &str, password: &str, hostname: &str) -> Result<Seed, SeedError> {
        let user = validate::username(user).map_err(SeedError::Setting)?;
        let hostname = validate::hostname(hostname).map_err(SeedError::Setting)?;
        validate::password(password).map_err(SeedError::Setting)?;
        let mut h = Sha256::new();
        for part in ["drydock-seed-salt", &user, password, &hostname] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest = h.finalize();
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&digest[..16]);
        let hash = secrets::sha512_crypt(password, &secrets::salt_from_bytes(&salt))
            .map_err(SeedError::Setting)?;

        let groups = Node::Seq(DEFAULT_GROUPS.iter().map(|g| Node::str(*g)).collect());
        let ud = Node::Map(vec![
            (Node::str("hostname"), Node::str(&hostname)),
            (Node::str("manage_etc_hosts"), Node::bool(true)),
            (Node::str("users"), Node::Seq(vec![new_user(&user, groups)])),
            (
                Node::str("chpasswd"),
                Node::Map(vec![
                    (Node::str("expire"), Node::bool(true)),
                    (
                        Node::str("users"),
                        Node::Seq(vec![chpasswd_entry(&user, &hash)]),
                    ),
                ]),
            ),
            (Node::str("ssh_pwauth"), Node::bool(true)),
            (Node::str("disable_root"), Node::bool(true)),
        ]);
        let mut seed = Seed {
            user_data: Doc {
                original: None,
                text: None,
                node: Some(ud),
            },
            meta_data: Doc::default(),
            network_config: Doc::from_text(Some(NETWORK_CONFIG_DEFAULT.to_string())),
        };
        seed.refresh_meta_data(Some(&hostname))?;
        Ok(seed)
    }

    /// Replace network-config with a given text (validated as a version 2 YAML mapping).
    pub fn set_network_config(&mut self, text: &str) -> Result<(), SeedError> {
        let node = yaml::parse(text).map_err(|source| SeedError::Yaml {
            file: NETWORK_CONFIG,
            source,
        })?;
        network_root(&mut node.clone())?;
        self.network_config = Doc::from_text(Some(text.to_string()));
        self.refresh_meta_data(None)
    }

    /// `user-data` as it will be written.
    pub fn render_user_data(&self) -> String {
        self.user_data
            .render(USER_DATA_HEADER)
            .unwrap_or_else(|| format!("{USER_DATA_HEADER}{{}}\n"))
    }

    /// `meta-data` as it will be written.
    pub fn render_meta_data(&self) -> String {
        self.meta_data.render("").unwrap_or_default()
    }

    /// `network-config` as it will be written; None when the seed has none.
    pub fn render_network_config(&self) -> Option<String> {
        self.network_config.render("")
    }

    /// Every seed file that exists, with its content.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(USER_DATA, self.render_user_data())];
        if let Some(n) = self.render_network_config() {
            out.push((NETWORK_CONFIG, n));
        }
        out.push((META_DATA, self.render_meta_data()));
        out
    }

    /// The files whose content differs from what was read.
    pub fn changed_files(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (name, text) in self.files() {
            let doc = match name {
                USER_DATA => &self.user_data,
                NETWORK_CONFIG => &self.network_config,
                _ => &self.meta_data,
            };
            if doc.original.as_deref() != Some(text.as_str()) {
                out.push((name, text));
            }
        }
        out
    }

    /// Merge per-device settings into the seed.
    pub fn apply(&mut self, c: &Changes) -> Result<(), SeedError> {
        if let Some(text) = &c.user_data {
            validate::user_data("--user-data", text).map_err(SeedError::Setting)?;
            // Written verbatim unless another setting edits it below.
            self.user_data.text = Some(text.clone());
            self.user_data.node = None;
        }
        let mut hostname = None;
        if let Some(h) = &c.hostname {
            let ud = self.user_data.edit(USER_DATA)?;
            let short = h.split('.').next().unwrap_or(h);
            ud.set("hostname", Node::str(short));
            if h.contains('.') {
                ud.set("fqdn", Node::str(h));
            } else {
                ud.remove("fqdn");
            }
            if ud.get("manage_etc_hosts").is_none() {
                ud.set("manage_etc_hosts", Node::bool(true));
            }
            if ud.get("preserve_hostname").and_then(Node::as_bool) == Some(true) {
                ud.set("preserve_hostname", Node::bool(false));
            }
            hostname = Some(h.as_str());
        }
        if c.user.is_some() || c.password_hash.is_some() || c.ssh_keys.is_some() {
            self.apply_user(c)?;
        }
        if let Some(tz) = &c.timezone {
            self.user_data
                .edit(USER_DATA)?
                .set("timezone", Node::str(tz));
        }
        if let Some(l) = &c.locale {
            self.user_data.edit(USER_DATA)?.set("locale", Node::str(l));
        }
        if c.wifi.is_some() || c.wifi_country.is_some() || c.static_ip.is_some() {
            self.apply_network(c)?;
        }
        self.refresh_meta_data(hostname)
    }

    fn apply_user(&mut self, c: &Changes) -> Result<(), SeedError> {
        let ud = self.user_data.edit(USER_DATA)?;
        let unsupported = |reason: &str| SeedError::Unsupported {
            file: USER_DATA,
            reason: reason.to_string(),
        };
        if ud.get("users").is_none_or_null() {
            ud.set("users", Node::Seq(Vec::new()));
        }
        let Some(Node::Seq(users)) = ud.get_mut("users") else {
            return Err(unsupported(
                "`users` is not a list; drydock can only edit a list of users",
            ));
        };
        let name_of = |n: &Node| n.get("name").and_then(Node::as_str).map(str::to_string);
        let idx = match &c.user {
            Some(want) => users
                .iter()
                .position(|u| name_of(u).as_deref() == Some(want))
                .or_else(|| users.iter().position(|u| name_of(u).is_some())),
            None => users.iter().position(|u| name_of(u).is_some()),
        };
        let idx = match (idx, &c.user) {
            (Some(i), _) => i,
            (None, Some(name)) => {
                let groups = Node::Seq(DEFAULT_GROUPS.iter().map(|g| Node::str(*g)).collect());
                users.push(new_user(name, groups));
                users.len() - 1
            }
            (None, None) => {
                return Err(SeedError::Setting(
                    "the image's user-data defines no user to set a password or SSH key for; pass --user NAME".into(),
                ))
            }
        };
        let entry = &mut users[idx];
        let old_name = name_of(entry).unwrap_or_default();
        let name = c.user.clone().unwrap_or_else(|| old_name.clone());
        entry.set("name", Node::str(&name));
        if let Some(keys) = &c.ssh_keys {
            entry.set(
                "ssh_authorized_keys",
                Node::Seq(keys.iter().map(Node::str).collect()),
            );
        }
        if c.password_hash.is_some() {
            for k in ["passwd", "hashed_passwd", "plain_text_passwd"] {
                entry.remove(k);
            }
            entry.set("lock_passwd", Node::bool(false));
        }
        // chpasswd: rename the user's entries, set the new password.
        let has_chpasswd = ud.get("chpasswd").is_some();
        if has_chpasswd || c.password_hash.is_some() {
            let Some(chp) = ud.map_entry("chpasswd") else {
                return Err(unsupported("`chpasswd` is not a mapping"));
            };
            if let Some(Node::Seq(list)) = chp.get_mut("users") {
                for u in list.iter_mut() {
                    if name_of(u).as_deref() == Some(old_name.as_str()) {
                        u.set("name", Node::str(&name));
                    }
                }
            }
            if let Some(hash) = &c.password_hash {
                if chp.get("users").is_none_or_null() {
                    chp.set("users", Node::Seq(Vec::new()));
                }
                let Some(Node::Seq(list)) = chp.get_mut("users") else {
                    return Err(unsupported("`chpasswd.users` is not a list"));
                };
                list.retain(|u| name_of(u).as_deref() != Some(name.as_str()));
                list.push(chpasswd_entry(&name, hash));
                // The legacy `list` form must not set another password for the same user.
                let prefixes = [format!("{name}:"), format!("{old_name}:")];
                match chp.get_mut("list") {
                    Some(Node::Seq(l)) => l.retain(|x| {
                        !x.as_str()
                            .is_some_and(|s| prefixes.iter().any(|p| s.starts_with(p.as_str())))
                    }),
                    Some(n @ Node::Scalar(_)) => {
                        let kept: Vec<&str> = n
                            .as_str()
                            .unwrap_or("")
                            .lines()
                            .filter(|l| !prefixes.iter().any(|p| l.trim().starts_with(p.as_str())))
                            .collect();
                        *n = Node::str(kept.join("\n"));
                    }
                    _ => {}
                }
                // A password chosen for this device is not expired at first login.
                chp.set("expire", Node::bool(false));
            }
        }
        Ok(())
    }

    fn apply_network(&mut self, c: &Changes) -> Result<(), SeedError> {
        let root = self.network_config.edit(NETWORK_CONFIG)?;
        let net = network_root(root)?;
        let unsupported = |reason: String| SeedError::Unsupported {
            file: NETWORK_CONFIG,
            reason,
        };
        if let Some(w) = &c.wifi {
            let Some(wifis) = net.map_entry("wifis") else {
                return Err(unsupported("`wifis` is not a mapping".into()));
            };
            let iface = first_key(wifis).unwrap_or_else(|| "wlan0".into());
            let Some(entry) = wifis.map_entry(&iface) else {
                return Err(unsupported(format!("`wifis.{iface}` is not a mapping")));
            };
            if entry.get("dhcp4").is_none() && entry.get("addresses").is_none() {
                entry.set("dhcp4", Node::bool(true));
            }
            if entry.get("optional").is_none() {
                entry.set("optional", Node::bool(true));
            }
            let ap = match &w.psk {
                Some(psk) => Node::Map(vec![(Node::str("password"), Node::str(psk))]),
                None => Node::map(),
            };
            entry.set("access-points", Node::Map(vec![(Node::str(&w.ssid), ap)]));
        }
        if let Some(cc) = &c.wifi_country {
            let iface = net.get("wifis").and_then(first_key).ok_or_else(|| {
                SeedError::Setting(
                    "--wifi-country needs a Wi-Fi network: pass --wifi-ssid (the image's network-config has none)".into(),
                )
            })?;
            let Some(entry) = net.map_entry("wifis").and_then(|w| w.map_entry(&iface)) else {
                return Err(unsupported(format!("`wifis.{iface}` is not a mapping")));
            };
            entry.set("regulatory-domain", Node::str(cc));
        }
        if let Some(s) = &c.static_ip {
            let Some(eths) = net.map_entry("ethernets") else {
                return Err(unsupported("`ethernets` is not a mapping".into()));
            };
            let iface = first_key(eths).unwrap_or_else(|| "eth0".into());
            let Some(entry) = eths.map_entry(&iface) else {
                return Err(unsupported(format!("`ethernets.{iface}` is not a mapping")));
            };
            let v4 = s.addr.is_ipv4();
            entry.set(if v4 { "dhcp4" } else { "dhcp6" }, Node::bool(false));
            entry.set(
                "addresses",
                Node::Seq(vec![Node::str(format!("{}/{}", s.addr, s.prefix))]),
            );
            if let Some(gw) = s.gateway {
                entry.remove("gateway4");
                entry.remove("gateway6");
                let to = if v4 { "0.0.0.0/0" } else { "::/0" };
                entry.set(
                    "routes",
                    Node::Seq(vec![Node::Map(vec![
                        (Node::str("to"), Node::str(to)),
                        (Node::str("via"), Node::str(gw.to_string())),
                    ])]),
                );
            }
            if !s.dns.is_empty() {
                entry.set(
                    "nameservers",
                    Node::Map(vec![(
                        Node::str("addresses"),
                        Node::Seq(s.dns.iter().map(|d| Node::str(d.to_string())).collect()),
                    )]),
                );
            }
        }
        Ok(())
    }

    /// Keep meta-data in step: `instance-id` derived from user-data and network-config (so it
    /// changes when they do), `local-hostname` when a hostname is set.
    fn refresh_meta_data(&mut self, hostname: Option<&str>) -> Result<(), SeedError> {
        let changed = self.user_data.changed(USER_DATA_HEADER)
            || self.network_config.changed("")
            || hostname.is_some();
        if !changed && self.meta_data.text.is_some() {
            return Ok(());
        }
        let mut h = Sha256::new();
        h.update(self.render_user_data().as_bytes());
        h.update([0]);
        h.update(self.render_network_config().unwrap_or_default().as_bytes());
        let id = format!("drydock-{}", &hex::encode(h.finalize())[..16]);
        let md = self.meta_data.edit(META_DATA)?;
        md.set("instance-id", Node::str(id));
        if let Some(name) = hostname {
            md.set("local-hostname", Node::str(name));
        }
        Ok(())
    }
}

trait NodeExt {
    fn is_none_or_null(&self) -> bool;
}

impl NodeExt for Option<&Node> {
    fn is_none_or_null(&self) -> bool {
        self.map_or(true, Node::is_null)
    }
}

fn new_user(name: &str, groups: Node) -> Node {
    Node::Map(vec![
        (Node::str("name"), Node::str(name)),
        (Node::str("gecos"), Node::str(name)),
        (Node::str("groups"), groups),
        (Node::str("shell"), Node::str("/bin/bash")),
        (Node::str("sudo"), Node::str("ALL=(ALL) NOPASSWD:ALL")),
        (Node::str("lock_passwd"), Node::bool(false)),
    ])
}

fn chpasswd_entry(name: &str, hash: &str) -> Node {
    Node::Map(vec![
        (Node::str("name"), Node::str(name)),
        (Node::str("password"), Node::str(hash)),
        (Node::str("type"), Node::str("hash")),
    ])
}

fn first_key(n: &Node) -> Option<String> {
    match n {
        Node::Map(e) => e.first().and_then(|(k, _)| k.as_str()).map(str::to_string),
        _ => None,
    }
}

/// The mapping that holds `version: 2` (the document, or its `network:` key); version 2 is set
/// on an empty document.
fn network_root(doc: &mut Node) -> Result<&mut Node, SeedError> {
    let wrapped = doc.get("network").is_some();
    let net = if wrapped {
        doc.get_mut("network")
            .filter(|n| matches!(n, Node::Map(_)))
            .ok_or_else(|| SeedError::Unsupported {
                file: NETWORK_CONFIG,
                reason: "`network` is not a mapping".into(),
            })?
    } else {
        doc
    };
    match net.get("version").map(|v| match v {
        Node::Scalar(s) => s.value.clone(),
        _ => String::new(),
    }) {
        None => {
            if let Node::Map(e) = net {
                e.insert(0, (Node::str("version"), Node::plain("2")));
            }
        }
        Some(v) if v == "2" => {}
        Some(v) => {
            return Err(SeedError::Unsupported {
                file: NETWORK_CONFIG,
                reason: format!(
                    "network config version {v}: drydock edits version 2 only (replace the file or drop the network settings)"
                ),
            })
        }
    }
    Ok(net)
}

#[cfg(test)]
mod tests;
