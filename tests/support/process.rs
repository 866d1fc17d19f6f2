//! The built binary as a process: running `gauntlet mock` and `gauntlet
//! router` killed on drop, temp files and folders no other test uses, and
//! free loopback ports.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// `gauntlet-STEM-PID-N` in the temp dir: a name no other test (they run as
/// threads of one process) or run uses.
fn temp_path(stem: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("gauntlet-{stem}-{}-{n}", std::process::id()))
}

/// A file in the temp dir with a name no other test or run uses; removed on drop.
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn new(stem: &str, text: &str) -> TempFile {
        let path = temp_path(stem).with_extension("toml");
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

/// An empty folder in the temp dir no other test or run uses; removed on
/// drop unless the test is failing, so the reports in it stay to be read.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(stem: &str) -> TempDir {
        let path = temp_path(stem);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("cannot create the temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the folder (not created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` inside the folder (making its parents) and
    /// returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("cannot create a folder in the temp dir");
        }
        std::fs::write(&path, text).expect("cannot write into the temp dir");
        path
    }

    /// Writes a JSON document to `name` inside the folder and returns its path.
    pub fn write_json(&self, name: &str, doc: &serde_json::Value) -> PathBuf {
        self.write(name, &serde_json::to_string_pretty(doc).expect("a JSON document"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
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
        let mut command = Command::new(env!("CARGO_BIN_EXE_gauntlet"));
        command.arg(subcommand).args(args);
        Self::spawn(command, format!("gauntlet {subcommand} {args:?}"))
    }

    /// Starts `command` (described as `what`) with stdout and stderr piped.
    fn spawn(mut command: Command, what: String) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the gauntlet binary");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Process { child, stdout, what }
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

impl Process {
    /// SIGINT (what Ctrl-C sends), then waits for the process to end by
    /// itself; returns its exit code.
    pub fn interrupt(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -INT {pid} failed");
        self.child.wait().expect("wait for the interrupted child").code()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap the process.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("cannot kill the child");
        self.child.wait().expect("wait for the killed child");
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
    pub fn url_of(&self, name: &str) -> &str {
        let found = self.providers.iter().find(|(n, _)| n == name);
        &found
            .unwrap_or_else(|| panic!("no provider `{name}` in {:?}", self.providers))
            .1
    }
}

/// A running `gauntlet router`, killed on drop.
pub struct RouterProcess {
    process: Process,
    url: String,
}

impl RouterProcess {
    /// Starts `gauntlet router ARGS` and reads its stdout up to the
    /// `router listening on http://ADDR ...` line.
    pub fn start(args: &[&str]) -> RouterProcess {
        Self::listening(Process::start("router", args))
    }

    /// [`RouterProcess::start`] with the router's limit on open files
    /// lowered to `open_files` (`ulimit -n` in a shell that then becomes
    /// the router).
    pub fn start_with_open_files(open_files: u32, args: &[&str]) -> RouterProcess {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {open_files} && exec \"$0\" router \"$@\""))
            .arg(env!("CARGO_BIN_EXE_gauntlet"))
            .args(args);
        Self::listening(Process::spawn(
            command,
            format!("gauntlet router {args:?} with {open_files} open files"),
        ))
    }

    /// Reads `process`'s stdout up to its `router listening on` line.
    fn listening(mut process: Process) -> RouterProcess {
        let line = process.line("listening");
        let url = line
            .strip_prefix("router listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|url| url.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("unexpected line from gauntlet router: {line:?}"))
            .to_string();
        RouterProcess { process, url }
    }

    /// `http://ADDR`, without a path.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills the router with SIGKILL, as a crash would, and reaps it.
    pub fn kill_9(&mut self) {
        self.process.kill_9();
    }

    /// Stops the router as Ctrl-C would; returns its exit code.
    pub fn interrupt(&mut self) -> Option<i32> {
        self.process.interrupt()
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

/// The first of `n` consecutive loopback ports free a moment ago (for
/// `--mock-ports BASE`): blocks starting at ports the system hands out are
/// tried until one binds whole. Use it at once.
pub fn free_port_block(n: u16) -> u16 {
    for _ in 0..100 {
        let base = free_ports(1)[0];
        if base.checked_add(n).is_none() {
            continue;
        }
        let bound: Vec<_> = (base..base + n)
            .map_while(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if bound.len() == usize::from(n) {
            return base;
        }
    }
    panic!("no {n} consecutive free loopback ports found");
}
