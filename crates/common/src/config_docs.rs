//! The operators' reference for configuration is the table in docs/configuration.md. These
//! tests hold it to the code: it names exactly the variables `config/env-vars.toml` lists
//! (so a variable cannot be added, renamed or dropped without the table following), and
//! where it gives a plain default for a shared setting, that default is the one
//! `config/base.toml` compiles in.

use crate::config::{BASE_DEFAULTS, ENV_VARS};
use ::config::{Config, File, FileFormat};
use std::collections::BTreeSet;

const CONFIGURATION_DOC: &str = include_str!("../../../docs/configuration.md");

/// The rows of the "## Variables" table: its cells, split on ` | `.
fn variable_rows() -> Vec<Vec<&'static str>> {
    let start = CONFIGURATION_DOC
        .find("\n## Variables\n")
        .expect("docs/configuration.md has a Variables section");
    let section = &CONFIGURATION_DOC[start + 1..];
    let section = &section[..section[1..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 1)];
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter(|row| row.starts_with('`'))
        .map(|row| row.trim_end_matches(" |").split(" | ").collect())
        .collect()
}

/// The text between each pair of backticks in `cell`.
fn quoted(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_configuration_table_lists_exactly_the_variables_read() {
    let rows = variable_rows();
    assert!(rows.len() > 40, "found only {} rows", rows.len());
    let documented: BTreeSet<&str> = rows.iter().flat_map(|row| quoted(row[0])).collect();
    let read: BTreeSet<&str> = ENV_VARS.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        documented.difference(&read).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "documented in docs/configuration.md, read by no service"
    );
    assert_eq!(
        read.difference(&documented).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "read by a service (config/env-vars.toml), missing from docs/configuration.md"
    );
}

/// A row may name several variables (`A` / `B`) with as many defaults (`1` / empty); a
/// default that is one quoted value, or `empty`, is compared with base.toml's.
#[test]
fn the_configuration_table_gives_the_compiled_shared_defaults() {
    let base = Config::builder()
        .add_source(File::from_str(BASE_DEFAULTS, FileFormat::Toml))
        .build()
        .expect("base.toml parses");
    let mut compared = 0;
    for row in variable_rows() {
        let names = quoted(row[0]);
        let defaults: Vec<&str> = row[1].split(" / ").collect();
        if names.len() != defaults.len() {
            continue;
        }
        for (name, default) in names.iter().zip(defaults) {
            let documented = match quoted(default).as_slice() {
                [value] if default.starts_with('`') => *value,
                _ if default.starts_with("empty") => "",
                _ => continue,
            };
            let Some(var) = ENV_VARS.iter().find(|v| v.name == *name) else {
                continue;
            };
            let Ok(compiled) = base.get_string(&var.key) else {
                continue; // a service's own section: its defaults live in the service
            };
            assert_eq!(
                documented, compiled,
                "docs/configuration.md gives {name} the default {documented:?}, base.toml {compiled:?}"
            );
            compared += 1;
        }
    }
    assert!(compared > 30, "compared only {compared} defaults");
}
