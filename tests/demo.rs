//! `slo-gateway demo` runs the whole pipeline in-process: every simulated seed's series reach the
//! sink under its own certificate identity, and the run stops by itself.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use slo_gateway::demo::{run, DemoArgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pushes_every_seed_through_the_receiver() {
    slo_gateway::tls::install_default_crypto_provider();
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        run(DemoArgs {
            duration: Some(Duration::from_secs(4)),
            forward_url: None,
            seeds: 2,
            shoots: 3,
            interval: Duration::from_millis(500),
        }),
    )
    .await
    .expect("the demo stops after --duration")
    .unwrap();
    assert_eq!(summary.seeds.len(), 2);
    for (seed, sent, bytes) in &summary.seeds {
        assert!(*sent > 0 && *bytes > 0, "{seed} sent nothing");
        let at_sink = summary
            .sink
            .get(seed)
            .unwrap_or_else(|| panic!("nothing at the sink for {seed}: {:?}", summary.sink));
        // 3 shoots × 7 series, each labelled with its own seed by the receiver.
        assert_eq!(at_sink.series, 21, "{seed}");
        assert_eq!(at_sink.samples, *sent, "{seed}: sink and agent disagree");
    }
    assert_eq!(
        summary.sink.len(),
        2,
        "no series under any other seed label: {:?}",
        summary.sink.keys()
    );
}
