//! Source-mode configuration on Debian's real linux-source tree (networked: the package comes from
//! the mirror once and is unpacked into the shared cache's aux folder; run by scripts/test.sh).
//! An option no Kconfig defines is a warning naming it; a value Kconfig drops is an error naming it.

use kernel_packager::builder::prepare;
use kernel_packager::mirror::{Mirror, DEBIAN_KEYRING};
use kernel_packager::readiness::Level;
use kernel_packager::source::Make;
use kernel_packager::spec::{shipped_fragment, Fragment, KernelSpec, Mode, SourceSpec, Tree};
use kernel_packager::Error;

fn spec() -> KernelSpec {
    KernelSpec {
        name: "kernel-configure-test".into(),
        board: "configure-test".into(),
        arch: "arm64".into(),
        mirror: Mirror {
            url: "http://deb.debian.org/debian".into(),
            suite: "trixie".into(),
            components: vec!["main".into()],
            arch: "arm64".into(),
            keyring: DEBIAN_KEYRING.into(),
        },
        mode: Mode::Source(SourceSpec {
            tree: Tree::Debian("linux-source".parse().unwrap()),
            defconfig: "tinyconfig".into(),
            fragments: vec![],
        }),
        board_package: None,
        readiness: Some(Level::Docker),
    }
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn unknown_option_warns_and_dropped_value_fails() {
    let store = artifact::Store::open(artifact::Store::default_root()).unwrap();
    let work = store.aux_dir("kernel").unwrap();
    let p = prepare(spec(), &work).unwrap();
    let tree = p.source_tree().unwrap();
    let obj = tempfile::tempdir().unwrap();
    let make = Make {
        tree,
        obj: obj.path().join("obj"),
        arch: "arm64".into(),
        cross_compile: "aarch64-linux-gnu-".into(),
        localversion: "-test".into(),
        jobs: 2,
    };
    let unknown = Fragment {
        name: "extra".into(),
        text: "CONFIG_DRYDOCK_NO_SUCH_OPTION=y\n".into(),
    };
    let c = make
        .configure(
            "tinyconfig",
            &[shipped_fragment("containers").unwrap(), unknown],
        )
        .unwrap();
    assert_eq!(c.fragments.unknown.len(), 1, "{:?}", c.fragments);
    assert_eq!(
        c.fragments.unknown[0].option,
        "CONFIG_DRYDOCK_NO_SUCH_OPTION"
    );
    assert_eq!(c.fragments.unknown[0].fragment, "extra");
    assert!(c.fragments.dropped.is_empty(), "{:?}", c.fragments.dropped);
    assert!(c.config.is_enabled("OVERLAY_FS"));

    let dropped = Fragment {
        name: "veth-only".into(),
        text: "CONFIG_VETH=y\nCONFIG_OVERLAY_FS=y\n".into(),
    };
    let e = make.configure("tinyconfig", &[dropped]).unwrap_err();
    let Error::FragmentDropped { issues } = &e else {
        panic!("expected FragmentDropped, got {e}")
    };
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].contains("CONFIG_VETH") && issues[0].contains("veth-only:1"),
        "{issues:?}"
    );
    assert!(e.is_bad_input());

    let e = make.configure("nosuchconfig", &[]).unwrap_err();
    assert!(e.to_string().contains("nosuchconfig"), "{e}");
}
