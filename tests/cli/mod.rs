//! The command line: exit codes and messages of the built `gauntlet` binary,
//! one real request to a served mock, and `gauntlet mock` driven in-process
//! (`Cli::try_parse_from` + `mock::run` with a stop future).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind;
use gauntlet::Exit;
use gauntlet::cli::{Cli, Command as CliCommand, MockArgs};
use tokio::sync::oneshot;

use crate::support::{
    CLI_OUT_OF_RANGE, CLI_TYPO, Mock, RUN, RUN_HTTP, RouterProcess, TempDir, TempFile, edit, free_port_block,
    free_ports,
};

/// How long a command that should fail at once may take before the test
/// calls it hung (a bound, not a wait: it normally exits in milliseconds).
const EXIT_BOUND: Duration = Duration::from_secs(60);

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

/// How a command that ran to its end ended.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `gauntlet ARGS` to its end; kills it and fails if it outlives
/// [`EXIT_BOUND`] (a mock that serves when it should have refused).
fn gauntlet(args: &[&str]) -> Finished {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the gauntlet binary");
    let (tx, rx) = mpsc::channel();
    let pipes: [(bool, Box<dyn Read + Send>); 2] = [
        (true, Box::new(child.stdout.take().expect("piped stdout"))),
        (false, Box::new(child.stderr.take().expect("piped stderr"))),
    ];
    for (is_stdout, mut pipe) in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send((is_stdout, text));
        });
    }
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for _ in 0..2 {
        match rx.recv_timeout(EXIT_BOUND) {
            Ok((true, text)) => stdout = text,
            Ok((false, text)) => stderr = text,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("gauntlet {args:?} still runs after {EXIT_BOUND:?}; stdout so far:\n{stdout}");
            }
        }
    }
    let status = child.wait().expect("wait for gauntlet");
    Finished {
        code: status.code(),
        stdout,
        stderr,
    }
}

