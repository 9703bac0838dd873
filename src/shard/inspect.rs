//! `etd inspect`: list the samples of one shard (keys, fields, sizes) without reading member data.
//! Structural problems found on the way are listed too; inspect shows whatever it could read.

use std::path::Path;

use indexmap::IndexMap;
use serde::Serialize;

use super::read::{display_file_name, scan_shard, Problem};

/// Longest key column in the text rendering; longer keys push their line's fields right.
const MAX_KEY_COLUMN: usize = 40;

/// What one shard holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectReport {
    /// File name of the shard.
    pub file: String,
    /// `none` or `zstd` (decided by the file name).
    pub compression: String,
    /// Samples in archive order (runs of adjacent members sharing a key).
    pub samples: Vec<SampleInfo>,
    pub total_samples: u64,
    pub total_members: u64,
    /// Sum of member data sizes (uncompressed).
    pub total_member_bytes: u64,
    /// Per field, in order of first appearance: how many members and how many bytes.
    pub fields: Vec<FieldSummary>,
    /// Structural problems found while reading.
    pub problems: Vec<Problem>,
}

/// One sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleInfo {
    pub key: String,
    pub fields: Vec<FieldInfo>,
}

/// One member of a sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldInfo {
    /// Field name (text after the key's dot).
    pub name: String,
    /// Data size in bytes.
    pub bytes: u64,
}

/// Totals for one field over the shard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSummary {
    pub name: String,
    pub count: u64,
    pub bytes: u64,
}

/// List the samples of the shard at `path` (`.tar` or `.tar.zst`, decided by name). Errors when
/// the name is not a shard name or the file cannot be opened; problems inside the shard are in the
/// report.
pub fn inspect_shard(path: &Path) -> anyhow::Result<InspectReport> {
    let mut samples: Vec<SampleInfo> = Vec::new();
    let mut fields: IndexMap<String, (u64, u64)> = IndexMap::new();
    let scan = scan_shard(path, |member, _data| {
        let info = FieldInfo { name: member.field.to_string(), bytes: member.size };
        match samples.last_mut() {
            Some(last) if !member.starts_sample => last.fields.push(info),
            _ => samples.push(SampleInfo { key: member.key.to_string(), fields: vec![info] }),
        }
        let totals = fields.entry(member.field.to_string()).or_insert((0, 0));
        totals.0 += 1;
        totals.1 = totals.1.saturating_add(member.size);
        Ok(())
    })?;
    Ok(InspectReport {
        file: display_file_name(path),
        compression: scan.compression.as_str().to_string(),
        total_samples: scan.samples,
        total_members: scan.members,
        total_member_bytes: scan.member_bytes,
        samples,
        fields: fields.into_iter().map(|(name, (count, bytes))| FieldSummary { name, count, bytes }).collect(),
        problems: scan.problems,
    })
}

/// Human size: `N B`, `N.N KiB`, `N.N MiB`, `N.N GiB`.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    // Precision loss only matters beyond 2^53 bytes.
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    }
}

/// `text` safe to print: control characters other than newlines (a member name may hold an
/// escape sequence that would drive the terminal) are shown escaped, as `\u{1b}`.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn field_label(name: &str) -> &str {
    if name.is_empty() {
        "(no field)"
    } else {
        name
    }
}

/// One line per sample (`key  field (size)  field (size) ...`), a summary line, a per-field table,
/// then the problems.
pub fn render_inspect_text(r: &InspectReport) -> String {
    let mut out = String::new();
    let key_width = r.samples.iter().map(|s| s.key.chars().count()).max().unwrap_or(0).min(MAX_KEY_COLUMN);
    for s in &r.samples {
        let mut line = format!("{:<key_width$}", s.key);
        for f in &s.fields {
            line.push_str(&format!("  {} ({})", field_label(&f.name), human_size(f.bytes)));
        }
        out.push_str(&line);
        out.push('\n');
    }
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    out.push_str(&format!(
        "{}: {}, {}, {} of member data (compression {})\n",
        r.file,
        plural(r.total_samples, "sample", "samples"),
        plural(r.total_members, "member", "members"),
        human_size(r.total_member_bytes),
        r.compression
    ));
    if !r.fields.is_empty() {
        let rows: Vec<[String; 3]> = r
            .fields
            .iter()
            .map(|f| [field_label(&f.name).to_string(), f.count.to_string(), human_size(f.bytes)])
            .collect();
        let header = ["field".to_string(), "count".to_string(), "size".to_string()];
        let width =
            |i: usize| rows.iter().chain(std::iter::once(&header)).map(|r| r[i].chars().count()).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        for row in std::iter::once(&header).chain(rows.iter()) {
            out.push_str(&format!("  {:<w0$}  {:>w1$}  {:>w2$}\n", row[0], row[1], row[2]));
        }
    }
    if !r.problems.is_empty() {
        out.push_str(&format!("{}:\n", plural(r.problems.len() as u64, "problem", "problems")));
        for p in &r.problems {
            out.push_str(&p.render());
            out.push('\n');
        }
    }
    printable(&out)
}

