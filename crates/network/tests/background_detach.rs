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
    let mut req = env.request("c1", &[&net], &[]);
    req.background_detach = true;
    let att = env.networks.attach(&req).unwrap();
    assert!(!leftovers(&att, &ipam_dir(&env)).is_empty());

    let detached = env.networks.detach(&att.container_id).unwrap();
    assert_eq!(detached.as_ref(), Some(&att));
    assert!(
        env.networks.detached_in_background(&att.container_id),
        "a child process has the teardown"
    );
    // The caller goes on: detaching again from here does not wait for the child.
    env.networks.detach(&att.container_id).unwrap();

    // Whoever takes the networks lock next waits for the child: once this
    // attach is through, nothing of c1 is left.
    let next = env.attach("c2", &[&net], &[]);
    assert_eq!(leftovers(&att, &ipam_dir(&env)), Vec::<String>::new());
    assert_eq!(
        env.networks.attachment(&att.container_id).unwrap(),
        None::<Attachment>
    );
    env.networks.detach(&next.container_id).unwrap();
    println!("background detach: ok");
}
