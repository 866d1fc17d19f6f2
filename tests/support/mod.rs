//! Helpers shared by the integration tests that drive the built binary: a
//! temp file removed on drop, and a running `gauntlet mock` killed on drop.

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

/// A running `gauntlet mock`, killed on drop so a failing assert cleans up.
pub struct Mock {
    child: Child,
    /// Read up to the `serving` line, then kept open so the mock never
    /// writes to a closed pipe.
    stdout: BufReader<ChildStdout>,
    /// `(name, url)` of each provider, as printed.
    pub providers: Vec<(String, String)>,
}

impl Mock {
    /// Starts `gauntlet mock ARGS` and reads its stdout up to the
    /// `serving ...` line.
    pub fn start(args: &[&str]) -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .arg("mock")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the gauntlet binary");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut mock = Mock {
            child,
            stdout,
            providers: Vec::new(),
        };
        loop {
            let mut line = String::new();
            let read = mock.stdout.read_line(&mut line).expect("cannot read the mock's stdout");
            if read == 0 {
                let status = mock.child.wait().expect("wait for the mock");
                let mut stderr = String::new();
                if let Some(mut err) = mock.child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                panic!("gauntlet mock {args:?} ended ({status}) before serving; stderr:\n{stderr}");
            }
            if line.starts_with("serving ") {
                break;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [name, _dialect, url] if url.starts_with("http://127.0.0.1:") => {
                    mock.providers.push((name.to_string(), url.to_string()));
                }
                _ => panic!("unexpected line from gauntlet mock: {line:?}"),
            }
        }
        assert!(!mock.providers.is_empty(), "gauntlet mock printed no provider");
        mock
    }

    pub fn url(&self) -> &str {
        assert_eq!(self.providers.len(), 1, "{:?}", self.providers);
        &self.providers[0].1
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