#[test]
fn a_misspelt_key_exits_2_naming_file_line_path_and_the_fix() {
    let file = TempFile::new("cli-typo", CLI_TYPO);
    let run = gauntlet(&["mock", "--config", file.path()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let expected = format!(
        "error: {}:7:1: providers[0].models[0].ttft-mss: unknown field `ttft-mss`",
        file.path()
    );
    assert!(
        run.stderr.starts_with(&expected),
        "want {expected:?}, got {:?}",
        run.stderr
    );
    assert!(run.stderr.contains("did you mean `ttft-ms`?"), "{:?}", run.stderr);
    assert!(run.stdout.is_empty(), "nothing is served: {:?}", run.stdout);
}

#[test]
fn an_invalid_value_exits_2_naming_file_path_and_problem() {
    let file = TempFile::new("cli-range", CLI_OUT_OF_RANGE);
    let run = gauntlet(&["mock", "--config", file.path()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains(file.path()), "{:?}", run.stderr);
    assert!(
        run.stderr
            .contains("providers[0].defaults.cache-read-share: must be between 0 and 1, got 2"),
        "{:?}",
        run.stderr
    );
}

/// `ttft-ms = 1e300` used to validate: the mock panicked on every request
/// and a run without an error check still exited 0. Every command that
/// reads the file now refuses it (exit 2) naming the field, the value and
/// the range, before anything starts.
#[test]
fn a_delay_out_of_range_is_refused_by_run_validate_and_mock() {
    let scenario = edit(RUN, "ttft-ms = 5", "ttft-ms = 1e300");
    let scenario = &scenario[..scenario.find("[slo]").expect("the fixture has checks")];
    let file = TempFile::new("cli-1e300", scenario);
    let out = TempDir::new("cli-1e300");
    let out = out.path().to_str().unwrap();
    let want = "providers[0].defaults.ttft-ms = 1e300: must be a finite number of milliseconds between 0 and 3600000";
    for args in [
        vec!["run", file.path(), "--out", out],
        vec!["validate", file.path()],
        vec!["mock", "--config", file.path()],
    ] {
        let run = gauntlet(&args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stderr.contains(file.path()), "{args:?}: {:?}", run.stderr);
        assert!(run.stderr.contains(want), "{args:?}: {:?}", run.stderr);
    }
}

/// `keep-alive-ms = 0` used to be served: every stream answered 200 with an
/// empty body. `gauntlet router` refuses it (exit 2).
#[test]
fn a_zero_keep_alive_is_refused_by_the_router() {
    let config = "[router]\nkeep-alive-ms = 0\n[[router.providers]]\nname = \"p\"\ndialect = \"openai\"\nbase-url = \"http://127.0.0.1:1\"\napi-key = \"k\"\n";
    let file = TempFile::new("cli-keep-alive", config);
    let run = gauntlet(&["router", "--config", file.path(), "--listen", "127.0.0.1:0"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("router.keep-alive-ms = 0: must be between 1 and 3600000 milliseconds"),
        "{:?}",
        run.stderr
    );
}

#[test]
fn a_missing_file_exits_2_naming_it() {
    let missing = std::env::temp_dir().join(format!("gauntlet-cli-missing-{}.toml", std::process::id()));
    let missing = missing.to_str().unwrap();
    let run = gauntlet(&["mock", "--config", missing]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains(missing), "{:?}", run.stderr);
    assert!(run.stderr.contains("cannot read the file"), "{:?}", run.stderr);
}

#[test]
fn a_taken_port_exits_3_naming_the_provider() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = format!("[[providers]]\nname = \"squatted\"\ndialect = \"openai\"\nlisten = \"{addr}\"\n");
    let file = TempFile::new("cli-taken", &config);
    let run = gauntlet(&["mock", "--config", file.path()]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(run.stderr.contains("provider `squatted`"), "{:?}", run.stderr);
    assert!(run.stderr.contains(&addr.to_string()), "{:?}", run.stderr);
    drop(taken);
}

#[test]
fn mock_without_arguments_exits_2_with_usage() {
    let run = gauntlet(&["mock"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--dialect"), "{:?}", run.stderr);
    assert!(run.stderr.contains("Usage:"), "{:?}", run.stderr);
}

#[test]
fn a_served_mock_answers_a_raw_http_request() {
    let mock = Mock::start(&["--dialect", "openai", "--listen", "127.0.0.1:0"]);
    let addr = mock.url().trim_start_matches("http://");

    let body = r#"{"model":"any-model","messages":[{"role":"user","content":"hello"}]}"#;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""object":"chat.completion""#), "{response}");
}

fn mock_args(argv: &[&str]) -> MockArgs {
    match Cli::try_parse_from(argv).expect("the command line parses").command {
        CliCommand::Mock(args) => args,
        other => panic!("expected `gauntlet mock`, parsed {other:?}"),
    }
}

#[test]
fn the_parser_refuses_what_the_binary_refuses() {
    let missing = Cli::try_parse_from(["gauntlet", "mock"]).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::MissingRequiredArgument);
    let both = Cli::try_parse_from(["gauntlet", "mock", "--config", "x.toml", "--dialect", "openai"]).unwrap_err();
    assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
    let bad = Cli::try_parse_from(["gauntlet", "mock", "--dialect", "cohere"]).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidValue);
}

#[test]
fn flags_resolve_into_one_any_model_provider() {
    let args = mock_args(&["gauntlet", "mock", "--dialect", "anthropic", "--seed", "9"]);
    let configs = gauntlet::command::mock::configs(&args).unwrap();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].name, "anthropic");
    assert_eq!(configs[0].dialect, mock_providers::Dialect::Anthropic);
    assert_eq!(configs[0].listen.to_string(), "127.0.0.1:0");
    assert_eq!(configs[0].seed, 9);
    assert!(configs[0].models.is_empty(), "any model is served");
}

#[tokio::test]
async fn mock_runs_until_its_stop_future_fires() {
    let args = mock_args(&["gauntlet", "mock", "--dialect", "openai", "--listen", "127.0.0.1:0"]);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (waiting_tx, waiting_rx) = oneshot::channel::<()>();
    // Polled only once every provider is bound and printed.
    let stop = async move {
        let _ = waiting_tx.send(());
        let _ = stop_rx.await;
    };
    let fire = async move {
        waiting_rx
            .await
            .expect("run returned without waiting on its stop future");
        stop_tx.send(()).expect("run is still waiting");
    };
    let (exit, ()) = tokio::join!(gauntlet::command::mock::run(args, stop), fire);
    assert_eq!(exit, Exit::Success);
}

#[tokio::test]
async fn a_bad_config_is_a_usage_error_in_process() {
    let file = TempFile::new("cli-inprocess", CLI_TYPO);
    let args = mock_args(&["gauntlet", "mock", "--config", file.path()]);
    let message = gauntlet::command::mock::configs(&args).unwrap_err().to_string();
    assert!(message.contains(file.path()), "{message}");
    assert!(message.contains("providers[0].models[0].ttft-mss"), "{message}");
    assert!(message.contains("did you mean `ttft-ms`?"), "{message}");
    let exit = gauntlet::command::mock::run(args, std::future::pending()).await;
    assert_eq!(exit, Exit::Usage);
}

#[test]
fn validate_accepts_the_shipped_scenarios_and_refuses_a_bad_one() {
    let ok = gauntlet(&["validate", concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios")]);
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(ok.stdout.contains("ok    ") && ok.stdout.contains("demo"), "{ok:?}");

    let bad = TempFile::new(
        "validate-bad",
        "schema = 1\n[meta]\nname = \"x\"\n[[phases]]\nduraton-s = 1\n",
    );
    let run = gauntlet(&["validate", bad.path()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains(bad.path()), "{run:?}");
    assert!(
        run.stderr.contains("phases[0].duraton-s") && run.stderr.contains("did you mean `duration-s`?"),
        "{run:?}"
    );

    let none = gauntlet(&["validate", "/nonexistent-dir-for-gauntlet"]);
    assert_eq!(none.code, Some(2), "{none:?}");
}

/// `gauntlet mock --mock-ports BASE` serves a file's providers on
/// 127.0.0.1:BASE, BASE+1, … in the order they are declared.
#[test]
fn mock_ports_place_a_files_mocks_in_order() {
    let file = TempFile::new("cli-mock-ports", RUN);
    let base = free_port_block(2);
    let mock = Mock::start(&["--config", file.path(), "--mock-ports", &base.to_string()]);
    assert_eq!(mock.url_of("oai"), format!("http://127.0.0.1:{base}"));
    assert_eq!(mock.url_of("ant"), format!("http://127.0.0.1:{}", base + 1));
    // The port really is served.
    let mut stream = TcpStream::connect(("127.0.0.1", base + 1)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET /__gauntlet/journal HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A BASE whose ports leave 1024..=65535 is refused (exit 2) by every
/// command that takes it, saying which bases fit.
#[test]
fn a_mock_ports_base_out_of_range_exits_2() {
    let file = TempFile::new("cli-mock-ports-bad", RUN);
    for args in [
        vec!["mock", "--config", file.path(), "--mock-ports", "65535"],
        vec!["run", file.path(), "--mock-ports", "65535"],
        vec![
            "export-config",
            "--for",
            "litellm",
            file.path(),
            "--mock-ports",
            "65535",
        ],
    ] {
        let run = gauntlet(&args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(file.path())
                && run.stderr.contains(
                    "--mock-ports 65535: the last of 2 mocks would need port 65536, past 65535; \
                     BASE must be between 1024 and 65534 for 2 mock(s)"
                ),
            "{args:?}: {run:?}"
        );
    }
    let run = gauntlet(&["run", file.path(), "--mock-ports", "80"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("ports below 1024 are privileged"), "{run:?}");
    let run = gauntlet(&["mock", "--dialect", "openai", "--mock-ports", "20000"]);
    assert_eq!(run.code, Some(2), "--mock-ports needs --config: {run:?}");
    assert!(run.stderr.contains("for one provider give --listen"), "{run:?}");
}

/// The two commands: a router configured for mocks on BASE (here a
/// `gauntlet router` whose upstream is 127.0.0.1:BASE), and `gauntlet run
/// --mock-ports BASE` of a scenario whose mock would otherwise take any
/// port: the run's mock listens where the router calls, and every request
/// is served.
#[test]
fn a_run_with_mock_ports_serves_the_mocks_where_the_router_calls() {
    let base = free_port_block(1);
    let router_port = free_ports(1)[0];
    let router_text = edit(
        &edit(RUN_HTTP, "{provider_port}", &base.to_string()),
        "{router_port}",
        &router_port.to_string(),
    );
    let router_file = TempFile::new("cli-run-mock-ports-router", &router_text);
    let scenario = edit(
        &router_text,
        &format!("listen = \"127.0.0.1:{base}\""),
        "listen = \"127.0.0.1:0\"",
    );
    let scenario = TempFile::new("cli-run-mock-ports", &scenario);
    let router = RouterProcess::start(&["--config", router_file.path()]);
    let out = TempDir::new("cli-run-mock-ports");
    let target = format!("{}/api/v1", router.url());
    let run = gauntlet(&[
        "run",
        scenario.path(),
        "--mock-ports",
        &base.to_string(),
        "--target",
        &target,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("mock oai (openai): http://127.0.0.1:{base}")),
        "{run:?}"
    );
    drop(router);
}

/// `gauntlet export-config` writes to stdout or `--out FILE`; a scenario
/// without a [router] table, or a mock on a random port, exits 2 saying so.
#[test]
fn export_config_writes_where_it_is_told_and_says_what_stands_in_its_way() {
    let file = TempFile::new("cli-export", RUN);
    let run = gauntlet(&[
        "export-config",
        "--for",
        "litellm",
        file.path(),
        "--mock-ports",
        "20000",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("api_base: \"http://127.0.0.1:20000/v1\""),
        "{run:?}"
    );
    assert!(run.stdout.contains("api_base: \"http://127.0.0.1:20001\""), "{run:?}");

    let out = TempDir::new("cli-export");
    let written = out.join("portkey.toml");
    let run = gauntlet(&[
        "export-config",
        "--for",
        "portkey",
        file.path(),
        "--mock-ports",
        "20000",
        "--out",
        written.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    let text = std::fs::read_to_string(&written).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let header = table["target"]["headers"]["x-portkey-config"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_str(header).unwrap();
    assert_eq!(config["targets"][0]["custom_host"], "http://127.0.0.1:20000/v1");

    let run = gauntlet(&["export-config", "--for", "litellm", file.path()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("calls mock `oai`, which listens on a random port"),
        "{run:?}"
    );

    let bare = TempFile::new(
        "cli-export-bare",
        "schema = 1\n[meta]\nname = \"bare\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/v1\"\n\
         [[mix]]\nmodel = \"m\"\nkey = \"k\"\n[[phases]]\nduration-s = 1\narrival = { kind = \"constant\", rate = 1 }\n",
    );
    let run = gauntlet(&["export-config", "--for", "portkey", bare.path()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("the scenario has no [router] table"), "{run:?}");
}

#[tokio::test]
async fn check_ledger_reports_a_sound_ledger_and_refuses_a_damaged_one_with_exit_3() {
    use gauntlet::router::ledger::{GenerationRecord, Ledger};
    use gauntlet::router::pricing::Picodollars;

    let dir = TempDir::new("check-ledger");
    let path = dir.join("ledger.redb");
    let ledger = Ledger::open(&path).unwrap();
    ledger
        .create_account("sk-alice", "alice", Picodollars(10_000))
        .await
        .unwrap();
    let record = GenerationRecord {
        id: "gen-1".into(),
        total_cost: Picodollars(1_234),
        ..GenerationRecord::default()
    };
    let reservation = ledger.reserve("sk-alice", Picodollars(2_000)).unwrap();
    ledger.settle(reservation, record).await.unwrap();
    ledger.close().await.unwrap();
    let file = path.to_str().unwrap();

    let sound = gauntlet(&["router", "--check-ledger", file]);
    assert_eq!(sound.code, Some(0), "{sound:?}");
    assert!(sound.stdout.contains("1 accounts, 1 generations"), "{}", sound.stdout);
    assert!(
        sound.stdout.contains("sk-alice") && sound.stdout.contains("ok:"),
        "{}",
        sound.stdout
    );

    // An empty file at the ledger's place: refused by the check and by the router.
    let empty = dir.write("empty.redb", "");
    let router_toml = dir.write(
        "router.toml",
        &format!(
            "[router]\nlisten = \"127.0.0.1:0\"\nledger-path = \"{}\"\n",
            empty.display()
        ),
    );
    for args in [
        vec!["router", "--check-ledger", empty.to_str().unwrap()],
        vec!["router", "--config", router_toml.to_str().unwrap()],
    ] {
        let refused = gauntlet(&args);
        assert_eq!(refused.code, Some(3), "{args:?}: {refused:?}");
        assert!(
            refused.stderr.contains("empty.redb") && refused.stderr.contains("empty file"),
            "{args:?}: {}",
            refused.stderr
        );
        assert!(!refused.stderr.contains("panicked"), "{}", refused.stderr);
    }
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "left as it was");
}
