//! Proof on the real thing: the whole conformance suite against a pinned
//! LiteLLM proxy and a pinned Portkey gateway, each configured by
//! `gauntlet export-config`, every check's verdict held to the table in
//! `scenarios/external/<router>.md` (which says why each `fail` and `skip`
//! is what the router really does).
//!
//! The routers are installed by `.ci/install-routers` under `.routers/`
//! (ignored by git); `.ci/run` installs them before the tests. Without
//! them the test says it was skipped, and fails under `CI`.
//!
//! The order keeps the two cores free for what is timed: every LiteLLM
//! proxy (one per scenario, its config differs) and the one Portkey gateway
//! start together first (a LiteLLM start is some ten seconds of CPU), then
//! the scenarios run one at a time, Portkey's and then LiteLLM's. The
//! configs the test exports are also committed under
//! `scenarios/external/<router>/` (with the mocks from port 18100: LiteLLM's
//! `config.yaml`, Portkey's `x-portkey-config` JSON), and another test
//! holds those to the export.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::TempDir;

const SUITE: &str = "scenarios/conformance";
/// Where the committed configs point the mocks.
const SHIPPED_MOCK_PORTS: u16 = 18100;
/// A LiteLLM proxy's start, import to ready (16–32 s seen alone; seven at
/// once on two cores take longer).
const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// Ports for mocks and routers: below Linux's ephemeral range (32768 and
/// up by default), which the system hands to outgoing connections — the
/// routers' and the load's own — so a port picked there may be taken
/// before the mock that a LiteLLM config names starts a minute later.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The first of `n` consecutive ports in [`PORTS`] that bind now and that
/// no earlier call handed out.
fn port_block(n: u16) -> u16 {
    use std::sync::Mutex;
    static TAKEN: Mutex<Vec<std::ops::Range<u16>>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap();
    let mut seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    for _ in 0..1000 {
        // xorshift: any spread will do.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let span = u64::from(PORTS.end - PORTS.start - n);
        let base = PORTS.start + u16::try_from(seed % span).unwrap();
        let block = base..base + n;
        if taken.iter().any(|t| t.start < block.end && block.start < t.end) {
            continue;
        }
        let bound: Vec<_> = block
            .clone()
            .map_while(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if bound.len() == usize::from(n) {
            taken.push(block);
            return base;
        }
    }
    panic!("no {n} consecutive free loopback ports in {PORTS:?}");
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The routers gauntlet is proven against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Router {
    Litellm,
    Portkey,
}

impl Router {
    const ALL: [Router; 2] = [Router::Litellm, Router::Portkey];

    fn name(self) -> &'static str {
        match self {
            Router::Litellm => "litellm",
            Router::Portkey => "portkey",
        }
    }

    /// What `.ci/install-routers` leaves, relative to the workspace.
    fn installed(self) -> &'static str {
        match self {
            Router::Litellm => ".routers/litellm/bin/litellm",
            Router::Portkey => ".routers/portkey/node_modules/@portkey-ai/gateway/build/start-server.js",
        }
    }

    /// The committed export of `scenario`: LiteLLM's `config.yaml`, or the
    /// `x-portkey-config` header's JSON (the export's `[target]` table is
    /// no scenario, and every `*.toml` under `scenarios/` must be one).
    fn shipped_config(self, scenario: &str) -> PathBuf {
        let ext = match self {
            Router::Litellm => "yaml",
            Router::Portkey => "json",
        };
        workspace()
            .join("scenarios/external")
            .join(self.name())
            .join(format!("{scenario}.{ext}"))
    }
}

/// The suite's scenarios, by file stem, in name order.
fn scenarios() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace().join(SUITE))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// As the commands take it (they run in the workspace, and the exports
/// name it in their comments).
fn scenario_path(scenario: &str) -> PathBuf {
    Path::new(SUITE).join(format!("{scenario}.toml"))
}

/// (scenario, check name) → verdict.
type Verdicts = BTreeMap<(String, String), String>;

