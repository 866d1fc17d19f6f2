//! The CI templates for a user's router repository (`docs/ci/`) and the
//! commands `docs/ci.md` shows: every `gauntlet run` command in them parses
//! with this gauntlet's command line (`Cli::try_parse_from`), names scenarios
//! that exist here, is one `gauntlet run` would accept (`--profile` and
//! `--header` only with `--target`, headers that are headers), and the
//! templates publish `junit.xml` and `summary.md` from where a run with their
//! `--out` writes them. A renamed flag, profile or report file fails here
//! before it fails in a user's CI. (.ci/run checks the templates against the
//! GitHub Actions and GitLab CI schemas.)

use std::path::{Path, PathBuf};

use clap::Parser;
use gauntlet::cli::{Cli, Command, RunArgs};
use gauntlet::report::junit::JUNIT_XML;
use gauntlet::report::markdown::SUMMARY_MD;

/// The templates: each must hold at least one `gauntlet run` command.
const TEMPLATES: [&str; 2] = ["docs/ci/github-actions.yml", "docs/ci/gitlab-ci.yml"];

/// The page that explains them, whose `gauntlet run` examples must parse too.
const GUIDE: &str = "docs/ci.md";

fn repo_file(path: &str) -> (PathBuf, String) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    (file, text)
}

/// A `gauntlet run` command found in a file: its line and its words.
#[derive(Debug)]
struct Found {
    line: usize,
    words: Vec<String>,
}

/// Every `gauntlet run ...` command of `text`: a line that starts with it
/// (after indentation, a YAML list's `- ` or a step's `run: `), joined with
/// the lines its trailing backslashes continue it onto, split into words the
/// way a shell does (quotes group and are removed, `$VARS` stay as written),
/// up to the first shell operator or comment (`|| status=$?`, `> log`).
fn run_commands(text: &str) -> Vec<Found> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let trimmed = lines[i].trim_start();
        let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let trimmed = trimmed.strip_prefix("run: ").unwrap_or(trimmed);
        i += 1;
        if !trimmed.starts_with("gauntlet run ") {
            continue;
        }
        let mut command = trimmed.trim_end().to_string();
        while let Some(head) = command.strip_suffix('\\') {
            command = head.to_string();
            let Some(next) = lines.get(i) else { break };
            command.push(' ');
            command.push_str(next.trim());
            i += 1;
        }
        found.push(Found {
            line: start + 1,
            words: shell_words(&command),
        });
    }
    found
}

/// `command` split into words as a POSIX shell would before expansion,
/// stopping at an unquoted operator (`|`, `&`, `;`, `<`, `>`) or `#` that
/// starts a word.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                words.extend(word.take());
                continue;
            }
            '|' | '&' | ';' | '<' | '>' | '#' if word.is_none() => break,
            _ => {}
        }
        let w = word.get_or_insert_with(String::new);
        match c {
            '\'' => w.extend(chars.by_ref().take_while(|&c| c != '\'')),
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => w.push(e),
                            Some(other) => {
                                w.push('\\');
                                w.push(other);
                            }
                            None => w.push('\\'),
                        },
                        other => w.push(other),
                    }
                }
            }
            '\\' => w.extend(chars.next()),
            other => w.push(other),
        }
    }
    words.extend(word);
    words
}

/// The `gauntlet run` arguments of `found`, parsed by the real command line;
/// a failure names the file and line.
fn parse(file: &Path, found: &Found) -> RunArgs {
    let at = format!("{}:{}", file.display(), found.line);
    let cli = Cli::try_parse_from(&found.words).unwrap_or_else(|e| {
        panic!(
            "{at}: this gauntlet's command line refuses `{}`:\n{e}",
            found.words.join(" ")
        )
    });
    let Command::Run(args) = cli.command else {
        panic!("{at}: not a `gauntlet run` command: {:?}", found.words);
    };
    args
}

/// What `gauntlet run` itself would refuse (exit 2) of these arguments,
/// beyond the parser: scenarios that are not here, `--profile` or
/// `--header` for the built-in target, a header that is no header.
fn check_run(file: &Path, found: &Found, args: &RunArgs) {
    let at = format!("{}:{}", file.display(), found.line);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in &args.paths {
        let here = root.join(path);
        assert!(
            here.is_dir() || (here.is_file() && path.extension().is_some_and(|e| e == "toml")),
            "{at}: {} is no scenario folder or file in gauntlet's repository",
            path.display()
        );
    }
    if args.profile.is_some() || !args.headers.is_empty() {
        assert!(
            args.target.is_some(),
            "{at}: --profile and --header need --target (the suite's scenarios target the built-in router)"
        );
    }
    for header in &args.headers {
        if let Err(e) = gauntlet::target::header_line(header) {
            panic!("{at}: --header '{header}': {e}");
        }
    }
}

#[test]
fn the_ci_templates_run_commands_parse_and_name_scenarios_that_exist() {
    for template in TEMPLATES {
        let (file, text) = repo_file(template);
        let commands = run_commands(&text);
        assert!(!commands.is_empty(), "{template}: no `gauntlet run` command found");
        for found in &commands {
            let args = parse(&file, found);
            check_run(&file, found, &args);
        }
    }
}

#[test]
fn the_ci_templates_publish_the_report_files_where_the_run_writes_them() {
    for template in TEMPLATES {
        let (file, text) = repo_file(template);
        for found in run_commands(&text) {
            let args = parse(&file, &found);
            let out = args.out.unwrap_or_else(|| {
                panic!(
                    "{template}:{}: give --out, so that the report paths are known",
                    found.line
                )
            });
            // A run writes each scenario's reports in <out>/<scenario>-<UTC time>/.
            for name in [JUNIT_XML, SUMMARY_MD] {
                let published = format!("{}/*/{name}", out.display());
                assert!(
                    text.contains(&published),
                    "{}: `{published}` is not published, yet the run at line {} writes its {name} there",
                    file.display(),
                    found.line
                );
            }
        }
    }
}

#[test]
fn the_ci_guide_run_commands_parse_and_name_scenarios_that_exist() {
    let (file, text) = repo_file(GUIDE);
    let commands = run_commands(&text);
    assert!(!commands.is_empty(), "{GUIDE}: no `gauntlet run` example found");
    for found in &commands {
        let args = parse(&file, found);
        check_run(&file, found, &args);
    }
}

#[test]
fn commands_are_split_as_a_shell_splits_them() {
    let text = "    - |\n      gauntlet run scenarios/conformance \\\n        --header \"authorization: Bearer $KEY\" \\\n        --out 'my reports' || status=$?\n  run: gauntlet run a.toml --seed 1 > log # done\n";
    let found = run_commands(text);
    let words: Vec<Vec<&str>> = found
        .iter()
        .map(|f| f.words.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        words,
        [
            vec![
                "gauntlet",
                "run",
                "scenarios/conformance",
                "--header",
                "authorization: Bearer $KEY",
                "--out",
                "my reports"
            ],
            vec!["gauntlet", "run", "a.toml", "--seed", "1"],
        ]
    );
    assert_eq!(found.iter().map(|f| f.line).collect::<Vec<_>>(), [2, 5]);
}
