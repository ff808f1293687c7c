//! A registry that goes quiet: the pull reports `Waiting` with how long, ends
//! within the client's timeouts naming what did not arrive, and leaves the store
//! as it was; a registry that is slow but keeps sending is waited for.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use basic_image_store::{
    Fetching, ImageStore, LayerFailure, PullError, PullEvent, PullOptions, PullReport, pull,
};
use basic_registry::{Reference, RegistryClient, RegistryError, Stall, Timeouts};
use basic_test_support::fake_registry::{FakeImage, FakeServer, Part, Reply, Request};
use basic_test_support::require_root;
use support::{layer_dirs, wait_tmp_empty};

/// One second of silence fails an attempt, three without progress a fetch.
fn client() -> RegistryClient {
    RegistryClient::builder()
        .timeouts(Timeouts {
            connect: Duration::from_secs(1),
            idle: Duration::from_secs(1),
            total: Duration::from_secs(3),
        })
        .build()
        .unwrap()
}

fn options() -> PullOptions {
    PullOptions::default().waiting_after(Duration::from_millis(300))
}

async fn pull_from(
    store: &ImageStore,
    server: &FakeServer,
) -> (Result<PullReport, PullError>, Vec<PullEvent>) {
    let events = Mutex::new(Vec::new());
    let reference = Reference::parse(&format!("{}/test/app:latest", server.host())).unwrap();
    let result = pull(store, &client(), &reference, &options(), |e| {
        events.lock().unwrap().push(e)
    })
    .await;
    (result, events.into_inner().unwrap())
}

/// The silences reported while fetching `what`.
fn waits(events: &[PullEvent], what: &Fetching) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Waiting { fetching, silent } if fetching == what => Some(*silent),
            _ => None,
        })
        .collect()
}

async fn assert_untouched(store: &ImageStore) {
    assert!(store.images().unwrap().is_empty());
    assert!(layer_dirs(store).is_empty());
    assert!(wait_tmp_empty(store).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_manifest_is_reported_waiting_then_times_out() {
    if !require_root() {
        return;
    }
    let server = FakeServer::start(|_: &Request| Reply::Silent).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let started = Instant::now();
    let (result, events) = pull_from(&store, &server).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = result.unwrap_err();
    let PullError::Resolve {
        source: RegistryError::TimedOut { what, stall, .. },
        ..
    } = &err
    else {
        panic!("expected a timeout resolving: {err:?}");
    };
    assert_eq!(what, "manifest test/app:latest");
    assert_eq!(*stall, Stall::Answer);
    let silences = waits(&events, &Fetching::Manifest);
    assert!(silences.len() >= 2, "{events:?}");
    assert!(silences[0] >= Duration::from_millis(300));
    assert!(silences.windows(2).all(|w| w[0] < w[1]), "{silences:?}");
    assert_untouched(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_that_stops_part_way_times_out_naming_its_digest() {
    if !require_root() {
        return;
    }
    let payload: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let image = FakeImage::new(&[("data.bin", &payload)]);
    let layer = image.layer_digest();
    let server = FakeServer::start({
        let image = image.clone();
        move |req: &Request| match image.part(req) {
            Some(Part::Layer) if req.header("range").is_some() => Reply::Silent,
            Some(Part::Layer) => Reply::Slow {
                status: 200,
                headers: vec![],
                body: image.layer.clone(),
                chunk: image.layer.len() / 2,
                pause: Duration::from_secs(3600),
            },
            _ => image.reply(req),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let (result, events) = pull_from(&store, &server).await;
    let err = result.unwrap_err();
    match &err {
        PullError::Layer {
            digest,
            source: LayerFailure::Download(RegistryError::TimedOut { what, .. }),
            ..
        } => {
            assert_eq!(digest, &layer);
            assert_eq!(what, &format!("blob {layer} of test/app"));
        }
        other => panic!("expected the layer to time out: {other:?}"),
    }
    let fetching = Fetching::Layer {
        digest: layer.clone(),
    };
    assert!(!waits(&events, &fetching).is_empty(), "{events:?}");
    assert_untouched(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_layer_completes_and_its_pauses_are_reported() {
    if !require_root() {
        return;
    }
    let payload: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let image = FakeImage::new(&[("data.bin", &payload)]);
    let server = FakeServer::start({
        let image = image.clone();
        move |req: &Request| match image.part(req) {
            // Six pieces, 800 ms apart: under the idle timeout each time, and
            // four seconds in all, past the total (3 s), which progress restarts.
            Some(Part::Layer) => Reply::Slow {
                status: 200,
                headers: vec![],
                body: image.layer.clone(),
                chunk: image.layer.len().div_ceil(6),
                pause: Duration::from_millis(800),
            },
            _ => image.reply(req),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let (result, events) = pull_from(&store, &server).await;
    let report = result.unwrap();
    assert_eq!(report.image_id, image.config_digest());
    let fetching = Fetching::Layer {
        digest: image.layer_digest(),
    };
    let silences = waits(&events, &fetching);
    assert!(!silences.is_empty(), "{events:?}");
    assert!(
        silences.iter().all(|s| *s >= Duration::from_millis(300)),
        "{silences:?}"
    );
}
