//! The emulator as a server: the control API's strictness, malformed bodies, the connection
//! limit, the header-read and idle timeouts, and the one-writer lock on the state file. Raw
//! TCP where a client library would hide what the server does.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mlpolicy_emulator::{Emulator, EmulatorConfig, EmulatorError, Limits, Realism};

async fn start(limits: Limits) -> Emulator {
    Emulator::start(EmulatorConfig { limits, ..EmulatorConfig::default() }).await.unwrap()
}

fn addr(emu: &Emulator) -> String {
    emu.base_url().trim_start_matches("http://").to_owned()
}

/// Sends raw bytes on a new connection and reads until the server closes it or `wait` passes.
/// Returns what was read and whether the server closed the connection.
fn raw(addr: &str, bytes: &[u8], wait: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    read_until_closed(&mut s, wait)
}

fn read_until_closed(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return (String::from_utf8_lossy(&out).into_owned(), false);
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), true),
        }
    }
}

async fn put(client: &reqwest::Client, url: String, body: &str) -> (u16, String) {
    let resp = client.put(url).body(body.to_owned()).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn realism_bodies_are_read_strictly_and_validated() {
    let emu = start(Limits::default()).await;
    let http = reqwest::Client::new();
    let url = || format!("{}/_emulator/realism", emu.base_url());
    for (body, expect) in [
        ("", "the body is empty"),
        ("  \n", "the body is empty"),
        ("{\"latency\": 5}", "unknown field `latency`"),
        ("{\"fault_rate\": 0.1,\n \"fault_rat\": 0.2}", "line 2 column"),
        ("{\"page_size\": \"ten\"}", "invalid type: string"),
        ("{\"fault_rate\": 1.5}", "`fault_rate` must be between 0 and 1, not 1.5"),
        ("{\"drop_rate\": -0.5}", "`drop_rate` must be between 0 and 1"),
        ("{\"latency_ms\": 3600000}", "`latency_ms` must be at most 60000 ms"),
        ("{\"page_size\": 1000000}", "`page_size` must be at most 10000"),
        ("{\"throttle\": {\"arm_read_capacity\": 0}}", "`throttle.arm_read_capacity` must be 1 to 1000000"),
        ("{\"throttle\": {\"graph_bucket\": 5}}", "unknown field `graph_bucket`"),
        ("[]", "must be a JSON object, not an array"),
        ("[0, 100]", "must be a JSON object, not an array"),
        ("null", "must be a JSON object, not null"),
        ("{\"throttle\": [1, 2]}", "`throttle` must be an object or null, not an array"),
        ("{\"fault_rate\": 0.1,", "EOF while parsing"),
    ] {
        let (status, text) = put(&http, url(), body).await;
        assert_eq!(status, 400, "{body:?}: {text}");
        assert!(text.contains(expect), "{body:?}: {text}");
        assert!(text.contains("InvalidRequestContent"), "{text}");
    }
    // Nothing was changed by the refused bodies; a valid one is taken whole.
    let now: Realism = http.get(url()).send().await.unwrap().json().await.unwrap();
    assert_eq!(now, Realism::default());
    let (status, text) = put(&http, url(), "{\"fault_rate\": 0.25, \"page_size\": 7}").await;
    assert_eq!(status, 200, "{text}");
    let now: Realism = http.get(url()).send().await.unwrap().json().await.unwrap();
    assert_eq!(now, Realism { fault_rate: 0.25, page_size: 7, ..Realism::default() });
    emu.shutdown().await;
}

#[tokio::test]
async fn replacing_the_tenant_must_be_asked_for_and_the_yaml_is_strict() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("emulator.yaml");
    let emu =
        Emulator::start(EmulatorConfig { state_file: Some(state.clone()), ..EmulatorConfig::default() }).await.unwrap();
    let http = reqwest::Client::new();
    let base = emu.base_url();
    let good = "users:\n  - user_principal_name: alice@contoso.com\n";
    let (status, text) = put(&http, format!("{base}/_emulator/state"), good).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("ReplaceNotConfirmed") && text.contains("?replace=true"), "{text}");
    let (status, text) = put(&http, format!("{base}/_emulator/state?replace=yes"), good).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("`replace` must be `true`, not `yes`"), "{text}");
    for (body, expect) in [
        ("", "the document is empty"),
        ("# nothing\n", "the document is empty"),
        ("bogus: 1\nother: 2\n", "unknown field `bogus`"),
        ("users:\n  - user_principal_name: a@b.c\n    upn: x\n", "line 3 column 5"),
        ("groups:\n  - display_name: g\n    members: alice\n", "line 3 column"),
        ("users:\n  - user_principal_name: !!binary YUBiLmM=\n", "line 2 column 26: the YAML tag `!!binary`"),
        ("users: !!python/object/apply:os.system [id]\n", "`!!python/object/apply:os.system`"),
    ] {
        let (status, text) = put(&http, format!("{base}/_emulator/state?replace=true"), body).await;
        assert_eq!(status, 400, "{body:?}: {text}");
        assert!(text.contains(expect), "{body:?}: {text}");
    }
    assert!(emu.tenant().await.users.is_empty(), "a refused body changed nothing");
    let (status, text) = put(&http, format!("{base}/_emulator/state?replace=true"), good).await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(emu.tenant().await.users[0].user_principal_name, "alice@contoso.com");
    emu.shutdown().await;
    assert!(std::fs::read_to_string(&state).unwrap().contains("alice@contoso.com"));
}

