//! Find where a key path such as `targets.list[3].ra` sits in YAML text, so that errors found
//! after deserialising (validation) can name a line and column. Built on yaml-rust2's event
//! parser; positions are 1-based and columns count characters, not bytes.

use std::collections::HashMap;
use std::fmt::Write as _;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Parse a key path as etd prints it: `shard.max_bytes`, `targets.list[3].ra`, `source.local.dir`,
/// `shard.split`.
///
/// Keys are separated by `.` and indices written `[n]`. Empty keys are dropped, so `""` and `"."`
/// (serde_path_to_error's root) give the empty path. A bracket that does not hold a number is kept
/// as part of the key. Keys that themselves contain `.` or `[n]` cannot be told apart.
pub fn parse_path(path: &str) -> Vec<PathSeg> {
    let mut segs = Vec::new();
    let mut key = String::new();
    let mut rest = path;
    while let Some(c) = rest.chars().next() {
        match c {
            '.' => {
                flush_key(&mut key, &mut segs);
                rest = &rest[1..];
            }
            '[' => {
                let index = rest[1..].split_once(']').and_then(|(digits, after)| Some((parse_index(digits)?, after)));
                match index {
                    Some((i, after)) => {
                        flush_key(&mut key, &mut segs);
                        segs.push(PathSeg::Index(i));
                        rest = after;
                    }
                    None => {
                        key.push('[');
                        rest = &rest[1..];
                    }
                }
            }
            _ => {
                key.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    flush_key(&mut key, &mut segs);
    segs
}

fn parse_index(digits: &str) -> Option<usize> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn flush_key(key: &mut String, segs: &mut Vec<PathSeg>) {
    if !key.is_empty() {
        segs.push(PathSeg::Key(std::mem::take(key)));
    }
}

/// Render a path back to the form [`parse_path`] reads: `targets.list[3].ra`; `""` for the root.
pub fn display_path(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for (n, seg) in path.iter().enumerate() {
        match seg {
            PathSeg::Key(k) => {
                if n > 0 {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// A position in the YAML text. Both fields are 1-based; the column counts characters (a tab is
/// one column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    key: Option<Location>,
    value: Option<Location>,
}

/// A mapping key given a second time in the same mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Path of the repeated key.
    pub path: Vec<PathSeg>,
    /// Where the key is first written.
    pub first: Location,
    /// Where it is written again.
    pub again: Location,
}

/// Positions of every mapping key and sequence item of the first YAML document.
#[derive(Debug, Clone, Default)]
pub struct YamlLocator {
    entries: HashMap<Vec<PathSeg>, Entry>,
    duplicates: Vec<DuplicateKey>,
}

impl YamlLocator {
    /// Index every mapping key and sequence item of the document. Never fails: text that does not
    /// parse yields a locator that finds nothing.
    ///
    /// Only the first document of a multi-document stream is read. Keys that are not scalars
    /// (and everything under them) are skipped; for a repeated key the first occurrence wins. A
    /// leading byte-order mark is ignored and not counted as a column.
    pub fn new(text: &str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut indexer = Indexer {
            src: Source::new(text),
            entries: HashMap::new(),
            stack: Vec::new(),
            root_seen: false,
            done: false,
            duplicates: Vec::new(),
        };
        let mut parser = Parser::new_from_str(text);
        match parser.load(&mut indexer, false) {
            Ok(()) => YamlLocator { entries: indexer.entries, duplicates: indexer.duplicates },
            Err(_) => YamlLocator::default(),
        }
    }

    /// Every scalar key written twice in one mapping of the indexed part of the document, in
    /// document order of the repetition.
    pub fn duplicates(&self) -> &[DuplicateKey] {
        &self.duplicates
    }

    /// Where the VALUE at `path` starts (for a scalar: the scalar; for a mapping/sequence: its
    /// first token).
    ///
    /// Anchors and tags in front of a node are not counted as its start. A block scalar (`|`,
    /// `>`) starts at its indicator. An alias starts at its `*`. An absent value (`key:` with
    /// nothing after it, or a bare `-`) has no text of its own and gives `None`.
    pub fn value(&self, path: &[PathSeg]) -> Option<Location> {
        self.entries.get(path).and_then(|e| e.value)
    }

    /// Where the KEY of the last segment starts (for `Index`, same as the item's value position).
    /// For the empty path (the document root) this is `None`.
    pub fn key(&self, path: &[PathSeg]) -> Option<Location> {
        match path.last() {
            None => None,
            Some(PathSeg::Index(_)) => self.value(path),
            Some(PathSeg::Key(_)) => self.entries.get(path).and_then(|e| e.key),
        }
    }

    /// Best location for an error about `path`: the value if known, else the key, else the
    /// nearest existing ancestor's key (so an error about a missing key points at its parent
    /// mapping). When no ancestor has a key (a missing top-level key) this is where the
    /// document's content starts.
    pub fn best(&self, path: &[PathSeg]) -> Option<Location> {
        if let Some(loc) = self.value(path).or_else(|| self.key(path)) {
            return Some(loc);
        }
        (0..path.len()).rev().find_map(|n| self.key(&path[..n])).or_else(|| self.value(&[]))
    }
}

/// The text, split into lines the way yaml-rust2's scanner counts them (`\n`, `\r\n`, lone `\r`).
///
/// Positions are looked up by line and column, never by `Marker::index()`: in yaml-rust2 0.10
/// that index is documented as both chars and bytes and, after a block scalar line holding
/// non-ASCII text, it drifts (it adds that line's byte length). Line and column stay right.
struct Source {
    lines: Vec<Vec<char>>,
}

impl Source {
    fn new(text: &str) -> Self {
        let mut lines = Vec::new();
        let mut line = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\n' => lines.push(std::mem::take(&mut line)),
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    lines.push(std::mem::take(&mut line));
                }
                _ => line.push(c),
            }
        }
        lines.push(line);
        Source { lines }
    }

    /// The characters of 1-based line `line`, without its line break.
    fn line(&self, line: usize) -> &[char] {
        line.checked_sub(1).and_then(|i| self.lines.get(i)).map_or(&[], Vec::as_slice)
    }

    /// Whether nothing but blanks and line breaks follows line `line`.
    fn blank_after(&self, line: usize) -> bool {
        self.lines.iter().skip(line).all(|l| is_blank_line(l))
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_blank_line(line: &[char]) -> bool {
    line.iter().all(|&c| is_blank(c))
}

/// Whether a block scalar header (`|`, `>`, with optional indentation and chomping indicators,
/// then optional blanks and comment) starts at `line[at]`.
fn is_block_header(line: &[char], at: usize) -> bool {
    if !matches!(line.get(at), Some('|' | '>')) {
        return false;
    }
    if at > 0 && !line.get(at - 1).is_some_and(|&c| is_blank(c)) {
        return false;
    }
    let mut i = at + 1;
    let mut indicators = 0;
    while indicators < 2 && line.get(i).is_some_and(|&c| matches!(c, '1'..='9' | '+' | '-')) {
        i += 1;
        indicators += 1;
    }
    match line.get(i) {
        None => true,
        Some(&c) if is_blank(c) => {
            let next = line[i..].iter().find(|&&c| !is_blank(c));
            matches!(next, None | Some('#'))
        }
        Some(_) => false,
    }
}

fn location(m: &Marker) -> Location {
    Location {
        line: m.line(),
        // yaml-rust2 0.10: `line()` is 1-based, `col()` is 0-based (despite its doc comment).
        column: m.col() + 1,
    }
}

/// How a mapping inside the indexer is expecting its next node.
#[derive(Debug)]
enum MapState {
    Key,
    /// The key just read, or `None` when its value is not indexed (non-scalar, empty or repeated
    /// key).
    Value(Option<String>),
}

#[derive(Debug)]
enum Kind {
    Mapping(MapState),
    Sequence(usize),
}

#[derive(Debug)]
struct Frame {
    /// Path of this collection, or `None` inside a part that is not indexed.
    path: Option<Vec<PathSeg>>,
    kind: Kind,
    /// Recorded start of this collection until its first child has been seen. yaml-rust2 marks a
    /// block mapping at the `:` after its first key, so the first child may start earlier.
    pending_start: Option<Location>,
}

/// Where a node sits in its parent.
enum Role {
    /// A mapping key under the given mapping path (`None`: not indexed).
    Key(Option<Vec<PathSeg>>),
    /// A value at the given path (`None`: not indexed).
    Value(Option<Vec<PathSeg>>),
}

struct Indexer {
    src: Source,
    entries: HashMap<Vec<PathSeg>, Entry>,
    stack: Vec<Frame>,
    root_seen: bool,
    done: bool,
    duplicates: Vec<DuplicateKey>,
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        match ev {
            Event::DocumentEnd => self.done = true,
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Scalar(value, style, _, _) => {
                let loc = self.scalar_start(&value, style, &mark);
                self.node(loc, Some(value), None);
            }
            Event::Alias(_) => self.node(Some(location(&mark)), None, None),
            Event::MappingStart(..) => {
                let loc = location(&mark);
                self.node(Some(loc), None, Some(Kind::Mapping(MapState::Key)));
            }
            Event::SequenceStart(..) => {
                let loc = self.sequence_start(&mark);
                self.node(Some(loc), None, Some(Kind::Sequence(0)));
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
        }
    }
}

impl Indexer {
    /// Handle the start of a node: a scalar (`scalar` is its text), an alias, or a collection
    /// (`collection` is the frame kind to push).
    fn node(&mut self, loc: Option<Location>, scalar: Option<String>, collection: Option<Kind>) {
        self.fix_parent_start(loc);
        let role = self.role(scalar.as_deref(), loc);
        let path = match role {
            Role::Key(parent) => {
                if let (Some(mut path), Some(key)) = (parent, scalar) {
                    path.push(PathSeg::Key(key));
                    self.entries.entry(path).or_default().key = loc;
                }
                None
            }
            Role::Value(path) => {
                if let Some(path) = &path {
                    self.entries.entry(path.clone()).or_default().value = loc;
                }
                path
            }
        };
        if let Some(kind) = collection {
            let pending_start = if path.is_some() { loc } else { None };
            self.stack.push(Frame { path, kind, pending_start });
        }
    }

    /// Work out whether the node starting now is a key or a value, and advance the parent.
    /// `scalar` is the node's text when it is a scalar; `loc` is `None` for an absent value.
    fn role(&mut self, scalar: Option<&str>, loc: Option<Location>) -> Role {
        let Some(top) = self.stack.last_mut() else {
            if self.root_seen {
                return Role::Value(None);
            }
            self.root_seen = true;
            return Role::Value(Some(Vec::new()));
        };
        match &mut top.kind {
            Kind::Sequence(next) => {
                let i = *next;
                *next += 1;
                Role::Value(top.path.as_ref().map(|p| child(p, PathSeg::Index(i))))
            }
            Kind::Mapping(state) => match std::mem::replace(state, MapState::Key) {
                MapState::Key => {
                    let indexed = top.path.as_ref().and_then(|parent| {
                        let key = scalar.filter(|_| loc.is_some())?;
                        let path = child(parent, PathSeg::Key(key.to_owned()));
                        match (self.entries.get(&path).and_then(|e| e.key), loc) {
                            (Some(first), Some(again)) => {
                                self.duplicates.push(DuplicateKey { path, first, again });
                                None
                            }
                            _ => Some(key.to_owned()),
                        }
                    });
                    let parent = indexed.as_ref().and(top.path.clone());
                    *state = MapState::Value(indexed);
                    Role::Key(parent)
                }
                MapState::Value(key) => Role::Value(top.path.as_ref().zip(key).map(|(p, k)| child(p, PathSeg::Key(k)))),
            },
        }
    }

    /// A collection's recorded start becomes its first child's start when that is earlier.
    fn fix_parent_start(&mut self, child_loc: Option<Location>) {
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        let Some(start) = top.pending_start.take() else {
            return;
        };
        let (Some(child_loc), Some(path)) = (child_loc, &top.path) else {
            return;
        };
        if (child_loc.line, child_loc.column) < (start.line, start.column) {
            if let Some(entry) = self.entries.get_mut(path) {
                entry.value = Some(child_loc);
            }
        }
    }

    /// Start of a scalar; `None` for an absent (implicitly empty) one, which yaml-rust2 marks at
    /// whatever token follows it.
    fn scalar_start(&self, value: &str, style: TScalarStyle, mark: &Marker) -> Option<Location> {
        let loc = location(mark);
        match style {
            // A plain scalar cannot be empty in the text: this one is absent.
            TScalarStyle::Plain if value.is_empty() => None,
            TScalarStyle::Literal | TScalarStyle::Folded => Some(self.block_scalar_start(loc)),
            _ => Some(loc),
        }
    }

    /// yaml-rust2 marks a block scalar at its first content line (or at the indicator when the
    /// stream ends without content); move back to the `|`/`>` indicator.
    fn block_scalar_start(&self, loc: Location) -> Location {
        let line = self.src.line(loc.line);
        if is_block_header(line, loc.column - 1) && self.src.blank_after(loc.line) {
            return loc;
        }
        // Between the header and the first content line there can only be blank lines.
        let mut n = loc.line;
        while n > 1 {
            n -= 1;
            let line = self.src.line(n);
            if is_blank_line(line) {
                continue;
            }
            return match (0..line.len()).find(|&at| is_block_header(line, at)) {
                Some(at) => Location { line: n, column: at + 1 },
                None => loc,
            };
        }
        loc
    }

    /// yaml-rust2 marks a block sequence at its first `-`, except an indentless one (`key:\n- a`,
    /// the `-` in the key's column), which it marks after that `-`. Move back to the `-`.
    fn sequence_start(&self, mark: &Marker) -> Location {
        let loc = location(mark);
        let parent_is_mapping = matches!(self.stack.last(), Some(Frame { kind: Kind::Mapping(_), .. }));
        let line = self.src.line(loc.line);
        let col = loc.column - 1;
        if !parent_is_mapping || line.get(col) == Some(&'[') {
            return loc;
        }
        // An indentless sequence's first `-` opens its line.
        match line.iter().position(|&c| !is_blank(c)) {
            Some(dash) if dash < col && line[dash] == '-' && line.get(dash + 1).is_none_or(|&c| is_blank(c)) => {
                Location { line: loc.line, column: dash + 1 }
            }
            _ => loc,
        }
    }
}

fn child(parent: &[PathSeg], seg: PathSeg) -> Vec<PathSeg> {
    let mut path = parent.to_vec();
    path.push(seg);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> Vec<PathSeg> {
        parse_path(path)
    }

    fn at(line: usize, column: usize) -> Option<Location> {
        Some(Location { line, column })
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in
            ["shard.max_bytes", "targets.list[3].ra", "source.local.dir", "shard.split", "[0].a", "a[1][2]", "", "?"]
        {
            assert_eq!(display_path(&parse_path(s)), s, "{s}");
        }
        assert_eq!(
            parse_path("targets.list[3].ra"),
            vec![
                PathSeg::Key("targets".into()),
                PathSeg::Key("list".into()),
                PathSeg::Index(3),
                PathSeg::Key("ra".into()),
            ]
        );
        assert_eq!(parse_path("."), vec![]);
        assert_eq!(parse_path("a..b"), p("a.b"));
        assert_eq!(parse_path("a[x]"), vec![PathSeg::Key("a[x]".into())]);
        assert_eq!(parse_path("a[1"), vec![PathSeg::Key("a[1".into())]);
        assert_eq!(parse_path("a[]"), vec![PathSeg::Key("a[]".into())]);
        assert_eq!(parse_path("é.ü[7]"), p("é.ü[7]"));
        assert_eq!(display_path(&parse_path("é.ü[7]")), "é.ü[7]");
    }

    #[test]
    fn block_mapping_and_comments() {
        let text = "# recipe\nname: demo   # trailing\nshard:\n  # note\n  max_bytes: 100\n  split: \"yes\"\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.key(&p("name")), at(2, 1));
        assert_eq!(loc.value(&p("name")), at(2, 7));
        assert_eq!(loc.key(&p("shard")), at(3, 1));
        // The mapping's first token is its first key (yaml-rust2 marks it at the `:`).
        assert_eq!(loc.value(&p("shard")), at(5, 3));
        assert_eq!(loc.key(&p("shard.max_bytes")), at(5, 3));
        assert_eq!(loc.value(&p("shard.max_bytes")), at(5, 14));
        assert_eq!(loc.value(&p("shard.split")), at(6, 10));
        assert_eq!(loc.value(&[]), at(2, 1));
        assert_eq!(loc.key(&[]), None);
    }

    #[test]
    fn best_on_missing_and_present_keys() {
        let text = "shard:\n  split: 3\nempty:\n";
        let loc = YamlLocator::new(text);
        // Present: the value.
        assert_eq!(loc.best(&p("shard.split")), at(2, 10));
        // Missing key: its parent mapping's key.
        assert_eq!(loc.best(&p("shard.max_bytes")), at(1, 1));
        assert_eq!(loc.best(&p("shard.a.b[2].c")), at(1, 1));
        // Missing top-level key: the document's start.
        assert_eq!(loc.best(&p("source")), at(1, 1));
        // Absent value: no value position, so the key.
        assert_eq!(loc.value(&p("empty")), None);
        assert_eq!(loc.key(&p("empty")), at(3, 1));
        assert_eq!(loc.best(&p("empty")), at(3, 1));
        assert_eq!(loc.best(&p("empty.x")), at(3, 1));
        assert_eq!(loc.best(&[]), at(1, 1));
    }

    #[test]
    fn flow_collections() {
        let text = "columns: {id: objid, ra: ra}\nfilters: [g, r]\ng: {h: {i: 1}, j: [k, {l: m}]}\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.value(&p("columns")), at(1, 10));
        assert_eq!(loc.key(&p("columns.id")), at(1, 11));
        assert_eq!(loc.value(&p("columns.id")), at(1, 15));
        assert_eq!(loc.key(&p("columns.ra")), at(1, 22));
        assert_eq!(loc.value(&p("columns.ra")), at(1, 26));
        assert_eq!(loc.value(&p("filters")), at(2, 10));
        assert_eq!(loc.value(&p("filters[0]")), at(2, 11));
        assert_eq!(loc.key(&p("filters[1]")), at(2, 14));
        assert_eq!(loc.value(&p("filters[2]")), None);
        assert_eq!(loc.best(&p("filters[2]")), at(2, 1));
        assert_eq!(loc.value(&p("g.h.i")), at(3, 12));
        assert_eq!(loc.value(&p("g.j")), at(3, 19));
        assert_eq!(loc.value(&p("g.j[1]")), at(3, 23));
        assert_eq!(loc.key(&p("g.j[1].l")), at(3, 24));
        assert_eq!(loc.value(&p("g.j[1].l")), at(3, 27));
    }

    #[test]
    fn sequences_of_mappings() {
        let text = "\
targets:
  list:
  - {id: a, ra: 1}
  - id: b
    ra: 2
  -
    id: c
  - - x
    - y
nested:
    - a
    -   b: 1
";
        let loc = YamlLocator::new(text);
        // Indentless sequence: yaml-rust2 marks it after the `-`; we report the `-`.
        assert_eq!(loc.value(&p("targets.list")), at(3, 3));
        assert_eq!(loc.value(&p("targets.list[0]")), at(3, 5));
        assert_eq!(loc.key(&p("targets.list[0]")), at(3, 5));
        assert_eq!(loc.key(&p("targets.list[0].ra")), at(3, 13));
        assert_eq!(loc.value(&p("targets.list[0].ra")), at(3, 17));
        assert_eq!(loc.value(&p("targets.list[1]")), at(4, 5));
        assert_eq!(loc.key(&p("targets.list[1].id")), at(4, 5));
        assert_eq!(loc.value(&p("targets.list[1].id")), at(4, 9));
        assert_eq!(loc.key(&p("targets.list[1].ra")), at(5, 5));
        assert_eq!(loc.value(&p("targets.list[1].ra")), at(5, 9));
        assert_eq!(loc.value(&p("targets.list[2]")), at(7, 5));
        assert_eq!(loc.value(&p("targets.list[2].id")), at(7, 9));
        assert_eq!(loc.value(&p("targets.list[3]")), at(8, 5));
        assert_eq!(loc.value(&p("targets.list[3][1]")), at(9, 7));
        assert_eq!(loc.best(&p("targets.list[1].dec")), at(4, 5));
        assert_eq!(loc.best(&p("targets.list[9].ra")), at(2, 3));
        // Indented block sequence: marked at its `-` already.
        assert_eq!(loc.value(&p("nested")), at(11, 5));
        assert_eq!(loc.value(&p("nested[0]")), at(11, 7));
        assert_eq!(loc.value(&p("nested[1]")), at(12, 9));
        assert_eq!(loc.value(&p("nested[1].b")), at(12, 12));
    }

    #[test]
    fn indentless_sequence_whose_first_item_starts_with_dash() {
        let text = "c:\n- -1\n- - p\n  - q\nd:\n-\n- 2\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.value(&p("c")), at(2, 1));
        assert_eq!(loc.value(&p("c[0]")), at(2, 3));
        assert_eq!(loc.value(&p("c[1]")), at(3, 3));
        assert_eq!(loc.value(&p("c[1][1]")), at(4, 5));
        assert_eq!(loc.value(&p("d")), at(6, 1));
        // A bare `-` has no value text; its key is its value, so `best` goes to the parent.
        assert_eq!(loc.value(&p("d[0]")), None);
        assert_eq!(loc.best(&p("d[0]")), at(5, 1));
        assert_eq!(loc.value(&p("d[1]")), at(7, 3));
    }

    #[test]
    fn quoted_keys_and_values() {
        let text = "\"quoted key\": 'v'\n'x:y': {\"q k\": \"w\"}\n\"a.b\": 1\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.key(&p("quoted key")), at(1, 1));
        assert_eq!(loc.value(&p("quoted key")), at(1, 15));
        assert_eq!(loc.key(&p("x:y")), at(2, 1));
        assert_eq!(loc.value(&p("x:y")), at(2, 8));
        assert_eq!(loc.key(&p("x:y.q k")), at(2, 9));
        assert_eq!(loc.value(&p("x:y.q k")), at(2, 16));
        // A key holding a dot is reachable with a hand-built path.
        let dotted = vec![PathSeg::Key("a.b".into())];
        assert_eq!(loc.key(&dotted), at(3, 1));
    }

    #[test]
    fn multi_document_only_first_counts() {
        let text = "---\na: 1\n---\nb: 2\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.value(&p("a")), at(2, 4));
        assert_eq!(loc.key(&p("b")), None);
        // A broken later document does not matter.
        let loc = YamlLocator::new("a: 1\n---\nb: [\n");
        assert_eq!(loc.value(&p("a")), at(1, 4));
        let loc = YamlLocator::new("a: 1\n...\n");
        assert_eq!(loc.value(&p("a")), at(1, 4));
    }

    #[test]
    fn anchors_and_aliases() {
        let text = "base: &b\n  k: v\ncopy: *b\nn: &x !!str 5\nm: *x\nlist:\n  - &anc\n    k: v\n  - *anc\n";
        let loc = YamlLocator::new(text);
        // Anchors and tags are not part of the node's start.
        assert_eq!(loc.value(&p("base")), at(2, 3));
        assert_eq!(loc.value(&p("base.k")), at(2, 6));
        assert_eq!(loc.value(&p("copy")), at(3, 7));
        // Nothing is indexed through an alias.
        assert_eq!(loc.value(&p("copy.k")), None);
        assert_eq!(loc.best(&p("copy.k")), at(3, 1));
        assert_eq!(loc.value(&p("n")), at(4, 13));
        assert_eq!(loc.value(&p("m")), at(5, 4));
        assert_eq!(loc.value(&p("list[0]")), at(8, 5));
        assert_eq!(loc.value(&p("list[1]")), at(9, 5));
    }

    #[test]
    fn block_scalars_start_at_their_indicator() {
        let text = "a: |\n  héllo wörld\n\n  more\nb: >-  # c > d\n  folded\nc: x\nd: |\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.value(&p("a")), at(1, 4));
        assert_eq!(loc.value(&p("b")), at(5, 4));
        // Positions after a non-ASCII block scalar stay right.
        assert_eq!(loc.value(&p("c")), at(7, 4));
        assert_eq!(loc.value(&p("d")), at(8, 4));
        let loc = YamlLocator::new("- |\n  x\n- y: |2\n     z\n- q\n");
        assert_eq!(loc.value(&p("[0]")), at(1, 3));
        assert_eq!(loc.value(&p("[1].y")), at(3, 6));
        assert_eq!(loc.value(&p("[2]")), at(5, 3));
    }

    #[test]
    fn positions_after_non_ascii_block_scalar() {
        // yaml-rust2's Marker::index() drifts here; line/column must not.
        let text = "note: |\n  ünïcödé ✓\nlist:\n- {id: a}\n- id: b\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.value(&p("list")), at(4, 1));
        assert_eq!(loc.value(&p("list[0].id")), at(4, 8));
        assert_eq!(loc.value(&p("list[1]")), at(5, 3));
        assert_eq!(loc.value(&p("list[1].id")), at(5, 7));
    }

    #[test]
    fn columns_count_characters() {
        let text = "é: {ü: 1}\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.value(&p("é")), at(1, 4));
        assert_eq!(loc.value(&p("é.ü")), at(1, 8));
    }

    #[test]
    fn complex_and_repeated_keys() {
        let text = "? [1, 2]\n: {x: 1}\n? plain\n: val\na: 1\na: 2\n";
        let loc = YamlLocator::new(text);
        // Non-scalar keys and their values are skipped.
        assert_eq!(loc.key(&p("x")), None);
        assert_eq!(loc.key(&p("plain")), at(3, 3));
        assert_eq!(loc.value(&p("plain")), at(4, 3));
        // The first of repeated keys wins; the repetition is listed.
        assert_eq!(loc.key(&p("a")), at(5, 1));
        assert_eq!(loc.value(&p("a")), at(5, 4));
        assert_eq!(
            loc.duplicates(),
            [DuplicateKey {
                path: p("a"),
                first: Location { line: 5, column: 1 },
                again: Location { line: 6, column: 1 }
            }]
        );
        // The mapping starts at its first `?`.
        assert_eq!(loc.value(&[]), at(1, 1));
    }

    #[test]
    fn duplicates_in_nested_and_flow_mappings() {
        let text = "a:\n  b: 1\n  c: 2\n  b: 3\nl:\n- {x: 1, y: 2, x: 3}\n- {x: 1}\nd: {k: 1}\n";
        let loc = YamlLocator::new(text);
        let found: Vec<(String, usize, usize, usize)> = loc
            .duplicates()
            .iter()
            .map(|d| (display_path(&d.path), d.first.line, d.again.line, d.again.column))
            .collect();
        // The same key in different mappings (l[0].x, l[1].x) is not a repetition.
        assert_eq!(found, [("a.b".to_string(), 2, 4, 3), ("l[0].x".to_string(), 6, 6, 16)]);
        assert!(YamlLocator::new("a: 1\nb: 2\n").duplicates().is_empty());
    }

    #[test]
    fn line_breaks_and_bom() {
        let loc = YamlLocator::new("a: 1\r\nb:\r\n  - x\r\n");
        assert_eq!(loc.value(&p("b[0]")), at(3, 5));
        let loc = YamlLocator::new("a: 1\rb: 2\r");
        assert_eq!(loc.value(&p("b")), at(2, 4));
        let loc = YamlLocator::new("\u{feff}a: 1\n");
        assert_eq!(loc.key(&p("a")), at(1, 1));
        assert_eq!(loc.value(&p("a")), at(1, 4));
    }

    #[test]
    fn unparsable_or_empty_text_finds_nothing() {
        for text in
            ["a: [1, 2\n", "a: b: c\n", "a: 'open\n", "a:\n  - x\n  y: 1\n", "a: *nope\n", "", "# only a comment\n"]
        {
            let loc = YamlLocator::new(text);
            assert_eq!(loc.best(&p("a")), None, "{text:?}");
            assert_eq!(loc.best(&[]), None, "{text:?}");
        }
        let loc = YamlLocator::new("just a scalar\n");
        assert_eq!(loc.value(&[]), at(1, 1));
        assert_eq!(loc.best(&p("a.b")), at(1, 1));
    }
}
