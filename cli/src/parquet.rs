//! `credence export --parquet`: the ledger as Apache Parquet tables for DuckDB, Spark and other analytics engines.
//!
//! # Tables (one file each in the output directory)
//! * `blocks.parquet`: `height`, `time` (UTC timestamp, ms), `proposer`, `records`,
//!   `tree_size`, `tree_root` (hex).
//! * `attestations.parquet`: one row per committed attestation: `leaf_index`, `height`,
//!   `id` (hex), `attester`, `sequence`, `issued_at` (UTC timestamp, ms), `kind`.
//! * `<kind>.parquet` (the kind's name with `-` as `_`, e.g. `rd_spend.parquet`): one
//!   row per attestation of that kind: `leaf_index`, `height`, `id`, `attester`,
//!   `issued_at`, then the claim's fields as the API shows them (`ClaimView`) in name
//!   order, nested objects flattened with `_` (`amount_currency`, `amount_fen`). Amounts are integer
//!   fen (`INT64`) with their currency beside them; the API's decimal string is left
//!   out. The amounts that may be confidential (docs/encoding.md §13) add `<name>_sealed`
//!   (`BOOLEAN`) and `<name>_commitment` (hex); a sealed amount's fen is NULL, never 0, so
//!   `sum(amount_fen)` adds only amounts in clear and `count(*) filter (where amount_sealed)`
//!   counts the others. Every kind, today's and those added later (the query log, loans, governance),
//!   gets its table from the same rule, so the export never lags the encoding.
//!
//! # Types
//! A claim column is typed from its values over the whole ledger (a first pass):
//! integers `INT64`, booleans `BOOLEAN`, strings that are all `YYYY-MM-DD` dates `DATE`,
//! other strings (ids, codes, hex hashes) and lists `STRING` (lists as JSON). A column
//! some rows lack, or hold as `null`, is optional. An integer above `i64::MAX` makes its
//! column a string rather than lose a digit.
//!
//! # Bounds
//! Two passes over the blocks (the schema, then the rows), each streaming: memory holds
//! one block and at most [`ROW_GROUP_ROWS_MAX`] buffered rows per table. Output goes to
//! `<out>.partial/` and is renamed into place when every table is complete.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use credence_ledger::block::CertifiedBlock;
use credence_ledger::ids::Date;
use credence_node::api::views::ClaimView;
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;

/// Rows buffered per table before they are written as one row group.
pub const ROW_GROUP_ROWS_MAX: usize = 65_536;
/// Most columns a kind's table may have (a claim is at most 2,048 bytes; this is a
/// guard against a view that would flatten into thousands).
const COLUMNS_MAX: usize = 256;

/// A column's type, from its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Int,
    Bool,
    Date,
    Text,
    /// UTC milliseconds (fixed columns only).
    Timestamp,
}

impl Ty {
    /// The narrowest type holding both (a timestamp column holds integer milliseconds).
    fn join(self, other: Ty) -> Ty {
        match (self, other) {
            (Ty::Timestamp, Ty::Int) => Ty::Timestamp,
            (a, b) if a == b => a,
            _ => Ty::Text,
        }
    }

    fn of(v: &Value) -> Option<Ty> {
        match v {
            Value::Null => None,
            Value::Bool(_) => Some(Ty::Bool),
            Value::Number(n) if n.as_i64().is_some() => Some(Ty::Int),
            Value::String(s) if Date::parse("date", s).is_ok() => Some(Ty::Date),
            _ => Some(Ty::Text),
        }
    }

    fn schema(self) -> &'static str {
        match self {
            Ty::Int => "int64",
            Ty::Bool => "boolean",
            Ty::Date => "int32",
            Ty::Text => "binary",
            Ty::Timestamp => "int64",
        }
    }

    fn annotation(self) -> &'static str {
        match self {
            Ty::Date => " (DATE)",
            Ty::Text => " (STRING)",
            Ty::Timestamp => " (TIMESTAMP(MILLIS,true))",
            Ty::Int | Ty::Bool => "",
        }
    }
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    /// `None` while every value seen was null.
    ty: Option<Ty>,
    optional: bool,
}

/// A table's columns in order of first appearance.
#[derive(Debug, Default)]
struct Schema {
    columns: Vec<Column>,
    index: HashMap<String, usize>,
    rows: u64,
}

