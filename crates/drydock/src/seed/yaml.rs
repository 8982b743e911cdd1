//! A small YAML document model for editing cloud-init files without changing what they mean.
//!
//! cloud-init reads its files with PyYAML, which follows YAML 1.1: a plain `yes` is a boolean and a
//! plain `0644` an octal number. Rust's YAML crates resolve scalars by YAML 1.2, so a round trip
//! through a typed value would silently change a user's `permissions: 0644` into 644. This model
//! keeps every scalar as its text plus whether it was written plain or quoted, and the emitter writes
//! a plain scalar back plain and a quoted one quoted: whatever PyYAML made of the original, it makes
//! of the rewrite. Comments are not kept; the files are only rewritten when something in them
//! changes. Anchors and aliases are expanded.

use std::fmt::Write as _;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A YAML node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A scalar: its value and how it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    pub value: String,
    /// Written plain (resolved by the reader's schema: may be a bool, a number, null).
    pub plain: bool,
    /// An explicit tag, as written (`!!str`, `!!binary`, `!custom`).
    pub tag: Option<String>,
}

/// A parse error with its position (1-based line and column).
#[derive(Debug, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct YamlError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl Node {
    /// A string scalar (emitted quoted when it could be read as anything but a string).
    pub fn str(s: impl Into<String>) -> Node {
        Node::Scalar(Scalar {
            value: s.into(),
            plain: false,
            tag: None,
        })
    }

    /// A boolean.
    pub fn bool(b: bool) -> Node {
        Node::plain(if b { "true" } else { "false" })
    }

    /// A plain scalar (its text is resolved by the reader: numbers, booleans, null).
    pub fn plain(s: impl Into<String>) -> Node {
        Node::Scalar(Scalar {
            value: s.into(),
            plain: true,
            tag: None,
        })
    }

    pub fn map() -> Node {
        Node::Map(Vec::new())
    }

    /// The string value of a scalar that a YAML 1.1 reader takes as a string (or any quoted scalar).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) if !s.plain || resolve_plain(&s.value) == Resolved::Str => {
                Some(&s.value)
            }
            _ => None,
        }
    }

    /// The boolean value of a scalar, as PyYAML reads it.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Node::Scalar(s) if s.plain => match resolve_plain(&s.value) {
                Resolved::Bool(b) => Some(b),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(s) if s.plain && resolve_plain(&s.value) == Resolved::Null)
    }

    /// Look up a key of a mapping (string keys only).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Set a key of a mapping, keeping its position when present, appending otherwise. No-op on
    /// a non-mapping.
    pub fn set(&mut self, key: &str, value: Node) {
        if let Node::Map(entries) = self {
            if let Some((_, v)) = entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
                *v = value;
            } else {
                entries.push((Node::str(key), value));
            }
        }
    }

    /// Remove a key of a mapping; returns the removed value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        if let Node::Map(entries) = self {
            if let Some(i) = entries.iter().position(|(k, _)| k.as_str() == Some(key)) {
                return Some(entries.remove(i).1);
            }
        }
        None
    }

    /// The value under `key`, made a mapping if absent or null (returns None if it is something
    /// else, e.g. a list, which the caller reports).
    pub fn map_entry(&mut self, key: &str) -> Option<&mut Node> {
        let absent = match self.get(key) {
            None => true,
            Some(n) => n.is_null(),
        };
        if absent {
            self.set(key, Node::map());
        }
        match self.get_mut(key) {
            Some(n @ Node::Map(_)) => Some(n),
            _ => None,
        }
    }
}

/// Parse a single-document YAML text. An empty document (only comments) is an empty mapping.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut b, true).map_err(|e| YamlError {
        message: e.info().to_string(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
    })?;
    if let Some(e) = b.error {
        return Err(e);
    }
    match b.docs.len() {
        0 => Ok(Node::map()),
        1 => Ok(b.docs.remove(0)),
        n => Err(YamlError {
            message: format!("expected one YAML document, found {n}"),
            line: b.second_doc_line,
            column: 1,
        }),
    }
}

#[derive(Default)]
struct Builder {
    /// Open collections: the node, its anchor, and for mappings a key waiting for its value.
    stack: Vec<(Node, usize, Option<Node>)>,
    anchors: std::collections::HashMap<usize, Node>,
    docs: Vec<Node>,
    second_doc_line: usize,
    error: Option<YamlError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.docs.len() == 1 && self.second_doc_line == 0 {
                    self.second_doc_line = mark.line();
                }
                self.docs.push(node);
            }
            Some((Node::Seq(items), _, _)) => items.push(node),
            Some((Node::Map(entries), _, pending)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    if !matches!(node, Node::Scalar(_)) && self.error.is_none() {
                        self.error = Some(YamlError {
                            message: "complex mapping keys are not supported".into(),
                            line: mark.line(),
                            column: mark.col() + 1,
                        });
                    }
                    *pending = Some(node);
                }
            },
            Some((Node::Scalar(_), _, _)) => {}
        }
    }
}

