//! A look at a manifest's YAML structure before the parser sees it: how deep flow
//! collections nest, and whether a node carries a tag. Quoted scalars (with their
//! escapes), comments, block scalars and plain text are skipped, so brackets or
//! `!` inside a value never count.

/// What the look found first, with its 1-based line (and column for a tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    TooDeep {
        line: usize,
    },
    Tag {
        line: usize,
        column: usize,
        tag: String,
    },
}

/// The first finding in `text`, or `None` when the structure is plain.
pub fn scan(text: &str, max_depth: usize) -> Option<Finding> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    // A block scalar (`|`, `>`): lines indented deeper than this are its text.
    let mut block: Option<usize> = None;
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let chars: Vec<char> = line.chars().collect();
        let indent = chars.iter().take_while(|c| **c == ' ').count();
        if let Some(parent) = block {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block = None;
        }
        let mut i = 0;
        if quote.is_none() && depth == 0 {
            if chars.first() == Some(&'%') {
                continue; // a directive (%YAML, %TAG)
            }
            let marker =
                |m: &str| line.starts_with(m) && chars.get(3).is_none_or(|c| c.is_whitespace());
            if marker("...") {
                continue;
            }
            if marker("---") {
                i = 3;
            }
        }
        // At the start of a node: where `[`, `{`, a quote, a tag or `|` mean
        // structure rather than text.
        let mut node_start = true;
        let mut entry_col = indent;
        let mut prev_ws = true;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match quote {
                Some('"') => {
                    if c == '\\' {
                        i += 1;
                    } else if c == '"' {
                        quote = None;
                        node_start = false;
                    }
                    i += 1;
                    prev_ws = false;
                    continue;
                }
                Some(_) => {
                    if c == '\'' {
                        if next == Some('\'') {
                            i += 1;
                        } else {
                            quote = None;
                            node_start = false;
                        }
                    }
                    i += 1;
                    prev_ws = false;
                    continue;
                }
                None => {}
            }
            let ends_token = |c: char| c.is_whitespace() || (depth > 0 && ",[]{}".contains(c));
            let spaced = next.is_none_or(|c| c.is_whitespace());
            if c.is_whitespace() {
                prev_ws = true;
                i += 1;
                continue;
            }
            if c == '#' && prev_ws {
                break;
            }
            prev_ws = false;
            if depth > 0 {
                match c {
                    '[' | '{' => {
                        depth += 1;
                        if depth > max_depth {
                            return Some(Finding::TooDeep { line: n + 1 });
                        }
                        node_start = true;
                        i += 1;
                        continue;
                    }
                    ']' | '}' => {
                        depth -= 1;
                        node_start = false;
                        i += 1;
                        continue;
                    }
                    ',' => {
                        node_start = true;
                        i += 1;
                        continue;
                    }
                    // In flow, `:` is a value indicator even right after a quoted key.
                    ':' => {
                        node_start = true;
                        i += 1;
                        continue;
                    }
                    _ => {}
                }
            } else if matches!(c, '-' | '?' | ':') && spaced && (c == ':' || node_start) {
                if c != ':' {
                    entry_col = i;
                }
                node_start = true;
                i += 1;
                continue;
            }
            if !node_start {
                i += 1;
                continue;
            }
            match c {
                '[' | '{' => {
                    depth += 1;
                    if depth > max_depth {
                        return Some(Finding::TooDeep { line: n + 1 });
                    }
                }
                '"' | '\'' => {
                    quote = Some(c);
                    node_start = false;
                }
                '!' => {
                    let tag: String = chars[i..].iter().take_while(|c| !ends_token(**c)).collect();
                    return Some(Finding::Tag {
                        line: n + 1,
                        column: i + 1,
                        tag,
                    });
                }
                '&' => {
                    // An anchor: the node it names follows.
                    while i < chars.len() && !ends_token(chars[i]) {
                        i += 1;
                    }
                    continue;
                }
                '|' | '>' if depth == 0 => {
                    block = Some(entry_col);
                    break;
                }
                _ => {
                    if depth == 0 {
                        entry_col = i;
                    }
                    node_start = false;
                }
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(text: &str) -> Option<usize> {
        match scan(text, 3) {
            Some(Finding::TooDeep { line }) => Some(line),
            _ => None,
        }
    }

    fn tag(text: &str) -> Option<(usize, usize, String)> {
        match scan(text, 64) {
            Some(Finding::Tag { line, column, tag }) => Some((line, column, tag)),
            _ => None,
        }
    }

    #[test]
    fn counts_flow_collections_only() {
        assert_eq!(deep("a: [[[[x]]]]\n"), Some(1));
        assert_eq!(deep("a:\n  - {b: [[[c]]]}\n"), Some(2));
        assert_eq!(deep("a: [[[x]]]\n"), None);
        // Across lines.
        assert_eq!(deep("a: [\n [\n  [\n   [x]]]]\n"), Some(4));
    }

    #[test]
    fn brackets_in_text_do_not_count() {
        for text in [
            "a: \"[[[[[[\"\n",
            "a: '[[[[[['\n",
            "a: \"\\\"[[[[[[\"\n",
            "a: 'it''s [[[[[['\n",
            "a: \"multi\n  line [[[[[[\"\n",
            "a: plain [[[[[[ text\n",
            "a: x # [[[[[[\n",
            "# [[[[[[\n",
            "a: |\n  [[[[[[\n  {{{{{{\nb: c\n",
            "- >-\n  [[[[[[\n",
            "a: [\"[[[[[[\", '{{{{', x]\n",
            "- key: |\n    [[[[[[\n",
        ] {
            assert_eq!(scan(text, 3), None, "{text:?}");
        }
    }

    #[test]
    fn a_block_scalar_ends_where_its_indentation_does() {
        assert_eq!(deep("a: |\n  text\nb: [[[[x]]]]\n"), Some(3));
        assert_eq!(deep("- k: |\n    text\n  b: [[[[x]]]]\n"), Some(3));
    }

    #[test]
    fn finds_tags_on_nodes_only() {
        assert_eq!(
            tag("a:\n  b: !!binary aGk=\n"),
            Some((2, 6, "!!binary".into()))
        );
        assert_eq!(tag("- !custom x\n"), Some((1, 3, "!custom".into())));
        assert_eq!(tag("a: [x, !t y]\n"), Some((1, 8, "!t".into())));
        assert_eq!(tag("--- !x\n"), Some((1, 5, "!x".into())));
        assert_eq!(tag("a: &anchor !t x\n"), Some((1, 12, "!t".into())));
        for text in [
            "a: \"!x\"\n",
            "a: hi!\n",
            "a: b # !x\n",
            "a: |\n  !x\n",
            "%TAG ! tag:example.com,2000:\n---\na: b\n",
        ] {
            assert_eq!(tag(text), None, "{text:?}");
        }
    }
}
