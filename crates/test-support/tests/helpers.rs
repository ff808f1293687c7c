//! The helpers themselves work: a static program runs, a pushed image is in the registry.

use basic_test_support::image::ImageBuilder;
use basic_test_support::programs::static_program;

#[test]
fn a_static_program_runs_without_a_c_library() {
    let Some(program) = static_program(
        "hello",
        "#include <stdio.h>\nint main(void) { puts(\"hello from C\"); return 3; }\n",
    ) else {
        return;
    };
    let out = std::process::Command::new(&program).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from C\n");
    let file = std::process::Command::new("file").arg(&program).output();
    if let Ok(file) = file {
        let text = String::from_utf8_lossy(&file.stdout);
        assert!(!text.contains("dynamically linked"), "{text}");
    }
}

#[test]
fn a_built_image_reaches_the_registry() {
    let Some(h) = basic_test_support::harness() else {
        return;
    };
    let reference = ImageBuilder::busybox()
        .layer(|l| {
            l.symlink("etc/hosts", "/outside");
        })
        .config("Cmd", serde_json::json!(["sh"]))
        .push(&h.open, "test-support/helpers");
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--config"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["config"]["Cmd"][0], "sh");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}
