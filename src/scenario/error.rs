//! Why a scenario could not be read: the file, the line (found from the
//! field path in the file's own text when the parser did not say), the
//! field path, the problem, and the value written there.

use std::fmt;
use std::path::{Path, PathBuf};

use mock_providers::config::ConfigError;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The longest value an error quotes from the file.
const MAX_QUOTED: usize = 80;

/// A scenario that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file itself could not be read.
    #[error("{}: cannot read the file: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A field is missing, malformed or wrong.
    #[error("{0}")]
    Field(FieldError),
}

/// A field that is missing, malformed or wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub line: Option<(usize, usize)>,
    /// The field path, like `phases[0].arrival.rate`; empty for the whole file.
    pub path: String,
    pub message: String,
    /// The value written at `path`, as written (shortened), when there is one
    /// and the message does not already quote it: `path = value: message`.
    pub value: Option<String>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.line {
            write!(f, ":{line}:{column}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
            if let Some(value) = &self.value {
                write!(f, " = {value}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl ScenarioError {
    /// The field error of `text` (the file `file`), its line and value
    /// found in the text when the error does not carry them (the value as
    /// written, else as the error read it).
    pub fn field(e: ConfigError, file: &Path, text: &str) -> ScenarioError {
        let found = locate(text, &e.path);
        let line = e.line.or_else(|| found.as_ref().map(|(line, _)| *line));
        let written = found.and_then(|(_, value)| value);
        let value = match e.value {
            // A value out of its range: the message says the range, never the value.
            Some(read) => Some(written.unwrap_or(read)),
            None => written.filter(|v| !e.message.contains(v.trim_matches('"'))),
        };
        ScenarioError::Field(FieldError {
            file: file.to_path_buf(),
            line,
            path: e.path,
            message: e.message,
            value,
        })
    }

    /// The field path the error names (empty when it is about the file).
    pub fn path(&self) -> &str {
        match self {
            ScenarioError::Read { .. } => "",
            ScenarioError::Field(f) => &f.path,
        }
    }

    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ScenarioError::Read { file, .. } => file,
            ScenarioError::Field(f) => &f.file,
        }
    }
}

/// The line and column of the deepest node of `path` the text has, and the
/// text of the value at `path` when it is a plain value (not a table).
fn locate(text: &str, path: &str) -> Option<((usize, usize), Option<String>)> {
    if path.is_empty() {
        return None;
    }
    let root = DeTable::parse(text).ok()?;
    let mut node: Option<&Spanned<DeValue<'_>>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut span = None;
    let mut complete = true;
    'walk: for segment in path.split('.') {
        let (key, indices) = split_indices(segment);
        let Some(found) = table.and_then(|t| child(t, key)) else {
            complete = false;
            break;
        };
        let mut current = found;
        for index in indices {
            let item = match current.get_ref() {
                DeValue::Array(items) => items.get(index),
                _ => None,
            };
            match item {
                Some(item) => current = item,
                None => {
                    span = Some(current.span());
                    complete = false;
                    break 'walk;
                }
            }
        }
        span = Some(current.span());
        node = Some(current);
        table = match current.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    let span = span?;
    let value = match node.map(Spanned::get_ref) {
        Some(DeValue::Table(_) | DeValue::Array(_)) | None => None,
        Some(_) if complete => text.get(span.clone()).map(quote),
        Some(_) => None,
    };
    Some((line_col(text, span.start), value))
}

fn child<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v)
}

/// `set[0][2]` → (`set`, [0, 2]).
fn split_indices(segment: &str) -> (&str, Vec<usize>) {
    let key_end = segment.find('[').unwrap_or(segment.len());
    let indices = segment[key_end..]
        .split(['[', ']'])
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    (&segment[..key_end], indices)
}

/// The value as written, shortened past [`MAX_QUOTED`] characters.
fn quote(value: &str) -> String {
    let value = value.trim();
    if value.chars().count() > MAX_QUOTED {
        let short: String = value.chars().take(MAX_QUOTED).collect();
        format!("{short}…")
    } else {
        value.to_string()
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "schema = 1\n[meta]\nname = \"t\"\n[[phases]]\nduration-s = 1\n[[phases]]\nduration-s = -3\narrival = { kind = \"gamma\", rate = 5 }\n";

    #[test]
    fn a_path_is_found_in_the_text_with_its_value() {
        assert_eq!(
            locate(TEXT, "phases[1].duration-s"),
            Some(((7, 14), Some("-3".to_string())))
        );
        assert_eq!(locate(TEXT, "meta.name"), Some(((3, 8), Some("\"t\"".to_string()))));
    }

    #[test]
    fn a_missing_field_points_at_its_table() {
        // `burstiness` is not written: the line is the arrival table's.
        let (line, value) = locate(TEXT, "phases[1].arrival.burstiness").unwrap();
        assert_eq!(line.0, 8);
        assert_eq!(value, None);
        assert_eq!(locate(TEXT, ""), None);
        assert_eq!(locate("not toml [", "meta"), None);
    }

    #[test]
    fn the_message_names_file_line_path_and_value() {
        let e = ScenarioError::field(
            ConfigError::new("phases[1].duration-s", "must be > 0"),
            Path::new("s.toml"),
            TEXT,
        );
        assert_eq!(e.to_string(), "s.toml:7:14: phases[1].duration-s = -3: must be > 0");
        assert_eq!(e.path(), "phases[1].duration-s");
        // A message that quotes the value already is not repeated.
        let e = ScenarioError::field(
            ConfigError::new("phases[1].duration-s", "must be > 0, got -3"),
            Path::new("s.toml"),
            TEXT,
        );
        assert_eq!(e.to_string(), "s.toml:7:14: phases[1].duration-s: must be > 0, got -3");
    }
}
