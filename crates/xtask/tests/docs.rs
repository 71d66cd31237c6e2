//! The documents are part of the product: README.md is the front door and docs/ holds the
//! rest. These checks keep them navigable as files move: every relative link (and the
//! heading its anchor names) exists, README stays short enough to read, and no document
//! reads like a lab notebook (a run belongs in a dated file under docs/benchmarks).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Phrases that describe how a document came to be rather than what is.
const NOTEBOOK_PHRASES: [&str; 2] = ["earlier run", "this issue"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every Markdown file under docs/.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                found.push(path);
            }
        }
    }
    let mut found = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut found);
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// The line without its inline code spans (`...`), which hold no links.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect()
}

/// The targets of the inline links and images on `line`: `[text](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        if rest[..at].contains('[')
            && let Some(end) = after.find(')')
        {
            targets.push(after[..end].to_owned());
        }
        rest = after;
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens,
/// a repeated heading numbered from -1.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#').trim();
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while anchors.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        anchors.insert(candidate);
    }
    anchors
}

#[test]
fn every_relative_link_points_at_a_file_and_heading_that_exist() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = read(&document);
        for target in prose(&text).into_iter().flat_map(link_targets) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                document.clone()
            } else {
                document.parent().expect("a directory").join(file)
            };
            let name = document.strip_prefix(root()).unwrap_or(&document).display();
            if !path.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor
                && path.extension().is_some_and(|ext| ext == "md")
                && !anchors(&read(&path)).contains(anchor)
            {
                broken.push(format!("{name}: {target}: no such heading"));
            }
        }
    }
    assert!(checked > 50, "checked only {checked} links");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn no_document_reads_like_a_lab_notebook() {
    let mut found = Vec::new();
    for document in documents() {
        let text = read(&document).to_lowercase();
        for phrase in NOTEBOOK_PHRASES {
            if text.contains(phrase) {
                found.push(format!("{}: {phrase:?}", document.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "state what is instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_readme_stays_a_front_door() {
    let readme = read(&root().join("README.md"));
    let lines: Vec<&str> = readme.lines().collect();
    assert!(lines.len() <= 230, "README.md has {} lines", lines.len());
    let long: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.chars().count() > 100)
        .map(|(n, line)| format!("{}: {line}", n + 1))
        .collect();
    assert!(
        long.is_empty(),
        "README lines over 100 characters:\n{}",
        long.join("\n")
    );
    for document in documents()
        .iter()
        .filter(|d| d.starts_with(root().join("docs")))
    {
        let relative = document.strip_prefix(root()).expect("under the root");
        let link = format!("({})", relative.display());
        let linked = readme.contains(&link) || {
            let index = read(&root().join("docs/benchmarks/README.md"));
            let name = relative.file_name().expect("a name").to_string_lossy();
            relative.starts_with("docs/benchmarks") && index.contains(&format!("({name})"))
        };
        assert!(
            linked,
            "README.md (or the benchmarks index) links {}",
            relative.display()
        );
    }
}