impl Schema {
    fn fixed(columns: &[(&str, Ty)]) -> Schema {
        let mut s = Schema::default();
        for (name, ty) in columns {
            s.index.insert(name.to_string(), s.columns.len());
            s.columns.push(Column { name: name.to_string(), ty: Some(*ty), optional: false });
        }
        s
    }

    /// Widens the schema to hold `row`.
    fn observe(&mut self, kind: &str, row: &[(String, Value)]) -> Result<()> {
        let mut present = vec![false; self.columns.len()];
        for (name, v) in row {
            let i = match self.index.get(name) {
                Some(&i) => i,
                None => {
                    if self.columns.len() >= COLUMNS_MAX {
                        bail!("{kind}: more than {COLUMNS_MAX} columns");
                    }
                    self.index.insert(name.clone(), self.columns.len());
                    // A column that earlier rows lacked is optional.
                    self.columns.push(Column { name: name.clone(), ty: None, optional: self.rows > 0 });
                    present.push(false);
                    self.columns.len() - 1
                }
            };
            present[i] = true;
            let c = &mut self.columns[i];
            match Ty::of(v) {
                None => c.optional = true,
                Some(t) => c.ty = Some(c.ty.map_or(t, |old| old.join(t))),
            }
        }
        for (c, seen) in self.columns.iter_mut().zip(present) {
            c.optional |= !seen;
        }
        self.rows += 1;
        Ok(())
    }

    fn message_type(&self) -> String {
        let mut m = String::from("message credence {\n");
        for c in &self.columns {
            // A column that was null everywhere is an optional string.
            let ty = c.ty.unwrap_or(Ty::Text);
            let rep = if c.optional || c.ty.is_none() { "optional" } else { "required" };
            m.push_str(&format!("  {rep} {} {}{};\n", ty.schema(), c.name, ty.annotation()));
        }
        m.push('}');
        m
    }
}

/// The claim's fields as flat `(column, value)` pairs, after the common columns.
fn claim_row(view: &ClaimView) -> Result<Vec<(String, Value)>> {
    let Value::Object(fields) = serde_json::to_value(view)? else { bail!("a claim view is not a JSON object") };
    let mut out = Vec::new();
    for (k, v) in fields {
        if k != "kind" {
            flatten(&k, v, &mut out);
        }
    }
    Ok(out)
}

fn flatten(name: &str, v: Value, out: &mut Vec<(String, Value)>) {
    match v {
        // A money view: integer fen and currency; its decimal string repeats the fen. An amount
        // that may be sealed adds `sealed` and `commitment`; a sealed one has a NULL fen, never 0
        // (`disclosed` is a reader's flag, always false in an export).
        Value::Object(o) if o.contains_key("fen") => {
            for (k, v) in o {
                if k != "amount" && k != "disclosed" {
                    flatten(&format!("{name}_{k}"), v, out);
                }
            }
        }
        Value::Object(o) => {
            for (k, v) in o {
                flatten(&format!("{name}_{k}"), v, out);
            }
        }
        Value::Array(_) => out.push((name.to_string(), Value::String(v.to_string()))),
        v => out.push((name.to_string(), v)),
    }
}

/// Parquet's `DATE`: days since 1970-01-01.
fn days(d: Date) -> Option<i32> {
    i32::try_from(d.days_since_epoch()).ok()
}

/// The table file name of a claim kind.
fn table_name(kind: &str) -> String {
    kind.replace('-', "_")
}

fn common_row(cb: &CertifiedBlock, i: usize) -> Vec<(String, Value)> {
    let h = &cb.block.header;
    let leaf = &cb.block.leaves[i];
    let body = &leaf.attestation.body;
    let first = h.tree_size - cb.block.leaves.len() as u64;
    vec![
        ("leaf_index".into(), Value::from(first + i as u64)),
        ("height".into(), Value::from(h.height)),
        ("id".into(), Value::from(leaf.id.to_string())),
        ("attester".into(), Value::from(body.attester.to_string())),
        ("issued_at".into(), Value::from(body.issued_at_ms)),
    ]
}

const COMMON: [(&str, Ty); 5] = [
    ("leaf_index", Ty::Int),
    ("height", Ty::Int),
    ("id", Ty::Text),
    ("attester", Ty::Text),
    ("issued_at", Ty::Timestamp),
];

/// One table being written: its schema and the rows not yet in a row group.
struct Table {
    schema: Schema,
    writer: SerializedFileWriter<fs::File>,
    rows: Vec<Vec<Value>>,
    written: u64,
}

