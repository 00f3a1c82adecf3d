//! A YAML syntax tree with the byte span of every node, for editing text in place.
//!
//! Built from the event stream of the parser serde-saphyr itself uses (granit-parser), so that
//! spans, scalar styles and comments are exactly those of the text. Aliases are kept as
//! aliases (never expanded): an edit never goes through one.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, StructureStyle};

/// The deepest nesting the tree follows.
const MAX_DEPTH: usize = 256;

/// One step of a path through a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A mapping entry, by its key's text.
    Key(String),
    /// A sequence item, by index.
    Index(usize),
}

/// A node and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// First byte.
    pub(crate) start: usize,
    /// One past the last byte; for a block collection, the end of its last child.
    pub(crate) end: usize,
    /// 0-based column of the first byte.
    pub(crate) col: usize,
    /// 1-based line of the first byte.
    pub(crate) line: usize,
    /// What it is.
    pub(crate) kind: NodeKind,
}

/// The shapes of [`Node`].
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    /// A scalar: its value after escapes, its style, and whether it has a tag or anchor.
    Scalar { value: String, style: ScalarStyle, decorated: bool },
    /// A sequence.
    Seq { flow: bool, items: Vec<Node> },
    /// A mapping; `close` is the byte of `}` for a flow mapping.
    Map { flow: bool, entries: Vec<(Node, Node)>, close: Option<usize> },
    /// `*name`.
    Alias,
}

/// A comment: its text after `#` and where the `#` is.
#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub(crate) text: String,
    pub(crate) start: usize,
    pub(crate) line: usize,
}

/// A parsed file: its non-empty documents (as serde-saphyr counts them) and its comments.
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) documents: Vec<Node>,
    pub(crate) comments: Vec<Comment>,
}

/// A parse failure at a 1-based line.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl Node {
    /// The value of a mapping entry by key.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// A mapping entry by key.
    pub(crate) fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        match &self.kind {
            NodeKind::Map { entries, .. } => entries.iter().find(|(k, _)| k.scalar() == Some(key)),
            _ => None,
        }
    }

    /// The node at `path`, if every step is in the text (not behind an alias or merge key).
    pub(crate) fn at(&self, path: &[Step]) -> Option<&Node> {
        path.iter().try_fold(self, |node, step| match (step, &node.kind) {
            (Step::Key(k), NodeKind::Map { .. }) => node.get(k),
            (Step::Index(i), NodeKind::Seq { items, .. }) => items.get(*i),
            _ => None,
        })
    }

    /// A scalar's value.
    pub(crate) fn scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether this node and all under it start and end on character boundaries of `text`
    /// (a guard: every slice of `text` the editor takes comes from these offsets).
    pub(crate) fn fits(&self, text: &str) -> bool {
        let own = self.start <= self.end && text.is_char_boundary(self.start) && text.is_char_boundary(self.end);
        own && match &self.kind {
            NodeKind::Seq { items, .. } => items.iter().all(|n| n.fits(text)),
            NodeKind::Map { entries, close, .. } => {
                close.is_none_or(|c| text.is_char_boundary(c))
                    && entries.iter().all(|(k, v)| k.fits(text) && v.fits(text))
            }
            NodeKind::Scalar { .. } | NodeKind::Alias => true,
        }
    }

    /// Every scalar under this node (mapping values and sequence items, not keys), with its path.
    pub(crate) fn scalars(&self, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, Node)>) {
        match &self.kind {
            NodeKind::Scalar { .. } => out.push((path.clone(), self.clone())),
            NodeKind::Seq { items, .. } => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    item.scalars(path, out);
                    path.pop();
                }
            }
            NodeKind::Map { entries, .. } => {
                for (k, v) in entries {
                    if let Some(key) = k.scalar() {
                        path.push(Step::Key(key.to_owned()));
                        v.scalars(path, out);
                        path.pop();
                    }
                }
            }
            NodeKind::Alias => {}
        }
    }
}

/// Parses `text` into a [`Tree`].
pub(crate) fn parse(text: &str) -> Result<Tree, SyntaxError> {
    let mut builder = Builder { parser: Parser::new_from_str(text), comments: Vec::new() };
    let mut documents = Vec::new();
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::StreamStart => {}
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                let (event, span) = builder.next()?;
                let root = builder.node(event, span, 0)?;
                match builder.next()? {
                    (Event::DocumentEnd, _) => {}
                    (_, span) => {
                        return Err(SyntaxError { line: span.start.line(), message: "expected document end".into() });
                    }
                }
                if !is_null_document(&root) {
                    documents.push(root);
                }
            }
            _ => return Err(SyntaxError { line: span.start.line(), message: "unexpected YAML event".into() }),
        }
    }
    let fits =
        documents.iter().all(|d| d.fits(text)) && builder.comments.iter().all(|c| text.is_char_boundary(c.start));
    if !fits {
        return Err(SyntaxError { line: 0, message: "positions in the text could not be resolved".into() });
    }
    Ok(Tree { documents, comments: builder.comments })
}

