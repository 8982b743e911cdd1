use super::*;

fn default_seed() -> Seed {
    Seed::default_for("pirate", "hypriot", "black-pearl").unwrap()
}

fn reread(seed: &Seed) -> Seed {
    Seed::from_files(
        Some(seed.render_user_data()),
        Some(seed.render_meta_data()),
        seed.render_network_config(),
    )
}

fn ud(seed: &Seed) -> Node {
    yaml::parse(&seed.render_user_data()).unwrap()
}

fn users(n: &Node) -> Vec<Node> {
    match n.get("users") {
        Some(Node::Seq(v)) => v.clone(),
        _ => panic!("no users"),
    }
}

#[test]
fn default_seed_has_user_password_hostname() {
    let s = default_seed();
    let text = s.render_user_data();
    assert!(text.starts_with("#cloud-config\n"), "{text}");
    let n = ud(&s);
    assert_eq!(n.get("hostname").unwrap().as_str(), Some("black-pearl"));
    let u = &users(&n)[0];
    assert_eq!(u.get("name").unwrap().as_str(), Some("pirate"));
    assert!(text.contains("- docker"), "{text}");
    let chp = n.get("chpasswd").unwrap();
    assert_eq!(chp.get("expire").unwrap().as_bool(), Some(true));
    let Some(Node::Seq(list)) = chp.get("users") else {
        panic!()
    };
    let hash = list[0].get("password").unwrap().as_str().unwrap();
    assert!(hash.starts_with("$6$"), "{hash}");
    assert!(!text.contains("hypriot"), "plain password in {text}");
    // The hash verifies against the password.
    let salt = hash.split('$').nth(2).unwrap();
    assert_eq!(secrets::sha512_crypt("hypriot", salt).unwrap(), hash);
    // Deterministic: same inputs, same bytes.
    assert_eq!(default_seed().files(), s.files());
    let md = yaml::parse(&s.render_meta_data()).unwrap();
    assert_eq!(
        md.get("local-hostname").unwrap().as_str(),
        Some("black-pearl")
    );
    assert!(md
        .get("instance-id")
        .unwrap()
        .as_str()
        .unwrap()
        .starts_with("drydock-"));
    let net = s.render_network_config().unwrap();
    assert!(net.contains("# wifis:") && net.contains("eth0"), "{net}");
}

