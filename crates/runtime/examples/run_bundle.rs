//! Runs an OCI bundle (a directory with config.json and its rootfs) in the foreground and
//! exits with the container's code: `run_bundle <bundle-dir> [container-id] [--init]`.

use std::path::PathBuf;

use basic_runtime::Container;

fn main() {
    // First, before any thread: no container may overwrite this program (CVE-2019-5736).
    if let Err(e) = basic_runtime::sealed_exe::ensure() {
        eprintln!("run_bundle: {e}");
        std::process::exit(125);
    }
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let init = args.iter().any(|a| a == "--init");
    args.retain(|a| a != "--init");
    let Some(bundle) = args.first().map(PathBuf::from) else {
        eprintln!("usage: run_bundle <bundle-dir> [container-id] [--init]");
        std::process::exit(2);
    };
    let id = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| format!("run-bundle-{}", std::process::id()));
    let result = Container::from_bundle(id, &bundle)
        .and_then(|b| b.init(init).build())
        .and_then(|c| c.run());
    match result {
        Ok(status) => {
            if status.oom_killed {
                eprintln!("run_bundle: container was OOM killed");
            }
            std::process::exit(status.exit_code());
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg += &format!(": {s}");
                src = s.source();
            }
            eprintln!("run_bundle: {msg}");
            std::process::exit(e.exit_code());
        }
    }
}
