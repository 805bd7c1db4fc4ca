//! Output of `steward admin`: human-readable by default (`--output table`: tables for lists,
//! `key value` lines for objects), the API's JSON with `--output json`, and only the id of each
//! created or listed object, one a line, with `--output id` (for `$(…)` in scripts).

use std::io::Write;

use serde_json::Value;

use super::client::{CliError, CliResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for lists, `key value` lines for objects (the default; `human` is an alias).
    #[value(alias = "human")]
    Table,
    /// The API's JSON, pretty-printed.
    Json,
    /// Only the id of each object, one a line.
    Id,
}

/// Prints an API answer.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
}

impl Printer {
    /// An object (or anything else) as `key: value` lines, pretty JSON, or its `id` field.
    pub fn object(&self, value: &Value, id: &str) -> CliResult<()> {
        match self.format {
            Format::Json => {
                self.json(value);
                return Ok(());
            }
            Format::Id => return print_ids(std::slice::from_ref(value), id),
            Format::Table => {}
        }
        match value {
            Value::Object(fields) => {
                let width = fields.keys().map(String::len).max().unwrap_or(0);
                let mut out = String::new();
                for (key, value) in fields {
                    out.push_str(&format!("{key:<width$}  {}\n", cell(value)));
                }
                emit(&out);
            }
            Value::Null => {}
            other => emit(&format!("{}\n", cell(other))),
        }
        Ok(())
    }

    /// The array at `value[key]` as a table of `columns`, the whole answer as JSON, or each row's
    /// `id` field.
    pub fn list(&self, value: &Value, key: &str, columns: &[&str], id: &str) -> CliResult<()> {
        let rows = value[key].as_array().cloned().unwrap_or_default();
        match self.format {
            Format::Json => self.json(value),
            Format::Id => return print_ids(&rows, id),
            Format::Table => self.table(&rows, columns),
        }
        Ok(())
    }

    /// Rows as an aligned table.
    pub fn table(&self, rows: &[Value], columns: &[&str]) {
        if rows.is_empty() {
            emit("(none)\n");
            return;
        }
        let cells: Vec<Vec<String>> =
            rows.iter().map(|row| columns.iter().map(|c| cell(&row[*c])).collect()).collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(c.len()))
            .collect();
        let mut out = String::new();
        let line = |values: Vec<&str>| {
            let padded: Vec<String> =
                values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}", w = *w)).collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        out.push_str(&line(
            columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>().iter().map(String::as_str).collect(),
        ));
        for row in &cells {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        emit(&out);
    }

    pub fn json(&self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        emit(&format!("{text}\n"));
    }

    /// A one-line confirmation in table mode, the JSON answer in JSON mode, `id` (the object the
    /// command acted on) in id mode.
    pub fn done(&self, message: &str, value: &Value, id: &str) {
        match self.format {
            Format::Json if value.is_null() => self.json(&Value::Object(Default::default())),
            Format::Json => self.json(value),
            Format::Table => emit(&format!("{message}\n")),
            Format::Id => emit(&format!("{id}\n")),
        }
    }
}

/// `row[id]` of each row, one a line (an array of strings gives one line per entry). A row without
/// the field is an error, so a script never reads an empty id as success.
fn print_ids(rows: &[Value], id: &str) -> CliResult<()> {
    let mut out = String::new();
    for row in rows {
        match &row[id] {
            Value::String(text) => out.push_str(&format!("{text}\n")),
            Value::Number(number) => out.push_str(&format!("{number}\n")),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                for item in items.iter().filter_map(Value::as_str) {
                    out.push_str(&format!("{item}\n"));
                }
            }
            _ => {
                return Err(CliError::Transport(format!(
                    "--output id: the answer has no {id} field; use --output json"
                )));
            }
        }
    }
    emit(&out);
    Ok(())
}

/// One value as a table cell: strings bare, null as `-`, everything else compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.iter().all(|i| i.is_string()) => {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
            }
        }
        other => other.to_string(),
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