#[test]
fn hostname_change_touches_only_what_it_must() {
    let mut s = reread(&default_seed());
    let before_md = s.render_meta_data();
    s.apply(&Changes {
        hostname: Some("node-7".into()),
        ..Default::default()
    })
    .unwrap();
    let changed: Vec<&str> = s.changed_files().iter().map(|(n, _)| *n).collect();
    assert_eq!(changed, vec![USER_DATA, META_DATA]);
    assert_eq!(ud(&s).get("hostname").unwrap().as_str(), Some("node-7"));
    let md = yaml::parse(&s.render_meta_data()).unwrap();
    assert_eq!(md.get("local-hostname").unwrap().as_str(), Some("node-7"));
    assert_ne!(s.render_meta_data(), before_md, "instance-id must change");
    // The password and user are untouched.
    assert_eq!(ud(&s).get("chpasswd"), ud(&default_seed()).get("chpasswd"));
    // Applying the same again changes nothing.
    let mut again = reread(&s);
    again
        .apply(&Changes {
            hostname: Some("node-7".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(
        again.changed_files().is_empty(),
        "{:?}",
        again.changed_files()
    );
}

#[test]
fn fqdn_sets_both() {
    let mut s = reread(&default_seed());
    s.apply(&Changes {
        hostname: Some("pi.example.com".into()),
        ..Default::default()
    })
    .unwrap();
    let n = ud(&s);
    assert_eq!(n.get("hostname").unwrap().as_str(), Some("pi"));
    assert_eq!(n.get("fqdn").unwrap().as_str(), Some("pi.example.com"));
}

#[test]
fn user_rename_password_and_keys() {
    let mut s = reread(&default_seed());
    let hash = secrets::sha512_crypt("s3cret", "abcdefgh").unwrap();
    s.apply(&Changes {
        user: Some("alice".into()),
        password_hash: Some(hash.clone()),
        ssh_keys: Some(vec!["ssh-ed25519 AAAA alice@laptop".into()]),
        ..Default::default()
    })
    .unwrap();
    let n = ud(&s);
    let us = users(&n);
    assert_eq!(us.len(), 1);
    assert_eq!(us[0].get("name").unwrap().as_str(), Some("alice"));
    assert!(us[0].get("groups").is_some(), "groups kept");
    let Some(Node::Seq(keys)) = us[0].get("ssh_authorized_keys") else {
        panic!()
    };
    assert_eq!(keys[0].as_str(), Some("ssh-ed25519 AAAA alice@laptop"));
    let chp = n.get("chpasswd").unwrap();
    let Some(Node::Seq(list)) = chp.get("users") else {
        panic!()
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].get("name").unwrap().as_str(), Some("alice"));
    assert_eq!(
        list[0].get("password").unwrap().as_str(),
        Some(hash.as_str())
    );
    assert_eq!(chp.get("expire").unwrap().as_bool(), Some(false));
    assert!(!s.render_user_data().contains("s3cret"));
}

#[test]
fn ssh_key_only_keeps_password() {
    let mut s = reread(&default_seed());
    s.apply(&Changes {
        ssh_keys: Some(vec!["ssh-ed25519 AAAA k".into()]),
        ..Default::default()
    })
    .unwrap();
    let n = ud(&s);
    assert_eq!(users(&n)[0].get("name").unwrap().as_str(), Some("pirate"));
    assert_eq!(n.get("chpasswd"), ud(&default_seed()).get("chpasswd"));
}

#[test]
fn no_user_in_seed_needs_user_flag() {
    let mut s = Seed::from_files(Some("#cloud-config\npackages: [vim]\n".into()), None, None);
    let e = s
        .apply(&Changes {
            ssh_keys: Some(vec!["ssh-ed25519 AAAA k".into()]),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("--user"), "{e}");
    s.apply(&Changes {
        user: Some("bob".into()),
        ssh_keys: Some(vec!["ssh-ed25519 AAAA k".into()]),
        ..Default::default()
    })
    .unwrap();
    let n = ud(&s);
    assert_eq!(users(&n)[0].get("name").unwrap().as_str(), Some("bob"));
    assert!(n.get("packages").is_some());
}

#[test]
fn wifi_country_static_ip() {
    let mut s = reread(&default_seed());
    s.apply(&Changes {
        wifi: Some(Wifi {
            ssid: "yes".into(),
            psk: Some(secrets::wpa_psk("yes", "password123")),
        }),
        wifi_country: Some("DE".into()),
        static_ip: Some(StaticIp {
            addr: "192.168.1.50".parse().unwrap(),
            prefix: 24,
            gateway: Some("192.168.1.1".parse().unwrap()),
            dns: vec!["1.1.1.1".parse().unwrap(), "9.9.9.9".parse().unwrap()],
        }),
        ..Default::default()
    })
    .unwrap();
    let changed: Vec<&str> = s.changed_files().iter().map(|(n, _)| *n).collect();
    assert_eq!(changed, vec![NETWORK_CONFIG, META_DATA]);
    let text = s.render_network_config().unwrap();
    let n = yaml::parse(&text).unwrap();
    assert_eq!(n.get("version").unwrap(), &Node::plain("2"));
    let w = n.get("wifis").unwrap().get("wlan0").unwrap();
    assert_eq!(w.get("regulatory-domain").unwrap().as_str(), Some("DE"));
    let ap = w.get("access-points").unwrap().get("yes").unwrap();
    assert_eq!(
        ap.get("password").unwrap().as_str().unwrap(),
        secrets::wpa_psk("yes", "password123")
    );
    assert!(
        text.contains("\"yes\":"),
        "an SSID that reads as a bool is quoted: {text}"
    );
    let e = n.get("ethernets").unwrap().get("eth0").unwrap();
    assert_eq!(e.get("dhcp4").unwrap().as_bool(), Some(false));
    assert!(text.contains("- 192.168.1.50/24"), "{text}");
    let r = &match e.get("routes") {
        Some(Node::Seq(r)) => r.clone(),
        _ => panic!("{text}"),
    }[0];
    assert_eq!(r.get("via").unwrap().as_str(), Some("192.168.1.1"));
    assert!(text.contains("- \"9.9.9.9\""), "{text}");
    assert!(!text.contains("password123"));
}

#[test]
fn country_without_wifi_is_refused() {
    let mut s = reread(&default_seed());
    let e = s
        .apply(&Changes {
            wifi_country: Some("DE".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("--wifi-ssid"), "{e}");
}

#[test]
fn network_v1_is_refused_with_reason() {
    let mut s = Seed::from_files(None, None, Some("version: 1\nconfig: []\n".into()));
    let e = s
        .apply(&Changes {
            wifi: Some(Wifi {
                ssid: "x".into(),
                psk: None,
            }),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("version 1"), "{e}");
    // Wrapped form is understood.
    let mut s = Seed::from_files(
        None,
        None,
        Some("network:\n  version: 2\n  ethernets: {}\n".into()),
    );
    s.apply(&Changes {
        wifi: Some(Wifi {
            ssid: "x".into(),
            psk: None,
        }),
        ..Default::default()
    })
    .unwrap();
    let n = yaml::parse(&s.render_network_config().unwrap()).unwrap();
    assert!(n.get("network").unwrap().get("wifis").is_some());
}

#[test]
fn user_data_replacement_is_verbatim_unless_edited() {
    let mut s = reread(&default_seed());
    let text = "#cloud-config\n# my comment\nwrite_files:\n  - path: /etc/x\n    permissions: 0644\n    content: hi\n";
    s.apply(&Changes {
        user_data: Some(text.into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.render_user_data(), text);
    // With a hostname on top, the octal permission stays a plain 0644 (PyYAML: 420).
    let mut s = reread(&default_seed());
    s.apply(&Changes {
        user_data: Some(text.into()),
        hostname: Some("h1".into()),
        ..Default::default()
    })
    .unwrap();
    let out = s.render_user_data();
    assert!(out.contains("permissions: 0644\n"), "{out}");
    assert!(out.contains("hostname: h1\n"), "{out}");
}

#[test]
fn script_user_data_is_only_an_error_when_edited() {
    let mut s = Seed::from_files(Some("#!/bin/sh\necho hi\n".into()), None, None);
    s.apply(&Changes {
        wifi: Some(Wifi {
            ssid: "x".into(),
            psk: None,
        }),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.render_user_data(), "#!/bin/sh\necho hi\n");
    let e = s
        .apply(&Changes {
            hostname: Some("a".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("--user-data"), "{e}");
}

#[test]
fn bad_defaults_are_refused() {
    assert!(Seed::default_for("Root", "x", "h").is_err());
    assert!(Seed::default_for("pirate", "", "h").is_err());
    assert!(Seed::default_for("pirate", "x", "-h").is_err());
}
