//! Baselines for `adapter_calls`, measured in the same run as Tidemark's figures: a minimal
//! component on bare wasmtime (warm call; fresh `Store` + instantiation from its
//! `InstancePre` + call), and one HTTP GET to a local server through the sandbox (the test
//! adapter's `http` probe, granted that server) next to the same GET made by the host with
//! reqwest, a new connection each time on both sides.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark::engine::ports::Hypervisor;
use tidemark::model::capabilities::Grants;
use tidemark::runtime::{EndpointSpec, Runtime};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// A component with one export, `ping() -> u32`, and nothing else.
const MINIMAL: &str = r#"(component
  (core module $m (func (export "ping") (result i32) i32.const 7))
  (core instance $i (instantiate $m))
  (func (export "ping") (result u32) (canon lift (core func $i "ping"))))"#;

pub fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Median per-call time of `call` in batches of 100, after a warm-up.
pub async fn per_call<F: AsyncFnMut()>(
    mut call: F,
    warmup: u32,
    samples: u32,
    batch: u32,
) -> Duration {
    for _ in 0..warmup {
        call().await;
    }
    let mut all = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let started = Instant::now();
        for _ in 0..batch {
            call().await;
        }
        all.push(started.elapsed() / batch);
    }
    percentile(&all, 50)
}

/// The minimal component on an engine configured as the product's (pooling, epochs).
pub async fn bare_wasmtime() -> (Duration, Duration) {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(512)
        .total_memories(256)
        .total_tables(512)
        .total_stacks(256);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).expect("engine");
    let wasm = wat::parse_str(MINIMAL).expect("the minimal component parses");
    let component = Component::new(&engine, wasm).expect("component");
    let linker = Linker::<()>::new(&engine);
    let pre = linker.instantiate_pre(&component).expect("pre");
    let new_store = || {
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        store
    };
    let mut store = new_store();
    let instance = pre.instantiate_async(&mut store).await.expect("instance");
    let ping = instance
        .get_typed_func::<(), (u32,)>(&mut store, "ping")
        .expect("ping");
    let warm = per_call(
        async || {
            std::hint::black_box(ping.call_async(&mut store, ()).await.expect("ping"));
        },
        2_000,
        1_000,
        100,
    )
    .await;
    let fresh = per_call(
        async || {
            let mut store = new_store();
            let instance = pre.instantiate_async(&mut store).await.expect("instance");
            let ping = instance
                .get_typed_func::<(), (u32,)>(&mut store, "ping")
                .expect("ping");
            std::hint::black_box(ping.call_async(&mut store, ()).await.expect("ping"));
        },
        200,
        3_000,
        1,
    )
    .await;
    (warm, fresh)
}

/// A local HTTP server answering every request with `200 ok` and closing.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

/// Per-request times of the same GET through the sandbox and from the host.
pub async fn http_requests() -> (Vec<Duration>, Vec<Duration>) {
    const REQUESTS: usize = 1_000;
    let port = http_server();
    let url = format!("http://127.0.0.1:{port}/");
    let adapters = tempfile::tempdir().expect("adapters dir");
    std::fs::copy(
        env!("TIDEMARK_MISBEHAVING_WASM"),
        adapters.path().join("prober.wasm"),
    )
    .expect("copying the test adapter");
    let runtime = Runtime::new(Some(adapters.path()), None)
        .await
        .expect("runtime");
    let settings = BTreeMap::from([
        ("behavior".to_string(), "http".to_string()),
        ("url".to_string(), url.clone()),
    ]);
    let spec = Arc::new(EndpointSpec {
        grants: Grants::parse(&[format!("http=127.0.0.1:{port}")]).expect("grant"),
        ..EndpointSpec::new(
            "bench-http",
            "prober",
            settings,
            adapters.path().to_path_buf(),
        )
        .expect("spec")
    });
    let mut session = runtime.open(spec).await.expect("session");
    let mut sandboxed = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS + 100 {
        let started = Instant::now();
        let hosts = session.list_hosts().await.expect("the probe");
        let elapsed = started.elapsed();
        assert_eq!(hosts[0].name, "200 ok");
        if i >= 100 {
            sandboxed.push(elapsed);
        }
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut direct = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS + 100 {
        let started = Instant::now();
        let answer = client.get(&url).send().await.expect("get");
        let body = answer.text().await.expect("body");
        let elapsed = started.elapsed();
        assert_eq!(body, "ok");
        if i >= 100 {
            direct.push(elapsed);
        }
    }
    (sandboxed, direct)
}
