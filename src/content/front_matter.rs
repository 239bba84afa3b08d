//! Front matter: splitting a file into its TOML (`+++`) or YAML (`---`)
//! header and body, and reading the header into a [`Table`] of plain
//! values, each with the file line it was written on. Which keys mean what
//! is decided later ([`super::fields`]); here only the shape is checked,
//! and bounded: nesting depth and the number of values, so that no header
//! can make the parsers take seconds or the stack overflow.

/// What a front-matter parse error says: a reason and, where known, the
/// 1-based line in the whole file.
#[derive(Debug)]
pub struct FrontMatterError {
    pub line: Option<usize>,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

/// Deepest nesting of lists and tables accepted. Real front matter nests
/// two or three levels; the parsers are slow or recursive beyond this.
pub const MAX_DEPTH: usize = 32;
/// Most values (scalars, lists, tables) in one front matter.
pub const MAX_VALUES: usize = 50_000;

/// A file cut into its front matter and body.
pub struct Split<'a> {
    pub format: Option<Format>,
    pub front: &'a str,
    pub body: &'a str,
}

/// Cuts `text` into front matter and body. Files that open with neither
/// delimiter have no front matter.
pub fn split(text: &str) -> Result<Split<'_>, FrontMatterError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line_end = text.find('\n').map(|i| i + 1).unwrap_or(text.len());
    let first = text[..first_line_end].trim_end();
    let (format, closers): (Format, &[&str]) = match first {
        "+++" => (Format::Toml, &["+++"]),
        "---" => (Format::Yaml, &["---", "..."]),
        _ => {
            return Ok(Split {
                format: None,
                front: "",
                body: text,
            })
        }
    };
    let mut offset = first_line_end;
    while offset < text.len() {
        let end = text[offset..]
            .find('\n')
            .map(|i| offset + i + 1)
            .unwrap_or(text.len());
        if closers.contains(&text[offset..end].trim_end()) {
            return Ok(Split {
                format: Some(format),
                front: &text[first_line_end..offset],
                body: &text[end..],
            });
        }
        offset = end;
    }
    Err(FrontMatterError {
        line: Some(1),
        reason: format!(
            "front matter opened with `{first}` is never closed (add a `{}` line after it)",
            closers[0]
        ),
    })
}

/// One value as written, with its 1-based line in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: Option<usize>,
}

/// Front-matter values, independent of the format they came in.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    /// An integer or float, as text (TOML: exactly as written).
    Number(String),
    Bool(bool),
    /// A TOML date or date-time, as written.
    Date(String),
    List(Vec<Node>),
    Table(Table),
    /// YAML's `~`, `null` or an empty value: the same as not set.
    Null,
}

impl Value {
    /// What a type error calls this value.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Text(_) => "text",
            Value::Number(_) => "a number",
            Value::Bool(_) => "true/false",
            Value::Date(_) => "a date",
            Value::List(_) => "a list",
            Value::Table(_) => "a table",
            Value::Null => "nothing",
        }
    }

    /// The value as text, for scalars.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Text(s) | Value::Number(s) | Value::Date(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Keys and values in the order the parser gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table(pub Vec<(String, Node)>);

impl Table {
    /// The value at `path` (`build.list` looks into the table `build`),
    /// unless it is null.
    pub fn get(&self, path: &str) -> Option<&Node> {
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path, None),
        };
        let node = self.0.iter().find(|(k, _)| k == head).map(|(_, n)| n)?;
        match (rest, &node.value) {
            (_, Value::Null) => None,
            (None, _) => Some(node),
            (Some(r), Value::Table(t)) => t.get(r),
            (Some(_), _) => None,
        }
    }
}

