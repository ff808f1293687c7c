//! Steady-state sampling allocates nothing: a counting global allocator
//! watches container (v1, v2 and a recorded v2 kernel, with network; a
//! recorded /proc as a process tree) and host
//! sampling into reused values, after one warm-up round.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use basic_monitor::{ContainerSampler, ContainerStats, HostSampler, HostStats};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System with this layout (every allocation here does).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for dealloc, and the caller's contract for the new size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_sampling_does_not_allocate() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut v1 =
        ContainerSampler::v1(&data.join("v1"), "/").with_network(&data.join("proc"), 13477);
    let mut v2 = ContainerSampler::v2(&data.join("v2"), "/");
    let mut recorded = recorded_v2(&data);
    let mut tree = ContainerSampler::for_process_tree(&data.join("proc"), 13477).unwrap();
    let mut host = HostSampler::new(data.join("proc"), data.join("no-sys"));
    let mut live_host = HostSampler::new("/proc", "/sys");
    let [mut s1, mut s2, mut s3, mut s4] = [(); 4].map(|()| ContainerStats::default());
    let mut pids = Vec::new();
    let (mut h, mut lh) = (HostStats::default(), HostStats::default());
    let mut round = || {
        v1.sample_into(&mut s1).unwrap();
        v2.sample_into(&mut s2).unwrap();
        recorded.sample_into(&mut s3).unwrap();
        tree.sample_into(&mut s4).unwrap();
        tree.pids(&mut pids).unwrap();
        host.sample_into(&mut h).unwrap();
        live_host.sample_into(&mut lh).unwrap();
    };
    round();
    // The live host may grow meanwhile (other tests add interfaces and mounts), and its
    // sampler's buffers with it: a window of 100 rounds without one allocation is the
    // steady state. A sampler that allocates on every sample never gets one.
    let mut windows = Vec::new();
    for _ in 0..5 {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..100 {
            round();
        }
        windows.push(ALLOCATIONS.load(Ordering::Relaxed) - before);
        if windows.last() == Some(&0) {
            break;
        }
    }
    assert_eq!(
        windows.last(),
        Some(&0),
        "allocations in each window of 100 steady-state rounds: {windows:?}"
    );
    assert!(s1.network.is_some() && s2.memory.is_some() && s3.network.is_some());
    assert!(s4.memory.is_some() && pids == [13477]);
}

/// The first recording of a real v2 kernel, sampled from its burner's PID.
fn recorded_v2(data: &Path) -> ContainerSampler {
    let dir = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("v2-recorded-"))
        .expect("a v2-recorded-* directory");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let pid = expected["pids"]["burner"].as_i64().unwrap() as i32;
    ContainerSampler::for_pid(&dir.join("proc"), &dir.join("cgroup"), pid).unwrap()
}