#[tokio::test]
async fn seed_and_state_files_are_as_strict_as_the_control_api() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, expect) in [
        ("seed-unknown.yaml", "users:\n  - user_principal_name: a@b.c\n    mail_address: x\n", "line 3 column 5"),
        ("seed-type.yaml", "subscriptions: prod\n", "line 1"),
        ("seed-tag.yaml", "tenant_id: !!python/name:os.system x\n", "`!!python/name:os.system`"),
        ("seed-empty.yaml", "\n", "the document is empty"),
    ] {
        let seed = dir.path().join(name);
        std::fs::write(&seed, text).unwrap();
        let err = Emulator::start(EmulatorConfig { seed_file: Some(seed.clone()), ..EmulatorConfig::default() })
            .await
            .err()
            .unwrap_or_else(|| panic!("{name} was accepted"));
        assert!(matches!(err, EmulatorError::State(_)), "{err:?}");
        let shown = err.to_string();
        assert!(shown.contains(expect) && shown.contains(name), "{name}: {shown}");
        // The same text as a state file.
        let state = dir.path().join(format!("state-{name}"));
        std::fs::write(&state, text).unwrap();
        let err = Emulator::start(EmulatorConfig { state_file: Some(state), ..EmulatorConfig::default() })
            .await
            .err()
            .unwrap_or_else(|| panic!("state {name} was accepted"));
        assert!(err.to_string().contains(expect), "{err}");
    }
    let bad =
        EmulatorConfig { realism: Realism { fault_rate: 2.0, ..Realism::default() }, ..EmulatorConfig::default() };
    let err = Emulator::start(bad).await.err().unwrap();
    assert!(err.to_string().contains("`fault_rate` must be between 0 and 1"), "{err}");
}

