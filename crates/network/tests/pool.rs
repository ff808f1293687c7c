//! The pool of prepared network namespaces, through the real CNI plugins: a
//! container taken from it gets its own names and files and a working
//! network, its teardown releases the entry's address, and what dead makers,
//! dead takers and deleted roots leave is reclaimed.

mod common;

use basic_network::Attachment;
use common::{Env, NETNS_DIR, ipam_dir, leftovers, ping, ping_by_name};

fn entries(env: &Env) -> Vec<Attachment> {
    env.networks.pool_entries().unwrap()
}

#[test]
fn a_container_takes_a_prepared_namespace_and_gives_back_its_address() {
    let Some(env) = Env::with_pool("pool", 21, 2) else {
        return;
    };
    assert_eq!(env.networks.fill_pool("bridge").unwrap(), 2);
    assert_eq!(env.networks.fill_pool("bridge").unwrap(), 0, "full");
    let prepared = entries(&env);
    assert_eq!(prepared.len(), 2);

    let mut req = env.request("web", &["bridge"], &[]);
    req.hostname = "webhost".into();
    let att = env.networks.attach(&req).unwrap();
    let entry = prepared
        .iter()
        .find(|e| Some(&e.container_id) == att.cni_container_id.as_ref())
        .expect("the attachment came from the pool");
    assert_eq!(att.container_id, env.id("web"));
    assert_eq!(att.ip(), entry.ip());
    assert_eq!(
        att.netns,
        std::path::Path::new(NETNS_DIR).join(env.id("web")),
        "the container's namespace has the container's name"
    );
    let kept = leftovers(entry, &ipam_dir(&env));
    assert!(
        kept.iter().any(|l| l.starts_with("link"))
            && kept.iter().any(|l| l.starts_with("host-local")),
        "the veth and address live on with the container: {kept:?}"
    );
    assert!(!entry.netns.exists(), "the entry's own name is gone");
    let hosts = std::fs::read_to_string(att.etc_files().unwrap().hosts).unwrap();
    assert!(
        hosts.contains(&format!("{}\twebhost", att.ip().unwrap())),
        "{hosts}"
    );
    assert!(!hosts.contains(&entry.container_id), "{hosts}");
    let gateway = att.networks[0].gateway.unwrap().to_string();
    assert!(ping(&att, &gateway), "the container reaches its gateway");
    assert_eq!(entries(&env).len(), 1, "one entry left");

    // Peers on a user-defined network see the names of the container, not the entry's.
    let net = env.create("front", "10.213.121.0/24");
    assert_eq!(env.networks.fill_pool(&net).unwrap(), 2);
    let mut a = env.request("alpha", &[&net], &[]);
    a.aliases = vec!["db".into()];
    let alpha = env.networks.attach(&a).unwrap();
    let beta = env.attach("beta", &[&net], &[]);
    assert!(alpha.cni_container_id.is_some() && beta.cni_container_id.is_some());
    assert!(ping_by_name(&beta, "alpha"));
    assert!(ping_by_name(&beta, "db"));

    // Detach releases what the entry's ADD allocated.
    for done in [&att, &alpha, &beta] {
        env.networks.detach(&done.container_id).unwrap();
        assert_eq!(leftovers(done, &ipam_dir(&env)), Vec::<String>::new());
    }
    // Removing a network drains its entries; draining the rest leaves nothing.
    env.networks.fill_pool(&net).unwrap();
    let front: Vec<Attachment> = entries(&env)
        .into_iter()
        .filter(|e| e.networks[0].network == net)
        .collect();
    assert!(!front.is_empty());
    env.networks.remove(&net).unwrap();
    for e in &front {
        assert_eq!(leftovers(e, &ipam_dir(&env)), Vec::<String>::new());
    }
    let rest = entries(&env);
    env.networks.drain_pool(None).unwrap();
    assert!(entries(&env).is_empty());
    for e in &rest {
        assert_eq!(leftovers(e, &ipam_dir(&env)), Vec::<String>::new());
    }
}

