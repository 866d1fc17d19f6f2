//! Helpers shared by the integration tests that drive the built binary: a
//! temp file removed on drop, and running `gauntlet mock` and `gauntlet
//! router` processes killed on drop.

// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A file in the temp dir with a name no other test or run uses; removed on drop.
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn new(stem: &str, text: &str) -> TempFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("gauntlet-{stem}-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).expect("cannot write the temp config");
        TempFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A running `gauntlet SUBCOMMAND`, killed on drop so a failing assert
/// cleans up. Its stdout is kept open so it never writes to a closed pipe.
pub struct Process {
    child: Child,
    stdout: BufReader<ChildStdout>,
    what: String,
}

impl Process {
    /// Starts `gauntlet SUBCOMMAND ARGS` with stdout and stderr piped.
    pub fn start(subcommand: &str, args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .arg(subcommand)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the gauntlet binary");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Process {
            child,
            stdout,
            what: format!("gauntlet {subcommand} {args:?}"),
        }
    }

    /// The next line of stdout; if the process ended instead, fails the
    /// test with its exit status and stderr, saying it ended before `before`.
    pub fn line(&mut self, before: &str) -> String {
        let mut line = String::new();
        let read = self
            .stdout
            .read_line(&mut line)
            .expect("cannot read the child's stdout");
        if read == 0 {
            let status = self.child.wait().expect("wait for the child");
            let mut stderr = String::new();
            if let Some(mut err) = self.child.stderr.take() {
                let _ = err.read_to_string(&mut stderr);
            }
            panic!("{} ended ({status}) before {before}; stderr:\n{stderr}", self.what);
        }
        line
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `gauntlet mock`, killed on drop.
pub struct Mock {
    _process: Process,
    /// `(name, url)` of each provider, as printed.
    pub providers: Vec<(String, String)>,
}

impl Mock {
    /// Starts `gauntlet mock ARGS` and reads its stdout up to the
    /// `serving ...` line.
    pub fn start(args: &[&str]) -> Mock {
        let mut process = Process::start("mock", args);
        let mut providers = Vec::new();
        loop {
            let line = process.line("serving");
            if line.starts_with("serving ") {
                break;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [name, _dialect, url] if url.starts_with("http://127.0.0.1:") => {
                    providers.push((name.to_string(), url.to_string()));
                }
                _ => panic!("unexpected line from gauntlet mock: {line:?}"),
            }
        }
        assert!(!providers.is_empty(), "gauntlet mock printed no provider");
        Mock {
            _process: process,
            providers,
        }
    }

    pub fn url(&self) -> &str {
        assert_eq!(self.providers.len(), 1, "{:?}", self.providers);
        &self.providers[0].1
    }

    /// The URL of the provider called `name`.
    #[allow(dead_code)] // not every test binary that includes this module asks
    pub fn url_of(&self, name: &str) -> &str {
        let found = self.providers.iter().find(|(n, _)| n == name);
        &found
            .unwrap_or_else(|| panic!("no provider `{name}` in {:?}", self.providers))
            .1
    }
}

/// A running `gauntlet router`, killed on drop.
#[allow(dead_code)] // only tests/sdk.rs starts a router
pub struct RouterProcess {
    _process: Process,
    url: String,
}

#[allow(dead_code)]
impl RouterProcess {
    /// Starts `gauntlet router ARGS` and reads its stdout up to the
    /// `router listening on http://ADDR ...` line.
    pub fn start(args: &[&str]) -> RouterProcess {
        let mut process = Process::start("router", args);
        let line = process.line("listening");
        let url = line
            .strip_prefix("router listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|url| url.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("unexpected line from gauntlet router: {line:?}"))
            .to_string();
        RouterProcess { _process: process, url }
    }

    /// `http://ADDR`, without a path.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `n` distinct loopback ports free a moment ago: each was bound by a std
/// listener, read, and released when the listeners drop here. Use them at
/// once (another process could take one in between, rarely).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}
