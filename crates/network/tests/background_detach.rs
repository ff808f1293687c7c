//! `background_detach` in a process that can fork: this test runs on the
//! main thread of its own binary (`harness = false`), as the engine's
//! supervisor does; under libtest, tests run on threads and the hand-off is
//! refused (`live.rs` checks that case).

mod common;

use basic_network::Attachment;
use common::{Env, ipam_dir, leftovers};

fn main() {
    let Some(env) = Env::new("bg", 12) else {
        return;
    };
    let net = env.create("bg", "10.213.111.0/24");
    let attach_in_background = |name: &str, ports: &[&str]| {
        let mut req = env.request(name, &[&net], ports);
        req.background_detach = true;
        env.networks.attach(&req).unwrap()
    };
    let gone = |att: &Attachment| {
        assert_eq!(leftovers(att, &ipam_dir(&env)), Vec::<String>::new());
        assert_eq!(env.networks.attachment(&att.container_id).unwrap(), None);
    };

    let c1 = attach_in_background("c1", &["127.0.0.1::8080"]);
    assert!(!leftovers(&c1, &ipam_dir(&env)).is_empty());
    let detached = env.networks.detach(&c1.container_id).unwrap();
    assert_eq!(detached.as_ref(), Some(&c1));
    assert!(
        env.networks.detached_in_background(&c1.container_id),
        "a child process has the teardown"
    );
    // The caller goes on: detaching again from here does not wait for the child,
    // nor does attaching a container that publishes nothing.
    env.networks.detach(&c1.container_id).unwrap();
    let c2 = env.attach("c2", &[&net], &[]);
    // Publishing a port waits for teardowns that still hold ports.
    let c3 = env.attach("c3", &[&net], &["127.0.0.1::9090"]);
    gone(&c1);
    env.networks.detach(&c2.container_id).unwrap();
    env.networks.detach(&c3.container_id).unwrap();

    // Removing the network waits for the last container's teardown.
    let c4 = attach_in_background("c4", &[]);
    env.networks.detach(&c4.container_id).unwrap();
    assert!(env.networks.detached_in_background(&c4.container_id));
    env.networks.remove(&net).unwrap();
    gone(&c4);
    println!("background detach: ok");
}