fn tag_text(tag: Option<Tag>) -> Option<String> {
    let t = tag?;
    Some(match t.handle.as_str() {
        "tag:yaml.org,2002:" => format!("!!{}", t.suffix),
        "!" => format!("!{}", t.suffix),
        "" => t.suffix,
        h => format!("!<{h}{}>", t.suffix),
    })
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let node = Node::Scalar(Scalar {
                    value,
                    plain: style == TScalarStyle::Plain,
                    tag: tag_text(tag),
                });
                self.push_value(node, anchor, mark);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push((Node::Seq(Vec::new()), anchor, None))
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((Node::Map(Vec::new()), anchor, None))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor, _)) = self.stack.pop() {
                    self.push_value(node, anchor, mark);
                }
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| Node::plain(""));
                self.push_value(node, 0, mark);
            }
            _ => {}
        }
    }
}

/// How PyYAML (YAML 1.1) resolves a plain scalar.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Number,
    Str,
}

/// Resolve a plain scalar's text the way PyYAML's resolver does (null, bool, int, float; also
/// timestamps and `=`/`<<` count as "not a string").
pub fn resolve_plain(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" | "y" | "Y" => {
            return Resolved::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" | "n" | "N" => {
            return Resolved::Bool(false)
        }
        "=" | "<<" => return Resolved::Number,
        _ => {}
    }
    let first = s.as_bytes()[0];
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        // Conservative: anything number-like (ints in any base, floats, sexagesimal, .inf, .nan,
        // timestamps) starting with a digit, sign or dot whose characters are all number-ish.
        if s.chars()
            .all(|c| c.is_ascii_hexdigit() || "-+._:xXoObBtTzZ ".contains(c))
            || matches!(
                s.to_ascii_lowercase().as_str(),
                ".inf" | "-.inf" | "+.inf" | ".nan"
            )
        {
            return Resolved::Number;
        }
    }
    Resolved::Str
}