/// The table of `scenarios/external/<router>.md`: the rows of its
/// "Expected verdicts" section, `| `scenario` | `check name` | verdict | ...`.
fn expected(router: Router) -> Verdicts {
    let path = workspace().join(format!("scenarios/external/{}.md", router.name()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section = text
        .split("\n## Expected verdicts")
        .nth(1)
        .unwrap_or_else(|| panic!("{} has no \"## Expected verdicts\" section", path.display()))
        .split("\n## ")
        .next()
        .unwrap();
    let mut table = Verdicts::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let ticked = |cell: &str| -> String {
            let inner: Vec<&str> = cell.split('`').collect();
            assert!(inner.len() >= 3, "{}: not a `ticked` cell in {line:?}", path.display());
            inner[1].to_string()
        };
        assert!(
            cells.len() >= 3,
            "{}: a row needs scenario, check and verdict: {line:?}",
            path.display()
        );
        let verdict = cells[2].trim().trim_matches('*').to_string();
        assert!(
            ["pass", "fail", "skip"].contains(&verdict.as_str()),
            "{}: verdict {verdict:?} in {line:?}",
            path.display()
        );
        let key = (ticked(cells[0]), ticked(cells[1]));
        assert!(
            table.insert(key.clone(), verdict).is_none(),
            "{}: {key:?} twice",
            path.display()
        );
    }
    assert!(!table.is_empty(), "{}: the table has no rows", path.display());
    table
}

/// Runs the built binary to completion.
fn gauntlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(args)
        .current_dir(workspace())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run the gauntlet binary")
}