/// Parses the front matter text cut out by [`split`]. `first_line` is the
/// 1-based line of the front matter's first line in the file, so that
/// errors point into the file, not into the header.
pub fn parse(format: Format, front: &str, first_line: usize) -> Result<Table, FrontMatterError> {
    check_nesting(front, first_line)?;
    let mut budget = Budget {
        left: MAX_VALUES,
        first_line,
    };
    match format {
        Format::Toml => {
            let doc = toml::de::DeTable::parse(front).map_err(|e| FrontMatterError {
                line: e.span().map(|s| first_line + line_of(front, s.start)),
                reason: format!("invalid TOML front matter: {}", e.message().trim_end()),
            })?;
            let lines = LineIndex::new(front);
            toml_table(doc.get_ref(), &lines, &mut budget, 0)
        }
        Format::Yaml => {
            if front.trim().is_empty() {
                return Ok(Table::default());
            }
            let value: serde_yaml::Value = serde_yaml::from_str(front).map_err(|e| {
                let line = e
                    .location()
                    .map(|l| first_line + l.line().saturating_sub(1));
                let msg = e.to_string();
                // serde_yaml appends " at line N column M"; we give the line ourselves.
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                FrontMatterError {
                    line,
                    reason: format!("invalid YAML front matter: {msg}"),
                }
            })?;
            let lines = YamlLines::new(front, first_line);
            match value {
                serde_yaml::Value::Mapping(m) => yaml_table(&m, &lines, &mut budget),
                serde_yaml::Value::Null => Ok(Table::default()),
                other => Err(FrontMatterError {
                    line: Some(first_line),
                    reason: format!(
                        "invalid YAML front matter: it must be `key: value` lines, not {}",
                        yaml_kind(&other)
                    ),
                }),
            }
        }
    }
}