impl Table {
    fn create(path: &Path, schema: Schema) -> Result<Table> {
        let message = schema.message_type();
        let parsed = parse_message_type(&message).with_context(|| format!("schema of {}", path.display()))?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let file = fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let writer = SerializedFileWriter::new(file, Arc::new(parsed), Arc::new(props))?;
        Ok(Table { schema, writer, rows: Vec::new(), written: 0 })
    }

    fn push(&mut self, row: Vec<(String, Value)>) -> Result<()> {
        let mut cells = vec![Value::Null; self.schema.columns.len()];
        for (name, v) in row {
            let i = *self.schema.index.get(&name).with_context(|| format!("column {name} not in the schema"))?;
            cells[i] = v;
        }
        self.rows.push(cells);
        if self.rows.len() >= ROW_GROUP_ROWS_MAX {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group()?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column()? {
            let c = &self.schema.columns[i];
            let values = self.rows.iter().map(|r| &r[i]);
            let defs: Vec<i16> = values.clone().map(|v| i16::from(!v.is_null())).collect();
            let defs = (c.optional || c.ty.is_none()).then_some(defs.as_slice());
            let present = values.filter(|v| !v.is_null());
            let bad = || anyhow::anyhow!("column {}: a value does not have the column's type", c.name);
            match c.ty.unwrap_or(Ty::Text) {
                Ty::Int | Ty::Timestamp => {
                    let v: Vec<i64> = present.map(|v| v.as_i64().ok_or_else(bad)).collect::<Result<_>>()?;
                    col.typed::<Int64Type>().write_batch(&v, defs, None)?;
                }
                Ty::Bool => {
                    let v: Vec<bool> = present.map(|v| v.as_bool().ok_or_else(bad)).collect::<Result<_>>()?;
                    col.typed::<BoolType>().write_batch(&v, defs, None)?;
                }
                Ty::Date => {
                    let v: Vec<i32> = present
                        .map(|v| v.as_str().and_then(|s| Date::parse("date", s).ok()).and_then(days).ok_or_else(bad))
                        .collect::<Result<_>>()?;
                    col.typed::<Int32Type>().write_batch(&v, defs, None)?;
                }
                Ty::Text => {
                    let v: Vec<ByteArray> = present
                        .map(|v| match v {
                            Value::String(s) => ByteArray::from(s.as_str()),
                            other => ByteArray::from(other.to_string().as_str()),
                        })
                        .collect();
                    col.typed::<ByteArrayType>().write_batch(&v, defs, None)?;
                }
            }
            col.close()?;
            i += 1;
        }
        rg.close()?;
        self.written += self.rows.len() as u64;
        self.rows.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        self.flush()?;
        self.writer.close()?;
        Ok(self.written)
    }
}

/// What was written: rows per table file.
pub type Written = BTreeMap<String, u64>;

/// Writes the tables for blocks `1..=head` to `out` (a directory that must not exist),
/// reading each block twice through `block`.
pub fn export(out: &Path, head: u64, mut block: impl FnMut(u64) -> Result<CertifiedBlock>) -> Result<Written> {
    if out.exists() {
        bail!("--out: {} exists; give a new directory", out.display());
    }
    // Pass 1: the kinds' schemas.
    let mut kinds: BTreeMap<String, Schema> = BTreeMap::new();
    for h in 1..=head {
        let cb = block(h)?;
        for (i, leaf) in cb.block.leaves.iter().enumerate() {
            let claim = &leaf.attestation.body.claim;
            let kind = claim.kind().name();
            let schema = kinds.entry(table_name(kind)).or_insert_with(|| Schema::fixed(&COMMON));
            let mut row = common_row(&cb, i);
            row.extend(claim_row(&ClaimView::from(claim))?);
            schema.observe(kind, &row)?;
        }
    }
    let tmp = PathBuf::from(format!("{}.partial", out.display()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("--out: cannot create {}", tmp.display()))?;
    // Pass 2: the rows.
    let blocks_schema = Schema::fixed(&[
        ("height", Ty::Int),
        ("time", Ty::Timestamp),
        ("proposer", Ty::Text),
        ("records", Ty::Int),
        ("tree_size", Ty::Int),
        ("tree_root", Ty::Text),
    ]);
    let mut common = COMMON.to_vec();
    common.insert(4, ("sequence", Ty::Int));
    common.push(("kind", Ty::Text));
    let mut blocks = Table::create(&tmp.join("blocks.parquet"), blocks_schema)?;
    let mut attestations = Table::create(&tmp.join("attestations.parquet"), Schema::fixed(&common))?;
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for (name, schema) in kinds {
        let table = Table::create(&tmp.join(format!("{name}.parquet")), schema)?;
        tables.insert(name, table);
    }
    for h in 1..=head {
        let cb = block(h)?;
        let header = &cb.block.header;
        blocks.push(vec![
            ("height".into(), Value::from(header.height)),
            ("time".into(), Value::from(header.time_ms)),
            ("proposer".into(), Value::from(header.proposer.to_string())),
            ("records".into(), Value::from(cb.block.leaves.len() as u64)),
            ("tree_size".into(), Value::from(header.tree_size)),
            ("tree_root".into(), Value::from(header.tree_root.to_string())),
        ])?;
        for (i, leaf) in cb.block.leaves.iter().enumerate() {
            let body = &leaf.attestation.body;
            let kind = body.claim.kind().name();
            let mut row = common_row(&cb, i);
            row.push(("sequence".into(), Value::from(body.sequence)));
            row.push(("kind".into(), Value::from(kind)));
            attestations.push(row)?;
            let mut row = common_row(&cb, i);
            row.extend(claim_row(&ClaimView::from(&body.claim))?);
            let table = tables.get_mut(&table_name(kind)).context("a kind appeared after the first pass")?;
            table.push(row)?;
        }
    }
    let mut written = Written::new();
    written.insert("blocks".into(), blocks.finish()?);
    written.insert("attestations".into(), attestations.finish()?);
    for (name, table) in tables {
        written.insert(name, table.finish()?);
    }
    fs::rename(&tmp, out).with_context(|| format!("--out: cannot rename {} into place", tmp.display()))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_widen_to_text_and_become_optional_when_missing_or_null() {
        let mut s = Schema::fixed(&[("id", Ty::Text)]);
        let row = |pairs: &[(&str, Value)]| pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Vec<_>>();
        s.observe("k", &row(&[("id", "a".into()), ("n", 1.into()), ("d", "2024-01-31".into())])).expect("row");
        s.observe("k", &row(&[("id", "b".into()), ("n", "x".into()), ("d", Value::Null), ("late", true.into())]))
            .expect("row");
        s.observe("k", &row(&[("id", "c".into()), ("n", 2.into())])).expect("row");
        let col = |n: &str| s.columns[s.index[n]].clone();
        assert_eq!((col("id").ty, col("id").optional), (Some(Ty::Text), false));
        assert_eq!((col("n").ty, col("n").optional), (Some(Ty::Text), false), "an int column with a string is text");
        assert_eq!((col("d").ty, col("d").optional), (Some(Ty::Date), true));
        assert_eq!((col("late").ty, col("late").optional), (Some(Ty::Bool), true), "first seen in row 2");
        assert_eq!(
            s.message_type(),
            "message credence {\n  required binary id (STRING);\n  required binary n (STRING);\n  \
             optional int32 d (DATE);\n  optional boolean late;\n}"
        );
        let big = u64::MAX;
        assert_eq!(Ty::of(&Value::from(big)), Some(Ty::Text), "no digit is lost to INT64");
    }

    #[test]
    fn money_flattens_to_fen_and_currency() {
        let mut out = Vec::new();
        let money = serde_json::json!({"fen": 125, "currency": "CNY", "amount": "1.25"});
        flatten("secured", serde_json::json!({"v": money}), &mut out);
        flatten("tags", serde_json::json!(["a", "b"]), &mut out);
        let sealed = serde_json::json!({"fen": null, "currency": "CNY", "amount": null, "sealed": true, "commitment": "ab", "disclosed": false});
        flatten("amount", sealed, &mut out);
        assert_eq!(
            out,
            vec![
                ("secured_v_currency".to_string(), Value::from("CNY")),
                ("secured_v_fen".to_string(), Value::from(125)),
                ("tags".to_string(), Value::from("[\"a\",\"b\"]")),
                ("amount_commitment".to_string(), Value::from("ab")),
                ("amount_currency".to_string(), Value::from("CNY")),
                ("amount_fen".to_string(), Value::Null),
                ("amount_sealed".to_string(), Value::from(true)),
            ]
        );
    }
}