/// `gauntlet export-config --for ROUTER SCENARIO --mock-ports BASE`.
fn export(router: Router, scenario: &str, mock_ports: u16) -> String {
    let path = scenario_path(scenario);
    let base = mock_ports.to_string();
    let out = gauntlet(&[
        "export-config",
        "--for",
        router.name(),
        path.to_str().unwrap(),
        "--mock-ports",
        &base,
    ]);
    assert!(
        out.status.success(),
        "export-config --for {} {scenario}: {}\n{}",
        router.name(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `x-portkey-config` header of a Portkey export (its `[target]` table).
fn portkey_header(export: &str) -> String {
    let table: toml::Table = toml::from_str(export).unwrap_or_else(|e| panic!("{e}\n{export}"));
    table["target"]["headers"]["x-portkey-config"]
        .as_str()
        .expect("the export's [target] sends x-portkey-config")
        .to_string()
}

/// How many mocks a scenario starts (the ports `--mock-ports` takes).
fn mock_count(scenario: &str) -> u16 {
    let text = std::fs::read_to_string(workspace().join(scenario_path(scenario))).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let n = table.get("providers").and_then(|p| p.as_array()).map_or(0, Vec::len);
    u16::try_from(n).unwrap()
}

/// The status of `GET path` on 127.0.0.1:`port`, or `None` when nothing
/// answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A router process, killed (by its PID) on drop; its output in `log`.
struct RouterProcess {
    what: String,
    child: Child,
    port: u16,
    ready: &'static str,
    log: PathBuf,
}

impl RouterProcess {
    fn start(what: String, mut command: Command, port: u16, ready: &'static str, log: PathBuf) -> RouterProcess {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .current_dir(workspace())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        RouterProcess {
            what,
            child,
            port,
            ready,
            log,
        }
    }

    /// Polls the readiness path until it answers 2xx; fails the test, with
    /// the router's log, when it exits first or takes too long.
    fn wait_ready(&mut self, since: Instant) {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.what,
                    self.log_tail()
                );
            }
            if http_status(self.port, self.ready).is_some_and(|s| (200..300).contains(&s)) {
                return;
            }
            assert!(
                since.elapsed() < READY_TIMEOUT,
                "{} not ready after {READY_TIMEOUT:?}:\n{}",
                self.what,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_litellm(scenario: &str, dir: &Path) -> (RouterProcess, u16) {
    let mock_ports = port_block(mock_count(scenario));
    let port = port_block(1);
    let config = dir.join(format!("litellm-{scenario}.yaml"));
    std::fs::write(&config, export(Router::Litellm, scenario, mock_ports)).unwrap();
    let mut command = Command::new(workspace().join(Router::Litellm.installed()));
    command
        .args([
            "--config",
            config.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        // Its bundled price map, not a download at start-up.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True");
    let process = RouterProcess::start(
        format!("LiteLLM for {scenario} on :{port}"),
        command,
        port,
        "/health/liveliness",
        dir.join(format!("litellm-{scenario}.log")),
    );
    (process, mock_ports)
}

fn start_portkey(dir: &Path) -> RouterProcess {
    let port = port_block(1);
    let mut command = Command::new("node");
    command.args([
        workspace().join(Router::Portkey.installed()).to_str().unwrap(),
        // `--port N`, with a space, is ignored.
        &format!("--port={port}"),
        "--headless",
    ]);
    RouterProcess::start(
        format!("Portkey gateway on :{port}"),
        command,
        port,
        "/",
        dir.join("portkey.log"),
    )
}

/// One scenario's run against one router: its verdicts, and what to show
/// when they are not the table's.
struct Run {
    verdicts: BTreeMap<String, (String, String)>,
    folder: PathBuf,
    seconds: f64,
}

/// `gauntlet run SCENARIO --target URL --profile P --mock-ports BASE [--header H] --out DIR`.
fn run(router: Router, scenario: &str, url: &str, mock_ports: u16, header: Option<String>, out: &Path) -> Run {
    let started = Instant::now();
    let path = scenario_path(scenario);
    let base = mock_ports.to_string();
    let mut args = vec![
        "run",
        path.to_str().unwrap(),
        "--target",
        url,
        "--profile",
        router.name(),
        "--mock-ports",
        &base,
        "--out",
        out.to_str().unwrap(),
    ];
    let header = header.map(|h| format!("x-portkey-config: {h}"));
    if let Some(h) = &header {
        args.extend(["--header", h]);
    }
    let output = gauntlet(&args);
    let code = output.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "gauntlet run {scenario} against {}: exit {:?}\n{}\n{}",
        router.name(),
        code,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let folder = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("summary.json").is_file())
        .unwrap_or_else(|| panic!("no summary.json under {}", out.display()));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    let mut verdicts = BTreeMap::new();
    for check in summary["checks"].as_array().unwrap() {
        let name = check["name"].as_str().unwrap().to_string();
        let verdict = check["verdict"].as_str().unwrap().to_string();
        let detail = check["detail"].as_str().unwrap_or_default().to_string();
        verdicts.insert(name, (verdict, detail));
    }
    let failed = verdicts.values().any(|(v, _)| v == "fail");
    assert_eq!(
        code,
        Some(i32::from(failed)),
        "gauntlet run {scenario} against {}: the exit code says otherwise than its checks",
        router.name()
    );
    Run {
        verdicts,
        folder,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The routers' install, or `None` (after saying so) when the test should
/// be skipped.
fn routers_installed() -> bool {
    let missing: Vec<&str> = Router::ALL
        .iter()
        .map(|r| r.installed())
        .filter(|p| !workspace().join(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the routers are not installed ({missing:?} missing): under CI, .ci/run must run .ci/install-routers first"
        );
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: LiteLLM and Portkey are not installed ({missing:?} missing); run `bash .ci/install-routers`"
    );
    false
}

#[test]
fn the_suite_gives_the_tables_verdicts_against_litellm_and_portkey() {
    if !routers_installed() {
        return;
    }
    let started = Instant::now();
    let scenarios = scenarios();
    let tables: BTreeMap<Router, Verdicts> = Router::ALL.iter().map(|r| (*r, expected(*r))).collect();
    // GAUNTLET_EXTERNAL_OUT=DIR keeps every run's reports and router logs there.
    let kept = std::env::var_os("GAUNTLET_EXTERNAL_OUT").map(PathBuf::from);
    let temp = TempDir::new("external");
    let dir = match &kept {
        Some(dir) => {
            std::fs::create_dir_all(dir).unwrap();
            dir.as_path()
        }
        None => temp.path(),
    };

    // Every router starts at once, before anything is timed.
    let mut portkey = start_portkey(dir);
    let mut litellms: Vec<(String, RouterProcess, u16)> = scenarios
        .iter()
        .map(|s| {
            let (process, mock_ports) = start_litellm(s, dir);
            (s.clone(), process, mock_ports)
        })
        .collect();
    portkey.wait_ready(started);
    for (_, process, _) in &mut litellms {
        process.wait_ready(started);
    }
    let ready = started.elapsed();

    let mut problems = Vec::new();
    let mut timings = Vec::new();
    let mut judge = |router: Router, scenario: &str, run: Run| {
        timings.push(format!("{} {scenario} {:.1} s", router.name(), run.seconds));
        let table = &tables[&router];
        let listed: BTreeSet<&str> = table
            .keys()
            .filter(|(s, _)| s == scenario)
            .map(|(_, c)| c.as_str())
            .collect();
        for (check, (got, detail)) in &run.verdicts {
            match table.get(&(scenario.to_string(), check.clone())) {
                Some(want) if want == got => {}
                Some(want) => problems.push(format!(
                    "{} {scenario}: `{check}`: expected {want}, got {got}: {detail}\n    ({})",
                    router.name(),
                    run.folder.display()
                )),
                None => problems.push(format!(
                    "{} {scenario}: `{check}` is not in scenarios/external/{}.md (got {got}: {detail})",
                    router.name(),
                    router.name()
                )),
            }
        }
        for check in listed.iter().filter(|c| !run.verdicts.contains_key(**c)) {
            problems.push(format!(
                "{} {scenario}: the table lists `{check}`, which the run did not judge",
                router.name()
            ));
        }
    };

    for scenario in &scenarios {
        let mock_ports = port_block(mock_count(scenario));
        let header = portkey_header(&export(Router::Portkey, scenario, mock_ports));
        let out = dir.join(format!("portkey-{scenario}"));
        let got = run(
            Router::Portkey,
            scenario,
            &portkey.url(),
            mock_ports,
            Some(header),
            &out,
        );
        judge(Router::Portkey, scenario, got);
    }
    drop(portkey);
    for (scenario, process, mock_ports) in litellms {
        let out = dir.join(format!("litellm-{scenario}"));
        let got = run(Router::Litellm, &scenario, &process.url(), mock_ports, None, &out);
        drop(process);
        judge(Router::Litellm, &scenario, got);
    }
    for (router, table) in &tables {
        for (scenario, _) in table.keys() {
            if !scenarios.contains(scenario) {
                problems.push(format!(
                    "scenarios/external/{}.md lists `{scenario}`, which is not in {SUITE}",
                    router.name()
                ));
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "routers ready after {:.1} s; whole test {:.1} s; runs: {}",
        ready.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        timings.join(", ")
    );
    assert!(
        problems.is_empty(),
        "{} verdict(s) differ from scenarios/external/*.md (reports kept in {}):\n{}",
        problems.len(),
        dir.display(),
        problems.join("\n")
    );
}

/// The configs committed under `scenarios/external/<router>/` are what
/// `gauntlet export-config --for ROUTER SCENARIO --mock-ports 18100` writes
/// now (write them again after changing a scenario or the export).
#[test]
fn the_shipped_router_configs_are_the_exports_of_the_suite() {
    let mut stale = Vec::new();
    for router in Router::ALL {
        for scenario in scenarios() {
            let path = router.shipped_config(&scenario);
            let shipped = std::fs::read_to_string(&path).unwrap_or_default();
            let exported = export(router, &scenario, SHIPPED_MOCK_PORTS);
            let (now, command) = match router {
                Router::Litellm => (
                    exported,
                    format!(
                        "gauntlet export-config --for litellm {SUITE}/{scenario}.toml --mock-ports {SHIPPED_MOCK_PORTS} \
                         --out {}",
                        path.strip_prefix(workspace()).unwrap().display()
                    ),
                ),
                Router::Portkey => (
                    format!("{}\n", portkey_header(&exported)),
                    format!(
                        "the x-portkey-config of `gauntlet export-config --for portkey {SUITE}/{scenario}.toml \
                         --mock-ports {SHIPPED_MOCK_PORTS}`, one line, into {}",
                        path.strip_prefix(workspace()).unwrap().display()
                    ),
                ),
            };
            if shipped != now {
                stale.push(command);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "committed router configs differ from their export; write them again:\n{}",
        stale.join("\n")
    );
}