#[test]
fn requests_an_entry_does_not_fit_attach_as_usual() {
    let Some(env) = Env::with_pool("poolfit", 22, 1) else {
        return;
    };
    env.networks.fill_pool("bridge").unwrap();
    let published = env.attach("pub", &["bridge"], &["127.0.0.1::80"]);
    assert_eq!(published.cni_container_id, None, "ports: not from the pool");
    let net = env.create("other", "10.213.122.0/24");
    let two = env.attach("two", &["bridge", &net], &[]);
    assert_eq!(
        two.cni_container_id, None,
        "two networks: not from the pool"
    );
    assert_eq!(entries(&env).len(), 1, "the entry is still there");
    for att in [&published, &two] {
        env.networks.detach(&att.container_id).unwrap();
        assert_eq!(leftovers(att, &ipam_dir(&env)), Vec::<String>::new());
    }
}

#[test]
fn what_dead_makers_and_takers_leave_is_reclaimed() {
    let Some(env) = Env::with_pool("poolkill", 23, 1) else {
        return;
    };
    let pool_dir = env.networks.config().dir.join("pool");
    // A maker killed after its ADD, before it recorded the result: the record says
    // nothing was allocated yet, but the plugins did allocate.
    env.networks.fill_pool("bridge").unwrap();
    let half = entries(&env).remove(0);
    let mut unfinished = half.clone();
    unfinished.networks[0].result = None;
    let record = pool_dir.join(format!("{}.json", half.container_id));
    std::fs::write(&record, serde_json::to_vec(&unfinished).unwrap()).unwrap();
    assert!(!leftovers(&half, &ipam_dir(&env)).is_empty());
    let c = env.attach("c", &["bridge"], &[]);
    assert_eq!(
        c.cni_container_id, None,
        "an unfinished entry is never taken"
    );
    env.networks.fill_pool("bridge").unwrap();
    assert_eq!(
        leftovers(&half, &ipam_dir(&env)),
        Vec::<String>::new(),
        "the next fill tore it down, releasing its address"
    );
    assert_eq!(entries(&env).len(), 1, "and made a new one");

    // A taker killed after the container's record was written, before it forgot the entry.
    let ready = entries(&env).remove(0);
    let d = env.attach("d", &["bridge"], &[]);
    assert_eq!(d.cni_container_id.as_ref(), Some(&ready.container_id));
    let record = pool_dir.join(format!("{}.json", ready.container_id));
    std::fs::write(&record, serde_json::to_vec(&ready).unwrap()).unwrap();
    env.networks.fill_pool("bridge").unwrap();
    assert!(
        entries(&env)
            .iter()
            .all(|e| e.container_id != ready.container_id),
        "forgotten"
    );
    let gateway = d.networks[0].gateway.unwrap().to_string();
    assert!(
        ping(&d, &gateway),
        "and not torn down: the container still has it"
    );
    for att in [&c, &d] {
        env.networks.detach(&att.container_id).unwrap();
        assert_eq!(leftovers(att, &ipam_dir(&env)), Vec::<String>::new());
    }
}

#[test]
fn the_namespaces_of_a_deleted_root_are_reclaimed_by_the_next_fill() {
    let Some(doomed) = Env::with_pool("pooldoomed", 24, 1) else {
        return;
    };
    doomed.networks.fill_pool("bridge").unwrap();
    let orphan = entries(&doomed).remove(0);
    let veth = orphan.networks[0].host_interface.clone().unwrap();
    std::fs::remove_dir_all(&doomed.networks.config().dir).unwrap();
    // The root is gone with its records; its namespace is still mounted.
    assert!(orphan.netns.exists());
    let Some(other) = Env::with_pool("poolnext", 25, 1) else {
        return;
    };
    other.networks.fill_pool("bridge").unwrap();
    assert!(!orphan.netns.exists(), "the orphan namespace is unmounted");
    // The kernel destroys an unmounted namespace (and the veth end in it, which takes
    // its peer) from a work queue, moments later.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while common::output("ip", &["-o", "link"]).contains(&format!(" {veth}@")) {
        assert!(
            std::time::Instant::now() < until,
            "its veth {veth} did not go with it within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(doomed);
}