#[tokio::test]
async fn a_malformed_chunked_body_answers_400() {
    let emu = start(Limits::default()).await;
    let addr = addr(&emu);
    let request = |body: &str| {
        format!(
            "PUT /_emulator/realism HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        )
    };
    for body in ["zz\r\n{}\r\n0\r\n\r\n", "2\r\n{}XX\r\n0\r\n\r\n", "ffffffffffffffffff\r\n{}\r\n0\r\n\r\n"] {
        let a = addr.clone();
        let req = request(body);
        let (answer, closed) =
            tokio::task::spawn_blocking(move || raw(&a, req.as_bytes(), Duration::from_secs(5))).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{body:?}: {answer}");
        assert!(answer.contains("InvalidRequestContent"), "{answer}");
        assert!(closed, "the connection is closed after a broken body");
    }
    // A well-formed chunked body is read.
    let req = request("2\r\n{}\r\n0\r\n\r\n");
    let a = addr.clone();
    let (answer, _) =
        tokio::task::spawn_blocking(move || raw(&a, req.as_bytes(), Duration::from_secs(2))).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_head_or_body_is_closed() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let emu = start(limits).await;
    let a = addr(&emu);
    tokio::task::spawn_blocking(move || {
        // Half a request head (slowloris), nothing at all, and a body that stops half-way.
        for (bytes, what) in [
            (format!("GET /_emulator/stats HTTP/1.1\r\nHost: {a}\r\n"), "half a head"),
            (String::new(), "nothing"),
            (
                format!("PUT /_emulator/realism HTTP/1.1\r\nHost: {a}\r\nContent-Length: 100\r\n\r\n{{\"page"),
                "half a body",
            ),
        ] {
            let started = Instant::now();
            let (answer, closed) = raw(&a, bytes.as_bytes(), Duration::from_secs(5));
            let took = started.elapsed();
            assert!(closed, "{what}: still open after 5 s ({answer})");
            assert!(took < Duration::from_secs(3), "{what}: closed only after {took:?}");
            assert!(!answer.contains("200 OK"), "{what}: {answer}");
        }
        // An idle keep-alive connection is closed after its answer, too.
        let mut s = TcpStream::connect(&a).unwrap();
        s.write_all(format!("GET /_emulator/stats HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes()).unwrap();
        let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 200") && closed, "{answer}");
    })
    .await
    .unwrap();
    emu.shutdown().await;
}

#[tokio::test]
async fn a_slow_answer_is_not_an_idle_connection() {
    let limits = Limits { idle_timeout: Duration::from_millis(200), ..Limits::default() };
    let emu = start(limits).await;
    let http = reqwest::Client::new();
    let (status, text) = put(&http, format!("{}/_emulator/realism", emu.base_url()), "{\"latency_ms\": 700}").await;
    assert_eq!(status, 200, "{text}");
    // The token endpoint sleeps `latency_ms` before answering: longer than the idle timeout.
    let started = Instant::now();
    let resp = http
        .post(format!("{}/t/oauth2/v2.0/token", emu.base_url()))
        .form(&[
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("client_secret", "x"),
            ("scope", "https://management.azure.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(700));
    emu.shutdown().await;
}

/// Open descriptors of this process (Linux).
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(Iterator::count)
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_and_hold_no_descriptor() {
    let limits = Limits { max_connections: 4, header_read_timeout: Duration::from_secs(30), ..Limits::default() };
    let emu = start(limits).await;
    let a = addr(&emu);
    let report = tokio::task::spawn_blocking(move || {
        let before = open_fds();
        // 100 clients that connect and say nothing (the kernel queues up to 128 beyond the
        // limit; past that, clients wait in connect).
        let idle: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(&a).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let during = open_fds();
        // A client beyond the limit is not served while the four slots are taken...
        let mut late = TcpStream::connect(&a).unwrap();
        late.write_all(format!("GET /_emulator/stats HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let (answer, _) = read_until_closed(&mut late, Duration::from_millis(500));
        assert!(answer.is_empty(), "served beyond the limit: {answer}");
        // ...and is once they close.
        drop(idle);
        let (answer, _) = read_until_closed(&mut late, Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        (before, during)
    })
    .await
    .unwrap();
    if let (Some(before), Some(during)) = report {
        // 100 client sockets of ours, at most 4 accepted server sockets, a little slack for
        // the runtime; without the limit it would be 100 more.
        assert!(during <= before + 100 + 4 + 8, "{before} → {during} descriptors");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn a_second_emulator_on_one_state_waits_for_the_first_and_sees_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("emulator.yaml");
    let cfg = EmulatorConfig { state_file: Some(state.clone()), ..EmulatorConfig::default() };
    let first = Emulator::start(cfg.clone()).await.unwrap();
    // With a short wait the second one fails, naming the file and this process as holder.
    let quick = EmulatorConfig { lock_timeout: Duration::from_millis(300), ..cfg.clone() };
    let err = Emulator::start(quick).await.err().unwrap().to_string();
    assert!(err.contains("still in use by another emulator") && err.contains(&format!("pid {}", std::process::id())));
    assert!(err.contains("emulator.yaml"), "{err}");
    // With a longer one it waits; meanwhile the first writes, then stops.
    let second = tokio::spawn(Emulator::start(cfg.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second emulator did not wait");
    let http = reqwest::Client::new();
    let (status, text) = put(
        &http,
        format!("{}/_emulator/state?replace=true", first.base_url()),
        "users:\n  - user_principal_name: first@contoso.com\n",
    )
    .await;
    assert_eq!(status, 204, "{text}");
    first.shutdown().await;
    let second = second.await.unwrap().unwrap();
    let users = second.tenant().await.users;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user_principal_name, "first@contoso.com");
    second.shutdown().await;
    assert!(dir.path().join("emulator.yaml.lock").exists());
    assert!(!dir.path().join("emulator.yaml.tmp").exists());
}