#[cfg(test)]
mod tests {
    use super::super::read::test_support::{tar_of, zstd_of};
    use super::*;
    use fs_err as fs;

    fn fi(name: &str, bytes: u64) -> FieldInfo {
        FieldInfo { name: name.into(), bytes }
    }

    fn write_shard(dir: &Path, name: &str, tar: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        let bytes = if name.ends_with(".zst") { zstd_of(tar) } else { tar.to_vec() };
        fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\tc\nd"), "a\\u{1b}[2Jb\\tc\nd");
    }

    #[test]
    fn lists_keys_fields_and_sizes() {
        let big = vec![0u8; 3 * 1024 + 512];
        let tar = tar_of(&[
            ("SN2020abc.npy", &big),
            ("SN2020abc.json", b"{\"z\":0.1}"),
            ("SN2020abc.cls", b"2"),
            ("b.npy", b"0123456789"),
            ("b.json", b"{}"),
        ]);
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, compression) in [("ds-000000.tar", "none"), ("ds-000000.tar.zst", "zstd")] {
            let r = inspect_shard(&write_shard(dir.path(), name, &tar)).expect("inspect");
            assert_eq!(r.file, name);
            assert_eq!(r.compression, compression);
            assert_eq!(
                r.samples,
                vec![
                    SampleInfo { key: "SN2020abc".into(), fields: vec![fi("npy", 3584), fi("json", 9), fi("cls", 1)] },
                    SampleInfo { key: "b".into(), fields: vec![fi("npy", 10), fi("json", 2)] },
                ]
            );
            assert_eq!((r.total_samples, r.total_members, r.total_member_bytes), (2, 5, 3606));
            assert_eq!(
                r.fields,
                vec![
                    FieldSummary { name: "npy".into(), count: 2, bytes: 3594 },
                    FieldSummary { name: "json".into(), count: 2, bytes: 11 },
                    FieldSummary { name: "cls".into(), count: 1, bytes: 1 },
                ]
            );
            assert!(r.problems.is_empty(), "{:?}", r.problems);
            let text = render_inspect_text(&r);
            let expected = format!(
                "SN2020abc  npy (3.5 KiB)  json (9 B)  cls (1 B)\n\
                 b          npy (10 B)  json (2 B)\n\
                 {name}: 2 samples, 5 members, 3.5 KiB of member data (compression {compression})\n\
                 \x20 field  count     size\n\
                 \x20 npy        2  3.5 KiB\n\
                 \x20 json       2     11 B\n\
                 \x20 cls        1      1 B\n"
            );
            assert_eq!(text, expected);
            let json = serde_json::to_value(&r).expect("serialise");
            assert_eq!(json["samples"][0]["fields"][0]["bytes"], 3584);
        }
    }

    #[test]
    fn lists_what_it_could_read_of_a_broken_shard() {
        let tar = tar_of(&[("a.npy", &[1u8; 600]), ("b.npy", &[2u8; 600]), ("c.npy", b"3")]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_shard(dir.path(), "x-000000.tar", &tar[..2500]);
        let r = inspect_shard(&path).expect("inspect");
        let keys: Vec<&str> = r.samples.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, vec!["a", "b"]);
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].kind, "truncated");
        let text = render_inspect_text(&r);
        assert!(text.contains("1 problem:\nx-000000.tar: truncated: "), "{text}");
    }

    #[test]
    fn empty_shard_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = inspect_shard(&write_shard(dir.path(), "e.tar.zst", &tar_of(&[]))).expect("inspect");
        assert_eq!(r.total_samples, 0);
        assert_eq!(render_inspect_text(&r), "e.tar.zst: 0 samples, 0 members, 0 B of member data (compression zstd)\n");
        assert!(inspect_shard(&dir.path().join("missing.tar")).is_err());
        fs::write(dir.path().join("x.txt"), "hi").expect("write");
        assert!(inspect_shard(&dir.path().join("x.txt")).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 + 1024 * 512), "5.5 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }
}
