//! Every example configuration in the repository is a valid configuration: the whole-config
//! ```toml blocks of `README.md` and `docs/**/*.md`, every `*.toml` under `examples/`, and what
//! `roster init` writes. A failure names the file, the block's line and every problem found.
//!
//! A ```toml block is a whole configuration when it has a `[time]` table (every configuration
//! needs one). A block that shows part of a configuration is a fragment: it has no `[time]`, or
//! its first line is a comment starting `# fragment`, and it is not checked on its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use roster_core::settings::{ConfigError, load};

/// One example configuration and where it was found.
struct Example {
    /// Path relative to the repository root, with `/` separators.
    file: String,
    /// 1-based line of the opening fence in `file` (0 for a whole file): error lines are relative
    /// to the block's first line, which is the line after the fence.
    fence_line: usize,
    /// `block 2 at line 40`, or `whole file`.
    position: String,
    text: String,
}

/// A ```toml block of a Markdown file: the line of its opening fence and its content.
#[derive(Debug, PartialEq, Eq)]
struct TomlBlock {
    fence_line: usize,
    text: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root (two folders above the roster crate) exists")
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

/// Files under `dir` (recursively) whose name ends with `suffix`, in a stable order.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            found.extend(files_under(&path, suffix));
        } else if path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(suffix)) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The opening fence of a fenced code block: its character, its length and its indentation, when
/// the line is one.
fn opening_fence(line: &str) -> Option<(char, usize, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let fence_char = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let length = rest.chars().take_while(|c| *c == fence_char).count();
    if length < 3 {
        return None;
    }
    let info = rest[length..].trim();
    if fence_char == '`' && info.contains('`') {
        return None;
    }
    Some((fence_char, length, indent, info))
}

fn closes(line: &str, fence_char: char, length: usize) -> bool {
    let trimmed = line.trim();
    trimmed.chars().take_while(|c| *c == fence_char).count() >= length && trimmed.chars().all(|c| c == fence_char)
}

/// Every fenced block whose info string starts with `toml`, with its indentation removed.
fn toml_blocks(markdown: &str) -> Vec<TomlBlock> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some((fence_char, length, indent, info)) = opening_fence(line) else { continue };
        let is_toml = info.split_whitespace().next().is_some_and(|lang| lang.eq_ignore_ascii_case("toml"));
        let mut text = String::new();
        for (_, inner) in lines.by_ref() {
            if closes(inner, fence_char, length) {
                break;
            }
            let unindented = inner.len() - inner.trim_start_matches(' ').len();
            text.push_str(&inner[unindented.min(indent)..]);
            text.push('\n');
        }
        if is_toml {
            blocks.push(TomlBlock { fence_line: index + 1, text });
        }
    }
    blocks
}

/// Whether a block is marked as a fragment: its first non-blank line is `# fragment...`.
fn marked_fragment(text: &str) -> bool {
    text.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.trim().starts_with("# fragment"))
}

/// Whether a block has the `[time]` table that every whole configuration has.
fn has_time_table(text: &str) -> bool {
    text.lines().any(|line| {
        let compact: String =
            line.split('#').next().unwrap_or_default().chars().filter(|c| !c.is_whitespace()).collect();
        compact == "[time]" || compact.starts_with("time={") || compact.starts_with("time.zone=")
    })
}

fn markdown_examples(root: &Path) -> Vec<Example> {
    let mut files = files_under(&root.join("docs"), ".md");
    let readme = root.join("README.md");
    if readme.is_file() {
        files.insert(0, readme);
    }
    let mut examples = Vec::new();
    for path in files {
        let file = relative(root, &path);
        let markdown = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        for (number, block) in toml_blocks(&markdown).into_iter().enumerate() {
            if marked_fragment(&block.text) || !has_time_table(&block.text) {
                continue;
            }
            examples.push(Example {
                file: file.clone(),
                fence_line: block.fence_line,
                position: format!("```toml block {} at line {}", number + 1, block.fence_line),
                text: block.text,
            });
        }
    }
    examples
}