/// Emit a node as block-style YAML (a mapping or sequence at the top; a trailing newline).
pub fn emit(node: &Node) -> String {
    let mut out = String::new();
    match node {
        Node::Map(e) if !e.is_empty() => emit_map(&mut out, e, 0),
        Node::Seq(i) if !i.is_empty() => emit_seq(&mut out, i, 0),
        other => {
            out.push_str(&inline(other, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn emit_map(out: &mut String, entries: &[(Node, Node)], indent: usize) {
    for (k, v) in entries {
        pad(out, indent);
        out.push_str(&inline(k, indent));
        out.push(':');
        emit_value(out, v, indent);
    }
}

/// After `key:` or `-`: a scalar on the same line, a collection on the next lines.
fn emit_value(out: &mut String, v: &Node, indent: usize) {
    match v {
        Node::Map(e) if !e.is_empty() => {
            out.push('\n');
            emit_map(out, e, indent + 2);
        }
        Node::Seq(i) if !i.is_empty() => {
            out.push('\n');
            emit_seq(out, i, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other, indent));
            out.push('\n');
        }
    }
}

fn emit_seq(out: &mut String, items: &[Node], indent: usize) {
    for item in items {
        match item {
            Node::Map(e) if !e.is_empty() => {
                // "- key: value" with the rest of the mapping aligned under the first key.
                let mut sub = String::new();
                emit_map(&mut sub, e, indent + 2);
                pad(out, indent);
                out.push_str("- ");
                out.push_str(&sub[indent + 2..]);
            }
            Node::Seq(i) if !i.is_empty() => {
                let mut sub = String::new();
                emit_seq(&mut sub, i, indent + 2);
                pad(out, indent);
                out.push_str("- ");
                out.push_str(&sub[indent + 2..]);
            }
            other => {
                pad(out, indent);
                out.push('-');
                out.push(' ');
                out.push_str(&inline(other, indent));
                out.push('\n');
            }
        }
    }
}

/// A scalar or empty collection on one line (a literal block for multi-line strings).
fn inline(node: &Node, indent: usize) -> String {
    match node {
        Node::Map(_) => "{}".into(),
        Node::Seq(_) => "[]".into(),
        Node::Scalar(s) => {
            let body = scalar(s, indent);
            match &s.tag {
                Some(t) => format!("{t} {body}"),
                None => body,
            }
        }
    }
}

fn scalar(s: &Scalar, indent: usize) -> String {
    let v = &s.value;
    if s.plain && s.tag.is_none() && v.is_empty() {
        return "null".into();
    }
    if s.plain && plain_ok(v) {
        return v.clone();
    }
    if !s.plain && plain_ok(v) && resolve_plain(v) == Resolved::Str && safe_start(v) {
        return v.clone();
    }
    if v.contains('\n') && literal_ok(v) {
        return literal(v, indent + 2);
    }
    double_quoted(v)
}

/// Text that can stand as a plain scalar in block context without changing its characters.
fn plain_ok(v: &str) -> bool {
    !v.is_empty()
        && !v.contains('\n')
        && v.trim() == v
        && !v.contains(": ")
        && !v.ends_with(':')
        && !v.contains(" #")
        && !v.contains('\t')
        && v.chars().all(|c| !c.is_control())
        && (safe_start(v) || v.starts_with('-') && v.len() > 1 && !v.starts_with("- "))
}

fn safe_start(v: &str) -> bool {
    match v.chars().next() {
        None => false,
        Some(c) => !"-?:,[]{}#&*!|>'\"%@`".contains(c),
    }
}

fn literal_ok(v: &str) -> bool {
    !v.starts_with(' ') && !v.starts_with('\n') && v.chars().all(|c| c == '\n' || !c.is_control())
}

fn literal(v: &str, indent: usize) -> String {
    let trailing = v.len() - v.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let mut out = format!("|{chomp}");
    let body = if trailing == 0 { v } else { &v[..v.len() - 1] };
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(&mut out, indent);
            out.push_str(line);
        }
    }
    out
}

fn double_quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted_scalars_survive_a_round_trip() {
        let src = "a: 0644\nb: '0644'\nc: yes\nd: \"yes\"\ne: ~\nf:\ng: -1\nh: plain text\n";
        let n = parse(src).unwrap();
        let out = emit(&n);
        assert_eq!(
            out,
            "a: 0644\nb: \"0644\"\nc: yes\nd: \"yes\"\ne: ~\nf: null\ng: -1\nh: plain text\n"
        );
        assert_eq!(parse(&out).unwrap(), {
            // f becomes an explicit null: same meaning.
            let mut m = n.clone();
            m.set("f", Node::plain("null"));
            m
        });
    }

    #[test]
    fn nested_collections_and_blocks() {
        let src = "users:\n  - default\n  - []\n  - name: pirate\n    groups: [sudo, docker]\n    ssh_authorized_keys: []\nwrite_files:\n- path: /etc/x\n  content: |\n    line one\n      indented\n\n    after blank\n  permissions: '0600'\nempty: {}\nnested:\n  - - a\n    - b\n";
        let n = parse(src).unwrap();
        let out = emit(&n);
        let again = parse(&out).unwrap();
        assert_eq!(n, again, "{out}");
        let wf = n.get("write_files").unwrap();
        let Node::Seq(items) = wf else { panic!() };
        assert_eq!(
            items[0].get("content").unwrap().as_str().unwrap(),
            "line one\n  indented\n\nafter blank\n"
        );
        assert!(
            out.contains("    content: |\n      line one\n        indented\n\n      after blank\n"),
            "{out}"
        );
    }

    #[test]
    fn new_strings_are_quoted_when_a_reader_would_not_see_a_string() {
        for (v, want) in [
            ("Europe/Berlin", "Europe/Berlin"),
            ("yes", "\"yes\""),
            ("0123", "\"0123\""),
            ("1e3", "\"1e3\""),
            ("12:30", "\"12:30\""),
            ("$6$abc$def", "$6$abc$def"),
            ("a: b", "\"a: b\""),
            ("#x", "\"#x\""),
            ("", "\"\""),
            ("tab\there", "\"tab\\there\""),
            ("ALL=(ALL) NOPASSWD:ALL", "ALL=(ALL) NOPASSWD:ALL"),
            ("no", "\"no\""),
            ("null", "\"null\""),
            ("- x", "\"- x\""),
        ] {
            let out = emit(&Node::Map(vec![(Node::str("k"), Node::str(v))]));
            assert_eq!(out, format!("k: {want}\n"), "{v:?}");
            let back = parse(&out).unwrap();
            assert_eq!(back.get("k").unwrap().as_str(), Some(v), "{v:?}");
        }
    }

    #[test]
    fn multiline_strings_keep_trailing_newlines() {
        for v in ["a\nb", "a\nb\n", "a\nb\n\n", " lead\nx", "x\n\ty"] {
            let out = emit(&Node::Map(vec![(Node::str("k"), Node::str(v))]));
            let back = parse(&out).unwrap();
            assert_eq!(back.get("k").unwrap().as_str(), Some(v), "{v:?} -> {out}");
        }
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert!(e.line >= 1, "{e}");
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.message.contains("one YAML document"), "{e}");
    }

    #[test]
    fn aliases_are_expanded_and_tags_kept() {
        let n = parse("base: &b {x: 1}\nuse: *b\nbin: !!binary aGk=\n").unwrap();
        assert_eq!(n.get("use"), n.get("base"));
        let out = emit(&n);
        assert!(out.contains("bin: !!binary aGk="), "{out}");
    }

    #[test]
    fn pyyaml_resolution() {
        assert_eq!(resolve_plain("yes"), Resolved::Bool(true));
        assert_eq!(resolve_plain("Off"), Resolved::Bool(false));
        assert_eq!(resolve_plain("0x1F"), Resolved::Number);
        assert_eq!(resolve_plain("1_000"), Resolved::Number);
        assert_eq!(resolve_plain("2001-12-14"), Resolved::Number);
        assert_eq!(resolve_plain("node-1"), Resolved::Str);
        assert_eq!(resolve_plain("~"), Resolved::Null);
    }
}