/// Rejects bracket nesting deeper than [`MAX_DEPTH`] before any parser sees
/// it: one linear pass, where a parser would take seconds (YAML) on a
/// hundred thousand `[`. Quoted text and comments are skipped.
fn check_nesting(front: &str, first_line: usize) -> Result<(), FrontMatterError> {
    let mut depth = 0usize;
    let mut line = first_line;
    let mut quote: Option<u8> = None;
    let mut comment = false;
    let mut escaped = false;
    for &b in front.as_bytes() {
        if b == b'\n' {
            line += 1;
            comment = false;
            // YAML and TOML single-quoted and basic strings end at the line.
            if quote.is_some_and(|q| q == b'\'' || q == b'"') {
                quote = None;
            }
            continue;
        }
        if comment {
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' && q == b'"' {
                escaped = true;
            } else if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' | b'\'' => quote = Some(b),
            b'#' => comment = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(FrontMatterError {
                        line: Some(line),
                        reason: format!(
                            "front matter nests lists or tables more than {MAX_DEPTH} levels deep"
                        ),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Counts values as the tree is built, so that one header cannot hold
/// millions of them (YAML aliases can multiply a few lines).
struct Budget {
    left: usize,
    first_line: usize,
}

impl Budget {
    fn take(&mut self, line: Option<usize>) -> Result<(), FrontMatterError> {
        if self.left == 0 {
            return Err(FrontMatterError {
                line: line.or(Some(self.first_line)),
                reason: format!("front matter holds more than {MAX_VALUES} values"),
            });
        }
        self.left -= 1;
        Ok(())
    }
}

fn too_deep(line: Option<usize>) -> FrontMatterError {
    FrontMatterError {
        line,
        reason: format!("front matter nests lists or tables more than {MAX_DEPTH} levels deep"),
    }
}

/// Byte offsets of line starts, for turning TOML spans into lines.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// 1-based line of `offset` within the indexed text.
    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}

fn toml_table(
    t: &toml::de::DeTable<'_>,
    lines: &LineIndex,
    budget: &mut Budget,
    depth: usize,
) -> Result<Table, FrontMatterError> {
    let mut out = Vec::with_capacity(t.len());
    for (k, v) in t.iter() {
        let node = toml_node(v, lines, budget, depth)?;
        out.push((k.get_ref().to_string(), node));
    }
    Ok(Table(out))
}

fn toml_node(
    v: &toml::Spanned<toml::de::DeValue<'_>>,
    lines: &LineIndex,
    budget: &mut Budget,
    depth: usize,
) -> Result<Node, FrontMatterError> {
    use toml::de::DeValue;
    // Lines count from the front matter's first line.
    let line = Some(budget.first_line - 1 + lines.line(v.span().start));
    budget.take(line)?;
    if depth > MAX_DEPTH {
        return Err(too_deep(line));
    }
    let value = match v.get_ref() {
        DeValue::String(s) => Value::Text(s.to_string()),
        DeValue::Integer(i) => Value::Number(i.to_string()),
        DeValue::Float(f) => Value::Number(f.to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::Date(d.to_string()),
        DeValue::Array(items) => Value::List(
            items
                .iter()
                .map(|i| toml_node(i, lines, budget, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => Value::Table(toml_table(t, lines, budget, depth + 1)?),
    };
    Ok(Node { value, line })
}

/// Where YAML keys and list items are written. serde_yaml gives values
/// without positions, so lines are found in the text: each key of the
/// top-level table, and the items of a block list under it (`- a` lines).
/// Values deeper down take the line of the key they belong to.
struct YamlLines<'a> {
    lines: Vec<&'a str>,
    first_line: usize,
}

impl<'a> YamlLines<'a> {
    fn new(front: &'a str, first_line: usize) -> YamlLines<'a> {
        YamlLines {
            lines: front.lines().collect(),
            first_line,
        }
    }

    /// 0-based index of the top-level line that sets `key`.
    fn key_index(&self, key: &str) -> Option<usize> {
        self.lines.iter().position(|l| {
            let l = l
                .strip_prefix('"')
                .or_else(|| l.strip_prefix('\''))
                .unwrap_or(l);
            l.strip_prefix(key).is_some_and(|rest| {
                let rest = rest.trim_start_matches(['"', '\'']);
                rest.starts_with(':')
            })
        })
    }

    fn key_line(&self, key: &str) -> Option<usize> {
        self.key_index(key).map(|i| self.first_line + i)
    }

    /// Line of the `n`th item of a block list under top-level `key`; the
    /// key's own line for a flow list (`tags: [a, b]`).
    fn item_line(&self, key: &str, n: usize) -> Option<usize> {
        let at = self.key_index(key)?;
        let items = self.lines[at + 1..]
            .iter()
            .enumerate()
            .take_while(|(_, l)| l.is_empty() || l.starts_with([' ', '\t', '-', '#']))
            .filter(|(_, l)| l.trim_start().starts_with('-'));
        let mut min_indent = usize::MAX;
        let mut found = Vec::new();
        for (i, l) in items {
            let indent = l.len() - l.trim_start().len();
            if indent < min_indent {
                min_indent = indent;
                found.clear();
            }
            if indent == min_indent {
                found.push(i);
            }
        }
        Some(match found.get(n) {
            Some(i) => self.first_line + at + 1 + i,
            None => self.first_line + at,
        })
    }
}

fn yaml_kind(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a table",
        _ => "a single value",
    }
}

fn yaml_key(k: &serde_yaml::Value) -> Option<String> {
    match k {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Tagged(t) => yaml_key(&t.value),
        _ => None,
    }
}

fn yaml_table(
    m: &serde_yaml::Mapping,
    lines: &YamlLines<'_>,
    budget: &mut Budget,
) -> Result<Table, FrontMatterError> {
    let mut out = Vec::with_capacity(m.len());
    for (k, v) in m {
        let Some(key) = yaml_key(k) else {
            return Err(FrontMatterError {
                line: Some(lines.first_line),
                reason: "front matter keys must be plain names, not lists or tables".into(),
            });
        };
        let line = lines.key_line(&key).or(Some(lines.first_line));
        let node = match v {
            // Items of a top-level list get their own lines.
            serde_yaml::Value::Sequence(items) => {
                budget.take(line)?;
                let list = items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| yaml_node(item, lines.item_line(&key, n), budget, 1))
                    .collect::<Result<_, _>>()?;
                Node {
                    value: Value::List(list),
                    line,
                }
            }
            other => yaml_node(other, line, budget, 0)?,
        };
        out.push((key, node));
    }
    Ok(Table(out))
}

fn yaml_node(
    v: &serde_yaml::Value,
    line: Option<usize>,
    budget: &mut Budget,
    depth: usize,
) -> Result<Node, FrontMatterError> {
    use serde_yaml::Value as Y;
    budget.take(line)?;
    if depth > MAX_DEPTH {
        return Err(too_deep(line));
    }
    let value = match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => Value::Number(n.to_string()),
        Y::String(s) => Value::Text(s.clone()),
        Y::Sequence(items) => Value::List(
            items
                .iter()
                .map(|i| yaml_node(i, line, budget, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                let Some(key) = yaml_key(k) else {
                    return Err(FrontMatterError {
                        line,
                        reason: "front matter keys must be plain names, not lists or tables".into(),
                    });
                };
                out.push((key, yaml_node(v, line, budget, depth + 1)?));
            }
            Value::Table(Table(out))
        }
        Y::Tagged(t) => return yaml_node(&t.value, line, budget, depth),
    };
    Ok(Node { value, line })
}

/// 0-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &Table, key: &str) -> Option<String> {
        t.get(key).and_then(|n| n.value.scalar_text())
    }

    #[test]
    fn toml_front_matter_with_native_date() {
        let s =
            split("+++\ntitle = \"A\"\ndate = 2024-05-01\ntags = [\"x\"]\n+++\nBody\n").unwrap();
        assert_eq!(s.format, Some(Format::Toml));
        assert_eq!(s.body, "Body\n");
        let fm = parse(Format::Toml, s.front, 2).unwrap();
        assert_eq!(text(&fm, "title").as_deref(), Some("A"));
        assert_eq!(text(&fm, "date").as_deref(), Some("2024-05-01"));
        assert_eq!(fm.get("tags").unwrap().line, Some(4));
    }

    #[test]
    fn yaml_front_matter_with_jekyll_fields_and_item_lines() {
        let text_ = "---\ntitle: \"J\"\ndate: 2013-05-06 02:12:52 +0200\nauthor: parkr\ntags:\n  - go\n  - 47\n  - {a: 1}\n---\n\nHi";
        let s = split(text_).unwrap();
        let fm = parse(Format::Yaml, s.front, 2).unwrap();
        assert_eq!(
            text(&fm, "date").as_deref(),
            Some("2013-05-06 02:12:52 +0200")
        );
        assert_eq!(text(&fm, "author").as_deref(), Some("parkr"));
        let Value::List(items) = &fm.get("tags").unwrap().value else {
            panic!()
        };
        let lines: Vec<_> = items.iter().map(|n| n.line).collect();
        assert_eq!(lines, [Some(6), Some(7), Some(8)]);
        assert_eq!(items[1].value, Value::Number("47".into()));
    }

    #[test]
    fn errors_point_at_the_file_line() {
        let e = parse(Format::Toml, "title = \"A\"\ntags = [42\n", 2).unwrap_err();
        assert!(e.line.is_some(), "{}", e.reason);
        let e = split("---\ntitle: x\n").err().unwrap();
        assert!(e.reason.contains("never closed"));
    }

    #[test]
    fn deep_nesting_fails_fast_with_its_line() {
        let deep = format!(
            "title: x\ntags: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let t = std::time::Instant::now();
        let e = parse(Format::Yaml, &deep, 2).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(e.line, Some(3));
        assert!(e.reason.contains("levels deep"), "{}", e.reason);
        // Brackets inside quotes are text.
        let quoted = format!("title: \"{}\"\n", "[".repeat(100));
        assert!(parse(Format::Yaml, &quoted, 2).is_ok());
    }
}
