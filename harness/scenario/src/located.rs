//! Where every node of a YAML document is, so semantic errors can name a line and column.
//!
//! serde_norway tells us where a *parse* error happened but drops positions once a value is
//! built. The checks that run after parsing (undeclared disk, unknown kernel, ...) still need to
//! point a person at the right line, so the same text is read a second time with an event
//! parser that reports a span for every event, and a small tree of positions is kept.

use std::fmt;

use saphyr_parser::{Event, Parser, ScanError, Span};

/// A 1-based line and column in a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Location {
    fn from_span(span: &Span) -> Self {
        // saphyr counts lines from 1 and columns from 0; people (and serde_norway) count both from 1.
        Location {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One step along a path from the document root: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path to a node, displayed the way serde_norway displays it (`steps[2].unplug`), so the
/// field names in our messages and in serde's read the same.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        FieldPath(segments)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Shape {
    /// Scalars and aliases: nothing below them to locate.
    Leaf,
    Sequence(Vec<Node>),
    Mapping(Vec<Entry>),
}

#[derive(Debug)]
struct Node {
    at: Location,
    shape: Shape,
}

#[derive(Debug)]
struct Entry {
    /// The key's text; non-scalar keys (legal YAML, never valid here) are kept as `?`.
    key: String,
    key_at: Location,
    value: Node,
}

/// The positions of the first document in a YAML text.
#[derive(Debug)]
pub struct LocatedDocument {
    root: Option<Node>,
}

/// The event parser rejected the text.
#[derive(Debug)]
pub struct LocateError {
    pub at: Location,
    pub message: String,
}

impl From<ScanError> for LocateError {
    fn from(err: ScanError) -> Self {
        LocateError {
            at: Location {
                line: err.marker().line(),
                column: err.marker().col() + 1,
            },
            message: err.info().to_string(),
        }
    }
}

/// Deeper nesting is never a valid scenario; the limit keeps the recursion off the stack's end.
const MAX_DEPTH: usize = 64;

type Events<'a> = Parser<'a, saphyr_parser::StrInput<'a>>;

impl LocatedDocument {
    pub fn parse(text: &str) -> Result<Self, LocateError> {
        let mut events: Events<'_> = Parser::new_from_str(text);
        loop {
            match next(&mut events)? {
                None | Some((Event::StreamEnd, _)) => return Ok(LocatedDocument { root: None }),
                Some((Event::DocumentStart(_), _)) => break,
                Some(_) => {}
            }
        }
        let root = match next(&mut events)? {
            Some((event, span)) => build(event, &span, &mut events, 0)?,
            None => None,
        };
        Ok(LocatedDocument { root })
    }

    /// Where `path` is written: a key's own position for `a.b`, an item's start for `a[3]`.
    /// When the path leaves the document (a merged key, say), the deepest position that does
    /// exist is returned, so a message always points near its cause.
    pub fn locate(&self, path: &FieldPath) -> Location {
        let Some(mut node) = self.root.as_ref() else {
            return Location { line: 1, column: 1 };
        };
        let mut at = node.at;
        for segment in &path.0 {
            let next = match (segment, &node.shape) {
                (Segment::Key(key), Shape::Mapping(entries)) => entries
                    .iter()
                    .find(|e| &e.key == key)
                    .map(|e| (e.key_at, &e.value)),
                (Segment::Index(index), Shape::Sequence(items)) => {
                    items.get(*index).map(|n| (n.at, n))
                }
                _ => None,
            };
            match next {
                Some((found_at, child)) => {
                    at = found_at;
                    node = child;
                }
                None => break,
            }
        }
        at
    }

    /// Every path in the document, as serde_norway would print it; used to recognise the path
    /// prefix serde puts in front of its messages.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            collect_paths(root, &FieldPath::root(), &mut out);
        }
        out
    }
}

fn collect_paths(node: &Node, path: &FieldPath, out: &mut Vec<String>) {
    match &node.shape {
        Shape::Leaf => {}
        Shape::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = path.index(i);
                out.push(p.to_string());
                collect_paths(item, &p, out);
            }
        }
        Shape::Mapping(entries) => {
            for entry in entries {
                let p = path.key(&entry.key);
                out.push(p.to_string());
                collect_paths(&entry.value, &p, out);
            }
        }
    }
}

fn next<'a>(events: &mut Events<'a>) -> Result<Option<(Event<'a>, Span)>, LocateError> {
    match events.next() {
        None => Ok(None),
        Some(Ok(pair)) => Ok(Some(pair)),
        Some(Err(err)) => Err(err.into()),
    }
}

/// Builds the node that starts with `event`; `None` for events that end a container (the
/// caller's loop uses that as its stop signal) or the document.
fn build(
    event: Event<'_>,
    span: &Span,
    events: &mut Events<'_>,
    depth: usize,
) -> Result<Option<Node>, LocateError> {
    let at = Location::from_span(span);
    if depth > MAX_DEPTH {
        return Err(LocateError {
            at,
            message: format!("nested deeper than {MAX_DEPTH} levels"),
        });
    }
    let shape = match event {
        Event::Scalar(..) | Event::Alias(_) => Shape::Leaf,
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            while let Some((event, span)) = next(events)? {
                match build(event, &span, events, depth + 1)? {
                    Some(item) => items.push(item),
                    None => break,
                }
            }
            Shape::Sequence(items)
        }
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            while let Some((event, span)) = next(events)? {
                let key = match &event {
                    Event::Scalar(text, ..) => text.to_string(),
                    _ => "?".to_string(),
                };
                let Some(key_node) = build(event, &span, events, depth + 1)? else {
                    break;
                };
                let Some((event, span)) = next(events)? else {
                    break;
                };
                let Some(value) = build(event, &span, events, depth + 1)? else {
                    break;
                };
                entries.push(Entry {
                    key,
                    key_at: key_node.at,
                    value,
                });
            }
            Shape::Mapping(entries)
        }
        _ => return Ok(None),
    };
    Ok(Some(Node { at, shape }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_and_items() {
        let text = "name: x\ndisks:\n  - {name: data, size: 1MiB}\nsteps:\n  - run: true\n  - unplug: data\n";
        let doc = LocatedDocument::parse(text).unwrap();
        let steps = FieldPath::root().key("steps");
        assert_eq!(doc.locate(&steps), Location { line: 4, column: 1 });
        assert_eq!(doc.locate(&steps.index(1)), Location { line: 6, column: 5 });
        assert_eq!(
            doc.locate(&steps.index(1).key("unplug")),
            Location { line: 6, column: 5 }
        );
        let disk_size = FieldPath::root().key("disks").index(0).key("size");
        assert_eq!(
            doc.locate(&disk_size),
            Location {
                line: 3,
                column: 18
            }
        );
        // A path that leaves the document stops at its deepest existing node.
        assert_eq!(
            doc.locate(&steps.index(1).key("nothing")),
            Location { line: 6, column: 5 }
        );
        assert!(doc.paths().contains(&"steps[1].unplug".to_string()));
        assert_eq!(steps.index(1).key("unplug").to_string(), "steps[1].unplug");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Well-formed but deep: our own limit answers.
        let text = "[".repeat(100) + &"]".repeat(100);
        let err = LocatedDocument::parse(&text).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{err:?}");
        // Absurdly deep: the parser's own limit answers first; either way, no crash.
        assert!(LocatedDocument::parse(&"[".repeat(100_000)).is_err());
    }

    #[test]
    fn reports_syntax_errors_with_a_position() {
        let err = LocatedDocument::parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.at.line >= 1, "{err:?}");
    }
}