fn folder_examples(root: &Path) -> Vec<Example> {
    files_under(&root.join("examples"), ".toml")
        .into_iter()
        .map(|path| {
            let file = relative(root, &path);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {file}: {e}"));
            Example { file, fence_line: 0, position: "whole file".to_string(), text }
        })
        .collect()
}

/// `file:line: key: message`, with the line counted in `file` rather than in the block.
fn describe(example: &Example, error: &ConfigError) -> String {
    match error.line {
        Some(line) => format!("{}:{}: {}: {}", example.file, example.fence_line + line, error.key, error.message),
        None => format!("{}: {}: {}", example.file, error.key, error.message),
    }
}

/// Loads every example; panics with all the failures at once.
fn check_all(examples: &[Example]) {
    let mut report = String::new();
    for example in examples {
        if let Err(errors) = load(&example.text, &example.file) {
            let _ = writeln!(report, "{} ({}): {} problem(s)", example.file, example.position, errors.len());
            for error in &errors {
                let _ = writeln!(report, "    {}", describe(example, error));
            }
        }
    }
    assert!(report.is_empty(), "example configurations that roster refuses:\n{report}");
}

#[test]
fn whole_configurations_in_the_documentation_are_valid() {
    let root = repo_root();
    let examples = markdown_examples(&root);
    assert!(
        examples.iter().any(|e| e.file == "docs/configuration.md"),
        "docs/configuration.md opens with a complete example configuration, but no whole-config ```toml block was found in it"
    );
    check_all(&examples);
}

#[test]
fn configurations_in_the_examples_folder_are_valid() {
    check_all(&folder_examples(&repo_root()));
}

#[test]
fn the_configuration_written_by_roster_init_is_valid() {
    let roster = env!("CARGO_BIN_EXE_roster");
    let runs: [&[&str]; 2] = [
        &[],
        &[
            "--ldap-url",
            "ldaps://ldap.corp.example:636",
            "--base",
            "dc=corp,dc=example",
            "--bind-dn",
            "cn=roster,ou=services,dc=corp,dc=example",
            "--ca-file",
            "ca.pem",
        ],
    ];
    let mut examples = Vec::new();
    for (i, args) in runs.iter().enumerate() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let output = Command::new(roster)
            .arg("init")
            .arg(dir.path())
            .args(*args)
            .env_remove("ROSTER_CONFIG")
            .output()
            .expect("roster runs");
        assert!(
            output.status.success(),
            "roster init {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let written = dir.path().join("roster.toml");
        let text = std::fs::read_to_string(&written).unwrap_or_else(|e| panic!("reading {}: {e}", written.display()));
        let command: String =
            std::iter::once("roster init DIR").chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
        examples.push(Example {
            file: format!("DIR/roster.toml written by `{command}`"),
            fence_line: 0,
            position: format!("init run {}", i + 1),
            text,
        });
    }
    check_all(&examples);
}

#[test]
fn toml_blocks_are_found_with_their_lines_and_fragments_are_told_apart() {
    let markdown = "\
# Title

```toml
[time]
zone = \"Europe/Berlin\"
```

- a list item:

  ~~~~ TOML extra
  [time]
  ~~~
  zone = \"UTC\"
  ~~~~

```toml
# fragment: only the login section
[login]
```

```json
{\"time\": 1}
```
";
    let blocks = toml_blocks(markdown);
    assert_eq!(
        blocks,
        vec![
            TomlBlock { fence_line: 3, text: "[time]\nzone = \"Europe/Berlin\"\n".to_string() },
            TomlBlock { fence_line: 10, text: "[time]\n~~~\nzone = \"UTC\"\n".to_string() },
            TomlBlock { fence_line: 16, text: "# fragment: only the login section\n[login]\n".to_string() },
        ]
    );
    assert!(has_time_table(&blocks[0].text) && !marked_fragment(&blocks[0].text));
    assert!(has_time_table(&blocks[1].text));
    assert!(marked_fragment(&blocks[2].text) && !has_time_table(&blocks[2].text));
    assert!(has_time_table("time = { zone = \"UTC\" }\n") && has_time_table("[ time ] # what today means\n"));
    assert!(!has_time_table("[timeout]\n") && !has_time_table("# [time]\n"));
}