/// serde-saphyr skips empty and null documents; so does the tree, to count documents alike.
fn is_null_document(root: &Node) -> bool {
    match &root.kind {
        NodeKind::Scalar { value, style: ScalarStyle::Plain, decorated: false } => {
            matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL")
        }
        _ => false,
    }
}

struct Builder<'a> {
    parser: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    comments: Vec<Comment>,
}

impl<'a> Builder<'a> {
    /// The next event that is not a comment or anchor note; comments are kept aside.
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        loop {
            match self.parser.next_event() {
                None => return Err(SyntaxError { line: 0, message: "unexpected end of YAML".into() }),
                Some(Err(e)) => return Err(SyntaxError { line: e.marker().line(), message: e.info().to_owned() }),
                Some(Ok((Event::Anchor(..), _))) => continue,
                Some(Ok((event, span))) => {
                    if let Some(comment) = comment_of(&event, &span) {
                        self.comments.push(comment);
                        continue;
                    }
                    return Ok((event, span));
                }
            }
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(SyntaxError { line: span.start.line(), message: format!("nested deeper than {MAX_DEPTH}") });
        }
        let start = byte(&span.start);
        let (line, col) = (span.start.line(), span.start.col());
        let node = |end: usize, kind: NodeKind| Node { start, end, col, line, kind };
        match event {
            Event::Scalar(value, style, anchor, tag) => Ok(node(
                byte(&span.end),
                NodeKind::Scalar { value: value.into_owned(), style, decorated: anchor != 0 || tag.is_some() },
            )),
            Event::Alias(_) | Event::UnresolvedAlias(_) => Ok(node(byte(&span.end), NodeKind::Alias)),
            Event::SequenceStart(style, ..) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if let Event::SequenceEnd = event {
                        let flow = style == StructureStyle::Flow;
                        let end = if flow { byte(&span.end) } else { items.last().map_or(start, |n: &Node| n.end) };
                        return Ok(node(end, NodeKind::Seq { flow, items }));
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
            }
            Event::MappingStart(style, ..) => {
                let mut entries = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if let Event::MappingEnd = event {
                        let flow = style == StructureStyle::Flow;
                        let end = if flow {
                            byte(&span.end)
                        } else {
                            entries.last().map_or(start, |(_, v): &(Node, Node)| v.end)
                        };
                        let close = flow.then(|| byte(&span.start));
                        return Ok(node(end, NodeKind::Map { flow, entries, close }));
                    }
                    let key = self.node(event, span, depth + 1)?;
                    let (event, span) = self.next()?;
                    let value = self.node(event, span, depth + 1)?;
                    entries.push((key, value));
                }
            }
            _ => Err(SyntaxError { line, message: "unexpected YAML event".into() }),
        }
    }
}

fn byte(marker: &serde_saphyr::granit_parser::Marker) -> usize {
    marker.byte_offset().unwrap_or_else(|| marker.index())
}

#[allow(unreachable_patterns)]
fn comment_of(event: &Event<'_>, span: &Span) -> Option<Comment> {
    match event {
        Event::Comment(text, _) => {
            Some(Comment { text: text.to_string(), start: byte(&span.start), line: span.start.line() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_written_scalar() {
        let text = "a: 'x'\nb:\n  - \"y\" # c\n  - {k: z}\n---\n---\nr: &r 1\nc: *r\n";
        let tree = parse(text).unwrap();
        assert_eq!(tree.documents.len(), 2);
        let doc = &tree.documents[0];
        let a = doc.get("a").unwrap();
        assert_eq!(&text[a.start..a.end], "'x'");
        let y = doc.at(&[Step::Key("b".into()), Step::Index(0)]).unwrap();
        assert_eq!(&text[y.start..y.end], "\"y\"");
        let z = doc.at(&[Step::Key("b".into()), Step::Index(1), Step::Key("k".into())]).unwrap();
        assert_eq!(&text[z.start..z.end], "z");
        assert_eq!(tree.comments.len(), 1);
        assert_eq!(tree.comments[0].text, " c");
        assert!(matches!(tree.documents[1].get("c").unwrap().kind, NodeKind::Alias));
    }
}
